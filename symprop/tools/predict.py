"""``symprop predict``: apply trained params (a ``symprop train --save`` file) to new rows.

The ``.npz`` holds the params (taking raw features, giving raw targets: the standardizations
were folded in on save), ``feature_names`` (the input columns in order) and ``classes`` (the
class names in output order; empty for regression).  The data file's feature columns are
found by those names, whatever their position; other columns are ignored.

Output: a CSV with a header whose last column, ``prediction``, holds the class name as it
appeared in the training data (argmax of the outputs; for one output unit, the second class
when the output is > 0.5) or the predicted value (regression).  ``--proba`` adds one column per
class before it, ``proba_<class>``: the softmax of the logits for ``softmax_ce``; for one
output unit (1 - p, p) with p the output clipped to [0, 1]; otherwise the outputs clipped at
0 and divided by their row sum (scores, not calibrated probabilities).

Rows whose outputs are not finite (NaN or infinite: e.g. params holding NaN, or overflow) get
no class: their ``prediction`` (and ``proba_*``) cells are left empty, and one warning line on
stderr says how many rows.  Cells are written through :func:`symprop.io.csv_cell`: a class name
starting with ``= + - @`` (a spreadsheet formula) gets a leading ``'``; numbers stay numbers.

Every output path is checked before any work (``-o`` must differ from the spec, the params and
the data, also through links; an existing ``-o`` file is replaced only if it is a predictions
CSV, recognised by its header as below, or with ``--force``), and the CSV and the module are
written together at the end, all or nothing.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np

from symprop.io import Output, check_folder, check_outputs, csv_text, data_inputs, quote, safe_line, safe_text, show
from symprop.tools.loop import TrainError
from symprop.tools.modcache import commit, prepare_module
from symprop.tools.paramfile import ParamsError, Saved, load_params
from symprop.tools.progress import sayer
from symprop.tools.tables import DataError, read_table
from symprop.tools.targets import class_codes


def read_features(
    path: str, names: tuple[str, ...], delimiter: str | None, means: np.ndarray | None = None
) -> np.ndarray:
    """The columns ``names`` of a CSV or Parquet file, as float64 (rows, len(names)).

    A blank CSV cell takes ``means[j]`` (the train-split means saved by ``train --missing mean``);
    without them it is an error naming the row and column (the first such row)."""
    table = read_table(path, delimiter)
    p = table.path
    _require(p, table.header, names)
    if table.arrow is None:
        table.check_rows()
    columns = [table.numbers(table.header.index(name)) for name in names]
    X = np.empty((table.n_rows, len(names)))
    problems: list[tuple[int, int, str]] = []  # (row, column, message): the first row's is reported
    for j, (name, column) in enumerate(zip(names, columns, strict=True)):
        if column is None:
            raise DataError(f"{p}: column {quote(name)} is not numeric")
        X[:, j] = column.values
        if table.arrow is not None:  # Parquet: a null is not filled in
            bad = np.flatnonzero(~np.isfinite(column.values))
            problems += [(int(i), j, "is not a finite number") for i in bad[:1]]
            continue
        if means is not None:
            X[column.blank, j] = float(means[j])
        else:
            blank = np.flatnonzero(column.blank)
            problems += [(int(i), j, "blank") for i in blank[:1]]
        col = table.header.index(name)
        problems += [(int(i), j, f"is {quote(table.cell(int(i), col))}, not a finite number") for i in column.bad[:1]]
    if problems:
        i, j, what = min(problems)
        if what == "blank":
            raise DataError(
                f"{table.where(i)}: column {names[j]!r} is empty (a missing value); fill it, or predict with "
                "params trained with --missing mean (they carry the means to fill in)"
            )
        raise DataError(f"{table.where(i)}: column {quote(names[j])} {what}")
    return X


def _require(p: Path, header: list[str], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in header]
    if missing:
        shown = ", ".join(quote(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{p}: missing feature column(s) {shown}, which the params were trained on")


def probabilities(outputs: np.ndarray, loss: str, n_classes: int) -> np.ndarray:
    if outputs.shape[1] == 1 and n_classes == 2:
        p = np.clip(outputs[:, 0], 0.0, 1.0)
        return np.column_stack([1.0 - p, p])
    if loss == "softmax_ce":
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    scores = np.clip(outputs, 0.0, None)
    total = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, total, out=np.full_like(scores, 1.0 / n_classes), where=total > 0)


def predict_table(
    module: Any, saved: Saved, X: np.ndarray, loss: str, proba: bool
) -> tuple[list[str], list[list[str]], int]:
    """(header, rows, number of rows left empty): a row whose outputs are not all finite gets empty
    cells, never a class or a number."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        outputs = module.forward(saved.params, X)
    finite = np.all(np.isfinite(outputs), axis=1)
    header: list[str] = []
    columns: list[list[str]] = []

    def cells(values: np.ndarray) -> list[str]:
        return [repr(float(v)) if ok else "" for v, ok in zip(values, finite, strict=True)]

    if saved.classes:
        n = len(saved.classes)
        safe = np.where(finite[:, None], outputs, 0.0)
        codes = class_codes(safe)
        if proba:
            probs = probabilities(safe, loss, n)
            header += [f"proba_{c}" for c in saved.classes]
            columns += [cells(probs[:, j]) for j in range(n)]
        header.append("prediction")
        columns.append([saved.classes[c] if ok else "" for c, ok in zip(codes, finite, strict=True)])
    else:
        if proba:
            raise TrainError("--proba is for classifiers; these params are a regression model (no classes saved)")
        names = ["prediction"] if outputs.shape[1] == 1 else [f"prediction_{j}" for j in range(outputs.shape[1])]
        header += names
        columns += [cells(outputs[:, j]) for j in range(outputs.shape[1])]
    return header, [list(row) for row in zip(*columns, strict=True)], int(np.count_nonzero(~finite))


