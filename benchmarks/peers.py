"""symprop against the peers a user would pick instead, every target in one table.

Run:  python -m benchmarks.peers [--quick] [--reps N] [--no-write]

One process, one thread for every side: OMP/OPENBLAS/MKL_NUM_THREADS=1 and threadpoolctl's limit
for NumPy's BLAS, torch.set_num_threads(1), XLA_FLAGS with one Eigen thread and one intra-op
thread for JAX.  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set on some machines for old OpenBLAS
builds; they force a slower kernel) are removed from this command's environment alone: the script
re-executes itself without them and prints the kernel OpenBLAS runs (threadpoolctl).

Nets: 784-256-128-10 with sigmoid or relu hidden layers, identity output, softmax_ce (NumPy,
array-API, JAX jit, PyTorch eager, the GEMM floor); 2-3-1 sigmoid mse, 4-16-16-3 tanh mse and
64-64-64-10 relu softmax_ce (also the C target and CasADi SX/MX generated C).  Batch 1, 32, 256;
float32 and float64.

Method: every contender's loss and gradient is checked against the float64 NumPy module before
any timing (relative to the largest entry of each array: 1e-9 in float64; 2e-4 in float32,
a few hundred float32 roundings of sums over up to 784 terms).  Then the contenders of one
(net, dtype, batch) run in turn inside every repetition, the order rotated each time, so a slow
spell of the shared machine hits them all.  A repetition times a block of calls sized to about
--block-ms; times are CPU seconds of this process (Python side: time.process_time, which also
counts JAX's own threads) or of this thread inside the C loops (CLOCK_THREAD_CPUTIME_ID).  A
ratio is the ratio of the two medians; its spread is the interquartile range of the per-
repetition ratios of the same pair.

Writes docs/benchmarks.md's generated section and docs/assets/benchmarks-peers.png (a full run;
--quick prints only, unless --write).
"""

from __future__ import annotations

import os
import sys

