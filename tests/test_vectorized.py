"""Vectorized mode: same contract and numbers as unrolled mode, right gradients, dtypes kept.

Tolerances:
* modes agree to 1e-12 relative to each array's scale (max(1, max |value|)), float64: both
  evaluate the same SymPy expressions; only the summation order of the weighted sums differs
  (matmul vs. term by term), which moves results by a few eps ~ 1e-16 for these small nets,
  so 1e-12 leaves a factor ~1000 while any wrong term or factor shows up near 1.
* finite differences: symprop.tools.check.TOLERANCE (1e-5 relative; the floor is the finite difference's
  own error estimate), justified in
  symprop/check.py.
* float32: the gradient is compared with the float64 one to 1e-3 relative to the array's
  scale; float32 has eps 1.2e-7 and these nets lose at most a few hundred eps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from functools import cache

import numpy as np
import pytest
import sympy as sp

from symprop.cli import main
from symprop.emit import AUTO_UNROLLED_MAX_PARAMS, UNROLLED_MAX_PARAMS, choose_mode, render
from symprop.spec import Layer, Spec, SpecError, load_spec
from symprop.symbolic.functions import LogSumExp
from symprop.symbolic.layer_math import softmax_math
from symprop.tools.check import compare, load_module, random_problem
from tests.support import ACTIVATIONS, EXAMPLES, LOSSES, ROOT, module_for, spec_for

GRID = [(a, loss) for a in ACTIVATIONS for loss in LOSSES]


@cache
def vectorized_source(spec: Spec) -> str:
    return render(spec, "vectorized")


@cache
def vectorized(spec: Spec) -> types.ModuleType:
    return load_module(vectorized_source(spec), spec.name)


def _scaled_error(got: np.ndarray | float, want: np.ndarray | float) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def assert_modes_agree(spec: Spec, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    unr, vec = module_for(spec), vectorized(spec)  # module_for(spec) is unrolled, cached with test_gradients
    assert vec.LAYER_SIZES == unr.LAYER_SIZES
    assert vec.PARAM_SHAPES == unr.PARAM_SHAPES
    for seed in seeds:
        params, X, Y = random_problem(spec, seed, n=7)
        value_u, grads_u = unr.loss_and_grad(params, X, Y)
        value_v, grads_v = vec.loss_and_grad(params, X, Y)
        errors = {
            "forward": _scaled_error(vec.forward(params, X), unr.forward(params, X)),
            "loss": _scaled_error(vec.loss(params, X, Y), unr.loss(params, X, Y)),
            "loss_and_grad value": _scaled_error(value_v, value_u),
        }
        assert list(grads_v) == list(grads_u)
        errors |= {name: _scaled_error(grads_v[name], grads_u[name]) for name in grads_u}
        assert max(errors.values()) < 1e-12, (seed, errors)


# examples over the unrolled-mode limit have no unrolled module to compare with (not a skip: CI
# turns every skip into a failure)
@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if load_spec(p).n_params <= UNROLLED_MAX_PARAMS], ids=lambda p: p.stem
)
def test_modes_agree_on_examples(path) -> None:
    assert_modes_agree(load_spec(path))


@pytest.mark.parametrize(("activation", "loss"), GRID)
def test_modes_agree_on_activation_loss_grid(activation: str, loss: str) -> None:
    assert_modes_agree(spec_for(activation, loss), seeds=(0, 1))


@pytest.mark.parametrize(("activation", "loss"), GRID)
def test_vectorized_gradient_matches_finite_differences(activation: str, loss: str) -> None:
    spec = spec_for(activation, loss)
    result = compare(vectorized(spec), spec, seeds=(0, 1), max_entries=None)
    assert result.passed, result
    assert all(r.checked == 2 * np.prod(r.shape) for r in result.reports)


EDGE_SPECS = {
    "one layer, bce": Spec("logreg", 3, (Layer.of(2, "sigmoid"),), "bce"),
    "one layer, softmax_ce": Spec("softreg", 3, (Layer.of(3, "identity"),), "softmax_ce"),
    "constant f' and delta": Spec(
        "lin", 2, (Layer.of(2, "custom", expr="0.5*x + 1"), Layer.of(1, "identity")), "custom", "a"
    ),
    "constant activation": Spec("const", 2, (Layer.of(2, "custom", expr="2"), Layer.of(1, "identity")), "mse"),
    "delta in y only": Spec("ylin", 2, (Layer.of(2, "tanh"), Layer.of(2, "identity")), "custom", "a*y"),
    "Heaviside(x) with H(0) = 1/2": Spec(
        "heavi", 2, (Layer.of(3, "custom", expr="x*Heaviside(x)"), Layer.of(1, "identity")), "mse"
    ),
    "relu, step, leaky, softplus": Spec(
        "deep",
        2,
        (Layer.of(3, "relu"), Layer.of(3, "step"), Layer.of(2, "leaky_relu"), Layer.of(2, "softplus")),
        "sse",
    ),
}


@pytest.mark.parametrize("case", list(EDGE_SPECS))
def test_edge_cases_agree_and_pass_finite_differences(case: str) -> None:
    """One-layer nets, constant f', activation and output delta (np.full), masks, blocked gradients."""
    spec = EDGE_SPECS[case]
    assert_modes_agree(spec)
    result = compare(vectorized(spec), spec, seeds=(0,), max_entries=None)
    assert result.passed, result


