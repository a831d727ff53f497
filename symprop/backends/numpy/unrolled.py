"""Emission backend ``unrolled``: straight-line code, one NumPy vector over the batch per neuron.

Prints the optimized statements of :mod:`symprop.ir.optimize` one per line, with the
compact formula of each δ and gradient as a comment (the texts ``symprop explain``
prints).  Meant for small networks and for reading.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

from symprop.backends.numpy.printer import SympropPrinter
from symprop.backends.templating import Line, base_context, finish
from symprop.ir.backprop import Derivation, derive
from symprop.ir.optimize import Block, Statement, fold_numbers, optimize
from symprop.spec import Spec, SpecError

UNROLLED_MAX_PARAMS = 10_000


def _unrolled_names(derivation: Derivation) -> dict[sp.Symbol, str]:
    names = {}
    for array, index, symbol in derivation.network.param_symbols():
        names[symbol] = f"{array}[{', '.join(map(str, index))}]"
    return names


def delta_comment(derivation: Derivation, delta: sp.Symbol) -> str:
    """Compact chain-rule formula of one δ (the same text ``symprop explain`` prints)."""
    return derivation.delta_text(delta)


def linear_text(expr: sp.Expr, printer: SympropPrinter) -> str:
    """Print Σ w·v (+ b) term by term in index order (no SymPy sorting: fast and readable)."""
    parts = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        parts.append("*".join(printer.names.get(f, f.name) if f.is_Symbol else printer.doprint(f) for f in factors))
    return " + ".join(parts)


def statement_text(s: Statement, block: Block, printer: SympropPrinter) -> str:
    if s.role == "z":
        return linear_text(s.rhs, printer)
    text = printer.doprint(fold_numbers(s.rhs))
    for holder, total in block.sums.items():
        if holder in s.rhs.free_symbols:
            replacement = f"({linear_text(total, printer)})"
            text = re.sub(rf"\b{holder.name}\b", replacement.replace("\\", "\\\\"), text)
    return text


def _lines(block: Block, derivation: Derivation, printer: SympropPrinter) -> list[Line]:
    batch: set[sp.Symbol] = {*derivation.network.x, *derivation.network.y, *block.sums}
    lines = []
    for s in block.statements:
        rhs = statement_text(s, block, printer)
        if s.rhs.free_symbols & batch:
            batch.add(s.lhs)
        else:  # a constant (e.g. the zero δ below a step layer) still needs one value per sample
            rhs = f"np.full(X.shape[0], {rhs}, dtype=dtype)"
            batch.add(s.lhs)
        comment = delta_comment(derivation, s.lhs) if s.role == "delta" else ""
        lines.append(Line(f"{s.lhs.name} = {rhs}", comment))
    return lines


def _gradient_lines(derivation: Derivation) -> list[dict[str, Any]]:
    out = []
    previous = None
    for g in derivation.gradients:
        if g.activation is None:
            code = f"np.sum({g.delta.name}) / n"
        else:
            code = f"np.dot({g.delta.name}, {g.activation.name}) / n"
        out.append(
            {
                "array": g.array,
                "index": ", ".join(map(str, g.index)),
                "code": code,
                "label": g.label,
                "formula": g.formula_text,
                "first": g.array != previous,
            }
        )
        previous = g.array
    return out


def render_unrolled(spec: Spec) -> tuple[str, dict[str, int]]:
    if spec.n_params > UNROLLED_MAX_PARAMS:
        raise SpecError(
            f"{spec.source}: {spec.n_params} parameters is over the unrolled-mode limit of {UNROLLED_MAX_PARAMS}; "
            "use --mode vectorized"
        )
    derivation = derive(spec)
    printer = SympropPrinter(_unrolled_names(derivation))
    blocks = {
        key: optimize(derivation, loss=key != "forward", grad=key == "grad") for key in ("forward", "loss", "grad")
    }
    net = derivation.network
    m = base_context(spec, "unrolled", net.rewrites)
    m.extra = {
        "param_names": list(spec.param_shapes),
        "input_lines": [f"{x.name} = X[:, {i}]" for i, x in enumerate(net.x)],
        "target_lines": [f"{y.name} = Y[:, {j}]" for j, y in enumerate(net.y)],
        "forward_lines": _lines(blocks["forward"], derivation, printer),
        "loss_lines": _lines(blocks["loss"], derivation, printer),
        "grad_lines": _lines(blocks["grad"], derivation, printer),
        "outputs_list": ", ".join(a.name for a in net.a[-1]),
        "gradient_lines": _gradient_lines(derivation),
    }
    m.helpers = printer.used_helpers
    source = finish("numpy/unrolled.py.jinja", m)
    return source, {"ops_after_cse": blocks["grad"].n_ops}
