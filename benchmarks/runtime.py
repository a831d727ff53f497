"""Runtime of generated modules: vectorized vs unrolled vs the GEMM floor, hand-written NumPy, PyTorch.

Run:  python benchmarks/runtime.py [--reps N] [--quick] [--no-torch]

Everything runs in this one process, single-threaded: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
and MKL_NUM_THREADS are set to 1 before NumPy (and torch, with torch.set_num_threads(1)) are
imported. Each time is the median of --reps runs; the contenders of one table are run in
turn inside every repetition (interleaved), so a slow spell of the machine hits them all and
the ratios to the baseline run alongside stay meaningful. Times are CPU time of this thread
(time.thread_time), which ignores the moments the scheduler hands the core to another process;
wall time is printed too.

Tables:
1. 784-256-128-10, sigmoid or relu hidden layers, softmax_ce, batch 256, float32: generated
   loss_and_grad vs (a) the GEMM floor: the same eight matrix products alone (three forward,
   three weight gradients, two backpropagated deltas), (b) a hand-written NumPy backprop,
   (c) PyTorch eager autograd on the CPU, (d) unrolled mode (refused: over its size limit).
2. Small nets, batch 1024, float64: unrolled vs vectorized vs PyTorch; which mode `auto` picks
   and whether it is the faster one (within 5% counts as a tie); the unrolled/vectorized ratio
   at batch 32 too, where per-call overhead matters most.
3. Peak memory of one loss_and_grad call (tracemalloc) vs the bytes of params + activations + grads.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for var in THREAD_VARS:
    os.environ[var] = "1"

import numpy as np  # noqa: E402
from torch_net import torch_loss_and_grad  # noqa: E402

from symprop.emit import UNROLLED_MAX_PARAMS, auto_rule, choose_mode, render  # noqa: E402
from symprop.spec import Layer, Spec, SpecError  # noqa: E402
from symprop.tools.check import load_module  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - optional contender
    torch = None

BATCH_LARGE, BATCH_SMALL, BATCH_TINY = 256, 1024, 32


# ------------------------------------------------------------------ timing --
def interleaved(contenders: dict[str, Callable[[], Any]], reps: int, warmup: int = 5) -> dict[str, tuple[float, float]]:
    """Median (thread CPU seconds, wall seconds) per contender, run in turn each repetition."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            c1, w1 = time.thread_time(), time.perf_counter()
            cpu[name].append(c1 - c0)
            wall[name].append(w1 - w0)
    return {k: (float(np.median(cpu[k])), float(np.median(wall[k]))) for k in contenders}


# -------------------------------------------------------------- large net --
def large_spec(hidden: str) -> Spec:
    layers = (Layer.of(256, hidden), Layer.of(128, hidden), Layer.of(10, "identity"))
    return Spec(f"mnist_{hidden}", 784, layers, "softmax_ce")


def problem(spec: Spec, n: int, dtype: type, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Glorot-uniform weights, small random biases, standard-normal inputs, one-hot or uniform targets."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, shape in spec.param_shapes.items():
        if name.startswith("W"):
            limit = np.sqrt(6.0 / sum(shape))
            params[name] = rng.uniform(-limit, limit, size=shape).astype(dtype)
        else:
            params[name] = rng.normal(0.0, 0.1, size=shape).astype(dtype)
    X = rng.normal(size=(n, spec.inputs)).astype(dtype)
    if spec.loss == "softmax_ce":
        Y = np.eye(spec.outputs, dtype=dtype)[rng.integers(0, spec.outputs, size=n)]
    else:
        Y = rng.uniform(size=(n, spec.outputs)).astype(dtype)
    return params, X, Y


def gemm_floor(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray) -> Callable[[], None]:
    """The matrix products of one loss_and_grad alone, on operands of the same shapes and layouts."""
    rng = np.random.default_rng(1)
    L = len(spec.layers)
    n = X.shape[0]
    acts = [X] + [rng.normal(size=(n, u)).astype(X.dtype) for u in spec.layer_sizes[1:]]
    deltas = [None] + [rng.normal(size=(n, u)).astype(X.dtype) for u in spec.layer_sizes[1:]]
    W = [None] + [params[f"W{l}"] for l in range(1, L + 1)]

    def run() -> None:
        for l in range(1, L + 1):
            acts[l - 1] @ W[l].T  # Z_l
        for l in range(L, 0, -1):
            deltas[l].T @ acts[l - 1]  # dW_l
            if l > 1:
                deltas[l] @ W[l]  # D_(l-1), before the elementwise f'

    return run


def handwritten(hidden: str) -> Callable[..., tuple[float, dict[str, np.ndarray]]]:
    """What one would write by hand, carefully: in-place where possible, stable sigmoid, LSE shift."""

    def act(z: np.ndarray) -> np.ndarray:
        if hidden == "relu":
            return np.maximum(z, 0.0)
        with np.errstate(over="ignore"):
            s = np.exp(-z)
        s += 1.0
        return np.reciprocal(s, out=s)

    def backprop(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
        n = X.shape[0]
        Z1 = X @ W1.T
        Z1 += b1
        A1 = act(Z1)
        Z2 = A1 @ W2.T
        Z2 += b2
        A2 = act(Z2)
        Z3 = A2 @ W3.T
        Z3 += b3
        Z3 -= Z3.max(axis=1, keepdims=True)
        E = np.exp(Z3)
        S = E.sum(axis=1, keepdims=True)
        C = (np.log(S).sum() - np.vdot(Y, Z3)) / n  # one-hot Y
        D3 = E / S
        D3 -= Y
        D3 /= n
        D2 = D3 @ W3
        D1 = None
        if hidden == "relu":
            D2 *= Z2 > 0
            D1 = D2 @ W2
            D1 *= Z1 > 0
        else:
            D2 *= A2 * (1 - A2)
            D1 = D2 @ W2
            D1 *= A1 * (1 - A1)
        grads = {
            "W1": D1.T @ X,
            "b1": D1.sum(axis=0),
            "W2": D2.T @ A1,
            "b2": D2.sum(axis=0),
            "W3": D3.T @ A2,
            "b3": D3.sum(axis=0),
        }
        return float(C), grads

    return backprop


def torch_step(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Callable[[], Any]:
    """PyTorch eager: forward, cross-entropy with (one-hot) probability targets, backward, grads."""
    assert torch is not None
    run = torch_loss_and_grad(torch, spec, params, X, Y)

    def step() -> tuple[float, dict[str, np.ndarray]]:
        C, grads = run()
        return C, {k: g.numpy() for k, g in grads.items()}

    return step


def max_rel_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k] - b[k])) / max(1e-30, float(np.max(np.abs(b[k]))))) for k in b)


