"""Generator speed: symprop's derivation vs naive sympy.diff, for growing networks.

Run:  python benchmarks/generate.py [--naive-limit SECONDS] [--sizes 2-3-1,8-16-16-4]

For each net (sigmoid hidden layers, tanh, sigmoid output, mse) it prints the seconds for
derivation (backprop as assignments), CSE (the three emitted functions), rendering
(printing + Jinja: end to end minus the two stages, each timed separately from a cold
cache) and end to end (render_unrolled from the spec; SymPy import and the one-off Jinja
template compilation excluded), the
operation count after CSE, and the same for the naive way: sympy.diff of the fully
expanded cost once per parameter, then one joint CSE. The naive run happens in a child
process killed after --naive-limit seconds (default 60); a killed run is reported as
">limit", and the speed-up as a lower bound. Single-threaded (OMP/OPENBLAS = 1).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the naive oracle in tests/

import sympy as sp  # noqa: E402

from symprop.backends.registry import BACKENDS  # noqa: E402
from symprop.ir import backprop  # noqa: E402
from symprop.ir.optimize import cse  # noqa: E402
from symprop.ir.program import Kind, LinearSum, Map, Program, Reduce  # noqa: E402
from symprop.ir.unroll import unroll  # noqa: E402
from symprop.spec import Layer, Spec  # noqa: E402
from symprop.symbolic.layer_math import activation_math, output_math  # noqa: E402

DEFAULT_SIZES = "2-3-1,4-8-4,8-16-16-4,16-32-32-10,16-64-64-10"


def make_spec(sizes: list[int]) -> Spec:
    hidden = ["sigmoid", "tanh"]
    layers = [Layer.of(u, hidden[k % 2]) for k, u in enumerate(sizes[1:-1])]
    layers.append(Layer.of(sizes[-1], "sigmoid"))
    return Spec("bench", sizes[0], tuple(layers), "mse")


def _cold() -> None:
    """Forget the per-layer caches so every measurement starts from the spec."""
    activation_math.cache_clear()
    output_math.cache_clear()
    backprop.derive.cache_clear()


def n_ops(program: Program) -> int:
    """Operations of loss_and_grad: sympy.count_ops of the elementwise parts, 2k-1 per k-term linear
    sum (as the naive count); the gradient dot products (one per parameter, in both) are left out."""
    total = 0
    for s in program.function("loss_and_grad").body:
        if isinstance(s, LinearSum):
            total += 2 * len(s.terms) - 1 + (s.bias is not None)
        elif isinstance(s, Map | Reduce) and s.out.kind not in (Kind.GRAD_W, Kind.GRAD_B):
            total += int(sp.count_ops(s.expr))
    return total


def ours(spec: Spec) -> dict[str, float]:
    """The unrolled module end to end: layer program, per-neuron transform, CSE, printing."""
    _cold()
    t0 = time.perf_counter()
    units = unroll(backprop.derive(spec))
    t2 = time.perf_counter()
    program = cse(units)
    t3 = time.perf_counter()
    BACKENDS["unrolled"].render(program)
    t4 = time.perf_counter()
    return {"derive": t2 - t0, "cse": t3 - t2, "render": t4 - t3, "total": t4 - t0, "ops": float(n_ops(program))}


def _naive_child(sizes: list[int], queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from tests.oracles.naive import naive_cse_ops, naive_gradients

    t0 = time.perf_counter()
    _, grads, _, _ = naive_gradients(make_spec(sizes))
    t1 = time.perf_counter()
    queue.put(("diff", t1 - t0))
    ops = naive_cse_ops(grads)
    queue.put(("cse", time.perf_counter() - t1, ops))


def naive(sizes: list[int], limit: float) -> dict[str, float | None]:
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    child = mp.Process(target=_naive_child, args=(sizes, queue))
    start = time.perf_counter()
    child.start()
    child.join(limit)
    if child.is_alive():
        child.terminate()
        child.join()
    out: dict[str, float | None] = {"diff": None, "cse": None, "ops": None, "total": None}
    while not queue.empty():
        item = queue.get()
        out[item[0]] = item[1]
        if item[0] == "cse":
            out["ops"] = item[2]
    if out["diff"] is not None and out["cse"] is not None:
        out["total"] = out["diff"] + out["cse"]
    out["elapsed"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--naive-limit", type=float, default=60.0, help="seconds before a naive run is killed")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated nets, e.g. 2-3-1,8-16-16-4")
    args = parser.parse_args()
    print(
        f"symprop generator benchmark (python {sys.version.split()[0]}, single thread; "
        f"naive limit {args.naive_limit:.0f} s)"
    )
    header = (
        f"{'net':<14}{'params':>7}{'derive s':>10}{'cse s':>8}{'render s':>10}{'total s':>9}{'ops':>8}"
        f"{'naive s':>10}{'naive ops':>11}{'speed-up':>10}{'ops ratio':>10}"
    )
    BACKENDS["unrolled"].render(cse(unroll(backprop.derive(make_spec([1, 1])))))  # compile templates once
    print(header)
    print("-" * len(header))
    for text in args.sizes.split(","):
        sizes = [int(s) for s in text.split("-")]
        spec = make_spec(sizes)
        mine = ours(spec)
        ref = naive(sizes, args.naive_limit) if spec.n_params <= 2000 else {"total": None, "ops": None}
        if ref["total"] is not None:
            naive_s = f"{ref['total']:.2f}"
            speed = f"{ref['total'] / mine['total']:.1f}x"
        elif spec.n_params <= 2000:
            naive_s = f">{args.naive_limit:.0f}"
            speed = f">{args.naive_limit / mine['total']:.0f}x"
        else:
            naive_s, speed = "skipped", "-"
        naive_ops = f"{ref['ops']:.0f}" if ref["ops"] else "-"
        ratio = f"{ref['ops'] / mine['ops']:.1f}x" if ref["ops"] else "-"
        print(
            f"{text:<14}{spec.n_params:>7}{mine['derive']:>10.3f}{mine['cse']:>8.3f}{mine['render']:>10.3f}"
            f"{mine['total']:>9.3f}{mine['ops']:>8.0f}{naive_s:>10}{naive_ops:>11}{speed:>10}{ratio:>10}"
        )
    print("total = symprop end to end (derive + CSE + render of all three functions); naive = diff + CSE only.")


if __name__ == "__main__":
    main()
