"""The choice of forms: among equal expressions, the one with the fewest array passes.

Used by :mod:`symprop.ir.backprop` for every error term it builds (the output δ with the
loss computed beside it, each hidden layer's f' in terms of the saved a), so every
backend and explain see one form.  Candidates: as derived, factored, with the signs of
sum factors flipped (``-a*(a - 1)`` -> ``a*(1 - a)``), expanded.  Passes are counted on
the SymPy tree after one CSE (no printing, no parsing back).  Heaviside masks stay
separate factors: a backend may apply them as comparisons.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import sympy as sp

from symprop.symbolic.bounded import optional


def fold_numbers(expr: sp.Expr) -> sp.Expr:
    """Turn every non-integer numeric subexpression (1/2, sqrt(2)/sqrt(pi)) into one Float."""

    def is_constant(e: sp.Basic) -> bool:
        return isinstance(e, sp.Expr) and e.is_number and not isinstance(e, sp.Integer | sp.Float)

    return expr.replace(is_constant, lambda e: sp.Float(e.evalf(20), 20))


def passes(expr: sp.Basic) -> int:
    """Array passes of an elementwise expression: one per binary operation, call, comparison
    or negation of arrays, counted on the tree (``u - v`` and ``u/v`` are one pass each)."""
    if expr.is_Atom or (isinstance(expr, sp.Expr) and expr.is_number):
        return 0
    if isinstance(expr, sp.Add):
        return sum(passes(-t if t.could_extract_minus_sign() else t) for t in expr.args) + len(expr.args) - 1
    if isinstance(expr, sp.Mul):
        coeff, factors = expr.as_coeff_mul()
        inner = sum(passes(f.base if isinstance(f, sp.Pow) and f.exp == -1 else f) for f in factors)
        return inner + len(factors) - 1 + (coeff != 1)
    return sum(passes(arg) for arg in expr.args) + 1


def cost(exprs: Sequence[sp.Expr]) -> tuple[int, int]:
    """Fewest passes after one CSE, then fewest powers (``a*(1 - a)`` reads as in the textbook,
    ``a - a**2`` does not)."""
    temps, reduced = sp.cse([fold_numbers(e) for e in exprs], order="canonical")
    total = sum(passes(e) for _, e in temps) + sum(passes(e) for e in reduced)
    powers = sum(1 for e in exprs for p in sp.preorder_traversal(e) if isinstance(p, sp.Pow))
    return total, powers


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


MAX_OPS = 80  # a larger expression is kept as given: its candidates' CSEs would cost seconds each


def choose_form(expr: sp.Expr, together: Sequence[sp.Expr] = ()) -> sp.Expr:
    """Among equal forms of ``expr``, the cheapest by :func:`cost` when computed with ``together``.

    Remembered up to a renaming of the variables: every layer of a deep net asks for the same
    form of ``G*(1 - A**2)`` in its own names, and the search (factor, expand, a CSE per candidate)
    runs once, not once per layer."""
    if expr.is_Atom or sp.count_ops(expr) > MAX_OPS:
        return expr
    names = sorted(set().union(expr.free_symbols, *(t.free_symbols for t in together)), key=sp.default_sort_key)
    canonical = {v: sp.Symbol(f"_form{i}", **v.assumptions0) for i, v in enumerate(names)}
    key = (expr.xreplace(canonical), tuple(t.xreplace(canonical) for t in together))
    known = _FORMS.get(key)
    if known is not None:
        return known.xreplace({c: v for v, c in canonical.items()})
    chosen = _choose_form(expr, together)
    if len(_FORMS) >= MAX_REMEMBERED:
        _FORMS.clear()
    _FORMS[key] = chosen.xreplace(canonical)
    return chosen


MAX_REMEMBERED = 4096
_FORMS: dict[tuple[sp.Expr, tuple[sp.Expr, ...]], sp.Expr] = {}


def _choose_form(expr: sp.Expr, together: Sequence[sp.Expr]) -> sp.Expr:
    # factor and expand are bounded by size and time (symprop.symbolic.bounded): one given up is left out
    what = f"the error term {sp.sstr(expr)[:60]}"
    factored = optional(what, sp.factor, expr, size=expr)
    expanded = optional(what, sp.expand, expr, size=expr)
    if factored is None:
        factored = expr
    forms = [
        expr,
        factored,
        *_sign_variants(factored),
        *_sign_variants(expr),
        *([expanded] if expanded is not None else []),
    ]
    candidates = list(dict.fromkeys(forms))
    return min(candidates, key=lambda c: (cost([*together, c]), candidates.index(c)))


def split_masks(expr: sp.Expr) -> tuple[sp.Expr, tuple[sp.Heaviside, ...]]:
    """``expr`` as (the rest, its Heaviside factors with h0 = 0 or 1, which print as comparisons)."""
    masks = tuple(
        f
        for f in sp.Mul.make_args(expr)
        if isinstance(f, sp.Heaviside) and len(f.args) > 1 and f.args[1] in (sp.Integer(0), sp.Integer(1))
    )
    return sp.Mul(*[f for f in sp.Mul.make_args(expr) if f not in masks]), masks


__all__ = ["choose_form", "cost", "fold_numbers", "passes", "split_masks"]
