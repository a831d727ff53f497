"""Second order: hvp (forward-over-reverse, the R-operator on the IR) and hessian.

Independent checks:
* hvp against central differences of the module's own gradient along V,
  (g(p + εV) − g(p − εV)) / 2ε with ε = 1e-5: truncation ε²·|g'''|/6 ~ 1e-10 and rounding
  eps·|g|/ε ~ 1e-11 for values of order 1, so a relative tolerance of 1e-6 has a wide margin while a
  missing term (an error of order 1) fails it;
* on 2-2-1 nets, the full hessian against ``sympy.hessian`` of the expanded per-sample cost
  (tests/oracles/naive.py: no intermediate symbols, no rewrites), averaged over the batch and
  evaluated at 30 digits, to 1e-10;
* hessian symmetric to 1e-12 (relative), and the array-api module's hvp equal to NumPy's to 1e-12.
"""

from __future__ import annotations

import types
from functools import cache

import numpy as np
import pytest
import sympy as sp

from symprop.emit import render
from symprop.spec import Layer, Spec, SpecError
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus
from symprop.tools.check import load_module, random_problem
from tests.oracles.naive import expanded_cost
from tests.support import EXAMPLES, NUMPY_MODES, spec_for

TOL_FD = 1e-6


@cache
def module(spec: Spec, target: str = "numpy", mode: str = "auto") -> types.ModuleType:
    name = f"{spec.name}_so_{target.replace('-', '_')}_{mode}"
    return load_module(render(spec, mode, target, second_order=True), name)


def fd_hvp(m: types.ModuleType, params: dict, X: np.ndarray, Y: np.ndarray, V: dict, eps: float = 1e-5) -> dict:
    gp = m.loss_and_grad({k: params[k] + eps * V[k] for k in params}, X, Y)[1]
    gm = m.loss_and_grad({k: params[k] - eps * V[k] for k in params}, X, Y)[1]
    return {k: (gp[k] - gm[k]) / (2 * eps) for k in gp}


SPECS = [
    *(
        spec_for(a, loss)
        for a in ("sigmoid", "tanh", "softplus", "gaussian", "custom")
        for loss in ("mse", "bce", "softmax_ce")
    ),
    spec_for("relu", "custom"),
    spec_for("leaky_relu", "sse"),
    spec_for("piecewise_linear", "mse"),
    Spec("with_l2", 3, (Layer.of(4, "tanh"), Layer.of(2, "sigmoid")), "mse", l2=0.05),
]


