"""What the array printers and the C printer share: folding a binary call over arguments, the
branches of a ``Piecewise``, and the refusal of ``DiracDelta``.  Each printer keeps its own
names and literals; only the shape of the printing is here, once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp


def fold_calls(name: str, args: Sequence[str]) -> str:
    """``name(name(a, b), c)``: a binary function applied over printed arguments, left to right."""
    text = args[0]
    for arg in args[1:]:
        text = f"{name}({text}, {arg})"
    return text


def sorted_args(expr: sp.Basic) -> list[sp.Basic]:
    """The arguments of a commutative function (``Max``, ``Min``) in SymPy's fixed order."""
    return sorted(expr.args, key=sp.default_sort_key)


def branches(expr: sp.Piecewise) -> tuple[list[tuple[sp.Expr, sp.Basic]], sp.Expr]:
    """The (value, condition) pairs of ``expr`` before its last branch, and that branch's value
    (which must be taken when no condition holds: a final ``True``)."""
    *pieces, (last, cond) = expr.args
    if cond is not sp.true:
        raise ValueError("Piecewise without a final True branch")
    return pieces, last


def compared_symbols(expr: sp.Piecewise) -> list[sp.Symbol]:
    """The numeric symbols that the conditions of ``expr`` compare (not a bare boolean symbol, a
    CSE'd comparison), in a fixed order: what a NaN guard tests."""
    found: set[sp.Symbol] = set()
    for _, cond in expr.args:
        for rel in cond.atoms(sp.core.relational.Relational):
            found |= {s for s in rel.free_symbols if isinstance(s, sp.Symbol)}
    return sorted(found, key=sp.default_sort_key, reverse=True)


def relational(lhs: str, op: str, rhs: str) -> str:
    """A comparison of printed operands, parenthesized (the same operators in C and Python)."""
    if op not in ("<", "<=", ">", ">=", "==", "!="):
        raise ValueError(f"no comparison {op!r}")
    return f"({lhs} {op} {rhs})"


def dirac_refused() -> ValueError:
    """The error of a printer that meets a ``DiracDelta`` (step' = 0 must be dropped before)."""
    return ValueError("DiracDelta reached the printer; derivatives of steps must be dropped first")


__all__ = ["branches", "compared_symbols", "dirac_refused", "fold_calls", "relational", "sorted_args"]
