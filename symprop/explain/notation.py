"""Textbook notation for symprop's formulas: printers for text, LaTeX and MathML.

The printers only change how an expression *reads*, never what it is:

* σ(z) for ``Sigmoid``, ``max(0, z)`` for ``Relu``, ``log(1 + e^z)`` for ``Softplus``,
  ``log Σ_j e^(z_j)`` for ``LogSumExp``, ``tanh`` as is;
* ``Heaviside(u, 0)`` (relu', written in the saved a) as the indicator 1_{u>0}; any other ``Heaviside(z, h)``
  as θ(z) (θ_h(z) when h is not 1), whose value at 0 is stated once by :func:`legend`;
* a ``Piecewise`` as cases whose conditions are **disjoint** (SymPy's are read in
  order: the k-th case holds where its condition holds and no earlier one does;
  :func:`disjoint_cases` writes that out, e.g. ``-2 < z < 2``, ``z ≥ 2``);
* a ``Sum`` over one term (a one-unit layer) as that term, with the index set to 1;
* floats short: the shortest decimal that round-trips when it has at most ``digits``
  significant digits (0.1, 0.78125), else an exact simple fraction when the float is one
  (0.3333333333333333 -> 1/3, so 0.3333333333333333 z prints z/3), else ``digits``
  significant digits;
* references (:class:`symprop.ir.notes.Ref`: a symbol with its kind, layer and units) as math,
  from name tables keyed by kind, never by reading a name: W^(2)_{1,3}, δ^(2)_j, ∂C_k/∂a^(1)_2,
  W^(2)ᵀ; in the scalar view of a one-unit chain (``Printers(scalar=True)``) w², z², δ², with
  no unit index, transpose or ⊙.

Notes (:class:`symprop.ir.notes.Note`: words, expressions and operators) print in every format
by :func:`note_text`, :func:`note_latex` (text mode), :func:`note_math_latex` (display),
:func:`note_markdown`, :func:`note_html` and :func:`note_mathml`: words as words, math as math.

Display-only functions (:class:`Partial`, :class:`Hadamard`, :class:`BatchMean`,
:class:`Act`, from :mod:`symprop.ir.notes`) build the statements of the chain rule
(∂C/∂w = ∂z/∂w · ∂a/∂z · ∂C/∂a); they are never differentiated or emitted as code.

Invariant: every printer prints the same expression; nothing here evaluates user text
(symbol names come from validated specs and are printed through escaping serializers).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar
from xml.dom.minidom import Element, Node

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from symprop.ir.names import Kind, ParamRef
from symprop.ir.notes import (
    ASCII_BASE,
    BATCH_BASE,
    C_K,
    Act,
    BatchMean,
    Hadamard,
    Note,
    NotePrinter,
    Op,
    Partial,
    Ref,
    ascii_name,
    ref,
)
from symprop.symbolic.functions import Relu, Sigmoid, Softplus, log1p

DEFAULT_DIGITS = 6
MAX_DENOMINATOR = 1000  # a float is printed as p/q when it is exactly the double nearest p/q, q <= this

__all__ = [
    "C_K",
    "DEFAULT_DIGITS",
    "Act",
    "BatchMean",
    "Entry",
    "Equality",
    "Hadamard",
    "Partial",
    "Printers",
    "disjoint_cases",
    "latex_lines",
    "legend",
    "markdown_math",
    "mathml_lines",
    "note_html",
    "note_latex",
    "note_markdown",
    "note_math_latex",
    "note_mathml",
    "note_text",
    "text_name",
    "tidy",
    "words_latex",
]


@dataclass(frozen=True)
class Entry:
    """One scalar parameter: an entry of ``W2`` or ``b1``, its ``index`` 1-based (``W2[1,3]``)."""

    param: ParamRef
    index: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.param.label}[{','.join(map(str, self.index))}]"

    @property
    def kind(self) -> Kind:
        return Kind.WEIGHT if self.param.array == "W" else Kind.BIAS

    @property
    def layer(self) -> int:
        return self.param.layer


# ------------------------------------------------------------------------- names --
_GREEK = {"beta": "β", "mu": "μ", "sigma": "σ", "alpha": "α", "eta": "η", "delta": "δ"}
_GREEK_LATEX = {
    "beta": r"\beta",
    "mu": r"\mu",
    "sigma": r"\sigma",
    "alpha": r"\alpha",
    "eta": r"\eta",
    "delta": r"\delta",
}
# activation parameters that are not Greek letters (--symbolic-params): x_min, x_max
_BOUNDS = {"x_min": "min", "x_max": "max"}
# the base letter of each kind in the printed math (a batch array is upper case: Z, A, D)
_BASE = {
    k: ASCII_BASE[k] for k in (Kind.INPUT, Kind.TARGET, Kind.WEIGHT, Kind.BIAS, Kind.Z, Kind.A, Kind.COST, Kind.COUNT)
}
_BASE[Kind.DELTA] = "δ"  # a row value or temporary prints as its name (w_k, M2)
_LATEX_BASE = {"δ": r"\delta"}


@dataclass(frozen=True)
class NameParts:
    """A symbol read as math: base, superscript (layer), subscript (units), transposed."""

    base: str  # "W", "δ", "x"...
    layer: str | None
    sub: str | None
    transposed: bool = False


def ref_parts(r: Ref, scalar: bool = False) -> NameParts | None:
    """How a reference prints, from its kind, layer and units (None: no table entry, print its name).

    ``scalar``: the scalar view of a one-unit chain, w², z², δ² with no unit index or transpose."""
    base = (BATCH_BASE if r.batch else _BASE).get(r.kind)
    if base is None:
        return None
    if scalar and r.kind is Kind.WEIGHT:
        base = "w"
    keep = r.sub and not (scalar and r.kind is not Kind.COST)
    return NameParts(
        base, str(r.layer) if r.layer else None, ",".join(r.sub) if keep else None, r.transposed and not scalar
    )


def upstream_partial(r: Ref) -> sp.Expr:
    """∂C_k/∂a of an UPSTREAM reference (the error sent down): the quotient it names."""
    return Partial(C_K, ref(Kind.A, r.layer, *r.sub))


def _latex_parts(parts: NameParts) -> str:
    head = _LATEX_BASE.get(parts.base, parts.base)
    if parts.sub in ("min", "max"):
        return rf"{head}_{{\{parts.sub}}}"
    if parts.base == "C" and parts.sub is not None:
        return f"C_{parts.sub}"  # C_k, the cost of one sample
    sup = [f"({parts.layer})"] * (parts.layer is not None) + [r"\top"] * parts.transposed
    out = head + (f"^{{{''.join(sup)}}}" if sup else "")
    return out + (f"_{{{parts.sub}}}" if parts.sub is not None else "")


def text_name(r: sp.Symbol, scalar: bool = False) -> str:
    """The text of a symbol: a reference's ASCII name (``dC_da1_2`` reads ``dC_k/da1_2``); in the
    scalar view without unit index or transpose, and w for a weight (``w2``, ``delta2``)."""
    if not isinstance(r, Ref):
        return str(r.name)
    if r.kind is Kind.UPSTREAM:
        return "dC_k/d" + text_name(ref(Kind.A, r.layer, *r.sub), scalar)
    if not scalar or r.kind not in _BASE:
        return str(r.name)
    name = ascii_name(r.kind, r.layer, r.sub if r.kind is Kind.COST else (), False, r.batch)
    return "w" + name[1:] if r.kind is Kind.WEIGHT else name


# ------------------------------------------------------------------------ numbers --
def _significant(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." not in text.split("e")[0] else len(mantissa)


def short_float(value: float, digits: int) -> str:
    """The shortest round-tripping decimal if it has at most ``digits`` significant digits, else ``digits``."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if _significant(text) <= digits:
        return text
    return format(value, f".{digits}g")


