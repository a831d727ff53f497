"""The array-API printer: the NumPy printer with the namespace ``xp`` and only standard functions.

What the array API standard lacks, or forbids, is printed in standard terms:

* ``Heaviside(x, h0)`` (no ``heaviside``): ``astype(x > 0, dtype) + h0 * astype(x == 0, dtype)``
  (boolean arrays do not mix with floats in strict namespaces);
* ``Relu``: ``clip(x, min=0.0)``; ``Softplus``: ``clip(x, min=0.0) + log1p(exp(-abs(x)))`` (no
  ``logaddexp`` with a scalar), stable for any x;
* ``Sigmoid`` and ``Clip01`` call the module's helpers with the namespace: ``_sigmoid(xp, x)``;
* ``Piecewise`` prints as nested ``where``; an all-constant one starts from ``full_like`` of an
  array of its conditions, so its dtype and device are the computation's;
* ``Max`` nests ``maximum``.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from symprop.backends.numpy.printer import ArrayPrinter, nan_guard
from symprop.symbolic.functions import Relu, Softplus


class XpPrinter(ArrayPrinter):
    def __init__(self, names: Mapping[sp.Symbol, str], module: str = "xp") -> None:
        super().__init__(names, module)
        self.helper_args = (module,)  # the module's helpers take the namespace: _sigmoid(xp, x)

    def _print_Relu(self, expr: Relu) -> str:
        return f"{self.fn('clip')}({self._print(expr.args[0])}, min=0.0)"

    def _print_Softplus(self, expr: Softplus) -> str:
        x = self._print(expr.args[0])
        return f"({self.fn('clip')}({x}, min=0.0) + {self.fn('log1p')}({self.fn('exp')}(-{self.fn('abs')}({x}))))"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        x = self._print(expr.args[0])
        h0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        dtype = self.dtype_of(expr.args[0])
        step = f"{self.fn('astype')}({x} > 0, {dtype})"
        if h0 == 0:
            text = step
        elif h0 == 1:
            text = f"{self.fn('astype')}({x} >= 0, {dtype})"
        else:
            text = f"({step} + {float(h0)!r}*{self.fn('astype')}({x} == 0, {dtype}))"
        # a comparison with NaN is false: without the guard a NaN input would give 0, not NaN
        return f"{self.fn('where')}({self.fn('isnan')}({x}), {x}, {text})"

    def dtype_of(self, expr: sp.Expr) -> str:
        """A dtype expression for an array expression: that of one of its arrays."""
        arrays = sorted(expr.free_symbols, key=sp.default_sort_key)
        if not arrays:
            raise ValueError(f"{expr} has no array to take a dtype from")
        return f"{self._print(arrays[0])}.dtype"

    def comparison(self, h: sp.Heaviside) -> str:
        return self._print_Heaviside(h)

    def _print_Select(self, expr: sp.Expr) -> str:
        u, condition = self._print(expr.args[0]), self._print(expr.args[1])
        return f"{self.fn('where')}({condition}, {u}, {self.fn('full_like')}({u}, {float(expr.args[2])!r}))"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *pieces, (last, cond) = expr.args
        if cond is not sp.true:
            raise ValueError("Piecewise without a final True branch")
        text = self._print(last)
        if last.is_number:
            # the shape, dtype and device of one of its arrays; not a temporary of the CSE, which may
            # be a boolean condition (full_like of it would be boolean): then with X's dtype
            arrays = sorted(expr.free_symbols, key=lambda a: (_is_temp(a), sp.default_sort_key(a)))
            dtype = ", dtype=X.dtype" if _is_temp(arrays[0]) else ""
            text = f"{self.fn('full_like')}({self._print(arrays[0])}, {text}{dtype})"
        for value, c in reversed(pieces):
            text = f"{self.fn('where')}({self._print(c)}, {self._print(value)}, {text})"
        return nan_guard(self, expr, text)


__all__ = ["XpPrinter"]


def _is_temp(symbol: sp.Basic) -> bool:
    """A temporary of the CSE (t0, t1, ...): it may hold a boolean condition."""
    name = str(symbol)
    return name[:1] == "t" and name[1:].isdecimal()  # the CSE's names: t and a number
