"""The C target as an on-device kit (issue 17) and its red-team fixes (issue 22: B4-B6, E19).

* optimizers: sgd_step and adam_step against a NumPy reference written from PyTorch's documented
  update (and against torch itself where installed), 1e-12 relative in double: both compute the
  same few operations per entry in float64, so they differ by a few ulps at most;
* init_params: deterministic per seed, the stated law (bounds, zero biases, a uniform
  distribution by a Kolmogorov-Smirnov test), bit-equal to an independent Python splitmix64;
* ABI macros, --inference-only for every target, names that would shadow system headers;
* NaN in gives NaN out in every target and every activation;
* float batch sums at n = 2^20 against float64; overlapping arrays refused with ERR_OVERLAP;
* the float build under arm-none-eabi-gcc: no double-precision libm call, no __aeabi_d* helper.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from symprop.backends.c.module import glorot_limit
from symprop.emit import render_files
from symprop.spec import Layer, Spec, SpecError
from symprop.tools.check import load_module, random_problem
from tests.support import ACTIVATIONS, CUSTOM_LOSS, LOSSES, module_for, spec_for
from tests.test_c_target import EXAMPLE_SPECS, GRID, c_module, rel_error

IRIS = EXAMPLE_SPECS["iris_classifier"]
ERR_NULL, ERR_SIZE, ERR_OVERLAP, ERR_ARG = 1, 2, 3, 4


# ------------------------------------------------------------------ optimizers --
def numpy_sgd(p: np.ndarray, g: np.ndarray, buf: np.ndarray, lr: float, mu: float) -> None:
    """torch.optim.SGD (dampening 0, no Nesterov): buf = mu buf + g (buf = g at the first step,
    which is what mu*0 + g gives), p -= lr buf."""
    if mu == 0:
        p -= lr * g
        return
    buf *= mu
    buf += g
    p -= lr * buf


def numpy_adam(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, b1: float, b2: float, eps: float
) -> None:
    """torch.optim.Adam's documented single-tensor update (no weight decay, no amsgrad)."""
    m[:] = b1 * m + (1 - b1) * g
    v[:] = b2 * v + (1 - b2) * g * g
    step = lr / (1 - b1**t)
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
    p -= step * (m / denom)


def _steps(real: str = "double") -> tuple[object, np.ndarray, list[np.ndarray]]:
    c = c_module(IRIS, real)
    rng = np.random.default_rng(5)
    p0 = rng.normal(size=c.N_PARAMS).astype(c.dtype)
    grads = [rng.normal(size=c.N_PARAMS).astype(c.dtype) * 10.0 ** rng.integers(-3, 2) for _ in range(6)]
    return c, p0, grads


@pytest.mark.parametrize("mu", [0.0, 0.9])
def test_sgd_step_equals_the_numpy_reference(mu: float) -> None:
    c, p0, grads = _steps()
    p, vel = p0.copy(), np.zeros_like(p0)
    ref_p, ref_v = p0.copy(), np.zeros_like(p0)
    for g in grads:
        assert c._sgd_step(p.ctypes.data, g.ctypes.data, vel.ctypes.data if mu else None, 0.05, mu) == 0
        numpy_sgd(ref_p, g, ref_v, 0.05, mu)
    assert rel_error(p, ref_p) <= 1e-12 and rel_error(vel, ref_v) <= 1e-12 if mu else rel_error(p, ref_p) <= 1e-12
    assert not np.array_equal(p, p0)


def test_adam_step_equals_the_numpy_reference_and_torch() -> None:
    c, p0, grads = _steps()
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    ref = [p0.copy(), np.zeros_like(p0), np.zeros_like(p0)]
    for t, g in enumerate(grads, start=1):
        args = (p.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data, t, 1e-2, 0.9, 0.999, 1e-8)
        assert c._adam_step(*args) == 0
        numpy_adam(ref[0], g, ref[1], ref[2], t, 1e-2, 0.9, 0.999, 1e-8)
    for got, want in zip((p, m, v), ref, strict=True):
        assert rel_error(got, want) <= 1e-12
    torch = pytest.importorskip("torch", reason="torch is not installed: the NumPy reference above still ran")
    tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([tp], lr=1e-2)
    for g in grads:
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    # torch's lerp form of m differs from b1 m + (1 - b1) g by an ulp: same 1e-12 bound
    assert rel_error(p, tp.detach().numpy()) <= 1e-12


