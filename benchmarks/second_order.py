"""Cost of a Hessian-vector product: hvp time / loss_and_grad time, and against PyTorch.

Run:  python benchmarks/second_order.py [--reps N]

float64, batch 256, single-threaded (OMP/OPENBLAS/MKL_NUM_THREADS=1 before NumPy and torch are
imported, torch.set_num_threads(1)); contenders interleaved in one process, median CPU time of
this thread. PyTorch's HVP is double backward: grad with create_graph, then grad of <g, V>.
Targets (issue: second-order derivatives): hvp <= 3x loss_and_grad; faster than PyTorch's HVP.

Second table: newton-cg vs trust-krylov vs lbfgs vs adam on a small ill-conditioned regression
(2,000 rows, 10 features scaled over three orders of magnitude, 10-16-1 tanh, mse, float64): the
iterations (epochs for adam) and seconds until the train loss first reaches 1.01x the best loss
any solver reached in a long run.
"""

from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from runtime import interleaved, problem  # noqa: E402

from symprop.emit import render  # noqa: E402
from symprop.spec import Layer, Spec  # noqa: E402
from symprop.tools.check import load_module  # noqa: E402

torch.set_num_threads(1)


def torch_hvp(spec: Spec, params: dict, X: np.ndarray, Y: np.ndarray, V: dict):  # type: ignore[no-untyped-def]
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tv = {k: torch.from_numpy(v) for k, v in V.items()}
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    acts = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "identity": lambda t: t}

    def step():  # type: ignore[no-untyped-def]
        h = tX
        for l, layer in enumerate(spec.layers, start=1):
            h = acts[layer.activation](torch.addmm(tp[f"b{l}"], h, tp[f"W{l}"].T))
        cost = torch.nn.functional.cross_entropy(h, tY)
        grads = torch.autograd.grad(cost, list(tp.values()), create_graph=True)
        dot = sum((g * tv[k]).sum() for g, k in zip(grads, tp, strict=True))
        return torch.autograd.grad(dot, list(tp.values()))

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    print("| net | loss_and_grad ms | hvp ms | gnvp ms | PyTorch HVP ms | hvp / loss_and_grad | hvp / PyTorch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sizes, hidden in (((4, 16, 16, 3), "tanh"), ((784, 256, 128, 10), "sigmoid")):
        layers = (*(Layer.of(u, hidden) for u in sizes[1:-1]), Layer.of(sizes[-1], "identity"))
        spec = Spec("so", sizes[0], layers, "softmax_ce")
        m = load_module(render(spec, "vectorized", second_order=True), "so")
        params, X, Y = problem(spec, 256, np.float64)
        V = {k: np.random.default_rng(1).normal(size=v.shape) for k, v in params.items()}
        hv = m.hvp(params, X, Y, V)[2]
        theirs = torch_hvp(spec, params, X, Y, V)
        diff = max(float(np.max(np.abs(t.numpy() - hv[k]))) for t, k in zip(theirs(), params, strict=True))
        times = interleaved(
            {
                "lag": lambda: m.loss_and_grad(params, X, Y),  # noqa: B023
                "hvp": lambda: m.hvp(params, X, Y, V),  # noqa: B023
                "gnvp": lambda: m.gnvp(params, X, Y, V),  # noqa: B023
                "torch": theirs,
            },
            args.reps,
        )
        t = {k: v[0] * 1e3 for k, v in times.items()}
        name = "-".join(map(str, sizes))
        print(
            f"| {name} ({hidden}) | {t['lag']:.3f} | {t['hvp']:.3f} | {t['gnvp']:.3f} | {t['torch']:.3f} "
            f"| {t['hvp'] / t['lag']:.2f} | {t['hvp'] / t['torch']:.2f} |  (max |Hv - torch| {diff:.1e})"
        )
    solver_table()


def solver_table() -> None:
    from symprop.tools.train import module_from_source, train

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 10)) * np.logspace(0, 3, 10)
    w = rng.normal(size=(10, 1)) / np.logspace(0, 3, 10)[:, None]
    Y = np.tanh(X @ w) + 0.05 * rng.normal(size=(2000, 1))
    spec = Spec("illcond", 10, (Layer.of(16, "tanh"), Layer.of(1, "identity")), "mse")
    from pathlib import Path

    m = module_from_source(render(spec, "vectorized", second_order=True), Path("illcond.py"))
    runs = {
        "newton-cg": {"solver": "newton-cg", "epochs": 200},
        "trust-krylov": {"solver": "trust-krylov", "epochs": 200},
        "lbfgs": {"solver": "lbfgs", "epochs": 2000},
        "adam (lr 0.01, batch 64)": {"solver": "adam", "epochs": 300, "lr": 0.01, "batch_size": 64},
    }
    curves = {}
    for name, options in runs.items():
        seen: list[tuple[float, float]] = []

        def record(epoch: int, history, seen=seen) -> None:  # type: ignore[no-untyped-def]
            seen.append((history.loss[-1], history.seconds))

        train(m, X, Y, evaluate=False, classification=False, on_epoch=record, seed=0, **options)
        curves[name] = seen
    best = min(loss for seen in curves.values() for loss, _ in seen)
    target = 1.01 * best
    print()
    print(f"| solver | iterations to 1.01 x best loss ({target:.4g}) | seconds | final loss |")
    print("| --- | ---: | ---: | ---: |")
    for name, seen in curves.items():
        hit = next((k for k, (loss, _) in enumerate(seen, 1) if loss <= target), None)
        when = f"{seen[hit - 1][1]:.2f}" if hit else "not reached"
        print(f"| {name} | {hit if hit else f'> {len(seen)}'} | {when} | {seen[-1][0]:.4g} |")


if __name__ == "__main__":
    main()
