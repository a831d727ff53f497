"""Stage 4: one joint common-subexpression elimination per emitted function.

The weighted sums ``z = Σ W a + b`` and the backpropagated sums ``Σ W δ`` are
linear and share nothing, so they stay out of CSE (placeholders stand in for
the latter); everything elementwise — activations, the per-sample loss and
every δ — goes through one ``sympy.cse`` together, so a term such as
``a2_1 - y1`` is computed once for the loss and the gradient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sympy as sp

from symprop.ir.backprop import Derivation
from symprop.ir.graph import Assign

LOSS_SYMBOL = sp.Symbol("loss_k", real=True)


# An emitted ``lhs = rhs`` is the graph's assignment; CSE adds the role ``temp``.
Statement = Assign


@dataclass(frozen=True)
class Block:
    """Statements in order; ``sums`` maps each placeholder to its linear sum Σ W δ."""

    statements: tuple[Statement, ...]
    sums: dict[sp.Symbol, sp.Expr]

    @property
    def n_ops(self) -> int:
        """Operation count: sympy.count_ops of the elementwise parts, 2k-1 per k-term linear sum."""
        linear = [s.rhs for s in self.statements if s.role == "z"] + list(self.sums.values())
        elementwise = [s.rhs for s in self.statements if s.role != "z"]
        return sum(2 * len(sp.Add.make_args(e)) - 1 for e in linear) + count_ops(elementwise)


def optimize(derivation: Derivation, loss: bool, grad: bool) -> Block:
    """Statements for forward (loss=grad=False), loss (loss=True) or loss-and-grad (both)."""
    net = derivation.network
    primary: list[Statement] = list(net.forward)
    if loss or grad:
        primary.append(Statement(LOSS_SYMBOL, net.loss, "loss"))
    holders: dict[sp.Symbol, tuple[sp.Symbol, sp.Expr]] = {}
    if grad:
        for s in derivation.backward:
            rhs = s.rhs
            total = derivation.upstream.get(s.lhs)
            if total is not None:
                holder = sp.Symbol(f"_sum_{s.lhs.name}", real=True)
                holders[holder] = (s.lhs, total)
                rhs = rhs.xreplace({total: holder})
            primary.append(Statement(s.lhs, rhs, s.role))
    return _cse(primary, {h: total for h, (_, total) in holders.items()})


def _cse(primary: list[Statement], holders: dict[sp.Symbol, sp.Expr]) -> Block:
    """Run one CSE over the elementwise statements and order temporaries before first use.

    Placeholders for the linear sums stay in the statements (see ``Block.sums``).
    """
    elementwise = [k for k, s in enumerate(primary) if s.role != "z"]
    temps, reduced = sp.cse(
        [fold_numbers(primary[k].rhs) for k in elementwise],  # one Float per constant: nothing to extract
        symbols=sp.numbered_symbols("t", real=True),
        order="canonical",
    )
    new_rhs = dict(zip(elementwise, reduced, strict=True))
    temp_defs = dict(temps)
    emitted: set[sp.Symbol] = set()
    out: list[Statement] = []

    def emit_temps(expr: sp.Expr) -> None:
        for t in sorted(expr.free_symbols & temp_defs.keys(), key=lambda s: int(s.name[1:])):
            if t not in emitted:
                emit_temps(temp_defs[t])
                emitted.add(t)
                out.append(Statement(t, temp_defs[t], "temp"))

    for k, s in enumerate(primary):
        rhs = new_rhs.get(k, s.rhs)
        emit_temps(rhs)
        out.append(Statement(s.lhs, rhs, s.role))
    return Block(tuple(out), holders)


def count_ops(exprs: Iterable[sp.Expr]) -> int:
    return sum(int(sp.count_ops(e)) for e in exprs)


def fold_numbers(expr: sp.Expr) -> sp.Expr:
    """Turn every non-integer numeric subexpression (1/2, sqrt(2)/sqrt(pi)) into one Float."""

    def is_constant(e: sp.Basic) -> bool:
        return isinstance(e, sp.Expr) and e.is_number and not isinstance(e, sp.Integer | sp.Float)

    return expr.replace(is_constant, lambda e: sp.Float(e.evalf(20), 20))