def test_the_agreement_check_can_fail() -> None:
    """A vectorized module whose sigmoid derivative has one factor a too many is caught."""
    spec = spec_for("sigmoid", "mse")
    source = vectorized_source(spec)
    assert source.count("    D1 *= A1\n") == 1  # the derivative is applied factor by factor
    broken = load_module(source.replace("    D1 *= A1\n", "    D1 *= A1*A1\n"), spec.name)
    params, X, Y = random_problem(spec, 0, n=7)
    _, good = module_for(spec).loss_and_grad(params, X, Y)
    _, bad = broken.loss_and_grad(params, X, Y)
    assert _scaled_error(bad["W1"], good["W1"]) > 1e-3
    assert _scaled_error(bad["W2"], good["W2"]) < 1e-12


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_float32_in_float32_out(activation: str) -> None:
    """No silent upcast: every output is float32, and close to the float64 result."""
    for loss in ("mse", "bce", "softmax_ce", "custom"):
        spec = spec_for(activation, loss)
        module = vectorized(spec)
        params, X, Y = random_problem(spec, 5, n=16)
        params32 = {k: v.astype(np.float32) for k, v in params.items()}
        X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
        assert module.forward(params32, X32).dtype == np.float32
        value32, grads32 = module.loss_and_grad(params32, X32, Y32)
        value64, grads64 = module.loss_and_grad(params32 | {}, X32.astype(np.float64), Y)
        assert isinstance(value32, float) and isinstance(module.loss(params32, X32, Y32), float)
        assert {k: g.dtype for k, g in grads32.items()} == {k: np.dtype(np.float32) for k in spec.param_shapes}
        assert {k: g.dtype for k, g in grads64.items()} == {k: np.dtype(np.float64) for k in spec.param_shapes}
        assert _scaled_error(value32, value64) < 1e-3
        assert max(_scaled_error(grads32[k], grads64[k]) for k in grads64) < 1e-3, (activation, loss)


def test_float32_constants_are_python_literals() -> None:
    """NumPy scalars (np.float64(...), np.sqrt(2), np.pi) would upcast float32 arrays."""
    for activation, loss in GRID:
        source = vectorized_source(spec_for(activation, loss)).split("\ndef forward(")[1]
        for token in ("np.float64", "np.sqrt(", "np.pi", "np.e ", "np.asarray(0", "dtype=float"):
            assert token not in source, (activation, loss, token)


def test_softmax_gradient_derived_with_plain_sympy() -> None:
    """d/dz_j of -sum_j y_j log(exp(z_j)/sum_i exp(z_i)), by sympy.diff, equals softmax_math's deltas (K=3)."""
    loss, deltas, zs, ys = softmax_math(3)
    z, y = sp.symbols("z1:4", real=True), sp.symbols("y1:4", real=True)
    assert list(zs) == list(z) and list(ys) == list(y)
    total = sum(sp.exp(zi) for zi in z)
    cost = -sum(yj * sp.log(sp.exp(zj) / total) for yj, zj in zip(y, z, strict=True))
    as_log = {LogSumExp(*z): sp.log(total)}
    assert sp.simplify(sp.expand_log(cost - loss.xreplace(as_log), force=True)) == 0
    for j in range(3):
        derived = sp.diff(cost, z[j])
        assert sp.simplify(derived - deltas[j].xreplace(as_log)) == 0
        # the check can fail: softmax - y is the gradient only when sum(y) = 1
        softmax_minus_y = sp.exp(z[j]) / total - y[j]
        assert sp.simplify(derived - softmax_minus_y) != 0
        assert sp.simplify((derived - softmax_minus_y).subs(y[2], 1 - y[0] - y[1])) == 0


