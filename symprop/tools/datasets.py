"""Data sets for ``symprop train`` and ``symprop predict``: ``xor`` built in, ``digits`` and ``iris``
from scikit-learn's bundled files (read straight from its package folder, without importing
scikit-learn; no download), or any ``PATH.csv`` / ``PATH.parquet`` (Parquet needs pyarrow).

Every loader returns a :class:`Dataset`: float64 features ``X`` of shape (n, features), targets
``Y`` of shape (n, outputs) already encoded for the spec, already split into train and test.

Decisions (also in the README):

* Classification targets are one-hot, one column per class (classes in sorted order), except
  that two classes and a spec with one output unit give a single 0/1 column (the second class
  is 1).
* A table file has a header row; the label is ``--label`` (a column name or 0-based index;
  default the last column), ``--drop`` columns are ignored, every other column is a numeric
  feature.  The CSV delimiter is sniffed from the first 64 KiB (one of ``, ; tab |``) unless
  ``--delimiter`` forces it.
* A table is a regression problem when the spec's loss is ``mse``, ``sse`` or ``custom``, every
  label is a number, and either some label is not an integer or the spec has one output unit
  and there are more than two distinct labels; everything else is classification.
* Column names are compared after stripping surrounding spaces (and a UTF-8 byte-order mark,
  as Excel's "CSV UTF-8" writes, is not part of the first name); a header that names a column
  twice is refused in every reader (train, predict, Dask; CSV and Parquet): a lookup by name
  would read one of them for both.  Names are case-sensitive (``a`` and ``A`` are two columns),
  as every lookup is.
* A label that reads as a non-finite number (``nan``, ``inf``, ``-Infinity``) or is missing is
  refused, naming the row and column: NaN is never a class.
* Features of ``digits``, ``iris`` and table files are standardized to mean 0 and standard
  deviation 1 with the mean and deviation of the train split only (a constant feature is only
  centred); ``xor`` is used as is.  A column whose deviation overflows float64 is refused.
* Regression targets are standardized the same way when the last layer is ``identity`` (so the
  scaling can be folded back into it on save); otherwise they are used as they are.
* The split is a seeded shuffle; ``test_fraction`` of the rows (rounded up, as scikit-learn
  does) are the test set, then ``validation_fraction`` of the remaining rows (rounded up) the
  validation set.  ``xor`` has four rows: train and test are both all four.

Errors are :class:`DataError` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symprop.io import quote
from symprop.spec import Spec
from symprop.tools.tables import (
    BUILTIN,
    MISSING_CHOICES,
    DataError,
    TableOptions,
    check_header,
    is_missing,
    is_table_path,
    number,
    pick_columns,
    read_table,
    sniff_delimiter,
)
from symprop.tools.targets import Classes, class_codes, one_hot

REGRESSION_LOSSES = ("mse", "sse", "custom")


@dataclass
class Dataset:
    """Train, validation and test arrays, encoded for a spec (targets in the units trained on)."""

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
    X_val: np.ndarray | None = None
    Y_val: np.ndarray | None = None
    # regression targets standardized on the train split: y_used = (y_raw - y_mean) / y_scale
    y_mean: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    label_name: str = ""
    # --missing mean: the train-split mean of each feature, filled into its blank cells (raw units)
    impute_means: np.ndarray | None = None

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def raw_targets(self, Y: np.ndarray) -> np.ndarray:
        """Targets (or outputs) in the data's own units: undo the target standardization."""
        if self.y_mean is None or self.y_scale is None:
            return Y
        return Y * self.y_scale + self.y_mean


@dataclass
class RawData:
    """Features and labels before encoding and splitting."""

    name: str
    X: np.ndarray
    labels: list[Any]
    feature_names: tuple[str, ...]
    standardize: bool = True
    split: bool = True
    label_name: str = "label"
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ sources --
def xor_raw() -> RawData:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return RawData("xor", X, [0, 1, 1, 0], ("x1", "x2"), standardize=False, split=False)


IRIS_FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")


