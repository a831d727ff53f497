"""ONNX export: the graph passes onnx's full checker and equals the generated module's forward in
onnxruntime, in float32, on every example spec and every activation; refusals are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (symprop[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the comparison needs onnxruntime (symprop[onnx])")

from symprop.spec import Layer, Spec, load_spec  # noqa: E402
from symprop.tools.onnx_export import OnnxExportError, export_onnx  # noqa: E402
from symprop.tools.paramfile import Saved  # noqa: E402
from tests.support import ACTIVATIONS, EXAMPLES, LOSSES, module_for, spec_for  # noqa: E402

# float32 on both sides; the same operations in a possibly different order and with different
# kernels (onnxruntime's exp, tanh, sigmoid): a few float32 ulps of values of order 1
TOL = 1e-5


def saved_for(spec: Spec, seed: int = 0) -> Saved:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0, 0.7, size=s) for k, s in spec.param_shapes.items()}
    return Saved(params, (), (), spec.hash())


def compare(spec: Spec, tmp_path: Path, mode: str = "vectorized") -> None:
    saved = saved_for(spec)
    path = tmp_path / f"{spec.name}.onnx"
    export_onnx(spec, saved, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    X = np.random.default_rng(1).normal(0, 2.0, size=(64, spec.inputs)).astype(np.float32)
    X[:4] = 0.0  # the kinks of relu, step, leaky_relu at exactly 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"X": X})
    module = module_for(spec, mode)
    p32 = {k: v.astype(np.float32) for k, v in saved.params.items()}
    expected = np.asarray(module.forward(p32, X))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_equals_the_module(example: Path, tmp_path: Path) -> None:
    compare(load_spec(example), tmp_path)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_equals_the_module(activation: str, tmp_path: Path) -> None:
    compare(spec_for(activation, "mse", (3, 5, 4, 2)), tmp_path)


@pytest.mark.parametrize(
    "expr",
    ["Piecewise((x**2, x < -1), (sqrt(abs(x)), x < 1), (exp(-x) + cos(x), True))", "Heaviside(x)*tanh(x) + x**3/7"],
)
def test_custom_expressions_with_where(expr: str, tmp_path: Path) -> None:
    spec = Spec("custom_onnx", 2, (Layer.of(4, "custom", expr=expr), Layer.of(1, "identity")), "mse")
    compare(spec, tmp_path)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "custom_onnx.onnx")).graph.node}
    assert "Where" in ops


@pytest.mark.parametrize("loss", LOSSES)
def test_output_is_forward_for_every_loss(loss: str, tmp_path: Path) -> None:
    compare(spec_for("tanh", loss), tmp_path)


def test_bytes_are_deterministic(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES[0])
    export_onnx(spec, saved_for(spec), tmp_path / "a.onnx")
    export_onnx(spec, saved_for(spec), tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_non_finite_params_are_refused_in_one_line(tmp_path: Path) -> None:
    spec = spec_for("tanh", "mse")
    saved = saved_for(spec)
    saved.params["W1"][0, 0] = 1e39  # overflows float32
    with pytest.raises(OnnxExportError) as info:
        export_onnx(spec, saved, tmp_path / "x.onnx")
    assert "\n" not in str(info.value) and "W1" in str(info.value)
    assert not (tmp_path / "x.onnx").exists()
