"""The one table reader: CSV and Parquet files as a header and checked numeric columns.

``train`` (:mod:`symprop.tools.datasets`), ``predict`` and the Dask engine's header check read
their files through :func:`read_table` (or, for the header only, :func:`check_table_header`):

* CSV: UTF-8 (a leading byte-order mark, as Excel's "CSV UTF-8" writes, is dropped); the
  delimiter sniffed from the first 64 KiB (one of ``, ; tab |``) unless given; blank rows
  skipped; a header row first.  Parquet: pyarrow (``symprop[dask]``).
* Column names are compared after stripping surrounding spaces, case-sensitive; a header that
  names a column twice is refused (a lookup by name would read one of them for both).
* :meth:`Table.numbers` parses one column into float64: a blank cell (or ``NA``, ``NaN``,
  ``null``, ``?``: :func:`is_missing`) is a missing value (NaN, flagged in ``blank``), any other
  cell that is not a finite number is flagged in ``bad``.  What a missing or bad cell means is
  the caller's to say (train: ``--missing``; predict: the saved means), each naming the row.

Errors are :class:`DataError`: one line naming the file, the row and the fix.
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

from symprop.io import quote, read_problem

BUILTIN = ("xor", "digits", "iris")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataError(ValueError):
    """A data set cannot be used; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class TableOptions:
    """How to read a table file: the label column, columns to ignore, the CSV delimiter."""

    label: str | None = None  # a column name or a 0-based index; None: the last column
    drop: tuple[str, ...] = ()
    delimiter: str | None = None  # None: sniffed
    missing: str = "error"  # blank feature cells: "error", "drop" the rows, or impute the train "mean"


def is_table_path(name: str) -> bool:
    return name.lower().endswith((".csv", *PARQUET_SUFFIXES))


def is_parquet_path(name: str | Path) -> bool:
    return str(name).lower().endswith(PARQUET_SUFFIXES)


# ------------------------------------------------------------------- cells --
MISSING_CELLS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
MISSING_CHOICES = ("error", "drop", "mean")


def is_missing(cell: str) -> bool:
    """A blank cell or a usual spelling of "no value" (NA, NaN, null, ?), case-insensitive."""
    return cell.strip().lower() in MISSING_CELLS


def number(text: str) -> float | None:
    """``text`` as a finite float, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_header(p: Path | str, header: Sequence[str], line: int | None = None) -> None:
    """Refuse a header naming a column twice (after stripping spaces; case-sensitive), one line."""
    first: dict[str, int] = {}
    for j, name in enumerate(header):
        key = str(name).strip()
        if key in first:
            where = f"{p} line {line}" if line is not None else f"{p}"
            raise DataError(
                f"{where}: the header names column {quote(key)} twice (columns {first[key]} and {j}, 0-based); "
                "rename one: column names must be unique"
            )
        first[key] = j


# --------------------------------------------------------------------- CSV --
SNIFF_BYTES = 65536
DELIMITERS = ",;\t|"


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample (one of , ; tab |), ',' when the sniffer cannot tell."""
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: min(line.count(d) for line in lines) if lines else 0 for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","


