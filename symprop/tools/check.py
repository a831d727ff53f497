"""Check a generated module's gradient against central finite differences (float64).

The error of one entry is ``|g - fd| / max(|g|, |fd|, FLOOR)``.  With step
``h = 1e-5 * max(1, |p|)`` the central difference has truncation error
~h²·|C'''|/6 ≈ 1e-11 and rounding error ~eps·|C|/h ≈ 2e-11 for a cost of
order 1, so an exact gradient shows errors around 1e-7 at worst once divided
by ``FLOOR = 1e-4`` (below which gradients are compared absolutely).
``TOLERANCE = 1e-5`` leaves a factor ~100 of margin while any real mistake
(a missing factor, a wrong sign, a dropped term) shows up as an error near 1.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from symprop.spec import Spec

FLOOR = 1e-4
TOLERANCE = 1e-5
STEP = 1e-5


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source (our own output, never user text) as a fresh module."""
    module = types.ModuleType(name)
    module.__file__ = f"<symprop generated {name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def float_results(module: types.ModuleType) -> types.SimpleNamespace:
    """An array-API module seen through the NumPy module's contract: the cost as a Python float."""

    def loss_and_grad(params: Any, X: Any, Y: Any) -> tuple[float, dict[str, Any]]:
        C, grads = module.loss_and_grad(params, X, Y)
        return float(C), grads

    return types.SimpleNamespace(
        PARAM_SHAPES=module.PARAM_SHAPES,
        LAYER_SIZES=module.LAYER_SIZES,
        forward=module.forward,
        loss=lambda params, X, Y: float(module.loss(params, X, Y)),
        loss_and_grad=loss_and_grad,
    )


def random_problem(spec: Spec, seed: int, n: int = 6) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Random params (scale ~1), inputs and targets valid for the spec's loss."""
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, 0.7, size=s) for k, s in spec.param_shapes.items()}
    X = rng.normal(0.0, 1.0, size=(n, spec.inputs))
    m = spec.outputs
    if spec.loss == "bce":
        Y = rng.uniform(0.0, 1.0, size=(n, m))
    elif spec.loss == "softmax_ce":
        Y = np.eye(m)[rng.integers(0, m, size=n)]
    else:
        Y = rng.normal(0.0, 1.0, size=(n, m))
    return params, X, Y


@dataclass(frozen=True)
class ArrayReport:
    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float


def finite_difference(
    loss: Callable[..., float],
    params: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    name: str,
    index: tuple[int, ...],
) -> float:
    p = params[name]
    old = p[index]
    h = STEP * max(1.0, abs(old))
    p[index] = old + h
    up = loss(params, X, Y)
    p[index] = old - h
    down = loss(params, X, Y)
    p[index] = old
    return (up - down) / (2 * h)


def compare(
    module: Any, spec: Spec, seeds: tuple[int, ...] = (0, 1, 2), max_entries: int | None = 60
) -> list[ArrayReport]:
    """Per parameter array: the worst error over ``seeds`` random points.

    ``max_entries`` caps how many entries of each array are checked per point
    (a random subset); None checks every entry.
    """
    worst: dict[str, list[float]] = {k: [0, 0.0, 0.0] for k in spec.param_shapes}
    for seed in seeds:
        params, X, Y = random_problem(spec, seed)
        _, grads = module.loss_and_grad(params, X, Y)
        rng = np.random.default_rng(1000 + seed)
        for name, shape in spec.param_shapes.items():
            indices = list(np.ndindex(*shape))
            if max_entries is not None and len(indices) > max_entries:
                picks = rng.choice(len(indices), size=max_entries, replace=False)
                indices = [indices[i] for i in sorted(picks)]
            for index in indices:
                g = float(grads[name][index])
                fd = finite_difference(module.loss, params, X, Y, name, index)
                abs_err = abs(g - fd)
                rel_err = abs_err / max(abs(g), abs(fd), FLOOR)
                entry = worst[name]
                entry[0] += 1
                entry[1] = max(entry[1], abs_err)
                entry[2] = max(entry[2], rel_err)
    return [ArrayReport(k, spec.param_shapes[k], int(v[0]), v[1], v[2]) for k, v in worst.items()]


def format_report(reports: list[ArrayReport]) -> str:
    rows = [f"{'param':<8} {'shape':<12} {'checked':>8} {'max abs error':>14} {'max rel error':>14}"]
    for r in reports:
        rows.append(f"{r.name:<8} {r.shape!s:<12} {r.checked:>8} {r.max_abs_error:>14.3e} {r.max_rel_error:>14.3e}")
    worst = max(r.max_rel_error for r in reports)
    rows.append(
        f"tolerance: {TOLERANCE:.0e} (relative, floor {FLOOR:.0e}; central differences, h = {STEP:.0e}, float64)"
    )
    rows.append(f"max relative error: {worst:.3e}")
    return "\n".join(rows)
