"""``symprop check``: NaN/inf fail it, exact gradients pass on hard nets, injected errors fail.

The hard nets are those of issue 14, where the old check (a fixed 1e-4 floor, plain central
differences at fixed-spread test points) failed exact gradients: a 64-64-64-10 ReLU/softmax net,
a 784-256-128-10 net and the steep loss (a - y)**64.  The same nets are then given gradients with
one mistake injected into the generated source (a wrong factor, a wrong sign, a dropped term or
factor), and the check must fail on each: the error estimate that lets exact gradients pass comes
from the loss alone, so it cannot absorb a wrong gradient.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.emit import render
from symprop.spec import Spec, spec_from_dict
from symprop.tools.check import TOLERANCE, compare, load_module

DEEP = {
    "name": "deep",
    "inputs": 64,
    "loss": "softmax_ce",
    "layers": [
        {"units": 64, "activation": "relu"},
        {"units": 64, "activation": "relu"},
        {"units": 10, "activation": "identity"},
    ],
}
WIDE = {
    "name": "wide",
    "inputs": 784,
    "loss": "softmax_ce",
    "layers": [
        {"units": 256, "activation": "relu"},
        {"units": 128, "activation": "relu"},
        {"units": 10, "activation": "identity"},
    ],
}
STEEP = {
    "name": "steep",
    "inputs": 3,
    "loss": "custom",
    "loss_expr": "(a-y)**64",
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "identity"}],
}
NAN_BCE = {  # bce written out on an identity output: log of a negative number at every point
    "name": "nanbce",
    "inputs": 2,
    "loss": "custom",
    "loss_expr": "-(y*log(a) + (1-y)*log(1-a))",
    "layers": [{"units": 2, "activation": "identity"}],
}


def toml_text(data: dict) -> str:
    lines = [f'name = "{data["name"]}"', f"inputs = {data['inputs']}", f'loss = "{data["loss"]}"']
    if "loss_expr" in data:
        lines.append(f'loss_expr = "{data["loss_expr"]}"')
    for layer in data["layers"]:
        lines += ["[[layers]]", f"units = {layer['units']}", f'activation = "{layer["activation"]}"']
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / f"{data['name']}.toml"
    path.write_text(toml_text(data), encoding="utf-8")
    return str(path)


def source_of(data: dict) -> tuple[Spec, str]:
    spec = spec_from_dict(data)
    return spec, render(spec, "vectorized")


def mutated(source: str, old: str, new: str) -> types.ModuleType:
    assert source.count(old) == 1, old  # the injection must hit exactly one line of the real source
    return load_module(source.replace(old, new), "mutant")


# ------------------------------------------------------------------ class 2: NaN and inf fail --
def test_a_nan_loss_fails_the_check_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(tmp_path, NAN_BCE)]) == 1
    out, err = capsys.readouterr()
    assert "the loss is nan" in out
    assert "check failed: the loss is nan" in err


def test_a_nan_gradient_entry_fails_and_is_named() -> None:
    spec, source = source_of(STEEP)
    module = load_module(source, "steep")

    class NanGrad:
        loss = staticmethod(module.loss)

        @staticmethod
        def loss_and_grad(params, X, Y):  # type: ignore[no-untyped-def]
            value, grads = module.loss_and_grad(params, X, Y)
            grads["W2"][1, 2] = np.nan
            return value, grads

    result = compare(NanGrad, spec, seeds=(0,))
    assert not result.passed
    assert any("W2[2,3] is nan" in p for p in result.problems), result.problems  # 1-based, like explain


def test_an_infinite_finite_difference_fails_and_is_named() -> None:
    """The loss is inf just right of the test point in b1[0] (a pole): the analytic gradient is
    finite, but the check must not report a pass, since max(0, nan) used to drop the NaN."""
    spec, source = source_of(STEEP)
    module = load_module(source, "steep")
    point = {}

    class Pole:
        loss_and_grad = staticmethod(module.loss_and_grad)

        @staticmethod
        def loss(params, X, Y):  # type: ignore[no-untyped-def]
            b = point.setdefault("b1", float(params["b1"][0]))
            return np.inf if params["b1"][0] > b else module.loss(params, X, Y)

    result = compare(Pole, spec, seeds=(0,), max_entries=None)
    assert not result.passed
    assert any("b1[1]" in p and "inf" in p for p in result.problems), result.problems  # 1-based, like explain


# --------------------------------------- class 3: exact gradients pass on nets of any scale --
@pytest.mark.parametrize("data", [DEEP, STEEP], ids=["64-64-64-10 relu softmax", "(a-y)**64"])
def test_exact_gradients_pass_on_hard_nets(tmp_path: Path, data: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's failing cases: the old check exited 1 on both (3.2e-5 and 1.0)."""
    assert main(["check", write(tmp_path, data), "--points", "2"]) == 0, capsys.readouterr()