BLAS_FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if __name__ == "__main__" and any(v in os.environ for v in BLAS_FORCING) and "--keep-blas-env" not in sys.argv:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_FORCING}
    removed = ", ".join(f"{v}={os.environ[v]}" for v in BLAS_FORCING if v in os.environ)
    print(f"# re-running without {removed} (this command only)", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.peers", *sys.argv[1:]], env)

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()

import argparse  # noqa: E402
import ctypes  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.torch_net import torch_loss_and_grad  # noqa: E402
from symprop.emit import render, render_files  # noqa: E402
from symprop.spec import Layer, Spec  # noqa: E402
from symprop.tools.check import load_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "benchmarks" / "peers_harness.c"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "assets" / "benchmarks-peers.png"
BEGIN, END = "<!-- BEGIN GENERATED: python -m benchmarks.peers -->", "<!-- END GENERATED -->"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "symprop-bench"
CFLAGS = ("-O2", "-fPIC")
BATCHES = (1, 32, 256)
DTYPES = (np.float32, np.float64)
TOL = {np.float32: 2e-4, np.float64: 1e-9}

try:
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(1)
except ImportError:  # pragma: no cover - the bench extra installs it
    threadpool_info = None
try:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
except ImportError:  # pragma: no cover
    torch = None
try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 when asked; float32 inputs stay float32
except ImportError:  # pragma: no cover
    jax = None
try:
    import casadi
except ImportError:  # pragma: no cover
    casadi = None


# ------------------------------------------------------------------- nets --
def net(name: str, inputs: int, units: tuple[int, ...], hidden: str, out: str, loss: str) -> Spec:
    layers = (*(Layer.of(u, hidden) for u in units[:-1]), Layer.of(units[-1], out))
    return Spec(name, inputs, layers, loss)


LARGE = (
    net("mnist_sigmoid", 784, (256, 128, 10), "sigmoid", "identity", "softmax_ce"),
    net("mnist_relu", 784, (256, 128, 10), "relu", "identity", "softmax_ce"),
)
SMALL = (
    net("net_2_3_1", 2, (3, 1), "sigmoid", "sigmoid", "mse"),
    net("net_4_16_16_3", 4, (16, 16, 3), "tanh", "identity", "mse"),
    net("net_64_64_64_10", 64, (64, 64, 10), "relu", "identity", "softmax_ce"),
)


def label(spec: Spec) -> str:
    acts = dict.fromkeys(layer.activation for layer in spec.layers[:-1])
    return f"{'-'.join(map(str, spec.layer_sizes))} {'/'.join(acts)} {spec.loss}"


def draw(spec: Spec, n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """float64 Glorot-uniform weights, small random biases, normal inputs, one-hot or uniform targets."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, shape in spec.param_shapes.items():
        if name.startswith("W"):
            limit = np.sqrt(6.0 / sum(shape))
            params[name] = rng.uniform(-limit, limit, size=shape)
        else:
            params[name] = rng.normal(0.0, 0.1, size=shape)
    X = rng.normal(size=(n, spec.inputs))
    if spec.loss == "softmax_ce":
        Y = np.eye(spec.outputs)[rng.integers(0, spec.outputs, size=n)]
    else:
        Y = rng.uniform(size=(n, spec.outputs))
    return params, X, Y


KINK = 1e-4  # no relu pre-activation closer to 0 than this (float32 sums of <= 784 terms err by ~1e-6)


def problem(spec: Spec, n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A problem whose values are exact in float32 (so every dtype computes from the same numbers) and,
    for relu nets, with no pre-activation within KINK of the kink: a float32 rounding there would flip
    a sample's mask and its contribution to the gradient, and the agreement check could not tell that
    from a wrong gradient. The first seed that qualifies."""
    for seed in range(1000):
        params, X, Y = draw(spec, n, seed)
        params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
        X, Y = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
        h, ok = X, True
        for l, layer in enumerate(spec.layers, start=1):
            z = h @ params[f"W{l}"].T + params[f"b{l}"]
            if layer.activation == "relu":
                ok = ok and bool(np.min(np.abs(z)) > KINK)
            h = {"relu": np.maximum(z, 0.0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z))}.get(
                layer.activation, z
            )
        if ok:
            return params, X, Y
    raise SystemExit(f"no seed below 1000 keeps {spec.name}'s relu pre-activations off the kink")


# ------------------------------------------------------------- contenders --
Result = tuple[float, dict[str, np.ndarray]]


@dataclass
class Contender:
    """``block(calls)`` -> CPU seconds per call; ``result()`` -> (loss, grads) for the agreement check."""

    name: str
    block: Callable[[int], float]
    result: Callable[[], Result]
    symprop: bool
    times: list[float] = field(default_factory=list)
    agreement: float = float("nan")
    keep: tuple[Any, ...] = ()  # arrays whose addresses the C calls hold: alive as long as the contender


def python_block(fn: Callable[[], Any]) -> Callable[[int], float]:
    def block(calls: int) -> float:
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        return (time.process_time() - t0) / calls

    return block


def numpy_results(fn: Callable[[], Any]) -> Callable[[], Result]:
    def result() -> Result:
        C, grads = fn()
        return float(C), {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}

    return result


def torch_result_fn(fn: Callable[[], Any]) -> Callable[[], Result]:
    def result() -> Result:
        C, grads = fn()
        return float(C), {k: v.detach().cpu().numpy().astype(np.float64) for k, v in grads.items()}

    return result


def gemm_floor(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray) -> Callable[[], None]:
    """The matrix products of one loss_and_grad alone, on operands of the same shapes and layouts."""
    rng = np.random.default_rng(1)
    L, n = len(spec.layers), X.shape[0]
    acts = [X] + [rng.normal(size=(n, u)).astype(X.dtype) for u in spec.layer_sizes[1:]]
    deltas: list[Any] = [None] + [rng.normal(size=(n, u)).astype(X.dtype) for u in spec.layer_sizes[1:]]
    W: list[Any] = [None] + [params[f"W{l}"] for l in range(1, L + 1)]

    def run() -> None:
        for l in range(1, L + 1):
            np.dot(acts[l - 1], W[l].T)
        for l in range(L, 0, -1):
            np.dot(deltas[l].T, acts[l - 1])
            if l > 1:
                np.dot(deltas[l], W[l])

    return run


def jax_contender(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contender:
    assert jax is not None
    acts = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh, "identity": lambda z: z}

    def cost(p: dict[str, Any], X: Any, Y: Any) -> Any:
        h = X
        for l, layer in enumerate(spec.layers, start=1):
            h = acts[layer.activation](h @ p[f"W{l}"].T + p[f"b{l}"])
        if spec.loss == "softmax_ce":
            return -jnp.sum(Y * jax.nn.log_softmax(h, axis=1)) / X.shape[0]
        return 0.5 * jnp.sum((h - Y) ** 2) / X.shape[0]

    f = jax.jit(jax.value_and_grad(cost))
    jp = {k: jnp.asarray(v) for k, v in params.items()}
    jX, jY = jnp.asarray(X), jnp.asarray(Y)

    def run() -> Any:
        return jax.block_until_ready(f(jp, jX, jY))

    return Contender("JAX jit", python_block(run), numpy_results(run), False)


def torch_contender(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> Contender:
    assert torch is not None
    run = torch_loss_and_grad(torch, spec, params, X, Y)
    return Contender("PyTorch eager", python_block(run), torch_result_fn(run), False)


_SOURCES: dict[tuple[str, str], str] = {}


def source(spec: Spec, mode: str = "vectorized", target: str = "numpy") -> str:
    """The rendered module, once per net and mode (the unrolled 64-64-64-10 takes SymPy a while)."""
    key = (spec.name, f"{target}:{mode}")
    if key not in _SOURCES:
        _SOURCES[key] = render(spec, mode) if target == "numpy" else render(spec, target=target)
    return _SOURCES[key]


def numpy_contenders(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> list[Contender]:
    out = []
    for mode in ("vectorized", "unrolled"):
        try:
            module = load_module(source(spec, mode), f"{spec.name}_{mode}")
        except Exception:  # the unrolled mode refuses large nets (over its size limit)
            continue

        def run(m: Any = module) -> Any:
            return m.loss_and_grad(params, X, Y)

        out.append(Contender(f"symprop NumPy {mode}", python_block(run), numpy_results(run), True))
    return out


def array_api_contenders(spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> list[Contender]:
    module = load_module(source(spec, target="array-api"), f"{spec.name}_xp")
    out = [
        Contender(
            "symprop array-API · NumPy",
            python_block(lambda: module.loss_and_grad(params, X, Y)),
            numpy_results(lambda: module.loss_and_grad(params, X, Y)),
            True,
        )
    ]
    if torch is not None:
        tp = {k: torch.from_numpy(v) for k, v in params.items()}
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

        def run_torch() -> Any:
            return module.loss_and_grad(tp, tX, tY)

        out.append(Contender("symprop array-API · torch", python_block(run_torch), torch_result_fn(run_torch), True))
    if jax is not None:
        jp = {k: jnp.asarray(v) for k, v in params.items()}
        jX, jY = jnp.asarray(X), jnp.asarray(Y)
        f = jax.jit(module.loss_and_grad)

        def run_jax() -> Any:
            return jax.block_until_ready(f(jp, jX, jY))

        out.append(Contender("symprop array-API · JAX jit", python_block(run_jax), numpy_results(run_jax), True))
    return out


# ------------------------------------------------------------------ C side --
@dataclass
class Built:
    """One compiled translation unit: its object file, source bytes, .text bytes, gcc seconds."""

    obj: Path
    source_bytes: int
    text_bytes: int
    seconds: float


def cc() -> list[str]:
    return shlex.split(os.environ.get("CC", "cc"))


def compile_object(name: str, source: str, extra: tuple[str, ...] = (), headers: dict[str, str] | None = None) -> Built:
    """Compile ``source`` with CFLAGS into a cached object file (keyed by sources, flags, compiler)."""
    key = hashlib.sha256(
        json.dumps([source, headers or {}, CFLAGS, extra, cc(), shutil.which(cc()[0])]).encode()
    ).hexdigest()[:20]
    folder = CACHE / key
    meta = folder / "meta.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        return Built(folder / f"{name}.o", len(source.encode()), info["text"], info["seconds"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.c").write_text(source)
    for hname, text in (headers or {}).items():
        (folder / hname).write_text(text)
    t0 = time.perf_counter()
    cmd = [*cc(), *CFLAGS, *extra, "-c", str(folder / f"{name}.c"), "-o", str(folder / f"{name}.o")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    text = 0
    size = shutil.which("size")
    if size:
        out = subprocess.run([size, "-A", str(folder / f"{name}.o")], capture_output=True, text=True).stdout
        text = sum(int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", out, re.MULTILINE))
    meta.write_text(json.dumps({"text": text, "seconds": seconds}))
    return Built(folder / f"{name}.o", len(source.encode()), text, seconds)


def casadi_source(spec: Spec, kind: str, real: str) -> str:
    """CasADi's generated C for the loss and gradient of one sample, built with SX or MX symbols."""
    assert casadi is not None
    S = casadi.SX if kind == "SX" else casadi.MX
    p, x, y = S.sym("p", spec.n_params), S.sym("x", spec.inputs), S.sym("y", spec.outputs)
    acts = {
        "sigmoid": lambda z: 1 / (1 + casadi.exp(-z)),
        "relu": lambda z: casadi.fmax(z, 0),
        "tanh": casadi.tanh,
        "identity": lambda z: z,
    }
    h, off = x, 0
    for l, layer in enumerate(spec.layers, start=1):
        u, i = layer.units, spec.layer_sizes[l - 1]
        W = casadi.reshape(p[off : off + u * i], i, u).T  # row-major (units x inputs), as symprop's flat params
        off += u * i
        b = p[off : off + u]
        off += u
        h = acts[layer.activation](casadi.mtimes(W, h) + b)
    if spec.loss == "softmax_ce":
        m = casadi.mmax(h)
        cost = (m + casadi.log(casadi.sum1(casadi.exp(h - m)))) * casadi.sum1(y) - casadi.dot(y, h)
    else:
        cost = 0.5 * casadi.sumsqr(h - y)
    fname = f"cas_{kind.lower()}"
    f = casadi.Function(fname, [p, x, y], [cost, casadi.gradient(cost, p)])
    with tempfile.TemporaryDirectory() as tmp:
        cg = casadi.CodeGenerator(f"{fname}.c", {"with_header": False, "casadi_real": real})
        cg.add(f)
        cg.generate(tmp + os.sep)
        return (Path(tmp) / f"{fname}.c").read_text()


TRUSTED = "symprop C, -D<NAME>_TRUST_DISJOINT"  # the overlap checks compiled out (see the C header)


@dataclass
class CLibrary:
    lib: ctypes.CDLL
    spec: Spec
    real: str
    work_size: int
    builds: dict[str, Built]
    casadi_work: dict[str, tuple[int, int]]  # kind -> (iw, w) sizes
    trusted: ctypes.CDLL  # symprop's C built with -D<NAME>_TRUST_DISJOINT (no overlap checks) and the harness


def c_library(spec: Spec, real: str) -> CLibrary:
    """symprop's C, CasADi SX and MX C and the harness, each compiled alone (cached), linked into one library."""
    files = render_files(spec, target="c", options={"real": real})
    header = files[f"{spec.name}.h"]
    builds = {"symprop C": compile_object(spec.name, files[f"{spec.name}.c"], headers={f"{spec.name}.h": header})}
    if casadi is not None:
        for kind in ("SX", "MX"):
            builds[f"CasADi {kind}"] = compile_object(f"cas_{kind.lower()}", casadi_source(spec, kind, real))
    harness = compile_object("peers_harness", HARNESS.read_text(), (f"-DREAL={real}", "-D_POSIX_C_SOURCE=199309L"))
    trusted = compile_object(
        spec.name, files[f"{spec.name}.c"], (f"-D{spec.name.upper()}_TRUST_DISJOINT",), {f"{spec.name}.h": header}
    )
    builds[TRUSTED] = trusted

    def shared(*objects: Built) -> ctypes.CDLL:
        key = hashlib.sha256("".join(str(b.obj) for b in objects).encode()).hexdigest()[:20]
        so = CACHE / f"lib_{key}.so"
        if not so.exists():
            objs = [str(b.obj) for b in objects]
            subprocess.run([*cc(), "-shared", *objs, "-o", str(so), "-lm"], check=True, capture_output=True)
        return ctypes.CDLL(str(so))

    lib = shared(*(b for name, b in builds.items() if name != TRUSTED), harness)
    work = int(re.search(rf"#define {spec.name.upper()}_WORK_SIZE (\d+)", header).group(1))  # type: ignore[union-attr]
    sizes = {}
    for kind in ("SX", "MX") if casadi is not None else ():
        fn = getattr(lib, f"cas_{kind.lower()}_work")
        s = [ctypes.c_longlong(0) for _ in range(4)]
        fn(*[ctypes.byref(v) for v in s])
        sizes[kind] = (int(s[2].value), int(s[3].value))
    return CLibrary(lib, spec, real, work, builds, sizes, shared(trusted, harness))


def c_contenders(c: CLibrary, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> list[Contender]:
    spec, dtype = c.spec, X.dtype
    flat = np.concatenate([params[k].ravel() for k in spec.param_shapes]).astype(dtype)
    n = X.shape[0]
    Xc, Yc = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    ptr = ctypes.c_void_p
    cas_loop = c.lib.casadi_loop
    cas_loop.argtypes = [ptr, ctypes.c_long, ptr, ptr, ptr, *[ctypes.c_size_t] * 4, *[ptr] * 5]
    cas_loop.restype = ctypes.c_double

    def unflat(g: np.ndarray) -> dict[str, np.ndarray]:
        out, off = {}, 0
        for k, shape in spec.param_shapes.items():
            size = int(np.prod(shape))
            out[k] = g[off : off + size].reshape(shape).astype(np.float64)
            off += size
        return out

    def in_c_loop(lib: ctypes.CDLL) -> tuple[Callable[[int], float], Callable[[], Result], list[Any], tuple[Any, ...]]:
        """``lib``'s loss_and_grad in the harness's C loop, on outputs and a workspace of its own:
        (block, result, the call's arguments, the arrays they point into)."""
        fptr = ctypes.cast(getattr(lib, f"{spec.name}_loss_and_grad"), ptr).value
        loop = lib.symprop_loop
        loop.argtypes = [ptr, ctypes.c_long, ptr, ptr, ptr, ctypes.c_size_t, ptr, ptr, ptr]
        loop.restype = ctypes.c_double
        loss, grad, work = np.zeros(1, dtype), np.zeros(spec.n_params, dtype), np.zeros(c.work_size, dtype)
        args = [a.ctypes.data for a in (flat, Xc, Yc)] + [n] + [a.ctypes.data for a in (loss, grad, work)]

        def result() -> Result:
            assert loop(fptr, 1, *args) >= 0
            return float(loss[0]), unflat(grad)

        return lambda calls: loop(fptr, calls, *args) / calls, result, args, (flat, Xc, Yc, loss, grad, work)

    loop_block, sym_result, args, keep = in_c_loop(c.lib)
    fn = getattr(c.lib, f"{spec.name}_loss_and_grad")
    fn.argtypes = [ptr, ptr, ptr, ctypes.c_size_t, ptr, ptr, ptr]
    fn.restype = ctypes.c_int

    def ctypes_block(calls: int) -> float:
        t0 = time.process_time()
        for _ in range(calls):
            fn(*args)
        return (time.process_time() - t0) / calls

    out: list[Contender] = [
        Contender("symprop C via ctypes", ctypes_block, sym_result, True, keep=keep),
        Contender("symprop C loop", loop_block, sym_result, True, keep=keep),
    ]
    # the same source with its overlap checks compiled out, in its own library (same symbol names)
    t_block, t_result, _, t_keep = in_c_loop(c.trusted)
    out.append(Contender("symprop C loop, TRUST_DISJOINT", t_block, t_result, True, keep=t_keep))
    for kind, (iw_size, w_size) in c.casadi_work.items():
        f = ctypes.cast(getattr(c.lib, f"cas_{kind.lower()}"), ptr).value
        lo, gr, tmp = np.zeros(1, dtype), np.zeros(spec.n_params, dtype), np.zeros(spec.n_params, dtype)
        iw, w = np.zeros(iw_size + 1, np.int64), np.zeros(w_size + 1, dtype)
        cargs = [a.ctypes.data for a in (flat, Xc, Yc)] + [n, spec.inputs, spec.outputs, spec.n_params]
        cargs += [a.ctypes.data for a in (lo, gr, tmp, iw, w)]

        def cas_result(f: Any = f, cargs: list[Any] = cargs, lo: np.ndarray = lo, gr: np.ndarray = gr) -> Result:
            assert cas_loop(f, 1, *cargs) >= 0
            return float(lo[0]), unflat(gr)

        def cas_block(calls: int, f: Any = f, cargs: list[Any] = cargs) -> float:
            return cas_loop(f, calls, *cargs) / calls

        out.append(Contender(f"CasADi {kind} C loop", cas_block, cas_result, False, keep=(*keep, lo, gr, tmp, iw, w)))
    return out


# ------------------------------------------------------------------ timing --
def agree(ref: Result, got: Result, tol: float) -> float:
    """Largest difference over the cost and every gradient array, relative to that array's largest entry."""
    worst = abs(got[0] - ref[0]) / max(1e-30, abs(ref[0]))
    for k, r in ref[1].items():
        worst = max(worst, float(np.max(np.abs(got[1][k] - r))) / max(1e-30, float(np.max(np.abs(r)))))
    return worst


def run_config(contenders: list[Contender], ref: Result, tol: float, reps: int, block_s: float, where: str) -> None:
    for c in contenders:
        c.agreement = agree(ref, c.result(), tol)
        if not c.agreement <= tol:
            raise SystemExit(f"{where}: {c.name} disagrees with the float64 NumPy module by {c.agreement:.1e} > {tol}")
    calls = {}
    for c in contenders:
        c.block(1)  # warm (JIT compiles happened in result())
        per = c.block(1)
        calls[c.name] = max(1, int(block_s / max(per, 1e-9)))
    for r in range(reps):
        k = r % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            c.times.append(c.block(calls[c.name]))


@dataclass
class Row:
    net: str
    dtype: str
    n: int
    name: str
    median: float
    iqr: float  # relative: (q3 - q1) / median
    agreement: float
    symprop: bool
    ratios: dict[str, tuple[float, float, float]]  # peer -> (ratio of medians, q1, q3 of paired ratios)


# which peers each contender is compared with (when both ran)
PAIRS = {
    "symprop NumPy vectorized": ("JAX jit", "PyTorch eager", "GEMM floor"),
    "symprop NumPy unrolled": ("symprop NumPy vectorized",),
    "symprop array-API · NumPy": ("symprop NumPy vectorized",),
    "symprop array-API · torch": ("PyTorch eager",),
    "symprop array-API · JAX jit": ("JAX jit",),
    "symprop C via ctypes": ("symprop NumPy vectorized", "PyTorch eager"),
    "symprop C loop": ("CasADi SX C loop", "CasADi MX C loop"),
    "symprop C loop, TRUST_DISJOINT": ("CasADi SX C loop", "symprop C loop"),
}


def rows_of(spec: Spec, dtype: Any, n: int, contenders: list[Contender]) -> list[Row]:
    by = {c.name: c for c in contenders}
    rows = []
    for c in contenders:
        t = np.array(c.times)
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        ratios = {}
        for peer in PAIRS.get(c.name, ()):
            if peer in by:
                u = np.array(by[peer].times)
                paired = t / u
                ratios[peer] = (float(med / np.median(u)), *map(float, np.percentile(paired, [25, 75])))
        rows.append(
            Row(
                label(spec),
                np.dtype(dtype).name,
                n,
                c.name,
                float(med),
                float((q3 - q1) / med),
                c.agreement,
                c.symprop,
                ratios,
            )
        )
    return rows


def config_contenders(
    spec: Spec, dtype: Any, n: int, large: bool, clibs: dict[Any, CLibrary], c_only: bool = False
) -> tuple[list[Contender], Result]:
    p64, X64, Y64 = problem(spec, n)
    ref_mod = load_module(source(spec), f"{spec.name}_ref")
    ref = numpy_results(lambda: ref_mod.loss_and_grad(p64, X64, Y64))()
    params = {k: v.astype(dtype) for k, v in p64.items()}
    X, Y = X64.astype(dtype), Y64.astype(dtype)
    if c_only:  # symprop's C and CasADi's alone (the small nets; the reference still checks them)
        return c_contenders(clibs[(spec.name, dtype)], params, X, Y), ref
    out = numpy_contenders(spec, params, X, Y)
    if large:
        out += array_api_contenders(spec, params, X, Y)
        floor = gemm_floor(spec, params, X)
        out.append(Contender("GEMM floor", python_block(floor), lambda: ref, False))
    else:
        out += c_contenders(clibs[(spec.name, dtype)], params, X, Y)
    if jax is not None:
        out.append(jax_contender(spec, params, X, Y))
    if torch is not None:
        out.append(torch_contender(spec, params, X, Y))
    return out, ref


# ----------------------------------------------------------------- output --
def fmt_time(s: float) -> str:
    us = s * 1e6
    return f"{us:.3g}" if us < 100 else f"{us:,.0f}"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| net | dtype | n | contender | µs per call | spread | ratio to peer (IQR of paired ratios) | agreement |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        ratios = "; ".join(f"**{v:.2f}×** {peer} ({lo:.2f}–{hi:.2f})" for peer, (v, lo, hi) in r.ratios.items())
        name = r.name if r.symprop else f"*{r.name}*"
        out.append(
            f"| {r.net} | {r.dtype} | {r.n} | {name} | {fmt_time(r.median)} | ±{50 * r.iqr:.0f}% | {ratios} "
            f"| {r.agreement:.0e} |"
        )
    return out


GOALS: list[tuple[str, str, str, Callable[[Row], bool], float]] = [
    # (goal, contender, peer, which rows, bound)
    (
        "NumPy ≤ 1.0× JAX jit (784-256-128-10)",
        "symprop NumPy vectorized",
        "JAX jit",
        lambda r: "784" in r.net,
        1.0,
    ),
    (
        "NumPy ≤ 1.0× PyTorch eager (784-256-128-10)",
        "symprop NumPy vectorized",
        "PyTorch eager",
        lambda r: "784" in r.net,
        1.0,
    ),
    (
        "GEMM floor, sigmoid, n = 256 f32: ≤ 1.05×",
        "symprop NumPy vectorized",
        "GEMM floor",
        lambda r: "sigmoid" in r.net and "784" in r.net and r.n == 256 and r.dtype == "float32",
        1.05,
    ),
    (
        "GEMM floor, relu, n = 256 f32: ≤ 1.03×",
        "symprop NumPy vectorized",
        "GEMM floor",
        lambda r: "relu" in r.net and "784" in r.net and r.n == 256 and r.dtype == "float32",
        1.03,
    ),
    (
        "array-API on torch ≤ 1.0× PyTorch eager (784-256-128-10)",
        "symprop array-API · torch",
        "PyTorch eager",
        lambda r: "784" in r.net,
        1.0,
    ),
    ("C ≤ 1.0× CasADi SX per sample (n = 1)", "symprop C loop", "CasADi SX C loop", lambda r: r.n == 1, 1.0),
    (
        "the same, overlap checks compiled out (-D…_TRUST_DISJOINT; not the default)",
        "symprop C loop, TRUST_DISJOINT",
        "CasADi SX C loop",
        lambda r: r.n == 1,
        1.0,
    ),
    ("C ≤ 0.8× CasADi SX over a batch of 256", "symprop C loop", "CasADi SX C loop", lambda r: r.n == 256, 0.8),
]


def goals_table(rows: list[Row]) -> list[str]:
    out = ["| goal | cases met | worst case | worst ratio (IQR) |", "| --- | ---: | --- | ---: |"]
    for goal, who, peer, which, bound in GOALS:
        cases = [r for r in rows if r.name == who and peer in r.ratios and which(r)]
        if not cases:
            out.append(f"| {goal} | not run | | |")
            continue
        met = sum(r.ratios[peer][0] <= bound for r in cases)
        worst = max(cases, key=lambda r: r.ratios[peer][0])
        v, lo, hi = worst.ratios[peer]
        out.append(
            f"| {goal} | {met} of {len(cases)} | {worst.net}, {worst.dtype}, n = {worst.n} "
            f"| {v:.2f} ({lo:.2f}–{hi:.2f}) |"
        )
    return out


def build_table(libs: dict[Any, CLibrary]) -> list[str]:
    out = [
        "| net | real | contender | C source KB | .text KB | gcc -O2 s |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for (_, _dtype), c in libs.items():
        for name, b in c.builds.items():
            out.append(
                f"| {label(c.spec)} | {c.real} | {name} | {b.source_bytes / 1024:,.1f} | {b.text_bytes / 1024:,.1f} "
                f"| {b.seconds:.2f} |"
            )
    return out


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys(r.net for r in rows))
    names = list(dict.fromkeys(r.name for r in rows))
    colours = {name: plt.get_cmap("tab20")(k % 20) for k, name in enumerate(names)}
    dtypes = list(dict.fromkeys(r.dtype for r in rows))
    fig, axes = plt.subplots(len(nets), len(dtypes), figsize=(6 * len(dtypes), 3.2 * len(nets)), squeeze=False)
    for i, net_ in enumerate(nets):
        for j, dt in enumerate(dtypes):
            ax = axes[i][j]
            sel = [r for r in rows if r.net == net_ and r.dtype == dt]
            for name in dict.fromkeys(r.name for r in sel):
                pts = sorted((r.n, r.median * 1e6) for r in sel if r.name == name)
                style = "-o" if name.startswith("symprop") else "--s"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name, markersize=3, color=colours[name])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{net_}, {dt}", fontsize=9)
            ax.set_xlabel("batch size n")
            ax.set_ylabel("µs per loss_and_grad")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def environment() -> list[str]:
    kernel = "threadpoolctl not installed"
    if threadpool_info is not None:
        kernel = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} kernel {i.get('architecture')}, "
            f"{i.get('num_threads')} thread(s)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        )
    forced = [f"{v}={os.environ[v]}" for v in BLAS_FORCING if v in os.environ]
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    names = [
        l.split(":", 1)[1].strip()
        for l in (info.read_text().splitlines() if info.exists() else [])
        if l.startswith("model name")
    ]
    cpu = names[0] if names else cpu
    ccv = subprocess.run([*cc(), "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores (shared); Python {sys.version.split()[0]}",
        f"- NumPy {np.__version__}: {kernel}" + (f" (FORCED by {', '.join(forced)})" if forced else ""),
        f"- JAX {jax.__version__ if jax else 'absent'}, torch {torch.__version__ if torch else 'absent'}, "
        f"CasADi {casadi.__version__ if casadi else 'absent'}; SymForce: not run (see below)",
        f"- C compiler: {ccv[0] if ccv else cc()[0]}, flags {' '.join(CFLAGS)} for every C source",
    ]


def write_doc(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC} lacks the markers {BEGIN} ... {END}")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: few repetitions, short blocks, prints only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per contender (default 31; --quick 5)")
    parser.add_argument("--block-ms", type=float, default=None, help="length of one timed block (default 4; --quick 1)")
    parser.add_argument("--nets", default="large,small", help="large, small or both (default)")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--write", action="store_true", help="write the docs section and plot even with --quick")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--c-only",
        action="store_true",
        help="the small nets' C contenders alone (symprop C, CasADi SX, MX); prints only",
    )
    parser.add_argument("--keep-blas-env", action="store_true", help="do not remove OPENBLAS_CORETYPE/L2_SIZE")
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 31)
    block_s = (args.block_ms or (1.0 if args.quick else 4.0)) / 1e3
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    specs = [(s, True) for s in LARGE] * ("large" in args.nets) + [(s, False) for s in SMALL] * ("small" in args.nets)
    if args.c_only:
        specs = [(s, large) for s, large in specs if not large]
        args.no_write = True  # a part of the table: the docs section stays whole
    env = environment()
    print("\n".join(env), flush=True)
    t_start = time.perf_counter()
    clibs: dict[Any, CLibrary] = {}
    for spec, large in specs:
        if not large:
            for dt in dtypes:
                t0 = time.perf_counter()
                clibs[(spec.name, dt)] = c_library(spec, "float" if dt == np.float32 else "double")
                print(f"# built C for {spec.name} {np.dtype(dt).name} in {time.perf_counter() - t0:.1f} s", flush=True)
    rows: list[Row] = []
    for spec, large in specs:
        for dt in dtypes:
            for n in batches:
                where = f"{label(spec)} {np.dtype(dt).name} n={n}"
                contenders, ref = config_contenders(spec, dt, n, large, clibs, args.c_only)
                run_config(contenders, ref, TOL[dt], reps, block_s, where)
                new = rows_of(spec, dt, n, contenders)
                rows += new
                print("\n".join(table(new)[2:]), flush=True)
    took = time.perf_counter() - t_start
    text = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m benchmarks.peers"
        f"{' --quick' if args.quick else ''}`: {reps} repetitions of ~{block_s * 1e3:g} ms blocks per contender, "
        f"{took / 60:.0f} min.",
        "",
        *env,
        "",
        "### Goals (issue 21)",
        "",
        *goals_table(rows),
        "",
        "### Every contender",
        "",
        "Peers in *italics*. µs per call: median CPU time; spread: half the interquartile range of the repetitions, "
        "relative to the median; agreement: worst difference to the float64 NumPy module relative to each array's "
        "largest entry, checked before timing.",
        "",
        *table(rows),
        "",
    ]
    if clibs:
        text += ["### C builds (same compiler and flags)", "", *build_table(clibs), ""]
    text += [f"![time against batch size]({PLOT.relative_to(DOC.parent).as_posix()})"]
    print("\n" + "\n".join(text))
    if (args.write or not args.quick) and not args.no_write:
        plot(rows, PLOT)
        write_doc("\n".join(text))
        print(f"# wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