def exact_fraction(value: float, digits: int) -> Fraction | None:
    """p/q when ``value`` is a long decimal that is exactly the double nearest p/q (q <= 1000)."""
    if value.is_integer() or _significant(repr(value)) <= digits:
        return None
    frac = Fraction(value).limit_denominator(MAX_DENOMINATOR)
    return frac if float(frac) == value else None


# --------------------------------------------------------------------- tidying --
def _rename_index(expr: sp.Expr, index: str, value: sp.Expr) -> sp.Expr:
    """Set a generic unit index: ``a2_j`` -> ``a2_1`` for j = 1 (references by their units)."""
    subs: dict[sp.Basic, sp.Basic] = {}
    for s in expr.free_symbols:
        if isinstance(s, Ref) and index in s.sub:
            units = (str(value) if u == index else u for u in s.sub)
            subs[s] = ref(s.kind, s.layer, *units, transposed=s.transposed, batch=s.batch)
    return expr.xreplace(subs)


def tidy(expr: sp.Expr, digits: int = DEFAULT_DIGITS) -> sp.Expr:
    """The same value, written for reading: one-term sums unrolled, exact fractions for long floats."""

    def one_term(e: sp.Basic) -> bool:
        return isinstance(e, sp.Sum) and len(e.limits) == 1 and e.limits[0][1] == e.limits[0][2]

    def unroll(e: sp.Sum) -> sp.Expr:
        var, low, _ = e.limits[0]
        return _rename_index(e.function.xreplace({var: low}), var.name, low)

    expr = expr.replace(one_term, unroll)
    floats = {f: exact_fraction(float(f), digits) for f in expr.atoms(sp.Float)}
    return expr.xreplace({f: sp.Rational(q.numerator, q.denominator) for f, q in floats.items() if q is not None})


def _relational_bound(rel: sp.Basic, s: sp.Symbol) -> tuple[str, sp.Expr, bool] | None:
    """``s < 2`` -> ("upper", 2, strict); ``-2 < s`` -> ("lower", -2, strict)."""
    if not isinstance(rel, sp.core.relational.Relational) or isinstance(rel, sp.Eq | sp.Ne):
        return None
    strict = isinstance(rel, sp.StrictLessThan | sp.StrictGreaterThan)
    less = isinstance(rel, sp.StrictLessThan | sp.LessThan)
    if rel.lhs == s and not rel.rhs.has(s):
        return ("upper" if less else "lower", rel.rhs, strict)
    if rel.rhs == s and not rel.lhs.has(s):
        return ("lower" if less else "upper", rel.lhs, strict)
    return None


def interval_chain(cond: sp.Basic) -> tuple[sp.Expr, str, sp.Symbol, str, sp.Expr] | None:
    """``(-2 < z) & (z < 2)`` -> (-2, "<", z, "<", 2): a two-sided bound printed as a chain."""
    if not isinstance(cond, sp.And) or len(cond.args) != 2:
        return None
    syms = cond.free_symbols
    if len(syms) != 1:
        return None
    s = next(iter(syms))
    bounds = [_relational_bound(r, s) for r in cond.args]
    if any(b is None for b in bounds):
        return None
    by_kind = {b[0]: b for b in bounds if b is not None}
    if set(by_kind) != {"lower", "upper"}:
        return None
    _, lo, lo_strict = by_kind["lower"]
    _, hi, hi_strict = by_kind["upper"]
    return lo, "<" if lo_strict else "<=", s, "<" if hi_strict else "<=", hi


def _simplify_condition(cond: sp.Basic) -> sp.Basic:
    syms = cond.free_symbols
    if len(syms) == 1:
        s = next(iter(syms))
        d = sp.Dummy("d", real=True)
        try:
            simple = cond.xreplace({s: d}).as_set().as_relational(d).xreplace({d: s})
        except (NotImplementedError, TypeError, ValueError, AttributeError):
            return cond
        if isinstance(simple, sp.core.relational.Relational) and simple.rhs == s and not simple.lhs.has(s):
            return simple.reversed  # z >= 2, not 2 <= z
        return simple
    return cond


def disjoint_cases(pw: sp.Piecewise) -> list[tuple[sp.Expr, sp.Basic]]:
    """The cases of an ordered Piecewise with disjoint conditions (case k: its condition and no earlier one)."""
    out: list[tuple[sp.Expr, sp.Basic]] = []
    earlier: list[sp.Basic] = []
    for value, cond in pw.args:
        full = sp.And(cond, *[sp.Not(c) for c in earlier]) if earlier else cond
        full = _simplify_condition(full)
        earlier.append(cond)
        if full is sp.false:
            continue
        out.append((value, full))
    return out


# ------------------------------------------------------------------------ legend --
def _heavisides(exprs: Iterable[sp.Expr]) -> set[sp.Expr]:
    values: set[sp.Expr] = set()
    for e in exprs:
        for h in e.atoms(sp.Heaviside):
            values.add(_h0(h))
    return values


def _h0(h: sp.Basic) -> sp.Expr:
    return h.args[1] if len(h.args) > 1 else sp.Rational(1, 2)


def legend(exprs: Iterable[sp.Expr]) -> tuple[str, ...]:
    """Prose that fixes the notation used in ``exprs``: the step functions' values at 0."""
    out = []
    for h0 in sorted(_heavisides(exprs), key=float):
        if h0 == 0:
            out.append(
                "1_{z>0} is 1 where z > 0 and 0 elsewhere (so the derivative of relu at 0 is taken as 0);"
                " relu's is written 1_{a>0}, the same mask, since a = max(0, z) > 0 exactly where z > 0."
            )
        else:
            name = "θ(z)" if h0 == 1 else f"θ_{h0}(z)"
            out.append(f"{name} is the unit step: 1 for z > 0, 0 for z < 0, and {name.replace('(z)', '(0)')} = {h0}.")
    return tuple(out)


