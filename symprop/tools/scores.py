"""The final scores of a ``train`` run, in the data's own units: losses, accuracy or MSE/RMSE/R²,
the test confusion matrix and per-class precision, recall and F1 (scikit-learn's definitions),
and scikit-learn's ``class_weight="balanced"`` weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symprop.tools.loop import Params, accuracy, fold_targets, r2_score
from symprop.tools.targets import class_codes


def balanced_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's class_weight="balanced": n_samples / (n_classes_present * bincount), per class
    (0 for a class absent from ``codes``: it has no rows to weigh)."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    present = int(np.count_nonzero(counts))
    return np.where(counts > 0, codes.size / (present * np.where(counts > 0, counts, 1.0)), 0.0)


def confusion(codes_true: np.ndarray, codes_pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts: rows the true class, columns the predicted one."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (codes_true, codes_pred), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, list[float]]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined, as
    scikit-learn's zero_division=0), with the support (true rows) of each class."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.astype(int).tolist(),
    }


@dataclass
class Split:
    """The scores of one split: the module's cost, and accuracy (classification) or the true mean
    squared error and R² (regression); None where not computed."""

    loss: float | None = None
    accuracy: float | None = None
    mse: float | None = None
    r2: float | None = None

    @property
    def rmse(self) -> float | None:
        return None if self.mse is None else math.sqrt(self.mse)


@dataclass
class Report:
    """The final scores, in the data's own units (regression targets unstandardized).

    Regression: ``loss`` is the module's cost (for ``mse``, ½·MSE summed over outputs), and
    ``mse``, ``rmse``, ``r2`` are the true mean squared error, its root and R².
    Classification: accuracy, and on the test split the confusion matrix (rows true, columns
    predicted, in class order) with per-class precision, recall and F1."""

    classification: bool
    train: Split
    validation: Split = field(default_factory=Split)
    test: Split = field(default_factory=Split)
    confusion_matrix: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    @property
    def train_loss(self) -> float:
        assert self.train.loss is not None
        return self.train.loss

    @classmethod
    def of(cls, module: Any, params: Params, dataset: Any) -> Report:
        raw_params = params
        if dataset.y_mean is not None:
            raw_params = fold_targets(params, dataset.y_mean, dataset.y_scale)
        raw = dataset.raw_targets

        def split(X: np.ndarray, Y: np.ndarray) -> Split:
            Y_raw = raw(Y)
            scores = Split(loss=module.loss(raw_params, X, Y_raw))
            if dataset.classification:
                scores.accuracy = accuracy(module.forward(params, X), Y)
            else:
                outputs = module.forward(raw_params, X)
                scores.mse, scores.r2 = float(np.mean((outputs - Y_raw) ** 2)), r2_score(outputs, Y_raw)
            return scores

        report = cls(dataset.classification, split(dataset.X_train, dataset.Y_train), classes=tuple(dataset.classes))
        if dataset.X_val is not None:
            report.validation = split(dataset.X_val, dataset.Y_val)
        if dataset.X_test.shape[0] == 0:
            return report
        report.test = split(dataset.X_test, dataset.Y_test)
        if dataset.classification:
            outputs = module.forward(params, dataset.X_test)
            k = max(len(dataset.classes), 2)
            report.confusion_matrix = confusion(class_codes(dataset.Y_test), class_codes(outputs), k)
        return report

    def section(self, split: str) -> dict[str, Any] | None:
        """The scores of one split (train, validation, test) for the metrics JSON; None if it has none."""
        scores = {"train": self.train, "validation": self.validation, "test": self.test}[split]
        if scores.loss is None or (scores.accuracy if self.classification else scores.mse) is None:
            return None
        out: dict[str, Any] = {"loss": scores.loss}
        if not self.classification:
            out.update(mse=scores.mse, rmse=scores.rmse, r2=scores.r2)
            return out
        out["accuracy"] = scores.accuracy
        if split == "test" and self.confusion_matrix is not None:
            out["confusion_matrix"] = self.confusion_matrix.tolist()
            per_class = per_class_scores(self.confusion_matrix)
            out["per_class"] = {
                name: {key: per_class[key][i] for key in ("precision", "recall", "f1", "support")}
                for i, name in enumerate(self.classes or tuple(map(str, range(len(per_class["f1"])))))
            }
            out["macro_f1"] = float(np.mean(per_class["f1"]))
        return out

    def lines(self, loss_name: str = "", classes: Sequence[str] = ()) -> list[str]:
        out = []
        if not self.classification and loss_name in ("mse", "sse"):
            what = "1/2 (a - y)^2" if loss_name == "mse" else "(a - y)^2"
            out.append(f"loss: the {loss_name} cost, {what} summed over outputs, mean over rows; mse is the true MSE")
        out.append(f"train loss: {self.train_loss:.10g}")
        if self.validation.loss is not None:
            out.append(f"validation loss: {self.validation.loss:.6g}")
        for name, scores in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            if scores.accuracy is not None:
                out.append(f"{name} accuracy: {scores.accuracy:.4f}")
        if self.confusion_matrix is not None:
            out += self.confusion_lines(tuple(classes) or self.classes)
        test = self.test
        if not self.classification and test.mse is not None:
            out.append(f"test loss: {test.loss:.6g}")
            out.append(f"test mse: {test.mse:.6g}")
            out.append(f"test rmse: {test.rmse:.6g}")
            out.append(f"test r2: {test.r2:.4f}")
        return out

    def confusion_lines(self, classes: Sequence[str]) -> list[str]:
        """The test confusion matrix (at most 10 classes) and per-class precision, recall, F1."""
        m = self.confusion_matrix
        assert m is not None
        k = m.shape[0]
        names = [str(c) for c in classes] if len(classes) == k else [str(i) for i in range(k)]
        names = [n if len(n) <= 12 else n[:11] + "~" for n in names]
        scores = per_class_scores(m)
        out = []
        if k <= 10:
            width = max(6, *(len(n) for n in names), len(str(int(m.max()))))
            out.append("test confusion matrix (rows: true class, columns: predicted):")
            out.append(" " * (width + 2) + "".join(f" {n:>{width}}" for n in names))
            for i, n in enumerate(names):
                out.append(f"  {n:>{width}}" + "".join(f" {int(v):>{width}}" for v in m[i]))
        out.append("test per class (precision / recall / F1 / support):")
        for i, n in enumerate(names):
            p, r, f = scores["precision"][i], scores["recall"][i], scores["f1"][i]
            out.append(f"  {n}: {p:.4f} / {r:.4f} / {f:.4f} / {scores['support'][i]}")
        return out


__all__ = ["Report", "Split", "balanced_weights", "confusion", "per_class_scores"]
