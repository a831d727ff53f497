"""Numerical stability at extreme inputs, strict input checks in the emitted module, determinism."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from symprop.emit import render
from symprop.spec import Layer, Spec, load_spec
from tests.support import EXAMPLES, NUMPY_MODES, module_for

MODES = NUMPY_MODES

STABLE = [
    Spec("sig_big_beta", 3, (Layer.of(4, "sigmoid", beta=25.0), Layer.of(2, "sigmoid", beta=-3.0)), "mse"),
    Spec("bce_logits", 3, (Layer.of(4, "tanh"), Layer.of(2, "sigmoid", beta=2.0)), "bce"),
    Spec("softmax", 3, (Layer.of(4, "softplus"), Layer.of(3, "identity")), "softmax_ce"),
    Spec("narrow_gauss", 3, (Layer.of(4, "gaussian", sigma=0.05), Layer.of(2, "tanh")), "sse"),
    Spec("bce_custom_sigmoid", 3, (Layer.of(3, "relu"), Layer.of(2, "custom", expr="1/(1 + exp(-x))")), "bce"),
    Spec("bce_clipped", 3, (Layer.of(3, "leaky_relu"), Layer.of(2, "piecewise_linear")), "bce"),
]


def extreme_problem(spec: Spec, dtype: type) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Inputs scaled by 1e3 (pre-activations up to ~1e3) and targets exactly 0 and 1."""
    rng = np.random.default_rng(5)
    params = {k: rng.normal(0, 0.5, size=s).astype(dtype) for k, s in spec.param_shapes.items()}
    X = (1e3 * rng.normal(size=(32, spec.inputs))).astype(dtype)
    Y = np.zeros((32, spec.outputs), dtype=dtype)
    Y[np.arange(32), rng.integers(0, spec.outputs, size=32)] = 1.0
    return params, X, Y


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spec", STABLE, ids=lambda s: s.name)
def test_no_overflow_or_invalid_at_extreme_inputs(spec: Spec, dtype: type, mode: str) -> None:
    module = module_for(spec, mode)
    params, X, Y = extreme_problem(spec, dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        z1 = X @ params["W1"].T + params["b1"]
        assert np.abs(z1).max() > 300  # really extreme
        value, grads = module.loss_and_grad(params, X, Y)
        out = module.forward(params, X)
    assert np.isfinite(value) and np.all(np.isfinite(out))
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_fused_bce_gradient_is_sigmoid_minus_target_exactly() -> None:
    """bce on a sigmoid output: dC/db = mean(beta * (sigmoid(beta z) - y)), even where z is huge."""
    spec = Spec("fused", 1, (Layer.of(1, "sigmoid", beta=2.0),), "bce")
    module = module_for(spec)
    assert "log_sigmoid" in module.__doc__
    params = {"W1": np.array([[1.0]]), "b1": np.array([0.0])}
    X = np.array([[-800.0], [-3.0], [0.0], [4.0], [900.0]])
    Y = np.array([[1.0], [0.0], [1.0], [1.0], [0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        value, grads = module.loss_and_grad(params, X, Y)
    z = 2.0 * X[:, 0]
    assert grads["b1"][0] == pytest.approx(np.mean(2.0 * (0.5 + 0.5 * np.tanh(0.5 * z) - Y[:, 0])), rel=1e-14)
    # the loss is the logits form: z = -1600 with y = 1 costs 1600, no log(0)
    expected = np.mean(Y[:, 0] * np.logaddexp(0, -z) + (1 - Y[:, 0]) * np.logaddexp(0, z))
    assert value == pytest.approx(expected, rel=1e-14)


XOR = Spec("xor", 2, (Layer.of(3, "sigmoid"), Layer.of(1, "sigmoid")), "mse")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda p, X, Y: (p, X[:, 0], Y), "X has shape (5,), expected (n, 2)"),
        (lambda p, X, Y: (p, X[:, :1], Y), "X has shape (5, 1), expected (5, 2)"),
        (lambda p, X, Y: (p, X, Y[:, 0]), "Y has shape (5,), expected (5, 1)"),
        (lambda p, X, Y: (p, X, Y[:4]), "Y has shape (4, 1), expected (5, 1)"),
        (lambda p, X, Y: ({k: v for k, v in p.items() if k != "b2"}, X, Y), "missing keys ['b2']"),
        (lambda p, X, Y: (p | {"W3": p["W2"]}, X, Y), "unexpected keys ['W3']"),
        (lambda p, X, Y: (p | {"W1": p["W1"].T}, X, Y), "params['W1'] has shape (2, 3), expected (3, 2)"),
        (lambda p, X, Y: (p | {"b1": p["b1"][:, None]}, X, Y), "params['b1'] has shape (3, 1), expected (3,)"),
        (lambda p, X, Y: (p, X.astype(np.complex64), Y), "X has dtype complex64"),
        (lambda p, X, Y: (p | {"W2": np.ones((1, 3), dtype=bool)}, X, Y), "params['W2'] has dtype bool"),
        (lambda p, X, Y: (p, X.astype(np.longdouble), Y), f"X has dtype {np.dtype(np.longdouble)}"),
        (lambda p, X, Y: (p, X[:0], Y[:0]), "the batch is empty"),
    ],
)
def test_emitted_module_rejects_wrong_inputs(mutate, needle: str, mode: str) -> None:
    module = module_for(XOR, mode)
    params = module.init_params(seed=0)
    X = np.ones((5, 2))
    Y = np.ones((5, 1))
    p, x, y = mutate(params, X, Y)
    error = TypeError if "dtype" in needle else ValueError  # a wrong type is a TypeError, a wrong shape a ValueError
    with pytest.raises(error) as info:
        module.loss_and_grad(p, x, y)
    assert needle in str(info.value)
    if y is Y:  # forward checks X and params the same way
        with pytest.raises(error):
            module.forward(p, x)


@pytest.mark.parametrize("mode", MODES)
def test_emitted_module_takes_integers_and_any_mapping(tmp_path, mode: str) -> None:
    """Integer X (and params) are read as float64; params may be any Mapping, e.g. np.load of an .npz."""
    module = module_for(XOR, mode)
    params = module.init_params(seed=3)
    X = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    Y = np.array([[1], [1], [0], [0]])
    want_C, want = module.loss_and_grad(params, X.astype(np.float64), Y.astype(np.float64))
    np.savez(tmp_path / "p.npz", **params)
    with np.load(tmp_path / "p.npz") as loaded:
        C, grads = module.loss_and_grad(loaded, X, Y)
    assert want_C == C and all(np.array_equal(grads[k], want[k]) and grads[k].dtype == np.float64 for k in want)
    with pytest.raises(TypeError, match="params must be a mapping of"):
        module.loss(list(params.values()), X, Y)


RENDER = "import sys; from symprop.spec import load_spec; from symprop.emit import render; sys.stdout.write(render(load_spec(sys.argv[1]), sys.argv[2]))"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem in ("zoo", "iris_classifier")], ids=lambda p: p.stem)
def test_same_spec_gives_the_same_bytes_whatever_the_hash_seed(path, mode: str) -> None:
    expected = render(load_spec(path), mode)
    for seed in ("0", "1", "4242"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", RENDER, str(path), mode], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, f"PYTHONHASHSEED={seed} changed the output for {path.name}"


REWRITE_CASES = [
    ("1/(1 + exp(-2*x))", "sigmoid"),
    ("exp(x)/(1 + exp(x))", "sigmoid"),
    ("log(1 + exp(x))", "softplus"),
    ("log(1 + x**2)", "log1p"),
    ("log(1/(1 + exp(-x)))", "log_sigmoid"),
    ("1 - 1/(1 + exp(-x))", "one_minus_sigmoid"),
]


@pytest.mark.parametrize("text,name", REWRITE_CASES)
def test_each_rewrite_fires_and_preserves_the_value(text: str, name: str) -> None:

    from symprop.spec.safe_expr import parse_expr
    from symprop.symbolic.layer_math import X, _evaluate, apply_rewrites

    original = parse_expr(text, {"x": X}, "expr")
    rewritten, fired = apply_rewrites(original)
    assert name in fired
    assert rewritten != original
    for value in (-3.0, -0.4, 0.0, 0.7, 5.0):
        assert _evaluate(rewritten, {X: value}) == pytest.approx(float(original.subs(X, value).evalf(30)), rel=1e-13)
