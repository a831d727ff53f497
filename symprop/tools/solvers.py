"""Optimizers for ``symprop train``: SGD (momentum, Nesterov, learning-rate schedules), Adam and L-BFGS.

Every solver works on one flat float vector holding all parameters (see :class:`FlatParams`);
the params dict handed to a generated module is a set of views into that vector, so an update
is a handful of NumPy operations on one array whatever the number of layers.

The update rules and defaults are scikit-learn's (``sklearn.neural_network._stochastic_optimizers``
and ``MLPClassifier``), so that a practitioner's settings mean the same thing here:

* SGD, velocity v, momentum μ, rate η, gradient g:  v <- μ v - η g;  p <- p + v, or with Nesterov
  p <- p + (μ v - η g) using the new v.
* Learning-rate schedules (SGD only, as in scikit-learn): ``constant``; ``invscaling``:
  η_t = η_0 / (t + 1)^0.5 after each epoch, t = samples seen so far; ``adaptive``: η stays until
  the monitored loss (training loss, or validation loss with early stopping) has failed to
  drop by ``tol`` = 1e-4 for more than ``patience`` epochs in a row, then η <- η / 5; training
  stops once η <= 1e-6.
* Adam: β1 = 0.9, β2 = 0.999, ε = 1e-8, η = 0.001 (scikit-learn's defaults); with step count t,
  m <- β1 m + (1-β1) g;  s <- β2 s + (1-β2) g²;  p <- p - η √(1-β2^t)/(1-β1^t) · m / (√s + ε).
* L-BFGS: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the full batch (not
  hand-written); ``max_iter`` iterations at most, ``maxfun`` = 15000 and ``gtol`` = 1e-4 as in
  scikit-learn.  scipy is an extra (``symprop[train]``); a missing one is a one-line
  :class:`SolverError`.

Invariant: solvers never allocate per step beyond their fixed buffers, and never touch the
gradient array they are given other than reading it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

SOLVERS = ("sgd", "adam", "lbfgs", "newton-cg", "trust-krylov")
# full batch through scipy.optimize.minimize; the Newton-type ones take hessp from the module's hvp
SCIPY_METHODS = {"lbfgs": "L-BFGS-B", "newton-cg": "Newton-CG", "trust-krylov": "trust-krylov"}
NEWTON_SOLVERS = ("newton-cg", "trust-krylov")
SCHEDULES = ("constant", "invscaling", "adaptive")
TOL = 1e-4  # scikit-learn's tol: the least drop of the monitored loss that counts as progress
MIN_ADAPTIVE_LR = 1e-6  # scikit-learn: adaptive stops once the rate is at or below this
POWER_T = 0.5  # scikit-learn's power_t for invscaling
LBFGS_MAXFUN = 15000  # scikit-learn's max_fun

# (loss, flat gradient) of the cost at a flat parameter vector
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


class SolverError(ValueError):
    """A solver cannot run as asked; the message is one line naming the option and the fix."""


class Kind(Enum):
    MINI_BATCH = "mini-batch"
    FULL_BATCH = "full-batch"


# --------------------------------------------------------------- flat params --
@dataclass
class FlatParams:
    """All parameters in one contiguous vector; ``views`` maps each name to a reshaped view of it."""

    vector: np.ndarray
    views: dict[str, np.ndarray]
    slices: dict[str, slice]

    @classmethod
    def of(cls, params: Mapping[str, np.ndarray], keys: list[str] | tuple[str, ...], dtype: Any) -> FlatParams:
        sizes = [int(np.asarray(params[k]).size) for k in keys]
        vector = np.empty(sum(sizes), dtype=dtype)
        views: dict[str, np.ndarray] = {}
        slices: dict[str, slice] = {}
        start = 0
        for k, size in zip(keys, sizes, strict=True):
            slices[k] = slice(start, start + size)
            view = vector[start : start + size].reshape(np.shape(params[k]))
            view[...] = params[k]
            views[k] = view
            start += size
        return cls(vector, views, slices)

    def gather(self, grads: Mapping[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        """Copy a gradient dict into the flat ``out`` (same layout as ``vector``)."""
        for k, s in self.slices.items():
            out[s] = grads[k].reshape(-1)
        return out

    def copy_dict(self) -> dict[str, np.ndarray]:
        """Independent arrays (not views) of the current values."""
        return {k: v.copy() for k, v in self.views.items()}


# ------------------------------------------------------------ step solvers --
@dataclass
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and a learning-rate schedule."""

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    lr_init: float = field(init=False)
    velocity: np.ndarray | None = field(default=None, init=False)
    step_buffer: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.lr_init = self.lr

    def update(self, p: np.ndarray, g: np.ndarray) -> None:
        """One step in place on the flat params ``p`` with gradient ``g``."""
        if self.step_buffer is None:
            self.step_buffer = np.empty_like(p)
        step = self.step_buffer
        np.multiply(g, self.lr, out=step)
        if not self.momentum:
            p -= step
            return
        if self.velocity is None:
            self.velocity = np.zeros_like(p)
        v = self.velocity
        v *= self.momentum
        v -= step
        if self.nesterov:  # p += μ v_new - η g
            p += self.momentum * v
            p -= step
        else:
            p += v

    def end_epoch(self, samples_seen: int) -> None:
        if self.schedule == "invscaling":
            self.lr = self.lr_init / (samples_seen + 1) ** POWER_T

    def on_plateau(self) -> bool:
        """The monitored loss stalled: lower the rate (adaptive); False means stop training."""
        if self.schedule != "adaptive" or self.lr <= MIN_ADAPTIVE_LR:
            return False
        self.lr /= 5.0
        return True

    def describe(self) -> str:
        nesterov = ", Nesterov" if self.nesterov and self.momentum else ""
        return f"sgd, lr {self.lr_init:g} ({self.schedule}), momentum {self.momentum:g}{nesterov}"


