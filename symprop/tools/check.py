"""Check a generated module's gradient against finite differences (float64).

**Method.**  For each checked entry p of a parameter array, the derivative of the cost C is
estimated by central differences D(h) = (C(p+h) − C(p−h)) / 2h at two steps, h and h/2, with
h = STEP·max(1, |p|) (a step per entry, relative to the entry's size), and combined by Richardson
extrapolation: fd = (4·D(h/2) − D(h)) / 3, whose truncation error is O(h⁴) instead of O(h²).
The finite difference also gets an error estimate u:

* truncation: |D(h) − D(h/2)| / 3, the measured error of D(h/2) (the extrapolated value is
  at least as accurate), and
* rounding: 3·eps·NOISE·max|C| / (h/2) (the smaller step): each evaluation of C carries an absolute error of about
  eps·|C| times the number of terms summed (NOISE = 64 allows for that), D divides the
  difference of two evaluations by 2h, and the Richardson combination amplifies it by ≤ 3.

When u is not small against fd, the step is refined once (h/4, h/8) and the level with the
smaller u kept.  The error of an entry is

    |g − fd| / max(|g|, |fd|, u / tol)

i.e. relative where the finite difference resolves the entry to better than ``tol`` and absolute
(to within u) below that: the floor is not a constant but the smallest gradient this finite
difference can resolve, so it scales with the cost's magnitude and curvature.  The check fails
if any error exceeds ``tol`` (default TOLERANCE = 1e-5), or if the loss, an analytic gradient
entry or a finite difference is NaN or infinite (the report names the array and the entry).

**Why it still catches mistakes.**  u is computed from the loss alone, never from the gradient
under test, so a wrong gradient cannot widen its own tolerance.  A wrong factor c, a wrong sign
or a missing term changes g by a fraction of |g| or more: an error of |c − 1|, 2 or the dropped
term's share, against ``tol``; an exact gradient shows the extrapolation's O(h⁴) error and rounding
(measured: below 1e-7, typically ~1e-9, on a 64-64-64-10 ReLU/softmax net, a 784-256-128-10 net
and the loss (a − y)**64; ``tests/test_check.py``).  Entries whose gradient is below u/tol (dead
ReLU units, vanishing gradients) are compared absolutely and counted as ``unresolved`` in the
report, so a reader can see how many entries the check could not judge relatively.

**Test points.**  ``random_problem`` draws weights W_l ~ N(0, (scale/√fan_in)²), biases
~ N(0, (scale/2)²) and inputs ~ N(0, scale²) (``scale`` = 1 by default, ``--scale``), so every
pre-activation is O(scale) whatever the width: a 784-wide or 64-64-64-10 net has costs of order
1 there, where a fixed spread would give costs of hundreds.  Targets are valid for the loss.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symprop.spec import Spec
from symprop.tools.loader import load_module as load_module  # re-exported: tests and benchmarks use it

TOLERANCE = 1e-5
# A float build (C target, --c-real float): its gradient is float32 arithmetic, compared norm-wise
# (each array's error against its largest entry).  Each float32 operation errs by at most 6e-8; a
# gradient entry goes through the forward pass, the loss and the backward pass (about 10 dependent
# operations a layer, sums of up to a few hundred terms), so some hundreds of roundings add up to
# ~1e-5 of the array's largest entry times the network's conditioning at the test point (measured
# on the examples and the activation x loss grid: at most 1.1e-5, tests/test_c_target.py);
# 1e-3 leaves a margin for deeper, wider or worse-conditioned specs, while a float-only bug (a
# double literal, a wrong helper, a lost term) is an error near 1.
FLOAT_TOLERANCE = 1e-3
STEP = 1e-4
NOISE = 64.0
EPS = float(np.finfo(np.float64).eps)


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


def float_checked(c_module: Any, reference: Any) -> Any:
    """A float build seen through a float64 cost for the finite differences.

    ``loss_and_grad`` is the build's own (float32 arithmetic at the float32-rounded point);
    ``loss`` is the float64 ``reference`` module's at the point as given (inputs and targets
    rounded to float32 as the build sees them): finite differences of a float32 cost would
    drown in its rounding (6e-8 / h).  ``norm_wise`` asks :func:`compare` for errors relative
    to each array's largest entry (float rounding scales with the terms, not the result)."""

    def rounded(a: Any) -> np.ndarray:
        return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)

    def loss_and_grad(params: Any, X: Any, Y: Any) -> tuple[float, dict[str, Any]]:
        C, grads = c_module.loss_and_grad(params, rounded(X), rounded(Y))
        return float(C), {k: np.asarray(v, np.float64) for k, v in grads.items()}

    return types.SimpleNamespace(
        PARAM_SHAPES=c_module.PARAM_SHAPES,
        forward=c_module.forward,
        loss=lambda params, X, Y: float(reference.loss(params, rounded(X), rounded(Y))),
        loss_and_grad=loss_and_grad,
        norm_wise=True,
    )