@pytest.mark.parametrize("mode", NUMPY_MODES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_hvp_matches_finite_differences_of_the_gradient(spec: Spec, mode: str) -> None:
    m = module(spec, "numpy", mode)
    params, X, Y = random_problem(spec, 3)
    V = {k: np.random.default_rng(7).normal(size=v.shape) for k, v in params.items()}
    C, grads, hv = m.hvp(params, X, Y, V)
    C0, grads0 = m.loss_and_grad(params, X, Y)
    # the same cost and gradient as loss_and_grad (up to rounding: hvp's CSE sees more statements)
    assert pytest.approx(C0, rel=1e-13) == C and all(
        np.allclose(grads[k], grads0[k], rtol=1e-12, atol=1e-14) for k in grads
    )
    want = fd_hvp(m, params, X, Y, V)
    scale = max(float(np.max(np.abs(w))) for w in want.values())
    for k in want:
        assert np.max(np.abs(hv[k] - want[k])) <= TOL_FD * max(scale, 1.0), k


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_hvp_on_the_examples_and_the_array_api_target(path) -> None:
    from symprop.spec import load_spec

    spec = load_spec(path)
    m, xp = module(spec), module(spec, "array-api")
    params, X, Y = random_problem(spec, 0)
    V = {k: np.random.default_rng(1).normal(size=v.shape) for k, v in params.items()}
    _, _, hv = m.hvp(params, X, Y, V)
    if spec.n_params <= 500:  # the unrolled transform of the same sweep gives the same numbers
        unrolled = module(spec, "numpy", "unrolled")
        for name in ("hvp", "gnvp"):
            got, want = getattr(unrolled, name)(params, X, Y, V)[2], getattr(m, name)(params, X, Y, V)[2]
            assert all(np.allclose(got[k], want[k], rtol=1e-12, atol=1e-14) for k in want)
    want = fd_hvp(m, params, X, Y, V)
    scale = max(float(np.max(np.abs(w))) for w in want.values())
    assert all(np.max(np.abs(hv[k] - want[k])) <= TOL_FD * max(scale, 1.0) for k in hv)
    _, _, hv_xp = xp.hvp(params, X, Y, V)
    assert all(np.allclose(np.asarray(hv_xp[k]), hv[k], rtol=1e-12, atol=1e-12 * scale) for k in hv)


def _exact(expr: sp.Expr, values: dict[sp.Symbol, float]) -> float:
    plain = expr.replace(lambda e: isinstance(e, Sigmoid | Softplus | Relu | Clip01), lambda e: e._exp_form(e.args[0]))
    plain = plain.replace(lambda e: isinstance(e, LogSumExp), lambda e: sp.log(sp.Add(*[sp.exp(a) for a in e.args])))
    return float(plain.xreplace({k: sp.Float(v, 30) for k, v in values.items()}).evalf(30))


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("mode", NUMPY_MODES)
def test_hessian_equals_sympy_hessian_of_the_expanded_cost(loss: str, mode: str) -> None:
    spec = spec_for("tanh", loss, sizes=(2, 2, 1))
    m = module(spec, "numpy", mode)
    params, X, Y = random_problem(spec, 5, n=3)
    H = m.hessian(params, X, Y)
    assert H.shape == (spec.n_params, spec.n_params)
    assert np.max(np.abs(H - H.T)) <= 1e-12 * max(1.0, float(np.max(np.abs(H))))
    cost, xs, ys, plist = expanded_cost(spec)
    symbols = [s for _, _, s in plist]
    hess = sp.hessian(cost, symbols)
    values = {s: float(params[name][index]) for name, index, s in plist}
    want = np.zeros_like(H)
    for k in range(X.shape[0]):
        point = values | {x: float(X[k, i]) for i, x in enumerate(xs)} | {y: float(Y[k, j]) for j, y in enumerate(ys)}
        want += np.array([[_exact(hess[r, c], point) for c in range(len(symbols))] for r in range(len(symbols))])
    want /= X.shape[0]
    assert np.max(np.abs(H - want)) <= 1e-10 * max(1.0, float(np.max(np.abs(want))))
    # and hvp is the Hessian times V, in the flat order W1 row-major, b1, W2, b2
    V = {k: np.random.default_rng(8).normal(size=v.shape) for k, v in params.items()}
    flat = np.concatenate([V[k].ravel() for k in spec.param_shapes])
    hv = m.hvp(params, X, Y, V)[2]
    assert np.allclose(np.concatenate([hv[k].ravel() for k in spec.param_shapes]), H @ flat, rtol=1e-12, atol=1e-13)


def test_hessian_is_refused_above_5000_parameters_and_the_c_target_says_so() -> None:
    big = Spec("big", 60, (Layer.of(80, "tanh"), Layer.of(2, "identity")), "mse")
    m = load_module(render(big, "vectorized", second_order=True), "big")
    params, X, Y = random_problem(big, 0)
    with pytest.raises(ValueError, match="over 5,000"):
        m.hessian(params, X, Y)
    from symprop.emit import render_files

    with pytest.raises(SpecError, match="not available for --target c"):
        render_files(spec_for("tanh", "mse"), "auto", "c", second_order=True)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gnvp_is_positive_semidefinite(spec: Spec) -> None:
    """Every loss here is convex in the output, so V·G V >= 0 for any V (up to rounding)."""
    m = module(spec)
    params, X, Y = random_problem(spec, 4)
    rng = np.random.default_rng(11)
    for _ in range(5):
        V = {k: rng.normal(size=v.shape) for k, v in params.items()}
        _, _, gv = m.gnvp(params, X, Y, V)
        quad = sum(float(np.sum(V[k] * gv[k])) for k in V)
        scale = sum(float(np.sum(np.abs(V[k] * gv[k]))) for k in V)
        assert quad >= -1e-12 * max(scale, 1.0)


@pytest.mark.parametrize(
    "spec",
    [
        Spec("one_linear", 3, (Layer.of(2, "identity"),), "mse"),
        Spec("one_softmax", 3, (Layer.of(3, "identity"),), "softmax_ce"),
        Spec("one_logistic", 3, (Layer.of(1, "sigmoid"),), "bce"),
    ],
    ids=lambda s: s.name,
)
def test_gnvp_equals_hvp_where_the_network_is_linear_in_each_output(spec: Spec) -> None:
    """One layer with a canonical link: the network's own second derivatives vanish, so G = H."""
    m, xp = module(spec), module(spec, "array-api")
    params, X, Y = random_problem(spec, 2)
    V = {k: np.random.default_rng(3).normal(size=v.shape) for k, v in params.items()}
    _, _, hv = m.hvp(params, X, Y, V)
    _, _, gv = m.gnvp(params, X, Y, V)
    _, _, gv_xp = xp.gnvp(params, X, Y, V)
    for k in hv:
        assert np.allclose(gv[k], hv[k], rtol=1e-12, atol=1e-14) and np.allclose(
            np.asarray(gv_xp[k]), gv[k], rtol=1e-12
        )


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown", "sympy"])
def test_explain_second_order_shows_the_modules_sweep(fmt: str) -> None:
    """A view of the hvp function: every R statement the module computes, in every format."""
    from symprop.explain import explain
    from symprop.spec import load_spec

    spec = load_spec(next(p for p in EXAMPLES if p.stem == "xor"))
    out = explain(spec, fmt, second=True)
    source = render(spec, "vectorized", second_order=True)
    for name in ("RA1", "RD2", "RdW2", "Rdb1"):
        assert name in out and f"{name} =" in source
    if fmt == "sympy":
        lines = dict(line.split(" = ", 1) for line in out.splitlines())
        assert sp.sympify(lines["RA1"]).free_symbols == {sp.Symbol(n) for n in ("A1", "RZ1")}


@pytest.mark.parametrize("namespace", ["array_api_strict", "torch"])
@pytest.mark.parametrize(
    "spec",
    [
        Spec("hess_bce", 2, (Layer.of(3, "tanh"), Layer.of(2, "sigmoid")), "bce"),
        Spec("hess_softmax", 3, (Layer.of(2, "softplus"), Layer.of(3, "identity")), "softmax_ce", l2=0.1),
        Spec("hess_step", 2, (Layer.of(2, "step"), Layer.of(2, "tanh")), "mse"),
    ],
    ids=lambda s: s.name if isinstance(s, Spec) else s,
)
def test_array_api_hessian_equals_numpy_and_finite_differences(spec: Spec, namespace: str) -> None:
    """The array-API module's hessian() (README: --target array-api --second-order) in a strict
    namespace and in torch: equal to the NumPy module's to 1e-12 (the same sweep, other arrays),
    and each column to central differences of the gradient along that parameter (ε = 1e-5: error
    ~ ε² + eps/ε ~ 1e-10; tolerance 1e-6 as for hvp above)."""
    xp = pytest.importorskip(namespace)
    a = module(spec, "array-api")
    n = module(spec, "numpy", "vectorized")
    params, X, Y = random_problem(spec, 2)
    to = (lambda v: xp.asarray(v)) if namespace == "array_api_strict" else (lambda v: xp.tensor(v))
    H = np.asarray(a.hessian({k: to(v) for k, v in params.items()}, to(X), to(Y)))
    H_numpy = n.hessian(params, X, Y)
    assert H.shape == H_numpy.shape == (spec.n_params, spec.n_params)
    assert np.max(np.abs(H - H_numpy)) <= 1e-12 * max(1.0, float(np.max(np.abs(H_numpy))))
    eps, k = 1e-5, 0
    for name, shape in spec.param_shapes.items():
        for index in np.ndindex(*shape):
            V = {key: np.zeros(s) for key, s in spec.param_shapes.items()}
            V[name][index] = 1.0
            want = np.concatenate([g.ravel() for g in fd_hvp(n, params, X, Y, V, eps).values()])
            assert np.max(np.abs(H[:, k] - want)) <= 1e-6 * max(1.0, float(np.max(np.abs(want)))), (name, index)
            k += 1
