"""The training loop: gradient descent on a generated module, as in the classic derivation.

Works with any generated module object, duck-typed: it needs ``PARAM_SHAPES``,
``init_params``, ``forward``, ``loss`` and ``loss_and_grad``.  The module is
imported from its generated file (:mod:`symprop.tools.modcache`), never rebuilt from
symprop internals, so what is trained is exactly what a user copies away.

One epoch shuffles the training rows with a seeded ``np.random.default_rng``
and walks them in mini-batches (the last one may be smaller).  Per batch, with
gradient g = ∂C/∂p of the batch-mean cost, learning rate η and momentum μ:

    v <- μ v - η g        p <- p + v        (μ = 0: plain SGD, p <- p - η g)

Errors in the options are :class:`TrainError` (one line, naming the option).
"""

from __future__ import annotations

import inspect
import math
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symprop.ir.names import ParamRef, bias, weight
from symprop.tools.solvers import (
    NEWTON_SOLVERS,
    SCIPY_METHODS,
    TOL,
    FlatParams,
    Objective,
    SolverError,
    check_solver_options,
    lbfgs,
    make_step_solver,
)
from symprop.tools.targets import class_codes

Params = dict[str, np.ndarray]


class TrainError(ValueError):
    """A bad training option; the message is one line naming the option and the fix."""


class Failed(TrainError):
    """Training started but could not finish; the CLI exits 1 and nothing is written."""


class Diverged(Failed):
    """The loss became nan or infinite."""