def large_net_table(reps: int, use_torch: bool) -> tuple[list[str], list[dict[str, Any]]]:
    rows = [
        "| hidden | contender | ms (median) | ratio to GEMM floor | wall ms | grads vs generated (max rel diff) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    results = []
    for hidden in ("sigmoid", "relu"):
        spec = large_spec(hidden)
        module = load_module(render(spec, "vectorized"), spec.name)
        params, X, Y = problem(spec, BATCH_LARGE, np.float32)
        _, ref = module.loss_and_grad(params, X, Y)
        contenders: dict[str, Callable[[], Any]] = {
            "GEMM floor (8 matmuls alone)": gemm_floor(spec, params, X),
            "generated vectorized": partial(module.loss_and_grad, params, X, Y),
        }
        checks = {"generated vectorized": 0.0}
        hand = handwritten(hidden)
        contenders["hand-written NumPy"] = partial(hand, params, X, Y)
        checks["hand-written NumPy"] = max_rel_diff(hand(params, X, Y)[1], ref)
        if use_torch and torch is not None:
            step = torch_step(spec, params, X, Y)
            contenders[f"PyTorch {torch.__version__} eager autograd"] = step
            checks[f"PyTorch {torch.__version__} eager autograd"] = max_rel_diff(step()[1], ref)
        times = interleaved(contenders, reps)
        floor = times["GEMM floor (8 matmuls alone)"][0]
        for name, (cpu, wall) in times.items():
            check = f"{checks[name]:.1e}" if name in checks else ""
            rows.append(f"| {hidden} | {name} | {cpu * 1e3:.3f} | {cpu / floor:.3f} | {wall * 1e3:.3f} | {check} |")
            results.append({"hidden": hidden, "name": name, "cpu": cpu, "ratio": cpu / floor})
        try:
            render(spec, "unrolled")
            unrolled = "rendered (unexpected)"
        except SpecError:
            unrolled = f"refused: {spec.n_params:,} parameters > UNROLLED_MAX_PARAMS = {UNROLLED_MAX_PARAMS:,}"
        rows.append(f"| {hidden} | unrolled mode | n/a | n/a | n/a | {unrolled} |")
    return rows, results


# -------------------------------------------------------------- small nets --
TIE = 0.05  # within 5% the two modes are a tie: run-to-run noise of these sub-millisecond calls


def small_specs(extra: bool) -> list[Spec]:
    def net(inputs: int, units: tuple[int, ...], hidden: str, out: str, loss: str) -> Spec:
        layers = (*(Layer.of(u, hidden) for u in units[:-1]), Layer.of(units[-1], out))
        return Spec("net_" + "_".join(map(str, (inputs, *units))), inputs, layers, loss)

    specs = [net(2, (3, 1), "sigmoid", "sigmoid", "mse"), net(4, (16, 16, 3), "tanh", "identity", "softmax_ce")]
    if extra:  # the crossover, to place auto's threshold
        specs += [
            net(1, (1, 1), "sigmoid", "sigmoid", "mse"),
            net(2, (1, 1), "sigmoid", "sigmoid", "mse"),
            net(1, (2, 1), "sigmoid", "sigmoid", "mse"),
            net(2, (2, 1), "sigmoid", "sigmoid", "mse"),
            net(4, (8, 3), "tanh", "identity", "softmax_ce"),
            net(8, (16, 16, 4), "sigmoid", "sigmoid", "mse"),
        ]
    return sorted(specs, key=lambda s: (s.n_params, s.name))


def verdict(auto: str, times: dict[str, float]) -> str:
    other = "vectorized" if auto == "unrolled" else "unrolled"
    if times[auto] <= times[other]:
        return "yes"
    return "tie" if times[auto] <= (1 + TIE) * times[other] else "NO"


def small_net_table(reps: int, use_torch: bool, extra: bool) -> tuple[list[str], list[dict[str, Any]]]:
    header = f"| net | params | unrolled ms | vectorized ms | unrolled / vectorized | same, batch {BATCH_TINY} |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if use_torch and torch is not None:
        header += " PyTorch ms | PyTorch / vectorized |"
        rule += " ---: | ---: |"
    header += " auto picks | auto the faster? |"
    rule += " --- | --- |"
    rows, results = [header, rule], []
    for spec in small_specs(extra):
        mods = {mode: load_module(render(spec, mode), spec.name) for mode in ("unrolled", "vectorized")}
        params, X, Y = problem(spec, BATCH_TINY, np.float64)
        tiny = interleaved({mode: partial(m.loss_and_grad, params, X, Y) for mode, m in mods.items()}, reps)
        params, X, Y = problem(spec, BATCH_SMALL, np.float64)
        contenders: dict[str, Callable[[], Any]] = {
            mode: partial(m.loss_and_grad, params, X, Y) for mode, m in mods.items()
        }
        if use_torch and torch is not None:
            contenders["torch"] = torch_step(spec, params, X, Y)
        times = {k: cpu for k, (cpu, _) in interleaved(contenders, reps).items()}
        u, v = times["unrolled"], times["vectorized"]
        auto = choose_mode(spec)
        sizes = "-".join(map(str, spec.layer_sizes))
        row = f"| {sizes} ({spec.layers[0].activation}, {spec.loss}) | {spec.n_params} | {u * 1e3:.3f} | {v * 1e3:.3f}"
        row += f" | {u / v:.2f} | {tiny['unrolled'][0] / tiny['vectorized'][0]:.2f} |"
        if "torch" in times:
            row += f" {times['torch'] * 1e3:.3f} | {times['torch'] / v:.2f} |"
        row += f" {auto} | {verdict(auto, times)} |"
        rows.append(row)
        results.append({"net": sizes, "params": spec.n_params, "verdict": verdict(auto, times)})
    return rows, results


# ------------------------------------------------------------------ memory --
def nbytes(arrays: Any) -> int:
    return sum(a.nbytes for a in arrays)


def peak_bytes(fn: Callable[[], Any]) -> int:
    fn()  # warm: first-call allocations (caches) are not part of a steady-state call
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak - before


def memory_table() -> list[str]:
    rows = [
        "| hidden | generated peak KiB | hand-written peak KiB | params KiB | activations KiB | grads KiB"
        " | reference KiB | generated / reference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for hidden in ("sigmoid", "relu"):
        spec = large_spec(hidden)
        module = load_module(render(spec, "vectorized"), spec.name)
        params, X, Y = problem(spec, BATCH_LARGE, np.float32)
        generated = peak_bytes(partial(module.loss_and_grad, params, X, Y))
        hand = peak_bytes(partial(handwritten(hidden), params, X, Y))
        p_bytes = nbytes(params.values())
        a_bytes = BATCH_LARGE * sum(spec.layer_sizes[1:]) * X.itemsize  # a^1..a^L, one array per layer
        reference = 2 * p_bytes + a_bytes  # params + activations + grads (grads are as big as params)
        k = 1024
        rows.append(
            f"| {hidden} | {generated / k:.0f} | {hand / k:.0f} | {p_bytes / k:.0f} | {a_bytes / k:.0f}"
            f" | {p_bytes / k:.0f} | {reference / k:.0f} | {generated / reference:.2f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions per contender (default 200)")
    parser.add_argument("--quick", action="store_true", help="30 repetitions, and no extra small nets")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    args = parser.parse_args(argv)
    reps = 30 if args.quick else args.reps
    use_torch = not args.no_torch
    threads = ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS)
    torch_text = "torch not installed"
    if torch is not None:
        torch_text = f"torch {torch.__version__} ({torch.get_num_threads()} thread)"
    print(f"# symprop runtime benchmark: {threads} (set before importing numpy); {torch_text}")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    print(f"# numpy {np.__version__}, python {platform.python_version()}, {machine}")
    print(f"# medians of {reps} interleaved runs, CPU time of this thread (wall time alongside)\n")
    print(f"## 784-256-128-10, softmax_ce, batch {BATCH_LARGE}, float32\n")
    rows, _ = large_net_table(reps, use_torch)
    print("\n".join(rows))
    print(f"\n## small nets, batch {BATCH_SMALL}, float64 (auto: {auto_rule()})\n")
    rows, _ = small_net_table(reps, use_torch, extra=not args.quick)
    print("\n".join(rows))
    print(f"\n## peak memory of one loss_and_grad call (tracemalloc), 784-256-128-10, batch {BATCH_LARGE}, float32\n")
    print("\n".join(memory_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