def test_optimizers_refuse_bad_arguments_and_write_nothing() -> None:
    c, p0, grads = _steps()
    p, g, m, v = p0.copy(), grads[0], np.zeros_like(p0), np.zeros_like(p0)
    P, G, M, V = p.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data
    assert c._sgd_step(P, G, None, 0.1, 0.9) == ERR_NULL  # velocity needed when momentum > 0
    assert c._sgd_step(None, G, None, 0.1, 0.0) == ERR_NULL
    for lr, mu in ((-0.1, 0.0), (float("nan"), 0.0), (0.1, float("inf")), (0.1, -0.5)):
        assert c._sgd_step(P, G, V, lr, mu) == ERR_ARG
    assert c._sgd_step(P, P, None, 0.1, 0.0) == ERR_OVERLAP
    assert c._sgd_step(P, G, P + 8, 0.1, 0.9) == ERR_OVERLAP  # velocity starting inside params
    bad = [(0, 1e-3, 0.9, 0.999, 1e-8), (1, -1e-3, 0.9, 0.999, 1e-8), (1, 1e-3, 1.0, 0.999, 1e-8)]
    bad += [(1, 1e-3, 0.9, -0.1, 1e-8), (1, 1e-3, 0.9, 0.999, float("nan")), (1, float("inf"), 0.9, 0.999, 1e-8)]
    for t, lr, b1, b2, eps in bad:
        assert c._adam_step(P, G, M, V, t, lr, b1, b2, eps) == ERR_ARG
    assert c._adam_step(P, G, M, M, 1, 1e-3, 0.9, 0.999, 1e-8) == ERR_OVERLAP
    assert c._adam_step(P, G, None, V, 1, 1e-3, 0.9, 0.999, 1e-8) == ERR_NULL
    assert np.array_equal(p, p0) and not m.any() and not v.any()


# ------------------------------------------------------------------------ init --
def splitmix64(state: int) -> tuple[int, int]:
    """The reference generator (Steele, Lea, Flood 2014), in Python integers mod 2^64."""
    mask = (1 << 64) - 1
    state = (state + 0x9E3779B97F4A7C15) & mask
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return state, z ^ (z >> 31)


def python_init(spec: Spec, seed: int, real: str) -> np.ndarray:
    """An independent implementation of the stated law and grid (for the bit-equality check)."""
    dtype = np.float32 if real == "float" else np.float64
    out, state = [], seed
    for name, shape in spec.param_shapes.items():
        size = int(np.prod(shape))
        if not name.startswith("W"):
            out += [dtype(0.0)] * size
            continue
        limit = dtype(glorot_limit(shape))
        for _ in range(size):
            state, z = splitmix64(state)
            u = dtype(z >> 40) * dtype(2.0**-23) if real == "float" else dtype(z >> 11) * dtype(2.0**-52)
            out.append(dtype(limit * dtype(u - dtype(1.0))))
    return np.array(out, dtype)


@pytest.mark.parametrize("real", ["double", "float"])
def test_init_params_is_deterministic_and_follows_the_law(real: str) -> None:
    spec = Spec("c_init_wide", 300, (Layer.of(200, "tanh"), Layer.of(3, "identity")), "softmax_ce")
    c = c_module(spec, real)
    a, b, other = c.flat(c.init_params(7)), c.flat(c.init_params(7)), c.flat(c.init_params(8))
    assert np.array_equal(a, b) and not np.array_equal(a, other)
    assert np.array_equal(a, python_init(spec, 7, real))
    params = c.unflat(a)
    for name, shape in spec.param_shapes.items():
        if not name.startswith("b"):
            limit = glorot_limit(shape)
            assert np.all(np.abs(params[name]) <= limit * (1 + 1e-7))
        else:
            assert not params[name].any()
    # W1 has 60,000 entries, U[-l, l) by the law: the Kolmogorov-Smirnov distance to that
    # distribution is below 1.63/sqrt(N) = 0.0067 with probability 0.99 for a true uniform sample
    # (the asymptotic critical value); a wrong law (a normal, a wrong bound, half the range) is > 0.05.
    w = np.sort(params["W1"].ravel() / glorot_limit(spec.param_shapes["W1"]))
    cdf = (w + 1) / 2
    n = w.size
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.63 / np.sqrt(n), ks


