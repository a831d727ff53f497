"""Cost of a Hessian-vector product: hvp time / loss_and_grad time, and against PyTorch.

Run:  python benchmarks/second_order.py [--reps N]

float64, batch 256, single-threaded (OMP/OPENBLAS/MKL_NUM_THREADS=1 before NumPy and torch are
imported, torch.set_num_threads(1)); contenders interleaved in one process, median CPU time of
this thread. PyTorch's HVP is double backward: grad with create_graph, then grad of <g, V>.
Targets (issue: second-order derivatives): hvp <= 3x loss_and_grad; faster than PyTorch's HVP.
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


if __name__ == "__main__":
    main()
