"""Per-sample weights in the emitted modules: C = Σ s_k C_k / Σ s_k, derived like everything else.

Checked three independent ways: central finite differences of the weighted ``loss``; the
unweighted module on rows repeated s_k times (integer weights); and an explicit NumPy weighted
mean of the per-row losses computed by the unweighted module one row at a time.
"""

from __future__ import annotations

import types
from functools import cache

import numpy as np
import pytest

from symprop.emit import render, render_files
from symprop.spec import Spec
from symprop.tools.check import load_module
from tests.support import LOSSES, NUMPY_MODES, module_for, spec_for

CASES = [(a, loss) for loss in LOSSES for a in ("sigmoid", "relu", "tanh")] + [("custom", "mse"), ("step", "mse")]


@cache
def array_api_module(spec: Spec) -> types.ModuleType:
    return load_module(render(spec, target="array-api"), spec.name + "_weighted_array_api")


def modules(spec: Spec) -> list[types.ModuleType]:
    return [module_for(spec, mode) for mode in NUMPY_MODES] + [array_api_module(spec)]


def problem(spec: Spec, n: int = 7, seed: int = 3) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.8, size=s) for k, s in spec.param_shapes.items()}
    X = rng.normal(size=(n, spec.inputs))
    if spec.loss == "softmax_ce":
        Y = np.eye(spec.outputs)[rng.integers(0, spec.outputs, n)]
    elif spec.loss == "bce":
        Y = rng.integers(0, 2, size=(n, spec.outputs)).astype(float)
    else:
        Y = rng.normal(size=(n, spec.outputs))
    return params, X, Y


@pytest.mark.parametrize(("activation", "loss"), CASES)
def test_weighted_gradient_matches_finite_differences(activation: str, loss: str) -> None:
    spec = spec_for(activation, loss)
    params, X, Y = problem(spec)
    s = np.random.default_rng(9).uniform(0.1, 3.0, size=X.shape[0])
    for module in modules(spec):
        C, grads = module.loss_and_grad(params, X, Y, sample_weight=s)
        assert float(C) == pytest.approx(float(module.loss(params, X, Y, sample_weight=s)), rel=1e-12)
        h = 1e-6
        for name, value in params.items():
            for index in list(np.ndindex(value.shape))[:6]:
                up = {k: v.copy() for k, v in params.items()}
                down = {k: v.copy() for k, v in params.items()}
                up[name][index] += h
                down[name][index] -= h
                fd = (
                    float(module.loss(up, X, Y, sample_weight=s)) - float(module.loss(down, X, Y, sample_weight=s))
                ) / (2 * h)
                # central differences: truncation O(h²) ~ 1e-12 and rounding ~ eps·|C|/h ~ 1e-10
                assert float(np.asarray(grads[name])[index]) == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, index)