def random_problem(
    spec: Spec, seed: int, n: int = 6, scale: float = 1.0
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Random params scaled by fan-in, inputs and targets valid for the spec's loss (see the module doc)."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for k, shape in spec.param_shapes.items():
        spread = scale / math.sqrt(shape[1]) if k.startswith("W") else scale / 2
        params[k] = rng.normal(0.0, spread, size=shape)
    X = rng.normal(0.0, scale, size=(n, spec.inputs))
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
    """The worst entry of one parameter array over every checked point."""

    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None = None
    unresolved: int = 0


@dataclass(frozen=True)
class FiniteDifference:
    """A Richardson-extrapolated central difference and its error estimate."""

    value: float
    error: float
    loss_scale: float


@dataclass
class CheckResult:
    """``compare``'s answer: per-array reports, non-finite values found, and the verdict."""

    reports: list[ArrayReport]
    tol: float
    problems: list[str] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.reports), default=0.0)

    @property
    def passed(self) -> bool:
        return not self.problems and self.max_rel_error <= self.tol


def finite_difference(
    loss: Callable[..., float],
    params: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    name: str,
    index: tuple[int, ...],
    tol: float = TOLERANCE,
) -> FiniteDifference:
    """∂C/∂params[name][index] by extrapolated central differences, with its error estimate."""
    p = params[name]
    old = float(p[index])

    def central(h: float) -> tuple[float, float]:
        """(C(p+h) - C(p-h)) / 2h, and the larger |C| of the two."""
        p[index] = old + h
        up = float(loss(params, X, Y))
        p[index] = old - h
        down = float(loss(params, X, Y))
        p[index] = old
        return (up - down) / (2 * h), max(abs(up), abs(down))

    def richardson(h: float) -> FiniteDifference:
        d1, c1 = central(h)
        d2, c2 = central(h / 2)
        scale = max(c1, c2)
        truncation = abs(d1 - d2) / 3
        rounding = 3 * EPS * NOISE * scale / (h / 2)
        return FiniteDifference((4 * d2 - d1) / 3, truncation + rounding, scale)

    h = STEP * max(1.0, abs(old))
    try:
        fd = richardson(h)
        if math.isfinite(fd.value) and fd.error > tol * abs(fd.value):
            finer = richardson(h / 4)
            if math.isfinite(finer.value) and finer.error < fd.error:
                fd = finer
    finally:
        p[index] = old
    return fd


def _where(name: str, index: tuple[int, ...]) -> str:
    """An entry named 1-based, as ``symprop explain --param`` reads it: W1[1,1] is W1's first entry."""
    return f"{name}[{','.join(str(i + 1) for i in index)}]"


