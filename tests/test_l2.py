"""The L2 penalty is part of the symbolic cost: C = (1/n) Σ_k C_k + (λ/2) Σ_l ‖W^l‖² (weights only).

Checked three independent ways: central finite differences of the module's own loss (so the
penalty's gradient is checked against its value), the value against a plain NumPy sum of
squares, and the gradient against the penalty-free module's gradient plus λW (biases unchanged).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from symprop.explain import explain
from symprop.spec import Layer, Spec, SpecError, spec_from_dict
from symprop.tools.check import TOLERANCE, compare, random_problem
from tests.support import NUMPY_MODES, module_for

LAM = 0.03
SPECS = [
    Spec("l2_tanh", 3, (Layer.of(4, "tanh"), Layer.of(2, "sigmoid")), "mse", l2=LAM),
    Spec("l2_softmax", 3, (Layer.of(4, "relu"), Layer.of(3, "identity")), "softmax_ce", l2=LAM),
    Spec("l2_bce", 2, (Layer.of(3, "softplus"), Layer.of(1, "sigmoid", beta=2.0)), "bce", l2=LAM),
]


@pytest.mark.parametrize("mode", NUMPY_MODES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_penalty_is_in_the_cost_and_its_gradient(spec: Spec, mode: str) -> None:
    module = module_for(spec, mode)
    plain = module_for(replace(spec, l2=0.0, name=spec.name + "_plain"), mode)
    params, X, Y = random_problem(spec, 2)
    C, grads = module.loss_and_grad(params, X, Y)
    C0, grads0 = plain.loss_and_grad(params, X, Y)
    penalty = LAM / 2 * sum(float(np.sum(params[k] ** 2)) for k in params if k.startswith("W"))
    assert abs(C - (C0 + penalty)) <= 1e-12 * max(1.0, abs(C))
    assert abs(module.loss(params, X, Y) - C) <= 1e-12 * max(1.0, abs(C))
    for k, g in grads.items():
        want = grads0[k] + (LAM * params[k] if k.startswith("W") else 0.0)
        assert np.allclose(g, want, rtol=1e-12, atol=1e-13), k
    result = compare(module, spec, seeds=(0, 1), max_entries=None)
    assert result.passed and result.max_rel_error < TOLERANCE, result


def test_l2_is_validated_and_zero_is_no_penalty() -> None:
    base = {"name": "n", "inputs": 1, "loss": "mse", "layers": [{"units": 1, "activation": "tanh"}]}
    for bad in (-0.1, True, "0.1", float("inf"), float("nan")):
        with pytest.raises(SpecError, match="l2 must be a number >= 0"):
            spec_from_dict({**base, "l2": bad})
    assert spec_from_dict({**base, "l2": 0}).hash() == spec_from_dict(base).hash()
    spec = spec_from_dict({**base, "l2": 0.5})
    assert spec.l2 == 0.5 and "l2 = 0.5" in spec.to_toml()


def test_explain_shows_the_penalty() -> None:
    text = explain(SPECS[0], "text")
    assert "C = C_mean + 0.015*sumsq_W1 + 0.015*sumsq_W2" in text
    assert "l2 * W1" in text
