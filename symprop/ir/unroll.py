"""The per-neuron program, as a transform of the layer program (no second derivation).

Each layer variable (Zˡ, Aˡ, Dˡ, Gˡ, X, Y and layer temporaries) becomes one variable per
unit (``z2_1``, ``a2_1``, ``delta2_1``, ``dC_da1_2``, ``x1``, ``y1``), a vector over the
batch; weights, biases and gradients become scalar entries (``W2[0, 2]``).  Per-sample
row values (softmax's row maximum and sums) and scalars stay as they are.

* ``Z = A Wᵀ`` then ``Z += b``  ->  ``z_j = Σ_i W[j,i] a_i + b[j]`` (a :class:`LinearSum`);
* ``G = D W``  ->  ``dC_da_i = Σ_j W[j,i] delta_j``;
* ``dW = Dᵀ A``  ->  ``dW[j,i] = Σ_batch delta_j a_i``;  ``db = Σ_batch D``  ->  per entry;
* an elementwise map  ->  the same expression per unit;
* a reduction over the units  ->  the sum (or maximum) of the per-unit expressions.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symprop.ir.memory import fuse
from symprop.ir.notes import C_K, Op, Partial, entry, note, ref
from symprop.ir.notes import C as C_REF
from symprop.ir.program import (
    WEIGHTS,
    AddBias,
    Axis,
    Function,
    Granularity,
    Kind,
    LinearSum,
    Map,
    MatMul,
    N,
    Note,
    Program,
    Reduce,
    ReduceOp,
    Statement,
    Var,
)
from symprop.spec import Spec

PER_UNIT = {Kind.INPUT, Kind.TARGET, Kind.Z, Kind.A, Kind.DELTA, Kind.UPSTREAM, Kind.TEMP}
UNIT_NAMES = {
    Kind.INPUT: "x{j}",
    Kind.TARGET: "y{j}",
    Kind.Z: "z{l}_{j}",
    Kind.A: "a{l}_{j}",
    Kind.DELTA: "delta{l}_{j}",
    Kind.UPSTREAM: "dC_da{l}_{j}",
}


class _Units:
    """Per-unit variables of the layer program's variables, for one spec."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.by_symbol: dict[sp.Symbol, Var] = {}  # the layer program's variables
        self.units: dict[sp.Symbol, Var] = {}  # the per-unit variables made so far
        self._made: dict[tuple[str, int], Var] = {}
        self._entries: dict[tuple[str, tuple[int, ...]], Var] = {}

    def know(self, *variables: Var) -> None:
        for v in variables:
            self.by_symbol[v.symbol] = v

    def count(self, v: Var) -> int:
        if v.kind is Kind.INPUT:
            return self.spec.inputs
        if v.kind is Kind.TARGET:
            return self.spec.outputs
        return self.spec.layer_sizes[v.layer]

    def per_unit(self, v: Var) -> bool:
        kind = v.math_kind
        return kind in PER_UNIT and (kind is not Kind.TEMP or v.layer > 0)

    def unit(self, v: Var, j: int) -> Var:
        """Unit ``j`` (1-based) of ``v``."""
        key = (v.name, j)
        unit = self._made.get(key)
        if unit is None:
            # an R variable (second order) keeps its own name: RA1_2, RZ2_1_3 (parts of a product rule)
            pattern = v.name + "_{j}" if v.kind is Kind.R else UNIT_NAMES.get(v.kind, v.name.lower() + "_{j}")
            unit = self._made[key] = Var(pattern.format(l=v.layer, j=j), v.kind, v.layer, unit=j, of=v.of)
            self.units[unit.symbol] = unit
        return unit

    def entry(self, v: Var, index: tuple[int, ...]) -> Var:
        """Entry ``index`` (0-based) of a parameter or gradient array."""
        key = (v.name, index)
        entry = self._entries.get(key)
        if entry is None:
            name = v.name + "_" + "_".join(str(i + 1) for i in index)
            entry = self._entries[key] = Var(name, v.kind, v.layer, index=index, of=v.of, array=v.name)
        return entry

    def at(self, expr: sp.Expr, j: int) -> sp.Expr:
        """``expr`` with every per-unit variable replaced by its unit ``j``."""
        subs = {
            s: self.unit(self.by_symbol[s], j).symbol
            for s in expr.free_symbols
            if s in self.by_symbol and self.per_unit(self.by_symbol[s])
        }
        return expr.xreplace(subs)

    def delta_note(self, delta: Var, expr: sp.Expr) -> Note:
        """One neuron's chain-rule line, per sample (n = 1): the module's comment and explain's text."""
        # per sample (n = 1) and unweighted (w = 1): the sample weight scales C_k, it is not part of dC_k/dz
        per_sample = expr.xreplace({N.symbol: sp.Integer(1), WEIGHTS.symbol: sp.Integer(1)})
        head = (delta.ref, Op.EQ, Partial(C_K, ref(Kind.Z, delta.layer, delta.unit or 0)), Op.EQ)
        up = [f for f in sp.Mul.make_args(per_sample) if (v := self.units.get(f)) and v.kind is Kind.UPSTREAM]
        if not up:
            return note(*head, per_sample)
        local = sp.Mul(*[f for f in sp.Mul.make_args(per_sample) if f != up[0]])
        return note(*head, Op.OPEN, local, Op.CLOSE, Op.TIMES, up[0])

    def has_units(self, expr: sp.Expr) -> bool:
        return any(s in self.by_symbol and self.per_unit(self.by_symbol[s]) for s in expr.free_symbols)

    def width(self, expr: sp.Expr) -> int:
        widths = {self.count(v) for s in expr.free_symbols if (v := self.by_symbol.get(s)) and self.per_unit(v)}
        if len(widths) != 1:
            raise ValueError(f"cannot unroll {expr}: its arrays have different widths {sorted(widths)}")
        return widths.pop()