@dataclass
class Adam:
    """Adam with scikit-learn's defaults (β1 0.9, β2 0.999, ε 1e-8)."""

    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    t: int = field(default=0, init=False)
    m: np.ndarray | None = field(default=None, init=False)
    s: np.ndarray | None = field(default=None, init=False)
    work: np.ndarray | None = field(default=None, init=False)

    def update(self, p: np.ndarray, g: np.ndarray) -> None:
        if self.m is None or self.s is None or self.work is None:
            self.m, self.s, self.work = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
        m, s, w = self.m, self.s, self.work
        self.t += 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        np.multiply(g, g, out=w)
        w *= 1 - self.beta2
        s *= self.beta2
        s += w
        rate = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        np.sqrt(s, out=w)
        w += self.epsilon
        np.divide(m, w, out=w)
        w *= rate
        p -= w

    def end_epoch(self, samples_seen: int) -> None:
        pass

    def on_plateau(self) -> bool:
        return False

    def describe(self) -> str:
        return f"adam, lr {self.lr:g} (beta1 {self.beta1:g}, beta2 {self.beta2:g}, eps {self.epsilon:g})"


StepSolver = SGD | Adam


def make_step_solver(
    solver: str, lr: float, momentum: float = 0.0, nesterov: bool = False, schedule: str = "constant"
) -> StepSolver:
    """The SGD or Adam object for the CLI's options (already checked by :func:`check_solver_options`)."""
    if solver == "adam":
        return Adam(lr)
    return SGD(lr, momentum, nesterov, schedule)


def check_solver_options(solver: str, schedule: str, momentum: float, nesterov: bool) -> None:
    """Reject combinations scikit-learn ignores silently: they would not do what was asked."""
    if solver not in SOLVERS:
        raise SolverError(f"--solver {solver!r}: use one of {', '.join(SOLVERS)}")
    if schedule not in SCHEDULES:
        raise SolverError(f"--lr-schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    if solver != "sgd":
        if schedule != "constant":
            raise SolverError(f"--lr-schedule {schedule} is for --solver sgd only; drop it or use --solver sgd")
        if momentum:
            raise SolverError(f"--momentum is for --solver sgd only (got --solver {solver}); drop it")
        if nesterov:
            raise SolverError(f"--nesterov is for --solver sgd only (got --solver {solver}); drop it")
    elif nesterov and not momentum:
        raise SolverError("--nesterov needs --momentum > 0 (e.g. --momentum 0.9)")


# ------------------------------------------------------------------ L-BFGS --
@dataclass
class LbfgsResult:
    x: np.ndarray
    iterations: int
    evaluations: int
    message: str
    stopped_by_callback: bool


def scipy_minimize() -> Callable[..., Any]:
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise SolverError('--solver lbfgs/newton-cg/trust-krylov needs scipy: pip install "symprop[train]"') from None
    return minimize


def lbfgs(
    objective: Objective,
    x0: np.ndarray,
    max_iter: int,
    on_iteration: Callable[[int, float, np.ndarray], bool] | None = None,
    method: str = "lbfgs",
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> LbfgsResult:
    """Minimize with scipy (``jac=True``) from ``x0`` for at most ``max_iter`` iterations: L-BFGS-B,
    or Newton-CG / trust-krylov with ``hessp(x, v)`` = H(x) v (the module's hvp).

    ``on_iteration(iteration, loss, x)`` is called after each iteration with the accepted point
    and its loss; returning False stops the run (early stopping).  scipy works in float64; the
    objective receives float64 vectors.
    """
    minimize = scipy_minimize()
    evaluations = 0
    iteration = 0
    stopped = False

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        value, grad = objective(x)
        if not math.isfinite(value):  # let the line search back off, as scipy expects
            return math.inf, np.zeros_like(x)
        return value, np.asarray(grad, dtype=np.float64)

    def callback(intermediate_result: Any) -> None:
        nonlocal iteration, stopped
        iteration += 1
        if on_iteration is not None and not on_iteration(
            iteration, float(intermediate_result.fun), intermediate_result.x
        ):
            stopped = True
            raise StopIteration

    if method == "lbfgs":
        options: dict[str, Any] = {"maxiter": max_iter, "maxfun": LBFGS_MAXFUN, "gtol": TOL}
    elif method == "newton-cg":
        options = {"maxiter": max_iter, "xtol": TOL}
    else:
        options = {"maxiter": max_iter, "gtol": TOL}
    result = minimize(
        fun,
        np.asarray(x0, dtype=np.float64),
        method=SCIPY_METHODS[method],
        jac=True,
        hessp=hessp,
        callback=callback,
        options=options,
    )
    return LbfgsResult(np.asarray(result.x), int(result.nit), evaluations, str(result.message), stopped)


__all__ = [
    "NEWTON_SOLVERS",
    "SCHEDULES",
    "SCIPY_METHODS",
    "SGD",
    "SOLVERS",
    "Adam",
    "FlatParams",
    "LbfgsResult",
    "Objective",
    "SolverError",
    "StepSolver",
    "check_solver_options",
    "lbfgs",
    "make_step_solver",
]
