"""The backend contract, once, for every backend in the registry (``BACKENDS``).

Every backend, whatever it prints, promises:

* the same bytes for the same spec (generation is deterministic);
* a header that carries the generator's version and the spec's hash;
* a gradient that is the derivative of its own loss: every entry equals the central finite
  difference of the same module's ``loss`` (NumPy and array-API modules executed directly, the C
  target compiled and loaded through :mod:`symprop.tools.cbuild`'s ctypes loader);
* an inference-only variant with ``forward`` (giving the full module's outputs) and no loss or
  gradient.

A new backend registered in :mod:`symprop.backends.registry` is checked here without editing
this file; a target that needs a tool (the C compiler) skips, with the reason, where it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from symprop import __version__
from symprop.backends.base import Backend
from symprop.backends.registry import BACKENDS
from symprop.emit import render_files
from symprop.ir.backprop import derive
from symprop.spec import Spec
from symprop.tools.check import load_module, random_problem
from tests.support import spec_for

# a sigmoid net with mse (elementwise loss) and a tanh net with softmax cross-entropy (row loss)
SPECS: tuple[Spec, ...] = (spec_for("sigmoid", "mse", (3, 4, 2)), spec_for("tanh", "softmax_ce", (2, 3, 3)))
H = 1e-6  # finite-difference step
# Central differences in float64: the truncation error is about h² |C'''| / 6 ≈ 1e-12 and the
# rounding error about eps |C| / h ≈ 1e-10 for these O(1) costs; 1e-6 absolute plus 1e-5
# relative leaves a wide margin over both and still catches any wrong term (errors are O(0.01+)).
ATOL, RTOL = 1e-6, 1e-5


def _mode_target(backend: Backend) -> tuple[str, str]:
    return (backend.mode or "auto"), backend.target


def _files(backend: Backend, spec: Spec, inference_only: bool = False) -> dict[str, str]:
    mode, target = _mode_target(backend)
    return render_files(spec, mode, target, inference_only=inference_only)


class _Loaded:
    """A generated module behind one interface: forward, loss, loss_and_grad with float64 arrays."""

    def __init__(self, forward: Callable[..., Any], loss: Callable[..., Any] | None, grad: Callable[..., Any] | None):
        self.forward, self.loss, self.loss_and_grad = forward, loss, grad


def _load(backend: Backend, spec: Spec, inference_only: bool = False) -> _Loaded:
    if backend.target == "c":
        from symprop.tools.cbuild import CompileError, compiler, load_c

        try:
            compiler()
        except CompileError as exc:
            pytest.skip(f"no C compiler for the C target: {exc}")
        c = load_c(spec, "double", inference_only=inference_only)
        if not c.training:
            return _Loaded(c.forward, None, None)
        return _Loaded(c.forward, c.loss, c.loss_and_grad)
    files = _files(backend, spec, inference_only)
    module = load_module(files[f"{spec.name}.py"], f"{spec.name}_{backend.name.replace('-', '_')}")
    loss = getattr(module, "loss", None)
    grad = getattr(module, "loss_and_grad", None)
    return _Loaded(module.forward, loss, grad)


@pytest.fixture(params=sorted(BACKENDS), ids=str)
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_same_spec_same_bytes(backend: Backend, spec: Spec) -> None:
    first = _files(backend, spec)
    derive.cache_clear()  # derive again from the spec, not from the cache
    assert _files(backend, spec) == first
    assert sorted(first) == sorted(f"{spec.name}{suffix}" for suffix in backend.suffixes)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_header_names_generator_version_and_spec_hash(backend: Backend, spec: Spec) -> None:
    for name, text in _files(backend, spec).items():
        head = "\n".join(text.splitlines()[:12])
        assert f"symprop {__version__}" in head, name
        assert f"spec hash {spec.hash()}" in head, name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gradient_is_the_derivative_of_its_own_loss(backend: Backend, spec: Spec) -> None:
    module = _load(backend, spec)
    assert module.loss is not None and module.loss_and_grad is not None
    params, X, Y = random_problem(spec, seed=3, n=5)
    C, grads = module.loss_and_grad(params, X, Y)
    assert float(C) == pytest.approx(float(module.loss(params, X, Y)), rel=1e-12, abs=1e-12)
    assert sorted(grads) == sorted(spec.param_shapes)
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(*value.shape):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[key][index] += H
            down[key][index] -= H
            numeric[index] = (float(module.loss(up, X, Y)) - float(module.loss(down, X, Y))) / (2 * H)
        np.testing.assert_allclose(np.asarray(grads[key], dtype=np.float64), numeric, rtol=RTOL, atol=ATOL)


def test_inference_only_has_forward_and_no_gradient(backend: Backend) -> None:
    spec = SPECS[0]
    full = _load(backend, spec)
    lean = _load(backend, spec, inference_only=True)
    assert lean.loss is None and lean.loss_and_grad is None
    params, X, _ = random_problem(spec, seed=4, n=7)
    # the same statements in the same order: the outputs agree to the last bit
    np.testing.assert_array_equal(np.asarray(lean.forward(params, X)), np.asarray(full.forward(params, X)))
    if backend.target != "c":
        text = _files(backend, spec, inference_only=True)[f"{spec.name}.py"]
        assert "def loss_and_grad" not in text and "def loss(" not in text
