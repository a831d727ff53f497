"""Data sets for ``symprop train``: ``xor`` built in, ``digits`` and ``iris`` from scikit-learn's
bundled files (no download), or any ``PATH.csv``.

Every loader returns a :class:`Dataset`: float64 features ``X`` of shape (n, features), targets
``Y`` of shape (n, outputs) already encoded for the spec, already split into train and test.

Decisions (also in the README):

* Classification targets are one-hot, one column per class (classes in sorted order), except
  that two classes and a spec with one output unit give a single 0/1 column (the second class
  is 1).
* A CSV is a regression problem when the spec's loss is ``mse``, ``sse`` or ``custom``, every
  label is a number, and either some label is not an integer or the spec has one output unit
  and there are more than two distinct labels; everything else is classification.
  Regression targets are used as they are (one column, not scaled).
* Features of ``digits``, ``iris`` and CSV files are standardized to mean 0 and standard
  deviation 1 with the mean and deviation of the train split only (a constant feature is only
  centred); ``xor`` is used as is.
* The split is a seeded shuffle; ``test_fraction`` of the rows (rounded up, as scikit-learn
  does) are the test set.  ``xor`` has four rows: train and test are both
  all four.

Errors are :class:`DataError` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symprop.spec import Spec

BUILTIN = ("xor", "digits", "iris")
REGRESSION_LOSSES = ("mse", "sse", "custom")


class DataError(ValueError):
    """A data set cannot be used; the message is one line naming the problem and the fix."""


@dataclass
class Dataset:
    """Train and test arrays, encoded for a spec."""

    name: str
    task: str  # "classification" or "regression"
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    classes: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    # standardization fitted on the train split: x_used = (x_raw - mean) / scale
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    held_out: bool = True  # False: the test set is the train set (xor)

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])


@dataclass
class RawData:
    """Features and labels before encoding and splitting."""

    name: str
    X: np.ndarray
    labels: list[Any]
    feature_names: tuple[str, ...]
    standardize: bool = True
    split: bool = True


# ------------------------------------------------------------------ sources --
def xor_raw() -> RawData:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return RawData("xor", X, [0, 1, 1, 0], ("x1", "x2"), standardize=False, split=False)


def _sklearn_raw(name: str) -> RawData:
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise DataError(
            f"--data {name} needs scikit-learn (its bundled data, no download): pip install 'symprop[train]'"
        ) from None
    bunch: Any = skd.load_digits() if name == "digits" else skd.load_iris()
    X = np.asarray(bunch.data, dtype=np.float64)
    labels = [int(t) for t in bunch.target]
    if name == "iris":
        names = [str(n) for n in bunch.target_names]
        labels_out: list[Any] = [names[t] for t in labels]
    else:
        labels_out = labels
    return RawData(name, X, labels_out, tuple(str(f) for f in bunch.feature_names))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def csv_raw(path: str | Path) -> RawData:
    """Read a CSV: a header row, numeric feature columns, the last column the label."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{p}: no such file; give a CSV path or one of {', '.join(BUILTIN)}") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory; give the path of a .csv file") from None
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text; a data file is a CSV with a header row") from None
    except csv.Error as exc:
        raise DataError(f"{p}: not a valid CSV ({exc})") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    numbered = [(i, row) for i, row in enumerate(rows, start=1) if row and any(cell.strip() for cell in row)]
    if not numbered:
        raise DataError(f"{p}: the file is empty; expected a header row, then one row per sample")
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    if len(header) < 2:
        raise DataError(
            f"{p} line {header_line}: the header has 1 column; need feature columns and the label (last column)"
        )
    if all(_number(h) is not None for h in header):
        raise DataError(f"{p} line {header_line}: the first row is all numbers; add a header row with column names")
    data = numbered[1:]
    if not data:
        raise DataError(f"{p}: only a header row; add one row per sample below it")
    width = len(header)
    features = np.empty((len(data), width - 1))
    labels: list[str] = []
    for k, (line, row) in enumerate(data):
        if len(row) != width:
            raise DataError(f"{p} line {line}: {len(row)} fields, expected {width} as in the header")
        for j, cell in enumerate(row[:-1]):
            value = _number(cell.strip())
            if value is None:
                raise DataError(
                    f"{p} line {line}: column {header[j]!r} is {cell.strip()!r}, not a finite number; "
                    "features must be numbers (only the last column, the label, may be text)"
                )
            features[k, j] = value
        label = row[-1].strip()
        if not label:
            raise DataError(f"{p} line {line}: the label (last column {header[-1]!r}) is empty")
        labels.append(label)
    return RawData(p.name, features, labels, tuple(header[:-1]))