def test_exact_gradient_passes_on_a_784_wide_net() -> None:
    spec, source = source_of(WIDE)
    result = compare(load_module(source, "wide"), spec, seeds=(0,), max_entries=8)
    assert result.passed, result
    # far inside the tolerance, not near it: the extrapolated differences are accurate to ~1e-8
    assert result.max_rel_error < TOLERANCE / 20


# The generated source lines each mistake is injected into (exactly one occurrence each).
DEEP_MUTANTS = {
    "wrong factor 1.001": ("db1 = np.dot(np.ones(n, dtype), D1)", "db1 = 1.001*np.dot(np.ones(n, dtype), D1)"),
    "wrong sign": ("dW2 = np.dot(D2.T, A1)", "dW2 = -np.dot(D2.T, A1)"),
    "missing term (- y)": ("D3 = w*(P3*SY - Y)/n", "D3 = w*(P3*SY)/n"),
    "missing factor (relu mask)": ("    D1 *= (A1 > 0)\n", "\n"),
}
STEEP_MUTANTS = {
    "wrong factor 63/64": ("D2 = 64*w*(-Y + Z2)**63/n", "D2 = 63*w*(-Y + Z2)**63/n"),
    "wrong sign": ("dW1 = np.dot(D1.T, X)", "dW1 = -np.dot(D1.T, X)"),
    "missing term (- a**2)": ("D1 *= 1 - A1**2", "D1 *= 1"),
}


@pytest.mark.parametrize("mutant", list(DEEP_MUTANTS))
def test_injected_errors_fail_on_the_deep_relu_net(mutant: str) -> None:
    spec, source = source_of(DEEP)
    result = compare(mutated(source, *DEEP_MUTANTS[mutant]), spec, seeds=(0,), max_entries=20)
    assert not result.passed, result
    assert result.max_rel_error > 10 * TOLERANCE


@pytest.mark.parametrize("mutant", list(STEEP_MUTANTS))
def test_injected_errors_fail_on_the_steep_loss(mutant: str) -> None:
    spec, source = source_of(STEEP)
    result = compare(mutated(source, *STEEP_MUTANTS[mutant]), spec, seeds=(0,), max_entries=None)
    assert not result.passed, result
    assert result.max_rel_error > 10 * TOLERANCE


def test_an_injected_factor_fails_on_the_784_wide_net() -> None:
    spec, source = source_of(WIDE)
    result = compare(
        mutated(source, "dW1 = np.dot(D1.T, X)", "dW1 = 1.001*np.dot(D1.T, X)"), spec, seeds=(0,), max_entries=8
    )
    assert not result.passed
    assert {r.name for r in result.reports if r.max_rel_error > TOLERANCE} == {"W1"}


# ------------------------------------------------------------------- --tol, --seed, --scale --
def test_tol_decides_between_pass_and_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 1e-4 error in the gradient: caught at the default 1e-5, accepted at --tol 1e-3."""
    spec, source = source_of(STEEP)
    broken = mutated(source, "db1 = np.dot(np.ones(n, dtype), D1)", "db1 = 1.0001*np.dot(np.ones(n, dtype), D1)")
    assert not compare(broken, spec, seeds=(0,)).passed
    assert compare(broken, spec, seeds=(0,), tol=1e-3).passed
    path = write(tmp_path, STEEP)
    assert main(["check", path, "--tol", "1e-3"]) == 0
    assert "tolerance: 1e-03" in capsys.readouterr().out


def test_seed_and_scale_choose_the_test_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, STEEP)
    outputs = []
    for extra in ([], ["--seed", "7"], ["--scale", "0.5"]):
        assert main(["check", path, "--points", "1", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert len(set(outputs)) == 3  # each option moved the test points, so the errors differ


@pytest.mark.parametrize(
    ("option", "value"),
    [("--tol", "0"), ("--tol", "nan"), ("--tol", "2"), ("--scale", "0"), ("--scale", "inf"), ("--seed", "-1")],
)
def test_bad_check_options_exit_2(tmp_path: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(tmp_path, STEEP), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err