def _indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every 0-based index of an array of ``shape``, row-major."""
    if len(shape) == 1:
        return [(j,) for j in range(shape[0])]
    return [(j, i) for j in range(shape[0]) for i in range(shape[1])]


def _matmul(s: MatMul, bias: Var | None, u: _Units) -> list[Statement]:
    out: list[Statement] = []
    kind = s.out.math_kind  # an R variable unrolls like the variable it derives
    if kind is Kind.Z:  # Z = A Wᵀ (+ b)
        for j in range(1, u.count(s.out) + 1):
            terms = tuple((u.entry(s.right, (j - 1, i - 1)), u.unit(s.left, i)) for i in range(1, u.count(s.left) + 1))
            b = u.entry(bias, (j - 1,)) if bias is not None else None
            out.append(LinearSum(u.unit(s.out, j), terms, b, s.role))
    elif kind is Kind.UPSTREAM:  # G = D W
        for i in range(1, u.count(s.out) + 1):
            terms = tuple((u.entry(s.right, (j - 1, i - 1)), u.unit(s.left, j)) for j in range(1, u.count(s.left) + 1))
            weight = entry(Kind.WEIGHT, s.right.layer, "j", "i")
            rule = (Partial(C_K, ref(Kind.A, s.out.layer, "i")), Op.EQ, Op.SUM_J, weight, Op.TIGHT_TIMES)
            text = note(*rule, ref(Kind.DELTA, s.left.layer, "j")) if i == 1 else Note()
            out.append(LinearSum(u.unit(s.out, i), terms, None, s.role, text))
    elif kind is Kind.GRAD_W:  # dW = Dᵀ A
        for j in range(1, u.count(s.left) + 1):
            for i in range(1, u.count(s.right) + 1):
                product = sp.Mul(u.unit(s.left, j).symbol, u.unit(s.right, i).symbol, evaluate=False)
                grad = Partial(C_REF, entry(Kind.WEIGHT, s.out.layer, j, i))
                factor = Partial(C_K, ref(Kind.Z, s.left.layer, j))
                text = note(grad, Op.EQ, Op.MEAN_K, factor, Op.TIMES, u.unit(s.right, i).ref)
                out.append(Reduce(u.entry(s.out, (j - 1, i - 1)), product, ReduceOp.SUM, Axis.BATCH, s.role, note=text))
    else:
        raise ValueError(f"no unit form for the product into {s.out.name}")
    return out


def _elementwise(s: Map | Reduce, u: _Units) -> list[Statement]:
    if isinstance(s, Map):
        if u.per_unit(s.out):
            units = [u.unit(s.out, j) for j in range(1, u.count(s.out) + 1)]
            exprs = [u.at(s.expr, j) for j in range(1, len(units) + 1)]
            if s.out.kind is Kind.DELTA:
                notes = [u.delta_note(v, e) for v, e in zip(units, exprs, strict=True)]
            else:
                notes = [s.note if j == 0 else Note() for j in range(len(units))]
            return [replace(s, out=v, expr=e, note=t) for v, e, t in zip(units, exprs, notes, strict=True)]
        if u.has_units(s.expr):
            raise ValueError(f"cannot unroll {s.out.name} = {s.expr}: a row value of per-unit terms")
        return [s]
    if s.axis is Axis.BATCH:  # one value per unit -> one gradient entry per unit
        return [
            replace(
                s,
                out=u.entry(s.out, (j - 1,)),
                expr=u.at(s.expr, j),
                note=note(
                    Partial(C_REF, entry(Kind.BIAS, s.out.layer, j)),
                    Op.EQ,
                    Op.MEAN_K,
                    Partial(C_K, ref(Kind.Z, s.out.layer, j)),
                ),
            )
            for j in range(1, u.width(s.expr) + 1)
        ]
    if not u.has_units(s.expr):  # a row quantity summed over the batch
        return [replace(s, axis=Axis.BATCH)]
    terms = [u.at(s.expr, j) for j in range(1, u.width(s.expr) + 1)]
    if s.axis is Axis.UNITS:
        total = sp.Max(*terms) if s.op is ReduceOp.MAX else sp.Add(*terms)
        return [Map(s.out, total, s.role, s.note)]
    return [replace(s, expr=sp.Add(*terms), axis=Axis.BATCH)]


def _function(f: Function, u: _Units) -> Function:
    body: list[Statement] = []
    for step in fuse(f.body):  # a product with the bias add after it: one linear sum per unit
        # (an error sent down fused with its map unrolls as the two statements it is)
        for s in (step.stmt,) if step.fused is None else (step.stmt, step.fused):
            if isinstance(s, AddBias):  # not after its product: R(Z) += V_b after a sum
                body += [
                    Map(u.unit(s.out, j), u.unit(s.out, j).symbol + u.entry(s.bias, (j - 1,)).symbol, s.role)
                    for j in range(1, u.count(s.out) + 1)
                ]
            elif isinstance(s, MatMul):
                u.know(s.out, s.left, s.right)
                body += _matmul(s, step.bias, u)
            elif isinstance(s, Map | Reduce):
                u.know(s.out)
                body += _elementwise(s, u)
            else:
                raise ValueError(f"the layer program has no {type(s).__name__}")
    returns: list[Var] = []
    for v in f.returns:
        if v.math_kind in (Kind.GRAD_W, Kind.GRAD_B):
            returns += [u.entry(v, index) for index in _indices(u.spec.param_shapes[v.param.label])]
        elif u.per_unit(v):
            returns += [u.unit(v, j) for j in range(1, u.count(v) + 1)]
        else:
            returns.append(v)
    return Function(f.name, tuple(body), tuple(returns))


def unroll(program: Program) -> Program:
    """The per-neuron program of a layer program (see the module docstring)."""
    if program.granularity is not Granularity.LAYER:
        raise ValueError("unroll takes a layer program")
    u = _Units(program.spec)
    u.know(Var("X", Kind.INPUT), Var("Y", Kind.TARGET))
    functions = tuple(_function(f, u) for f in program.functions)
    params = tuple(u.entry(p, index) for p in program.params for index in _indices(program.spec.param_shapes[p.name]))
    return replace(program, granularity=Granularity.UNIT, functions=functions, params=params)


__all__ = ["unroll"]
