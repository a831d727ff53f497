"""The array-API target against the NumPy module and PyTorch eager, in one process.

Run:  python benchmarks/array_api.py [--reps N]

784-256-128-10, sigmoid or relu hidden layers, softmax_ce, batch 256, float32, single-threaded
(OMP/OPENBLAS/MKL_NUM_THREADS=1 before NumPy and torch are imported, torch.set_num_threads(1)).
Contenders run in turn inside every repetition (interleaved); each number is the median CPU
time of this thread. Targets (issue: other targets): the array-api module on NumPy arrays
<= 1.15x the NumPy module; on torch CPU tensors <= 1.0x PyTorch eager autograd.
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
from runtime import interleaved, large_spec, problem, torch_step  # noqa: E402

from symprop.emit import render  # noqa: E402
from symprop.tools.check import load_module  # noqa: E402

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=100)
    args = parser.parse_args()
    print("| hidden | contender | ms | ratio |")
    print("| --- | --- | ---: | ---: |")
    for hidden in ("sigmoid", "relu"):
        spec = large_spec(hidden)
        numpy_module = load_module(render(spec, "vectorized"), spec.name)
        xp_module = load_module(render(spec, target="array-api"), spec.name + "_xp")
        params, X, Y = problem(spec, 256, np.float32)
        tparams = {k: torch.from_numpy(v) for k, v in params.items()}
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        times = interleaved(
            {
                "numpy module": lambda: numpy_module.loss_and_grad(params, X, Y),  # noqa: B023
                "array-api module, NumPy arrays": lambda: xp_module.loss_and_grad(params, X, Y),  # noqa: B023
                "PyTorch eager autograd": torch_step(spec, params, X, Y),
                "array-api module, torch tensors": lambda: xp_module.loss_and_grad(tparams, tX, tY),  # noqa: B023
            },
            args.reps,
        )
        base = {"numpy": times["numpy module"][0], "torch": times["PyTorch eager autograd"][0]}
        for name, (cpu, _wall) in times.items():
            ref = base["torch"] if "torch" in name.lower() else base["numpy"]
            print(f"| {hidden} | {name} | {cpu * 1e3:.3f} | {cpu / ref:.3f} |")


if __name__ == "__main__":
    main()
