"""The C target: compiled with the promised warning flags, called through ctypes, equal to the
NumPy module, allocation-free within WORK_SIZE, and refusing bad calls without writing.

Every generated library is compiled once per (spec, real type) and cached.  Agreement is
norm-wise per array: ``max|c - numpy| <= tol * max(max|numpy|, 1e-300)``.

* double: ``tol = 1e-12``.  Both compute the same formulas in float64; they differ only in
  summation order (C sums one sample at a time, NumPy with BLAS) and in the order of a few
  products, so the difference is a few ulps times the number of terms (<= 64 here), about
  1e-14; 1e-12 leaves a factor ~100 while any real mistake (a wrong index, a slot shared
  too early, a missing 1/n) shows as an error near 1.
* float: the C library in float32 against the NumPy module in float64 on the same
  float32-rounded inputs, ``tol = 2e-4``.  Each float32 operation errs by at most
  eps/2 = 6e-8; a gradient entry goes through the forward pass, the loss and the backward
  pass (about 10 dependent operations per layer, sums of up to 64 terms), so a few hundred
  rounding errors add up to ~1e-5 of the array's largest entry, times the conditioning of
  the network at random points (measured worst over these specs: 1.1e-5; double: 1.6e-14);
  2e-4 keeps a margin of ~10 while a float-only bug (a double literal, a wrong helper) is ~1.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from symprop.backends.c.module import build, c_comment, check_comment_safe
from symprop.emit import program_for, render_files
from symprop.spec import Layer, Spec, load_spec
from symprop.tools.cbuild import CModule, CompileError, compile_c, load_c
from symprop.tools.check import random_problem
from tests.support import ACTIVATIONS, EXAMPLES, LOSSES, ROOT, module_for, spec_for

DOUBLE_TOL = 1e-12
FLOAT_TOL = 2e-4
EXAMPLE_SPECS = {p.stem: load_spec(p) for p in EXAMPLES}
GRID = {f"{a}-{loss}": spec_for(a, loss) for a in ACTIVATIONS for loss in LOSSES}
L2 = {  # the L2 penalty: its cost and gradient run once per batch, after the loop over samples
    "l2-tanh-mse": Spec("c_l2_tanh", 3, (Layer.of(4, "tanh"), Layer.of(2, "sigmoid")), "mse", l2=0.03),
    "l2-relu-softmax": Spec("c_l2_soft", 3, (Layer.of(4, "relu"), Layer.of(3, "identity")), "softmax_ce", l2=0.03),
}
ALL = {**EXAMPLE_SPECS, **GRID, **L2}


@cache
def c_module(spec: Spec, real: str = "double") -> CModule:
    return load_c(spec, real)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


def agreement(spec: Spec, real: str, seeds: tuple[int, ...] = (0, 1)) -> float:
    """The worst relative error of the C loss, gradient and forward against the NumPy module."""
    c = c_module(spec, real)
    numpy_module = module_for(spec, "vectorized")
    worst = 0.0
    for seed in seeds:
        params, X, Y = random_problem(spec, seed, n=7)
        if real == "float":  # the same float32 inputs for both; NumPy computes in float64
            params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
            X, Y = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
        C, grads = c.loss_and_grad(params, X, Y)
        C0, grads0 = numpy_module.loss_and_grad(params, X, Y)
        worst = max(worst, rel_error(np.array([C]), np.array([C0])))
        for name in spec.param_shapes:
            worst = max(worst, rel_error(grads[name], grads0[name]))
        worst = max(worst, rel_error(c.forward(params, X), numpy_module.forward(params, X)))
    return worst


@pytest.mark.parametrize("key", sorted(ALL))
def test_c_equals_the_numpy_module_in_double(key: str) -> None:
    err = agreement(ALL[key], "double")
    assert err <= DOUBLE_TOL, f"{key}: relative error {err:.3e}"


@pytest.mark.parametrize("key", sorted(ALL))
def test_c_in_float_is_within_float_rounding_of_the_numpy_module(key: str) -> None:
    err = agreement(ALL[key], "float")
    assert err <= FLOAT_TOL, f"{key}: relative error {err:.3e}"


@pytest.mark.parametrize("real", ["double", "float"])
@pytest.mark.parametrize("key", sorted(EXAMPLE_SPECS))
def test_nothing_is_written_past_work_size_and_inputs_stay_as_they_are(key: str, real: str) -> None:
    """Canaries after work, grad and loss; work starts as NaN (a read before a write would show)."""
    spec = EXAMPLE_SPECS[key]
    c = c_module(spec, real)
    params, X, Y = random_problem(spec, 3, n=5)
    flat = c.flat(params)
    X, Y = np.ascontiguousarray(X, c.dtype), np.ascontiguousarray(Y, c.dtype)
    pad = 32
    canary = c.dtype(-12345.5)
    work = np.full(c.WORK_SIZE + pad, np.nan, c.dtype)
    work[c.WORK_SIZE :] = canary
    grad = np.full(c.N_PARAMS + pad, canary, c.dtype)
    loss = np.full(1 + pad, canary, c.dtype)
    before = (flat.copy(), X.copy(), Y.copy())
    assert c.raw_loss_and_grad(flat, X, Y, loss, grad, work) == 0
    assert np.all(work[c.WORK_SIZE :] == canary) and np.all(grad[c.N_PARAMS :] == canary)
    assert np.all(loss[1:] == canary)
    assert np.isfinite(loss[0]) and np.all(np.isfinite(grad[: c.N_PARAMS]))
    for a, b in zip(before, (flat, X, Y), strict=True):
        assert np.array_equal(a, b)
    want_C, want = c.loss_and_grad(params, X, Y)  # fresh zeroed buffers
    assert loss[0] == c.dtype(want_C) and np.array_equal(grad[: c.N_PARAMS], c.flat(want))
    out = np.full((X.shape[0] + 2) * spec.outputs, canary, c.dtype)
    work[: c.WORK_SIZE] = np.nan
    code = c._forward(flat.ctypes.data, X.ctypes.data, X.shape[0], out.ctypes.data, work.ctypes.data)
    assert code == 0 and np.all(work[c.WORK_SIZE :] == canary)
    assert np.all(out[X.shape[0] * spec.outputs :] == canary)


@pytest.mark.parametrize("key", ["xor", "digits"])
def test_n_zero_and_null_pointers_return_non_zero_and_write_nothing(key: str) -> None:
    spec = EXAMPLE_SPECS[key]
    c = c_module(spec)
    params, X, Y = random_problem(spec, 0, n=3)
    flat, X, Y = c.flat(params), np.ascontiguousarray(X), np.ascontiguousarray(Y)
    loss, grad, work = np.full(1, 7.0), np.full(c.N_PARAMS, 7.0), np.full(c.WORK_SIZE, 7.0)
    out = np.full(X.size, 7.0)
    args = [flat.ctypes.data, X.ctypes.data, Y.ctypes.data, 3, loss.ctypes.data, grad.ctypes.data, work.ctypes.data]
    assert c._loss_and_grad(*args) == 0  # the call is valid as given: each change below breaks it
    loss[:], grad[:], work[:] = 7.0, 7.0, 7.0
    calls = [[*args[:3], 0, *args[4:]]] + [[*args[:k], None, *args[k + 1 :]] for k in (0, 1, 2, 4, 5, 6)]
    for call in calls:
        assert c._loss_and_grad(*call) != 0, call
    fargs = [flat.ctypes.data, X.ctypes.data, 3, out.ctypes.data, work.ctypes.data]
    fcalls = [[*fargs[:2], 0, *fargs[3:]]] + [[*fargs[:k], None, *fargs[k + 1 :]] for k in (0, 1, 3, 4)]
    for call in fcalls:
        assert c._forward(*call) != 0, call
    assert np.all(loss == 7.0) and np.all(grad == 7.0) and np.all(work == 7.0) and np.all(out == 7.0)


@pytest.mark.parametrize("key", sorted(ALL))
def test_the_memory_bill_is_within_5_percent_of_the_minimum(key: str) -> None:
    """params + grads + work <= 1.05 x (params + grads + one sample's activations and deltas)."""
    m = build(program_for(ALL[key], target="c"))
    assert m.min_work == 2 * sum(ALL[key].layer_sizes[1:])
    assert m.bill <= 1.05 * m.min_bill, (m.work_size, m.min_work)


def test_abi_macros_typedef_includes_and_no_mutable_state() -> None:
    spec = EXAMPLE_SPECS["iris_classifier"]
    for real in ("double", "float"):
        files = render_files(spec, target="c", options={"real": real})
        header, source = files["iris_classifier.h"], files["iris_classifier.c"]
        for macro, value in (("N_INPUTS", 4), ("N_OUTPUTS", 3), ("N_PARAMS", spec.n_params)):
            assert f"#define IRIS_CLASSIFIER_{macro} {value}\n" in header
        assert re.search(r"#define IRIS_CLASSIFIER_WORK_SIZE \d+\n", header)
        assert f"typedef {real} iris_classifier_real;" in header
        includes = sorted(set(re.findall(r"#include <(\w+\.h)>", header + source)))
        assert includes == ["math.h", "stddef.h", "stdint.h"]
        assert "malloc" not in source and "alloca" not in source
        # file-scope lines: comments, preprocessor, braces, function heads; `static` only for inline helpers
        body = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
        depth = 0
        for line in body.splitlines():
            if depth == 0 and line.strip():
                assert line.startswith(("#", "{", "int ", "static inline ")), line
            depth += line.count("{") - line.count("}")
        # offsets in the header comment, for every array, and bytes of the bill
        for name in spec.param_shapes:
            assert re.search(rf"\*   {name}\s+offset\s+\d+\s+size\s+\d+", header)
        assert re.search(r"params \d+ B \+ grad \d+ B \+ work \d+ B = \d+ B", header)


def test_the_warning_flags_are_real(tmp_path: Path) -> None:
    """The compile step fails on a warning (an unused variable; a double promoted; a narrowing
    conversion; a shadowed name), for both reals: the float and double builds share the flags."""
    compile_c({"ok.c": "float g(float x) { return x * 0.5F; }\n"}, tmp_path, "double", "ok.o", ("-c",))
    bad = [
        "int f(void) { int unused; return 0; }\n",
        "float g(float x) { return x * 0.5; }\n",
        "float h(double x) { return x; }\n",
        "int s(int x) { { int x = 2; return x; } }\n",
    ]
    for real in ("double", "float"):
        for k, text in enumerate(bad):
            with pytest.raises(CompileError, match="did not compile cleanly"):
                compile_c({f"w{k}.c": text}, tmp_path, real, f"w{k}.o", ("-c",))


@pytest.mark.parametrize(
    "text", ["*/", "/*", "a*/b/*c", "*/*/", "??/", "???/", "x\ny", "\x00\u2028\x7f", "**//**", "*" * 5 + "/"]
)
def test_c_comment_escaping_is_safe_for_any_text(text: str) -> None:
    safe = c_comment(text)
    assert "*/" not in safe and "/*" not in safe and "??" not in safe
    assert all(" " <= ch <= "~" for ch in safe)
    check_comment_safe(f"/* {safe} */\nint x;\n")


def test_the_comment_postcondition_catches_an_escape() -> None:
    with pytest.raises(RuntimeError):
        check_comment_safe("/* a /* b */\n")
    with pytest.raises(RuntimeError):
        check_comment_safe("/* a */ b */ c /* \n")


@pytest.mark.parametrize("real", ["double", "float"])
def test_train_xor_example_reaches_its_target_loss(tmp_path: Path, real: str) -> None:
    """examples/c/train_xor.c: init_params, then adam_step until the loss is below 0.002; the
    printed params give that loss in the NumPy module too (float64 on the printed values: the
    printed loss is the C one, within the 9 printed digits and float rounding: 1e-5 relative)."""
    spec = EXAMPLE_SPECS["xor"]
    files = render_files(spec, target="c", options={"real": real})
    files["train_xor.c"] = (ROOT / "examples" / "c" / "train_xor.c").read_text()
    exe = compile_c(files, tmp_path, real, "train_xor")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    assert "reached" in run.stdout and "error" not in run.stdout, run.stdout
    loss = float(re.search(r"loss ([0-9.eE+-]+)", run.stdout).group(1))  # type: ignore[union-attr]
    flat = np.array([float(v) for v in re.findall(r"param \d+ ([0-9.eE+-]+|nan)", run.stdout)])
    assert flat.size == spec.n_params
    c = c_module(spec, real)
    X, Y = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float), np.array([[0], [1], [1], [0]], float)
    numpy_loss = module_for(spec, "vectorized").loss(c.unflat(flat), X, Y)
    assert loss < 0.002 and abs(numpy_loss - loss) <= 1e-5 * loss