# ------------------------------------------------------------------------ notes --
# words in LaTeX text mode: special characters escaped, the few symbols prose uses as math
_LATEX_WORDS = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "_": r"\_",
        "%": r"\%",
        "&": r"\&",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "^": r"\^{}",
        "~": r"\~{}",
        "–": "--",
        "−": "-",
        "δ": r"$\delta$",
        "η": r"$\eta$",
        "σ": r"$\sigma$",
        "θ": r"$\theta$",
        "β": r"$\beta$",
        "ε": r"$\varepsilon$",
        "∂": r"$\partial$",
        "Σ": r"$\sum$",
        "·": r"$\cdot$",
        "²": r"$^2$",
        "≤": r"$\le$",
        "≥": r"$\ge$",
        "←": r"$\leftarrow$",
        "→": r"$\to$",
        "⊙": r"$\odot$",
        "ᵀ": r"$^\top$",
    }
)
# words in Markdown: its punctuation escaped
_MARKDOWN_WORDS = str.maketrans({c: "\\" + c for c in "*_`\\[]<>"})


def words_latex(text: str | Note, p: Printers | None = None) -> str:
    """Words (or a note) for LaTeX text mode."""
    return note_latex(text, p) if isinstance(text, Note) else text.translate(_LATEX_WORDS)


def _as_note(n: str | Note) -> Note:
    return n if isinstance(n, Note) else Note((n,))


def _math_text(parts: Sequence[Any], p: Printers) -> str:
    return "".join(q.ascii if isinstance(q, Op) else p.text(q) for q in parts)


def _op_latex(op: Op, scalar: bool) -> str:
    return r" \cdot " if scalar and op is Op.HADAMARD else op.latex


def _op_mathml(op: Op, scalar: bool) -> str:
    return "<mo>·</mo>" if scalar and op is Op.HADAMARD else op.mathml


def _math_latex(parts: Sequence[Any], p: Printers) -> str:
    return "".join(_op_latex(q, p.scalar) if isinstance(q, Op) else p.latex(q) for q in parts).strip()


def _math_mathml(parts: Sequence[Any], p: Printers) -> str:
    return "".join(_op_mathml(q, p.scalar) if isinstance(q, Op) else f"<mrow>{p.mathml(q)}</mrow>" for q in parts)


def _words(run: Sequence[Any]) -> str:
    return "".join(p for p in run if isinstance(p, str))


def _spaced(run: Sequence[Any], inner: str) -> str:
    """Math set in running text keeps the spaces its operators have in ASCII (`` -> ``)."""
    ascii_ = Note(tuple(run)).render()
    return " " * ascii_.startswith(" ") + inner + " " * (ascii_.endswith(" ") and len(ascii_.strip()) > 0)


def _print_note(
    n: str | Note,
    p: Printers | None,
    math: Callable[[Sequence[Any], Printers], str],
    words: Callable[[str], str],
    sep: str = "",
) -> str:
    """One printer of notes: each run of math by ``math``, each run of words by ``words``."""
    p = p or Printers()
    return sep.join(math(run, p) if is_math else words(_words(run)) for is_math, run in _as_note(n).runs())


def note_text(n: str | Note, p: Printers | None = None) -> str:
    """A note as text: words as they are, math in the text printer (operators in ASCII)."""
    return _print_note(n, p, _math_text, str)


def note_latex(n: str | Note, p: Printers | None = None) -> str:
    """A note for LaTeX text mode: words escaped, math in ``$...$``."""
    return _print_note(
        n, p, lambda run, q: _spaced(run, f"${_math_latex(run, q)}$"), lambda w: w.translate(_LATEX_WORDS)
    )


def note_math_latex(n: str | Note, p: Printers | None = None) -> str:
    """A note as display math: math as is, words in ``\\text{...}``."""
    return _print_note(n, p, _math_latex, lambda w: rf"\text{{{w.translate(_LATEX_WORDS)}}}", " ")


def note_markdown(n: str | Note, p: Printers | None = None) -> str:
    """A note as Markdown: words with Markdown punctuation escaped, math as ``$...$``."""
    return _print_note(
        n,
        p,
        lambda run, q: _spaced(run, f"${markdown_math(_math_latex(run, q))}$"),
        lambda w: w.translate(_MARKDOWN_WORDS),
    )


def note_html(n: str | Note, p: Printers | None = None) -> str:
    """A note as HTML: words escaped, math as inline MathML."""
    return _print_note(
        n, p, lambda run, q: _spaced(run, f"<math><mrow>{_math_mathml(run, q)}</mrow></math>"), html.escape
    )


def note_mathml(n: str | Note, p: Printers | None = None) -> str:
    """A note as MathML content (an ``<mrow>``): words in ``<mtext>``."""
    words = _print_note(n, p, _math_mathml, lambda w: f"<mtext>{html.escape(w).replace(' ', chr(160))}</mtext>")
    return f"<mrow>{words}</mrow>"


# ------------------------------------------------------------------------ printers --
def _h_name(h0: sp.Expr) -> str:
    return "θ" if h0 == 1 else f"θ_{h0}"


def _lse_vector(expr: sp.Basic) -> tuple[str, int] | None:
    """LogSumExp(z2_1, ..., z2_K) -> ("2", K): the arguments are one layer's z, in order."""
    args = expr.args
    first = args[0] if args else None
    if not isinstance(first, Ref) or first.kind is not Kind.Z:
        return None
    if list(args) != [ref(Kind.Z, first.layer, k) for k in range(1, len(args) + 1)]:
        return None
    return str(first.layer), len(args)


