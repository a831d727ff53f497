"""``symprop train --engine dask`` on real LocalClusters of 2 worker processes bound to 127.0.0.1.

Tiny data (wine, 178 rows, in 3 CSV files) so each test takes seconds.  The guarantee checked:
the Dask engine computes the full-batch loss and gradient of the same data as ``--engine
local`` (partition sums combined by a tree), so the final train loss agrees.  Tolerance 1e-8
relative: the two differ only in summation order (~1e-16 per gradient); L-BFGS over ~15
iterations of a well-conditioned problem and 30 full-batch SGD steps amplify that by far less
than 1e8, while any real difference (a dropped partition, rows counted twice, unweighted
partition means, other standardization) changes the loss in the 3rd-4th digit.
"""

from __future__ import annotations

import io
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from symprop.cli import main

distributed = pytest.importorskip("distributed")


def spec_file(tmp: Path, name: str, inputs: int, outputs: int, loss: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ninputs = {inputs}\nloss = "{loss}"\n\n[[layers]]\nunits = 6\nactivation = "tanh"\n\n'
        f'[[layers]]\nunits = {outputs}\nactivation = "identity"\n'
    )
    return path


def split_csv(tmp: Path, loader: str) -> tuple[Path, str]:
    """The whole set as one CSV (for --engine local) and as three files (a glob, for dask)."""
    from sklearn import datasets as skd

    frame = getattr(skd, loader)(as_frame=True).frame
    whole = tmp / "whole.csv"
    frame.to_csv(whole, index=False)
    for i in range(3):
        frame.iloc[i::3].to_csv(tmp / f"part{i}.csv", index=False)
    return whole, str(tmp / "part*.csv")


def train_loss(out: str) -> float:
    values = re.findall(r"^train loss: (\S+)$", out, re.M)
    assert values, out
    return float(values[-1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=40
    ) as c:
        yield c


def test_lbfgs_on_an_embedded_local_cluster_matches_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole, parts = split_csv(tmp_path, "load_wine")
    spec = spec_file(tmp_path, "wine", 13, 3, "softmax_ce")
    common = ["train", str(spec), "--solver", "lbfgs", "--epochs", "15", "--test-fraction", "0"]
    common += ["--module-dir", str(tmp_path / "g")]
    assert main([*common, "--data", str(whole)]) == 0
    local = capsys.readouterr().out
    assert main([*common, "--data", parts, "--engine", "dask", "--workers", "2"]) == 0
    dask = capsys.readouterr().out
    assert (
        "LocalCluster of 2 worker processes on 127.0.0.1" in dask and "2 partitions, 178 train rows" in dask
    )  # default: one per worker
    assert train_loss(dask) == pytest.approx(train_loss(local), rel=1e-8)


def test_full_batch_sgd_regression_matches_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: Any
) -> None:
    whole, parts = split_csv(tmp_path, "load_diabetes")
    spec = spec_file(tmp_path, "diab", 10, 1, "mse")
    common = ["train", str(spec), "--solver", "sgd", "--lr", "0.1", "--epochs", "30", "--test-fraction", "0"]
    common += ["--module-dir", str(tmp_path / "g")]
    assert main([*common, "--data", str(whole), "--batch-size", "442"]) == 0  # one batch: full-batch SGD
    local = capsys.readouterr().out
    save = tmp_path / "p.npz"
    assert (
        main(
            [
                *common,
                "--data",
                parts,
                "--engine",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
                "--save",
                str(save),
            ]
        )
        == 0
    )
    dask = capsys.readouterr().out
    assert train_loss(dask) == pytest.approx(train_loss(local), rel=1e-8)
    # the saved params take raw features and give raw targets: recompute the loss here
    from symprop.tools.train import load_generated

    module = load_generated(tmp_path / "g" / "diab.py")
    data = np.loadtxt(whole, delimiter=",", skiprows=1)
    with np.load(save) as f:
        params = {k: f[k] for k in module.PARAM_SHAPES}
    assert module.loss(params, data[:, :-1], data[:, -1:]) == pytest.approx(train_loss(dask), rel=1e-8)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--solver", "adam"], "--solver adam is refused"),
        (["--solver", "sgd", "--batch-size", "32"], "--batch-size (mini-batches) is refused"),
    ],
)
def test_mini_batch_settings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    _, parts = split_csv(tmp_path, "load_wine")
    spec = spec_file(tmp_path, "wine", 13, 3, "softmax_ce")
    code = main(["train", str(spec), "--data", parts, "--engine", "dask", *extra, "--module-dir", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


class _Signal(io.StringIO):
    """An output stream that sets ``event`` once a progress line for epoch >= 6 was written."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def write(self, text: str) -> int:
        match = re.search(r"^epoch +(\d+)/", text, re.M)
        if match and int(match.group(1)) >= 6:
            self.event.set()
        return super().write(text)


def test_a_worker_killed_mid_run_is_recovered_with_the_same_result(tmp_path: Path, cluster: Any) -> None:
    from symprop.tools.train import run

    _, parts = split_csv(tmp_path, "load_wine")
    spec = spec_file(tmp_path, "wine", 13, 3, "softmax_ce")
    options: dict[str, Any] = dict(
        solver="sgd",
        lr=0.5,
        epochs=60,
        test_fraction=0.0,
        engine="dask",
        scheduler=cluster.scheduler_address,
        out=str(tmp_path / "g"),
    )
    quiet = io.StringIO()
    assert run(str(spec), parts, stdout=quiet, **options) == 0
    expected = train_loss(quiet.getvalue())

    stream = _Signal()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["code"] = run(str(spec), parts, stdout=stream, **options)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    assert stream.event.wait(120), "training never reached epoch 6"
    nanny = next(iter(cluster.workers.values()))
    os.kill(nanny.process.process.pid, signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive()
    assert "error" not in outcome, f"Dask did not recover: {outcome.get('error')!r}"
    assert outcome["code"] == 0
    assert train_loss(stream.getvalue()) == pytest.approx(expected, rel=1e-8)


def test_dask_trains_on_the_local_split(tmp_path: Path, capsys: pytest.CaptureFixture[str], cluster: Any) -> None:
    """One CSV, a stratified 25% test split: the Dask engine holds out exactly the rows --engine local
    holds out (decided before partitioning), so the row counts and the final loss agree (1e-8,
    the module docstring's reasoning), with one partition per worker by default."""
    whole, _ = split_csv(tmp_path, "load_wine")
    spec = spec_file(tmp_path, "wine", 13, 3, "softmax_ce")
    common = ["train", str(spec), "--data", str(whole), "--solver", "lbfgs", "--epochs", "20", "--seed", "3"]
    common += ["--module-dir", str(tmp_path / "g")]
    assert main(common) == 0
    local = capsys.readouterr().out
    assert main([*common, "--engine", "dask", "--scheduler", cluster.scheduler_address]) == 0
    dask = capsys.readouterr().out
    assert "133 train / 45 test rows" in local
    assert "2 partitions, 133 train rows" in dask  # the cluster fixture has 2 workers
    assert train_loss(dask) == pytest.approx(train_loss(local), rel=1e-8)
    assert main([*common, "--engine", "dask", "--scheduler", cluster.scheduler_address, "--partitions", "3"]) == 0
    three = capsys.readouterr().out
    assert "3 partitions, 133 train rows" in three
    assert train_loss(three) == pytest.approx(train_loss(local), rel=1e-8)
