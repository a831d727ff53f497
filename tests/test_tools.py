"""The shared pieces of ``symprop.tools``: one table reader, one target encoding, one module loader,
the train options listed once.  Each is checked against an independent computation (NumPy's
own CSV parser, pyarrow's columns, a one-hot built by comparison, argparse's own parse)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import _parser
from symprop.spec import load_spec
from symprop.tools import datasets
from symprop.tools.loader import cached_module, load_generated, module_from_source
from symprop.tools.options import TrainArgs
from symprop.tools.predict import read_features
from symprop.tools.tables import DataError, read_table
from symprop.tools.targets import Classes, class_codes, one_hot
from tests.support import ROOT

PACKAGE = ROOT / "symprop"
XOR = ROOT / "examples" / "xor.toml"


def _write_csv(path: Path, header: list[str], rows: list[list[object]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


# ------------------------------------------------------------------ tables --
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_columns_equal_numpys_parse(tmp_path: Path, delimiter: str) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 3)) * 10.0 ** rng.integers(-5, 5, size=(7, 3))
    path = tmp_path / "t.csv"
    _write_csv(path, ["a", " b ", "c"], [[repr(float(v)) for v in row] for row in values], delimiter)
    table = read_table(path)  # the delimiter is sniffed
    reference = np.loadtxt(path, delimiter=delimiter, skiprows=1)
    assert table.header == ["a", "b", "c"] and table.n_rows == 7
    for j in range(3):
        column = table.numbers(j)
        assert column is not None
        # the same decimal text parsed by float() on both sides: equal to the last bit
        np.testing.assert_array_equal(column.values, reference[:, j])
        assert not column.blank.any() and column.bad.size == 0


def test_blank_and_bad_cells_are_flagged_with_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _write_csv(path, ["x", "y"], [["1", "a"], ["", "b"], ["NA", "c"], ["abc", "d"], ["inf", "e"], ["2.5", "f"]])
    table = read_table(path)
    column = table.numbers(0)
    assert column is not None
    assert column.blank.tolist() == [False, True, True, False, False, False]
    assert column.bad.tolist() == [3, 4]  # "abc" and "inf": neither blank nor a finite number
    assert column.values[0] == 1.0 and column.values[5] == 2.5 and np.isnan(column.values[1:3]).all()
    assert table.where(3) == f"{path} line 5" and table.cell(3, 0) == "abc"


def test_parquet_and_csv_read_the_same_columns(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(1)
    values = rng.normal(size=(5, 2))
    csv_path, pq_path = tmp_path / "t.csv", tmp_path / "t.parquet"
    _write_csv(csv_path, ["u", "v", "label"], [[repr(float(a)), repr(float(b)), "k"] for a, b in values])
    pq.write_table(pa.table({"u": values[:, 0], "v": values[:, 1], "label": ["k"] * 5}), pq_path)
    from_csv, from_parquet = read_table(csv_path), read_table(pq_path)
    assert from_csv.header == from_parquet.header == ["u", "v", "label"]
    for j in range(2):
        a, b = from_csv.numbers(j), from_parquet.numbers(j)
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.values, b.values)  # repr() round-trips a float64 exactly
    assert from_parquet.numbers(2) is None  # a text column has no numbers
    assert from_csv.labels(2) == from_parquet.labels(2) == ["k"] * 5
    # predict reads both through the same table: the same matrix, columns in the order asked
    for path in (csv_path, pq_path):
        np.testing.assert_array_equal(read_features(str(path), ("v", "u"), None), values[:, ::-1])


def test_a_repeated_column_name_is_refused_by_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _write_csv(path, ["a", "b ", " b"], [[1, 2, 3]])
    with pytest.raises(DataError, match="names column 'b' twice"):
        read_table(path)
    with pytest.raises(DataError, match="names column 'b' twice"):
        datasets.csv_raw(path)
    with pytest.raises(DataError, match="names column 'b' twice"):
        read_features(str(path), ("a",), None)


def test_predict_reports_the_first_bad_row_whatever_the_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _write_csv(path, ["a", "b"], [["1", "2"], ["3", "oops"], ["", "4"]])
    with pytest.raises(DataError, match=r"line 3: column 'b' is 'oops'"):
        read_features(str(path), ("a", "b"), None)
    # with saved means, the blank cell is filled; the bad one is still refused
    with pytest.raises(DataError, match=r"line 3: column 'b' is 'oops'"):
        read_features(str(path), ("a", "b"), None, np.array([0.5, 0.5]))


# ----------------------------------------------------------------- targets --
def test_one_hot_and_class_codes_invert_each_other() -> None:
    rng = np.random.default_rng(2)
    for outputs in (1, 3, 5):
        codes = rng.integers(0, max(outputs, 2), size=40)
        Y = one_hot(codes, outputs)
        assert Y.shape == (40, outputs) and Y.dtype == np.float64
        expected = (codes[:, None] == np.arange(outputs)[None, :]).astype(float) if outputs > 1 else codes[:, None]
        np.testing.assert_array_equal(Y, expected)
        np.testing.assert_array_equal(class_codes(Y), codes)


def test_classes_sort_numbers_as_numbers_and_text_as_text() -> None:
    numeric = Classes.of(["10", "9", "1.0", "1"])
    assert numeric.numeric and numeric.names == ("1", "9", "10")
    np.testing.assert_array_equal(numeric.codes(["10", "1", "9.0"]), [2, 0, 1])
    text = Classes.of(["b", "a", "10", "9"])
    assert not text.numeric and text.names == ("10", "9", "a", "b")


def test_local_and_dask_encode_the_same_labels_alike() -> None:
    pd = pytest.importorskip("pandas")
    from symprop.tools.distributed import Encoding, encode_partition

    spec = load_spec(ROOT / "examples" / "iris_classifier.toml")
    labels = ["virginica", "setosa", "versicolor", "setosa", "virginica", "versicolor"]
    X = np.arange(len(labels) * spec.inputs, dtype=float).reshape(len(labels), spec.inputs)
    raw = datasets.RawData("t", X, labels, tuple(f"f{j}" for j in range(spec.inputs)))
    task, Y_local, names = datasets.encode(raw, spec)
    frame = pd.DataFrame({**{f"f{j}": X[:, j] for j in range(spec.inputs)}, "y": labels})
    classes = Classes.of(labels)
    encoding = Encoding(raw.feature_names, "y", task, classes, spec.outputs, 0.0, 0)
    part = encode_partition(frame, encoding, 0, np.zeros(len(labels), dtype=bool))
    assert names == classes.names == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(part.Y, Y_local)
    np.testing.assert_array_equal(part.X, X)


# ------------------------------------------------------------------ loader --
def test_exec_appears_once_in_the_package() -> None:
    """Generated modules become module objects in one place (ir/interpret.py's ``eval`` of one printed
    expression is not a module and stays there)."""
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "exec":
                calls.append(str(path.relative_to(PACKAGE)))
    assert calls == ["tools/loader.py"]


def test_every_loader_gives_the_same_module(tmp_path: Path) -> None:
    from symprop.emit import generate

    path = generate(load_spec(XOR), tmp_path)
    source = path.read_text(encoding="utf-8")
    from_file, from_text, cached = load_generated(path), module_from_source(source, path), cached_module(source)
    assert cached_module(source) is cached  # executed once per process
    params = from_file.init_params(3)
    X = np.array([[0.0, 1.0], [1.0, 1.0]])
    for module in (from_text, cached):
        # the same code on the same inputs: bit for bit
        np.testing.assert_array_equal(module.forward(params, X), from_file.forward(params, X))
    assert from_file.__file__ == str(path) and from_file.__name__ == f"symprop_generated_{path.stem}"


# ----------------------------------------------------------------- options --
def test_the_cli_parses_into_train_args_with_their_defaults() -> None:
    parser = _parser(light=True)
    parsed = parser.parse_args(["train", "s.toml", "--data", "d.csv"])
    assert TrainArgs.from_namespace(parsed) == TrainArgs("s.toml", "d.csv")
    given = parser.parse_args(
        ["train", "s.toml", "--data", "d.csv", "--drop", " id, x ,", "--no-stratify", "-o", "p.npz", "--epochs", "3"]
    )
    args = TrainArgs.from_namespace(given)
    assert args.drop == ("id", "x") and args.stratify is False and args.save == "p.npz" and args.epochs == 3
    assert TrainArgs.of("s.toml", "d.csv", epochs=3, lr=None) == TrainArgs("s.toml", "d.csv", epochs=3)
