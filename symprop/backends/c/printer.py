"""The C printer: SymPy expressions to C99 in double or float, stable forms as inline helpers.

A subclass of SymPy's ``C99CodePrinter`` with the conventions of the NumPy printer
(:mod:`symprop.backends.numpy.printer`) carried over to C:

* ``real`` is ``double`` or ``float``; in float mode every literal carries ``F`` and every math
  function its float name (``expf``, ``tanhf``), so no expression is promoted to double;
* every non-integer constant prints as its shortest round-trip literal of the real type; a
  constant that is not a finite real number is an error, never ``INFINITY`` in code;
* ``Sigmoid``, ``Softplus``, ``Relu``, ``Clip01``, ``Heaviside`` and ``LogSumExp`` print as calls
  of ``static inline`` helpers that the source defines when it uses them (:data:`HELPERS`,
  :func:`helper_source`): each in its stable form (no overflow at any argument);
* ``Max``/``Min`` of several values nest ``spr_max``/``spr_min`` (NaN-propagating, unlike
  ``fmax``); ``Piecewise`` is a chain of ``?:`` on one line, guarded so that a NaN argument
  gives NaN (every comparison with NaN is false, so the chain alone would pick a branch);
* NaN in gives NaN out: no helper turns NaN into a number (``x < 0 ? 0 : x`` for relu);
* ``x**2`` prints as ``x*x`` for a symbol (pow for anything else), ``x**-1`` as ``1/x``.

Symbol names come from one mapping given per call (a loop prints ``Z1[j]``); the printer
holds no state that changes while it prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

from symprop.backends.printing import branches, compared_symbols, dirac_refused, fold_calls, relational, sorted_args
from symprop.ir.forms import fold_numbers
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus

REALS = ("double", "float")

# SymPy class -> helper name, in the order the source defines them.
HELPERS: Mapping[type, str] = {
    Sigmoid: "spr_sigmoid",
    Softplus: "spr_softplus",
    Relu: "spr_relu",
    Clip01: "spr_clip01",
    sp.Heaviside: "spr_heaviside",
    LogSumExp: "spr_logaddexp",
    sp.Max: "spr_max",
    sp.Min: "spr_min",
}


def helpers_used(exprs: Iterable[sp.Expr]) -> tuple[str, ...]:
    """The helper names that printing ``exprs`` calls, in a fixed order."""
    found = {name for e in exprs for cls, name in HELPERS.items() if e.has(cls)}
    return tuple(name for name in HELPERS.values() if name in found)


def float_literal(value: float, real_type: str) -> str:
    """The shortest C literal that reads back as ``value`` rounded to ``real_type``."""
    if not math.isfinite(value):
        raise ValueError(f"the constant {value} is not a finite real number")
    if real_type == "float":
        f32 = np.float32(value)
        if not np.isfinite(f32):
            raise ValueError(f"the constant {value} overflows a float")
        text = str(f32)
    else:
        text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + ("F" if real_type == "float" else "")


class CPrinter(C99CodePrinter):
    """Prints C99 expressions in ``real_type`` with the given symbol names."""

    def __init__(self, real_type: str = "double") -> None:
        if real_type not in REALS:
            raise ValueError(f"unknown real type {real_type!r}; use double or float")
        alias = float32 if real_type == "float" else float64
        # the one-argument helpers print as calls by name, from the table (SymPy's user_functions)
        calls = {cls.__name__: HELPERS[cls] for cls in (Sigmoid, Softplus, Relu, Clip01)}
        super().__init__({"type_aliases": {real: alias}, "allow_unknown_functions": False, "user_functions": calls})
        self.real_type = real_type
        self.names: Mapping[sp.Symbol, str] = {}

    def code(self, expr: sp.Expr, names: Mapping[sp.Symbol, str]) -> str:
        """``expr`` as one line of C with ``names`` for its symbols."""
        self.names = names
        try:
            if isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Symbol):  # a mask: 1 or 0
                return f"({self._print(expr)} ? {self.lit(1.0)} : {self.lit(0.0)})"
            return str(self.doprint(fold_numbers(sp.sympify(expr))))
        finally:
            self.names = {}

    def lit(self, value: float) -> str:
        return float_literal(value, self.real_type)

    def fn(self, name: str) -> str:
        """A math.h function in the real type: ``exp`` or ``expf``."""
        return name + ("f" if self.real_type == "float" else "")

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if isinstance(expr, sp.Expr) and expr.is_number and not isinstance(expr, sp.Integer):
            value = complex(expr.evalf(20))
            if value.imag != 0 or not math.isfinite(value.real):
                raise ValueError(f"the constant {expr} is not a finite real number")
            return self.lit(value.real)  # SymPy's precedence of a negative number parenthesizes it
        if isinstance(expr, sp.Integer) and abs(int(expr)) >= 2**31:
            return self.lit(float(expr))
        return str(super()._print(expr, **kwargs))

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, expr.name)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.base, expr.exp
        if exp == -1:
            return f"{self.lit(1.0)}/{self.parenthesize(base, 50)}"
        if exp == 2 and isinstance(base, sp.Symbol):
            b = self._print(base)
            return f"{b}*{b}"
        if exp.is_Integer and int(exp) < 0:
            return f"{self.lit(1.0)}/{self._print(sp.Pow(base, -exp, evaluate=False))}"
        if exp == sp.Rational(1, 2):
            return f"{self.fn('sqrt')}({self._print(base)})"
        return f"{self.fn('pow')}({self._print(base)}, {self._print(sp.Float(exp) if exp.is_Integer else exp)})"

    def _print_LogSumExp(self, expr: LogSumExp) -> str:
        return fold_calls("spr_logaddexp", [self._print(a) for a in expr.args])

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        h0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        return f"spr_heaviside({self._print(expr.args[0])}, {self.lit(float(h0))})"

    def _print_DiracDelta(self, expr: sp.Expr) -> str:
        raise dirac_refused()

    def _nested_helper(self, name: str, expr: sp.Expr) -> str:
        return fold_calls(name, [self._print(a) for a in sorted_args(expr)])

    def _print_Max(self, expr: sp.Max) -> str:
        return self._nested_helper("spr_max", expr)  # not fmax: fmax(NaN, x) is x, NumPy's maximum is NaN

    def _print_Min(self, expr: sp.Min) -> str:
        return self._nested_helper("spr_min", expr)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces, last = branches(expr)
        text = self._branch(last)
        for value, c in reversed(pieces):
            text = f"({self._print(c)} ? {self._branch(value)} : {text})"
        # a NaN argument makes every condition false: without this guard it would pick the last
        # branch (a number); NaN in gives NaN out, as in the NumPy module
        for sym in compared_symbols(expr):
            x = self._print(sym)
            text = f"({x} != {x} ? {x} : {text})"
        return text

    def _print_Select(self, expr: sp.Expr) -> str:
        """A guarded argument (symprop.symbolic.functions.Select): ``(condition ? u : safe)``."""
        u, condition, safe = expr.args
        return f"({self._print(condition)} ? {self._print(u)} : {self.lit(float(safe))})"

    def _branch(self, value: sp.Expr) -> str:
        """A Piecewise branch; constants as real literals, so no branch is an int."""
        return self.lit(float(value)) if value.is_number else self._print(value)

    def _print_sign(self, expr: sp.Expr) -> str:
        x = self._print(expr.args[0])
        zero = self.lit(0.0)
        return f"({x} > {zero} ? {self.lit(1.0)} : ({x} < {zero} ? {self.lit(-1.0)} : ({x} == {zero} ? {zero} : {x})))"

    def _print_Relational(self, expr: sp.Basic) -> str:
        return relational(self._print(expr.lhs), expr.rel_op, self._print(expr.rhs))

    def _print_And(self, expr: sp.Basic) -> str:
        return "(" + " && ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr: sp.Basic) -> str:
        return "(" + " || ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr: sp.Basic) -> str:
        return f"(!{self._print(expr.args[0])})"


def helper_source(name: str, real_type: str, real_name: str) -> str:
    """The C definition of one helper in ``real_type`` (``real_name`` is the module's typedef)."""
    p = CPrinter(real_type)
    r, one, zero = real_name, p.lit(1.0), p.lit(0.0)
    exp, log1p = p.fn("exp"), p.fn("log1p")
    eps = p.lit(float(np.finfo(np.float32 if real_type == "float" else np.float64).eps))
    bodies = {
        "spr_sigmoid": (
            "/* 1/(1+exp(-x)); exp of a non-positive number only: no overflow at any x */",
            f"static inline {r} spr_sigmoid({r} x)",
            f"if (x >= {zero}) return {one} / ({one} + {exp}(-x));\n"
            f"    {{\n        const {r} e = {exp}(x);\n        return e / ({one} + e);\n    }}",
        ),
        "spr_softplus": (
            "/* log(1+exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow at any x */",
            f"static inline {r} spr_softplus({r} x)",
            f"return x > {zero} ? x + {log1p}({exp}(-x)) : {log1p}({exp}(x));",
        ),
        "spr_relu": (
            "/* max(x, 0); NaN stays NaN (every comparison with NaN is false) */",
            f"static inline {r} spr_relu({r} x)",
            f"return x < {zero} ? {zero} : x;",
        ),
        "spr_clip01": (
            "/* clamp into [eps, 1-eps], eps the machine epsilon of the real type, so log() stays finite */",
            f"static inline {r} spr_clip01({r} x)",
            f"return x < {eps} ? {eps} : (x > {one} - {eps} ? {one} - {eps} : x);",
        ),
        "spr_heaviside": (
            "/* the step: 0 below 0, 1 above, h0 at 0; NaN stays NaN */",
            f"static inline {r} spr_heaviside({r} x, {r} h0)",
            f"return x > {zero} ? {one} : (x < {zero} ? {zero} : (x == {zero} ? h0 : x));",
        ),
        "spr_logaddexp": (
            "/* log(exp(a) + exp(b)), shifted by the larger: no overflow */",
            f"static inline {r} spr_logaddexp({r} a, {r} b)",
            f"const {r} top = a > b ? a : b;\n    return top + {log1p}({exp}(-(a > b ? a - b : b - a)));",
        ),
        "spr_max": (
            "/* the larger of a and b; NaN if either is NaN (unlike fmax, like NumPy's maximum) */",
            f"static inline {r} spr_max({r} a, {r} b)",
            "return (a > b || a != a) ? a : (b > a || b != b ? b : a);",
        ),
        "spr_min": (
            "/* the smaller of a and b; NaN if either is NaN (unlike fmin, like NumPy's minimum) */",
            f"static inline {r} spr_min({r} a, {r} b)",
            "return (a < b || a != a) ? a : (b < a || b != b ? b : a);",
        ),
    }
    comment, signature, body = bodies[name]
    return f"{comment}\n{signature}\n{{\n    {body}\n}}"


__all__ = ["HELPERS", "REALS", "CPrinter", "float_literal", "helper_source", "helpers_used"]
