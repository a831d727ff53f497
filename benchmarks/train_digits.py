"""Training benchmark: symprop's generated module + SGD vs scikit-learn's MLPClassifier on digits.

Run:  python benchmarks/train_digits.py [--mode auto|vectorized|unrolled] [--repeats 3]

Both train the same 64-32-10 network (sigmoid hidden layer, softmax cross-entropy on the
logits) on the same data: scikit-learn's bundled digits, a 25% test split with seed 0,
features standardized with the train split's mean and deviation (symprop.tools.datasets.load).
Plain SGD, no momentum, batch 64, learning rate 0.5, 100 epochs, shuffled every epoch.

* symprop: ``symprop.tools.train.train(module, ..., evaluate=False)`` on the module generated
  from the spec (``examples/digits.toml``) into a temp folder and imported from that file.
  Generation is timed separately (it is a one-off: ``symprop train`` caches the module).
* scikit-learn: ``MLPClassifier(hidden_layer_sizes=(32,), activation="logistic",
  solver="sgd", momentum=0, learning_rate_init=0.5, batch_size=64, max_iter=100,
  random_state=0)``, every other option at its default, notably the L2 penalty
  ``alpha=1e-4`` (symprop's loss has none) and the stopping rule ``n_iter_no_change=10,
  tol=1e-4`` (the epochs it ran are printed).

Both record the loss per epoch and nothing else while they train; the wall time is
``fit`` / ``train`` alone, the median of --repeats runs (the two taking turns), in one process with
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set to 1 before NumPy is
imported (one thread for every BLAS call).  Accuracy is on the test split, from the first
run (both are deterministic for a seed).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from symprop.spec import load_spec, spec_from_dict  # noqa: E402
from symprop.tools import datasets  # noqa: E402
from symprop.tools.train import accuracy, ensure_module, header, load_generated, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits.toml"
SPEC = {
    "name": "digits",
    "inputs": 64,
    "loss": "softmax_ce",
    "layers": [{"units": 32, "activation": "sigmoid"}, {"units": 10, "activation": "identity"}],
}
EPOCHS, LR, BATCH, SEED, TEST_FRACTION = 100, 0.5, 64, 0, 0.25


def timed_alternately(fns, repeats):  # type: ignore[no-untyped-def]
    """Per function: (first result, median seconds) of ``repeats`` calls, the functions taking
    turns so that a change in the machine's load hits both alike."""
    results: list[list[object]] = [[] for _ in fns]
    seconds: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            results[k].append(fn())
            seconds[k].append(time.perf_counter() - start)
    return [(r[0], statistics.median(s)) for r, s in zip(results, seconds, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="auto", help="generator mode (default auto)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5, median reported)")
    args = parser.parse_args()

    spec = load_spec(EXAMPLE) if EXAMPLE.exists() else spec_from_dict(SPEC)
    data = datasets.load("digits", spec, TEST_FRACTION, SEED)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path, _ = ensure_module(spec, tmp, args.mode)
        generate_s = time.perf_counter() - start
        mode = header(path).get("mode", args.mode)
        module = load_generated(path)

    def run_symprop():  # type: ignore[no-untyped-def]
        result = train(
            module, data.X_train, data.Y_train, epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=SEED, evaluate=False
        )
        return accuracy(module.forward(result.params, data.X_test), data.Y_test)

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    y_train, y_test = data.Y_train.argmax(axis=1), data.Y_test.argmax(axis=1)

    def run_sklearn():  # type: ignore[no-untyped-def]
        clf = MLPClassifier(
            hidden_layer_sizes=(32,),
            activation="logistic",
            solver="sgd",
            momentum=0,
            learning_rate_init=LR,
            batch_size=BATCH,
            max_iter=EPOCHS,
            random_state=SEED,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(data.X_train, y_train)
        return float(np.mean(clf.predict(data.X_test) == y_test)), clf.n_iter_

    (ours_acc, ours_s), ((sk_acc, sk_epochs), sk_s) = timed_alternately([run_symprop, run_sklearn], args.repeats)

    n_train, n_test = data.X_train.shape[0], data.X_test.shape[0]
    print(f"digits 64-32-10 (sigmoid, softmax_ce), {n_train} train / {n_test} test rows, one thread")
    print(f"SGD, no momentum, batch {BATCH}, lr {LR}, {EPOCHS} epochs, seed {SEED}; median of {args.repeats} runs")
    print()
    print("| | test accuracy | train wall time (s) |")
    print("|---|---:|---:|")
    print(f"| symprop ({mode} mode) | {ours_acc:.4f} | {ours_s:.3f} |")
    print(f"| scikit-learn MLPClassifier ({sk_epochs} epochs, alpha=1e-4) | {sk_acc:.4f} | {sk_s:.3f} |")
    print(f"| symprop / scikit-learn | {ours_acc / sk_acc:.3f} | {ours_s / sk_s:.3f} |")
    print()
    print(f"module generation ({mode} mode, one-off, cached by `symprop train`): {generate_s:.2f} s")
    acc_ok = "met" if ours_acc >= sk_acc else "MISSED"
    time_ok = "met" if ours_s <= 0.5 * sk_s else "MISSED"
    print(f"target accuracy >= scikit-learn's: {acc_ok}; target wall time <= 0.5x scikit-learn's: {time_ok}")


if __name__ == "__main__":
    main()