def is_predictions_csv(path: Path) -> bool:
    """Is ``path`` a CSV that ``predict -o`` wrote?  Its first row is exactly a header predict writes:
    ``prediction``; ``prediction_0, ..., prediction_<k-1>``; or ``proba_<class>`` columns then
    ``prediction``."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = handle.readline(65536)
    except (OSError, UnicodeDecodeError):
        return False
    try:
        header = next(csv.reader([first]), [])
    except csv.Error:
        return False
    if header == ["prediction"]:
        return True
    if len(header) >= 2 and header == [f"prediction_{j}" for j in range(len(header))]:
        return True
    return len(header) >= 3 and header[-1] == "prediction" and all(h.startswith("proba_") for h in header[:-1])


def run_predict(
    spec_path: str,
    params: str,
    data: str,
    *,
    output: str | None = None,
    proba: bool = False,
    force: bool = False,
    delimiter: str | None = None,
    out: str = ".symprop",
    mode: str = "auto",
    stdout: IO[str] | None = None,
) -> int:
    """``symprop predict``: check the output paths, load the spec, module, params and data, predict,
    write the CSV (to ``output`` atomically, or to standard output)."""
    from symprop.spec import load_spec

    stream = stdout if stdout is not None else sys.stdout
    if delimiter is not None and not data.lower().endswith(".csv"):
        raise TrainError(f"--delimiter applies to CSV files, not --data {show(data)}; drop it")
    out_dir = Path(out)
    check_folder("--module-dir", out_dir)
    spec = load_spec(spec_path)
    outputs = [Output("--module-dir", out_dir / f"{spec.name}.py")]
    out_path = None if output is None else Path(output)
    if out_path is not None:
        outputs.append(Output("-o", out_path, is_predictions_csv, "predictions CSV"))
    inputs = [("the spec", Path(spec_path)), ("--params", Path(params)), *data_inputs(data)]
    check_outputs(outputs, inputs, force=force)
    try:
        saved = load_params(params, spec)
    except ParamsError as exc:
        raise TrainError(str(exc)) from None
    if not saved.feature_names:
        raise TrainError(
            f"--params {show(params)} holds no feature_names, so predict cannot tell which columns to read; "
            "give the file train --save wrote"
        )
    X = read_features(data, saved.feature_names, delimiter, saved.impute_means)
    prepared = prepare_module(spec, out_dir, mode, force=force)
    if prepared.note:
        print(safe_line(f"symprop: note: {prepared.note}"), file=sys.stderr)
    header, rows, empty = predict_table(prepared.module, saved, X, spec.loss, proba)
    if empty:
        print(
            f"symprop: warning: {empty} of {len(rows)} rows gave non-finite outputs (NaN or infinite); "
            "their predictions are left empty",
            file=sys.stderr,
        )
    text = csv_text(header, rows)
    if out_path is None:
        commit(prepared, [])
        stream.write(safe_text(text) if stream.isatty() else text)  # no escapes sent to a terminal
    else:
        commit(prepared, [(out_path, text.encode("utf-8"))])
        sayer(sys.stderr)(f"wrote {out_path} ({len(rows)} rows)")
    return 0


__all__ = ["Saved", "is_predictions_csv", "predict_table", "probabilities", "read_features", "run_predict"]