@pytest.mark.parametrize(("activation", "loss"), CASES)
def test_integer_weights_equal_repeated_rows(activation: str, loss: str) -> None:
    spec = spec_for(activation, loss)
    params, X, Y = problem(spec)
    counts = np.array([1, 3, 0, 2, 1, 4, 2])
    rows = np.repeat(np.arange(X.shape[0]), counts)
    for module in modules(spec):
        C_w, g_w = module.loss_and_grad(params, X, Y, sample_weight=counts)
        C_r, g_r = module.loss_and_grad(params, X[rows], Y[rows])
        # the same sums in another order: a few ulps of the largest term
        assert float(C_w) == pytest.approx(float(C_r), rel=1e-12, abs=1e-14)
        for name in params:
            np.testing.assert_allclose(np.asarray(g_w[name]), np.asarray(g_r[name]), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_loss_is_the_weighted_mean_of_row_losses(loss: str) -> None:
    spec = spec_for("tanh", loss)
    params, X, Y = problem(spec)
    s = np.random.default_rng(1).uniform(0.0, 2.0, size=X.shape[0])
    for module in modules(spec):  # spec_for has no l2: C is the pure data mean
        per_row = np.array([float(module.loss(params, X[k : k + 1], Y[k : k + 1])) for k in range(X.shape[0])])
        expected = float(np.sum(s * per_row) / np.sum(s))
        assert float(module.loss(params, X, Y, sample_weight=s)) == pytest.approx(expected, rel=1e-12)
        # no weights and all-equal weights are the plain mean
        plain = float(module.loss(params, X, Y))
        assert plain == pytest.approx(float(np.mean(per_row)), rel=1e-12)
        assert float(module.loss(params, X, Y, sample_weight=np.full(X.shape[0], 2.5))) == pytest.approx(
            plain, rel=1e-12
        )


def test_l2_penalty_is_not_weighted() -> None:
    base = spec_for("sigmoid", "mse")
    spec = Spec(base.name + "_l2", base.inputs, base.layers, base.loss, l2=0.3)
    params, X, Y = problem(spec)
    s = np.arange(1.0, X.shape[0] + 1)
    module = module_for(spec, "vectorized")
    penalty = 0.3 / 2 * sum(float(np.sum(v**2)) for k, v in params.items() if k.startswith("W"))
    unpenalised = module_for(base, "vectorized").loss(params, X, Y, sample_weight=s)
    assert module.loss(params, X, Y, sample_weight=s) == pytest.approx(unpenalised + penalty, rel=1e-12)


@pytest.mark.parametrize(
    ("weights", "error"),
    [
        (np.ones(3), ValueError),  # wrong length
        (np.array([1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), ValueError),
        (np.array([1.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0]), ValueError),
        (np.zeros(7), ValueError),
        (np.array(["a"] * 7), TypeError),
    ],
)
def test_bad_weights_are_refused(weights: np.ndarray, error: type[Exception]) -> None:
    spec = spec_for("tanh", "mse")
    params, X, Y = problem(spec)
    for module in modules(spec)[:-1]:
        with pytest.raises(error):
            module.loss_and_grad(params, X, Y, sample_weight=weights)


def test_float32_weights_keep_float32() -> None:
    spec = spec_for("tanh", "softmax_ce")
    params, X, Y = problem(spec)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    module = module_for(spec, "vectorized")
    _, grads = module.loss_and_grad(p32, X.astype(np.float32), Y.astype(np.float32), sample_weight=np.ones(7))
    assert all(g.dtype == np.float32 for g in grads.values())


def test_c_target_is_unweighted() -> None:
    """The C target keeps the plain mean (no sample_weight): its sources do not change."""
    spec = spec_for("tanh", "mse")
    files = "".join(render_files(spec, target="c").values())
    assert "sample_weight" not in files and "w_k" not in files


def test_constant_output_delta_is_spread_over_rows_and_units() -> None:
    """loss = a with an identity output: δ is the constant 1, so D = w/n alone (no array in it)."""
    from symprop.spec import Layer

    spec = Spec("lin_w", 2, (Layer.of(3, "custom", expr="0.5*x + 1"), Layer.of(2, "identity")), "custom", "a")
    params, X, Y = problem(spec)
    counts = np.array([2, 1, 0, 3, 1, 1, 2])
    rows = np.repeat(np.arange(X.shape[0]), counts)
    for module in modules(spec):
        for weights in (None, counts):
            C, grads = module.loss_and_grad(params, X, Y, sample_weight=weights)
            Xr, _Yr = (X, Y) if weights is None else (X[rows], Y[rows])
            # the reference: the mean over (repeated) rows of the per-row gradient, here by hand:
            # C = mean_k sum_j a2_j, a2 = W2 a1 + b2, a1 = 0.5 z1 + 1, so dC/db2 = (1, 1)
            assert float(C) == pytest.approx(
                float(
                    np.mean(
                        np.sum((0.5 * (Xr @ params["W1"].T + params["b1"]) + 1) @ params["W2"].T + params["b2"], axis=1)
                    )
                ),
                rel=1e-12,
            )
            np.testing.assert_allclose(np.asarray(grads["b2"]), np.ones(2), rtol=1e-12)
