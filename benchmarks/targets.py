"""Other targets against the NumPy module: the C target (this part) at batch 1, and its memory bill.

Run:  python benchmarks/targets.py [--reps N] [--quick]

Everything runs in this one process, single-threaded: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
and MKL_NUM_THREADS are set to 1 before NumPy (and torch, with torch.set_num_threads(1)) are
imported.  Times are thread CPU time (``time.thread_time`` in Python, ``CLOCK_THREAD_CPUTIME_ID``
in C), medians of --reps blocks, the contenders interleaved inside every repetition so a slow
spell of the (shared) machine hits them all and the ratios stay meaningful.

C target, batch-1 ``loss_and_grad``, float64, on 2-3-1 (sigmoid, mse: examples/xor) and
4-16-16-3 (tanh hidden, softmax_ce):

* NumPy module: the generated vectorized module, ``loss_and_grad(params, X, Y)`` (the baseline);
* C via ctypes: the generated library's ``<name>_loss_and_grad`` called through ctypes on
  preallocated contiguous arrays (the flat params of the ABI; no conversion in the loop);
* C loop: the same function called from a C loop (benchmarks/c_bench_harness.c, compiled into
  the same library) - the cost on a device, without Python;
* PyTorch eager: autograd on the same tensors, if torch is installed.

Targets (issue 10): via ctypes >= 10x faster than the NumPy module on 4-16-16-3; in the C loop
>= 50x.  Memory: the C memory bill of every example vs the minimum (params + grads + one
sample's activations and deltas), target <= 1.05x.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for var in THREAD_VARS:
    os.environ[var] = "1"

import numpy as np  # noqa: E402

from symprop.backends.c.module import build  # noqa: E402
from symprop.emit import program_for, render, render_files  # noqa: E402
from symprop.spec import Layer, Spec, load_spec  # noqa: E402
from symprop.tools.cbuild import CModule, compile_c, work_size  # noqa: E402
from symprop.tools.check import load_module  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - optional contender
    torch = None

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "benchmarks" / "c_bench_harness.c"


def small_specs() -> list[Spec]:
    xor = load_spec(ROOT / "examples" / "xor.toml")
    wide = Spec("net_4_16_16_3", 4, (Layer.of(16, "tanh"), Layer.of(16, "tanh"), Layer.of(3, "identity")), "softmax_ce")
    return [xor, wide]


def problem(spec: Spec, n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, 0.5, size=s) for k, s in spec.param_shapes.items()}
    X = rng.normal(size=(n, spec.inputs))
    Y = (
        np.eye(spec.outputs)[rng.integers(0, spec.outputs, size=n)]
        if spec.loss == "softmax_ce"
        else rng.uniform(size=(n, spec.outputs))
    )
    return params, X, Y


def c_library(spec: Spec, folder: Path) -> tuple[CModule, ctypes.CDLL]:
    files = render_files(spec, target="c")
    files["c_bench_harness.c"] = HARNESS.read_text()
    lib_path = compile_c(
        files, folder, "double", f"lib{spec.name}.so", ("-shared", "-fPIC", "-D_POSIX_C_SOURCE=199309L")
    )
    lib = ctypes.CDLL(str(lib_path))
    return CModule(spec, lib, "double", work_size(files[f"{spec.name}.h"], spec.name)), lib


def torch_loss_and_grad(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Callable[[], Any]:
    assert torch is not None
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    L = len(spec.layers)
    acts = {"sigmoid": lambda z: torch.sigmoid(2.0 * z), "tanh": torch.tanh, "identity": lambda z: z}

    def run() -> Any:
        for p in P.values():
            p.grad = None
        a = Xt
        for l, layer in enumerate(spec.layers, start=1):
            z = a @ P[f"W{l}"].T + P[f"b{l}"]
            if layer.activation == "sigmoid":
                a = torch.sigmoid(layer.param("beta") * z) if l < L else torch.sigmoid(z)
            else:
                a = acts[layer.activation](z)
        if spec.loss == "softmax_ce":
            C = -(Yt * torch.log_softmax(a, dim=1)).sum() / Xt.shape[0]
        else:
            C = 0.5 * ((a - Yt) ** 2).sum() / Xt.shape[0]
        C.backward()
        return C

    return run


def check_torch(spec: Spec, run: Callable[[], Any], module: Any, params: dict, X: np.ndarray, Y: np.ndarray) -> None:
    """PyTorch computes the same cost as the NumPy module (else its time means nothing)."""
    C = float(run().detach())
    C0, _ = module.loss_and_grad(params, X, Y)
    if abs(C - C0) > 1e-9 * max(1.0, abs(C0)):
        raise SystemExit(f"torch and the NumPy module disagree on {spec.name}: {C} vs {C0}")


def time_block(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls


def spec_rows(spec: Spec, reps: int, calls: int) -> list[str]:
    """The rows of one net: every contender's median time and its speed-up over the NumPy module."""
    rows = []
    params, X, Y = problem(spec, 1)
    module = load_module(render(spec, "vectorized"), spec.name)
    with tempfile.TemporaryDirectory(prefix="symprop-bench-") as tmp:
        c, lib = c_library(spec, Path(tmp))
    flat, Xc, Yc = c.flat(params), np.ascontiguousarray(X), np.ascontiguousarray(Y)
    loss, grad, work = np.zeros(1), np.zeros(c.N_PARAMS), np.zeros(c.WORK_SIZE)
    C_np, _g_np = module.loss_and_grad(params, X, Y)
    C_c, _g_c = c.loss_and_grad(params, X, Y)
    assert abs(C_c - C_np) <= 1e-12 * max(1.0, abs(C_np)), (C_c, C_np)  # timing the same computation
    f = c._loss_and_grad
    args = (
        flat.ctypes.data,
        Xc.ctypes.data,
        Yc.ctypes.data,
        1,
        loss.ctypes.data,
        grad.ctypes.data,
        work.ctypes.data,
    )
    loop = lib.symprop_bench_loop
    loop.restype = ctypes.c_double
    loop.argtypes = [ctypes.c_void_p, ctypes.c_long] + [ctypes.c_void_p] * 3 + [ctypes.c_size_t] + [ctypes.c_void_p] * 3
    fptr = ctypes.cast(f, ctypes.c_void_p).value
    c_calls = calls * 100

    contenders: dict[str, Callable[[], float]] = {
        "NumPy module (vectorized)": lambda: time_block(lambda: module.loss_and_grad(params, X, Y), calls),
        "C via ctypes": lambda: time_block(lambda: f(*args), calls),
        "C loop": lambda: loop(fptr, c_calls, *args[:3], 1, *args[4:]) / c_calls,
    }
    if torch is not None:
        run = torch_loss_and_grad(spec, params, X, Y)
        check_torch(spec, run, module, params, X, Y)
        contenders["PyTorch eager (autograd)"] = lambda: time_block(run, calls)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()  # warm up
    for _ in range(reps):
        for name, fn in contenders.items():
            times[name].append(fn())
    med = {k: float(np.median(v)) for k, v in times.items()}
    base = med["NumPy module (vectorized)"]
    sizes = "-".join(map(str, spec.layer_sizes))
    for name, t in med.items():
        rows.append(f"| {sizes} | {name} | {t * 1e6:.3f} | {base / t:.1f}x |")
    return rows


