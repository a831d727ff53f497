"""NumPy backend ``unrolled``: straight-line code, one NumPy vector over the batch per neuron.

Prints the per-neuron program (:func:`symprop.ir.unroll.unroll`): ``z1_2 = W1[1, 0]*x1 +
...``, one line per neuron and per gradient entry, each δ and gradient with its formula
as a comment.  Meant for small networks and for reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import sympy as sp

from symprop.backends.numpy.module import is_entry, linear_sum_code, param_key, param_name, render, scaled
from symprop.backends.numpy.printer import ArrayPrinter
from symprop.backends.templating import Line
from symprop.ir.memory import symbols_read
from symprop.ir.program import (
    WEIGHTS,
    Function,
    Kind,
    LinearSum,
    Map,
    N,
    ParamRef,
    Program,
    Reduce,
    Statement,
    Var,
    param_var,
)

MAX_PARAMS = 10_000  # larger unrolled modules take long to generate and add nothing to read


class Unrolled:
    mode = "unrolled"
    target = "numpy"
    context = ""
    docs: Mapping[str, str] = MappingProxyType({})

    def __init__(self, program: Program) -> None:
        spec = program.spec
        self.vars: dict[sp.Symbol, Var] = {}
        for j in range(1, spec.inputs + 1):
            v = Var(f"x{j}", Kind.INPUT, unit=j)
            self.vars[v.symbol] = v
        for j in range(1, spec.outputs + 1):
            v = Var(f"y{j}", Kind.TARGET, unit=j)
            self.vars[v.symbol] = v
        for name, shape in spec.param_shapes.items():  # whole arrays (the L2 penalty reads them)
            v = param_var(name)
            self.vars[v.symbol] = v
            for index in np.ndindex(*shape):  # the entries of a second-order direction V
                d = Var(
                    f"{v.param.direction}_" + "_".join(str(i + 1) for i in index),
                    Kind.DIRECTION,
                    v.layer,
                    index=index,
                    array=v.param.direction,
                )
                self.vars[d.symbol] = d
        for s in program.statements():
            self.vars[s.out.symbol] = s.out
            if isinstance(s, LinearSum):
                for w, v in s.terms:
                    self.vars[w.symbol], self.vars[v.symbol] = w, v
                if s.bias is not None:
                    self.vars[s.bias.symbol] = s.bias

    def printer(self, program: Program) -> ArrayPrinter:
        names = {sym: param_name(v) for sym, v in self.vars.items() if is_entry(v)}
        return ArrayPrinter(names, "np")

    def statement(self, s: Statement, p: ArrayPrinter) -> list[Line]:
        out = p.name(s.out.symbol)
        if isinstance(s, LinearSum):
            return [Line(f"{out} = {linear_sum_code(s, p)}", s.note.render())]
        if isinstance(s, Map):
            if WEIGHTS.symbol in s.expr.free_symbols <= {N.symbol, WEIGHTS.symbol} and s.out.kind is not Kind.COST:
                # a constant times the sample weights (a vector, or 1.0): one value per row
                ones = f"np.ones({p.need('n')}, dtype={p.need('dtype')})"
                return [Line(f"{out} = ({p.code(s.expr)}) * {ones}", s.note.render())]
            if s.expr.free_symbols <= {N.symbol} and s.out.kind is not Kind.COST:
                n, dtype = p.need("n"), p.need("dtype")
                fill = (
                    f"np.zeros({n}, dtype={dtype})" if s.expr == 0 else f"np.full({n}, {p.code(s.expr)}, dtype={dtype})"
                )
                return [Line(f"{out} = {fill}", s.note.render())]
            return [Line(f"{out} = {p.code(s.expr)}", s.note.render())]
        if isinstance(s, Reduce):
            factors = sp.Mul.make_args(s.expr)
            # a dot product of two vectors (not of the weights, which may be the scalar 1.0)
            if len(factors) == 2 and all(isinstance(f, sp.Symbol) and f != WEIGHTS.symbol for f in factors):
                total = f"np.dot({', '.join(p.name(f) for f in factors)})"
            else:
                total = f"np.sum({p.code(s.expr)})"
            return [Line(f"{out} = {scaled(total, s.scale, p)}", s.note.render())]
        raise TypeError(f"the unrolled backend prints no {type(s).__name__}")

    def unpack(
        self, program: Program, statements: Sequence[Statement], skip: set[sp.Symbol], p: ArrayPrinter
    ) -> list[Line]:
        used = symbols_read(statements) - skip
        for s in statements:
            if isinstance(s, LinearSum):
                used |= {w.symbol for w, _ in s.terms} | ({s.bias.symbol} if s.bias is not None else set())
        known = [self.vars[sym] for sym in used if sym in self.vars]
        params = {param_name(_array_of(v)) for v in known if v.kind in (Kind.WEIGHT, Kind.BIAS)}
        lines = [Line(f'{name} = params["{name}"]') for name in program.spec.param_shapes if name in params]
        directions = {v.array: ParamRef.parse(v.array).label for v in known if v.kind is Kind.DIRECTION and v.index}
        lines += [Line(f'{name} = V["{directions[name]}"]') for name in sorted(directions)]
        inputs = sorted((v for v in known if v.kind in (Kind.INPUT, Kind.TARGET)), key=_order)
        lines += [Line(f"{v.name} = {'X' if v.kind is Kind.INPUT else 'Y'}[:, {(v.unit or 1) - 1}]") for v in inputs]
        # the arrays whose entries these statements write: gradients, and their R (H V)
        written = dict.fromkeys((s.out.array, param_key(s.out)) for s in statements if is_entry(s.out))
        order = list(program.spec.param_shapes)
        written = dict.fromkeys(sorted(written, key=lambda w: (order.index(w[1]), w[0].startswith("R"), w[0])))
        lines += [
            Line(f"{array} = np.empty({program.spec.param_shapes[key]}, dtype={p.need('dtype')})")
            for array, key in written
        ]
        return lines

    def outputs(self, f: Function, p: ArrayPrinter) -> tuple[list[Line], str]:
        if f.name == "forward":
            return [], f"np.stack([{', '.join(p.name(v.symbol) for v in f.returns)}], axis=1)"
        cost = f"float({p.name(f.returns[0].symbol)})"
        if f.name == "loss":
            return [], cost
        arrays = dict.fromkeys((v.param.label, param_name(_array_of(v))) for v in f.returns[1:])
        grads = ", ".join(f'"{key}": {name}' for key, name in arrays)
        return [Line(f"grads = {{{grads}}}")], f"{cost}, grads"


def _array_of(v: Var) -> Var:
    return Var(v.name, v.kind, v.layer)


def _order(v: Var) -> tuple[int, int]:
    return (0 if v.kind is Kind.INPUT else 1, v.unit or 0)


def render_unrolled(program: Program) -> str:
    return render(program, Unrolled(program))


__all__ = ["MAX_PARAMS", "Unrolled", "render_unrolled"]
