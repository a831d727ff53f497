"""The per-neuron program read as definitions, for explaining one parameter.

:func:`symprop.ir.unroll.unroll` gives every z, a, δ and ∂C_k/∂a of every neuron as a
statement.  Read at n = 1 (a batch of one sample) those statements are the per-sample
definitions of the chain rule: ``delta2_1 = a2_1 - y1``, ``dC_da1_2 = W2_1_2*delta2_1``,
``delta1_2 = (1 - a1_2**2)*dC_da1_2``, and each gradient entry ``delta2_1*a1_3``.
Nothing is differentiated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symprop.ir.backprop import derive
from symprop.ir.names import bias, weight
from symprop.ir.notes import Ref, ref
from symprop.ir.program import Kind, LinearSum, Map, N, Note, Program, Reduce, Var
from symprop.ir.unroll import unroll
from symprop.spec import Spec


def sym(name: str) -> sp.Symbol:
    """A real symbol by name (the naive oracle's symbols; explain itself uses references)."""
    return sp.Symbol(name, real=True)


def linear_sum(terms: list[sp.Expr]) -> sp.Expr:
    """Σ of terms in the given order, without SymPy's canonicalisation (fast for wide layers)."""
    return terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)


@dataclass(frozen=True)
class Gradient:
    """∂C_k/∂param = ``delta * activation`` per sample (activation None for a bias)."""

    array: str  # W2
    index: tuple[int, ...]  # 0-based
    param: Ref  # W2_1_3
    delta: Ref
    activation: Ref | None

    @property
    def label(self) -> str:
        """1-based, as in the math: ``W2[1,3]``, ``b1[2]``."""
        return f"{self.array}[{','.join(str(i + 1) for i in self.index)}]"

    @property
    def per_sample(self) -> sp.Expr:
        return self.delta if self.activation is None else self.delta * self.activation

    @property
    def formula_text(self) -> str:
        return sp.sstr(self.per_sample)