def test_softmax_ce_is_stable_for_huge_logits() -> None:
    spec = Spec("wide", 3, (Layer.of(4, "tanh"), Layer.of(3, "identity")), "softmax_ce")
    module = vectorized(spec)
    params, X, Y = random_problem(spec, 0, n=6)
    params["W2"] *= 1000.0  # logits up to ~|3000|: exp would overflow without the shift
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grads = module.loss_and_grad(params, X, Y)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert value == pytest.approx(module_for(spec).loss(params, X, Y), rel=1e-12)


def test_sigmoid_is_stable_at_extreme_inputs() -> None:
    spec = Spec("sig", 2, (Layer.of(3, "sigmoid", beta=3.0), Layer.of(2, "sigmoid")), "bce")
    module = vectorized(spec)
    params, X, Y = random_problem(spec, 1, n=6)
    Y = np.where(Y > 0.5, 1.0, 0.0)  # targets exactly 0 and 1
    for dtype in (np.float32, np.float64):
        p = {k: v.astype(dtype) for k, v in params.items()}
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value, grads = module.loss_and_grad(p, (X * 1e3).astype(dtype), Y.astype(dtype))
        assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())


def relu_reference(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """A two-layer relu/identity mse net by hand, the mask read from z (z > 0), relu'(0) = 0."""
    Z1 = X @ params["W1"].T + params["b1"]
    A1 = np.maximum(Z1, 0.0)
    Z2 = A1 @ params["W2"].T + params["b2"]
    n = X.shape[0]
    D2 = (Z2 - Y) / n
    D1 = (D2 @ params["W2"]) * (Z1 > 0)
    grads = {"W1": D1.T @ X, "b1": D1.sum(axis=0), "W2": D2.T @ A1, "b2": D2.sum(axis=0)}
    return float(0.5 * np.sum((Z2 - Y) ** 2) / n), grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_mask_read_from_a_matches_the_mask_of_z_at_the_kinks(dtype: type) -> None:
    """relu' is written 1[a > 0] (a = max(0, z)), so z is not kept after the forward pass and a takes
    its buffer. The mask must still be that of z > 0, relu'(0) = 0, also where z is exactly 0: here
    half the pre-activations are exactly 0 (zero input rows and zero biases), the others of both signs.
    Checked against a NumPy reference that reads z, in the vectorized, unrolled and array-API
    modules; float64 to 1e-12 of each array's scale (summation order only), float32 to 1e-5
    (a few float32 roundings of sums of 3 terms; a wrong mask moves a gradient entry by ~1e-1)."""

    spec = Spec("kinks", 3, (Layer.of(4, "relu"), Layer.of(2, "identity")), "mse")
    params, X, Y = random_problem(spec, 3, n=8)
    params["b1"][:] = 0.0
    X[::2] = 0.0  # every pre-activation of these rows is exactly 0
    params, X, Y = {k: v.astype(dtype) for k, v in params.items()}, X.astype(dtype), Y.astype(dtype)
    Z1 = X @ params["W1"].T
    assert np.sum(Z1 == 0) == 16 and np.any(Z1 > 0) and np.any(Z1 < 0)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    want_value, want = relu_reference(p64, X.astype(np.float64), Y.astype(np.float64))
    source = vectorized_source(spec)
    assert "_relu(Z1, out=Z1)" in source and "Z1 > 0" not in source  # z's buffer reused, the mask from a
    tol = 1e-12 if dtype == np.float64 else 1e-5
    modules = [vectorized(spec), module_for(spec), load_module(render(spec, target="array-api"), "kinks_aa")]
    for module in modules:
        value, grads = module.loss_and_grad(params, X, Y)
        assert _scaled_error(float(value), want_value) < tol
        for k in want:
            assert _scaled_error(np.asarray(grads[k]), want[k]) < tol, (module.__name__, k)


def test_vectorized_module_validates_inputs() -> None:
    spec = spec_for("tanh", "mse")
    module = vectorized(spec)
    params, X, Y = random_problem(spec, 0)
    with pytest.raises(ValueError, match=r"Y has shape \(6,\), expected \(6, 2\)"):
        module.loss_and_grad(params, X, Y[:, 0])
    with pytest.raises(TypeError, match="X has dtype complex128; use float32, float64 or integers"):
        module.forward(params, X.astype(np.complex128))
    with pytest.raises(TypeError, match="X has dtype float16"):
        module.forward(params, X.astype(np.float16))
    with pytest.raises(ValueError, match="missing keys"):
        module.loss({k: v for k, v in params.items() if k != "b2"}, X, Y)


def test_readable_names_and_one_block_per_layer() -> None:
    spec = spec_for("sigmoid", "softmax_ce", sizes=(3, 5, 4, 3))
    source = render(spec, "vectorized")
    for l in (1, 2, 3):
        assert f"    Z{l} = " in source and f"    A{l} = " in source and f"    dW{l} = np.dot(D{l}.T, " in source
        assert source.count(f"    db{l} = np.dot(np.ones(n, dtype), D{l})") == 1
    assert "D2 = D3 @ W3" in source and "D1 = D2 @ W2" in source
    assert "for " not in source.split("def loss_and_grad")[1]  # unrolled by Jinja, not looped at runtime
    assert "_logsumexp" not in source and "np.max(Z3, axis=1, keepdims=True)" in source


def test_large_net_renders_and_runs_in_vectorized_mode() -> None:
    """784-256-128-10 is over the unrolled limit: auto must choose vectorized, and it must run."""
    spec = Spec(
        "mnist",
        784,
        (Layer.of(256, "sigmoid"), Layer.of(128, "relu"), Layer.of(10, "identity")),
        "softmax_ce",
    )
    assert spec.n_params == 235_146
    assert choose_mode(spec) == "vectorized"
    with pytest.raises(SpecError, match="unrolled-mode limit"):
        render(spec, "unrolled")
    module = load_module(render(spec, "auto"), spec.name)
    rng = np.random.default_rng(0)
    params = module.init_params(seed=0, dtype=np.float32)
    X = rng.normal(size=(8, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=8)]
    value, grads = module.loss_and_grad(params, X, Y)
    assert 0 < value < 10 and all(
        grads[k].shape == s and grads[k].dtype == np.float32 for k, s in spec.param_shapes.items()
    )


@pytest.mark.parametrize("sizes", [(1, 1, 1), (2, 3, 1), (4, 16, 16, 3), (16, 64, 64, 10)])
def test_auto_follows_the_documented_rule(sizes: tuple[int, ...]) -> None:
    spec = spec_for("tanh", "mse", sizes=sizes)
    expected = "unrolled" if spec.n_params <= AUTO_UNROLLED_MAX_PARAMS else "vectorized"
    assert choose_mode(spec) == expected
    if spec.n_params < 200:  # rendering bigger unrolled modules only costs time here
        assert render(spec, "auto") == render(spec, expected)
        assert f"({expected} mode)" in render(spec, "auto")


def test_cli_mode_default_is_auto(tmp_path, capsys) -> None:
    assert main(["generate", str(ROOT / "examples" / "xor.toml"), "-o", str(tmp_path)]) == 0
    spec = load_spec(ROOT / "examples" / "xor.toml")
    assert (tmp_path / "xor.py").read_text() == render(spec, "auto")
    assert main(["generate", str(ROOT / "examples" / "xor.toml"), "-o", str(tmp_path), "--mode", "vectorized"]) == 0
    assert (tmp_path / "xor.py").read_text() == render(spec, "vectorized")
    assert main(["generate", str(ROOT / "examples" / "xor.toml"), "--mode", "fast"]) == 2
    assert "--mode" in capsys.readouterr().err


def test_vectorized_output_is_deterministic() -> None:
    """Same spec -> same bytes, in this process and in fresh ones with other hash seeds."""
    paths = [str(ROOT / "examples" / f"{name}.toml") for name in ("xor", "iris_classifier", "bce_relu")]
    expected = "".join(render(load_spec(p), "vectorized") for p in paths)
    assert "".join(render(load_spec(p), "vectorized") for p in paths) == expected
    code = (
        "import sys; from symprop.spec import load_spec; from symprop.emit import render; "
        "sys.stdout.write(''.join(render(load_spec(p), 'vectorized') for p in sys.argv[1:]))"
    )
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, env=env, check=True)
        assert out.stdout == expected