def test_init_params_refuses_null() -> None:
    c = c_module(IRIS)
    assert c._init_params(None, 0) == ERR_NULL


# ------------------------------------------------------------------------- ABI --
def test_abi_macros_and_the_notes_of_the_header() -> None:
    for spec in (IRIS, EXAMPLE_SPECS["zoo"], EXAMPLE_SPECS["xor"]):
        U = spec.name.upper()
        for real in ("double", "float"):
            header = render_files(spec, target="c", options={"real": real})[f"{spec.name}.h"]
            module = load_module(render_files(spec)[f"{spec.name}.py"], spec.name)
            assert f'#define {U}_SPEC_HASH "{module.SPEC_HASH}"\n' in header
            assert f'#define {U}_GENERATOR "{module.GENERATOR}"\n' in header
            assert f"#define {U}_N_LAYERS {len(spec.layers)}\n" in header
            sizes = ", ".join(map(str, module.LAYER_SIZES))
            assert f"#define {U}_LAYER_SIZES {{{sizes}}}\n" in header
            assert "-ffp-contract=off" in header
            assert ("returns LOGITS" in header) == (spec.loss == "softmax_ce")
            guard = re.search(r"#ifndef (\w+)\n#define \1\n", header)
            assert guard and guard.group(1) == f"SYMPROP_{U}_{spec.hash().upper()}_H"
            for name, code in (("NULL", 1), ("SIZE", 2), ("OVERLAP", 3), ("ARG", 4)):
                assert f"#define {U}_ERR_{name} {code}\n" in header


@pytest.mark.parametrize("name", ["stdio", "stdlib", "limits", "math", "Stdio", "unistd", "pthread", "string", "_math"])
def test_names_that_collide_with_system_headers_or_reserved_identifiers_are_refused(name: str) -> None:
    spec = Spec(name, 2, (Layer.of(1, "sigmoid"),), "mse")
    with pytest.raises(SpecError) as info:
        render_files(spec, target="c")
    message = str(info.value)  # the C check, or the Python one for names like math: one line either way
    assert "\n" not in message and ("choose" in message or "use another name" in message), message


def test_the_layout_macros_compile_in_a_user_program(tmp_path: Path) -> None:
    """LAYER_SIZES is a brace initializer; the header compiles in C (and the guard is unique:
    it is included after <math.h> without clashing)."""
    from symprop.tools.cbuild import compile_c

    files = render_files(IRIS, target="c")
    files["use.c"] = (
        '#include <math.h>\n#include <stdio.h>\n#include <string.h>\n#include "iris_classifier.h"\n'
        "int main(void) { static const int sizes[] = IRIS_CLASSIFIER_LAYER_SIZES;\n"
        '  printf("%d %d %d %d %s\\n", sizes[0], sizes[1], sizes[2], IRIS_CLASSIFIER_N_LAYERS,\n'
        "         IRIS_CLASSIFIER_SPEC_HASH); return 0; }\n"
    )
    exe = compile_c(files, tmp_path, "double", "use")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert out == ["4", "8", "3", "2", IRIS.hash()]


# -------------------------------------------------------------- inference only --
@pytest.mark.parametrize("target,mode", [("numpy", "vectorized"), ("numpy", "unrolled"), ("array-api", "auto")])
def test_inference_only_python_modules_have_forward_and_init_params_only(target: str, mode: str) -> None:
    spec = EXAMPLE_SPECS["zoo"] if mode != "unrolled" else IRIS
    text = render_files(spec, mode, target, inference_only=True)[f"{spec.name}.py"]
    public = {n for n in re.findall(r"^def (\w+)", text, re.M) if not n.startswith("_")}
    assert public == {"forward", "init_params"}
    assert "loss" not in re.sub(r'""".*?"""', "", text, flags=re.S).replace("inference", "")
    full = load_module(render_files(spec, mode, target)[f"{spec.name}.py"], "full")
    small = load_module(text, "small")
    params, X, _ = random_problem(spec, 0, n=5)
    if target == "array-api":
        assert np.array_equal(np.asarray(small.forward(params, X)), np.asarray(full.forward(params, X)))
    else:
        assert np.array_equal(small.forward(params, X), full.forward(params, X))


