"""Textbook notation for symprop's formulas: printers for text, LaTeX and MathML.

The printers only change how an expression *reads*, never what it is:

* σ(z) for ``Sigmoid``, ``max(0, z)`` for ``Relu``, ``log(1 + e^z)`` for ``Softplus``,
  ``log Σ_j e^(z_j)`` for ``LogSumExp``, ``tanh`` as is;
* ``Heaviside(z, 0)`` (relu') as the indicator 1_{z>0}; any other ``Heaviside(z, h)``
  as θ(z) (θ_h(z) when h is not 1), whose value at 0 is stated once by :func:`legend`;
* a ``Piecewise`` as cases whose conditions are **disjoint** (SymPy's are read in
  order: the k-th case holds where its condition holds and no earlier one does;
  :func:`disjoint_cases` writes that out, e.g. ``-2 < z < 2``, ``z ≥ 2``);
* a ``Sum`` over one term (a one-unit layer) as that term, with the index set to 1;
* floats short: the shortest decimal that round-trips when it has at most ``digits``
  significant digits (0.1, 0.78125), else an exact simple fraction when the float is one
  (0.3333333333333333 -> 1/3, so 0.3333333333333333 z prints z/3), else ``digits``
  significant digits;
* symprop's symbol names as math: ``W2_1_3`` -> W^(2)_{1,3}, ``delta2_j`` -> δ^(2)_j,
  ``dC_da1_2`` -> ∂C_k/∂a^(1)_2; whole-layer names ``a1``, ``delta2``, ``W2T`` (transposed).

:func:`note_parts` splits an annotation such as ``"= (W2^T delta2)_i, the error sent down"``
into words and math tokens, so that renderers print the math as math, not as code.

Display-only functions (:class:`Partial`, :class:`Hadamard`, :class:`BatchMean`,
:class:`Act`) build the statements of the chain rule (∂C/∂w = ∂z/∂w · ∂a/∂z · ∂C/∂a, the
batch mean (1/n) Σ_k); they are never differentiated or emitted as code.

Invariant: every printer prints the same expression; nothing here evaluates user text
(symbol names come from validated specs and are printed through escaping serializers).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar
from xml.dom.minidom import Element, Node

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symprop.symbolic.functions import Relu, Sigmoid, Softplus, log1p

DEFAULT_DIGITS = 6
MAX_DENOMINATOR = 1000  # a float is printed as p/q when it is exactly the double nearest p/q, q <= this

__all__ = [
    "DEFAULT_DIGITS",
    "Act",
    "BatchMean",
    "Hadamard",
    "Partial",
    "Printers",
    "disjoint_cases",
    "latex_lines",
    "latex_name",
    "legend",
    "markdown_math",
    "mathml_lines",
    "note_latex",
    "note_parts",
    "text_name",
    "tidy",
]


# ------------------------------------------------------------- display-only functions --
class Partial(sp.Function):
    """∂num/∂den (two symbols): a factor of the chain rule as printed, never differentiated."""

    nargs = 2


class Hadamard(sp.Function):
    """u ⊙ v, the elementwise product of two layer vectors."""

    nargs = 2


class BatchMean(sp.Function):
    """(1/n) Σ_k of its argument: the batch mean of a per-sample quantity."""

    nargs = 1


class Act(sp.Function):
    """f_l(arg) (order 0) or f_l'(arg) (order 1): the activation of layer l, by name."""

    nargs = 3  # (l, order, arg)


# ------------------------------------------------------------------------- names --
_UNIT = re.compile(r"(W|b|z|a|delta)(\d+)(T?)(?:_([0-9a-z]+)(?:_([0-9a-z]+))?)?")
_XY = re.compile(r"([xy])(T?)_?([0-9]+|[a-z])?")
_GREEK = {"beta": "β", "mu": "μ", "sigma": "σ", "alpha": "α"}
_GREEK_LATEX = {"beta": r"\beta", "mu": r"\mu", "sigma": r"\sigma", "alpha": r"\alpha"}


@dataclass(frozen=True)
class NameParts:
    """A symbol name read as math: base, superscript (layer), subscript (units), transposed."""

    base: str  # "W", "δ", "x"...
    layer: str | None
    sub: str | None
    transposed: bool = False


