"""The one common-subexpression elimination over the IR, used by every backend.

:func:`cse` runs one ``sympy.cse`` per run of elementwise statements (the statements
between two matrix products or linear sums, the forward pass on its own), constants folded first, temporaries placed
before their first use.  Runs never span a matrix product, so no temporary of the forward
pass is held through the backward pass.  (The choice of forms happens earlier, once, in
:mod:`symprop.ir.forms`, as the program is built.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace

import sympy as sp

from symprop.ir.backprop import N
from symprop.ir.forms import fold_numbers
from symprop.ir.program import Function, Kind, Map, Program, Reduce, Role, Statement, Var


def cse(program: Program) -> Program:
    """One common-subexpression elimination per run of elementwise statements (module docstring)."""
    return replace(program, functions=tuple(_cse_function(f) for f in program.functions))


def _cse_function(f: Function) -> Function:
    body: list[Statement] = []
    run: list[Map | Reduce] = []
    counter = itertools.count()

    def flush() -> None:
        body.extend(_cse_run(run, counter))
        run.clear()

    for s in f.body:
        if run and s.role is not run[-1].role and Role.FORWARD in (s.role, run[-1].role):
            flush()  # the forward pass is optimised alone: every function shares it as is
        if isinstance(s, Map | Reduce):
            run.append(s)
        else:
            flush()
            body.append(s)
    flush()
    return replace(f, body=tuple(body))


def _cse_run(run: Sequence[Map | Reduce], counter: Iterable[int]) -> list[Statement]:
    if not run:
        return []
    numbers = iter(counter)
    exprs = [fold_numbers(s.expr) for s in run]
    temps, reduced = sp.cse(
        exprs,
        symbols=(sp.Symbol(f"t{k}", real=True) for k in numbers),
        order="canonical",
        ignore=(N.symbol,),  # 1/n is a scalar: never worth an array temporary
    )
    if not temps:
        return [replace(s, expr=e) for s, e in zip(run, exprs, strict=True)]
    temp_defs = dict(temps)
    role_of = {
        t: next(s.role for s, e in zip(run, reduced, strict=True) if t in _closure(e, temp_defs)) for t in temp_defs
    }
    emitted: set[sp.Symbol] = set()
    out: list[Statement] = []

    def emit(expr: sp.Expr) -> None:
        for t in sorted(expr.free_symbols & temp_defs.keys(), key=lambda s: int(s.name[1:])):
            if t not in emitted:
                emit(temp_defs[t])
                emitted.add(t)
                out.append(Map(Var(t.name, Kind.TEMP), temp_defs[t], role_of[t]))

    for s, e in zip(run, reduced, strict=True):
        emit(e)
        out.append(replace(s, expr=e))
    return out


def _closure(expr: sp.Expr, defs: dict[sp.Symbol, sp.Expr]) -> set[sp.Symbol]:
    seen: set[sp.Symbol] = set()
    todo = [s for s in expr.free_symbols if s in defs]
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo += [u for u in defs[t].free_symbols if u in defs]
    return seen


__all__ = ["cse"]