@pytest.mark.parametrize("real", ["double", "float"])
def test_inference_only_c_has_forward_only(real: str) -> None:
    from symprop.tools.cbuild import load_c

    spec = EXAMPLE_SPECS["zoo"]
    files = render_files(spec, target="c", options={"real": real}, inference_only=True)
    code = "\n".join(files.values())
    for word in ("loss_and_grad", "init_params", "sgd_step", "adam_step", "grad"):
        assert not re.search(rf"\b{spec.name}_{word}\b", code), word
    c, full = load_c(spec, real, inference_only=True), c_module(spec, real)
    assert not c.training
    params, X, _ = random_problem(spec, 1, n=4)
    assert np.array_equal(c.forward(params, X), full.forward(params, X))
    with pytest.raises(SpecError, match="exclude each other"):
        render_files(spec, inference_only=True, second_order=True)


# ------------------------------------------------------------------------- NaN --
NAN_TARGETS = [("numpy", "vectorized", ""), ("numpy", "unrolled", ""), ("array-api", "auto", "")]
NAN_TARGETS += [("c", "auto", "double"), ("c", "auto", "float")]
CUSTOM_KINKS = {  # custom activations with a Piecewise and a Heaviside: both drop NaN when printed naively
    "custom-piecewise": "Piecewise((0.5*x, x < 0), (x**2, x < 1), (2*x - 1, True))",
    "custom-heaviside": "Heaviside(x, 1)*x + 0.1*x",
}
NAN_ACTIVATIONS = [*ACTIVATIONS, *CUSTOM_KINKS]


def nan_spec(activation: str, loss: str) -> Spec:
    if activation not in CUSTOM_KINKS:
        return spec_for(activation, loss)
    name = f"net_{activation.replace('-', '_')}_{loss}"
    hidden = Layer.of(3, "custom", expr=CUSTOM_KINKS[activation])
    out = Layer.of(2, "sigmoid" if loss == "bce" else "identity")
    return Spec(name, 3, (hidden, out), loss, CUSTOM_LOSS if loss == "custom" else None)


def nan_module(spec: Spec, target: str, mode: str, real: str) -> object:
    if target == "c":
        return c_module(spec, real)
    if target == "numpy":
        return module_for(spec, mode)
    from symprop.tools.check import float_results

    return float_results(load_module(render_files(spec, mode, target)[f"{spec.name}.py"], spec.name))


@pytest.mark.parametrize("activation", NAN_ACTIVATIONS)
@pytest.mark.parametrize("target,mode,real", NAN_TARGETS)
def test_nan_in_gives_nan_out_in_every_target(activation: str, target: str, mode: str, real: str) -> None:
    """A NaN input (row 1) or a NaN weight gives NaN forward rows and a NaN loss, never a number
    (relu/step/Heaviside/piecewise helpers once turned NaN into 0 or 1)."""
    spec = nan_spec(activation, "mse")
    module: Any = nan_module(spec, target, mode, real)
    params, X, Y = random_problem(spec, 2, n=4)
    X[1, 0] = np.nan
    with np.errstate(invalid="ignore"):
        out = np.asarray(module.forward(params, X), np.float64)
        assert np.all(np.isnan(out[1])), out
        assert np.all(np.isfinite(out[[0, 2, 3]]))
        assert np.isnan(module.loss(params, X, Y))
        X[1, 0] = 0.5
        params["W1"][0, 0] = np.nan  # unit 0 of layer 1 is NaN for every row
        out = np.asarray(module.forward(params, X), np.float64)
        assert np.all(np.isnan(out)), out


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "step", "custom-piecewise"])
@pytest.mark.parametrize("target,mode,real", NAN_TARGETS)
def test_nan_gives_a_nan_loss_for_every_loss(loss: str, activation: str, target: str, mode: str, real: str) -> None:
    spec = nan_spec(activation, loss)
    module: Any = nan_module(spec, target, mode, real)
    params, X, Y = random_problem(spec, 4, n=3)
    X[2, 1] = np.nan
    with np.errstate(invalid="ignore"):
        assert np.isnan(module.loss(params, X, Y))
        C, _ = module.loss_and_grad(params, X, Y)
    assert np.isnan(C)