def name_parts(name: str) -> NameParts | None:
    """``W2_1_3`` -> W, (2), 1,3; ``delta2_j`` -> δ, (2), j; ``a1T`` -> a, (1), transposed; else None."""
    m = _UNIT.fullmatch(name)
    if m:
        base, layer, t, j, i = m.groups()
        sub = None if j is None else (f"{j},{i}" if i else j)
        return NameParts("δ" if base == "delta" else base, layer, sub, bool(t))
    m = _XY.fullmatch(name)
    if m:
        return NameParts(m.group(1), None, m.group(3), bool(m.group(2)))
    for key in ("x_min", "x_max"):
        if name == key:
            return NameParts("x", None, key[2:])
    return None


def latex_name(name: str) -> str | None:
    """LaTeX for symprop's symbol names (``W2_1_3`` -> ``W^{(2)}_{1,3}``); None for other names."""
    if name.startswith("dC_d") and (inner := latex_name(name[4:])) is not None:
        return rf"\frac{{\partial C_k}}{{\partial {inner}}}"
    if name == "C_k":
        return "C_k"
    if name in _GREEK_LATEX:
        return _GREEK_LATEX[name]
    parts = name_parts(name)
    if parts is None:
        return None
    head = r"\delta" if parts.base == "δ" else parts.base
    if parts.sub in ("min", "max"):
        return rf"{head}_{{\{parts.sub}}}"
    sup = [f"({parts.layer})"] * (parts.layer is not None) + [r"\top"] * parts.transposed
    out = head + (f"^{{{''.join(sup)}}}" if sup else "")
    return out + (f"_{{{parts.sub}}}" if parts.sub is not None else "")


def text_name(name: str) -> str:
    """The text name of a symbol: ``dC_da1_2`` reads ``dC_k/da1_2``; others unchanged."""
    return "dC_k/d" + name[4:] if name.startswith("dC_d") else name


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
    """Set a generic unit index in symprop's names: ``a2_j`` -> ``a2_1`` for j = 1."""
    subs = {}
    for s in expr.free_symbols:
        parts = s.name.split("_")
        if index in parts[1:]:
            subs[s] = sp.Symbol("_".join(str(value) if p == index else p for p in parts), **s.assumptions0)
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
            out.append("1_{z>0} is 1 where z > 0 and 0 elsewhere (so the derivative of relu at 0 is taken as 0).")
        else:
            name = "θ(z)" if h0 == 1 else f"θ_{h0}(z)"
            out.append(f"{name} is the unit step: 1 for z > 0, 0 for z < 0, and {name.replace('(z)', '(0)')} = {h0}.")
    return tuple(out)


# ------------------------------------------------------------------------ notes --
_NOTE_TOKEN = re.compile(
    r"dC(?:_k)?/d[Wb]\d+\[[0-9,]+\]"  # dC/dW2[1,3]
    r"|dC_k/d(?:[a-zA-Z]+\d*(?:_[0-9a-z]+)*)"  # dC_k/da5_j
    r"|\b(?:W|b|z|a|delta)\d+(?:\^T)?(?:_[0-9a-z]+)*'?(?:\([^()]*\))?"  # a2_j, W2^T, delta2
    r"|\bf\d+'?(?:\((?:[a-z]+\d*(?:_[0-9a-z]+)*)\))?"  # f2(z2_j), f5'(z5_j)
    r"|\((?:W|b|z|a|delta)\d+\^T (?:W|b|z|a|delta)\d+\)_[a-z]"  # (W5^T delta5)_i
    r"|\b[xy]_?[0-9a-z]?\b(?=[ ,;)]|$)"  # x, y_j
)