def compare(
    module: Any,
    spec: Spec,
    seeds: tuple[int, ...] = (0, 1, 2),
    max_entries: int | None = 60,
    tol: float = TOLERANCE,
    scale: float = 1.0,
) -> CheckResult:
    """Per parameter array: the worst error over ``seeds`` random points (see the module doc).

    ``max_entries`` caps how many entries of each array are checked per point (a random
    subset); None checks every entry.  NaN or infinite values are recorded in ``problems``.
    """
    norm_wise = bool(getattr(module, "norm_wise", False))  # a float build: see float_checked
    worst: dict[str, dict[str, Any]] = {
        k: {"checked": 0, "abs": 0.0, "rel": 0.0, "index": None, "unresolved": 0} for k in spec.param_shapes
    }
    problems: list[str] = []
    with np.errstate(all="ignore"):
        for seed in seeds:
            params, X, Y = random_problem(spec, seed, scale=scale)
            value, grads = module.loss_and_grad(params, X, Y)
            if not math.isfinite(float(value)):
                problems.append(f"the loss is {float(value)} at test point {seed}")
                continue
            rng = np.random.default_rng(1000 + seed)
            for name, shape in spec.param_shapes.items():
                g_all = np.asarray(grads[name], dtype=np.float64)
                bad = np.argwhere(~np.isfinite(g_all))
                if bad.size:
                    index = tuple(int(i) for i in bad[0])
                    problems.append(
                        f"the gradient {_where(name, index)} is {g_all[index]} at test point {seed}"
                        f" ({len(bad)} non-finite entries in {name})"
                    )
                    continue
                indices = list(np.ndindex(*shape))
                if max_entries is not None and len(indices) > max_entries:
                    picks = rng.choice(len(indices), size=max_entries, replace=False)
                    indices = [indices[i] for i in sorted(picks)]
                entry = worst[name]
                array_scale = float(np.max(np.abs(g_all))) if norm_wise and g_all.size else 0.0
                for index in indices:
                    g = float(g_all[index])
                    fd = finite_difference(module.loss, params, X, Y, name, index, tol)
                    if not math.isfinite(fd.value):
                        problems.append(
                            f"the finite difference of {_where(name, index)} is {fd.value} at test point {seed}"
                            " (the loss is NaN or infinite next to the point)"
                        )
                        break
                    abs_err = abs(g - fd.value)
                    floor = fd.error / tol
                    if 0 < max(abs(g), abs(fd.value)) < floor:
                        entry["unresolved"] += 1
                    rel_err = abs_err / max(abs(g), abs(fd.value), floor, array_scale, 1e-300)
                    entry["checked"] += 1
                    entry["abs"] = max(entry["abs"], abs_err)
                    if rel_err > entry["rel"] or entry["index"] is None:
                        entry["rel"] = max(entry["rel"], rel_err)
                        entry["index"] = index
    reports = [
        ArrayReport(k, spec.param_shapes[k], v["checked"], v["abs"], v["rel"], v["index"], v["unresolved"])
        for k, v in worst.items()
    ]
    return CheckResult(reports, tol, problems)


def format_report(result: CheckResult) -> str:
    """The table ``symprop check`` prints, ending with the verdict line(s)."""
    header = f"{'param':<8} {'shape':<12} {'checked':>8} {'max abs error':>14} {'max rel error':>14} {'worst at':>14}"
    rows = [header]
    for r in result.reports:
        at = _where(r.name, r.worst_index) if r.worst_index is not None else "-"
        rows.append(
            f"{r.name:<8} {r.shape!s:<12} {r.checked:>8} {r.max_abs_error:>14.3e} {r.max_rel_error:>14.3e} {at:>14}"
        )
    unresolved = sum(r.unresolved for r in result.reports)
    rows.append(
        f"tolerance: {result.tol:.0e} (relative; Richardson-extrapolated central differences, "
        f"h = {STEP:.0e}*max(1, |p|), float64)"
    )
    if unresolved:
        entries = "entry" if unresolved == 1 else "entries"
        rows.append(f"{unresolved} {entries} below what finite differences resolve were compared absolutely")
    rows.extend(f"error: {problem}" for problem in result.problems)
    rows.append(f"max relative error: {result.max_rel_error:.3e}")
    return "\n".join(rows)
