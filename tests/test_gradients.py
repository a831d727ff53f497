"""Generated gradients against central finite differences, for every activation x loss.

Tolerance: symprop.tools.check.TOLERANCE (1e-5 relative; the floor is the finite difference's own error
estimate), justified in symprop/tools/check.py: an exact gradient shows ~1e-9, a wrong one ~1.
"""

from __future__ import annotations

import numpy as np
import pytest

from symprop.spec import Layer, Spec, load_spec
from symprop.tools.check import TOLERANCE, compare
from tests.support import ACTIVATIONS, EXAMPLES, LOSSES, NUMPY_MODES, module_for, spec_for


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradient_matches_finite_differences(activation: str, loss: str) -> None:
    spec = spec_for(activation, loss)
    result = compare(module_for(spec), spec, seeds=(0, 1), max_entries=None)
    assert result.passed, result
    assert all(r.checked == 2 * np.prod(r.shape) for r in result.reports)


@pytest.mark.parametrize("mode", NUMPY_MODES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_pass_the_check(path, mode: str) -> None:
    """Every entry of small examples; a random 40 per array for large ones (digits: 2,410 params)."""
    spec = load_spec(path)
    cap = None if spec.n_params <= 500 else 40
    result = compare(module_for(spec, mode), spec, seeds=(0, 1, 2), max_entries=cap)
    assert result.passed, result


def test_the_check_catches_a_wrong_gradient() -> None:
    """The finite-difference check can fail: perturb one generated gradient entry by 1%."""
    spec = spec_for("tanh", "mse")
    module = module_for(spec)

    class Broken:
        loss = staticmethod(module.loss)

        @staticmethod
        def loss_and_grad(params, X, Y):  # type: ignore[no-untyped-def]
            value, grads = module.loss_and_grad(params, X, Y)
            grads["W1"][0, 0] *= 1.01
            return value, grads

    result = compare(Broken, spec, seeds=(0,), max_entries=None)
    assert not result.passed
    by_name = {r.name: r for r in result.reports}
    assert by_name["W1"].max_rel_error > 100 * TOLERANCE
    assert by_name["b1"].max_rel_error < TOLERANCE


def test_textbook_one_neuron_per_layer() -> None:
    """1-1-1 sigmoid net with sse: dC/dW2 = mean(a1 * sigma'(z2) * 2 (a2 - y)), computed by hand."""
    spec = Spec("one", 1, (Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid")), "sse")
    module = module_for(spec)
    rng = np.random.default_rng(7)
    params = {
        "W1": rng.normal(size=(1, 1)),
        "b1": rng.normal(size=1),
        "W2": rng.normal(size=(1, 1)),
        "b2": rng.normal(size=1),
    }
    X, Y = rng.normal(size=(9, 1)), rng.uniform(size=(9, 1))

    def sigma(t: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-t))

    a1 = sigma(X[:, 0] * params["W1"][0, 0] + params["b1"][0])
    z2 = a1 * params["W2"][0, 0] + params["b2"][0]
    a2 = sigma(z2)
    sigma_prime = sigma(z2) * (1 - sigma(z2))
    expected_w2 = np.mean(a1 * sigma_prime * 2 * (a2 - Y[:, 0]))
    expected_b2 = np.mean(sigma_prime * 2 * (a2 - Y[:, 0]))
    value, grads = module.loss_and_grad(params, X, Y)
    assert grads["W2"][0, 0] == pytest.approx(expected_w2, rel=1e-12)
    assert grads["b2"][0] == pytest.approx(expected_b2, rel=1e-12)
    assert value == pytest.approx(np.mean((a2 - Y[:, 0]) ** 2), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_works_in_the_dtype_of_its_inputs(dtype: type) -> None:
    spec = spec_for("gaussian", "custom")
    module = module_for(spec)
    params = module.init_params(seed=3, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(5, spec.inputs)).astype(dtype)
    Y = np.random.default_rng(1).normal(size=(5, spec.outputs)).astype(dtype)
    assert module.forward(params, X).dtype == dtype
    _, grads = module.loss_and_grad(params, X, Y)
    assert {k: g.dtype for k, g in grads.items()} == {k: np.dtype(dtype) for k in grads}
    assert set(grads) == set(module.PARAM_SHAPES)
    assert all(grads[k].shape == s for k, s in module.PARAM_SHAPES.items())


def test_step_layer_passes_no_gradient_and_warns() -> None:
    spec = Spec("stepnet", 2, (Layer.of(3, "step"), Layer.of(1, "sigmoid")), "mse")
    module = module_for(spec)
    assert "no gradient flows" in module.__doc__
    params = module.init_params(seed=1)
    X = np.random.default_rng(0).normal(size=(6, 2))
    Y = np.random.default_rng(1).uniform(size=(6, 1))
    _, grads = module.loss_and_grad(params, X, Y)
    assert np.all(grads["W1"] == 0) and np.all(grads["b1"] == 0)
    assert np.any(grads["W2"] != 0)
