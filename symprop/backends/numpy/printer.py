"""The NumPy printer: SymPy expressions to readable, dtype-preserving NumPy code.

Conventions chosen here rather than inherited from ``NumPyPrinter``:

* every numeric constant prints as a plain Python literal (``2.5066282746310002``,
  never ``numpy.sqrt(2)``), so float32 arrays stay float32 (NumPy's weak
  Python scalars);
* ``Heaviside(x, h0)`` prints as ``np.heaviside(x, h0)``; ``DiracDelta`` never
  reaches the printer (step' = 0, see :func:`symprop.symbolic.functions.drop_dirac`);
* ``Relu`` is ``np.maximum(x, 0.0)`` with relu'(0) = 0 (``Heaviside(x, 0)``);
* ``Sigmoid``, ``Clip01`` and ``LogSumExp`` print as the stable helpers
  ``_sigmoid``, ``_clip01``, ``_logsumexp`` defined in every emitted module;
  ``Softplus`` is ``np.logaddexp(0.0, x)``;
* ``Piecewise`` prints as nested ``np.where``; when every branch is a constant it is
  cast with ``.astype(dtype)``: emitted functions bind ``dtype`` to the computation's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.printing.numpy import NumPyPrinter as _NumPyPrinter

from symprop.ir.optimize import fold_numbers
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus

HELPERS = ("_sigmoid", "_clip01", "_logsumexp")


class SympropPrinter(_NumPyPrinter):
    """Prints with the ``np.`` prefix, symbol names remapped by ``names``."""

    printmethod = "_symprop"

    def __init__(self, names: Mapping[sp.Symbol, str] | None = None) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.names = dict(names or {})
        self.used_helpers: set[str] = set()

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return "np." + fqn[len("numpy.") :] if fqn.startswith("numpy.") else fqn

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if isinstance(expr, sp.Expr) and expr.is_number and not isinstance(expr, sp.Integer):
            value = complex(expr.evalf(20))
            if value.imag != 0:
                raise ValueError(f"complex constant {expr} in generated code")
            return repr(float(value.real))
        return str(super()._print(expr, **kwargs))

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, expr.name)

    def _print_Sigmoid(self, expr: Sigmoid) -> str:
        self.used_helpers.add("_sigmoid")
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_Clip01(self, expr: Clip01) -> str:
        self.used_helpers.add("_clip01")
        return f"_clip01({self._print(expr.args[0])})"

    def _print_LogSumExp(self, expr: LogSumExp) -> str:
        self.used_helpers.add("_logsumexp")
        return f"_logsumexp({', '.join(self._print(a) for a in expr.args)})"

    def _print_Softplus(self, expr: Softplus) -> str:
        return f"np.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_Relu(self, expr: Relu) -> str:
        return f"np.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        h0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        return f"np.heaviside({self._print(expr.args[0])}, {float(h0)!r})"

    def _print_DiracDelta(self, expr: sp.Expr) -> str:
        raise ValueError("DiracDelta reached the printer; derivatives of steps must be dropped first")

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"np.abs({self._print(expr.args[0])})"

    def _print_log1p(self, expr: sp.Expr) -> str:
        return f"np.log1p({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *pieces, (last, cond) = expr.args
        if cond is not sp.true:
            raise ValueError("Piecewise without a final True branch")
        text = self._print(last)
        for value, c in reversed(pieces):
            text = f"np.where({self._print(c)}, {self._print(value)}, {text})"
        if all(v.is_number for v, _ in expr.args):
            # every branch is a constant: np.where would make float64 (or int); keep the
            # computation's dtype, which every emitted function binds to the name `dtype`
            text = f"{text}.astype(dtype)"
        return text

    def _print_Relational(self, expr: sp.Basic) -> str:
        op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"


def print_expr(expr: sp.Expr, names: Mapping[sp.Symbol, str] | None = None) -> str:
    return SympropPrinter(names).doprint(fold_numbers(expr))
