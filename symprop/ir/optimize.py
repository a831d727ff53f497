"""The one common-subexpression elimination over the IR, used by every backend.

:func:`cse` runs one ``sympy.cse`` per run of elementwise statements (the statements
between two matrix products or linear sums, the forward pass on its own), constants folded first, temporaries placed
before their first use.  Runs never span a matrix product, so no temporary of the forward
pass is held through the backward pass.  (The choice of forms happens earlier, once, in
:mod:`symprop.ir.forms`, as the program is built.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import sympy as sp

from symprop.ir.forms import fold_numbers
from symprop.ir.program import Function, Kind, Map, N, Program, Reduce, Role, Statement, Var
from symprop.symbolic.functions import Select, log1p


def cse(program: Program) -> Program:
    """One common-subexpression elimination per run of elementwise statements (module docstring)."""
    done: dict[tuple[tuple[Map | Reduce, ...], int], tuple[list[Statement], int]] = {}
    return replace(program, functions=tuple(_cse_function(f, done) for f in program.functions))


def _cse_function(
    f: Function, done: dict[tuple[tuple[Map | Reduce, ...], int], tuple[list[Statement], int]]
) -> Function:
    """``done`` remembers each run's result by (its statements, the first temporary's number): every
    function starts with the same forward pass, whose runs are optimised once, not once per function."""
    body: list[Statement] = []
    run: list[Map | Reduce] = []
    position = [0]  # the next temporary's number

    def flush() -> None:
        key = (tuple(run), position[0])
        if key not in done:
            used: list[int] = []

            def numbers() -> Iterator[int]:
                for k in itertools.count(position[0]):
                    used.append(k)
                    yield k

            out = _cse_run(run, numbers())
            done[key] = (out, position[0] + len(used))
        out, position[0] = done[key]
        body.extend(out)
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
    exprs = [fold_numbers(guard_branches(run[k].expr)) for k in shared]
    temps, reduced = _sympy_cse(exprs, numbers)
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


def guard_branches(expr: sp.Expr) -> sp.Expr:
    """Each branch of a Piecewise with its roots, fractional or negative powers, logs and exps read a
    safe value (1, or 0 for exp and log1p) on the elements the branch does not select.

    Array code evaluates every branch of a ``where()`` on every element, so ``where(z > 0, sqrt(z), 0)``
    warned "invalid value encountered in sqrt" for the negative z it then discards.  Guarded,
    ``sqrt(where(z > 0, z, 1))``: the selected elements compute exactly as before.  Done before the
    CSE, so a temporary it shares between branches is guarded too."""
    if not expr.has(sp.Piecewise):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: _guard_piecewise(e, sp.true))


def _guard_piecewise(pw: sp.Piecewise, outer: sp.Basic) -> sp.Expr:
    pieces = []
    earlier: list[sp.Basic] = []
    for value, cond in pw.args:
        selected = sp.And(outer, cond, *[sp.Not(c) for c in earlier])
        pieces.append((_guard_value(value, selected), cond))
        earlier.append(cond)
    return sp.Piecewise(*pieces)


def _guard_value(value: sp.Expr, selected: sp.Basic) -> sp.Expr:
    def guard(u: sp.Expr, safe: int) -> sp.Expr:
        return u if u.is_number or selected is sp.true else Select(u, selected, sp.Integer(safe))

    def risky(e: sp.Basic) -> bool:
        if isinstance(e, sp.Pow):
            return not (e.exp.is_Integer and e.exp > 0) and not e.base.is_number and not isinstance(e.base, Select)
        return isinstance(e, sp.log | sp.exp | log1p) and not e.args[0].is_number and not isinstance(e.args[0], Select)

    def fix(e: sp.Basic) -> sp.Expr:
        if isinstance(e, sp.Piecewise):
            return _guard_piecewise(e, selected)
        if isinstance(e, sp.Pow):
            return sp.Pow(guard(e.base, 1), e.exp, evaluate=False)
        safe = 1 if isinstance(e, sp.log) else 0
        return type(e)(guard(e.args[0], safe), evaluate=False)

    return value.replace(lambda e: isinstance(e, sp.Piecewise) or risky(e), fix)


MAX_REMEMBERED = 4096
_DONE: dict[tuple[sp.Expr, ...], tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr], int]] = {}


def _sympy_cse(exprs: list[sp.Expr], numbers: Iterator[int]) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """``sympy.cse`` with temporaries t<k> numbered from ``numbers``, remembered up to a renaming of
    the variables: the same statements of every layer of a deep net (``D = G*(1 - A**2)/n`` in its
    own names) are optimised once, not once per layer."""
    names = sorted(set().union(*(e.free_symbols for e in exprs)) - {N.symbol}, key=sp.default_sort_key)
    canonical = {v: sp.Symbol(f"_cse{i}", **v.assumptions0) for i, v in enumerate(names)}
    key = tuple(e.xreplace(canonical) for e in exprs)
    if key in _DONE:
        temps, reduced, drawn = _DONE[key]
        back = {c: v for v, c in canonical.items()}
        back.update({sp.Symbol(f"_tmp{j}", real=True): sp.Symbol(f"t{next(numbers)}", real=True) for j in range(drawn)})
        return [(back[t], e.xreplace(back)) for t, e in temps], [e.xreplace(back) for e in reduced]
    taken: list[int] = []

    def symbols() -> Iterator[sp.Symbol]:
        for k in numbers:
            taken.append(k)
            yield sp.Symbol(f"t{k}", real=True)

    temps, reduced = sp.cse(
        exprs,
        symbols=symbols(),
        order="canonical",
        ignore=(N.symbol,),  # 1/n is a scalar: never worth an array temporary
    )
    to_canonical = {
        **canonical,
        **{sp.Symbol(f"t{k}", real=True): sp.Symbol(f"_tmp{j}", real=True) for j, k in enumerate(taken)},
    }
    if len(_DONE) >= MAX_REMEMBERED:
        _DONE.clear()
    _DONE[key] = (
        [(to_canonical[t], e.xreplace(to_canonical)) for t, e in temps],
        [e.xreplace(to_canonical) for e in reduced],
        len(taken),
    )
    return temps, reduced


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
