"""Notes: a statement's formula as math, not text.

A :class:`Note` is a sequence of parts, each one of

* words (``str``): prose, printed as words by every view;
* a SymPy expression (``sp.Basic``) whose symbols may be :class:`Ref` — a symbol that knows
  which math object it is (a :class:`~symprop.ir.names.Kind`, a layer, unit indices, transposed
  or not) — and whose display-only functions (:class:`Partial`, :class:`Act`, :class:`Deriv`,
  :class:`Ell`, :class:`Hadamard`, :class:`BatchMean`) are never differentiated or emitted as code;
* an operator (:class:`Op`): ``=``, ``+``, ``⊙``, a matrix product, the batch mean ``(1/n) Σ_k``...

Every view prints the same note: a generated module's comment in ASCII (:func:`formula`,
the spelling of :meth:`Ref.name` and :attr:`Op.ascii`), and ``symprop explain``'s text, LaTeX,
Markdown and MathML (:mod:`symprop.explain.notation`, from the kind, layer and units, never
from a name).  Nothing reads a note back as text.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import sympy as sp
from sympy.printing.str import StrPrinter

from symprop.ir.names import Kind

# -------------------------------------------------------------------- references --
# the ASCII spelling of each kind (module comments, the per-neuron program's names, explain's text)
ASCII_BASE = {
    Kind.INPUT: "x",
    Kind.TARGET: "y",
    Kind.WEIGHT: "W",
    Kind.BIAS: "b",
    Kind.Z: "z",
    Kind.A: "a",
    Kind.DELTA: "delta",
    Kind.UPSTREAM: "dC_da",
    Kind.COST: "C",
    Kind.COUNT: "n",
    Kind.ROW: "w",
}
# a whole batch's array (rows are samples): Z2, A2, D2 = ∂C/∂Z2, G1
BATCH_BASE = {Kind.INPUT: "X", Kind.TARGET: "Y", Kind.Z: "Z", Kind.A: "A", Kind.DELTA: "D", Kind.UPSTREAM: "G"}


class Ref(sp.Symbol):
    """A symbol that knows its math object: ``kind``, ``layer`` (0: none), unit indices ``sub``
    (``("j",)``, ``("1", "3")``), ``transposed``, ``batch`` (the array over a batch, ``Z2``).

    Its ``name`` is its ASCII spelling (printed in module comments); every other printer reads
    the fields.  It sorts like a plain symbol of the same name, so expressions print in the
    same order as with plain symbols."""

    __slots__ = ("batch", "kind", "layer", "sub", "transposed")

    kind: Kind
    layer: int | str  # a number, or a letter for a generic layer (δ^(l))
    sub: tuple[str, ...]
    transposed: bool
    batch: bool

    def __new__(
        cls,
        name: str,
        kind: Kind,
        layer: int | str = 0,
        sub: tuple[str, ...] = (),
        transposed: bool = False,
        batch: bool = False,
        **assumptions: Any,
    ) -> Ref:
        assumptions.setdefault("real", True)
        cls._sanitize(assumptions, cls)
        obj: Ref = sp.Symbol.__xnew__(cls, name, **assumptions)
        obj.kind, obj.layer, obj.sub = kind, layer, tuple(str(s) for s in sub)
        obj.transposed, obj.batch = transposed, batch
        return obj

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.name, self.kind, self.layer, self.sub, self.transposed, self.batch), self.assumptions0

    def _hashable_content(self) -> tuple[Any, ...]:
        meta = (self.kind.value, self.layer, self.sub, self.transposed, self.batch)
        return (*sp.Symbol._hashable_content(self), *meta)

    @classmethod
    def class_key(cls) -> tuple[int, int, str]:
        return sp.Symbol.class_key()

    def t(self) -> Ref:
        """The same object, transposed (``a1^T``)."""
        return ref(self.kind, self.layer, *self.sub, transposed=True, batch=self.batch)


def ascii_name(
    kind: Kind, layer: int | str = 0, sub: tuple[str, ...] = (), transposed: bool = False, batch: bool = False
) -> str:
    """The ASCII spelling: ``z2``, ``a1_j``, ``delta2_1``, ``W2_1_3``, ``x1``, ``x_i``, ``C_k``, ``W2^T``, ``D2``;
    a generic layer in braces: ``delta{l}_j``."""
    base = (BATCH_BASE if batch else ASCII_BASE).get(kind, kind.value)
    head = base + (f"{{{layer}}}" if isinstance(layer, str) else str(layer) if layer else "")
    if kind in (Kind.INPUT, Kind.TARGET) and len(sub) == 1 and sub[0].isdigit():
        head += sub[0]  # x1, y2: the per-neuron program's names
    else:
        head += "".join("_" + s for s in sub)
    return head + ("^T" if transposed else "")


def ref(kind: Kind, layer: int | str = 0, *sub: str | int, transposed: bool = False, batch: bool = False) -> Ref:
    """The :class:`Ref` of a math object, named by :func:`ascii_name`."""
    subs = tuple(str(s) for s in sub)
    return Ref(ascii_name(kind, layer, subs, transposed, batch), kind, layer, subs, transposed, batch)


def entry(kind: Kind, layer: int, *index: str | int) -> Ref:
    """One entry of a parameter or gradient array as the comments write it: ``W2[j,i]``, ``b1[2]``."""
    subs = tuple(str(s) for s in index)
    name = f"{ASCII_BASE[kind]}{layer}[{','.join(subs)}]"
    return Ref(name, kind, layer, subs)


def softmax_cost(layer: int | str = 0, costs: sp.Basic | None = None) -> tuple[Part, ...]:
    """C_k = −Σ_j y_j log p_j, p_j = e^(z_j) / Σ_i e^(z_i): softmax cross-entropy as note parts."""
    j, i = sp.Symbol("j", integer=True), sp.Symbol("i", integer=True)
    y_j, z_j, z_i = ref(Kind.TARGET, 0, "j"), ref(Kind.Z, layer, "j"), ref(Kind.Z, layer, "i")
    p_j = sp.Symbol("p_j", positive=True)
    k = sp.Symbol("K", integer=True, positive=True)
    total = -sp.Sum(y_j * sp.log(p_j), (j, 1, k))
    return (
        costs if costs is not None else C_K,
        Op.EQ,
        total,
        Op.COMMA,
        p_j,
        Op.EQ,
        sp.exp(z_j) / sp.Sum(sp.exp(z_i), (i, 1, k)),
    )


C = ref(Kind.COST)  # the batch cost
C_K = ref(Kind.COST, 0, "k")  # the cost of sample k
N_REF = ref(Kind.COUNT)  # the batch size


# ------------------------------------------------------------- display functions --
class Partial(sp.Function):
    """∂num/∂den: a factor of the chain rule as printed, never differentiated."""

    nargs = 2


class Deriv(sp.Function):
    """∂/∂x (an operator applied in words: "∂/∂W² of the penalty")."""

    nargs = 1


class Hadamard(sp.Function):
    """u ⊙ v, the elementwise product of two layer vectors."""

    nargs = 2


class BatchMean(sp.Function):
    """(1/n) Σ_k of its argument: the batch mean of a per-sample quantity."""

    nargs = 1


class Act(sp.Function):
    """f_l(arg) (order 0) or f_l'(arg) (order 1): the activation of layer l, by name."""

    nargs = 3  # (l, order, arg)


