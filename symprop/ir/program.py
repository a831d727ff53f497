"""The IR: a network's computation as data, the one thing every backend and explain read.

A :class:`Program` holds the three functions of a generated module (``forward``,
``loss``, ``loss_and_grad``), each a sequence of typed statements over array
variables (:class:`Var`), in the spirit of ``sympy.codegen.ast``'s ``Assignment`` /
``CodeBlock``: nothing here is text to be parsed back.

Statements, each with a :class:`Role` (forward, loss, backward, output):

* :class:`MatMul` — ``out = left @ right`` with optional transposes (the weighted sums
  ``Z = A Wᵀ``, the errors sent down ``G = D W``, the weight gradients ``dW = Dᵀ A``);
* :class:`AddBias` — ``out += bias`` (one bias per unit);
* :class:`Map` — ``out = expr`` elementwise, ``expr`` a SymPy expression whose free symbols
  are variables' symbols (``A1 = Sigmoid(2*Z1)``, ``D1 = G1*A1*(1 - A1)``);
* :class:`Reduce` — ``out = scale * op(expr)`` over one :class:`Axis` (units of a sample,
  the batch, or everything): row maxima and sums for softmax, the batch-mean loss, ``db``;
* :class:`LinearSum` — ``out = Σ weight·value (+ bias)`` over scalar entries: only in the
  per-neuron (:data:`Granularity.UNIT`) program that :mod:`symprop.ir.unroll` derives.

The layer-level program is built by :mod:`symprop.ir.backprop`; the per-neuron program
is a transform of it; :mod:`symprop.ir.optimize` runs one CSE over either.  Variables
carry their math meaning (:class:`Kind`, layer, unit) so backends name them and explain
labels them without parsing names.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from symprop.ir.names import Kind, ParamRef, bias, grad_of, weight
from symprop.ir.notes import Note, Op, Ref, formula, note
from symprop.spec import Spec
from symprop.symbolic.layer_math import OutputMath  # the one record of the output's loss and error


class Role(enum.Enum):
    FORWARD = "forward"
    LOSS = "loss"
    BACKWARD = "backward"
    OUTPUT = "output"
    CURVATURE = "curvature"  # the R-operator's statements of a Hessian-vector product


class Granularity(enum.Enum):
    LAYER = "layer"  # one variable per layer: (n, units) arrays
    UNIT = "unit"  # one variable per neuron: (n,) vectors, weights as scalar entries


# the kinds that hold one value per sample and unit of a layer (arrays of shape (n, units))
LAYER_VALUES = frozenset({Kind.Z, Kind.A, Kind.DELTA, Kind.UPSTREAM})


class Axis(enum.Enum):
    UNITS = "units"  # over the units of a layer: one value per sample, shape (n, 1)
    BATCH = "batch"  # over the samples: one value per unit, shape (units,)
    ALL = "all"  # everything: a scalar


class ReduceOp(enum.Enum):
    SUM = "sum"
    MAX = "max"


@dataclass(frozen=True)
class Var:
    """An array (or scalar) of the emitted code.

    ``name`` is the variable's identity and its name in the vectorized code (``Z1``,
    ``D2``, ``W1``); ``index`` locates a scalar entry of a parameter or gradient array in
    the unit program (0-based, ``(j, i)`` or ``(j,)``), ``array`` names that array; ``of``
    is, for an R variable of second order (Kind.R), the kind of the variable it derives.
    """

    name: str
    kind: Kind
    layer: int = 0
    unit: int | None = None  # 1-based neuron, unit program only
    index: tuple[int, ...] = ()
    of: Kind | None = None
    array: str = ""

    @property
    def math_kind(self) -> Kind:
        """The kind of math object: that of its source for an R variable."""
        return self.of or self.kind

    @cached_property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)

    @property
    def ref(self) -> Ref:
        """This variable as a typed symbol for notes and explain (same name, with kind, layer and units)."""
        sub = (str(self.unit),) if self.unit else tuple(str(i + 1) for i in self.index)
        batch = self.unit is None and not self.index and self.kind in LAYER_VALUES | {Kind.INPUT, Kind.TARGET}
        return Ref(self.name, self.kind, self.layer, sub, batch=batch)

    @property
    def param(self) -> ParamRef:
        """The parameter array a parameter, gradient or R of one belongs to (from kind and layer)."""
        if self.math_kind not in (Kind.WEIGHT, Kind.BIAS, Kind.GRAD_W, Kind.GRAD_B):
            raise ValueError(f"{self.name} is no parameter, gradient or R of one")
        return ParamRef("W" if self.math_kind in (Kind.WEIGHT, Kind.GRAD_W) else "b", self.layer)


def weight_var(l: int) -> Var:
    """Wˡ, the weights of layer ``l``."""
    return Var(weight(l), Kind.WEIGHT, l)


def bias_var(l: int) -> Var:
    """bˡ, the biases of layer ``l``."""
    return Var(bias(l), Kind.BIAS, l)


def param_var(name: str) -> Var:
    """The variable of a parameter array named ``W1`` or ``b1``."""
    ref = ParamRef.parse(name)
    return weight_var(ref.layer) if ref.array == "W" else bias_var(ref.layer)


def grad_var(param: Var) -> Var:
    """∂C/∂Wˡ or ∂C/∂bˡ of a parameter array's variable."""
    return Var(grad_of(param.name), Kind.GRAD_W if param.kind is Kind.WEIGHT else Kind.GRAD_B, param.layer)


