"""Before/after of an emitted-code change: module versions interleaved with JAX jit and PyTorch eager.

Run:  python -m benchmarks.ab NET OLD.py NEW.py [...] [--batches 1,32,256] [--dtypes float32,float64] [--reps N]

NET is one of benchmarks.peers' nets (mnist_sigmoid, mnist_relu, net_2_3_1, net_4_16_16_3,
net_64_64_64_10). Save the module before the change (``symprop generate`` or ``render``), make the
change, save it again, and pass both files. A file whose ``MODE`` is ``array-api`` runs on torch
tensors (--on numpy: NumPy arrays). Same method as benchmarks.peers (one thread, agreement first, interleaved, CPU time,
medians); prints each version's time, NEW/OLD, and each version over JAX jit, PyTorch eager and (on
the 784-256-128-10 nets) the GEMM floor, every ratio with the interquartile range of its paired
per-repetition ratios: the numbers a commit message quotes. --peers picks the peers (none: the
versions alone).
"""

from __future__ import annotations

import os
import sys

FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # removed for this command alone, as benchmarks.peers does
if __name__ == "__main__" and any(v in os.environ for v in FORCING):
    env = {k: v for k, v in os.environ.items() if k not in FORCING}
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.ab", *sys.argv[1:]], env)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads
    os.environ[var] = "1"

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.peers import (  # noqa: E402
    LARGE,
    SMALL,
    TOL,
    Contender,
    gemm_floor,
    jax_contender,
    numpy_results,
    problem,
    python_block,
    run_config,
    source,
    torch,
    torch_contender,
    torch_result_fn,
)
from symprop.tools.check import load_module  # noqa: E402


def version(path: Path, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, on: str) -> Contender:
    module = load_module(path.read_text(), path.stem)
    if getattr(module, "MODE", "") == "array-api" and on == "torch":
        assert torch is not None, "an array-api module runs on torch tensors here: install torch"
        tp = {k: torch.from_numpy(v) for k, v in params.items()}
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

        def run_torch() -> Any:
            return module.loss_and_grad(tp, tX, tY)

        return Contender(path.name, python_block(run_torch), torch_result_fn(run_torch), True)

    def run() -> Any:
        return module.loss_and_grad(params, X, Y)

    return Contender(path.name, python_block(run), numpy_results(run), True)


def ratio(times: dict[str, np.ndarray], a: str, b: str) -> str:
    """a/b as the ratio of the medians, with the interquartile range of the paired per-repetition ratios."""
    q1, q3 = np.percentile(times[a] / times[b], [25, 75])
    return f"{np.median(times[a]) / np.median(times[b]):.3f} ({q1:.2f}-{q3:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("net", choices=[s.name for s in (*LARGE, *SMALL)])
    parser.add_argument("modules", nargs="+", type=Path)
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--block-ms", type=float, default=4.0)
    parser.add_argument("--on", choices=("numpy", "torch"), default="torch", help="arrays for array-api modules")
    parser.add_argument("--peers", default="jax,torch,floor", help="any of jax, torch, floor (large nets); none")
    args = parser.parse_args(argv)
    spec = {s.name: s for s in (*LARGE, *SMALL)}[args.net]
    ref_module = load_module(source(spec), "reference")
    for dt in (np.dtype(d).type for d in args.dtypes.split(",")):
        for n in (int(b) for b in args.batches.split(",")):
            p64, X64, Y64 = problem(spec, n)
            ref = numpy_results(lambda: ref_module.loss_and_grad(p64, X64, Y64))()  # noqa: B023
            params = {k: v.astype(dt) for k, v in p64.items()}
            X, Y = X64.astype(dt), Y64.astype(dt)
            contenders = [version(path, params, X, Y, args.on) for path in args.modules]
            peers = [jax_contender(spec, params, X, Y)] if "jax" in args.peers else []
            peers += [torch_contender(spec, params, X, Y)] if "torch" in args.peers else []
            if "floor" in args.peers and spec in LARGE:
                floor = python_block(gemm_floor(spec, params, X))
                peers.append(Contender("GEMM floor", floor, lambda r=ref: r, False))  # type: ignore[misc]
            run_config(contenders + peers, ref, TOL[dt], args.reps, args.block_ms / 1e3, f"{args.net} n={n}")
            times = {c.name: np.array(c.times) for c in contenders + peers}

            base = contenders[0].name
            line = f"{np.dtype(dt).name} n={n:<4d} "
            line += " ".join(f"{k} {np.median(v) * 1e6:,.1f} us;" for k, v in times.items())
            line += " | " + " ".join(f"{c.name}/{base} {ratio(times, c.name, base)}" for c in contenders[1:])
            for c in contenders if peers else []:
                line += f" | {c.name}: " + ", ".join(f"{ratio(times, c.name, p.name)} {p.name}" for p in peers)
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
