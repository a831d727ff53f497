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

from symprop.ir.forms import fold_numbers
from symprop.ir.program import Function, Kind, Map, N, Program, Reduce, Role, Statement, Var


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


def _flat(expr: sp.Expr) -> bool:
    """A symbol, or one operation on symbols (``delta2_1*a1_3``): nothing in it to share."""
    return all(arg.is_Symbol for arg in expr.args)


def _cse_run(run: Sequence[Map | Reduce], counter: Iterable[int]) -> list[Statement]:
    """One CSE over the run's statements; flat ones (see :func:`_flat`) pass through as they are."""
    if not run:
        return []
    numbers = iter(counter)
    shared = [k for k, s in enumerate(run) if not _flat(s.expr)]
    exprs = [fold_numbers(run[k].expr) for k in shared]
    temps, reduced = sp.cse(
        exprs,
        symbols=(sp.Symbol(f"t{k}", real=True) for k in numbers),
        order="canonical",
        ignore=(N.symbol,),  # 1/n is a scalar: never worth an array temporary
    )
    new_expr = dict(zip(shared, reduced, strict=True))
    temp_defs = dict(temps)
    role_of = {t: next(run[k].role for k, e in new_expr.items() if t in _closure(e, temp_defs)) for t in temp_defs}
    emitted: set[sp.Symbol] = set()
    out: list[Statement] = []

    def emit(expr: sp.Expr) -> None:
        for t in sorted(expr.free_symbols & temp_defs.keys(), key=lambda s: int(s.name[1:])):
            if t not in emitted:
                emit(temp_defs[t])
                emitted.add(t)
                out.append(Map(Var(t.name, Kind.TEMP), temp_defs[t], role_of[t]))

    for k, s in enumerate(run):
        if k in new_expr:
            emit(new_expr[k])
            out.append(replace(s, expr=new_expr[k]))
        else:
            out.append(s)
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