def note_parts(note: str) -> list[tuple[str, str]]:
    """Split an annotation into ("text", words) and ("math", LaTeX) parts."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _NOTE_TOKEN.finditer(note):
        latex = _token_latex(m.group(0))
        if latex is None:
            continue
        if m.start() > pos:
            out += _note_words(note[pos : m.start()])
        out.append(("math", latex))
        pos = m.end()
    if pos < len(note):
        out += _note_words(note[pos:])
    return out


def _note_words(text: str) -> list[tuple[str, str]]:
    """Words of a note; a product sign `` * `` between two math tokens becomes a centre dot."""
    if text == " * ":
        return [("text", " "), ("math", r"\cdot"), ("text", " ")]
    return [("text", text)]


def _token_latex(token: str) -> str | None:
    m = re.fullmatch(r"\((\w+)\^T (\w+)\)_([a-z])", token)
    if m:
        left, right = latex_name(m.group(1) + "T"), latex_name(m.group(2))
        return rf"\left({left} {right}\right)_{{{m.group(3)}}}" if left and right else None
    m = re.fullmatch(r"dC(_k)?/d([Wb])(\d+)\[([0-9,]+)\]", token)
    if m:
        inner = latex_name(f"{m.group(2)}{m.group(3)}_{m.group(4).replace(',', '_')}")
        return rf"\frac{{\partial C{'_k' if m.group(1) else ''}}}{{\partial {inner}}}"
    if token.startswith("dC_k/d"):
        return latex_name("dC_d" + token[len("dC_k/d") :])
    m = re.fullmatch(r"f(\d+)('?)(?:\((.*)\))?", token)
    if m:
        arg = (latex_name(m.group(3)) or (m.group(3) if len(m.group(3)) == 1 else None)) if m.group(3) else None
        head = f"f_{{{m.group(1)}}}{m.group(2)}"
        return head + (rf"\left({arg}\right)" if arg else "")
    m = re.fullmatch(r"(\w+?)(\^T)?", token)
    if m:
        return latex_name(m.group(1) + ("T" if m.group(2) else ""))
    return None


def _latex_words(text: str) -> str:
    text = re.sub(r"([_%&#${}])", r"\\\1", text)
    text = text.replace("^", r"\^{}").replace("~", r"\~{}")
    return re.sub(r"(\\_|[(,=/])", r"\1\\allowbreak{}", text)  # long code-like words may break


def note_latex(note: str) -> str:
    """An annotation as LaTeX text mode: words escaped, math tokens in $...$."""
    return "".join(_latex_words(t) if kind == "text" else f"${t}$" for kind, t in note_parts(note))


# Prose of explain and the worked example that names math in ASCII, and its LaTeX (regex, replacement).
_PROSE_MATH: tuple[tuple[str, str], ...] = (
    (r"-sum_j y_j log softmax\(z\)_j", r"-\sum_j y_j \log \operatorname{softmax}(z)_j"),
    (r"delta\{l\}_j", r"\delta^{(l)}_j"),
    (r"dC_k/dz\{l\}_j", r"\partial C_k/\partial z^{(l)}_j"),
    (r"dC/dW\{l\}\[j,i\]", r"\partial C/\partial W^{(l)}_{j,i}"),
    (r"dC_k/dW\{l\}_j_i", r"\partial C_k/\partial W^{(l)}_{j,i}"),
    (r"\(1/n\) (?:Σ|sum)_k", r"\frac{1}{n}\sum_k"),
    (r"(?:Σ|sum)_([a-z])\b", r"\sum_\1"),
    (r"\|W_l\|\^2", r"\lVert W_l\rVert^2"),
    (r"∂C/∂W_ji", r"\partial C/\partial W_{ji}"),
    (r"∂C/∂b_j", r"\partial C/\partial b_j"),
    (r"∂C/∂([wz])", r"\partial C/\partial \1"),
    (r"\bC_k\b", r"C_k"),
    (r"\blayer l-1\b", r"layer $l-1$"),
    (r" -> ", r" \to "),
    (r"δ_j", r"\delta_j"),
    (r"δ", r"\delta"),
    (r"η", r"\eta"),
    (r"σ", r"\sigma"),
    (r"θ", r"\theta"),
    (r"←", r"\leftarrow"),
    (r"−", r"-"),
    (r"·", r"\cdot"),
    (r"²", r"^2"),
    (r"≤", r"\le"),
    (r"≥", r"\ge"),
    (r"Σ", r"\sum"),
)
_PROSE = re.compile("|".join(f"(?:{pattern})" for pattern, _ in _PROSE_MATH))


def prose_latex(text: str) -> str:
    """A sentence for LaTeX text mode: the math it names in ASCII or Unicode (``delta{l}_j``, ``sum_k``,
    ``->``, δ, η) typeset as math, other math tokens as :func:`note_latex` does, words escaped."""
    out = []
    pos = 0
    for m in _PROSE.finditer(text):
        for pattern, replacement in _PROSE_MATH:
            hit = re.fullmatch(pattern, m.group(0))
            if hit:
                math = replacement.replace("\\1", hit.group(1)) if hit.groups() else replacement
                break
        out.append(note_latex(text[pos : m.start()]))
        out.append(math if math.startswith("layer $") else f"${math}$")
        pos = m.end()
    out.append(note_latex(text[pos:]))
    return "".join(out).replace("–", "--")


# ------------------------------------------------------------------------ printers --
def _h_name(h0: sp.Expr) -> str:
    return "θ" if h0 == 1 else f"θ_{h0}"


def _lse_vector(expr: sp.Basic) -> tuple[str, int] | None:
    """LogSumExp(z2_1, ..., z2_K) -> ("2", K): the arguments are one layer's z, in order."""
    names = [a.name if isinstance(a, sp.Symbol) else "" for a in expr.args]
    m = re.fullmatch(r"z(\d+)_1", names[0]) if names else None
    if m is None:
        return None
    layer = m.group(1)
    if names != [f"z{layer}_{k}" for k in range(1, len(names) + 1)]:
        return None
    return layer, len(names)


