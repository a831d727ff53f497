"""Emission backend ``vectorized``: one matrix product per layer and direction.

The layer composition lives in ``templates/vectorized.py.jinja``; here each layer's
elementwise SymPy expressions (f, f', loss, output δ) are printed over whole
(n, units) arrays.
"""

from __future__ import annotations

import ast
import itertools
import re
from typing import Any

import sympy as sp

from symprop.backends.numpy.printer import SympropPrinter
from symprop.backends.templating import Line, base_context, finish
from symprop.ir.optimize import fold_numbers
from symprop.spec import Spec
from symprop.symbolic.functions import LogSumExp
from symprop.symbolic.layer_math import A, Y, Z, activation_math, output_math, softmax_math

# Layer composition lives in templates/vectorized.py.jinja; here each layer's elementwise
# SymPy expressions (f, f', loss, output delta) are printed over whole (n, units) arrays.


def _comparison(h: sp.Heaviside, printer: SympropPrinter) -> str | None:
    """Heaviside(u, 0) as ``(u > 0)``, Heaviside(u, 1) as ``(u >= 0)``; None for other h0."""
    h0 = h.args[1] if len(h.args) > 1 else None
    if h0 not in (sp.Integer(0), sp.Integer(1)):
        return None
    return f"({printer.doprint(h.args[0])} {'>' if h0 == 0 else '>='} 0)"


def _array_ops(text: str) -> int:
    """How many NumPy operations (array passes) the printed expression makes: calls, binary
    operators and unary minus on non-constants, counted on the Python syntax tree."""
    count = 0
    for node in ast.walk(ast.parse(text, mode="eval")):
        unary = isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant)
        if unary or isinstance(node, ast.Call | ast.BinOp | ast.Compare):
            count += 1
    return count


def _sign_variants(expr: sp.Expr) -> list[sp.Expr]:
    """A product with the signs of its sum factors flipped in every way that keeps its value:
    -a*(a - 1) -> a*(1 - a), (y - a)*(a - 1) -> (a - y)*(1 - a), ..."""
    if not isinstance(expr, sp.Mul):
        return []
    coeff, factors = expr.as_coeff_mul()
    sums = [k for k, f in enumerate(factors) if isinstance(f, sp.Add)][:4]
    variants = []
    for flips in itertools.product((False, True), repeat=len(sums)):
        flipped = {k for k, flip in zip(sums, flips, strict=True) if flip}
        sign = -1 if len(flipped) % 2 else 1
        variants.append(sp.Mul(sign * coeff, *[-f if k in flipped else f for k, f in enumerate(factors)]))
    return variants


def _cost(lines: list[Line], texts: list[str]) -> tuple[int, int]:
    codes = [line.code.split(" = ", 1)[1] for line in lines] + texts
    return sum(_array_ops(c) for c in codes), sum(len(c) for c in codes)


def fewest_passes(expr: sp.Expr, printer: SympropPrinter, together: tuple[sp.Expr, ...] = ()) -> sp.Expr:
    """Among equal forms of ``expr`` (as given, factored, with a minus sign absorbed into a sum,
    expanded), the one whose NumPy code makes the fewest array passes, counted after one CSE
    with the expressions computed ``together`` with it; ties keep the shortest text."""
    factored = sp.factor(expr)
    forms = [expr, factored, *_sign_variants(factored), *_sign_variants(expr), sp.expand(expr)]
    candidates = list(dict.fromkeys(forms))
    helpers = set(printer.used_helpers)  # trial prints must not mark helpers as used
    costs = {c: _cost(*_printed([*together, c], printer, "T_")) for c in candidates}
    printer.used_helpers = helpers
    return min(candidates, key=lambda c: (costs[c], candidates.index(c)))


def _printed(exprs: list[sp.Expr], printer: SympropPrinter, prefix: str) -> tuple[list[Line], list[str]]:
    """One ``sympy.cse`` over a layer's few elementwise expressions: temp lines, then each
    reduced expression as text.  A constant prints as a plain literal (callers broadcast it)."""
    folded = [fold_numbers(e) for e in exprs]
    temps, reduced = sp.cse(folded, symbols=sp.numbered_symbols(prefix, real=True), order="canonical")
    lines = [Line(f"{t.name} = {printer.doprint(e)}") for t, e in temps]
    return lines, [printer.doprint(e) for e in reduced]


