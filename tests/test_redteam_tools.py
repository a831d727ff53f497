"""Issue 22, red team round 3, the train/predict surfaces: each class of failure, tried with several
members through the real CLI (one line, exit 2, nothing written; or the right output).

A. outputs never replace inputs or foreign files; a failure after training writes nothing.
B. duplicate column names are refused; non-finite outputs are never a class.
C. hostile .npz contents and --scheduler addresses are one line.  D. a silent or garbage
scheduler ends in bounded time.  E. terminal escapes, BOMs, NaN labels, CSV formulas, huge
values, edited cached modules and ignored options.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.io import OutputError, Transaction, csv_cell, csv_text, quote, safe_line, show
from tests.support import ROOT

CLS_SPEC = (
    'name = "cls"\ninputs = 3\nloss = "softmax_ce"\n\n'
    '[[layers]]\nunits = 4\nactivation = "tanh"\n\n'
    '[[layers]]\nunits = 3\nactivation = "identity"\n'
)
REG_SPEC = (
    'name = "reg"\ninputs = 3\nloss = "mse"\n\n'
    '[[layers]]\nunits = 4\nactivation = "tanh"\n\n'
    '[[layers]]\nunits = 1\nactivation = "identity"\n'
)
ESC = "\x1b"


def blobs(n: int = 30, header: str = "f1,f2,f3,colour", labels: tuple[str, ...] = ("red", "green", "blue")) -> str:
    rng = np.random.default_rng(0)
    lines = [header]
    for k in range(n):
        x = rng.normal(0, 1, 3) + 3 * (k % 3)
        lines.append(f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{labels[k % 3]}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module folder shared by the tests (the generator runs once per spec)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def work(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cls.toml").write_text(CLS_SPEC)
    (tmp_path / "reg.toml").write_text(REG_SPEC)
    (tmp_path / "cls.csv").write_text(blobs())
    return tmp_path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symprop: error: "), err
    assert "Traceback" not in err
    return lines[0]


def train_args(cache: Path, *more: str) -> list[str]:
    return ["train", "cls.toml", "--data", "cls.csv", "--epochs", "3", "--module-dir", str(cache), *more]


def dask_args(cache: Path, data: str = "cls.csv") -> list[str]:
    """train on Dask with L-BFGS (the options the scheduler and Dask-only checks are tried with)."""
    return ["train", "cls.toml", "--data", data, "--engine", "dask", "--solver", "lbfgs", "--module-dir", str(cache)]


@pytest.fixture
def params(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = cli(train_args(cache, "--save", "cls.npz"), capsys)
    assert code == 0, err
    return work / "cls.npz"


# ----------------------------------------------------------------- A1: outputs --
def _links(work: Path) -> None:
    (work / "link.csv").symlink_to(work / "cls.csv")
    os.link(work / "cls.csv", work / "hard.csv")
    os.link(work / "cls.toml", work / "hard.toml")
    (work / "sub").mkdir()


TRAIN_CLOBBERS = {
    "--save is the data": ["--save", "cls.csv"],
    "--plot is the spec": ["--plot", "cls.toml"],
    "--save is a symlink to the data": ["--save", "link.csv"],
    "--save is a hard link of the data": ["--save", "hard.csv"],
    "--plot is a hard link of the spec": ["--plot", "hard.toml"],
    "--save is the data by another spelling": ["--save", "sub/../cls.csv"],
    "--save is the data by an absolute path": ["--save", "ABS/cls.csv"],
}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("member", list(TRAIN_CLOBBERS))
def test_train_outputs_never_replace_an_input(
    member: str, force: bool, work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _links(work)
    extra = [a.replace("ABS", str(work)) for a in TRAIN_CLOBBERS[member]]
    before = snapshot(work)
    code, out, err = cli(train_args(cache, *extra, *(["--force"] if force else [])), capsys)
    line = one_line_error(code, err)
    assert "input" in line and "choose another" in line
    assert out == "", "refused before any work: no training output"
    assert snapshot(work) == before


def test_outputs_must_differ_from_each_other_and_from_the_module(
    work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work)
    for extra in (["--save", "p.npz", "--plot", "p.npz"], ["--save", str(cache / "cls.py")]):
        code, _, err = cli(train_args(cache, *extra), capsys)
        assert "same file" in one_line_error(code, err)
    assert snapshot(work) == before


def test_a_data_folder_input_is_protected(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder = work / "data.parquet"
    folder.mkdir()
    table = pa.table({"f1": [1.0, 2.0, 3.0, 4.0], "f2": [1.0, 0.0, 1.0, 0.0], "f3": [0.0] * 4, "y": list("abca")})
    pq.write_table(table, folder / "part-0.parquet")
    before = snapshot(work)
    args = ["train", "cls.toml", "--data", str(folder), "--epochs", "2", "--module-dir", str(cache)]
    code, _, err = cli([*args, "--plot", str(folder / "curve.png")], capsys)
    assert "inside the input folder" in one_line_error(code, err)
    assert snapshot(work) == before


def test_predict_output_never_replaces_an_input(
    work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _links(work)
    (work / "new.csv").write_text(blobs(6))
    before = snapshot(work)
    base = ["predict", "cls.toml", "--params", "cls.npz", "--module-dir", str(cache)]
    for data, output in (
        ("new.csv", "new.csv"),
        ("new.csv", "cls.npz"),
        ("new.csv", "cls.toml"),
        ("cls.csv", "hard.csv"),
        ("link.csv", "cls.csv"),
    ):
        for force in ([], ["--force"]):
            code, out, err = cli([*base, "--data", data, "-o", output, *force], capsys)
            assert "is the input" in one_line_error(code, err), (data, output)
            assert out == ""
    assert snapshot(work) == before


FOREIGN = {
    "--save": ("notes.txt", b"my notes\n"),
    "--plot": ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
}


@pytest.mark.parametrize("option", list(FOREIGN))
def test_train_never_replaces_a_foreign_file_unless_forced(
    option: str, work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    name, content = FOREIGN[option]
    (work / name).write_bytes(content)
    code, out, err = cli(train_args(cache, option, name), capsys)
    line = one_line_error(code, err)
    assert "not written by symprop" in line and "--force" in line and out == ""
    assert (work / name).read_bytes() == content
    code, _, err = cli(train_args(cache, option, name, "--force"), capsys)
    assert code == 0, err
    assert (work / name).read_bytes() != content
    # now it is ours: a second run replaces it without --force
    assert cli(train_args(cache, option, name), capsys)[0] == 0


def test_a_foreign_module_file_is_kept_unless_forced(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "gen").mkdir()
    mine = work / "gen" / "cls.py"
    mine.write_text("print('mine')\n")
    args = ["train", "cls.toml", "--data", "cls.csv", "--epochs", "2", "--module-dir", "gen"]
    code, _, err = cli(args, capsys)
    assert "--force" in one_line_error(code, err)
    assert mine.read_text() == "print('mine')\n"


def test_predict_never_replaces_a_foreign_csv_unless_forced(
    work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "new.csv").write_text(blobs(6))
    base = ["predict", "cls.toml", "--params", "cls.npz", "--data", "new.csv", "--module-dir", str(cache)]
    for foreign in ("id,name\n1,x\n", "prediction_x\n1\n", ""):
        (work / "out.csv").write_text(foreign)
        code, _, err = cli([*base, "-o", "out.csv"], capsys)
        assert "--force" in one_line_error(code, err)
        assert (work / "out.csv").read_text() == foreign
    code, _, err = cli([*base, "-o", "out.csv", "--force"], capsys)
    assert code == 0, err
    assert cli([*base, "-o", "out.csv", "--proba"], capsys)[0] == 0, "our own predictions are replaced"
    assert cli([*base, "-o", "out.csv"], capsys)[0] == 0


# ------------------------------------------------------------ A2: transactions --
def test_plot_title_is_plain_text(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from symprop.io import is_symprop_png

    for name in ("bad$\\frac{$.csv", "x$^{$.csv", "a_{b}$$.csv", "$\\sqrt{}$.csv"):
        shutil.copy(work / "cls.csv", work / name)
        args = ["train", "cls.toml", "--data", name, "--epochs", "2", "--module-dir", str(cache)]
        code, _, err = cli([*args, "--save", "p.npz", "--plot", "c.png", "--force"], capsys)
        assert code == 0, (name, err)
        assert is_symprop_png(work / "c.png")


def test_a_failure_after_training_writes_nothing(
    work: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("matplotlib")
    import symprop.tools.train as train_module

    def broken(*args: object, **kwargs: object) -> bytes:
        raise ValueError("injected plot failure")

    monkeypatch.setattr(train_module, "render_plot", broken)
    gen = tmp_path_factory.mktemp("fresh")  # no cached module: it would be written too
    before = snapshot(work)
    args = ["train", "cls.toml", "--data", "cls.csv", "--epochs", "2", "--module-dir", str(gen)]
    with pytest.raises(ValueError, match="injected"):
        main([*args, "--save", "p.npz", "--plot", "c.png"])
    assert snapshot(work) == before, "no params written"
    assert list(gen.iterdir()) == [], "no module (nor temp file) written"


def test_transaction_writes_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("old")
    t = Transaction()
    t.add(tmp_path / "a.txt", "a")
    t.add(tmp_path / "old.txt", "new")

    def fail(handle: object) -> None:
        raise OSError("disk full")

    t.add(tmp_path / "new" / "deeper" / "b.txt", "b")  # folders it creates are removed again
    t.add_with(tmp_path / "c.txt", fail)
    with pytest.raises(OSError, match="disk full"):
        t.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert (tmp_path / "old.txt").read_text() == "old"
    t = Transaction()
    t.add(tmp_path / "a.txt", "a")
    t.add(tmp_path / "old.txt", b"new")
    t.commit()
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "old.txt").read_text() == "new"


# ---------------------------------------------------------- B3: duplicate names --
DUPLICATES = ["f1,f1,f3,colour", "f1, f1 ,f3,colour", "\ufefff1,f2,f1,colour", "f1,f2,f3,f3", "f1;f2;f2;colour"]


@pytest.mark.parametrize("header", DUPLICATES)
def test_duplicate_column_names_are_refused_by_every_csv_reader(
    header: str, work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = blobs(9, header.replace(";", ","))
    if ";" in header:
        text = text.replace(",", ";")
    (work / "dup.csv").write_text(text, encoding="utf-8")
    for args in (
        ["train", "cls.toml", "--data", "dup.csv", "--epochs", "2", "--module-dir", str(cache)],
        ["predict", "cls.toml", "--params", "cls.npz", "--data", "dup.csv", "--module-dir", str(cache)],
    ):
        code, out, err = cli(args, capsys)
        assert "twice" in one_line_error(code, err), args
        assert out == ""


def test_duplicate_column_names_are_refused_by_the_dask_engine(
    work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    (work / "dup.csv").write_text(blobs(9, "f1,f1,f3,colour"))
    (work / "parts").mkdir()
    (work / "parts" / "a.csv").write_text(blobs(9))
    (work / "parts" / "b.csv").write_text(blobs(9, "f1,f2, f2,colour"))
    data = ["dup.csv", "parts/*.csv"]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = [pa.array([1.0, 2.0]), pa.array([1.0, 2.0]), pa.array([1.0, 2.0]), pa.array(["a", "b"])]
    pq.write_table(pa.Table.from_arrays(columns, names=["f1", "f1", "f3", "y"]), work / "dup.parquet")
    (work / "set").mkdir()
    pq.write_table(pa.Table.from_arrays(columns, names=["f1", "f2", "f2", "y"]), work / "set" / "part.0.parquet")
    data += ["dup.parquet", "set"]
    for name in data:
        args = dask_args(cache, name)
        code, _, err = cli([*args, "--epochs", "2"], capsys)
        assert "twice" in one_line_error(code, err), name


def test_duplicate_column_names_are_refused_in_parquet(
    work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = [pa.array([1.0, 2.0, 3.0, 4.0]), pa.array([0.0, 1.0, 0.0, 1.0]), pa.array([1.0] * 4)]
    for names in (["f1", "f1", "f3", "colour"], ["f1", "f2", "f3 ", "f3"]):
        table = pa.Table.from_arrays([*columns, pa.array(["red", "green", "blue", "red"])], names=names)
        pq.write_table(table, work / "dup.parquet")
        for args in (
            ["train", "cls.toml", "--data", "dup.parquet", "--epochs", "2", "--module-dir", str(cache)],
            ["predict", "cls.toml", "--params", "cls.npz", "--data", "dup.parquet", "--module-dir", str(cache)],
        ):
            code, _, err = cli(args, capsys)
            assert "twice" in one_line_error(code, err), (names, args)


def test_names_differing_in_case_are_two_columns(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "case.csv").write_text(blobs(12, "a,A,b,colour"))
    code, out, err = cli(
        ["train", "cls.toml", "--data", "case.csv", "--epochs", "2", "--module-dir", str(cache)], capsys
    )
    assert code == 0, err
    assert "features: a, A, b" in out


# ------------------------------------------------------------ B7: NaN outputs --
def _forward(saved: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """The 3-4-k tanh/identity network in plain NumPy, independent of the generated module."""
    hidden = np.tanh(X @ saved["W1"].T + saved["b1"])
    return hidden @ saved["W2"].T + saved["b2"]


@pytest.mark.parametrize("poison", ["nan-weight", "inf-bias", "huge-feature"])
def test_non_finite_outputs_are_never_a_class(
    poison: str, work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = dict(np.load(params))
    X = np.array([[0.1, 0.2, 0.3], [3.0, 3.1, 2.9], [6.0, 6.2, 5.8], [1.0, 1.0, 1.0]])
    if poison == "nan-weight":
        saved["W2"] = saved["W2"].copy()
        saved["W2"][1, 0] = np.nan
    elif poison == "inf-bias":
        saved["b2"] = saved["b2"].copy()
        saved["b2"][0] = np.inf
        saved["b2"][1] = -np.inf  # every row: inf - inf somewhere in the softmax
    else:
        # row 2 only: its huge f1 saturates unit 1 (h = 1), and 1e308 * 1 + 1e308 overflows to inf;
        # the other rows have h < 0.01 there, so their first output stays near 1e308, finite
        saved["W1"], saved["b1"] = saved["W1"].copy(), saved["b1"].copy()
        saved["W1"][0], saved["b1"][0] = (1e-3, 0.0, 0.0), 0.0
        saved["W2"], saved["b2"] = saved["W2"].copy(), saved["b2"].copy()
        saved["W2"][0, 0], saved["b2"][0] = 1e308, 1e308
        X[2, 0] = 1e308
    np.savez(work / "bad.npz", **saved)
    (work / "rows.csv").write_text("f1,f2,f3\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    with np.errstate(all="ignore"):
        expected_finite = np.all(np.isfinite(_forward(saved, X)), axis=1)
    code, out, err = cli(
        ["predict", "cls.toml", "--params", "bad.npz", "--data", "rows.csv", "--proba", "--module-dir", str(cache)],
        capsys,
    )
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    empty = [all(cell == "" for cell in row) for row in rows]
    assert empty == list(~expected_finite), (out, expected_finite)
    assert not all(expected_finite)
    classes = {str(c) for c in saved["classes"]}
    assert all(row[-1] in classes for row, e in zip(rows, empty, strict=True) if not e)
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and f"{int(np.sum(~expected_finite))} of 4 rows" in warning[0]


def test_non_finite_regression_outputs_are_left_empty(
    work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3))
    lines = ["a,b,c,y"] + [f"{r[0]:.5f},{r[1]:.5f},{r[2]:.5f},{r.sum() + 0.25:.5f}" for r in X]
    (work / "reg.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "reg.toml", "--data", "reg.csv", "--epochs", "2", "--module-dir", str(cache), "--save", "reg.npz"]
    assert cli(args, capsys)[0] == 0
    saved = dict(np.load(work / "reg.npz"))
    saved["W2"] = np.full_like(saved["W2"], np.nan)
    np.savez(work / "nan.npz", **saved)
    code, out, err = cli(
        ["predict", "reg.toml", "--params", "nan.npz", "--data", "reg.csv", "--module-dir", str(cache)], capsys
    )
    assert code == 0 and "20 of 20 rows" in err
    assert list(csv.reader(out.splitlines()))[1:] == [[""]] * 20  # one empty cell per row ('""' in CSV)


# ---------------------------------------------------------------- C14: .npz --
def _mutations(saved: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray] | bytes]:
    def changed(**arrays: np.ndarray) -> dict[str, np.ndarray]:
        return {**saved, **arrays}

    return {
        "0-d classes": changed(classes=np.array("red")),
        "classes too short": changed(classes=np.array(["a", "b"])),
        "classes too long": changed(classes=np.array(["a", "b", "c", "d"])),
        "classes as numbers": changed(classes=np.array([1.0, 2.0, 3.0])),
        "feature_names too short": changed(feature_names=np.array(["f1", "f2"])),
        "feature_names 2-d": changed(feature_names=np.array([["f1", "f2", "f3"]])),
        "no feature_names": changed(feature_names=np.array([], dtype=str)),
        "W1 as strings": changed(W1=saved["W1"].astype(str)),
        "W1 as objects": b"pickle",
        "b2 of the wrong shape": changed(b2=np.zeros(5)),
        "a corrupt zip": b"truncated",
        "not a zip at all": b"plain text\n",
    }


def test_hostile_npz_contents_are_one_line(
    work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = dict(np.load(params))
    raw = params.read_bytes()
    for name, content in _mutations(saved).items():
        path = work / "hostile.npz"
        if content == b"truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif content == b"pickle":
            np.savez(path, **{**saved, "W1": np.array([{"x": 1}], dtype=object)})
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.savez(path, **content)
        code, out, err = cli(
            ["predict", "cls.toml", "--params", str(path), "--data", "cls.csv", "--module-dir", str(cache)], capsys
        )
        line = one_line_error(code, err)
        assert "--params" in line, name
        assert out == "", name


# ------------------------------------------------------ C15, D16: --scheduler --
BAD_ADDRESSES = ["garbage", "", "tls://127.0.0.1:8786", "ucx://127.0.0.1:8786", "inproc://x", "tcp://127.0.0.1"]
BAD_ADDRESSES += ["127.0.0.1:99999", "tcp://:8786", "http://127.0.0.1:8786", "127.0.0.1:8786/x", "a b:1"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_malformed_scheduler_addresses_are_one_line(
    address: str, work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = dask_args(cache)
    code, out, err = cli([*args, "--scheduler", address], capsys)
    line = one_line_error(code, err)
    assert "--scheduler" in line and "tcp://HOST:PORT" in line
    assert out == ""


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A loopback TCP listener; accepted connections are kept (never answered) until the test ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    yield server, accepted
    for conn in accepted:
        conn.close()
    server.close()


def _serve(server: socket.socket, accepted: list[socket.socket], reply: bytes | None) -> None:
    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            if reply is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(reply)

    threading.Thread(target=loop, daemon=True).start()


REPLIES = {
    "silent": None,
    "http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "huge frame count": (2**62).to_bytes(8, "little") + b"\xff" * 64,
    "plausible size, bad frames": (64).to_bytes(8, "little") + (10**9).to_bytes(8, "little") + b"\0" * 56,
    "a few bytes then silence": b"\x01\x02",
}


@pytest.mark.parametrize("kind", list(REPLIES))
def test_a_scheduler_that_is_silent_or_not_dask_ends_in_bounded_time(
    kind: str,
    listener: tuple[socket.socket, list[socket.socket]],
    work: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("distributed")
    server, accepted = listener
    _serve(server, accepted, REPLIES[kind])
    port = server.getsockname()[1]
    args = dask_args(cache)
    # the bound is the --connect-timeout; the outer limit below only keeps a regression from hanging the suite
    done: list[tuple[int, str, str]] = []
    thread = threading.Thread(
        target=lambda: done.append(cli([*args, "--scheduler", f"127.0.0.1:{port}", "--connect-timeout", "1"], capsys)),
        daemon=True,
    )
    thread.start()
    thread.join(60)
    assert done, "--scheduler did not give up"
    code, _out, err = done[0]
    line = one_line_error(code, err)
    assert f"127.0.0.1:{port}" in line
    assert ("no Dask handshake" in line) if kind in ("silent", "a few bytes then silence") else ("protocol" in line)
    assert not (work / "p.npz").exists()


def test_probe_accepts_a_real_scheduler() -> None:
    distributed = pytest.importorskip("distributed")
    from symprop.tools.distributed import connect, probe_scheduler

    with distributed.LocalCluster(
        n_workers=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None, silence_logs=40
    ) as cluster:
        address = cluster.scheduler_address
        probe_scheduler(address, 5)
        probe_scheduler(address.removeprefix("tcp://"), 5)
        with connect(address, None, 5) as client:
            assert client.submit(sum, [20, 22]).result(timeout=30) == 42


# ------------------------------------------------------------------ E21, E25 --
def test_show_escapes_and_cuts() -> None:
    for hostile in (ESC + "[31mred", "a\x9b2Jb", "x\ry", "rtl\u202eevil", "bell\x07", "nl\nnl", "nul\0"):
        shown = show(hostile)
        assert shown.isprintable() and ESC not in shown and "\x9b" not in shown
    assert show("é ü 中") == "é ü 中", "printable text is kept as it is"
    long = show("x" * 900_000)
    assert len(long) < 200 and "900,000 characters" in long
    assert quote("a" * 10) == "'aaaaaaaaaa'"
    line = safe_line("start " + "y" * 900_000 + " the fix")
    assert len(line) < 1200 and line.startswith("start ") and line.endswith(" the fix")


def test_user_text_never_reaches_the_terminal_raw(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile_header = f"f1,{ESC}[2J{ESC}]0;pwned\x07,f3\x9b31m,colour"
    (work / "esc.csv").write_text(blobs(12, hostile_header, labels=(f"{ESC}[5mred", "green\x07", "blue")))
    code, out, err = cli(
        ["train", "cls.toml", "--data", "esc.csv", "--epochs", "2", "--module-dir", str(cache)], capsys
    )
    assert code == 0, err
    assert "\\x1b[2J" in out and "\\x9b" in out
    for text in (out, err):
        assert ESC not in text and "\x07" not in text and "\x9b" not in text and "\r" not in text
    # an error line quoting a hostile file name, cell and option value
    name = f"{ESC}[31m.csv"
    (work / name).write_text(f"f1,f2,f3,colour\n1,2,{ESC}[1mX,a\n1,2,3,b\n")
    for args in (
        ["train", "cls.toml", "--data", name, "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", "cls.csv", "--label", f"{ESC}]0;x\x07", "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", "cls.csv", "--delimiter", ESC, "--module-dir", str(cache)],
    ):
        code, out, err = cli(args, capsys)
        line = one_line_error(code, err)
        assert ESC not in line and "\x07" not in line


def test_huge_values_are_cut_in_error_lines(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = "v" * 120_000
    (work / "cell.csv").write_text(f"f1,f2,f3,colour\n1,2,{big},a\n1,2,3,b\n")
    (work / "name.csv").write_text(f"f1,f2,{big},colour\n1,2,x,a\n1,2,3,b\n")
    (work / "label.csv").write_text(f"f1,f2,f3,colour\n1,2,3,nan{big}\n1,2,3,b\n")
    for args in (
        ["train", "cls.toml", "--data", "cell.csv", "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", "name.csv", "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", "cls.csv", "--label", big, "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", "cls.csv", "--drop", big, "--module-dir", str(cache)],
        ["train", "cls.toml", "--data", big + ".csv", "--module-dir", str(cache)],
    ):
        code, _, err = cli(args, capsys)
        line = one_line_error(code, err)
        assert len(line) < 1500, len(line)


# ----------------------------------------------------------------------- E22 --
def test_a_utf8_bom_is_not_part_of_the_first_name(
    work: Path, cache: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "bom.csv").write_bytes(b"\xef\xbb\xbf" + blobs(12).encode())
    code, out, err = cli(
        ["train", "cls.toml", "--data", "bom.csv", "--epochs", "2", "--module-dir", str(cache)], capsys
    )
    assert code == 0, err
    assert "features: f1, f2, f3" in out
    (work / "bom_rows.csv").write_bytes(b"\xef\xbb\xbf" + b"f1,f2,f3\n0.1,0.2,0.3\n")
    code, out, err = cli(
        ["predict", "cls.toml", "--params", "cls.npz", "--data", "bom_rows.csv", "--module-dir", str(cache)], capsys
    )
    assert code == 0, err
    (work / "bom.toml").write_bytes(b"\xef\xbb\xbf" + CLS_SPEC.encode())
    code, _, err = cli(["train", "bom.toml", "--data", "cls.csv", "--epochs", "2", "--module-dir", str(cache)], capsys)
    assert code == 0, err


# ----------------------------------------------------------------------- E23 --
@pytest.mark.parametrize("label", ["nan", "NaN", " nan ", "inf", "-Infinity", "+inf"])
def test_a_non_finite_label_is_refused(label: str, work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = blobs(9).splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + "," + label
    (work / "nan.csv").write_text("\n".join(lines) + "\n")
    for spec in ("cls.toml", "reg.toml"):
        code, out, err = cli(["train", spec, "--data", "nan.csv", "--epochs", "2", "--module-dir", str(cache)], capsys)
        line = one_line_error(code, err)
        assert "line 6" in line and "'colour'" in line, line
        assert out == ""


def test_a_nan_label_in_parquet_is_refused(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    for labels in ([1.0, 2.0, float("nan"), 1.0], ["a", "b", "nan", "a"], [0.0, 1.0, float("inf"), 1.0]):
        table = pa.table({"f1": [1.0, 2.0, 3.0, 4.0], "f2": [0.0, 1.0, 0.0, 1.0], "f3": [1.0] * 4, "y": labels})
        pq.write_table(table, work / "nan.parquet")
        code, _, err = cli(["train", "cls.toml", "--data", "nan.parquet", "--module-dir", str(cache)], capsys)
        assert "row 2" in one_line_error(code, err), labels


def test_a_nan_label_is_refused_by_the_dask_engine(work: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    lines = blobs(12).splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",nan"  # pandas reads it as a missing value
    lines[7] = lines[7].rsplit(",", 1)[0] + ",-inf"
    (work / "nan.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "cls.toml", "--data", "nan.csv", "--engine", "dask", "--workers", "1", "--solver", "lbfgs"]
    code, _, err = cli([*args, "--epochs", "2", "--module-dir", str(cache)], capsys)
    line = one_line_error(code, err)
    assert "'colour'" in line and "NaN is never a class" in line


# ----------------------------------------------------------------------- E24 --
def test_csv_cells_neutralise_formulas_but_keep_numbers() -> None:
    for formula in ("=1+1", "+1+cmd", "-2+3-cmd", "@SUM(A1)", "\t=1", "\r=1", ' =HYPERLINK("x")', "=", "-", "-inf"):
        assert csv_cell(formula) == "'" + formula, formula
    for number in ("-1", "-1.5", "-3e-05", "+2", "0", "12"):
        assert csv_cell(number) == number
    for text in ("red", "a=b", "x-1", ""):
        assert csv_cell(text) == text
    assert csv_text(["=h", "v"], [["=1", "-1"]]) == "'=h,v\n'=1,-1\n"


def test_predictions_csv_neutralises_hostile_class_names(
    work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = ('=HYPERLINK("http://x")', "@SUM(1)", "-1")
    (work / "inj.csv").write_text(blobs(30, labels=hostile))
    args = ["train", "cls.toml", "--data", "inj.csv", "--epochs", "2", "--module-dir", str(cache), "--save", "inj.npz"]
    assert cli(args, capsys)[0] == 0
    code, _, err = cli(
        [
            "predict",
            "cls.toml",
            "--params",
            "inj.npz",
            "--data",
            "inj.csv",
            "-o",
            "p.csv",
            "--proba",
            "--module-dir",
            str(cache),
        ],
        capsys,
    )
    assert code == 0, err
    rows = list(csv.reader((work / "p.csv").open()))
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    assert all(not c.startswith("-") or float(c) < 0 for c in cells if c and c[0] == "-")
    predicted = {row[-1] for row in rows[1:]}
    assert predicted <= {"'" + hostile[0], "'" + hostile[1], "-1"}


def test_negative_regression_predictions_stay_numbers(
    work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    lines = ["a,b,c,y"] + [f"{r[0]:.5f},{r[1]:.5f},{r[2]:.5f},{r.sum() - 5:.5f}" for r in X]
    (work / "neg.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "reg.toml", "--data", "neg.csv", "--epochs", "2", "--module-dir", str(cache), "--save", "neg.npz"]
    assert cli(args, capsys)[0] == 0
    code, out, _ = cli(
        ["predict", "reg.toml", "--params", "neg.npz", "--data", "neg.csv", "--module-dir", str(cache)], capsys
    )
    values = [float(v) for v in out.splitlines()[1:]]
    assert code == 0 and any(v < 0 for v in values)


# ----------------------------------------------------------------------- E27 --
def test_an_edited_cached_module_is_regenerated(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "cls.toml", "--data", "cls.csv", "--epochs", "2", "--module-dir", "gen", "--save", "p.npz"]
    assert cli(args, capsys)[0] == 0
    module = work / "gen" / "cls.py"
    pristine = module.read_text()
    code, out, _ = cli(args, capsys)
    assert code == 0 and "(reused," in out
    for edit in (
        pristine + "\nraise SystemExit('edited')\n",
        pristine.replace("def forward(", "def forward_(", 1),
        pristine.replace("np.tanh", "np.sinh"),
        pristine.rsplit("\n", 2)[0] + "\n",  # the hash line removed
    ):
        module.write_text(edit)
        code, out, err = cli(args, capsys)
        assert code == 0, err
        assert "regenerating it" in out and "(generated," in out
        assert module.read_text() == pristine
    module.write_text(pristine + "\nraise SystemExit('edited')\n")
    code, _, err = cli(["predict", "cls.toml", "--params", "p.npz", "--data", "cls.csv", "--module-dir", "gen"], capsys)
    assert code == 0 and "regenerating it" in err
    assert module.read_text() == pristine


# ----------------------------------------------------------------------- E28 --
@pytest.mark.parametrize(
    "extra",
    [
        ["--workers", "3"],
        ["--scheduler", "127.0.0.1:8786"],
        ["--connect-timeout", "5"],
        ["--engine", "local", "--workers", "2"],
        ["--engine", "dask", "--scheduler", "127.0.0.1:8786", "--workers", "2"],
        ["--engine", "dask", "--connect-timeout", "5"],
        ["--engine", "dask", "--scheduler", "127.0.0.1:8786", "--connect-timeout", "-1"],
        ["--lr", "0.1"],  # lbfgs: its own line search
        ["--batch-size", "8"],  # lbfgs: full batch
        ["--delimiter", ";", "--data", "set.parquet"],
        ["--delimiter", ";", "--data", "iris"],
    ],
)
def test_ignored_options_are_refused(
    extra: list[str], work: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        ["train", "cls.toml", "--data", "cls.csv", "--solver", "lbfgs", "--module-dir", str(cache), *extra], capsys
    )
    one_line_error(code, err)
    assert out == ""
    if "--delimiter" in extra:
        code, out, err = cli(["predict", "cls.toml", "--params", "x.npz", "--module-dir", str(cache), *extra], capsys)
        assert "--delimiter" in one_line_error(code, err)


# ----------------------------------------------------------------------- E26 --
def test_ctrl_c_on_the_dask_engine_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    if os.name != "posix":
        pytest.skip("process groups and SIGINT to a group are POSIX")
    (tmp_path / "cls.toml").write_text(CLS_SPEC)
    (tmp_path / "cls.csv").write_text(blobs(300))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["train", "cls.toml", "--data", "cls.csv", "--engine", "dask", "--workers", "2", "--solver", "sgd"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "symprop", *args, "--epochs", "100000", "--lr", "0.001"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's: Ctrl-C reaches every process in it
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until training runs on the workers
            if line.startswith("training:") or time.monotonic() > deadline:
                break
        time.sleep(1.0)
        os.killpg(proc.pid, 2)  # SIGINT to the group, as Ctrl-C does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert lines == ["symprop: interrupted; nothing was written"], err
    assert not (tmp_path / ".symprop" / "cls.py").exists()
    assert not any(p.suffix == ".tmp" for p in tmp_path.rglob("*"))


def test_ctrl_c_inside_a_finalizer_is_kept_for_the_next_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI once saw the E26 run go on training after Ctrl-C: the signal landed while the main thread ran
    a dropped Dask Future's ``__del__``, where Python ignores exceptions (printing "Exception ignored
    in ..."). Here a SIGINT is raised from inside a ``__del__``: nothing may be printed, training code
    that checks must then see the interrupt, and a Ctrl-C outside a finalizer still raises at once."""
    if os.name != "posix":
        pytest.skip("raising SIGINT in-process needs POSIX signals")
    import signal

    from symprop.tools.distributed import _quiet_on_sigint

    ignored: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: ignored.append(info.exc_value))

    class DroppedFuture:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside the finalizer

    with _quiet_on_sigint() as interrupt:
        interrupt()  # nothing pending: no raise
        DroppedFuture()  # dropped at once: __del__ runs now
        assert ignored == []  # the handler did not raise into the finalizer
        with pytest.raises(KeyboardInterrupt):
            interrupt()
    with _quiet_on_sigint(), pytest.raises(KeyboardInterrupt):  # outside a finalizer: raised where it lands
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_output_error_is_a_value_error() -> None:
    assert issubclass(OutputError, ValueError)
