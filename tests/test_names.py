"""Parameter names come from one place (symprop/ir/names.py): every name the spec, the IR and
the generated modules use parses back to the array and layer it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from symprop.ir.backprop import derive
from symprop.ir.names import ParamRef, bias, grad_of, weight
from symprop.ir.program import Kind
from symprop.spec import load_spec
from tests.support import EXAMPLES, spec_for


def test_spec_param_names_are_the_names_module_spellings() -> None:
    spec = spec_for("tanh", "mse", (3, 5, 4, 2))
    expected = [name for l in (1, 2, 3) for name in (weight(l), bias(l))]
    assert list(spec.param_shapes) == expected
    assert expected == ["W1", "b1", "W2", "b2", "W3", "b3"]  # the names the modules' dicts use


@pytest.mark.parametrize("path", EXAMPLES[:3], ids=lambda p: p.stem)
def test_every_program_variable_of_a_parameter_names_its_array(path: Path) -> None:
    program = derive(load_spec(path))
    for v in program.params:
        ref = ParamRef.parse(v.name)
        assert (ref.label, ref.layer) == (v.name, v.layer) and v.param == ref
    grads = program.function("loss_and_grad").returns[1:]
    assert [g.name for g in grads] == [grad_of(v.name) for v in program.params]
    for g in grads:
        assert g.kind in (Kind.GRAD_W, Kind.GRAD_B)
        assert ParamRef.parse(g.name) == g.param and g.param.grad == g.name


@pytest.mark.parametrize("name", ["W1", "b12", "dW3", "db1", "VW2", "Vb7"])
def test_names_round_trip(name: str) -> None:
    ref = ParamRef.parse(name)
    assert name in (ref.label, ref.grad, ref.direction)


@pytest.mark.parametrize("name", ["", "W", "W0", "W01", "x1", "dx1", "Wb1", "ddW1", "W1_2", "w1", "b-1"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="names no parameter array"):
        ParamRef.parse(name)