class UnitView:
    """Definitions of every per-neuron symbol of a spec, per sample (n = 1).

    The program's variables are read as references (:attr:`Var.ref`: the same names, with their
    kind, layer and unit), so that explain prints them from those and never from a name."""

    def __init__(self, spec: Spec, program: Program | None = None) -> None:
        self.spec = spec
        self.program = unroll(program or derive(spec))
        self.defs: dict[sp.Symbol, sp.Expr] = {}
        self.vars: dict[sp.Symbol, Var] = {}
        self.order: list[sp.Symbol] = []  # definitions in program order
        self.notes: dict[sp.Symbol, Note] = {}  # the statements' notes: the module's comments
        grads: list[Gradient] = []
        # every variable's symbol -> its reference; the targets y_j appear only inside expressions
        self._refs: dict[sp.Basic, sp.Basic] = {N.symbol: sp.Integer(1)}
        for j in range(1, spec.outputs + 1):
            y = ref(Kind.TARGET, 0, j)
            self._refs[sp.Symbol(y.name, real=True)] = y
        for s in self.program.function("loss_and_grad").body:
            if isinstance(s, LinearSum):
                for w, v in s.terms:
                    self._know(w)
                    self._know(v)
                if s.bias is not None:
                    self._know(s.bias)
                terms: list[sp.Expr] = [sp.Mul(w.ref, v.ref, evaluate=False) for w, v in s.terms]
                if s.bias is not None:
                    terms.append(s.bias.ref)
                self._define(s.out, linear_sum(terms))
            elif isinstance(s, Map) and s.out.kind is not Kind.COST:
                self._define(s.out, s.expr)
                self.notes[s.out.ref] = s.note
            elif isinstance(s, Reduce) and s.out.kind in (Kind.GRAD_W, Kind.GRAD_B) and s.out.index:
                factors = [self._refs.get(f, f) for f in sp.Mul.make_args(s.expr)]
                delta = next(f for f in factors if isinstance(f, Ref) and f.kind is Kind.DELTA)
                other = [f for f in factors if f != delta and isinstance(f, Ref)]
                p = s.out.param
                param = ref(Kind.WEIGHT if p.array == "W" else Kind.BIAS, p.layer, *(i + 1 for i in s.out.index))
                grads.append(Gradient(p.label, s.out.index, param, delta, other[0] if other else None))
        order = {name: k for k, name in enumerate(spec.param_shapes)}
        grads.sort(key=lambda g: (order[g.array], g.index))
        self.gradients = tuple(grads)
        self._expanded: dict[sp.Symbol, sp.Expr] = {}

    def _know(self, v: Var) -> Ref:
        r = v.ref
        self._refs[v.symbol] = r
        self.vars[r] = v
        return r

    def _define(self, v: Var, expr: sp.Expr) -> None:
        r = self._know(v)
        self.defs[r] = expr.xreplace(self._refs)
        self.order.append(r)

    def kind(self, s: sp.Basic) -> Kind | None:
        return s.kind if isinstance(s, Ref) else None

    def layer_unit(self, s: sp.Symbol) -> tuple[int, int]:
        v = self.vars[s]
        return v.layer, v.unit or 0

    @cached_property
    def upstream(self) -> dict[sp.Symbol, sp.Symbol]:
        """hidden δ -> its ∂C_k/∂a symbol (the Σ W δ factor)."""
        out = {}
        for s, e in self.defs.items():
            if self.kind(s) is Kind.DELTA:
                ups = [f for f in e.free_symbols if self.kind(f) is Kind.UPSTREAM]
                if ups:
                    out[s] = ups[0]
        return out

    def local(self, delta: sp.Symbol) -> sp.Expr:
        """f'(z) of a hidden δ: its definition divided by the ∂C_k/∂a factor."""
        return sp.Mul(*[f for f in sp.Mul.make_args(self.defs[delta]) if f != self.upstream[delta]])

    def delta_text(self, delta: sp.Symbol, typed: bool = False) -> Note:
        """Compact chain-rule formula of one δ as one line of text: the module's comment on it
        (``typed``: over references, for the scalar view, which prints them without unit index)."""
        note = self.notes[delta]
        if not typed:
            return note
        return Note(tuple(q.xreplace(self._refs) if isinstance(q, sp.Basic) else q for q in note.parts))

    def gradient(self, label: str) -> Gradient:
        wanted = label.replace(" ", "")
        for g in self.gradients:
            if g.label == wanted:
                return g
        raise KeyError(label)

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` in inputs, targets and parameters only; each definition expanded once, bottom-up."""
        defs, done = self.defs, self._expanded

        def full(s: sp.Symbol) -> sp.Expr:
            if s not in done:
                rhs = defs[s]
                done[s] = rhs.xreplace({t: full(t) for t in rhs.free_symbols if t in defs})
            return done[s]

        return expr.xreplace({t: full(t) for t in expr.free_symbols if t in defs})

    def shape(self, exprs: list[sp.Expr]) -> tuple[int, int]:
        """(nodes, depth) of the expanded trees, counted without building them.

        Iterative, over the compact DAG with a memo: a deep network (hundreds of layers) cannot
        exhaust Python's stack here, and the depth it reports is what explain bounds before
        SymPy's own recursive substitution and printing see the tree.
        """
        defs = self.defs
        memo: dict[sp.Basic, tuple[int, int]] = {}
        total, deepest = 0, 0
        for root in exprs:
            stack: list[tuple[sp.Basic, bool]] = [(root, False)]
            while stack:
                node, ready = stack.pop()
                if node in memo:
                    continue
                children = (defs[node],) if node in defs else node.args
                if not ready:
                    stack.append((node, True))
                    stack.extend((c, False) for c in children if c not in memo)
                elif node in defs:
                    memo[node] = memo[defs[node]]
                else:
                    shapes = [memo[c] for c in children]
                    memo[node] = (1 + sum(n for n, _ in shapes), 1 + max((h for _, h in shapes), default=0))
            total += memo[root][0]
            deepest = max(deepest, memo[root][1])
        return total, deepest

    def size(self, exprs: list[sp.Expr]) -> int:
        """Nodes of the expanded trees, counted without building them."""
        return self.shape(exprs)[0]

    def weights(self, l: int) -> sp.Matrix:
        rows, cols = self.spec.param_shapes[weight(l)]
        return sp.Matrix(rows, cols, lambda j, i: ref(Kind.WEIGHT, l, j + 1, i + 1))

    def biases(self, l: int) -> sp.Matrix:
        return sp.Matrix([ref(Kind.BIAS, l, j + 1) for j in range(self.spec.param_shapes[bias(l)][0])])


__all__ = ["Gradient", "UnitView", "linear_sum", "sym"]