def _sklearn_raw(name: str) -> RawData:
    """digits or iris from the CSV files bundled in scikit-learn's package folder (found, not imported:
    importing scikit-learn costs more than a whole digits training run)."""
    import gzip
    import importlib.util

    found = importlib.util.find_spec("sklearn")
    if found is None or found.origin is None:
        raise DataError(
            f'--data {name} needs scikit-learn (its bundled data, no download): pip install "symprop[train]"'
        )
    folder = Path(found.origin).parent / "datasets" / "data"
    if name == "digits":
        with gzip.open(folder / "digits.csv.gz", "rt") as handle:
            table = np.loadtxt(handle, delimiter=",")
        names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
        return RawData(name, table[:, :-1], [int(t) for t in table[:, -1]], names, label_name="digit")
    with (folder / "iris.csv").open() as handle:
        first = handle.readline().strip().split(",")
        table = np.loadtxt(handle, delimiter=",")
    species = first[2:]
    return RawData(name, table[:, :-1], [species[int(t)] for t in table[:, -1]], IRIS_FEATURES, label_name="species")


def non_finite_label(value: Any) -> bool:
    """Is a label missing or a non-finite number (None, NaN, ``"nan"``, ``"-inf"``, ...)?  Such a label is
    never a class nor a regression target."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(str(value).strip()))
    except ValueError:
        return False


def _missing_error(where: str, name: str) -> DataError:
    return DataError(
        f"{where}: column {quote(name)} is empty (a missing value); fill it, or train with --missing drop "
        "(skip such rows) or --missing mean (fill in the train-split mean)"
    )


def _feature_error(where: str, name: str, index: int, cell: str, is_last_label: bool) -> DataError:
    fix = (
        f"if {quote(name)} is the label, add --label {_option_value(name, index)}; "
        f"otherwise drop it with --drop {_option_value(name, index)}"
    )
    if not is_last_label:
        fix = f"drop it with --drop {_option_value(name, index)} or choose it as --label"
    return DataError(
        f"{where}: column {quote(name)} is {quote(cell)}, not a finite number; features are numbers: {fix}"
    )


def _option_value(name: str, index: int) -> str:
    plain = name and all(c.isalnum() or c in "_.-" for c in name) and not name.isdigit()
    return name if plain else str(index)


def _looks_like_index(values: np.ndarray) -> bool:
    n = values.shape[0]
    if n < 3:
        return False
    steps = np.arange(n, dtype=np.float64)
    return bool(np.array_equal(values, steps) or np.array_equal(values, steps + 1))


def csv_raw(path: str | Path, options: TableOptions | None = None) -> RawData:
    """Read a CSV: a header row, numeric feature columns, the label column (default: the last)."""
    options = options or TableOptions()
    table = read_table(path, options.delimiter)
    p, header, header_line = table.path, table.header, table.header_line
    if len(header) < 2:
        raise DataError(
            f"{p} line {header_line}: the header has 1 column; need feature columns and the label "
            "(is the delimiter right? force it with --delimiter)"
        )
    if all(number(h) is not None for h in header):
        raise DataError(f"{p} line {header_line}: the first row is all numbers; add a header row with column names")
    table.check_rows()
    cols = pick_columns(p, header, options)
    notes: list[str] = []
    if options.missing != "error":  # rows whose label is missing cannot be used at all
        n = table.n_rows
        table.keep([i for i, (_, row) in enumerate(table.rows) if not is_missing(row[cols.label])])
        if table.n_rows < n:
            notes.append(f"dropped {n - table.n_rows} row(s) whose label is empty (--missing {options.missing})")
        if not table.rows:
            raise DataError(f"{p}: every row's label is empty; fill the label column {quote(header[cols.label])}")
    width = len(header)
    features = np.empty((table.n_rows, len(cols.features)))
    for k, j in enumerate(cols.features):
        column = table.numbers(j)
        assert column is not None  # CSV cells are text: always parsed
        if column.blank.any() and options.missing == "error":
            raise _missing_error(table.where(int(np.argmax(column.blank))), header[j])
        if column.bad.size:
            i = int(column.bad[0])
            last_is_label = cols.label == width - 1 and j != width - 1
            raise _feature_error(table.where(i), header[j], j, table.cell(i, j), last_is_label)
        features[:, k] = column.values
    labels = table.labels(cols.label)
    for i, label in enumerate(labels):
        if not label:
            raise DataError(
                f"{table.where(i)}: the label (column {quote(header[cols.label])}) is empty; "
                "fill it, or use --missing drop"
            )
        if non_finite_label(label):
            raise DataError(
                f"{table.where(i)}: the label (column {quote(header[cols.label])}) is {quote(label)}, not a class or "
                "a finite number; fix or remove that row"
            )
    names = tuple(header[j] for j in cols.features)
    notes += _index_notes(np.nan_to_num(features), names)
    return RawData(p.name, features, labels, names, label_name=header[cols.label], notes=notes)


def _index_notes(features: np.ndarray, names: Sequence[str]) -> list[str]:
    return [
        f"column {quote(name)} holds 0, 1, 2, ... (or 1, 2, 3, ...) in row order, like a row index; "
        f"if it is one, drop it with --drop {_option_value(name, j)}"
        for j, name in enumerate(names)
        if _looks_like_index(features[:, j])
    ]


def parquet_raw(path: str | Path, options: TableOptions | None = None) -> RawData:
    """Read a Parquet file (pyarrow): numeric feature columns, the label column (default: the last)."""
    options = options or TableOptions()
    table = read_table(path)
    p, header = table.path, table.header
    if len(header) < 2:
        raise DataError(f"{p}: {len(header)} column(s); need feature columns and the label")
    if table.n_rows == 0:
        raise DataError(f"{p}: no rows; add one row per sample")
    cols = pick_columns(p, header, options)
    features = np.empty((table.n_rows, len(cols.features)))
    for k, j in enumerate(cols.features):
        column = table.numbers(j)
        if column is None:
            raise DataError(
                f"{p}: column {quote(header[j])} has type {table.arrow.column(j).type}, not numbers; features are "
                f"numbers: drop it with --drop {_option_value(header[j], j)} or choose it as --label"
            )
        if column.bad.size:
            i = int(column.bad[0])
            raise DataError(f"{table.where(i)}: column {quote(header[j])} is {column.values[i]}, not a finite number")
        if column.blank.any() and options.missing == "error":
            raise _missing_error(table.where(int(np.argmax(column.blank))), header[j])
        features[:, k] = column.values
    labels = table.labels(cols.label)
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in labels):
        raise DataError(f"{p}: the label column {quote(header[cols.label])} has empty values")
    bad_label = next((i for i, v in enumerate(labels) if non_finite_label(v)), None)
    if bad_label is not None:
        raise DataError(
            f"{table.where(bad_label)}: the label (column {quote(header[cols.label])}) is "
            f"{quote(labels[bad_label])}, not a class or a finite number; fix or remove that row"
        )
    names = tuple(header[j] for j in cols.features)
    notes = _index_notes(features, names)
    return RawData(p.name, features, [str(v) for v in labels], names, label_name=header[cols.label], notes=notes)


def load_raw(name: str, options: TableOptions | None = None) -> RawData:
    """The raw data for ``--data NAME``: a built-in name or a path ending in .csv or .parquet."""
    table = is_table_path(name)
    if options is not None and (options.label, options.drop, options.delimiter) != (None, (), None) and not table:
        raise DataError(f"--label, --drop and --delimiter apply to CSV and Parquet files, not --data {name}")
    if name == "xor":
        return xor_raw()
    if name in ("digits", "iris"):
        return _sklearn_raw(name)
    if name.lower().endswith(".csv"):
        return csv_raw(name, options)
    if table:
        return parquet_raw(name, options)
    close = difflib.get_close_matches(name, BUILTIN, n=1, cutoff=0.5)
    hint = f"did you mean {quote(close[0])}? " if close else ""
    raise DataError(
        f"unknown data set {quote(name)}; {hint}use one of {', '.join(BUILTIN)} or a path ending in .csv or .parquet"
    )


# ----------------------------------------------------------------- encoding --
def is_regression(labels: Sequence[Any], spec: Spec) -> bool:
    """Are these labels regression targets for ``spec`` (see the module doc)?"""
    if spec.loss not in REGRESSION_LOSSES:
        return False
    values = [number(str(label)) for label in labels]
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
        index_like = [name for j, name in enumerate(raw.feature_names) if _looks_like_index(raw.X[:, j])]
        if index_like and raw.X.shape[1] - len(index_like) == spec.inputs:
            drops = ",".join(_option_value(n, raw.feature_names.index(n)) for n in index_like)
            raise DataError(
                f"{_where(spec)}: inputs = {spec.inputs}, but {raw.name} has {raw.X.shape[1]} feature columns; "
                f"{', '.join(quote(n) for n in index_like)} looks like a row index (0, 1, 2, ...): drop it with "
                f"--drop {drops}"
            )
        shown = ", ".join(quote(n) for n in raw.feature_names[:8]) + (", ..." if len(raw.feature_names) > 8 else "")
        raise DataError(
            f"{_where(spec)}: inputs = {spec.inputs}, but {raw.name} has {raw.X.shape[1]} feature columns "
            f"({shown}; label {quote(raw.label_name)}); set inputs = {raw.X.shape[1]} in the spec, or choose the label "
            "with --label and ignore columns with --drop"
        )
    if is_regression(raw.labels, spec):
        if spec.outputs != 1:
            raise DataError(
                f"{_where(spec)}: {raw.name} has one numeric label column (regression), but the last layer has "
                f"units = {spec.outputs}; set units = 1 in the last [[layers]] table"
            )
        Y = np.array([float(str(label)) for label in raw.labels]).reshape(-1, 1)
        return "regression", Y, ()
    classes = Classes.of(raw.labels)
    names, k = classes.names, len(classes.keys)
    if k < 2:
        raise DataError(
            f"{raw.name}: the label column has one class ({quote(names[0])}) in all {len(raw.labels)} rows; "
            "classification needs at least two"
        )
    if spec.outputs != k and not (spec.outputs == 1 and k == 2):
        two = " (or units = 1 for a single 0/1 output)" if k == 2 and spec.loss != "softmax_ce" else ""
        raise DataError(
            f"{_where(spec)}: {raw.name} has {k} classes, but the last layer has units = {spec.outputs}; "
            f"set units = {k} in the last [[layers]] table{two}"
        )
    return "classification", one_hot(classes.codes(raw.labels), spec.outputs), names


def split_indices(
    n: int, test_fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of range(n) cut into (train, test) indices.

    ``strata`` (one class code per row): stratified, each class gives its share of the test rows
    (the exact shares rounded down, the rows left over given to the largest remainders, ties to the
    first class), so every split keeps the class proportions; the total is the unstratified one."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = math.ceil(test_fraction * n - 1e-9)  # rounded up, as scikit-learn's train_test_split
    if n - n_test < 1:
        raise DataError(f"--test-fraction {test_fraction} leaves no training rows out of {n}; use a smaller fraction")
    if strata is None:
        return order[n_test:], order[:n_test]
    classes, counts = np.unique(strata, return_counts=True)
    exact = counts * n_test / n
    share = np.floor(exact + 1e-9).astype(int)
    left = n_test - int(share.sum())
    for c in sorted(range(len(classes)), key=lambda c: (-(exact[c] - share[c]), c))[:left]:
        share[c] += 1
    is_test = np.zeros(n, dtype=bool)
    shuffled = strata[order]
    for c, k in zip(classes, share, strict=True):
        is_test[order[shuffled == c][:k]] = True
    return order[~is_test[order]], order[is_test[order]]


def standardizer(X: np.ndarray, names: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of the columns of X; scale 1 for a constant column.

    A column whose mean or deviation is not finite (values near ±1e308 overflow the sums) is a
    DataError naming it: zeroing it silently would train on garbage.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
    bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))
    if bad.size:
        j = int(bad[0])
        name = names[j] if j < len(names) else f"column {j}"
        raise DataError(
            f"column {quote(name)}: its values are too large to standardize (the deviation overflows float64); "
            "rescale that column (e.g. divide it by 1e300) or drop it with --drop"
        )
    scale[scale == 0] = 1.0
    return mean, scale


def load(
    name: str,
    spec: Spec,
    test_fraction: float = 0.25,
    seed: int = 0,
    *,
    validation_fraction: float = 0.0,
    options: TableOptions | None = None,
    scale_targets: bool = True,
    stratify: bool = True,
) -> Dataset:
    """Load ``--data NAME``, encode it for ``spec``, split it and standardize features (and
    regression targets, when ``scale_targets`` and the last layer is identity).

    Classification splits (test, then validation) are stratified unless ``stratify`` is False.
    Blank feature cells (``options.missing``): rows dropped before the split, or filled with the
    mean of the train split (``Dataset.impute_means``)."""
    if not 0 <= test_fraction < 1:
        raise DataError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if not 0 <= validation_fraction < 1:
        raise DataError(f"--validation-fraction must be in [0, 1), got {validation_fraction}")
    raw = load_raw(name, options)
    missing = options.missing if options is not None else "error"
    if missing not in MISSING_CHOICES:
        raise DataError(f"--missing {quote(missing)}: use one of {', '.join(MISSING_CHOICES)}")
    notes = list(raw.notes)
    holes = np.isnan(raw.X).any(axis=1)
    if missing == "drop" and holes.any():
        keep = ~holes
        if not keep.any():
            raise DataError(f"{raw.name}: every row has a missing value; use --missing mean instead of drop")
        notes.append(f"dropped {int(holes.sum())} of {holes.size} rows with missing values (--missing drop)")
        raw = RawData(
            raw.name,
            raw.X[keep],
            [label for label, k in zip(raw.labels, keep, strict=True) if k],
            raw.feature_names,
            raw.standardize,
            raw.split,
            raw.label_name,
            raw.notes,
        )
    task, Y, classes = encode(raw, spec)
    X = raw.X
    strata = None
    if task == "classification" and stratify:
        strata = class_codes(Y)
    if raw.split:
        train, test = split_indices(X.shape[0], test_fraction, seed, _strata_fit(strata, test_fraction))
        X_train, Y_train, X_test, Y_test = X[train], Y[train], X[test], Y[test]
        strata = None if strata is None else strata[train]
    else:
        X_train, Y_train, X_test, Y_test = X, Y, X, Y
        notes.append(f"{raw.name} has {X.shape[0]} rows: train and test are all of them")
    X_val = Y_val = None
    if validation_fraction > 0:
        keep, val = split_indices(
            X_train.shape[0], validation_fraction, seed + 1, _strata_fit(strata, validation_fraction)
        )
        if val.size == 0:
            raise DataError(f"--validation-fraction {validation_fraction} leaves no validation rows; use a larger one")
        if keep.size == 0:
            raise DataError(f"--validation-fraction {validation_fraction} leaves no training rows; use a smaller one")
        X_train, Y_train, X_val, Y_val = X_train[keep], Y_train[keep], X_train[val], Y_train[val]
    impute_means = None
    if missing == "mean" and np.isnan(X).any():
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            impute_means = np.nanmean(X_train, axis=0)
        empty = np.flatnonzero(~np.isfinite(impute_means))
        if empty.size:
            name_j = raw.feature_names[int(empty[0])]
            raise DataError(f"column {quote(name_j)} has no values in the train split; drop it with --drop")
        count = int(np.isnan(X).sum())
        X_train = np.where(np.isnan(X_train), impute_means, X_train)
        X_test = np.where(np.isnan(X_test), impute_means, X_test)
        X_val = None if X_val is None else np.where(np.isnan(X_val), impute_means, X_val)
        notes.append(f"filled {count} missing value(s) with the train-split column means (--missing mean)")
    mean = scale = y_mean = y_scale = None
    if raw.standardize:
        mean, scale = standardizer(X_train, raw.feature_names)
        X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
        X_val = None if X_val is None else (X_val - mean) / scale
    if task == "regression":
        if scale_targets and spec.layers[-1].activation == "identity":
            y_mean, y_scale = standardizer(Y_train, (raw.label_name,))
            Y_train, Y_test = (Y_train - y_mean) / y_scale, (Y_test - y_mean) / y_scale
            Y_val = None if Y_val is None else (Y_val - y_mean) / y_scale
        elif scale_targets:
            notes.append(
                f"targets not standardized: the last layer is {spec.layers[-1].activation}, not identity, "
                "so the scaling could not be folded into the saved params"
            )

    def contiguous(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a)

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
        X_val=contiguous(X_val),
        Y_val=contiguous(Y_val),
        y_mean=y_mean,
        y_scale=y_scale,
        label_name=raw.label_name,
        impute_means=impute_means,
    )


def _strata_fit(strata: np.ndarray | None, fraction: float) -> np.ndarray | None:
    """The strata, or None when a stratified split cannot give every class a row on both sides
    (a class with a single row): then the split is plain, as scikit-learn would refuse it."""
    if strata is None or fraction <= 0:
        return None
    counts = np.bincount(strata)
    return strata if counts[counts > 0].min() >= 2 else None


__all__ = [
    "BUILTIN",
    "DataError",
    "Dataset",
    "TableOptions",
    "check_header",
    "csv_raw",
    "encode",
    "is_missing",
    "is_table_path",
    "load",
    "load_raw",
    "non_finite_label",
    "parquet_raw",
    "pick_columns",
    "sniff_delimiter",
    "split_indices",
    "standardizer",
]
