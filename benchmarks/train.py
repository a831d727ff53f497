"""Training benchmark (issue 11): one table, every BLAS call on one thread.

Run:  python benchmarks/train.py [--repeats 3] [--rows 200000] [--skip-dask]

OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to 1 before NumPy is imported
(here and in every child process; PyTorch also gets torch.set_num_threads(1)).

Rows of the table:

1. digits 64-32-10 (sigmoid, softmax_ce), SGD without momentum, batch 64, lr 0.5, 100 epochs,
   as whole processes: ``symprop train examples/digits.toml --data digits ...`` (module cached
   by a warm-up run) against ``python -c <fit MLPClassifier with the same settings on the same
   split>``; wall time of the process, median of --repeats, the two taking turns.
2. A synthetic ``make_classification(n_samples=--rows, n_features=50, n_informative=20,
   random_state=0)`` set written to CSV, 25% test split; 50-64-64-2 (relu, relu, identity +
   softmax_ce); Adam (lr 0.001, batch 200) for 10 epochs and L-BFGS for 100 iterations.
   symprop's ``train`` vs scikit-learn's ``MLPClassifier`` (same solver, ``alpha=0`` since
   symprop's cost here has no penalty, ``tol=0`` and ``n_iter_no_change`` huge so it runs every
   epoch / iteration; its binary output is one logistic unit where ours is a 2-way softmax)
   vs PyTorch (same network, ``torch.optim.Adam`` / ``torch.optim.LBFGS`` full batch with
   ``max_iter=100``, float64) when installed.  Time of training alone (the CSV is read once
   and reported apart); test accuracy.
3. Dask: seconds per L-BFGS iteration of a 10-32-2 network on 1e5 and 1e6 rows (Parquet, 8
   files), ``--engine dask`` on an embedded LocalCluster of 1 and 2 worker processes vs
   ``--engine local``; the fixed overhead per iteration is the dask time on 1,000 rows (the
   gradient itself is then ~0.1 ms).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits.toml"

SKLEARN_DIGITS = """
import numpy as np, warnings
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
d = load_digits()
X, y = d.data, d.target
order = np.random.default_rng(0).permutation(len(y))
n_test = int(np.ceil(0.25 * len(y) - 1e-9))
train, test = order[n_test:], order[:n_test]
mean, std = X[train].mean(0), X[train].std(0)
std[std == 0] = 1
Xs = (X - mean) / std
clf = MLPClassifier(hidden_layer_sizes=(32,), activation="logistic", solver="sgd", momentum=0,
                    learning_rate_init=0.5, batch_size=64, max_iter=100, random_state=0, alpha=0.0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf.fit(Xs[train], y[train])
print("test accuracy:", np.mean(clf.predict(Xs[test]) == y[test]))
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def digits_row(repeats: int, tmp: Path) -> list[str]:
    ours = [sys.executable, "-m", "symprop", "train", str(DIGITS), "--data", "digits", "--solver", "sgd"]
    ours += ["--lr", "0.5", "--batch-size", "64", "--epochs", "100", "--module-dir", str(tmp / "gen")]
    timed(ours, tmp)  # warm-up: generates and caches the module
    theirs = [sys.executable, "-c", SKLEARN_DIGITS]
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        s, out_ours = timed(ours, tmp)
        a.append(s)
        s, out_theirs = timed(theirs, tmp)
        b.append(s)
    acc_ours = float(re.findall(r"test accuracy: (\S+)", out_ours)[-1])
    acc_theirs = float(re.findall(r"test accuracy: (\S+)", out_theirs)[-1])
    ratio = statistics.median(a) / statistics.median(b)
    return [
        f"| digits 64-32-10, sgd 100 epochs, whole process | {statistics.median(a):.2f} s ({acc_ours:.4f}) "
        f"| {statistics.median(b):.2f} s ({acc_theirs:.4f}) | – | {ratio:.2f}× (target ≤ 1.0×: "
        f"{'met' if ratio <= 1.0 else 'MISSED'}) |"
    ]


def synthetic(rows: int, tmp: Path) -> tuple[Path, float]:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=50, n_informative=20, random_state=0)
    path = tmp / "synthetic.csv"
    header = ",".join(f"x{j}" for j in range(50)) + ",label\n"
    with path.open("w") as handle:
        handle.write(header)
        np.savetxt(handle, np.column_stack([X, y]), delimiter=",", fmt=["%.8g"] * 50 + ["%d"])
    return path, 0.0