def load_raw(name: str) -> RawData:
    """The raw data for ``--data NAME``: a built-in name or a path ending in .csv."""
    if name == "xor":
        return xor_raw()
    if name in ("digits", "iris"):
        return _sklearn_raw(name)
    if name.lower().endswith(".csv"):
        return csv_raw(name)
    close = difflib.get_close_matches(name, BUILTIN, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise DataError(f"unknown data set {name!r}; {hint}use one of {', '.join(BUILTIN)} or a path ending in .csv")


# ----------------------------------------------------------------- encoding --
def _class_keys(labels: Sequence[Any]) -> list[Any]:
    """One key per label: the number when every label is a number (so "1" and "1.0" are one
    class, sorted numerically), else the text (sorted as text)."""
    numbers = [_number(str(label)) for label in labels]
    if all(v is not None for v in numbers):
        return numbers
    return [str(label) for label in labels]


def _class_name(key: Any) -> str:
    if isinstance(key, float):
        return str(int(key)) if key.is_integer() else repr(key)
    return str(key)


def _is_regression(raw: RawData, spec: Spec) -> bool:
    if spec.loss not in REGRESSION_LOSSES:
        return False
    values = [_number(str(label)) for label in raw.labels]
    if any(v is None for v in values):
        return False
    fractional = any(v is not None and not float(v).is_integer() for v in values)
    many = spec.outputs == 1 and len(set(values)) > 2
    return fractional or many


def _where(spec: Spec) -> str:
    return spec.source if spec.source != "<spec>" else "the spec"


def encode(raw: RawData, spec: Spec) -> tuple[str, np.ndarray, tuple[str, ...]]:
    """(task, Y, class names) for the raw labels and the spec's outputs and loss."""
    if raw.X.shape[1] != spec.inputs:
        raise DataError(
            f"{_where(spec)}: inputs = {spec.inputs}, but {raw.name} has {raw.X.shape[1]} features; "
            f"set inputs = {raw.X.shape[1]} in the spec"
        )
    if _is_regression(raw, spec):
        if spec.outputs != 1:
            raise DataError(
                f"{_where(spec)}: {raw.name} has one numeric label column (regression), but the last layer has "
                f"units = {spec.outputs}; set units = 1 in the last [[layers]] table"
            )
        Y = np.array([float(str(label)) for label in raw.labels]).reshape(-1, 1)
        return "regression", Y, ()
    keys = _class_keys(raw.labels)
    classes = sorted(set(keys))
    names = tuple(_class_name(c) for c in classes)
    if len(classes) < 2:
        raise DataError(
            f"{raw.name}: the label column has one class ({names[0]!r}) in all {len(keys)} rows; "
            "classification needs at least two"
        )
    index = {key: i for i, key in enumerate(classes)}
    codes = np.array([index[key] for key in keys])
    if spec.outputs == 1 and len(classes) == 2:
        return "classification", codes.reshape(-1, 1).astype(np.float64), names
    if spec.outputs != len(classes):
        two = " (or units = 1 for a single 0/1 output)" if len(classes) == 2 and spec.loss != "softmax_ce" else ""
        raise DataError(
            f"{_where(spec)}: {raw.name} has {len(classes)} classes, but the last layer has units = {spec.outputs}; "
            f"set units = {len(classes)} in the last [[layers]] table{two}"
        )
    return "classification", np.eye(len(classes))[codes], names


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of range(n) cut into (train, test) indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = math.ceil(test_fraction * n - 1e-9)  # rounded up, as scikit-learn's train_test_split
    if n - n_test < 1:
        raise DataError(f"--test-fraction {test_fraction} leaves no training rows out of {n}; use a smaller fraction")
    return order[n_test:], order[:n_test]


def standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of the columns of X; scale 1 for a constant column."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def load(name: str, spec: Spec, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load ``--data NAME``, encode it for ``spec``, split it and standardize the features."""
    if not 0 <= test_fraction < 1:
        raise DataError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    raw = load_raw(name)
    task, Y, classes = encode(raw, spec)
    X = raw.X
    notes = []
    if raw.split:
        train, test = split_indices(X.shape[0], test_fraction, seed)
        X_train, Y_train, X_test, Y_test = X[train], Y[train], X[test], Y[test]
    else:
        X_train, Y_train, X_test, Y_test = X, Y, X, Y
        notes.append(f"{raw.name} has {X.shape[0]} rows: train and test are all of them")
    mean = scale = None
    if raw.standardize:
        mean, scale = standardizer(X_train)
        X_train = (X_train - mean) / scale
        X_test = (X_test - mean) / scale
    return Dataset(
        raw.name,
        task,
        np.ascontiguousarray(X_train),
        np.ascontiguousarray(Y_train),
        np.ascontiguousarray(X_test),
        np.ascontiguousarray(Y_test),
        classes,
        raw.feature_names,
        mean,
        scale,
        notes,
        held_out=raw.split,
    )


__all__ = ["BUILTIN", "DataError", "Dataset", "csv_raw", "encode", "load", "load_raw", "split_indices", "standardizer"]