class Ell(sp.Function):
    """ℓ(a, z, y), the per-unit loss (no arguments: ℓ itself)."""


# --------------------------------------------------------------------- operators --
class Op(enum.Enum):
    """An operator between the math parts of a note: (ASCII, LaTeX, MathML, LaTeX in the scalar view)."""

    EQ = (" = ", " = ", "<mo>=</mo>")
    PLUS = (" + ", " + ", "<mo>+</mo>")
    TIMES = (" * ", r" \cdot ", "<mo>·</mo>")
    TIGHT_TIMES = ("*", r" \cdot ", "<mo>·</mo>")
    HADAMARD = (" * ", r" \odot ", "<mo>⊙</mo>")  # elementwise; a plain product in the scalar view
    PRODUCT = (" ", " ", "<mo>\u2062</mo>")  # a matrix product (juxtaposed)
    DIV = (" / ", " / ", "<mo>/</mo>")
    SEP = ("; ", r",\quad ", '<mo>,</mo><mspace width="1em"></mspace>')
    COMMA = (", ", r",\ ", "<mo>,</mo>")
    OPEN = ("(", r"\left(", "<mo>(</mo>")
    CLOSE = (")", r"\right)", "<mo>)</mo>")
    MEAN_K = (
        "(1/n) sum_k ",
        r"\frac{1}{n} \sum_k ",
        "<mfrac><mn>1</mn><mi>n</mi></mfrac><munder><mo>∑</mo><mi>k</mi></munder>",
    )
    SUM_J = ("sum_j ", r"\sum_j ", "<munder><mo>∑</mo><mi>j</mi></munder>")
    ARROW = (" -> ", r" \to ", "<mo>→</mo>")
    PLUS_EQ = (" += ", r" \mathrel{+}= ", "<mo>+=</mo>")
    GETS = (" <- ", r" \leftarrow ", "<mo>←</mo>")
    MINUS = (" - ", " - ", "<mo>−</mo>")

    @property
    def ascii(self) -> str:
        return self.value[0]

    @property
    def latex(self) -> str:
        return self.value[1]

    @property
    def mathml(self) -> str:
        return self.value[2]


