"""The array-API target: one module, any namespace, the NumPy module's numbers.

Every example, in float64, through NumPy, array-api-strict, PyTorch CPU tensors, JAX under
``jax.jit`` and Dask arrays chunked along the batch, equals the NumPy (vectorized) module to
1e-12 relative (the same formulas in the same order of operations up to the namespaces' own
reductions: measured differences are below 4e-15). Results stay in the input's namespace:
``loss`` is a 0-d array, gradients are tensors for torch, Dask arrays stay lazy.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

from symprop.emit import render
from symprop.spec import Layer, Spec, load_spec
from symprop.tools.check import TOLERANCE, compare, float_results, load_module, random_problem
from tests.support import ACTIVATIONS, EXAMPLES, LOSSES, layer, module_for, spec_for

# the namespaces under test (the test extra installs them; a missing one skips this file with its name)
array_api_strict = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")  # what the generated module imports

jax.config.update("jax_enable_x64", True)
TOL = 1e-12


@cache
def xp_module(spec: Spec) -> types.ModuleType:
    return load_module(render(spec, target="array-api"), spec.name + "_array_api")


def to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, da.Array):
        return np.asarray(a.compute())
    return np.asarray(a)


NAMESPACES: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": lambda a: a,
    "array_api_strict": array_api_strict.asarray,
    "torch": torch.asarray,
    "jax": jnp.asarray,
    "dask": lambda a: da.from_array(a, chunks=(4, -1) if a.ndim == 2 else -1),
}


def relative_error(C: Any, grads: dict[str, Any], C0: float, g0: dict[str, np.ndarray]) -> float:
    err = abs(float(to_numpy(C)) - C0) / max(1.0, abs(C0))
    for k, want in g0.items():
        err = max(err, float(np.max(np.abs(to_numpy(grads[k]) - want))) / max(1e-300, float(np.max(np.abs(want)))))
    return err


@pytest.mark.parametrize("namespace", list(NAMESPACES))
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_namespace_equals_the_numpy_module(path, namespace: str) -> None:
    spec = load_spec(path)
    module = xp_module(spec)
    params, X, Y = random_problem(spec, 0, n=12)
    C0, g0 = module_for(spec, "vectorized").loss_and_grad(params, X, Y)
    to = NAMESPACES[namespace]
    fn = jax.jit(module.loss_and_grad) if namespace == "jax" else module.loss_and_grad
    C, grads = fn({k: to(v) for k, v in params.items()}, to(X), to(Y))
    assert relative_error(C, grads, C0, g0) < TOL
    assert set(grads) == set(spec.param_shapes)
    kind = {"torch": torch.Tensor, "dask": da.Array, "jax": jax.Array}.get(namespace)
    if kind is not None:  # results stay in the namespace (Dask: lazy until computed)
        assert isinstance(C, kind) and all(isinstance(g, kind) for g in grads.values())
    assert getattr(C, "ndim", None) == 0  # a 0-d array, not a Python float
    out = module.forward({k: to(v) for k, v in params.items()}, to(X))
    want = module_for(spec, "vectorized").forward(params, X)
    assert np.max(np.abs(to_numpy(out) - want)) <= TOL * max(1.0, float(np.max(np.abs(want))))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_and_loss_in_the_strict_namespace(activation: str, loss: str) -> None:
    """array-api-strict refuses anything outside the standard (NumPy-only calls, mixed bool/float)."""
    spec = spec_for(activation, loss)
    params, X, Y = random_problem(spec, 1)
    C0, g0 = module_for(spec, "vectorized").loss_and_grad(params, X, Y)
    to = array_api_strict.asarray
    C, grads = xp_module(spec).loss_and_grad({k: to(v) for k, v in params.items()}, to(X), to(Y))
    assert relative_error(C, grads, C0, g0) < TOL


def test_the_array_api_module_passes_finite_differences() -> None:
    """Independent of the NumPy module: central differences (symprop.tools.check) on NumPy arrays."""
    for path in EXAMPLES[:3]:
        spec = load_spec(path)
        module = xp_module(spec)
        result = compare(float_results(module), spec, seeds=(0,), max_entries=20)
        assert result.passed and result.max_rel_error < TOLERANCE, result


@pytest.mark.parametrize("activation", [*ACTIVATIONS, "sigmoid, beta 1"])
def test_torch_fused_paths_equal_the_numpy_module(activation: str) -> None:
    """On torch the module takes torch's own fused calls: addmm for Z = A Wᵀ + b (every layer) and
    aten's sigmoid_backward for a sigmoid's error (only where δ = G a(1 - a) exactly). Other
    namespaces take the standard path, which the tests above cover. Compared with the NumPy module
    to 1e-12 in float64 (summation order only) and to 1e-5 of each array's scale in float32 (a few
    hundred float32 roundings; the fused and unfused float32 results differ by ~1e-7)."""
    assert hasattr(torch, "addmm") and hasattr(torch.ops.aten, "sigmoid_backward")
    plain = activation == "sigmoid, beta 1"  # the test grid's sigmoid has beta 1.7: δ = 1.7 G a(1 - a)
    hidden = (Layer.of(5, "sigmoid"), Layer.of(4, "sigmoid")) if plain else (layer(activation, 5), layer(activation, 4))
    spec = Spec("fused", 3, (*hidden, Layer.of(2, "identity")), "mse")
    source = render(spec, target="array-api")
    assert source.count("= _affine(xp, ") == 3
    assert source.count("= _sigmoid_grad(xp, ") == (2 if plain else 0)
    module = xp_module(spec)
    params, X, Y = random_problem(spec, 2, n=9)
    C0, g0 = module_for(spec, "vectorized").loss_and_grad(params, X, Y)
    for dtype, tol in ((torch.float64, TOL), (torch.float32, 1e-5)):
        C, grads = module.loss_and_grad(
            {k: torch.asarray(v, dtype=dtype) for k, v in params.items()},
            torch.asarray(X, dtype=dtype),
            torch.asarray(Y, dtype=dtype),
        )
        assert C.dtype == dtype and relative_error(C, grads, C0, g0) < tol


def test_float32_stays_float32_and_integers_are_float64() -> None:
    spec = load_spec(EXAMPLES[0])
    module = xp_module(spec)
    params, X, Y = random_problem(spec, 0)
    C, grads = module.loss_and_grad(
        {k: torch.asarray(v, dtype=torch.float32) for k, v in params.items()},
        torch.asarray(X, dtype=torch.float32),
        torch.asarray(Y, dtype=torch.float32),
    )
    assert C.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads.values())
    out = module.forward(params, np.round(X * 3).astype(np.int64))
    assert out.dtype == np.float64


def test_bad_inputs_are_refused_like_the_numpy_module() -> None:
    spec = load_spec(EXAMPLES[0])
    module = xp_module(spec)
    params, X, Y = random_problem(spec, 0)
    with pytest.raises(ValueError, match="expected"):
        module.loss_and_grad(params, X[:, :1], Y)
    with pytest.raises(TypeError, match="has dtype complex128"):
        module.loss_and_grad(params, X.astype(np.complex128), Y)
    with pytest.raises(ValueError, match="missing keys"):
        module.loss({k: v for k, v in params.items() if k != "b1"}, X, Y)
    with pytest.raises(TypeError, match="params must be a mapping"):
        module.loss(list(params.values()), X, Y)


def test_init_params_is_the_same_in_every_namespace() -> None:
    module = xp_module(load_spec(EXAMPLES[0]))
    a = module.init_params(np, seed=3)
    b = module.init_params(torch, seed=3, dtype=torch.float64)
    assert all(np.array_equal(a[k], b[k].numpy()) for k in a)
    assert all(a[k].shape == s for k, s in module.PARAM_SHAPES.items())