def speed_table(reps: int, calls: int) -> list[str]:
    rows = [
        "| net | contender | time per call (µs) | speed-up vs NumPy module |",
        "| --- | --- | ---: | ---: |",
    ]
    for spec in small_specs():
        rows += spec_rows(spec, reps, calls)
    return rows


def memory_table() -> list[str]:
    rows = [
        "| example | params + grads (B) | work (reals) | bill (B) | minimum (B) | bill / minimum |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in sorted((ROOT / "examples").glob("*.toml")):
        spec = load_spec(path)
        m = build(program_for(spec, target="c"))
        rows.append(
            f"| {spec.name} ({'-'.join(map(str, spec.layer_sizes))}) | {2 * m.n_params * m.real_bytes} | "
            f"{m.work_size} (min {m.min_work}) | {m.bill} | {m.min_bill} | {m.bill / m.min_bill:.3f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=21, help="timed blocks per contender (median; default 21)")
    parser.add_argument("--quick", action="store_true", help="few repetitions, for a smoke run")
    args = parser.parse_args(argv)
    reps, calls = (3, 50) if args.quick else (args.reps, 400)
    print(
        f"# symprop targets benchmark: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, "
        f"NumPy {np.__version__}, torch {torch.__version__ if torch is not None else 'not installed'}; "
        f"threads pinned to 1 ({', '.join(THREAD_VARS)}=1); thread CPU time, medians of {reps}"
    )
    print("\n## C target: batch-1 loss_and_grad, float64\n")
    print("\n".join(speed_table(reps, calls)))
    print("\n## C target: memory bill of every example (float64)\n")
    print("\n".join(memory_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