# ------------------------------------------------------------- float big batch --
def test_float_sums_over_a_large_batch_stay_accurate() -> None:
    """n = 2^20: the float build's loss and gradient against float64 on the same float32 data.

    Bound (the header's): each sum of n terms t_k errs by at most gamma_(2 ceil(sqrt n)) sum|t_k|,
    1.2e-4 sum|t_k| at n = 2^20, plus the float32 rounding of each term (~1e-6 of it).  In practice
    the roundings are independent and the error is ~sqrt of that count: we assert 2e-5 relative
    for the loss (positive terms: sum|t| = n C) and 2e-4 norm-wise for the gradient, where
    one-at-a-time float summation gave 1.8e-3 for the loss."""
    spec = GRID["tanh-mse"]
    c, ref = c_module(spec, "float"), module_for(spec, "vectorized")
    params, _, _ = random_problem(spec, 3)
    rng = np.random.default_rng(11)
    n = 2**20
    X = rng.normal(size=(n, spec.inputs)).astype(np.float32)
    Y = rng.normal(size=(n, spec.outputs)).astype(np.float32)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    C, grads = c.loss_and_grad(params, X, Y)
    C0, grads0 = ref.loss_and_grad(
        {k: v.astype(np.float64) for k, v in params.items()}, X.astype(float), Y.astype(float)
    )
    assert abs(C - C0) <= 2e-5 * abs(C0), (C, C0)
    for name in grads:
        assert rel_error(grads[name], grads0[name]) <= 2e-4, name


# -------------------------------------------------------------------- aliasing --


@pytest.mark.parametrize("real", ["double", "float"])
def test_trust_disjoint_leaves_out_only_the_overlap_checks(real: str, tmp_path: Path) -> None:
    """-D<NAME>_TRUST_DISJOINT compiles the overlap checks out (for callers whose buffers are disjoint
    by construction) and changes nothing else: the same strict warning flags pass, no spr_overlap
    call is left in the preprocessed functions (and there are some without the macro), the NULL and
    size checks still answer, and every result on disjoint buffers (loss, gradient, forward, both
    optimizer steps) is bit for bit the checked build's: same source, same flags, same operations."""
    from symprop.tools.cbuild import CModule, compile_c, compiler, flags, load_library

    spec = EXAMPLE_SPECS["xor"]
    files = render_files(spec, target="c", options={"real": real})
    define = f"-D{spec.name.upper()}_TRUST_DISJOINT"
    source = files[f"{spec.name}.c"].replace(f'#include "{spec.name}.h"', files[f"{spec.name}.h"])

    def functions(*extra: str) -> str:
        cmd = [*compiler(), *flags(real), *extra, "-E", "-P", "-x", "c", "-"]
        out = subprocess.run(cmd, input=source, capture_output=True, text=True, check=True).stdout
        return out[out.rindex(f"int {spec.name}_forward(") :]  # the definition (the header declares it first)

    assert "spr_overlap(" in functions() and "spr_overlap(" not in functions(define)
    checked = c_module(spec, real)
    trusted = CModule(
        spec,
        load_library(compile_c(files, tmp_path, real, "libtrusted.so", ("-shared", "-fPIC", define))),
        real,
        checked.WORK_SIZE,
    )
    params, X, Y = random_problem(spec, 4, n=5)
    results = []
    for c in (checked, trusted):
        C, grads = c.loss_and_grad(params, X, Y)
        flat, g, m, v, vel = (c.flat(params), c.flat(grads), *(np.zeros(c.N_PARAMS, c.dtype) for _ in range(3)))
        assert c._sgd_step(flat.ctypes.data, g.ctypes.data, vel.ctypes.data, 0.1, 0.9) == 0
        assert (
            c._adam_step(flat.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data, 1, 1e-3, 0.9, 0.999, 1e-8) == 0
        )
        results.append([np.asarray(C), *(grads[k] for k in spec.param_shapes), c.forward(params, X), flat, vel, m, v])
        work, loss = np.zeros(c.WORK_SIZE, c.dtype), np.zeros(1, c.dtype)
        args = [c.flat(params).ctypes.data, np.ascontiguousarray(X, c.dtype).ctypes.data, None, 5]
        assert c._loss_and_grad(*args, loss.ctypes.data, g.ctypes.data, work.ctypes.data) == ERR_NULL
        args[2], args[3] = np.ascontiguousarray(Y, c.dtype).ctypes.data, 0
        assert c._loss_and_grad(*args, loss.ctypes.data, g.ctypes.data, work.ctypes.data) == ERR_SIZE
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))
    assert np.any(results[0][1] != 0)