def read_rows(p: Path, delimiter: str | None) -> tuple[list[tuple[int, list[str]]], str]:
    """(line number, fields) of the non-blank rows of a CSV, and the delimiter used."""
    try:
        with p.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a leading BOM is dropped
            sample = handle.read(SNIFF_BYTES)
            used = delimiter if delimiter is not None else sniff_delimiter(sample)
            handle.seek(0)
            rows = list(csv.reader(handle, delimiter=used))
    except csv.Error as exc:
        raise DataError(f"{p}: not a valid CSV ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        missing = f"give a CSV path or one of {', '.join(BUILTIN)}"
        folder, not_text = "give the path of a .csv file", "a data file is a CSV with a header row"
        raise DataError(read_problem(p, exc, missing=missing, folder=folder, not_text=not_text)) from None
    return [(i, row) for i, row in enumerate(rows, start=1) if row and any(cell.strip() for cell in row)], used


def sniff_file(path: str | Path) -> str:
    """The delimiter of a CSV file, from its first 64 KiB."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return sniff_delimiter(handle.read(SNIFF_BYTES))


# ----------------------------------------------------------------- Parquet --
def read_parquet(p: Path) -> Any:
    """A Parquet file as a pyarrow table, its header checked first."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f'{p}: reading Parquet needs pyarrow: pip install "symprop[dask]"') from None
    if not p.exists():
        raise DataError(f"{p}: no such file; check the path")
    try:
        check_header(p, [str(name) for name in pq.read_schema(p).names])  # before pyarrow trips on a repeat
        return pq.read_table(p)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


# ------------------------------------------------------------------- table --
@dataclass(frozen=True)
class Numbers:
    """One column parsed: float64 ``values`` (NaN where ``blank`` and, in a CSV, where ``bad``), and
    the rows in ``bad`` whose cell is neither blank nor a finite number."""

    values: np.ndarray
    blank: np.ndarray
    bad: np.ndarray


@dataclass
class Table:
    """A table file read and its header checked: CSV rows as text, or a pyarrow table."""

    path: Path
    header: list[str]  # stripped, unique
    header_line: int | None = None  # CSV: the header's line number
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # CSV: (line number, cells) below it
    arrow: Any = None  # Parquet: the pyarrow table

    @property
    def n_rows(self) -> int:
        return int(self.arrow.num_rows) if self.arrow is not None else len(self.rows)

    def where(self, i: int) -> str:
        """Data row ``i`` (0-based) as a message names it: ``PATH line N`` (CSV) or ``PATH row i``."""
        return f"{self.path} row {i}" if self.arrow is not None else f"{self.path} line {self.rows[i][0]}"

    def cell(self, i: int, j: int) -> str:
        """The cell as written (CSV, stripped) or its value (Parquet), for a message."""
        if self.arrow is not None:
            return str(self.arrow.column(j)[i].as_py())
        return self.rows[i][1][j].strip()

    def check_rows(self) -> None:
        """CSV: at least one data row, each with as many fields as the header."""
        if not self.rows:
            raise DataError(f"{self.path}: only a header row; add one row per sample below it")
        width = len(self.header)
        for line, row in self.rows:
            if len(row) != width:
                raise DataError(f"{self.path} line {line}: {len(row)} fields, expected {width} as in the header")

    def numbers(self, j: int) -> Numbers | None:
        """Column ``j`` as numbers (see the module doc); None for a Parquet column whose type is not numeric."""
        if self.arrow is not None:
            try:
                values = np.asarray(self.arrow.column(j).to_numpy(zero_copy_only=False), dtype=np.float64)
            except (TypeError, ValueError):
                return None
            blank = np.isnan(values)  # a null or NaN cell: a missing value
            return Numbers(values, blank, np.flatnonzero(~np.isfinite(values) & ~blank))
        cells = [row[j] for _, row in self.rows]
        blank = np.array([is_missing(cell) for cell in cells], dtype=bool)
        filled = [("nan" if b else cell) for cell, b in zip(cells, blank, strict=True)]
        try:
            column = np.array(filled, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(column) & ~blank)
        except ValueError:  # some cell is not a number: parse them one by one (NaN where bad)
            parsed = [None if b else number(cell.strip()) for cell, b in zip(cells, blank, strict=True)]
            bad = np.array([i for i, v in enumerate(parsed) if v is None and not blank[i]])
            column = np.array([np.nan if v is None else v for v in parsed], dtype=np.float64)
        column[blank] = np.nan
        return Numbers(column, blank, bad.astype(np.int64))

    def labels(self, j: int) -> list[Any]:
        """Column ``j`` as written: stripped text (CSV) or Python values (Parquet; None for a null)."""
        if self.arrow is not None:
            return list(self.arrow.column(j).to_pylist())
        return [row[j].strip() for _, row in self.rows]

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only these data rows (CSV)."""
        self.rows = [self.rows[i] for i in rows]


def read_table(path: str | Path, delimiter: str | None = None) -> Table:
    """Read a CSV or Parquet file: its header stripped and checked for repeated names (see the module doc)."""
    p = Path(path)
    if is_parquet_path(p):
        arrow = read_parquet(p)
        header = [str(name).strip() for name in arrow.column_names]
        check_header(p, header)
        return Table(p, header, arrow=arrow)
    numbered, _ = read_rows(p, delimiter)
    if not numbered:
        raise DataError(f"{p}: the file is empty; expected a header row, then one row per sample")
    header_line, first = numbered[0]
    header = [h.strip() for h in first]
    check_header(p, header, header_line)
    return Table(p, header, header_line, numbered[1:])


def check_table_header(path: str | Path, delimiter: str | None = None) -> None:
    """Only the header check of :func:`read_table`, reading the header alone (a Parquet schema, a
    CSV's first 64 KiB); a file that cannot be read is left to the reader that reads it."""
    p = Path(path)
    if is_parquet_path(p):
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(p).names
        except (ImportError, OSError, ValueError):
            return
        check_header(p, [str(n) for n in names])
        return
    try:
        with open(p, encoding="utf-8-sig", newline="") as handle:
            sample = handle.read(SNIFF_BYTES)
    except (OSError, UnicodeDecodeError):
        return
    used = delimiter if delimiter is not None else sniff_delimiter(sample)
    rows = [row for row in csv.reader(sample.splitlines(), delimiter=used) if row]
    if rows:
        check_header(str(path), rows[0], 1)


# ----------------------------------------------------------------- columns --
def column_index(p: Path, header: Sequence[str], key: str, option: str) -> int:
    """A column named ``key``, else ``key`` as a 0-based (or negative) index."""
    if key in header:
        return list(header).index(key)
    try:
        index = int(key)
    except ValueError:
        close = difflib.get_close_matches(key, list(header), n=1, cutoff=0.6)
        hint = f"did you mean {quote(close[0])}? " if close else ""
        raise DataError(
            f"{p}: {option} {quote(key)} is not a column; {hint}give a name from the header or a 0-based index"
        ) from None
    if not -len(header) <= index < len(header):
        raise DataError(f"{p}: {option} {index} is out of range; the header has {len(header)} columns (0-based)")
    return index % len(header)


@dataclass(frozen=True)
class Columns:
    """Which header columns are features and which is the label."""

    label: int
    features: tuple[int, ...]


def pick_columns(p: Path, header: Sequence[str], options: TableOptions) -> Columns:
    label = len(header) - 1 if options.label is None else column_index(p, header, options.label, "--label")
    dropped = {column_index(p, header, key, "--drop") for key in options.drop}
    if label in dropped:
        raise DataError(f"{p}: column {quote(header[label])} is both the label and dropped; remove it from --drop")
    features = tuple(j for j in range(len(header)) if j != label and j not in dropped)
    if not features:
        raise DataError(f"{p}: no feature columns are left after the label and --drop")
    return Columns(label, features)


__all__ = [
    "BUILTIN",
    "MISSING_CHOICES",
    "Columns",
    "DataError",
    "Numbers",
    "Table",
    "TableOptions",
    "check_header",
    "check_table_header",
    "is_missing",
    "is_parquet_path",
    "is_table_path",
    "number",
    "pick_columns",
    "read_parquet",
    "read_rows",
    "read_table",
    "sniff_delimiter",
    "sniff_file",
]