class TextPrinter(NotePrinter):
    """Plain text in textbook notation; symbols keep symprop's names (``a2_j``, ``dC_k/da1_2``)."""

    _default_settings: ClassVar[dict[str, Any]] = {
        **NotePrinter._default_settings,
        "digits": DEFAULT_DIGITS,
        "scalar": False,
    }

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return text_name(expr, self._settings["scalar"])

    def _print_Float(self, expr: sp.Float) -> str:
        return short_float(float(expr), self._settings["digits"])

    def _print_Abs(self, expr: sp.Basic) -> str:
        return f"|{self._print(expr.args[0])}|"

    def _call(self, head: str, *args: sp.Basic) -> str:
        return f"{head}({', '.join(self._print(a) for a in args)})"

    def _print_Sigmoid(self, expr: sp.Basic) -> str:
        return self._call("σ", *expr.args)

    def _print_Relu(self, expr: sp.Basic) -> str:
        return self._call("max", sp.Integer(0), expr.args[0])

    def _print_Softplus(self, expr: sp.Basic) -> str:
        return f"log(1 + exp({self._print(expr.args[0])}))"

    def _print_LogSumExp(self, expr: sp.Basic) -> str:
        vec = _lse_vector(expr)
        if vec is not None:
            return f"log(Σ_{{j=1..{vec[1]}}} exp(z{vec[0]}_j))"
        return f"log({' + '.join(f'exp({self._print(a)})' for a in expr.args)})"

    def _print_Clip01(self, expr: sp.Basic) -> str:
        return f"clip({self._print(expr.args[0])}, eps, 1 - eps)"

    def _print_log1p(self, expr: sp.Basic) -> str:
        return f"log(1 + {self._print(expr.args[0])})"

    def _print_Heaviside(self, expr: sp.Basic) -> str:
        h0 = _h0(expr)
        if h0 == 0:
            return f"1[{self._print(expr.args[0])} > 0]"
        return self._call(_h_name(h0), expr.args[0])

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        cases = [f"{self._print(v)} if {self._print(c)}" for v, c in disjoint_cases(expr)]
        return "{" + "; ".join(cases) + "}"

    def _print_And(self, expr: sp.Basic) -> str:
        chain = interval_chain(expr)
        if chain is not None:
            lo, op1, s, op2, hi = chain
            return f"{self._print(lo)} {op1} {self._print(s)} {op2} {self._print(hi)}"
        return " and ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)

    def _print_Or(self, expr: sp.Basic) -> str:
        return " or ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in expr.args)

    def _print_Sum(self, expr: sp.Sum) -> str:
        (var, low, high), body = expr.limits[0], expr.function
        head = f"Σ_{{{self._print(var)}={self._print(low)}..{self._print(high)}}}"
        return f"{head} {self.parenthesize(body, PRECEDENCE['Mul'])}"

    def _print_Hadamard(self, expr: sp.Basic) -> str:
        return " ⊙ ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_BatchMean(self, expr: sp.Basic) -> str:
        return f"(1/n) Σ_k {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}"


_LABEL_SIGNS = str.maketrans({"*": "·", "-": "−"})


class LabelPrinter(TextPrinter):
    """Text with powers as superscripts (z², else z^3), √ and π: no ``**`` is left, so every ``*``
    is a product."""

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"√({self._print(expr.base)})"
        if expr.exp == 2:
            return str(self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=False)) + "²"
        return str(super()._print_Pow(expr, rational)).replace("**", "^")

    def _print_Pi(self, expr: sp.Basic) -> str:
        return "π"