def _array_text(text: str, expr: sp.Expr, shape: str) -> str:
    """``text`` as an array of ``shape``: constants become ``np.full``, expressions stay."""
    return f"np.full({shape}, {text}, dtype=dtype)" if not expr.free_symbols else text


def _layer_names(l: int) -> dict[sp.Symbol, str]:
    return {Z: f"Z{l}", A: f"A{l}", Y: "Y"}


def _math_text(expr: sp.Expr, l: int) -> str:
    """A formula for comments, in the math's lower-case names (z1, a1, y)."""
    return sp.sstr(expr.xreplace({Z: sp.Symbol(f"z{l}"), A: sp.Symbol(f"a{l}")}))


def _vector_layer(spec: Spec, l: int, printer: SympropPrinter) -> dict[str, Any]:
    layer = spec.layers[l - 1]
    act = activation_math(layer)
    printer.names = _layer_names(l)
    z, a = f"Z{l}", f"A{l}"
    if act.f == Z:
        forward = [Line(f"{a} = {z}")]
    else:
        forward, (f_text,) = _printed([act.f], printer, f"T{l}_")
        forward.append(Line(f"{a} = {_array_text(f_text, act.f, f'{z}.shape')}"))
    df = act.df
    backward: list[Line] = []
    if not act.blocks_gradient:
        masks = [m for m in sp.Mul.make_args(df) if isinstance(m, sp.Heaviside) and _comparison(m, printer)]
        rest = fewest_passes(sp.Mul(*[m for m in sp.Mul.make_args(df) if m not in masks]), printer)
        if rest != 1:
            backward, (rest_text,) = _printed([rest], printer, f"dT{l}_")
            backward.append(Line(f"D{l} *= {rest_text}"))
        backward += [Line(f"D{l} *= {_comparison(m, printer)}") for m in masks]
    return {
        "l": l,
        "units": layer.units,
        "input": "X" if l == 1 else f"A{l - 1}",
        "f_text": _math_text(act.f, l),
        "forward": forward,
        "df_text": _math_text(df, l),
        "blocks_gradient": act.blocks_gradient,
        "backward": backward,
    }


def _per_unit_output(spec: Spec, printer: SympropPrinter) -> dict[str, Any]:
    """Loss and output delta for the per-unit losses (mse, sse, bce, custom)."""
    L = len(spec.layers)
    out = output_math(spec)
    printer.names = _layer_names(L)
    shape = f"Z{L}.shape"
    loss_temps, (loss_text,) = _printed([out.loss], printer, "TC_")
    delta_form = fewest_passes(out.delta, printer, (out.loss,))
    grad_temps, (joint_loss, delta_text) = _printed([out.loss, delta_form], printer, "TC_")
    comment = f"C_k = sum_j l(a{L}_j, z{L}_j, y_j), l = {_math_text(out.loss, L)}"
    delta = _array_text(delta_text, out.delta, shape)
    return {
        "loss_lines": [*loss_temps, Line(f"C = np.sum({_array_text(loss_text, out.loss, shape)}) / n", comment)],
        "grad_lines": [*grad_temps, Line(f"C = np.sum({_array_text(joint_loss, out.loss, shape)}) / n", comment)],
        "delta": f"{delta} / n" if re.fullmatch(r"\w+", delta) else f"({delta}) / n",
        "delta_text": _math_text(out.delta, L),
    }


def _unit_terms(expr: sp.Expr, zs: list[sp.Symbol], ys: list[sp.Symbol]) -> tuple[sp.Expr, sp.Expr]:
    """Split a symmetric sum ``row + Σ_j g(z_j, y_j)`` into (row, g(z_1, y_1)); check the symmetry."""
    row, units = sp.Integer(0), [sp.Integer(0) for _ in zs]
    for term in sp.Add.make_args(expr):
        owners = [j for j, (zj, yj) in enumerate(zip(zs, ys, strict=True)) if term.has(zj) or term.has(yj)]
        if len(owners) == 1:
            units[owners[0]] += term
        else:
            row += term
    for j in range(1, len(zs)):
        if units[j] != units[0].xreplace({zs[0]: zs[j], ys[0]: ys[j]}):
            raise ValueError(f"softmax loss is not a symmetric sum over units: {expr}")
    return row, units[0]