NO_NOTE = Note()  # a statement without a formula note
N = Var("n", Kind.COUNT)  # the batch size, known when the function runs (every backend reads it from here)
# the sample weights scaled to mean 1, w_k = n s_k / sum_j s_j (a column; 1 when none are given), so
# (1/n) sum_k w_k C_k = sum_k s_k C_k / sum_k s_k: the weighted mean with the program's 1/n unchanged
WEIGHTS = Var("w", Kind.ROW)


@dataclass(frozen=True)
class MatMul:
    out: Var
    left: Var
    right: Var
    left_t: bool
    right_t: bool
    role: Role
    note: Note = NO_NOTE


@dataclass(frozen=True)
class AddBias:
    out: Var
    bias: Var
    role: Role
    note: Note = NO_NOTE


@dataclass(frozen=True)
class Map:
    out: Var
    expr: sp.Expr
    role: Role
    note: Note = NO_NOTE


@dataclass(frozen=True)
class Reduce:
    out: Var
    expr: sp.Expr
    op: ReduceOp
    axis: Axis
    role: Role
    scale: sp.Expr = sp.S.One
    note: Note = NO_NOTE


@dataclass(frozen=True)
class LinearSum:
    out: Var
    terms: tuple[tuple[Var, Var], ...]  # (weight entry, value)
    bias: Var | None
    role: Role
    note: Note = NO_NOTE


Statement = MatMul | AddBias | Map | Reduce | LinearSum


def reads(s: Statement) -> frozenset[sp.Symbol]:
    """The symbols a statement reads."""
    if isinstance(s, MatMul):
        return frozenset((s.left.symbol, s.right.symbol))
    if isinstance(s, AddBias):
        return frozenset((s.out.symbol, s.bias.symbol))
    if isinstance(s, Map | Reduce):
        return frozenset(s.expr.free_symbols)
    terms = {sym for w, v in s.terms for sym in (w.symbol, v.symbol)}
    return frozenset((*terms, s.bias.symbol) if s.bias is not None else terms)


@dataclass(frozen=True)
class Function:
    """One emitted function: its statements and what it returns."""

    name: str  # forward, loss, loss_and_grad
    body: tuple[Statement, ...]
    returns: tuple[Var, ...]


@dataclass(frozen=True)
class LayerMath:
    """One layer's scalar math, as derived (in the scalar symbols z and a of symbolic.layer_math)."""

    l: int
    units: int
    label: str  # activation with parameters, re-printed from the spec (safe to show)
    f: sp.Expr  # a = f(z)
    df: sp.Expr  # f'(z), in terms of the saved a where exact and not costlier

    @property
    def blocks_gradient(self) -> bool:
        return self.df == 0


@dataclass(frozen=True)
class Program:
    spec: Spec
    granularity: Granularity
    functions: tuple[Function, ...]
    layers: tuple[LayerMath, ...]
    output: OutputMath
    rewrites: tuple[str, ...]  # the stabilising rewrites that fired, in pipeline order
    warnings: tuple[str, ...]
    params: tuple[Var, ...]  # W1, b1, W2, ... (entries in the unit program)
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def statements(self) -> Iterator[Statement]:
        for f in self.functions:
            yield from f.body


__all__ = [
    "LAYER_VALUES",
    "WEIGHTS",
    "AddBias",
    "Axis",
    "Function",
    "Granularity",
    "Kind",
    "LayerMath",
    "LinearSum",
    "Map",
    "MatMul",
    "N",
    "Note",
    "Op",
    "OutputMath",
    "ParamRef",
    "Program",
    "Reduce",
    "ReduceOp",
    "Ref",
    "Role",
    "Statement",
    "Var",
    "bias_var",
    "formula",
    "grad_var",
    "note",
    "param_var",
    "reads",
    "weight_var",
]