Part: TypeAlias = str | sp.Basic | Op


class NotePrinter(StrPrinter):
    """The ASCII of module comments: SymPy's str form, floats as their shortest Python literal,
    references by name, display functions spelled ``dC_k/dz2``, ``f2'(z2)``, ``(1/n) sum_k``."""

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Partial(self, expr: sp.Basic) -> str:
        return f"d{self._print(expr.args[0])}/d{self._print(expr.args[1])}"

    def _print_Deriv(self, expr: sp.Basic) -> str:
        return f"d/d{self._print(expr.args[0])}"

    def _print_Act(self, expr: sp.Basic) -> str:
        l, order, arg = expr.args
        return f"f{l}{chr(39) * int(order)}({self._print(arg)})"

    def _print_Ell(self, expr: sp.Basic) -> str:
        return "l" + (f"({', '.join(self._print(a) for a in expr.args)})" if expr.args else "")

    def _print_BatchMean(self, expr: sp.Basic) -> str:
        return f"(1/n) sum_k {self._print(expr.args[0])}"

    def _print_Hadamard(self, expr: sp.Basic) -> str:
        return " * ".join(self._print(a) for a in expr.args)


def formula(expr: sp.Basic) -> str:
    """A formula as one line of plain text (module comments)."""
    return str(NotePrinter().doprint(expr))


@dataclass(frozen=True)
class Note:
    """A statement's formula: words, expressions and operators (see the module docstring).

    The one source of every formula text: a module prints its notes as comments
    (:meth:`render`), explain prints the same notes in textbook notation."""

    parts: tuple[Part, ...] = ()

    def render(self, printer: Callable[[sp.Basic], str] = formula) -> str:
        """ASCII: words as they are, expressions by ``printer``, operators by their ASCII."""
        return "".join(p if isinstance(p, str) else p.ascii if isinstance(p, Op) else printer(p) for p in self.parts)

    def runs(self) -> Iterator[tuple[bool, tuple[Part, ...]]]:
        """(is_math, parts): maximal runs of words, and of math (expressions and operators)."""
        run: list[Part] = []
        math = False
        for p in self.parts:
            is_math = not isinstance(p, str)
            if run and is_math != math:
                yield math, tuple(run)
                run = []
            run.append(p)
            math = is_math
        if run:
            yield math, tuple(run)

    def split(self, op: Op) -> list[Note]:
        """The note cut at each ``op`` (``Op.SEP``: its clauses; ``Op.EQ``: the sides of an equation)."""
        out: list[list[Part]] = [[]]
        for p in self.parts:
            if p is op:
                out.append([])
            else:
                out[-1].append(p)
        return [Note(tuple(x)) for x in out]

    @property
    def is_math(self) -> bool:
        return all(not isinstance(p, str) for p in self.parts)

    def xreplace(self, rule: dict[sp.Basic, sp.Basic]) -> Note:
        """The same note with ``rule`` applied to its expressions (a display substitution)."""
        return Note(tuple(p.xreplace(rule) if isinstance(p, sp.Basic) else p for p in self.parts))

    def __add__(self, other: Note) -> Note:
        return Note(self.parts + other.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)


def note(*parts: Part) -> Note:
    return Note(tuple(parts))


__all__ = [
    "C_K",
    "N_REF",
    "Act",
    "BatchMean",
    "C",
    "Deriv",
    "Ell",
    "Hadamard",
    "Note",
    "NotePrinter",
    "Op",
    "Part",
    "Partial",
    "Ref",
    "ascii_name",
    "entry",
    "formula",
    "note",
    "ref",
    "softmax_cost",
]