def _sum_text(expr: sp.Expr, printer: SympropPrinter) -> str:
    """Σ over all entries of ``expr``: a product of two arrays as ``np.vdot`` (no temporary)."""
    factors = sp.Mul.make_args(expr)
    if len(factors) == 2 and all(isinstance(f, sp.Symbol) for f in factors):
        return f"np.vdot({', '.join(printer.doprint(f) for f in factors)})"
    return f"np.sum({printer.doprint(expr)})"


def _softmax_output(spec: Spec, printer: SympropPrinter) -> dict[str, Any]:
    """softmax_ce from ``softmax_math``: C_k = LSE(z)·Σy − Σ y_j z_j, δ_j = softmax_j·Σy − y_j.

    The row quantities (LSE with the max shift, Σy) are reductions along axis 1; the rest is
    SymPy's expression for unit 1, printed over the whole (n, K) array.
    """
    L = len(spec.layers)
    loss, deltas, zs, ys = softmax_math(spec.outputs)
    lse_sym, sy_sym, p_sym = (sp.Symbol(name, real=True) for name in (f"LSE{L}", "SY", f"P{L}"))
    lse, total = LogSumExp(*zs), sp.Add(*ys)
    row, unit = _unit_terms(loss.xreplace({lse: lse_sym, total: sy_sym}), zs, ys)
    z1, y1 = zs[0], ys[0]
    delta = deltas[0].xreplace({sp.exp(z1 - lse): p_sym, total: sy_sym})
    if delta.has(*zs[1:], *ys[1:], lse):
        raise ValueError(f"softmax delta did not reduce to softmax and Σy: {delta}")
    printer.names = {z1: f"Z{L}", y1: "Y"}
    sign, unit_abs = ("-", -unit) if unit.could_extract_minus_sign() else ("+", unit)
    shown: dict[sp.Basic, sp.Basic] = {z1: sp.Symbol(f"z{L}_j"), y1: sp.Symbol("y_j"), sy_sym: sp.Symbol("sum_j(y_j)")}
    total_line = Line(
        f"C = ({_sum_text(row, printer)} {sign} {_sum_text(unit_abs, printer)}) / n",
        f"C_k = {sp.sstr(row.xreplace(shown))} {sign} sum_j {sp.sstr(unit_abs.xreplace(shown))}",
    )
    shift = [
        Line(f"M{L} = np.max(Z{L}, axis=1, keepdims=True)", f"softmax cross-entropy; LSE{L} = log(sum_j exp(z{L}_j))"),
        Line(f"E{L} = np.exp(Z{L} - M{L})", "shifted by the row maximum: no overflow"),
        Line(f"S{L} = np.sum(E{L}, axis=1, keepdims=True)"),
        Line(f"LSE{L} = M{L} + np.log(S{L})"),
        Line("SY = np.sum(Y, axis=1, keepdims=True)"),
        total_line,
    ]
    return {
        "loss_lines": shift,
        "grad_lines": [*shift, Line(f"P{L} = E{L} / S{L}", f"softmax(z{L}) = exp(z{L} - LSE{L})")],
        "delta": f"({printer.doprint(delta)}) / n",
        "delta_text": sp.sstr(delta.xreplace({**shown, p_sym: sp.Symbol(f"softmax(z{L})"), y1: sp.Symbol("y")})),
    }


def vectorized_rewrites(spec: Spec) -> tuple[str, ...]:
    """Names of the stabilising rewrites that fired, in pipeline order (as in unrolled mode)."""
    names = [name for layer in spec.layers for name in activation_math(layer).rewrites]
    if spec.loss != "softmax_ce":
        names += output_math(spec).rewrites
    return tuple(dict.fromkeys(names))


def render_vectorized(spec: Spec) -> str:
    """The vectorized module: matmuls per layer from the template, elementwise math from SymPy."""
    printer = SympropPrinter()
    layers = [_vector_layer(spec, l, printer) for l in range(1, len(spec.layers) + 1)]
    output = _softmax_output(spec, printer) if spec.loss == "softmax_ce" else _per_unit_output(spec, printer)
    m = base_context(spec, "vectorized", vectorized_rewrites(spec))
    m.extra = {"layers": layers, "output": output, "n_layers": len(spec.layers)}
    m.helpers = printer.used_helpers
    return finish("numpy/vectorized.py.jinja", m)