def _hessp(
    module: types.ModuleType,
    flat: FlatParams,
    X: np.ndarray | None,
    Y: np.ndarray | None,
    sample_weight: np.ndarray | None = None,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """scipy's ``hessp(x, v)``: the module's Hessian-vector product at flat params x along flat v."""
    if not hasattr(module, "hvp") or X is None or Y is None:
        return None
    direction = FlatParams.of({k: np.zeros_like(v) for k, v in flat.views.items()}, list(flat.views), flat.vector.dtype)

    def hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
        flat.vector[...] = x
        direction.vector[...] = v
        weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
        hv = module.hvp(flat.views, X, Y, direction.views, **weighted)[2]
        return direction.gather(hv, np.empty_like(direction.vector))

    return hessp


# ---------------------------------------------------------------- training --
@dataclass
class History:
    """Per epoch (per iteration for lbfgs): the train loss, and when evaluated the validation and
    test loss and metric (accuracy for classification, R² for regression)."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)
    metric_name: str = "accuracy"
    best_epoch: int = 0  # early stopping: the epoch whose params were kept (0: the last)
    stop_reason: str = ""
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.loss)


@dataclass
class Result:
    params: Params
    history: History
    batch_size: int


def accuracy(outputs: np.ndarray, Y: np.ndarray) -> float:
    """Share of rows classified right: argmax for one-hot Y, threshold 0.5 for a single 0/1 column."""
    return float(np.mean(class_codes(outputs) == class_codes(Y)))


def r2_score(outputs: np.ndarray, Y: np.ndarray) -> float:
    """Coefficient of determination, averaged over output columns (as scikit-learn's r2_score);
    unchanged by an affine rescaling of the targets applied to both (standardization)."""
    residual = np.sum((Y - outputs) ** 2, axis=0)
    total = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
    total = np.where(total == 0, 1.0, total)
    return float(np.mean(1.0 - residual / total))


def metric(outputs: np.ndarray, Y: np.ndarray, classification: bool) -> float:
    return accuracy(outputs, Y) if classification else r2_score(outputs, Y)


def _is_int(value: object, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


def check_options(
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float,
    seed: int,
    *,
    solver: str = "sgd",
    nesterov: bool = False,
    lr_schedule: str = "constant",
    patience: int = 10,
) -> None:
    if not _is_int(epochs, 1):
        raise TrainError(f"--epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise TrainError(f"--lr must be a finite number > 0, got {lr!r}")
    if not _is_int(batch_size, 1):
        raise TrainError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    if not (isinstance(momentum, int | float) and 0 <= momentum < 1):
        raise TrainError(f"--momentum must be in [0, 1), got {momentum!r}")
    if not _is_int(seed, 0):
        raise TrainError(f"--seed must be an integer >= 0, got {seed!r}")
    if not _is_int(patience, 1):
        raise TrainError(f"--patience must be an integer >= 1, got {patience!r}")
    try:
        check_solver_options(solver, lr_schedule, momentum, nesterov)
    except SolverError as exc:
        raise TrainError(str(exc)) from None


Data = tuple[np.ndarray, np.ndarray]


def _check_weights(module: Any, sample_weight: Any, n: int) -> np.ndarray:
    """Per-row weights as float64 (n,): finite, ≥ 0, not all 0, for a module that takes them."""
    if "sample_weight" not in inspect.signature(module.loss_and_grad).parameters:
        raise TrainError("this module takes no sample_weight (generated by an older symprop); regenerate it")
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise TrainError(f"sample_weight has shape {w.shape}; give one weight per row, shape ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.sum(w) > 0:
        raise TrainError("sample_weight must be finite numbers >= 0, not all 0")
    return w


class _Monitor:
    """Evaluation after each epoch, early stopping (best params kept) and the adaptive schedule."""

    def __init__(
        self,
        module: Any,
        history: History,
        classification: bool,
        validation: Data | None,
        test: Data | None,
        early_stopping: bool,
        patience: int,
        tol: float = TOL,
        stop_on_plateau: bool = False,
    ) -> None:
        self.module, self.history, self.classification = module, history, classification
        self.validation, self.test = validation, test
        self.early_stopping, self.patience = early_stopping, patience
        self.tol, self.stop_on_plateau = tol, stop_on_plateau
        self.best = math.inf
        self.best_params: Params | None = None
        self.stalled = 0

    def evaluate(self, params: Params) -> None:
        h = self.history
        if self.validation is not None:
            Xv, Yv = self.validation
            h.val_loss.append(self.module.loss(params, Xv, Yv))
            h.val_metric.append(metric(self.module.forward(params, Xv), Yv, self.classification))
        if self.test is not None:
            Xt, Yt = self.test
            h.test_loss.append(self.module.loss(params, Xt, Yt))
            h.test_metric.append(metric(self.module.forward(params, Xt), Yt, self.classification))

    def keep_going(self, params: Params, solver: Any) -> bool:
        """After an epoch: update the plateau count; False when training should stop."""
        h = self.history
        watched = h.val_loss[-1] if self.early_stopping and h.val_loss else h.loss[-1]
        if self.early_stopping and watched < self.best:
            self.best_params = {k: np.array(v, copy=True) for k, v in params.items()}
            h.best_epoch = h.epochs
        self.stalled = self.stalled + 1 if watched > self.best - self.tol else 0
        self.best = min(self.best, watched)
        if self.stalled <= self.patience:
            return True
        if solver is not None and solver.on_plateau():
            self.stalled = 0
            return True
        adaptive = solver is not None and getattr(solver, "schedule", "") == "adaptive"
        if self.early_stopping or self.stop_on_plateau or adaptive:
            what = "validation loss" if self.early_stopping else "train loss"
            h.stop_reason = f"{what} did not improve by {self.tol:g} for {self.patience} epochs"
            return False
        return True


def train(
    module: Any,
    X: np.ndarray | None,
    Y: np.ndarray | None,
    *,
    solver: str = "sgd",
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 32,
    momentum: float = 0.0,
    nesterov: bool = False,
    lr_schedule: str = "constant",
    seed: int = 0,
    params: Params | None = None,
    X_test: np.ndarray | None = None,
    Y_test: np.ndarray | None = None,
    validation: Data | None = None,
    classification: bool = True,
    evaluate: bool = True,
    early_stopping: bool = False,
    patience: int = 10,
    objective: Objective | None = None,
    n_rows: int | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
    sample_weight: np.ndarray | None = None,
    tol: float = TOL,
    stop_on_plateau: bool = False,
) -> Result:
    """Train ``module`` on (X, Y); returns the final (or, with early stopping, the best) params.

    ``solver``: ``sgd`` and ``adam`` walk shuffled mini-batches (``default_rng(seed)``) of
    ``batch_size`` rows (cut to the number of rows); ``lbfgs`` runs scipy's L-BFGS-B on the full
    batch with ``epochs`` as its iteration limit.  ``params`` defaults to
    ``module.init_params(seed)``.  With ``evaluate``, the validation and test sets (when given)
    are scored after every epoch.  ``early_stopping`` needs ``validation``: training stops when
    the validation loss has not improved by 1e-4 for more than ``patience`` epochs, and the best
    params are returned.

    ``objective``: a full-batch (loss, flat gradient) function used instead of X and Y (the Dask
    engine, where the rows live on the workers; ``n_rows`` is their number); only full-batch
    solvers apply.

    ``sample_weight`` (n,): per-row weights s ≥ 0; each batch's cost is Σ s_k C_k / Σ s_k (the
    module's own ``sample_weight``), and the weights travel with their rows through the shuffle.
    ``stop_on_plateau`` (scikit-learn's MLP without early stopping): stop once the train loss has
    not dropped by ``tol`` for more than ``patience`` epochs.
    """
    check_options(
        epochs,
        lr,
        batch_size,
        momentum,
        seed,
        solver=solver,
        nesterov=nesterov,
        lr_schedule=lr_schedule,
        patience=patience,
    )
    if early_stopping and validation is None:
        raise TrainError("--early-stopping needs a validation split: add --validation-fraction 0.1")
    if objective is None:
        if X is None or Y is None:
            raise TrainError("train needs X and Y, or a full-batch objective")
        X = np.ascontiguousarray(X)
        Y = np.ascontiguousarray(Y)
        n = X.shape[0]
        if n == 0 or Y.shape[0] != n:
            raise TrainError(f"X has {n} rows and Y has {Y.shape[0]}; need the same number, at least one")
        dtype = X.dtype
        if sample_weight is not None:
            sample_weight = _check_weights(module, sample_weight, n)
    else:
        n = int(n_rows or 0)
        dtype = np.dtype(np.float64)
    batch_size = min(batch_size, n) if n else batch_size
    if solver in SCIPY_METHODS:
        dtype = np.dtype(np.float64)  # scipy's minimizers work in float64
    source = module.init_params(seed) if params is None else params
    keys = list(module.PARAM_SHAPES)
    flat = FlatParams.of({k: np.asarray(source[k]) for k in keys}, keys, dtype)
    history = History(metric_name="accuracy" if classification else "r2")
    test = (X_test, Y_test) if evaluate and X_test is not None and Y_test is not None and len(X_test) else None
    monitor = _Monitor(
        module,
        history,
        classification,
        validation if evaluate or early_stopping else None,
        test,
        early_stopping,
        patience,
        tol,
        stop_on_plateau,
    )
    start = time.perf_counter()

    weighted = {} if sample_weight is None else {"sample_weight": sample_weight}

    def full_batch(x: np.ndarray) -> tuple[float, np.ndarray]:
        flat.vector[...] = x
        value, grads = module.loss_and_grad(flat.views, X, Y, **weighted)
        return value, flat.gather(grads, np.empty_like(flat.vector))

    fn = objective if objective is not None else full_batch

    def finish_epoch(epoch: int, loss: float, step: Any) -> bool:
        if not math.isfinite(loss):
            hint = f"lower --lr (now {lr:g})" if solver not in SCIPY_METHODS else "check the data for extreme values"
            raise Diverged(f"the loss became {loss} in epoch {epoch}; {hint}")
        history.loss.append(loss)
        monitor.evaluate(flat.views)
        go_on = monitor.keep_going(flat.views, step)
        history.seconds = time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(epoch, history)
        return go_on

    if solver in SCIPY_METHODS:

        def on_iteration(iteration: int, loss: float, x: np.ndarray) -> bool:
            flat.vector[...] = x
            return finish_epoch(iteration, loss, None)

        hessp = _hessp(module, flat, X, Y, sample_weight) if solver in NEWTON_SOLVERS and objective is None else None
        if solver in NEWTON_SOLVERS and hessp is None:
            raise TrainError(f"--solver {solver} needs the module's hvp and the rows in this process; use lbfgs")
        result = lbfgs(fn, flat.vector.copy(), epochs, on_iteration, method=solver, hessp=hessp)
        if not history.stop_reason:
            flat.vector[...] = result.x
            if result.iterations < epochs:
                history.stop_reason = f"scipy {SCIPY_METHODS[solver]}: {result.message}"
    elif objective is not None:
        if batch_size < n:
            raise TrainError("a full-batch objective needs --batch-size >= the number of rows")
        step_solver = make_step_solver(solver, lr, momentum, nesterov, lr_schedule)
        for epoch in range(1, epochs + 1):
            value, g = fn(flat.vector)
            step_solver.update(flat.vector, g)
            step_solver.end_epoch(epoch * n)
            if not finish_epoch(epoch, value, step_solver):
                break
    else:
        assert X is not None and Y is not None
        step_solver = make_step_solver(solver, lr, momentum, nesterov, lr_schedule)
        g = np.empty_like(flat.vector)
        views = flat.views
        one_batch = batch_size >= n
        Xs, Ys = (X, Y) if one_batch else (np.empty_like(X), np.empty_like(Y))
        Ws = sample_weight
        starts = range(0, n, batch_size)
        rng = np.random.default_rng(seed)
        for epoch in range(1, epochs + 1):
            if not one_batch:  # one full batch: its order changes only the summation order
                order = rng.permutation(n)
                np.take(X, order, axis=0, out=Xs)
                np.take(Y, order, axis=0, out=Ys)
                if sample_weight is not None:
                    Ws = sample_weight[order]
            total = 0.0
            for lo in starts:
                xb, yb = Xs[lo : lo + batch_size], Ys[lo : lo + batch_size]
                if Ws is None:
                    value, grads = module.loss_and_grad(views, xb, yb)
                    total += value * xb.shape[0]
                else:
                    wb = Ws[lo : lo + batch_size]
                    if not np.any(wb > 0):  # a batch of weight 0 carries no gradient
                        continue
                    value, grads = module.loss_and_grad(views, xb, yb, sample_weight=wb)
                    total += value * float(np.sum(wb)) * n / float(np.sum(Ws))
                step_solver.update(flat.vector, flat.gather(grads, g))
            step_solver.end_epoch(epoch * n)
            if not finish_epoch(epoch, total / n, step_solver):
                break
    final = monitor.best_params if early_stopping and monitor.best_params is not None else flat.copy_dict()
    return Result(final, history, batch_size)


def fold_standardization(params: Params, mean: np.ndarray, scale: np.ndarray) -> Params:
    """Params that take raw features: with x_used = (x - mean)/scale,
    W1 x_used + b1 = (W1/scale) x + (b1 - (W1/scale) mean)."""
    out = {k: v.copy() for k, v in params.items()}
    w1 = params[weight(1)] / scale[np.newaxis, :]
    out[weight(1)] = w1
    out[bias(1)] = params[bias(1)] - w1 @ mean
    return out


def fold_targets(params: Params, y_mean: np.ndarray, y_scale: np.ndarray) -> Params:
    """Params whose (identity) last layer gives raw targets: with y_used = (y - y_mean)/y_scale,
    y = y_scale (W_L a + b_L) + y_mean = (y_scale W_L) a + (y_scale b_L + y_mean)."""
    last = max(ref.layer for ref in map(ParamRef.parse, params))
    out = {k: v.copy() for k, v in params.items()}
    out[weight(last)] = params[weight(last)] * y_scale[:, np.newaxis]
    out[bias(last)] = params[bias(last)] * y_scale + y_mean
    return out


__all__ = [
    "Data",
    "Diverged",
    "Failed",
    "History",
    "Params",
    "Result",
    "TrainError",
    "accuracy",
    "check_options",
    "fold_standardization",
    "fold_targets",
    "metric",
    "r2_score",
    "train",
]
