"""A spec and its trained params as an ONNX graph: the generated module's ``forward``.

Per layer l: ``Zˡ = Gemm(Aˡ⁻¹, Wˡ, bˡ, transB=1)`` and ``Aˡ = fˡ(Zˡ)``, where fˡ is the same SymPy
tree the module is printed from (:func:`symprop.symbolic.layer_math.activation_math`), turned
node by node into ONNX operators: ``+ * / **`` into Add, Mul, Reciprocal, Pow; exp, log, tanh,
sqrt, abs, sin, cos into their operators; symprop's Sigmoid, Relu and Softplus into ONNX's;
Piecewise and Heaviside into ``Where`` over comparisons; subtrees without the variable into one
float32 constant.  The output is the last layer's activation, as ``forward`` returns it (the
logits for softmax_ce).  Anything else is refused with one line (:class:`OnnxExportError`).

The bytes are deterministic: nodes and constants are named by counters in the order of the walk,
and the only metadata are symprop's version, the spec hash and the class and feature names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from symprop import __version__
from symprop.io import write_atomic_with
from symprop.ir.names import bias, weight
from symprop.spec import Spec
from symprop.tools.paramfile import Saved

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: what onnxruntime releases since 1.13 read


class OnnxExportError(ValueError):
    """A spec or params that ONNX cannot express here; the message is one line."""


class _Graph:
    """Nodes and float32 constants, named in the order they are made."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.constants: dict[tuple[str, bytes], str] = {}
        self.count = 0

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=f"{op}_{self.count}", **attrs))
        return out

    def array(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def constant(self, value: float) -> str:
        v = np.float32(value)
        if not np.isfinite(v):
            raise OnnxExportError(
                f"the constant {value!r} is not finite in float32; ONNX export needs finite constants"
            )
        key = ("f", v.tobytes())
        if key not in self.constants:
            self.constants[key] = self.array(f"c{len(self.constants) + 1}", np.array(v, dtype=np.float32))
        return self.constants[key]


def _to_onnx(expr: Any, z: Any, zname: str, g: _Graph, where: str) -> str:
    """The ONNX tensor name of ``expr`` (a SymPy tree in the symbol ``z``, bound to tensor ``zname``)."""
    import sympy as sp

    from symprop.symbolic.functions import Relu, Sigmoid, Softplus

    def walk(e: Any) -> str:
        if e == z:
            return zname
        if not e.free_symbols:
            try:
                return g.constant(float(sp.N(e, 30)))
            except TypeError:
                raise OnnxExportError(f"{where}: the constant {e} is not a real number; ONNX export refused") from None
        if e.free_symbols - {z}:
            raise OnnxExportError(f"{where}: the expression has free symbols other than z; ONNX export refused")
        if isinstance(e, sp.Add):
            parts = [walk(a) for a in e.args]
            out = parts[0]
            for p in parts[1:]:
                out = g.node("Add", [out, p])
            return out
        if isinstance(e, sp.Mul):
            num = [a for a in e.args if not (isinstance(a, sp.Pow) and a.exp.is_number and a.exp < 0)]
            den = [1 / a for a in e.args if a not in num]
            parts = [walk(a) for a in num]
            out = parts[0] if parts else g.constant(1.0)
            for p in parts[1:]:
                out = g.node("Mul", [out, p])
            for d in den:
                out = g.node("Div", [out, walk(d)])
            return out
        if isinstance(e, sp.Pow):
            base, exp = e.args
            if exp == sp.Rational(1, 2):
                return g.node("Sqrt", [walk(base)])
            if exp == -1:
                return g.node("Reciprocal", [walk(base)])
            if exp.is_Integer and 2 <= int(exp) <= 4:
                b = walk(base)
                out = b
                for _ in range(int(exp) - 1):
                    out = g.node("Mul", [out, b])
                return out
            if exp.is_Integer and -4 <= int(exp) <= -2:
                return g.node("Reciprocal", [walk(base ** (-exp))])
            if exp.free_symbols:
                return g.node("Pow", [walk(base), walk(exp)])
            return g.node("Pow", [walk(base), g.constant(float(exp))])
        unary = {sp.exp: "Exp", sp.log: "Log", sp.tanh: "Tanh", sp.sin: "Sin", sp.cos: "Cos", sp.Abs: "Abs"}
        for cls, op in unary.items():
            if isinstance(e, cls) and len(e.args) == 1:
                return g.node(op, [walk(e.args[0])])
        if isinstance(e, Sigmoid):
            return g.node("Sigmoid", [walk(e.args[0])])
        if isinstance(e, Relu):
            return g.node("Relu", [walk(e.args[0])])
        if isinstance(e, Softplus):
            return g.node("Softplus", [walk(e.args[0])])
        if isinstance(e, sp.Max | sp.Min):
            return g.node("Max" if isinstance(e, sp.Max) else "Min", [walk(a) for a in e.args])
        if isinstance(e, sp.Heaviside):
            x = walk(e.args[0])
            at_zero = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
            zero = g.constant(0.0)
            inner = g.node("Where", [g.node("Less", [x, zero]), zero, walk(at_zero)])
            return g.node("Where", [g.node("Greater", [x, zero]), g.constant(1.0), inner])
        if isinstance(e, sp.Piecewise):
            *branches, (last, default) = e.args
            if default != sp.true:
                raise OnnxExportError(f"{where}: a Piecewise without a default branch; ONNX export refused")
            result = walk(last)
            for value, cond in reversed(branches):
                result = g.node("Where", [condition(cond), walk(value), result])
            return result
        raise OnnxExportError(f"{where}: {type(e).__name__} has no ONNX operator here; ONNX export refused")

    def condition(c: Any) -> str:
        comparisons = {
            sp.StrictLessThan: "Less",
            sp.StrictGreaterThan: "Greater",
            sp.LessThan: "LessOrEqual",
            sp.GreaterThan: "GreaterOrEqual",
            sp.Equality: "Equal",
        }
        for cls, op in comparisons.items():
            if isinstance(c, cls):
                return g.node(op, [walk(c.lhs), walk(c.rhs)])
        if isinstance(c, sp.And | sp.Or):
            parts = [condition(a) for a in c.args]
            out = parts[0]
            for p in parts[1:]:
                out = g.node("And" if isinstance(c, sp.And) else "Or", [out, p])
            return out
        if isinstance(c, sp.Not):
            return g.node("Not", [condition(c.args[0])])
        raise OnnxExportError(f"{where}: the condition {type(c).__name__} has no ONNX operator here; export refused")

    return walk(expr)


def build_model(spec: Spec, saved: Saved) -> Any:
    """The ONNX ModelProto of ``spec``'s forward pass with ``saved``'s params (float32)."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        raise OnnxExportError('ONNX export needs the onnx package: pip install "symprop[onnx]"') from None
    from symprop.spec import validate
    from symprop.symbolic import layer_math as lm

    spec = validate(spec)
    g = _Graph()
    current = "X"
    for l, layer in enumerate(spec.layers, start=1):
        for key in (weight(l), bias(l)):
            value = np.asarray(saved.params[key], dtype=np.float64)
            if not np.all(np.isfinite(value.astype(np.float32))):
                raise OnnxExportError(f"params {key} holds values that are not finite in float32; retrain or fix them")
            g.array(key, value)
        z = g.node("Gemm", [current, weight(l), bias(l)], transB=1)
        f = lm.activation_math(layer).f
        current = _to_onnx(f, lm.Z, z, g, f"layer {l} ({layer.activation})")
    if current == "X" or not g.nodes:
        raise OnnxExportError("the spec has no layers; nothing to export")
    g.nodes.append(helper.make_node("Identity", [current], ["Y"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        spec.name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", spec.inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", spec.outputs])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="symprop",
        producer_version=__version__,
        ir_version=IR_VERSION,
        doc_string=f"forward pass of spec {spec.hash()} ({'logits' if spec.loss == 'softmax_ce' else 'outputs'})",
    )
    meta = {
        "spec_hash": spec.hash(),
        "classes": "\n".join(saved.classes),
        "feature_names": "\n".join(saved.feature_names),
    }
    helper.set_model_props(model, meta)
    return model


def export_onnx(spec: Spec, saved: Saved, path: Path) -> None:
    """Write ``spec`` with ``saved``'s params as an ONNX model at ``path`` (atomically; checked with
    ``onnx.checker.check_model(full_check=True)`` first)."""
    import onnx

    model = build_model(spec, saved)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxExportError(f"the ONNX model failed onnx's checker ({first[:120]}); please report this") from None
    data = model.SerializeToString(deterministic=True)
    write_atomic_with(Path(path), lambda handle: handle.write(data))


__all__ = ["OnnxExportError", "build_model", "export_onnx"]