def test_a_compile_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    with pytest.raises(CompileError, match="no C compiler"):
        load_c(EXAMPLE_SPECS["textbook"])


def test_ctypes_null_is_none() -> None:
    """The NULL tests pass None for a pointer argument: ctypes sends NULL for it."""
    assert ctypes.c_void_p(None).value is None


def test_cli_generate_and_check_the_c_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from symprop.cli import main

    xor = str(ROOT / "examples" / "xor.toml")
    assert main(["generate", xor, "--target", "c", "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.c", "xor.h"]
    assert "typedef double xor_real;" in (tmp_path / "xor.h").read_text()
    assert main(["generate", xor, "--target", "c", "--c-real", "float", "-o", str(tmp_path / "f")]) == 0
    assert "typedef float xor_real;" in (tmp_path / "f" / "xor.h").read_text()
    capsys.readouterr()
    assert main(["generate", xor, "--c-real", "float", "-o", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--c-real is for --target c" in err and not (tmp_path / "n").exists()
    assert main(["check", xor, "--target", "c"]) == 0
    assert "max relative error" in capsys.readouterr().out
    # regenerating over symprop's own files is fine; a foreign file of that name is left alone
    assert main(["generate", xor, "--target", "c", "-o", str(tmp_path)]) == 0
    (tmp_path / "xor.c").write_text("int main(void) { return 0; }\n")
    capsys.readouterr()
    assert main(["generate", xor, "--target", "c", "-o", str(tmp_path)]) == 2
    assert "was not written by symprop" in capsys.readouterr().err
    assert (tmp_path / "xor.c").read_text().startswith("int main")
    assert main(["generate", xor, "--target", "c", "-o", str(tmp_path), "--force"]) == 0


def test_a_name_that_shadows_an_included_header_is_refused() -> None:
    from symprop.spec import SpecError

    spec = Spec("stddef", 2, (Layer.of(1, "sigmoid"),), "mse")
    with pytest.raises(SpecError, match="hides the C library"):
        render_files(spec, target="c")


def test_target_options_are_checked() -> None:
    from symprop.spec import SpecError

    spec = EXAMPLE_SPECS["xor"]
    with pytest.raises(SpecError, match="real type"):
        render_files(spec, target="c", options={"real": "long double"})
    with pytest.raises(SpecError, match="not one of"):
        render_files(spec, target="c", options={"precision": "float"})
    with pytest.raises(SpecError, match="not one of"):
        render_files(spec, options={"real": "float"})  # the numpy target has no options


@pytest.mark.parametrize("real", ["double", "float"])
@pytest.mark.parametrize("key", ["sigmoid-bce", "sigmoid-mse", "softplus-softmax_ce", "tanh-bce", "gaussian-custom"])
def test_large_pre_activations_stay_finite(key: str, real: str) -> None:
    """The stable forms hold in C: weights x 300 push |z| to ~1000 (exp(1000) overflows even a
    double), and loss, gradient and forward stay finite; in double they still equal the NumPy
    module (same stable forms, same tolerance as above)."""
    spec = GRID[key]
    c, numpy_module = c_module(spec, real), module_for(spec, "vectorized")
    params, X, Y = random_problem(spec, 4, n=6)
    params = {k: v * 300.0 for k, v in params.items()}
    if real == "float":
        params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
    C, grads = c.loss_and_grad(params, X, Y)
    assert np.isfinite(C) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(np.isfinite(c.forward(params, X)))
    if real == "double":
        C0, grads0 = numpy_module.loss_and_grad(params, X, Y)
        assert rel_error(np.array([C]), np.array([C0])) <= DOUBLE_TOL
        for name in grads:
            assert rel_error(grads[name], grads0[name]) <= DOUBLE_TOL, name