@pytest.mark.parametrize("real", ["double", "float"])
def test_overlapping_arrays_are_refused_and_nothing_is_written(real: str) -> None:
    spec = EXAMPLE_SPECS["xor"]
    c = c_module(spec, real)
    params, X, Y = random_problem(spec, 0, n=3)
    flat = c.flat(params)
    X, Y = np.ascontiguousarray(X, c.dtype), np.ascontiguousarray(Y, c.dtype)
    big = np.full(4 * c.N_PARAMS + 4 * c.WORK_SIZE, 7.0, c.dtype)  # room for overlapping outputs
    grad, work, loss = np.full(c.N_PARAMS, 7.0, c.dtype), np.full(c.WORK_SIZE, 7.0, c.dtype), np.full(1, 7.0, c.dtype)
    size = c.dtype().itemsize
    F, XX, YY = flat.ctypes.data, X.ctypes.data, Y.ctypes.data
    G, W, L, B = grad.ctypes.data, work.ctypes.data, loss.ctypes.data, big.ctypes.data
    calls = [
        (F, XX, YY, 3, L, F, W),  # grad == params
        (F, XX, YY, 3, G + 2 * size, G, W),  # loss inside grad
        (F, XX, YY, 3, L, G, G),  # work == grad
        (F, XX, YY, 3, L, XX + size, W),  # grad overlapping x
        (F, XX, YY, 3, YY, G, W),  # loss on y
        (F, XX, YY, 3, L, B, B + (c.N_PARAMS - 1) * size),  # work starts on grad's last entry
    ]
    before = (flat.copy(), X.copy(), Y.copy())
    for call in calls:
        assert c._loss_and_grad(*call) == ERR_OVERLAP, call
    fcalls = [(F, XX, 3, F, W), (F, XX, 3, XX, W), (F, XX, 3, W, W), (F, XX, 3, B, B + size)]
    for fcall in fcalls:
        assert c._forward(*fcall) == ERR_OVERLAP, fcall
    assert all(np.array_equal(a, b) for a, b in zip(before, (flat, X, Y), strict=True))
    assert np.all(grad == 7.0) and np.all(work == 7.0) and np.all(loss == 7.0) and np.all(big == 7.0)
    # adjacent (touching, not overlapping) arrays are fine
    assert c._loss_and_grad(F, XX, YY, 3, B, B + size, B + (1 + c.N_PARAMS) * size) == 0
    # x and y may share memory (inputs only)
    assert c._forward(F, XX, 3, B, B + 3 * size) == 0


# ------------------------------------------------------------- microcontroller --
DOUBLE_LIBM = r"\b(exp|log|log1p|tanh|sqrt|pow|fmax|fmin|fabs|expm1|sin|cos|erf|atan)\b"


def test_float_builds_call_no_double_function_on_a_cortex_m4(tmp_path: Path) -> None:
    cc = shutil.which("arm-none-eabi-gcc")
    nm = shutil.which("arm-none-eabi-nm")
    if cc is None or nm is None:
        pytest.skip("arm-none-eabi-gcc is not installed (apt: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion", "-Wdouble-promotion"]
    flags += ["-Wshadow", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]
    specs = [*EXAMPLE_SPECS.values(), *(GRID[k] for k in sorted(GRID))]
    for spec in specs:
        for inference in (False, True):
            files = render_files(spec, target="c", options={"real": "float"}, inference_only=inference)
            for name, text in files.items():
                (tmp_path / name).write_text(text)
            obj = tmp_path / f"{spec.name}.o"
            run = subprocess.run(
                [cc, *flags, "-c", str(tmp_path / f"{spec.name}.c"), "-o", str(obj)], capture_output=True, text=True
            )
            assert run.returncode == 0, run.stderr
            undefined = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout
            symbols = re.findall(r"U (\S+)", undefined)
            assert not [s for s in symbols if re.fullmatch(DOUBLE_LIBM, s) or s.startswith("__aeabi_d")], (
                spec.name,
                symbols,
            )
