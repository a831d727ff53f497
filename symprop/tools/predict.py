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

Every output path is checked before any work, and the CSV is written atomically.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np

from symprop.tools.datasets import DataError, read_parquet
from symprop.tools.paramfile import ParamsError, Saved, load_params
from symprop.tools.train import TrainError, check_output_path


def read_features(
    path: str, names: tuple[str, ...], delimiter: str | None, means: np.ndarray | None = None
) -> np.ndarray:
    """The columns ``names`` of a CSV or Parquet file, as float64 (rows, len(names)).

    A blank CSV cell takes ``means[j]`` (the train-split means saved by ``train --missing mean``);
    without them it is an error naming the row and column."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        table = read_parquet(p)
        header = [str(c) for c in table.column_names]
        _require(p, header, names)
        columns = []
        for name in names:
            try:
                columns.append(np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64))
            except (TypeError, ValueError):
                raise DataError(f"{p}: column {name!r} is not numeric") from None
        X = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
        bad = np.argwhere(~np.isfinite(X))
        if bad.size:
            raise DataError(f"{p} row {int(bad[0][0])}: column {names[int(bad[0][1])]!r} is not a finite number")
        return X
    from symprop.tools.datasets import _number, _read_rows, is_missing

    rows, _ = _read_rows(p, delimiter)
    if not rows:
        raise DataError(f"{p}: the file is empty; expected a header row, then one row per sample")
    header = [h.strip() for h in rows[0][1]]
    _require(p, header, names)
    index = [header.index(n) for n in names]
    X = np.empty((len(rows) - 1, len(names)))
    for k, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(f"{p} line {line}: {len(row)} fields, expected {len(header)} as in the header")
        for j, col in enumerate(index):
            value = _number(row[col].strip())
            if value is None and means is not None and is_missing(row[col]):
                value = float(means[j])
            elif value is None and is_missing(row[col]):
                raise DataError(
                    f"{p} line {line}: column {names[j]!r} is empty (a missing value); fill it, or predict with "
                    "params trained with --missing mean (they carry the means to fill in)"
                )
            if value is None:
                raise DataError(f"{p} line {line}: column {names[j]!r} is {row[col].strip()!r}, not a finite number")
            X[k, j] = value
    if X.shape[0] == 0:
        raise DataError(f"{p}: only a header row; add one row per sample below it")
    return X


def _require(p: Path, header: list[str], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in header]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
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
) -> tuple[list[str], list[list[str]]]:
    outputs = module.forward(saved.params, X)
    header: list[str] = []
    columns: list[list[str]] = []
    if saved.classes:
        n = len(saved.classes)
        codes = (outputs[:, 0] > 0.5).astype(int) if outputs.shape[1] == 1 else np.argmax(outputs, axis=1)
        if proba:
            probs = probabilities(outputs, loss, n)
            header += [f"proba_{c}" for c in saved.classes]
            columns += [[repr(float(v)) for v in probs[:, j]] for j in range(n)]
        header.append("prediction")
        columns.append([saved.classes[c] for c in codes])
    else:
        if proba:
            raise TrainError("--proba is for classifiers; these params are a regression model (no classes saved)")
        names = ["prediction"] if outputs.shape[1] == 1 else [f"prediction_{j}" for j in range(outputs.shape[1])]
        header += names
        columns += [[repr(float(v)) for v in outputs[:, j]] for j in range(outputs.shape[1])]
    return header, [list(row) for row in zip(*columns, strict=True)]


def run_predict(
    spec_path: str,
    params: str,
    data: str,
    *,
    output: str | None = None,
    proba: bool = False,
    delimiter: str | None = None,
    out: str = ".symprop",
    mode: str = "auto",
    stdout: IO[str] | None = None,
) -> int:
    """``symprop predict``: check the output paths, load the spec, module, params and data, predict,
    write the CSV (to ``output`` atomically, or to standard output)."""
    from symprop.io import write_atomic
    from symprop.spec import load_spec
    from symprop.tools.train import prepare_module

    stream = stdout if stdout is not None else sys.stdout
    out_path = check_output_path("-o", output)
    out_dir = check_output_path("--module-dir", out, folder=True)
    assert out_dir is not None
    spec = load_spec(spec_path)
    check_output_path("--module-dir", str(out_dir / f"{spec.name}.py"))
    if out_path is not None and out_path.resolve() == (out_dir / f"{spec.name}.py").resolve():
        raise TrainError(f"-o {out_path} is the generated module's path; choose another file")
    try:
        saved = load_params(params, spec)
    except ParamsError as exc:
        raise TrainError(str(exc)) from None
    X = read_features(data, saved.feature_names, delimiter, saved.impute_means)
    prepared = prepare_module(spec, out_dir, mode)
    header, rows = predict_table(prepared.module, saved, X, spec.loss, proba)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    prepared.persist()
    if out_path is None:
        stream.write(buffer.getvalue())
    else:
        write_atomic(out_path, buffer.getvalue())
        print(f"wrote {out_path} ({len(rows)} rows)", file=sys.stderr)
    return 0


__all__ = ["Saved", "predict_table", "probabilities", "read_features", "run_predict"]
