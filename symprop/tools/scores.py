"""The final scores of a ``train`` run, in the data's own units: losses, accuracy or MSE/RMSE/R²,
the test confusion matrix and per-class precision, recall and F1 (scikit-learn's definitions),
and scikit-learn's ``class_weight="balanced"`` weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
class Report:
    """The final scores, in the data's own units (regression targets unstandardized).

    Regression: ``*_loss`` is the module's cost (for ``mse``, ½·MSE summed over outputs), and
    ``*_mse``, ``*_rmse``, ``*_r2`` are the true mean squared error, its root and R².
    Classification: accuracy, and on the test split the confusion matrix (rows true, columns
    predicted, in class order) with per-class precision, recall and F1."""

    classification: bool
    train_loss: float
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_rmse: float | None = None
    test_r2: float | None = None
    test_mse: float | None = None
    train_mse: float | None = None
    train_r2: float | None = None
    val_mse: float | None = None
    val_r2: float | None = None
    confusion_matrix: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    @classmethod
    def of(cls, module: Any, params: Params, dataset: Any) -> Report:
        raw_params = params
        if dataset.y_mean is not None:
            raw_params = fold_targets(params, dataset.y_mean, dataset.y_scale)
        raw = dataset.raw_targets
        report = cls(dataset.classification, module.loss(raw_params, dataset.X_train, raw(dataset.Y_train)))
        report.classes = tuple(dataset.classes)

        def regression(X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
            outputs = module.forward(raw_params, X)
            return float(np.mean((outputs - Y) ** 2)), r2_score(outputs, Y)

        if dataset.X_val is not None:
            report.val_loss = module.loss(raw_params, dataset.X_val, raw(dataset.Y_val))
            if dataset.classification:
                report.val_accuracy = accuracy(module.forward(params, dataset.X_val), dataset.Y_val)
            else:
                report.val_mse, report.val_r2 = regression(dataset.X_val, raw(dataset.Y_val))
        if dataset.classification:
            report.train_accuracy = accuracy(module.forward(params, dataset.X_train), dataset.Y_train)
        else:
            report.train_mse, report.train_r2 = regression(dataset.X_train, raw(dataset.Y_train))
        if dataset.X_test.shape[0] == 0:
            return report
        if dataset.classification:
            outputs = module.forward(params, dataset.X_test)
            report.test_accuracy = accuracy(outputs, dataset.Y_test)
            report.test_loss = module.loss(params, dataset.X_test, dataset.Y_test)
            k = max(len(dataset.classes), 2)
            report.confusion_matrix = confusion(class_codes(dataset.Y_test), class_codes(outputs), k)
        else:
            Y = raw(dataset.Y_test)
            report.test_loss = module.loss(raw_params, dataset.X_test, Y)
            report.test_mse, report.test_r2 = regression(dataset.X_test, Y)
            report.test_rmse = math.sqrt(report.test_mse)
        return report

    def section(self, split: str) -> dict[str, Any] | None:
        """The scores of one split (train, validation, test) for the metrics JSON; None if it has none."""
        loss = {"train": self.train_loss, "validation": self.val_loss, "test": self.test_loss}[split]
        if loss is None and split != "test":
            return None
        out: dict[str, Any] = {"loss": loss}
        if self.classification:
            acc = {"train": self.train_accuracy, "validation": self.val_accuracy, "test": self.test_accuracy}[split]
            if acc is None:
                return None
            out["accuracy"] = acc
            if split == "test" and self.confusion_matrix is not None:
                out["confusion_matrix"] = self.confusion_matrix.tolist()
                scores = per_class_scores(self.confusion_matrix)
                out["per_class"] = {
                    name: {key: scores[key][i] for key in ("precision", "recall", "f1", "support")}
                    for i, name in enumerate(self.classes or tuple(map(str, range(len(scores["f1"])))))
                }
                out["macro_f1"] = float(np.mean(scores["f1"]))
            return out
        mse = {"train": self.train_mse, "validation": self.val_mse, "test": self.test_mse}[split]
        r2 = {"train": self.train_r2, "validation": self.val_r2, "test": self.test_r2}[split]
        if mse is None:
            return None
        out.update(mse=mse, rmse=math.sqrt(mse), r2=r2)
        return out

    def lines(self, loss_name: str = "", classes: Sequence[str] = ()) -> list[str]:
        label = "loss"
        out = []
        if not self.classification and loss_name in ("mse", "sse"):
            what = "1/2 (a - y)^2" if loss_name == "mse" else "(a - y)^2"
            out.append(f"loss: the {loss_name} cost, {what} summed over outputs, mean over rows; mse is the true MSE")
        out.append(f"train {label}: {self.train_loss:.10g}")
        if self.val_loss is not None:
            out.append(f"validation {label}: {self.val_loss:.6g}")
        if self.train_accuracy is not None:
            out.append(f"train accuracy: {self.train_accuracy:.4f}")
        if self.val_accuracy is not None:
            out.append(f"validation accuracy: {self.val_accuracy:.4f}")
        if self.test_accuracy is not None:
            out.append(f"test accuracy: {self.test_accuracy:.4f}")
        if self.confusion_matrix is not None:
            out += self.confusion_lines(tuple(classes) or self.classes)
        if not self.classification and self.test_mse is not None:
            out.append(f"test {label}: {self.test_loss:.6g}")
            out.append(f"test mse: {self.test_mse:.6g}")
            out.append(f"test rmse: {self.test_rmse:.6g}")
            out.append(f"test r2: {self.test_r2:.4f}")
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


__all__ = ["Report", "balanced_weights", "confusion", "per_class_scores"]