SYNTH_SPEC = """name = "synth"
inputs = 50
loss = "softmax_ce"

[[layers]]
units = 64
activation = "relu"

[[layers]]
units = 64
activation = "relu"

[[layers]]
units = 2
activation = "identity"
"""


def torch_fit(solver: str, data: Any, epochs: int) -> tuple[float, float] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    Xtr = torch.from_numpy(data.X_train)
    ytr = torch.from_numpy(data.Y_train.argmax(axis=1))
    model = torch.nn.Sequential(
        torch.nn.Linear(50, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    ).double()
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    if solver == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-8)
        n = Xtr.shape[0]
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for lo in range(0, n, 200):
                idx = order[lo : lo + 200]
                opt.zero_grad()
                loss = loss_fn(model(Xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
    else:
        opt = torch.optim.LBFGS(model.parameters(), max_iter=epochs, history_size=10, line_search_fn="strong_wolfe")

        def closure() -> Any:
            opt.zero_grad()
            loss = loss_fn(model(Xtr), ytr)
            loss.backward()
            return loss

        opt.step(closure)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(torch.from_numpy(data.X_test)).argmax(dim=1).numpy()
    return seconds, float(np.mean(pred == data.Y_test.argmax(axis=1)))


def synthetic_rows(rows: int, tmp: Path) -> tuple[list[str], list[str]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from symprop.emit import generate
    from symprop.spec import load_spec
    from symprop.tools import datasets
    from symprop.tools.train import accuracy, load_generated, train

    csv_path, _ = synthetic(rows, tmp)
    spec_path = tmp / "synth.toml"
    spec_path.write_text(SYNTH_SPEC)
    spec = load_spec(spec_path)
    start = time.perf_counter()
    data = datasets.load(str(csv_path), spec, 0.25, 0)
    read_s = time.perf_counter() - start
    module = load_generated(generate(spec, tmp / "gen", "vectorized"))
    y_train, y_test = data.Y_train.argmax(axis=1), data.Y_test.argmax(axis=1)
    out = []
    for solver, epochs in (("adam", 10), ("lbfgs", 100)):
        start = time.perf_counter()
        result = train(
            module, data.X_train, data.Y_train, solver=solver, epochs=epochs, lr=0.001, batch_size=200, evaluate=False
        )
        ours_s = time.perf_counter() - start
        ours_acc = accuracy(module.forward(result.params, data.X_test), data.Y_test)
        clf = MLPClassifier(
            hidden_layer_sizes=(64, 64),
            activation="relu",
            solver=solver,
            alpha=0.0,
            batch_size=200,
            learning_rate_init=0.001,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=10**9,
            random_state=0,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(data.X_train, y_train)
        sk_s = time.perf_counter() - start
        sk_acc = float(np.mean(clf.predict(data.X_test) == y_test))
        torch_result = torch_fit(solver, data, epochs)
        torch_cell = "not installed" if torch_result is None else f"{torch_result[0]:.2f} s ({torch_result[1]:.4f})"
        ratio = ours_s / sk_s
        met = "met" if ratio <= 0.5 and ours_acc >= sk_acc else "MISSED"
        what = f"{epochs} epochs" if solver == "adam" else f"{epochs} iterations (ran {result.history.epochs})"
        out.append(
            f"| synthetic {rows:,}×50, 50-64-64-2, {solver} {what} | {ours_s:.2f} s ({ours_acc:.4f}) "
            f"| {sk_s:.2f} s ({sk_acc:.4f}) | {torch_cell} | {ratio:.2f}× (target ≤ 0.5× at ≥ accuracy: {met}) |"
        )
    return out, [f"reading the {rows:,}-row CSV (symprop.tools.datasets.load, once): {read_s:.1f} s"]


DASK_SPEC = """name = "small"
inputs = 10
loss = "softmax_ce"

[[layers]]
units = 32
activation = "tanh"

[[layers]]
units = 2
activation = "identity"
"""


def dask_rows(tmp: Path) -> tuple[list[str], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import make_classification

    spec = tmp / "small.toml"
    spec.write_text(DASK_SPEC)
    per_iter: dict[tuple[int, str], float] = {}
    for rows in (1_000, 100_000, 1_000_000):
        folder = tmp / f"pq{rows}"
        folder.mkdir()
        X, y = make_classification(n_samples=rows, n_features=10, n_informative=6, random_state=1)
        step = -(-rows // 8)
        for k in range(8):
            cols = {f"x{j}": X[k * step : (k + 1) * step, j] for j in range(10)}
            cols["label"] = y[k * step : (k + 1) * step]
            pq.write_table(pa.table(cols), folder / f"part{k}.parquet")
        pq.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(10)}, "label": y}), tmp / f"whole{rows}.parquet")
        common = [sys.executable, "-m", "symprop", "train", str(spec), "--solver", "lbfgs", "--epochs", "20"]
        common += ["--test-fraction", "0", "--module-dir", str(tmp / "gen")]
        runs = {"local": [*common, "--data", str(tmp / f"whole{rows}.parquet")]}
        for workers in (1, 2):
            runs[f"dask {workers}"] = [*common, "--data", str(folder), "--engine", "dask", "--workers", str(workers)]
        for name, cmd in runs.items():
            if rows == 1_000 and name != "dask 2" and name != "local":
                continue
            _, out = timed(cmd, tmp)
            per_iter[(rows, name)] = float(re.findall(r"\(([\d.]+) ms per iteration\)", out)[-1]) / 1000
    lines = []
    for rows in (100_000, 1_000_000):
        local = per_iter[(rows, "local")]
        cells = " | ".join(
            f"{per_iter[(rows, f'dask {w}')]:.3f} s ({per_iter[(rows, f'dask {w}')] / local:.2f}×)" for w in (1, 2)
        )
        lines.append(f"| {rows:,} | {local:.3f} s | {cells} |")
    overhead = per_iter[(1_000, "dask 2")] - per_iter[(1_000, "local")]
    notes = [
        f"dask fixed overhead per iteration (2 workers, 8 partitions, 1,000 rows): {overhead * 1000:.1f} ms "
        f"(local {per_iter[(1_000, 'local')] * 1000:.2f} ms)"
    ]
    return lines, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="digits: process runs of each (median; default 3)")
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic set rows (default 200000)")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    notes: list[str] = []
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows += digits_row(args.repeats, tmp)
        if not args.skip_synthetic:
            more, extra = synthetic_rows(args.rows, tmp)
            rows += more
            notes += extra
        dask_lines: list[str] = []
        if not args.skip_dask:
            dask_lines, extra = dask_rows(tmp)
            notes += extra
    print("one thread per process (OMP/OPENBLAS/MKL_NUM_THREADS=1); cells: time (test accuracy)")
    print()
    print("| case | symprop | scikit-learn | PyTorch | symprop / scikit-learn |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(row)
    if dask_lines:
        print()
        print("| lbfgs, 10-32-2, seconds per iteration | --engine local | dask, 1 worker | dask, 2 workers |")
        print("|---:|---:|---:|---:|")
        for line in dask_lines:
            print(line)
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
