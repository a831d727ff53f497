"""scikit-learn estimators over symprop's generated modules: :class:`SympropClassifier` and
:class:`SympropRegressor`, drop-in for ``MLPClassifier`` / ``MLPRegressor`` in a Pipeline or
GridSearchCV.

The parameters are scikit-learn's, with the same names and defaults; ``spec=`` (a TOML path or a
:class:`~symprop.spec.Spec`) replaces ``hidden_layer_sizes`` and ``activation`` with a spec's
layers, activations and loss.  ``fit`` builds the spec for the data's shape, takes its module from
a cache keyed by the spec hash (in memory, then on disk: ``$SYMPROP_CACHE`` or
``~/.cache/symprop/modules``, so a cached fit imports neither SymPy nor the generator), and
trains it with :func:`symprop.tools.loop.train`.

The L2 penalty follows scikit-learn: each batch's cost gets ``alpha/(2 n_batch) Σ‖W‖²``, added
here around the module (so the module, and its cache entry, do not depend on the batch size).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from symprop.ir.names import bias, weight
from symprop.spec import Layer, Spec, SpecError, load_spec
from symprop.tools.loop import TrainError, train
from symprop.tools.modcache import prepare_module
from symprop.tools.targets import one_hot

# scikit-learn's activation names -> symprop's
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("adam", "sgd", "lbfgs")
_MODULES: dict[str, Any] = {}
# The numeric parameters: (name, test, what to give), checked in this order at fit.
_NUMBER_CHECKS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("alpha", lambda v: isinstance(v, int | float) and bool(v >= 0), "give a number >= 0"),
    ("max_iter", lambda v: isinstance(v, int | np.integer) and bool(v >= 1), "give an integer >= 1"),
    ("learning_rate_init", lambda v: isinstance(v, int | float) and bool(v > 0), "give a number > 0"),
    (
        "batch_size",
        lambda v: v == "auto" or (isinstance(v, int | np.integer) and bool(v >= 1)),
        "give 'auto' or an integer >= 1",
    ),
    ("validation_fraction", lambda v: bool(0 < v < 1), "give a number in (0, 1)"),
)


def cache_dir() -> Path:
    """Where generated modules are kept between processes: ``$SYMPROP_CACHE`` or ~/.cache/symprop/modules."""
    root = os.environ.get("SYMPROP_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "symprop" / "modules"


def module_for(spec: Spec) -> Any:
    """The vectorized module of ``spec``: from memory, else the disk cache (no SymPy), else generated
    once and written to the disk cache."""
    key = spec.hash()
    if key in _MODULES:
        return _MODULES[key]
    prepared = prepare_module(spec, cache_dir() / key, "vectorized")
    with contextlib.suppress(OSError):  # a read-only cache: keep the module in memory only
        prepared.persist()
    _MODULES[key] = prepared.module
    return prepared.module


class _Penalized:
    """A module with scikit-learn's L2 penalty: C + alpha/(2 n) Σ_l ‖Wˡ‖², n the rows of the batch."""

    def __init__(self, module: Any, alpha: float) -> None:
        self.module, self.alpha = module, alpha
        self.PARAM_SHAPES = module.PARAM_SHAPES
        self.init_params = module.init_params
        self.forward = module.forward

    def _penalty(self, params: dict[str, np.ndarray], n: int) -> float:
        return 0.5 * self.alpha / n * sum(float(np.vdot(v, v)) for k, v in params.items() if k.startswith("W"))

    def loss(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, sample_weight: Any = None) -> float:
        value = float(self.module.loss(params, X, Y, sample_weight=sample_weight))
        return value + self._penalty(params, X.shape[0]) if self.alpha else value

    def loss_and_grad(
        self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, sample_weight: Any = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        value, grads = self.module.loss_and_grad(params, X, Y, sample_weight=sample_weight)
        if not self.alpha:
            return value, grads
        lam = self.alpha / X.shape[0]
        for k in grads:
            if k.startswith("W"):
                grads[k] = grads[k] + lam * params[k]
        return value + self._penalty(params, X.shape[0]), grads


class _SympropMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, spec building, fitting."""

    _task = ""

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        tol: float = 1e-4,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: Any = None,
        spec: str | Path | Spec | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.spec = spec

    # ------------------------------------------------------------ the spec --
    def _check_params(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r}: use one of {', '.join(SOLVERS)}")
        if self.spec is None and self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: use one of {', '.join(ACTIVATIONS)}")
        for name, ok, what in _NUMBER_CHECKS:
            value = getattr(self, name)
            if not ok(value):
                raise ValueError(f"{name}={value!r}: {what}")

    def _hidden(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes_t = (sizes,) if isinstance(sizes, int | np.integer) else tuple(sizes)
        if not all(isinstance(u, int | np.integer) and u >= 1 for u in sizes_t):
            raise ValueError(f"hidden_layer_sizes={sizes!r}: give positive integers")
        return tuple(int(u) for u in sizes_t)

    def _given_spec(self) -> Spec | None:
        if self.spec is None:
            return None
        if isinstance(self.spec, Spec):
            return self.spec
        if isinstance(self.spec, str | Path):
            return load_spec(self.spec)
        raise ValueError(f"spec={type(self.spec).__name__}: give a TOML path or a symprop Spec")

    def _build_spec(self, n_features: int, n_outputs: int, loss: str) -> Spec:
        given = self._given_spec()
        if given is None:
            act = ACTIVATIONS[self.activation]
            hidden = tuple(Layer.of(u, act) for u in self._hidden())
            return Spec("sklearn_mlp", n_features, (*hidden, Layer.of(n_outputs, "identity")), loss)
        if given.inputs != n_features:
            raise ValueError(f"spec {given.name!r} has inputs = {given.inputs}, but X has {n_features} features")
        return given

    def _batch(self, n: int) -> int:
        if self.solver == "lbfgs":
            return n
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    # ------------------------------------------------------------- fitting --
    def _fit(self, X: np.ndarray, Y: np.ndarray, sample_weight: Any, stratify: Any, classification: bool) -> None:
        spec = self.spec_
        module = _Penalized(module_for(spec), float(self.alpha))
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        validation = None
        if self.early_stopping:
            parts = [X, Y] + ([w] if w is not None else [])
            split = train_test_split(*parts, test_size=self.validation_fraction, random_state=seed, stratify=stratify)
            X, Xv, Y, Yv = split[:4]
            w = split[4] if w is not None else None
            validation = (Xv, Yv)
        if w is not None and not np.sum(w) > 0:
            raise ValueError("sample_weight sums to 0: give at least one positive weight")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = train(
                module,
                X,
                Y,
                solver=self.solver,
                epochs=int(self.max_iter),
                lr=float(self.learning_rate_init) if self.solver != "lbfgs" else 1.0,
                batch_size=self._batch(X.shape[0]),
                seed=seed,
                validation=validation,
                classification=classification,
                evaluate=self.early_stopping,
                early_stopping=self.early_stopping,
                patience=int(self.n_iter_no_change),
                sample_weight=w,
                tol=float(self.tol),
                stop_on_plateau=self.solver != "lbfgs",
            )
        history = result.history
        self.params_ = result.params
        self.loss_curve_ = list(history.loss)
        self.n_iter_ = history.epochs
        self.t_ = history.epochs * X.shape[0]
        self.loss_ = history.loss[-1] if history.loss else float("nan")
        self.best_loss_ = min(history.loss) if history.loss else float("nan")
        if self.early_stopping:
            self.validation_scores_ = list(history.val_metric)
            self.best_validation_score_ = max(history.val_metric) if history.val_metric else None
        n_layers = len(spec.layers)
        self.coefs_ = [self.params_[weight(l)].T.copy() for l in range(1, n_layers + 1)]
        self.intercepts_ = [self.params_[bias(l)].copy() for l in range(1, n_layers + 1)]
        self.n_layers_ = n_layers + 1
        self.n_outputs_ = spec.outputs
        if self.n_iter_ >= self.max_iter and not history.stop_reason and self.solver != "lbfgs":
            warnings.warn(
                f"symprop: {self.solver} reached max_iter={self.max_iter} before the loss settled; raise max_iter",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(self.module_.forward(self.params_, X))

    @property
    def module_(self) -> Any:
        return module_for(self.spec_)


def _as_error(exc: Exception) -> ValueError:
    return ValueError(str(exc))


class SympropClassifier(ClassifierMixin, _SympropMLP):
    """A multi-layer perceptron classifier trained by symprop's generated module (see the module doc).

    Without ``spec``: the hidden layers of ``hidden_layer_sizes`` with ``activation``, then one
    identity unit per class and softmax cross-entropy (two units for two classes)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SympropClassifier:
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, reset=True)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"y has one class ({self.classes_[0]!r}); a classifier needs at least two classes")
        try:
            spec = self._build_spec(X.shape[1], k, "softmax_ce")
        except (SpecError, TrainError) as exc:
            raise _as_error(exc) from None
        if spec.outputs != k and not (spec.outputs == 1 and k == 2):
            raise ValueError(f"spec {spec.name!r} has {spec.outputs} outputs, but y has {k} classes")
        Y = one_hot(codes, spec.outputs)
        self.spec_ = spec
        self.out_activation_ = "softmax" if spec.loss == "softmax_ce" else spec.layers[-1].activation
        try:
            self._fit(X, Y, sample_weight, codes if self._stratifiable(codes) else None, True)
        except TrainError as exc:
            raise _as_error(exc) from None
        return self

    def _stratifiable(self, codes: np.ndarray) -> bool:
        counts = np.bincount(codes)
        n_val = int(np.ceil(self.validation_fraction * len(codes)))
        return bool(counts.min() >= 2 and n_val >= len(counts) and len(codes) - n_val >= len(counts))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order: the softmax of the logits for
        softmax_ce; for one output unit, [1 - a, a]; otherwise outputs clipped to [0, 1], rows normalized."""
        out = self._forward(X)
        if self.spec_.loss == "softmax_ce":
            shifted = out - out.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            return np.asarray(e / e.sum(axis=1, keepdims=True))
        a = np.clip(out, 0.0, 1.0)
        if a.shape[1] == 1:
            return np.hstack([1.0 - a, a])
        total = a.sum(axis=1, keepdims=True)
        return np.where(total > 0, a / np.where(total > 0, total, 1.0), 1.0 / a.shape[1])

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.asarray(np.log(self.predict_proba(X)))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])


class SympropRegressor(RegressorMixin, _SympropMLP):
    """A multi-layer perceptron regressor trained by symprop's generated module (see the module doc).

    Without ``spec``: the hidden layers, then one identity unit per target and the mse loss
    (½ (a − y)² per output, the batch mean)."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SympropRegressor:
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, reset=True, multi_output=True, y_numeric=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self._y_1d = y.ndim == 1
        try:
            spec = self._build_spec(X.shape[1], Y.shape[1], "mse")
        except (SpecError, TrainError) as exc:
            raise _as_error(exc) from None
        if spec.outputs != Y.shape[1]:
            raise ValueError(f"spec {spec.name!r} has {spec.outputs} outputs, but y has {Y.shape[1]} targets")
        self.spec_ = spec
        self.out_activation_ = spec.layers[-1].activation
        try:
            self._fit(X, Y.astype(np.float64), sample_weight, None, False)
        except TrainError as exc:
            raise _as_error(exc) from None
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._forward(X)
        return out[:, 0] if self._y_1d else out


__all__ = ["SympropClassifier", "SympropRegressor", "cache_dir", "module_for"]
