"""``symprop export --format c``, ``check --target c --c-real float`` and a cross compiler in CC.

Exported params are checked by compiling them: the literals must read back to the saved values
exactly (double) or to their float32 rounding (float), so the C forward on the exported array is
bit-equal to the C forward on the saved params passed at run time; against the NumPy module the
double build agrees to 1e-12 (summation order only, tests/test_c_target.py) and the float build to
2e-4 (float32 rounding, same justification there).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.emit import render_files
from symprop.spec import load_spec
from symprop.tools.cbuild import compile_c
from symprop.tools.check import random_problem
from symprop.tools.export import c_string
from symprop.tools.paramfile import save_params
from tests.support import ROOT, module_for
from tests.test_c_target import c_module, rel_error

IRIS_TOML = ROOT / "examples" / "iris_classifier.toml"
IRIS = load_spec(IRIS_TOML)
HOSTILE = ['se"to*/sa', "vers\\icolor??/", "virg\u00efnica\n#include <x>"]
FEATURES = ["sepal length", "sepal\twidth", "petal length\x00", "petal width?"]


def saved_file(tmp_path: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    params, _, _ = random_problem(IRIS, seed)
    params["W1"][0, 0] = 1e-310  # a subnormal double: flushes to 0 in float, must still read back in double
    params["b1"][0] = 3.0  # an integer value: "3.0F", never "3F"
    path = tmp_path / "iris.npz"
    save_params(path, IRIS, params, classes=HOSTILE, feature_names=FEATURES)
    return path, params


@pytest.mark.parametrize("real", ["double", "float"])
def test_exported_params_are_exact_and_give_the_module_forward(tmp_path: Path, real: str) -> None:
    path, params = saved_file(tmp_path)
    out = tmp_path / "out"
    args = ["export", str(IRIS_TOML), "--params", str(path), "--format", "c", "-o", str(out)]
    assert main([*args, "--c-real", real]) == 0
    source = (out / "iris_classifier_params.c").read_text()
    header = (out / "iris_classifier_params.h").read_text()
    assert f'#define IRIS_CLASSIFIER_PARAMS_SPEC_HASH "{IRIS.hash()}"' in header
    body = re.sub(r"/\*.*?\*/", "", source.split("= {", 1)[1].split("};", 1)[0], flags=re.S)
    literals = re.findall(r"(-?[0-9][0-9.e+-]*F?),", body)
    dtype = np.float32 if real == "float" else np.float64
    flat = np.concatenate([params[k].ravel() for k in IRIS.param_shapes]).astype(dtype)
    assert len(literals) == flat.size
    for text, want in zip(literals, flat, strict=True):
        assert ("." in text or "e" in text) and text.endswith("F") == (real == "float")
        assert dtype(float(text.rstrip("F"))) == want  # exact: reads back to the same value
    # compiled: the array and the names, read through ctypes
    files = render_files(IRIS, target="c", options={"real": real})
    files.update({p.name: p.read_text() for p in out.iterdir()})
    lib = ctypes.CDLL(str(compile_c(files, tmp_path, real, "libiris.so", ("-shared", "-fPIC"))))
    ctype = ctypes.c_float if real == "float" else ctypes.c_double
    array = (ctype * IRIS.n_params).in_dll(lib, "iris_classifier_params")
    exported = np.frombuffer(array, dtype=dtype).copy()
    assert np.array_equal(exported, flat)
    names = (ctypes.c_char_p * 3).in_dll(lib, "iris_classifier_class_names")
    assert [n.decode("utf-8") for n in names] == HOSTILE
    features = (ctypes.c_char_p * 4).in_dll(lib, "iris_classifier_feature_names")
    assert [f.decode("utf-8") for f in features] == [f.split("\x00")[0] for f in FEATURES]  # C strings end at NUL
    # forward on the exported array = forward on the saved params (bit for bit), ~ the NumPy module
    c = c_module(IRIS, real)
    X = np.random.default_rng(3).normal(size=(6, 4))
    got = c.forward(c.unflat(exported.astype(np.float64)), X)
    assert np.array_equal(got, c.forward(params, X))
    assert rel_error(got, module_for(IRIS, "vectorized").forward(params, X)) <= (2e-4 if real == "float" else 1e-12)


def test_c_string_escapes_every_unsafe_byte() -> None:
    for text in [*HOSTILE, *FEATURES, "*/ /* ??= \\\\", "\u2028\u00e9"]:
        lit = c_string(text)
        assert lit.startswith('"') and lit.endswith('"')
        body = lit[1:-1]
        assert all(" " <= ch <= "~" for ch in body) and "??" not in body and "*/" not in body.replace("\\", "")
        assert '"' not in body.replace('\\"', "")


def _refused(args: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> None:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_export_refusals_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, _, _ = random_problem(IRIS, 1)
    out = tmp_path / "out"
    base = ["export", str(IRIS_TOML), "--format", "c", "-o", str(out), "--params"]
    cases = {
        "missing": ({k: v for k, v in params.items() if k != "b2"}, "b2"),
        "extra": ({**params, "W9": np.zeros(3)}, "W9"),
        "shape": ({**params, "W2": np.zeros((3, 7))}, "W2"),
    }
    for label, (arrays, word) in cases.items():
        path = tmp_path / f"{label}.npz"
        np.savez(path, **arrays)
        _refused([*base, str(path)], capsys, word)
    save_params(tmp_path / "nonfinite.npz", IRIS, {**params, "b1": np.full(8, np.nan)})
    _refused([*base, str(tmp_path / "nonfinite.npz")], capsys, "b1[0]", "not finite")
    foreign = tmp_path / "xor.npz"
    xor = load_spec(ROOT / "examples" / "xor.toml")
    save_params(foreign, xor, random_problem(xor, 0)[0])
    save_params(tmp_path / "iris_like.npz", IRIS, params)
    data = dict(np.load(tmp_path / "iris_like.npz"))
    data["spec_hash"] = np.array(xor.hash())
    np.savez(tmp_path / "foreign.npz", **data)
    _refused([*base, str(tmp_path / "foreign.npz")], capsys, "hash", xor.hash())
    _refused([*base, str(tmp_path / "nope.npz")], capsys, "no such file")
    save_params(tmp_path / "big.npz", IRIS, {**params, "W1": np.full((8, 4), 1e300)})
    _refused([*base, str(tmp_path / "big.npz"), "--c-real", "float"], capsys, "W1[0, 0]", "overflows a float")
    assert not out.exists()
    # a foreign file of an output's name is left alone
    out.mkdir()
    (out / "iris_classifier_params.c").write_text("int mine;\n")
    good = tmp_path / "good.npz"
    save_params(good, IRIS, params)
    _refused([*base, str(good)], capsys, "not written by symprop")
    assert (out / "iris_classifier_params.c").read_text() == "int mine;\n"
    assert not (out / "iris_classifier_params.h").exists()
    _refused([*base, str(good), "--format", "onnx", "--c-real", "float"], capsys, "--c-real")
    onnx = ["export", str(IRIS_TOML), "--format", "onnx", "--params", str(good), "-o", str(good), "--force"]
    _refused(onnx, capsys, "is the --params file")
    assert np.load(good)["W1"].shape == (8, 4)  # the input is intact


def test_export_onnx_through_the_cli_equals_the_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's --format onnx writes a model that onnxruntime runs to the module's forward (float32:
    1e-5 absolute on outputs of order 1, about 100 float32 ulps), and refuses a params file of another spec."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    params = random_problem(IRIS, 0)[0]
    path = tmp_path / "p.npz"
    save_params(path, IRIS, params)
    out = tmp_path / "m.onnx"
    assert main(["export", str(IRIS_TOML), "--params", str(path), "--format", "onnx", "-o", str(out)]) == 0
    capsys.readouterr()
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    X = np.random.default_rng(1).normal(size=(7, IRIS.inputs)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: X})
    want = module_for(IRIS).forward(params, X.astype(np.float64))
    assert np.max(np.abs(got - want)) < 1e-5
    xor = ROOT / "examples" / "xor.toml"
    _refused(
        ["export", str(xor), "--params", str(path), "--format", "onnx", "-o", str(tmp_path / "x.onnx")], capsys, "hash"
    )
    assert not (tmp_path / "x.onnx").exists()


def test_check_the_float_build_and_a_cross_compiler_in_cc(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    xor = str(ROOT / "examples" / "xor.toml")
    assert main(["check", str(IRIS_TOML), "--target", "c", "--c-real", "float"]) == 0
    assert "max relative error" in capsys.readouterr().out
    _refused(["check", xor, "--c-real", "float"], capsys, "--c-real is for --target c")
    cross = shutil.which("arm-linux-gnueabihf-gcc") or shutil.which("arm-none-eabi-gcc")
    if cross is None:
        pytest.skip("no cross compiler installed (apt: gcc-arm-linux-gnueabihf)")
    monkeypatch.setenv("CC", Path(cross).name)
    _refused(["check", xor, "--target", "c"], capsys, "CC=", "CC=cc")


def test_float_build_passes_check_with_a_deeper_net() -> None:
    """The float tolerance (tools/check.FLOAT_TOLERANCE) holds on a deeper, mixed network."""
    from symprop.spec import Layer, Spec
    from symprop.tools.check import FLOAT_TOLERANCE, compare, float_checked, load_module

    spec = Spec(
        "c_deep_float",
        5,
        (*(Layer.of(12, a) for a in ("tanh", "relu", "softplus", "sigmoid")), Layer.of(3, "identity")),
        "softmax_ce",
    )
    from symprop.emit import render

    module = float_checked(c_module(spec, "float"), load_module(render(spec, "vectorized"), spec.name))
    result = compare(module, spec, seeds=(0, 1), tol=FLOAT_TOLERANCE)
    assert result.passed, result.max_rel_error
    # the same float build with one gradient entry scaled by 1.01 fails: the check can see an error of 1e-2
    broken = float_checked(c_module(spec, "float"), load_module(render(spec, "vectorized"), spec.name))
    inner = broken.loss_and_grad

    def wrong(params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        C, grads = inner(params, X, Y)
        grads["W2"] = grads["W2"].copy()
        grads["W2"][np.unravel_index(np.argmax(np.abs(grads["W2"])), grads["W2"].shape)] *= 1.01
        return C, grads

    broken.loss_and_grad = wrong
    assert not compare(broken, spec, seeds=(0,), max_entries=None, tol=FLOAT_TOLERANCE).passed


def test_exported_float_params_compile_for_a_cortex_m4(tmp_path: Path) -> None:
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        pytest.skip("arm-none-eabi-gcc is not installed (apt: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    path, _ = saved_file(tmp_path)
    assert (
        main(
            ["export", str(IRIS_TOML), "--params", str(path), "--format", "c", "--c-real", "float", "-o", str(tmp_path)]
        )
        == 0
    )
    for name, text in render_files(IRIS, target="c", options={"real": "float"}, inference_only=True).items():
        (tmp_path / name).write_text(text)
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion", "-Wdouble-promotion", "-Wshadow"]
    m4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]
    for src in ("iris_classifier_params.c", "iris_classifier.c"):
        run = subprocess.run(
            [cc, *flags, *m4, "-I", str(tmp_path), "-c", str(tmp_path / src), "-o", str(tmp_path / (src + ".o"))],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