class TextPrinter(StrPrinter):
    """Plain text in textbook notation; symbols keep symprop's names (``a2_j``, ``dC_k/da1_2``)."""

    _default_settings: ClassVar[dict[str, Any]] = {**StrPrinter._default_settings, "digits": DEFAULT_DIGITS}

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return text_name(expr.name)

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

    def _print_Partial(self, expr: sp.Basic) -> str:
        return f"d{self._print(expr.args[0])}/d{self._print(expr.args[1])}"

    def _print_Hadamard(self, expr: sp.Basic) -> str:
        return " ⊙ ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_BatchMean(self, expr: sp.Basic) -> str:
        return f"(1/n) Σ_k {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])}"

    def _print_Act(self, expr: sp.Basic) -> str:
        l, order, arg = expr.args
        return f"f{l}{chr(39) * int(order)}({self._print(arg)})"


class LatexNotation(LatexPrinter):
    """LaTeX in textbook notation, with symprop's names (W^{(2)}_{1,3}) and functions."""

    _default_settings: ClassVar[dict[str, Any]] = {**LatexPrinter._default_settings, "digits": DEFAULT_DIGITS}

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name = latex_name(expr.name)
        return name if name is not None else str(super()._print_Symbol(expr, style))

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


class MathMLNotation(MathMLPresentationPrinter):
    """MathML (presentation, MathML Core elements only) in textbook notation."""

    _default_settings: ClassVar[dict[str, Any]] = {
        **MathMLPresentationPrinter._default_settings,
        "digits": DEFAULT_DIGITS,
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
        if name.startswith("dC_d") and name_parts(name[4:]) is not None:
            return self._print_Partial(sp.Function("Partial")(sp.Symbol("C_k"), sp.Symbol(name[4:])))
        if name in _GREEK:
            return self._el("mi", _GREEK[name])
        if name == "C_k":
            return self._el("msub", self._el("mi", "C"), self._el("mi", "k"))
        parts = name_parts(name)
        if parts is not None:
            return self._name(parts)
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
        if text.startswith("-"):
            return self._row(self._mo("−"), self._el("mn", text[1:]))
        return self._el("mn", text)

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
        items: list[Element] = []
        for k, a in enumerate(expr.args):
            if k:
                items.append(self._el("mtext", "\u00a0and\u00a0"))
            items.append(self._print(a))
        return self._row(*items)

    def _print_Or(self, expr: sp.Basic) -> Element:
        items: list[Element] = []
        for k, a in enumerate(expr.args):
            if k:
                items.append(self._el("mtext", "\u00a0or\u00a0"))
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
        return f"<mrow><mo>−</mo><mn>{html.escape(str(node.firstChild.nodeValue)[1:])}</mn></mrow>"
    attrs = "".join(f' {k}="{html.escape(v)}"' for k, v in sorted(node.attributes.items()))
    inner = "".join(serialize(c) for c in node.childNodes)
    return f"<{node.tagName}{attrs}>{inner}</{node.tagName}>"


@dataclass(frozen=True)
class Printers:
    """The three printers with one ``digits`` setting; each method tidies the expression first."""

    digits: int = DEFAULT_DIGITS

    def text(self, expr: sp.Expr) -> str:
        return str(TextPrinter({"digits": self.digits}).doprint(tidy(expr, self.digits)))

    def latex(self, expr: sp.Expr) -> str:
        return str(LatexNotation({"digits": self.digits}).doprint(tidy(expr, self.digits)))

    def mathml(self, expr: sp.Expr) -> str:
        """The expression's MathML content (no ``<math>`` wrapper)."""
        return MathMLNotation({"digits": self.digits}).doprint(tidy(expr, self.digits))

    def text_factor(self, expr: sp.Expr) -> str:
        """Text of one factor of a product, parenthesized when it binds looser than ``*``."""
        expr = tidy(expr, self.digits)
        out = str(TextPrinter({"digits": self.digits}).doprint(expr))
        return f"({out})" if precedence(expr) < PRECEDENCE["Mul"] else out

    def latex_factor(self, expr: sp.Expr) -> str:
        printer = LatexNotation({"digits": self.digits})
        return str(printer.parenthesize(tidy(expr, self.digits), PRECEDENCE["Mul"], strict=True))


# ------------------------------------------------------------------ line breaking --
LINE_WIDTH = 44  # visual characters of math per line of a standalone document (11pt article, after the lhs)


def visual_width(latex: str) -> int:
    """A rough, generous count of the characters a LaTeX formula shows (commands count as one)."""
    text = re.sub(r"\\(left|right|bigl|bigr|Bigl|Bigr|quad|cdot|,|;|:|!)", "x", latex)
    text = re.sub(r"\\[a-zA-Z]+", "x", text)
    return len(re.sub(r"[{}^_ \\]", "", text))


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
C_K = sp.Symbol("C_k")


@dataclass(frozen=True)
class Statement:
    """``side_0 = side_1 = ...``, each side a product of factors printed in the given order."""

    sides: tuple[tuple[sp.Expr, ...], ...]
    digits: int = DEFAULT_DIGITS

    def text(self) -> str:
        p = Printers(self.digits)
        return " = ".join(
            p.text(side[0]) if len(side) == 1 else " * ".join(p.text_factor(f) for f in side) for side in self.sides
        )

    def latex(self) -> str:
        p = Printers(self.digits)
        return " = ".join(
            p.latex(side[0]) if len(side) == 1 else r" \cdot ".join(p.latex_factor(f) for f in side)
            for side in self.sides
        )

    def mathml(self) -> str:
        p = Printers(self.digits)
        dot = "<mo>·</mo>"
        sides = [dot.join(f"<mrow>{p.mathml(f)}</mrow>" for f in side) for side in self.sides]
        return "<mo>=</mo>".join(f"<mrow>{s}</mrow>" for s in sides)


def chain_product(label: str, n_layers: int, softmax_output: bool, digits: int = DEFAULT_DIGITS) -> Statement:
    """∂C_k/∂w = ∂z/∂w · ∂a/∂z · ∂C_k/∂a for one parameter ``W2[1,3]`` / ``b1[2]`` (1-based), as in the
    paper, then the factors' values: a^(l-1)_i · f_l'(z^(l)_j) · ∂C_k/∂a^(l)_j.  On a softmax output the
    loss is differentiated in z directly: ∂C_k/∂w = ∂z/∂w · ∂C_k/∂z = a_i · δ_j."""
    m = re.fullmatch(r"([Wb])(\d+)\[(\d+)(?:,(\d+))?\]", label)
    if m is None:
        raise ValueError(f"not a parameter label: {label!r}")
    array, layer, j, i = m.groups()
    l = int(layer)
    param = sp.Symbol(f"{array}{l}_{j}" + (f"_{i}" if i else ""))
    z, a = sp.Symbol(f"z{l}_{j}"), sp.Symbol(f"a{l}_{j}")
    prev = None if i is None else sp.Symbol(f"x{i}" if l == 1 else f"a{l - 1}_{i}")
    dz = Partial(z, param)
    if softmax_output and l == n_layers:
        paper: tuple[sp.Expr, ...] = (dz, Partial(C_K, z))
        values: tuple[sp.Expr, ...] = (sp.Symbol(f"delta{l}_{j}"),)
    else:
        paper = (dz, Partial(a, z), Partial(C_K, a))
        values = (Act(l, 1, z), sp.Symbol(f"dC_da{l}_{j}"))
    if prev is not None:
        values = (prev, *values)
    return Statement(((Partial(C_K, param),), paper, values), digits)


def whole_chain(label: str, sizes: Sequence[int], softmax_output: bool, digits: int = DEFAULT_DIGITS) -> Statement:
    """∂C_k/∂w as one product from the parameter up to the loss.

    One unit per layer (``sizes`` all 1): the whole derivative, e.g. ∂C/∂W^(1) = x · f_1'(z^(1)) ·
    W^(2) · f_2'(z^(2)) · ∂C/∂a^(2).  Wider layers: the term of one path (unit j of layer l, then
    unit 1 of every layer above), one of the terms the δ recursion sums; the caller labels it."""
    m = re.fullmatch(r"([Wb])(\d+)\[(\d+)(?:,(\d+))?\]", label)
    if m is None:
        raise ValueError(f"not a parameter label: {label!r}")
    array, layer, j, i = m.groups()
    l, n = int(layer), len(sizes) - 1
    scalar = all(s == 1 for s in sizes)

    def name(base: str, k: int, unit: int | str, below: int | str | None = None) -> sp.Symbol:
        if scalar:
            return sp.Symbol(f"{base}{k}")
        return sp.Symbol(f"{base}{k}_{unit}" + (f"_{below}" if below is not None else ""))

    param = name(array, l, j, i if array == "W" else None)
    factors: list[sp.Expr] = []
    if i is not None:
        factors.append(sp.Symbol("x" if scalar else f"x{i}") if l == 1 else name("a", l - 1, i))
    unit: int | str = j
    for k in range(l, n + 1):
        if k > l:
            factors.append(name("W", k, 1, unit))
            unit = 1
        if k == n and softmax_output:
            factors.append(Partial(C_K, name("z", k, unit)))
        else:
            factors.append(Act(k, 1, name("z", k, unit)))
    if not softmax_output:
        factors.append(Partial(C_K, name("a", n, unit)))
    return Statement(((Partial(C_K, param),), tuple(factors)), digits)


def scalar_view(n_layers: int, softmax_output: bool, digits: int = DEFAULT_DIGITS) -> list[Statement]:
    """The chain rule of a one-unit-per-layer network, in scalars: no ⊙, ᵀ, unit indices or sums."""
    out = []
    for l in range(1, n_layers + 1):
        prev = sp.Symbol("x") if l == 1 else sp.Symbol(f"a{l - 1}")
        z = sp.Symbol(f"z{l}")
        out.append(Statement(((z,), (sp.Symbol(f"W{l}") * prev + sp.Symbol(f"b{l}"),)), digits))
        out.append(Statement(((sp.Symbol(f"a{l}"),), (Act(l, 0, z),)), digits))
    for l in range(n_layers, 0, -1):
        z, delta = sp.Symbol(f"z{l}"), sp.Symbol(f"delta{l}")
        if l == n_layers:
            rhs: tuple[sp.Expr, ...] = (
                (Partial(C_K, z),) if softmax_output else (Partial(C_K, sp.Symbol(f"a{l}")), Act(l, 1, z))
            )
        else:
            rhs = (Act(l, 1, z), sp.Symbol(f"W{l + 1}"), sp.Symbol(f"delta{l + 1}"))
        out.append(Statement(((delta,), rhs), digits))
    for l in range(1, n_layers + 1):
        prev = sp.Symbol("x") if l == 1 else sp.Symbol(f"a{l - 1}")
        delta = sp.Symbol(f"delta{l}")
        out.append(Statement(((Partial(C_K, sp.Symbol(f"W{l}")),), (delta, prev)), digits))
        out.append(Statement(((Partial(C_K, sp.Symbol(f"b{l}")),), (delta,)), digits))
    return out


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
