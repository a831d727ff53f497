"""The array printer: SymPy expressions to readable, dtype-preserving array code.

The array module is a parameter (``module="np"``, the name the emitted code imports
NumPy as): no function name below is written with a fixed prefix.  Conventions chosen
here rather than inherited from SymPy's ``NumPyPrinter``:

* every numeric constant prints as a plain Python literal (``2.5066282746310002``,
  never ``numpy.sqrt(2)``), so float32 arrays stay float32 (weak Python scalars); a
  constant that is not a finite real number is an error, never ``inf`` in code;
* ``Heaviside(x, h0)`` prints as ``heaviside(x, h0)``; ``DiracDelta`` never reaches the
  printer (step' = 0, see :func:`symprop.symbolic.functions.drop_dirac`);
* ``Relu`` is ``maximum(x, 0.0)``, or the helper ``_relu`` where :attr:`ArrayPrinter.relu_helper`
  is set; ``Softplus`` is ``logaddexp(0.0, x)``; ``Max`` of
  several arrays nests ``maximum``;
* ``Sigmoid``, ``Clip01`` and ``LogSumExp`` print as the stable helpers ``_sigmoid``,
  ``_clip01``, ``_logsumexp`` that a module defines when it uses them (recorded in
  :attr:`ArrayPrinter.helpers` as they are printed);
* ``Piecewise`` prints as nested ``where``; when every branch is a constant it is cast
  with ``.astype(dtype)``: emitted functions bind ``dtype`` to the computation's dtype.

Symbol names come from one mapping given at construction.  While it prints, the printer
records in :attr:`ArrayPrinter.needs` the names the code uses that a function must bind
(``n``, ``dtype``; SymPy's ``@requires`` pattern), so nobody searches the printed text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from symprop.backends.printing import branches, compared_symbols, dirac_refused, fold_calls, relational, sorted_args
from symprop.ir.forms import fold_numbers
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus

HELPERS: Mapping[type, str] = {Sigmoid: "_sigmoid", Clip01: "_clip01", LogSumExp: "_logsumexp"}
# every module helper, in the order a module defines them
MODULE_HELPERS = ("_sigmoid", "_relu", "_affine", "_sigmoid_grad", "_clip01", "_logsumexp")


def helpers_in(printed: Iterable[str]) -> tuple[str, ...]:
    """The module helpers among the ``printed`` names, in a fixed order (the module's)."""
    found = set(printed)
    return tuple(name for name in MODULE_HELPERS if name in found)


class ArrayPrinter(NumPyPrinter):
    """Prints elementwise array code with ``module.`` function names and the given symbol names."""

    def __init__(self, names: Mapping[sp.Symbol, str], module: str = "np") -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.names = dict(names)
        self.module = module
        self.needs: set[str] = set()  # names printed so far (the caller empties it per function)
        self.helpers: set[str] = set()  # module helpers called so far (the whole module's)
        self.helper_args: tuple[str, ...] = ()  # what every helper call passes first
        self.relu_helper = False  # Relu of an array as the module's _relu (NumPy's vectorized module)

    def helper(self, name: str) -> str:
        """``name``, a module helper (``_sigmoid``), recorded as called."""
        self.helpers.add(name)
        return name

    def need(self, name: str) -> str:
        """``name``, recorded as used (for names the callers write themselves: ``n``, ``dtype``)."""
        self.needs.add(name)
        return name

    def code(self, expr: sp.Expr) -> str:
        if isinstance(expr, sp.Symbol):
            return self.name(expr)
        return str(self.doprint(fold_numbers(expr)))

    def name(self, symbol: sp.Symbol) -> str:
        """A variable's name in the code (cheaper than printing a lone symbol)."""
        return self.need(self.names.get(symbol, symbol.name))

    def fn(self, name: str) -> str:
        return f"{self.module}.{name}"

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return self.fn(fqn[len("numpy.") :]) if fqn.startswith("numpy.") else fqn

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if isinstance(expr, sp.Expr) and expr.is_number and not isinstance(expr, sp.Integer):
            value = complex(expr.evalf(20))
            if value.imag != 0 or not math.isfinite(value.real):
                raise ValueError(f"the constant {expr} is not a finite real number")
            return repr(float(value.real))
        if isinstance(expr, sp.Integer) and abs(int(expr)) >= 2**53:
            value = float(expr)
            if not math.isfinite(value):
                raise ValueError(f"the constant {expr} overflows a float")
            return repr(value)
        return str(super()._print(expr, **kwargs))

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.name(expr)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, 50)}"
        return str(super()._print_Pow(expr, rational=rational))

    def call_helper(self, expr: sp.Expr) -> str:
        """``_sigmoid(x)``: the module helper of ``expr``'s function, recorded as called, with the
        arguments every helper takes first (:attr:`helper_args`: the array-API's namespace)."""
        args = (*self.helper_args, *(self._print(a) for a in expr.args))
        return f"{self.helper(HELPERS[type(expr)])}({', '.join(args)})"

    _print_Sigmoid = _print_Clip01 = _print_LogSumExp = call_helper

    def _print_Softplus(self, expr: Softplus) -> str:
        return f"{self.fn('logaddexp')}(0.0, {self._print(expr.args[0])})"

    def _print_Relu(self, expr: Relu) -> str:
        if self.relu_helper and not expr.args[0].is_number:
            return f"{self.helper('_relu')}({self._print(expr.args[0])})"
        return f"{self.fn('maximum')}({self._print(expr.args[0])}, 0.0)"

    def _print_Max(self, expr: sp.Max) -> str:
        return fold_calls(self.fn("maximum"), [self._print(a) for a in sorted_args(expr)])

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        h0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        return f"{self.fn('heaviside')}({self._print(expr.args[0])}, {float(h0)!r})"

    def _print_DiracDelta(self, expr: sp.Expr) -> str:
        raise dirac_refused()

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"{self.fn('abs')}({self._print(expr.args[0])})"

    def _print_log1p(self, expr: sp.Expr) -> str:
        return f"{self.fn('log1p')}({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces, last = branches(expr)
        text = self._print(last)
        for value, c in reversed(pieces):
            text = f"{self.fn('where')}({self._print(c)}, {self._print(value)}, {text})"
        if all(v.is_number for v, _ in expr.args):
            # every branch is a constant: where() would make float64 (or int); keep the
            # computation's dtype, which every emitted function binds to the name `dtype`
            text = f"{text}.astype({self.need('dtype')})"
        return nan_guard(self, expr, text)

    def _print_Select(self, expr: sp.Expr) -> str:
        """A guarded argument (see ``Select``): ``where(condition, u, safe)``."""
        u, condition, safe = expr.args
        return f"{self.fn('where')}({self._print(condition)}, {self._print(u)}, {float(safe)!r})"

    def _print_Relational(self, expr: sp.Basic) -> str:
        return relational(self._print(expr.lhs), expr.rel_op, self._print(expr.rhs))

    def comparison(self, h: sp.Heaviside) -> str:
        """Heaviside(u, 0) as ``(u > 0)``, Heaviside(u, 1) as ``(u >= 0)``: a boolean mask."""
        return f"({self._print(h.args[0])} {'>' if h.args[1] == 0 else '>='} 0)"


def nan_guard(p: ArrayPrinter, expr: sp.Expr, text: str) -> str:
    """``text`` (a Piecewise) made NaN where an argument is NaN: every comparison with NaN is
    false, so the conditions alone would pick the last branch (a number) for a NaN input."""
    for sym in compared_symbols(expr):
        x = p._print(sym)
        text = f"{p.fn('where')}({p.fn('isnan')}({x}), {x}, {text})"
    return text


__all__ = ["HELPERS", "ArrayPrinter", "compared_symbols", "helpers_in", "nan_guard"]