class LatexNotation(LatexPrinter):
    """LaTeX in textbook notation, with symprop's names (W^{(2)}_{1,3}) and functions."""

    _default_settings: ClassVar[dict[str, Any]] = {
        **LatexPrinter._default_settings,
        "digits": DEFAULT_DIGITS,
        "scalar": False,
    }

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if isinstance(expr, Ref):
            if expr.kind is Kind.UPSTREAM:
                return self._print(upstream_partial(expr))
            parts = ref_parts(expr, self._settings["scalar"])
            if parts is not None:
                return _latex_parts(parts)
            if expr.kind is Kind.TEMP:  # a variable of the code by its name (RZ1, W1^T), upright
                name = expr.name.removesuffix("^T").replace("_", r"\_")
                return rf"\mathrm{{{name}}}" + (r"^{\top}" if expr.transposed else "")
        elif expr.name in _GREEK_LATEX:
            return _GREEK_LATEX[expr.name]
        elif expr.name in _BOUNDS:
            return _latex_parts(NameParts("x", None, _BOUNDS[expr.name]))
        return str(super()._print_Symbol(expr, style))

    def _print_Float(self, expr: sp.Float) -> str:
        text = short_float(float(expr), self._settings["digits"])
        if "e" in text:
            mant, exp = text.split("e")
            return rf"{mant} \cdot 10^{{{int(exp)}}}"
        return text

    def _call(self, head: str, args: Iterable[sp.Basic], exp: str | None) -> str:
        inner = rf"{head}\left({', '.join(self._print(a) for a in args)}\right)"
        return inner if exp is None else rf"{inner}^{{{exp}}}"

    def _print_Sigmoid(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\sigma", expr.args, exp)

    def _print_Relu(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\max", (sp.Integer(0), expr.args[0]), exp)

    def _print_Softplus(self, expr: sp.Basic, exp: str | None = None) -> str:
        inner = rf"\log\left(1 + e^{{{self._print(expr.args[0])}}}\right)"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"

    def _print_LogSumExp(self, expr: sp.Basic, exp: str | None = None) -> str:
        vec = _lse_vector(expr)
        if vec is not None:
            inner = rf"\log \sum_{{j=1}}^{{{vec[1]}}} e^{{z^{{({vec[0]})}}_{{j}}}}"
        else:
            inner = r"\log\left(" + " + ".join(f"e^{{{self._print(a)}}}" for a in expr.args) + r"\right)"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"

    def _print_Clip01(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\operatorname{clip}_{[\epsilon, 1-\epsilon]}", expr.args, exp)

    def _print_log1p(self, expr: sp.Basic, exp: str | None = None) -> str:
        inner = rf"\log\left(1 + {self._print(expr.args[0])}\right)"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"

    def _print_Heaviside(self, expr: sp.Basic, exp: str | None = None) -> str:
        h0 = _h0(expr)
        if h0 == 0:
            inner = rf"\mathbf{{1}}_{{{self._print(expr.args[0])} > 0}}"
        else:
            head = r"\theta" if h0 == 1 else rf"\theta_{{{self._print(h0)}}}"
            inner = rf"{head}\left({self._print(expr.args[0])}\right)"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        rows = [rf"{self._print(v)} & \text{{if }} {self._print(c)}" for v, c in disjoint_cases(expr)]
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _print_And(self, expr: sp.Basic) -> str:
        chain = interval_chain(expr)
        if chain is not None:
            lo, op1, s, op2, hi = chain
            ops = {"<": "<", "<=": r"\leq"}
            return f"{self._print(lo)} {ops[op1]} {self._print(s)} {ops[op2]} {self._print(hi)}"
        return r" \text{ and } ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)

    def _print_Or(self, expr: sp.Basic) -> str:
        return r" \text{ or } ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in expr.args)

    def _print_Partial(self, expr: sp.Basic) -> str:
        num, den = (self._print(a) for a in expr.args)
        return rf"\frac{{\partial {num}}}{{\partial {den}}}"

    def _print_Hadamard(self, expr: sp.Basic) -> str:
        return r" \odot ".join(str(self.parenthesize(a, PRECEDENCE["Mul"])) for a in expr.args)

    def _print_BatchMean(self, expr: sp.Basic) -> str:
        return rf"\frac{{1}}{{n}} \sum_{{k}} {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}"

    def _print_Act(self, expr: sp.Basic, exp: str | None = None) -> str:
        l, order, arg = expr.args
        return self._call(f"f_{{{l}}}{chr(39) * int(order)}", (arg,), exp)

    def _print_Deriv(self, expr: sp.Basic) -> str:
        return rf"\frac{{\partial}}{{\partial {self._print(expr.args[0])}}}"

    def _print_AppliedUndef(self, expr: sp.Basic, exp: str | None = None) -> str:
        """f(z), softmax(z): a named function of a note (one letter italic, a word upright)."""
        name = type(expr).__name__
        return self._call(name if len(name) == 1 else rf"\operatorname{{{name}}}", expr.args, exp)

    def _print_Ell(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\ell", expr.args, exp) if expr.args else r"\ell"


class MathMLNotation(MathMLPresentationPrinter):
    """MathML (presentation, MathML Core elements only) in textbook notation."""

    _default_settings: ClassVar[dict[str, Any]] = {
        **MathMLPresentationPrinter._default_settings,
        "digits": DEFAULT_DIGITS,
        "scalar": False,
    }

    def _el(self, tag: str, *children: Element | str) -> Element:
        node = self.dom.createElement(tag)
        for child in children:
            node.appendChild(self.dom.createTextNode(child) if isinstance(child, str) else child)
        return node

    def _mo(self, text: str) -> Element:
        return self._el("mo", text)

    def _row(self, *children: Element) -> Element:
        return self._el("mrow", *children)

    def _paren(self, *children: Element) -> Element:
        return self._row(self._mo("("), *children, self._mo(")"))

    def _apply(self, head: Element, *args: sp.Basic) -> Element:
        inner: list[Element] = []
        for k, a in enumerate(args):
            if k:
                inner.append(self._mo(","))
            inner.append(self._print(a))
        return self._row(head, self._paren(*inner))

    def _name(self, parts: NameParts) -> Element:
        base = self._el("mi", parts.base)
        sup_text = [f"({parts.layer})"] * (parts.layer is not None) + ["⊤"] * parts.transposed
        sub = (
            self._el("mi" if parts.sub in ("min", "max") else "mrow", *self._sub_items(parts.sub))
            if parts.sub
            else None
        )
        sup = self._el("mrow", *[self._el("mo" if t == "⊤" else "mn", t) for t in sup_text]) if sup_text else None
        if sub is not None and sup is not None:
            return self._el("msubsup", base, sub, sup)
        if sub is not None:
            return self._el("msub", base, sub)
        if sup is not None:
            return self._el("msup", base, sup)
        return base

    def _sub_items(self, sub: str | None) -> list[Element | str]:
        if sub in ("min", "max"):
            return [sub]
        items: list[Element | str] = []
        for k, part in enumerate((sub or "").split(",")):
            if k:
                items.append(self._mo(","))
            items.append(self._el("mn" if part.isdigit() else "mi", part))
        return items

    def _print_Symbol(self, sym: sp.Symbol, style: str = "plain") -> Element:
        name = sym.name
        if isinstance(sym, Ref):
            if sym.kind is Kind.UPSTREAM:
                return self._print_Partial(upstream_partial(sym))
            parts = ref_parts(sym, self._settings["scalar"])
            if parts is not None:
                return self._name(parts)
        if name in _GREEK:
            return self._el("mi", _GREEK[name])
        if name in _BOUNDS:
            return self._name(NameParts("x", None, _BOUNDS[name]))
        if "_" in name:
            head, *rest = name.split("_")
            shown = _GREEK.get(head, head)  # beta_2 (--symbolic-params): β with subscript 2
            return self._el("msub", self._el("mi", shown), self._el("mrow", *self._sub_items(",".join(rest))))
        return self._el("mi", name)

    def _print_Float(self, expr: sp.Float) -> Element:
        text = short_float(float(expr), self._settings["digits"])
        if "e" in text:
            mant, exp = text.split("e")
            power = self._el("msup", self._el("mn", "10"), self._el("mn", str(int(exp))))
            return self._row(self._el("mn", mant), self._mo("·"), power)
        return self._el("mn", "−" + text[1:] if text.startswith("-") else text)

    def _print_Sigmoid(self, expr: sp.Basic) -> Element:
        return self._apply(self._el("mi", "σ"), *expr.args)

    def _print_Relu(self, expr: sp.Basic) -> Element:
        return self._apply(self._el("mi", "max"), sp.Integer(0), expr.args[0])

    def _print_Softplus(self, expr: sp.Basic) -> Element:
        power = self._el("msup", self._el("mi", "e"), self._print(expr.args[0]))
        return self._row(self._el("mi", "log"), self._paren(self._el("mn", "1"), self._mo("+"), power))

    def _print_exp(self, expr: sp.Basic) -> Element:
        return self._el("msup", self._el("mi", "e"), self._print(expr.args[0]))

    def _print_LogSumExp(self, expr: sp.Basic) -> Element:
        vec = _lse_vector(expr)
        if vec is not None:
            under = self._row(self._el("mi", "j"), self._mo("="), self._el("mn", "1"))
            total = self._el("munderover", self._mo("∑"), under, self._el("mn", str(vec[1])))
            z = self._name(NameParts("z", vec[0], "j"))
            return self._row(self._el("mi", "log"), total, self._el("msup", self._el("mi", "e"), z))
        terms: list[Element] = []
        for k, a in enumerate(expr.args):
            if k:
                terms.append(self._mo("+"))
            terms.append(self._el("msup", self._el("mi", "e"), self._print(a)))
        return self._row(self._el("mi", "log"), self._paren(*terms))

    def _print_Clip01(self, expr: sp.Basic) -> Element:
        return self._apply(self._el("msub", self._el("mi", "clip"), self._el("mi", "ε")), *expr.args)

    def _print_log1p(self, expr: sp.Basic) -> Element:
        return self._row(
            self._el("mi", "log"), self._paren(self._el("mn", "1"), self._mo("+"), self._print(expr.args[0]))
        )

    def _print_Heaviside(self, expr: sp.Basic) -> Element:
        h0 = _h0(expr)
        if h0 == 0:
            cond = self._row(self._print(expr.args[0]), self._mo(">"), self._el("mn", "0"))
            return self._el("msub", self._el("mn", "1"), cond)
        head = self._el("mi", "θ") if h0 == 1 else self._el("msub", self._el("mi", "θ"), self._print(h0))
        return self._apply(head, expr.args[0])

    def _print_Piecewise(self, expr: sp.Piecewise) -> Element:
        table = self._el("mtable")
        for value, cond in disjoint_cases(expr):
            when = self._el("mtd", self._el("mtext", "if\u00a0"), self._print(cond))
            table.appendChild(self._el("mtr", self._el("mtd", self._print(value)), when))
        return self._row(self._el("mo", "{"), table)

    def _print_Relational(self, expr: sp.Basic) -> Element:
        ops = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}
        return self._row(self._print(expr.lhs), self._mo(ops[expr.rel_op]), self._print(expr.rhs))

    def _print_And(self, expr: sp.Basic) -> Element:
        chain = interval_chain(expr)
        if chain is not None:
            lo, op1, s, op2, hi = chain
            ops = {"<": "<", "<=": "≤"}
            return self._row(self._print(lo), self._mo(ops[op1]), self._print(s), self._mo(ops[op2]), self._print(hi))
        return self._joined(expr.args, "and")

    def _print_Or(self, expr: sp.Basic) -> Element:
        return self._joined(expr.args, "or")

    def _joined(self, args: Iterable[sp.Basic], word: str) -> Element:
        """Conditions joined by a word: ``z > 0 and z < 2``."""
        items: list[Element] = []
        for k, a in enumerate(args):
            if k:
                items.append(self._el("mtext", f"\u00a0{word}\u00a0"))
            items.append(self._print(a))
        return self._row(*items)

    def _print_Sum(self, expr: sp.Sum) -> Element:
        (var, low, high), body = expr.limits[0], expr.function
        under = self._row(self._print(var), self._mo("="), self._print(low))
        total = self._el("munderover", self._mo("∑"), under, self._print(high))
        inner = self._paren(self._print(body)) if precedence(body) < PRECEDENCE["Mul"] else self._print(body)
        return self._row(total, inner)

    def _print_Partial(self, expr: sp.Basic) -> Element:
        num, den = (self._row(self._mo("∂"), self._print(a)) for a in expr.args)
        return self._el("mfrac", num, den)

    def _print_Hadamard(self, expr: sp.Basic) -> Element:
        left, right = (
            self._paren(self._print(a)) if precedence(a) < PRECEDENCE["Mul"] else self._print(a) for a in expr.args
        )
        return self._row(left, self._mo("⊙"), right)

    def _print_BatchMean(self, expr: sp.Basic) -> Element:
        arg = expr.args[0]
        body = self._paren(self._print(arg)) if precedence(arg) < PRECEDENCE["Mul"] else self._print(arg)
        mean = self._el("mfrac", self._el("mn", "1"), self._el("mi", "n"))
        return self._row(mean, self._el("munder", self._mo("∑"), self._el("mi", "k")), body)

    def _print_Deriv(self, expr: sp.Basic) -> Element:
        return self._el("mfrac", self._mo("∂"), self._row(self._mo("∂"), self._print(expr.args[0])))

    def _print_Ell(self, expr: sp.Basic) -> Element:
        return self._apply(self._el("mi", "ℓ"), *expr.args) if expr.args else self._el("mi", "ℓ")

    def _print_Act(self, expr: sp.Basic) -> Element:
        l, order, arg = expr.args
        head = self._el("msub", self._el("mi", "f"), self._el("mn", str(l)))
        if int(order):  # f₂′: the prime glyph is raised already; as a superscript it would sit over the f
            head = self._row(head, self._mo("′"))
        return self._apply(head, arg)

    def doprint(self, expr: sp.Basic) -> str:
        return serialize(self._print(expr))


def serialize(node: Node) -> str:
    """XML text of a printed MathML tree, every text node escaped (SymPy's own writer leaves ``<`` raw).

    SymPy stores some characters as entity names (``&InvisibleTimes;``); they are decoded to
    the characters themselves first, so the output holds no entity but ``&lt;``, ``&gt;``, ``&amp;``."""
    if node.nodeType == Node.TEXT_NODE:
        return html.escape(html.unescape(str(node.nodeValue)), quote=False)
    assert isinstance(node, Element)
    if node.tagName == "mo" and node.firstChild is not None and node.firstChild.nodeValue == "-":
        return "<mo>−</mo>"  # a minus sign, not a hyphen
    if node.tagName == "mn" and node.firstChild is not None and str(node.firstChild.nodeValue).startswith("-"):
        # a negative number is one token (no operator spacing between its sign and its digits)
        return f"<mn>−{html.escape(str(node.firstChild.nodeValue)[1:])}</mn>"
    attrs = "".join(f' {k}="{html.escape(v)}"' for k, v in sorted(node.attributes.items()))
    inner = "".join(serialize(c) for c in node.childNodes)
    return f"<{node.tagName}{attrs}>{inner}</{node.tagName}>"


@dataclass(frozen=True)
class Printers:
    """The three printers with one ``digits`` setting; each method tidies the expression first.

    ``scalar``: the scalar view of a one-unit chain (w², z², δ²: no unit index, transpose or ⊙)."""

    digits: int = DEFAULT_DIGITS
    scalar: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        return {"digits": self.digits, "scalar": self.scalar}

    def text(self, expr: sp.Expr) -> str:
        return str(TextPrinter(self.settings).doprint(tidy(expr, self.digits)))

    def latex(self, expr: sp.Expr) -> str:
        return str(LatexNotation(self.settings).doprint(tidy(expr, self.digits)))

    def mathml(self, expr: sp.Expr) -> str:
        """The expression's MathML content (no ``<math>`` wrapper)."""
        return MathMLNotation(self.settings).doprint(tidy(expr, self.digits))

    def text_factor(self, expr: sp.Expr) -> str:
        """Text of one factor of a product, parenthesized when it binds looser than ``*``."""
        expr = tidy(expr, self.digits)
        out = str(TextPrinter(self.settings).doprint(expr))
        return f"({out})" if precedence(expr) < PRECEDENCE["Mul"] else out

    def label(self, expr: sp.Expr) -> str:
        """Plain text for a picture's label: z², √(2), π, a middle dot for a product, a minus sign."""
        text = str(LabelPrinter(self.settings).doprint(tidy(expr, self.digits)))
        return text.replace("<=", "≤").replace(">=", "≥").translate(_LABEL_SIGNS)

    def latex_factor(self, expr: sp.Expr) -> str:
        printer = LatexNotation(self.settings)
        return str(printer.parenthesize(tidy(expr, self.digits), PRECEDENCE["Mul"], strict=True))


# ------------------------------------------------------------------ line breaking --
LINE_WIDTH = 44  # visual characters of math per line of a standalone document (11pt article, after the lhs)


def visual_width(latex: str) -> int:
    """A rough, generous count of the characters a LaTeX formula shows: a command (``\\cdot``,
    ``\\left``, ``\\,``) counts as one, braces, scripts' marks and spaces as none."""
    count, k = 0, 0
    while k < len(latex):
        c = latex[k]
        if c == "\\":
            end = k + 1
            while end < len(latex) and latex[end].isascii() and latex[end].isalpha():
                end += 1
            if end > k + 1 or latex[k + 1 : k + 2] in (",", ";", ":", "!"):
                count += 1  # a command, or a spacing command
                k = max(end, k + 2) if end == k + 1 else end
                continue
            k += 1  # an escaped character: the character counts below
            continue
        if c not in "{}^_ ":
            count += 1
        k += 1
    return count


_BREAKABLE_HEADS: dict[type, str] = {
    Sigmoid: r"\sigma",
    sp.tanh: r"\tanh",
    sp.log: r"\log",
    log1p: r"\log",
    sp.sin: r"\sin",
    sp.cos: r"\cos",
}


def _wrap(head: str, pieces: list[str], close: str) -> list[str]:
    if len(pieces) == 1:
        return [head + pieces[0] + close]
    return [head + pieces[0], *pieces[1:-1], pieces[-1] + close]


def latex_pieces(expr: sp.Expr, printer: LatexNotation, width: int = LINE_WIDTH) -> list[str]:
    """LaTeX of ``expr`` cut into pieces whose concatenation is the formula; a line may break between
    any two.  Only formulas wider than ``width`` are cut: between the terms of a sum, the factors of
    a product, and inside the argument of σ, tanh, log, exp, max, θ and powers (with \\bigl( \\bigr),
    which need not pair on one line)."""
    whole = str(printer.doprint(expr))
    if visual_width(whole) <= width:
        return [whole]

    def sub(e: sp.Expr) -> list[str]:
        return latex_pieces(e, printer, width)

    def paren(e: sp.Expr) -> list[str]:
        return _wrap(r"\bigl(", sub(e), r"\bigr)")

    if isinstance(expr, sp.Add):
        pieces: list[str] = []
        for k, term in enumerate(printer._as_ordered_terms(expr, order=None)):
            sign = ("+ " if k else "") if not term.could_extract_minus_sign() else "- "
            term_pieces = sub(-term if term.could_extract_minus_sign() else term)
            pieces += [sign + term_pieces[0], *term_pieces[1:]]
        return pieces
    if isinstance(expr, sp.Mul):
        coeff, factors = expr.as_coeff_mul()
        den = [f.base ** (-f.exp) for f in factors if f.is_Pow and f.exp.is_negative]
        num = [f for f in factors if not (f.is_Pow and f.exp.is_negative)]
        pieces = []
        if coeff != 1 and coeff != -1:
            pieces.append(printer._print(coeff))
        if den:
            pieces.append(rf"\frac{{1}}{{{printer.doprint(sp.Mul(*den))}}}")
        for f in num:
            pieces += paren(f) if precedence(f) < PRECEDENCE["Mul"] else sub(f)
        if coeff == -1:
            pieces[0] = "- " + pieces[0]
        return pieces
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return _wrap(r"\bigl(", sub(expr.base), rf"\bigr)^{{{expr.exp}}}")
    if isinstance(expr, sp.Sum) and len(expr.limits) == 1:
        var, low, high = expr.limits[0]
        head = rf"\sum_{{{printer._print(var)}={printer._print(low)}}}^{{{printer._print(high)}}} \bigl("
        return _wrap(head, sub(expr.function), r"\bigr)")
    if isinstance(expr, sp.exp):
        return _wrap(r"\exp\bigl(", sub(expr.args[0]), r"\bigr)")
    if isinstance(expr, Relu):
        return _wrap(r"\max\bigl(0, ", sub(expr.args[0]), r"\bigr)")
    if isinstance(expr, Softplus):
        return _wrap(r"\log\bigl(1 + \exp\bigl(", sub(expr.args[0]), r"\bigr)\bigr)")
    if isinstance(expr, sp.Heaviside):
        h0 = _h0(expr)
        if h0 == 0:
            return _wrap(r"\mathbf{1}\bigl[", sub(expr.args[0]), r" > 0\bigr]")
        head = r"\theta" if h0 == 1 else rf"\theta_{{{printer._print(h0)}}}"
        return _wrap(head + r"\bigl(", sub(expr.args[0]), r"\bigr)")
    if isinstance(expr, sp.Abs):
        return _wrap(r"\bigl|", sub(expr.args[0]), r"\bigr|")
    for kind, head in _BREAKABLE_HEADS.items():
        if isinstance(expr, kind):
            inner = sub(expr.args[0])  # type: ignore[attr-defined]
            return _wrap(head + r"\bigl(" + ("1 + " if kind is log1p else ""), inner, r"\bigr)")
    return [whole]


def factor_lines(factors: Sequence[sp.Expr], digits: int = DEFAULT_DIGITS, width: int = LINE_WIDTH) -> list[str]:
    """A product of factors as LaTeX lines joined by ``\\cdot``; a line may break before a dot or
    inside a long factor (:func:`latex_pieces`), never right after a dot."""
    printer = LatexNotation({"digits": digits})
    pieces: list[str] = []
    for k, f in enumerate(factors):
        f = tidy(f, digits)
        parts = latex_pieces(f, printer, width)
        if len(parts) == 1:
            parts = [str(printer.parenthesize(f, PRECEDENCE["Mul"], strict=True))]
        elif precedence(f) < PRECEDENCE["Mul"]:
            parts = _wrap(r"\bigl(", parts, r"\bigr)")
        if k:
            parts[0] = r"\cdot " + parts[0]
        pieces += parts
    lines: list[str] = []
    for piece in pieces:
        if lines and visual_width(lines[-1] + piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return lines


def latex_lines(expr: sp.Expr, digits: int = DEFAULT_DIGITS, width: int = LINE_WIDTH) -> list[str]:
    """``expr`` as LaTeX lines of at most about ``width`` visual characters (greedy fill of its pieces)."""
    printer = LatexNotation({"digits": digits})
    lines: list[str] = []
    current = ""
    for piece in latex_pieces(expr, printer, width):
        if current and visual_width(current + piece) > width:
            lines.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    return [*lines, current] if current else lines


# ------------------------------------------------------------------ the chain rule --
@dataclass(frozen=True)
class Equality:
    """``side_0 = side_1 = ...``, each side a product of factors printed in the given order."""

    sides: tuple[tuple[sp.Expr, ...], ...]
    digits: int = DEFAULT_DIGITS
    scalar: bool = False  # printed in the scalar view (one unit per layer)

    def text(self) -> str:
        p = Printers(self.digits, self.scalar)
        return " = ".join(
            p.text(side[0]) if len(side) == 1 else " * ".join(p.text_factor(f) for f in side) for side in self.sides
        )

    def latex(self) -> str:
        p = Printers(self.digits, self.scalar)
        return " = ".join(
            p.latex(side[0]) if len(side) == 1 else r" \cdot ".join(p.latex_factor(f) for f in side)
            for side in self.sides
        )

    def mathml(self) -> str:
        p = Printers(self.digits, self.scalar)
        dot = "<mo>·</mo>"
        sides = [dot.join(f"<mrow>{p.mathml(f)}</mrow>" for f in side) for side in self.sides]
        return "<mo>=</mo>".join(f"<mrow>{s}</mrow>" for s in sides)


def _unit(kind: Kind, layer: int, *sub: int | str, scalar: bool = False) -> Ref:
    return ref(kind, layer) if scalar else ref(kind, layer, *sub)


def chain_product(
    e: Entry, n_layers: int, softmax_output: bool, digits: int = DEFAULT_DIGITS, scalar: bool = False
) -> Equality:
    """∂C_k/∂w = ∂z/∂w · ∂a/∂z · ∂C_k/∂a for one parameter ``W2[1,3]`` / ``b1[2]`` (1-based), as in the
    paper, then the factors' values: a^(l-1)_i · f_l'(z^(l)_j) · ∂C_k/∂a^(l)_j.  On a softmax output the
    loss is differentiated in z directly: ∂C_k/∂w = ∂z/∂w · ∂C_k/∂z = a_i · δ_j."""
    l, j = e.layer, e.index[0]
    param = ref(e.kind, l, *e.index)
    z, a = ref(Kind.Z, l, j), ref(Kind.A, l, j)
    prev = None if len(e.index) == 1 else (ref(Kind.INPUT, 0, e.index[1]) if l == 1 else ref(Kind.A, l - 1, e.index[1]))
    dz = Partial(z, param)
    if softmax_output and l == n_layers:
        paper: tuple[sp.Expr, ...] = (dz, Partial(C_K, z))
        values: tuple[sp.Expr, ...] = (ref(Kind.DELTA, l, j),)
    else:
        paper = (dz, Partial(a, z), Partial(C_K, a))
        values = (Act(l, 1, z), ref(Kind.UPSTREAM, l, j))
    if prev is not None:
        values = (prev, *values)
    return Equality(((Partial(C_K, param),), paper, values), digits, scalar)


def whole_chain(e: Entry, sizes: Sequence[int], softmax_output: bool, digits: int = DEFAULT_DIGITS) -> Equality:
    """∂C_k/∂w as one product from the parameter up to the loss.

    One unit per layer (``sizes`` all 1): the whole derivative, e.g. ∂C/∂W^(1) = x · f_1'(z^(1)) ·
    W^(2) · f_2'(z^(2)) · ∂C/∂a^(2).  Wider layers: the term of one path (unit j of layer l, then
    unit 1 of every layer above), one of the terms the δ recursion sums; the caller labels it."""
    l, j = e.layer, e.index[0]
    i = e.index[1] if len(e.index) > 1 else None
    n = len(sizes) - 1
    scalar = all(s == 1 for s in sizes)
    param = _unit(e.kind, l, *e.index, scalar=scalar)
    factors: list[sp.Expr] = []
    if i is not None:
        factors.append(_unit(Kind.INPUT, 0, i, scalar=scalar) if l == 1 else _unit(Kind.A, l - 1, i, scalar=scalar))
    unit = j
    for k in range(l, n + 1):
        if k > l:
            factors.append(_unit(Kind.WEIGHT, k, 1, unit, scalar=scalar))
            unit = 1
        if k == n and softmax_output:
            factors.append(Partial(C_K, _unit(Kind.Z, k, unit, scalar=scalar)))
        else:
            factors.append(Act(k, 1, _unit(Kind.Z, k, unit, scalar=scalar)))
    if not softmax_output:
        factors.append(Partial(C_K, _unit(Kind.A, n, unit, scalar=scalar)))
    return Equality(((Partial(C_K, param),), tuple(factors)), digits, scalar)


def mathml_lines(expr: sp.Expr, digits: int = DEFAULT_DIGITS, width: int = 70) -> list[str]:
    """``expr`` as MathML fragments, one per line of at most about ``width`` characters.

    The cut points are those of :func:`latex_pieces` (terms of a sum, factors of a product,
    inside the argument of a function or power); an opening and its closing parenthesis may
    fall on different lines, which MathML allows (they are plain ``<mo>`` operators)."""
    expr = tidy(expr, digits)
    latex = LatexNotation({"digits": digits})
    mml = MathMLNotation({"digits": digits})

    def leaf(e: sp.Expr) -> tuple[str, int]:
        return mml.doprint(e), visual_width(str(latex.doprint(e)))

    def op(text: str) -> tuple[str, int]:
        return f"<mo>{html.escape(text)}</mo>", len(text)

    def wrap(head: list[tuple[str, int]], inner: list[tuple[str, int]], close: str) -> list[tuple[str, int]]:
        return [*head, op("("), *inner, op(close)]

    def pieces(e: sp.Expr) -> list[tuple[str, int]]:
        whole = leaf(e)
        if whole[1] <= width:
            return [whole]
        if isinstance(e, sp.Add):
            out: list[tuple[str, int]] = []
            for k, term in enumerate(latex._as_ordered_terms(e, order=None)):
                negative = term.could_extract_minus_sign()
                if negative or k:
                    out.append(op("−" if negative else "+"))
                out += pieces(-term if negative else term)
            return out
        if isinstance(e, sp.Mul):
            coeff, factors = e.as_coeff_mul()
            den = [f.base ** (-f.exp) for f in factors if f.is_Pow and f.exp.is_negative]
            num = [f for f in factors if not (f.is_Pow and f.exp.is_negative)]
            out = [op("−")] if coeff == -1 else ([leaf(coeff)] if coeff != 1 else [])
            if den:
                out.append(leaf(1 / sp.Mul(*den)))
            for f in num:
                out += wrap([], pieces(f), ")") if precedence(f) < PRECEDENCE["Mul"] else pieces(f)
            return out
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
            inner = wrap([], pieces(e.base), ")")
            last = inner[-1]
            inner[-1] = (f"<msup>{last[0]}<mn>{e.exp}</mn></msup>", last[1] + 1)
            return inner
        heads = {Sigmoid: "σ", sp.tanh: "tanh", sp.log: "log", sp.exp: "exp", Relu: "max", sp.Heaviside: "θ"}
        for kind, name in heads.items():
            if isinstance(e, kind) and not (kind is sp.Heaviside and _h0(e) == 0):
                head = [(f"<mi>{name}</mi>", len(name))] + ([("<mn>0</mn><mo>,</mo>", 2)] if kind is Relu else [])
                return wrap(head, pieces(e.args[0]), ")")
        return [whole]

    lines: list[str] = []
    current: list[str] = []
    used = 0
    for text, size in pieces(expr):
        glued = (bool(current) and current[-1] in ("<mo>(</mo>", "<mo>−</mo>", "<mo>+</mo>")) or text == "<mo>)</mo>"
        if current and used + size > width and not glued:  # never break after "(" or a sign, nor before ")"
            lines.append("".join(current))
            current, used = [], 0
        current.append(text)
        used += size
    if current:
        lines.append("".join(current))
    return lines


# Markdown renderers may treat a backslash before punctuation as an escape even inside
# math (GitHub drops the backslash of \{ in $...$), so no backslash-punctuation is emitted.
_MARKDOWN_SAFE: tuple[tuple[str, str], ...] = (
    (r"\\", r"\cr "),
    (r"\,", r"\ "),
    (r"\:", r"\ "),
    (r"\;", r"\ "),
    (r"\!", ""),
    (r"\{", r"\lbrace "),
    (r"\}", r"\rbrace "),
    (r"\|", r"\Vert "),
)


def markdown_math(latex: str) -> str:
    """One display formula for ``$$...$$`` on one line, without backslash-punctuation pairs."""
    for old, new in _MARKDOWN_SAFE:
        latex = latex.replace(old, new)
    return latex
