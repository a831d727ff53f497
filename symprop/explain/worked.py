"""The worked example: one sample through the network, every number written out.

For a problem (the params of ``--params P.npz`` or the seeded random ones of
:func:`symprop.tools.check.random_problem`, one sample from ``--sample "x1,...;y1,..."`` or
the seeded one) this module lists every W and b value, then one *substitution line* per z, a
and δ (``δ^(3)_1 = 0.465·(1 − 0.465)·(0.465 − 0.947) = −0.119``), each gradient, and one
gradient-descent step ``w ← w − η ∂C/∂w`` with the cost before and after it.

One numeric path: every value comes from :func:`symprop.ir.interpret.run`, the evaluator of
the same IR the generated modules are printed from (the tests compare it with the emitted
NumPy module); the lines only *show* a formula with numbers in it, whose value printed after
the last ``=`` is the program's.  With one sample the program's ``D`` (∂C/∂Z of the batch
mean, δ/n) is δ itself.

Rows are built once as SymPy factors (numbers as :class:`Num`) and printed as text, LaTeX
(Markdown, standalone documents) or MathML (the report).  Wide layers are abridged: at most
:data:`MAX_UNITS` lines per layer and :data:`MAX_TERMS` terms per sum, said where it happens.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence

from symprop.explain.notation import (
    LINE_WIDTH,
    LatexNotation,
    Partial,
    Printers,
    latex_pieces,
    markdown_math,
    note_html,
    note_markdown,
    note_text,
    short_float,
    tidy,
    visual_width,
    words_latex,
)
from symprop.ir.backprop import derive
from symprop.ir.interpret import run
from symprop.ir.names import Kind, bias, grad_of, weight
from symprop.ir.notes import C_K, Note, Op, Ref, note, ref, softmax_cost
from symprop.ir.notes import C as C_REF
from symprop.spec import Spec
from symprop.symbolic.layer_math import A, Y, Z, per_unit_loss
from symprop.tools.check import random_problem

DEFAULT_LR = 0.1  # the step of the one gradient-descent update shown (--lr)
DEFAULT_DIGITS = 4  # significant digits of the worked numbers (a student redoes them by hand)
MAX_UNITS = 6  # substitution lines per layer; more units are abridged (their values are in the tables)
MAX_TERMS = 4  # terms of a weighted sum written out; longer sums show the first and last ones
MAX_LISTED = 60  # arrays with more entries are summarised in the tables


class WorkedError(ValueError):
    """Bad --params / --sample / --lr: one line, exit 2 on the command line."""


# ------------------------------------------------------------------ the problem --
@dataclass(frozen=True)
class Problem:
    params: dict[str, np.ndarray]
    x: np.ndarray  # (inputs,)
    y: np.ndarray  # (outputs,)
    source: str  # one sentence: where the numbers come from


def load_params(path: str | Path, spec: Spec) -> dict[str, np.ndarray]:
    """The parameter arrays of a params file (:mod:`symprop.tools.paramfile`: the one reader, which
    refuses params saved for another spec), and every value finite: a worked example shows numbers."""
    from symprop.io import show
    from symprop.tools.paramfile import ParamsError
    from symprop.tools.paramfile import load_params as read

    try:
        params = read(path, spec).params
    except ParamsError as exc:
        raise WorkedError(str(exc)) from None
    for k, a in params.items():
        if not np.all(np.isfinite(a)):
            raise WorkedError(f"--params {show(path)}: {k} has a value that is not a finite number")
    return params


def _numbers(text: str, want: int, what: str) -> np.ndarray:
    parts = [t.strip() for t in text.split(",")] if text.strip() else []
    if len(parts) != want:
        raise WorkedError(f"--sample: {len(parts)} {what} value(s), the spec needs {want}; write x1,...,xd;y1,...,ym")
    values = []
    for t in parts:
        try:
            v = float(t)
        except ValueError:
            raise WorkedError(f"--sample: {t[:20]!r} is not a number; write x1,...,xd;y1,...,ym") from None
        if not math.isfinite(v):
            raise WorkedError(f"--sample: {t[:20]!r} is not a finite number")
        values.append(v)
    return np.array(values, dtype=np.float64)


def parse_sample(text: str, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """``"x1,...,xd;y1,...,ym"`` as (x, y), checked against the spec and its loss."""
    if text.count(";") != 1:
        raise WorkedError(f"--sample: expected inputs and targets separated by one ';', e.g. {_example(spec)!r}")
    xs, ys = text.split(";")
    x, y = _numbers(xs, spec.inputs, "input"), _numbers(ys, spec.outputs, "target")
    if spec.loss == "bce" and not np.all((y >= 0) & (y <= 1)):
        raise WorkedError("--sample: bce targets must lie in [0, 1]")
    if spec.loss == "softmax_ce" and not np.all(y >= 0):
        raise WorkedError("--sample: softmax_ce targets must be >= 0 (one-hot or class weights)")
    return x, y


def _example(spec: Spec) -> str:
    return ",".join(["0.5"] * spec.inputs) + ";" + ",".join(["1"] + ["0"] * (spec.outputs - 1))


def problem(spec: Spec, params: str | Path | None = None, sample: str | None = None, seed: int = 0) -> Problem:
    """The numbers of the worked example; what is not given is drawn with ``seed`` (and said so)."""
    if seed < 0:
        raise WorkedError(f"--at must be a seed >= 0, got {seed}")
    drawn, X, Yv = random_problem(spec, seed, n=1)
    given = []
    if params is not None:
        drawn = load_params(params, spec)
        given.append(f"the params of {Path(params).name}")
    x, y = X[0], Yv[0]
    if sample is not None:
        x, y = parse_sample(sample, spec)
        given.append("the sample given with --sample")
    random = []
    if params is None:
        random.append("params (weights ~ N(0, 1/fan-in), biases ~ N(0, 1/4))")
    if sample is None:
        random.append("the sample (x ~ N(0, 1), y valid for the loss)")
    source = "Worked example on " + (" and ".join(given) if given else "a seeded random problem")
    if random:
        options = " and ".join(o for o, r in (("--params P.npz", params is None), ("--sample", sample is None)) if r)
        source += (
            f"; {' and '.join(random)} drawn by symprop.tools.check.random_problem(spec, seed={seed}, n=1)"
            f" (choose them with {options})"
        )
    return Problem(drawn, x, y, source)


# ----------------------------------------------------------------- the numbers --
@dataclass(frozen=True)
class Worked:
    spec: Spec
    problem: Problem
    lr: float
    z: tuple[np.ndarray, ...]  # per layer, (units,)
    a: tuple[np.ndarray, ...]  # a[0] = x, then per layer
    delta: tuple[np.ndarray, ...]  # per layer
    loss: float
    grads: dict[str, np.ndarray]
    updated: dict[str, np.ndarray]
    loss_after: float
    values: dict[str, Any] = field(repr=False)  # every variable of the program's loss_and_grad


def compute(spec: Spec, prob: Problem, lr: float = DEFAULT_LR) -> Worked:
    """Forward, backward and one update of one sample, by the IR interpreter."""
    if not (math.isfinite(lr) and lr > 0):
        raise WorkedError(f"--lr must be a finite number > 0, got {lr}")
    program = derive(spec)
    X, Yv = prob.x[None, :], prob.y[None, :]
    v = run(program, prob.params, X, Yv)
    L = len(spec.layers)
    grads = {k: np.asarray(v[grad_of(k)], dtype=np.float64) for k in spec.param_shapes}
    updated = {k: prob.params[k] - lr * grads[k] for k in spec.param_shapes}
    after = run(program, updated, X, Yv, function="loss")
    return Worked(
        spec,
        prob,
        lr,
        tuple(np.asarray(v[f"Z{l}"])[0] for l in range(1, L + 1)),
        (prob.x, *(np.asarray(v[f"A{l}"])[0] for l in range(1, L + 1))),
        tuple(np.asarray(v[f"D{l}"])[0] for l in range(1, L + 1)),  # n = 1: D = δ/n = δ
        float(v["C"]),
        grads,
        updated,
        float(after["C"]),
        v,
    )


# ----------------------------------------------------------------- the rows --
class Num(sp.Symbol):
    """A number substituted into a formula; negative numbers print in parentheses.

    Its name is ``key|text``: ``key`` (the replaced symbol's name) keeps SymPy's ordering of
    the formula's terms (a − y stays a − y), ``text`` is what prints."""

    @property
    def text(self) -> str:
        return self.name.split("|", 1)[1]

    def _sympystr(self, printer: Any) -> str:
        return f"({self.text})" if self.text.startswith("-") else self.text

    def _latex(self, printer: Any) -> str:
        return f"({self.text})" if self.text.startswith("-") else self.text

    def _mathml_presentation(self, printer: Any) -> Any:
        return _mathml_number(printer.dom, self.text, paren=True)


class BareNum(Num):
    """A number alone inside a function's parentheses: σ(−0.3), not σ((−0.3))."""

    def _sympystr(self, printer: Any) -> str:
        return self.text

    def _latex(self, printer: Any) -> str:
        return self.text

    def _mathml_presentation(self, printer: Any) -> Any:
        return _mathml_number(printer.dom, self.text, paren=False)


def _mathml_number(dom: Any, text: str, paren: bool) -> Any:
    def el(tag: str, content: str) -> Any:
        node = dom.createElement(tag)
        node.appendChild(dom.createTextNode(content))
        return node

    if not text.startswith("-"):
        return el("mn", text)
    number = el("mn", "−" + text[1:])  # one token: no operator spacing between the sign and the digits
    if not paren:
        return number
    row = dom.createElement("mrow")
    for node in (el("mo", "("), number, el("mo", ")")):
        row.appendChild(node)
    return row


def num(value: float, digits: int, key: str = "") -> Num:
    return Num(f"{key}|{short_float(float(value), digits)}")


@dataclass(frozen=True)
class Value:
    """A number standing alone (a value after the last ``=``): no parentheses."""

    text: str


Term = tuple[str, tuple[Any, ...]]  # (sign "+", "-" or "", factors of a product)


@dataclass(frozen=True)
class Row:
    """``lhs = side = side ...``; a side is a sum of terms, each a product of factors."""

    lhs: sp.Expr
    sides: tuple[tuple[Term, ...], ...]
    arrow: bool = False  # an update: lhs ← side


def _side(*factors: Any) -> tuple[Term, ...]:
    return (("", tuple(factors)),)


CDOTS = sp.Symbol("cdots")  # an ellipsis in a sum (printed ⋯)
C_AFTER = sp.Symbol("C_after")  # the cost after the update
_KINDS = {"z": Kind.Z, "a": Kind.A, "delta": Kind.DELTA, "b": Kind.BIAS}


@dataclass(frozen=True)
class Block:
    """A titled group of rows, with sentences before them."""

    title: str
    notes: tuple[str | Note, ...]
    rows: tuple[Row, ...]
    scalar: bool = False  # one unit per layer: printed in the scalar view (w², no unit index)


def _unit_name(base: str, l: int, j: int, scalar: bool) -> Ref:
    return ref(_KINDS[base], l) if scalar else ref(_KINDS[base], l, j)


def _w_name(l: int, j: int, i: int, scalar: bool) -> Ref:
    return ref(Kind.WEIGHT, l) if scalar else ref(Kind.WEIGHT, l, j, i)


def _shown(n: int, limit: int) -> list[int | None]:
    """0-based indices written out (None: an ellipsis), first ones and the last."""
    if n <= limit:
        return list(range(n))
    return [*range(limit - 1), None, n - 1]


def _sum_terms(pairs: Sequence[tuple[sp.Expr, sp.Expr]], extra: sp.Expr | None = None) -> tuple[Term, ...]:
    terms: list[Term] = []
    for k in _shown(len(pairs), MAX_TERMS):
        terms.append(("+" if terms else "", (CDOTS,) if k is None else pairs[k]))
    if extra is not None:
        terms.append(("+", (extra,)))
    return tuple(terms)


def _subst(expr: sp.Expr, values: Mapping[sp.Symbol, float], digits: int) -> sp.Expr:
    """``expr`` with numbers for symbols; a number alone inside a function's parentheses prints bare."""
    out = expr.xreplace({s: num(v, digits, s.name) for s, v in values.items()})
    return out.replace(
        lambda e: isinstance(e, sp.Function) and len(e.args) == 1 and type(e.args[0]) is Num,
        lambda e: e.func(BareNum(e.args[0].name)),
    )


def _as_parts(words: str | Note) -> tuple[Any, ...]:
    return words.parts if isinstance(words, Note) else (words,)


def is_scalar_chain(spec: Spec) -> bool:
    """Every layer (and the input) has one unit: the scalar view, no unit indices."""
    return spec.inputs == 1 and all(layer.units == 1 for layer in spec.layers)


def blocks(w: Worked, digits: int = DEFAULT_DIGITS) -> list[Block]:
    """The worked example as titled rows (see the module docstring)."""
    spec = w.spec
    program = derive(spec)
    L = len(spec.layers)
    scalar = is_scalar_chain(spec)
    d = digits
    P = w.problem.params
    out: list[Block] = []

    def val(x: float) -> tuple[Term, ...]:
        return _side(Value(short_float(float(x), d)))

    def x_name(i: int) -> Ref:
        return ref(Kind.INPUT) if scalar else ref(Kind.INPUT, 0, i)

    def y_name(j: int) -> Ref:
        return ref(Kind.TARGET) if scalar else ref(Kind.TARGET, 0, j)

    # the numbers given
    rows: list[Row] = []
    rows += [Row(x_name(i + 1), (val(v),)) for i, v in enumerate(_capped(w.problem.x))]
    rows += [Row(y_name(j + 1), (val(v),)) for j, v in enumerate(_capped(w.problem.y))]
    for l in range(1, L + 1):
        W, b = P[weight(l)], P[bias(l)]
        if W.size > MAX_LISTED:
            continue
        rows += [
            Row(_w_name(l, j + 1, i + 1, scalar), (val(W[j, i]),)) for j in range(W.shape[0]) for i in range(W.shape[1])
        ]
        rows += [Row(_unit_name("b", l, j + 1, scalar), (val(b[j]),)) for j in range(b.shape[0])]
    notes = [w.problem.source]
    big = [k for k, a in P.items() if a.size > MAX_LISTED]
    if big:
        notes.append(f"{', '.join(big)} have more than {MAX_LISTED} entries each and are not listed")
    if len(w.problem.x) > MAX_LISTED or len(w.problem.y) > MAX_LISTED:
        notes.append(f"x and y are listed up to their first {MAX_LISTED} entries")
    out.append(Block("The numbers: input, target, weights and biases", tuple(notes), tuple(rows), scalar))

    # forward
    rows = []
    z_, a_ = sp.Symbol("z"), sp.Symbol("a")
    fnotes: list[str | Note] = [
        note(
            z_,
            Op.EQ,
            sp.Symbol("w" if scalar else "W"),
            Op.PRODUCT,
            a_,
            Op.PLUS,
            sp.Symbol("b"),
            ", then ",
            a_,
            Op.EQ,
            sp.Function("f")(z_),
            f", layer by layer; {d} significant digits shown, computed in float64",
        )
    ]
    for l in range(1, L + 1):
        W, b, z, a, prev = P[weight(l)], P[bias(l)], w.z[l - 1], w.a[l], w.a[l - 1]
        f = program.layers[l - 1].f
        for j in _shown(len(z), MAX_UNITS):
            if j is None:
                fnotes.append(f"layer {l}: units {MAX_UNITS}–{len(z) - 1} are computed likewise (not written out)")
                continue
            pairs = [(num(W[j, i], d), num(prev[i], d)) for i in range(len(prev))]
            rows.append(
                Row(
                    _unit_name("z", l, j + 1, scalar),
                    (_sum_terms(pairs, num(b[j], d)), val(z[j])),
                )
            )
            fz = _subst(f, {Z: float(z[j])}, d)
            a_sides = (val(a[j]),) if isinstance(fz, Num) else (_side(fz), val(a[j]))
            rows.append(Row(_unit_name("a", l, j + 1, scalar), a_sides))
    out.append(Block("Forward pass", tuple(fnotes), tuple(rows), scalar))

    # cost
    aL, zL, y = w.a[L], w.z[L - 1], w.problem.y
    if spec.loss == "softmax_ce":
        p = np.exp(zL - zL.max())
        p = p / p.sum()
        terms: list[Term] = []
        for j in range(len(y)):
            if y[j] != 0:
                terms.append(("-", (num(y[j], d), sp.log(num(p[j], d)))))
        cost_side: tuple[Term, ...] = tuple(terms)
        shown = ", ".join(short_float(float(v), d) for v in _capped(p))
        cnote: str | Note = note("softmax cross-entropy: ", *softmax_cost(L, C_REF), f"; here p = {shown}")
    else:
        ell = per_unit_loss(spec)
        terms = []
        for j in _shown(len(y), MAX_TERMS):
            if j is None:
                terms.append(("+", (CDOTS,)))
                continue
            terms.append(("+" if terms else "", (_subst(ell, {A: float(aL[j]), Y: float(y[j])}, d),)))
        cost_side = tuple(terms)
        cnote = f"loss {spec.loss}, summed over the output units"
    rows = [Row(C_REF, (cost_side, val(w.loss)))] if not spec.l2 else []
    if spec.l2:
        sq = sum(float(np.sum(P[weight(l)] ** 2)) for l in range(1, L + 1))
        rows = [
            Row(C_K, (cost_side, val(w.loss - spec.l2 / 2 * sq))),
            Row(C_REF, ((("", (C_K,)), ("+", (num(spec.l2 / 2, d), num(sq, d)))), val(w.loss))),
        ]
        penalty = sp.Symbol("l2") / 2 * sp.Symbol("sumsq_W")
        cnote = note(
            *_as_parts(cnote),
            "; the L2 penalty ",
            penalty,
            " (sumsq_W: every squared weight) is added to the batch cost",
        )
    out.append(Block("Cost", (cnote,), tuple(rows), scalar))

    # backward
    rows = []
    bnotes: list[str | Note] = [
        note(
            sp.Symbol("delta"),
            Op.EQ,
            Partial(C_REF, z_),
            ", from the output down; one sample, so the batch mean is this sample's value",
        )
    ]
    for l in range(L, 0, -1):
        z, a, delta = w.z[l - 1], w.a[l], w.delta[l - 1]
        for j in _shown(len(z), MAX_UNITS):
            if j is None:
                bnotes.append(f"layer {l}: δ of units {MAX_UNITS}–{len(z) - 1} likewise")
                continue
            at = {Z: float(z[j]), A: float(a[j])}
            side: tuple[Term, ...]
            if l == L:
                if spec.loss == "softmax_ce":
                    p = np.exp(zL - zL.max())
                    p = p / p.sum()
                    side = (("", (num(p[j], d), num(float(np.sum(y)), d))), ("-", (num(y[j], d),)))
                else:
                    expr = _subst(program.output.delta, {**at, Y: float(y[j])}, d)
                    side = _side(expr)
            else:
                Wn, dn = P[weight(l + 1)], w.delta[l]
                local = _subst(program.layers[l - 1].df, at, d)
                pairs = [(num(Wn[k, j], d), num(dn[k], d)) for k in range(len(dn))]
                inner = _sum_terms(pairs)
                side = _side(local, *inner[0][1]) if len(inner) == 1 else _side(local, _Paren(tuple(inner)))
            rows.append(Row(_unit_name("delta", l, j + 1, scalar), (side, val(delta[j]))))
    out.append(Block("Backward pass", tuple(bnotes), tuple(rows), scalar))

    # gradients and the update
    rows, urows = [], []
    w_ji, b_j = (sp.Symbol("w"), sp.Symbol("b")) if scalar else (sp.Symbol("W_ji"), sp.Symbol("b_j"))
    d_j, a_i = (sp.Symbol("delta"), a_) if scalar else (sp.Symbol("delta_j"), sp.Symbol("a_i"))
    gnotes: list[str | Note] = [
        note(
            Partial(C_REF, w_ji),
            Op.EQ,
            d_j,
            Op.PRODUCT,
            a_i,
            " (a of the layer below; x for layer 1), ",
            Partial(C_REF, b_j),
            Op.EQ,
            d_j,
        )
    ]
    if spec.l2:
        gnotes.append(
            note("plus the penalty's ", sp.Symbol("l2") * w_ji, f" on each weight, l2 = {short_float(spec.l2, d)}")
        )
    for l in range(1, L + 1):
        g, gb, prev, delta = w.grads[weight(l)], w.grads[bias(l)], w.a[l - 1], w.delta[l - 1]
        Wv, bv = P[weight(l)], P[bias(l)]
        listed = [(j, i) for j in range(g.shape[0]) for i in range(g.shape[1])]
        if len(listed) > MAX_UNITS * 2:
            gnotes.append(f"{weight(l)}: the first {MAX_UNITS * 2} of {len(listed)} entries are written out")
            listed = listed[: MAX_UNITS * 2]
        for j, i in listed:
            wname = _w_name(l, j + 1, i + 1, scalar)
            prod: tuple[Term, ...] = _side(num(delta[j], d), num(prev[i], d))
            if spec.l2:
                prod = (*prod, ("+", (num(spec.l2, d), num(Wv[j, i], d))))
            rows.append(Row(Partial(C_REF, wname), (prod, val(g[j, i]))))
            urows.append(
                Row(
                    wname,
                    (
                        (("", (num(Wv[j, i], d),)), ("-", (num(w.lr, d), num(g[j, i], d)))),
                        val(w.updated[weight(l)][j, i]),
                    ),
                    arrow=True,
                )
            )
        for j in _shown(len(gb), MAX_UNITS):
            if j is None:
                continue
            bname = _unit_name("b", l, j + 1, scalar)
            rows.append(Row(Partial(C_REF, bname), (val(gb[j]),)))
            urows.append(
                Row(
                    bname,
                    ((("", (num(bv[j], d),)), ("-", (num(w.lr, d), num(gb[j], d)))), val(w.updated[bias(l)][j])),
                    arrow=True,
                )
            )
    out.append(Block("Gradients", tuple(gnotes), tuple(rows), scalar))
    w_, eta = sp.Symbol("w"), sp.Symbol("eta")
    unotes: tuple[str | Note, ...] = (
        note(
            "one step of gradient descent, ",
            w_,
            Op.GETS,
            w_,
            Op.MINUS,
            eta,
            Op.PRODUCT,
            Partial(C_REF, w_),
            " with ",
            eta,
            Op.EQ,
            sp.Float(w.lr),
            " (--lr)",
        ),
        f"the cost of this sample goes from C = {short_float(w.loss, d)} to C = {short_float(w.loss_after, d)}"
        + (" (it decreased)" if w.loss_after < w.loss else " (it did not decrease: try a smaller --lr)"),
    )
    urows.append(Row(C_AFTER, (val(w.loss_after),)))
    out.append(Block("One gradient-descent update", unotes, tuple(urows), scalar))
    return out


def _capped(values: np.ndarray) -> np.ndarray:
    return np.ravel(values)[:MAX_LISTED]


@dataclass(frozen=True)
class _Paren:
    """A parenthesised sum of terms inside a product (δ = f'(z) · (Σ_k W δ_k)); printed by the renderers."""

    terms: tuple[Term, ...]


# ----------------------------------------------------------------- printing --
class _Fmt:
    def __init__(self, kind: str, digits: int, scalar: bool = False) -> None:
        self.kind = kind
        self.p = Printers(digits, scalar)

    def factor(self, f: Any) -> str:
        if isinstance(f, Value):
            if self.kind == "mathml":
                t = f.text
                return f"<mn>−{t[1:]}</mn>" if t.startswith("-") else f"<mn>{t}</mn>"
            return f.text
        if isinstance(f, _Paren):
            return self.op("(") + self.terms(f.terms) + self.op(")")
        if f == CDOTS:
            return {"text": "...", "latex": r"\cdots", "mathml": "<mo>⋯</mo>"}[self.kind]
        if f == C_AFTER:
            return {
                "text": "C (after)",
                "latex": r"C_{\mathrm{after}}",
                "mathml": "<msub><mi>C</mi><mtext>after</mtext></msub>",
            }[self.kind]
        if self.kind == "text":
            return self.p.text_factor(f)
        if self.kind == "latex":
            return self.p.latex_factor(f)
        inner = f"<mrow>{self.p.mathml(f)}</mrow>"
        return f"<mrow><mo>(</mo>{inner}<mo>)</mo></mrow>" if precedence(f) < PRECEDENCE["Mul"] else inner

    def op(self, o: str) -> str:
        if self.kind == "text":
            return {"·": " * ", "-": " - ", "+": " + ", "=": " = ", "←": " <- ", "(": "(", ")": ")"}[o]
        if self.kind == "latex":
            return {
                "·": r" \cdot ",
                "-": " - ",
                "+": " + ",
                "=": " = ",
                "←": r" \leftarrow ",
                "(": r"\bigl(",
                ")": r"\bigr)",
            }[o]
        return "<mo>" + html.escape({"-": "−"}.get(o, o)) + "</mo>"

    def term(self, t: Term, first: bool) -> str:
        sign, factors = t
        body = self.op("·").join(self.factor(f) for f in factors)
        if not sign:
            return body
        return (self.op(sign).lstrip() if first else self.op(sign)) + body

    def terms(self, ts: Iterable[Term]) -> str:
        return "".join(self.term(t, k == 0) for k, t in enumerate(ts))

    def lhs(self, row: Row) -> str:
        return self.factor(row.lhs)


def row_text(row: Row, digits: int = DEFAULT_DIGITS, scalar: bool = False) -> str:
    f = _Fmt("text", digits, scalar)
    sides = [f.terms(s) for s in row.sides]
    return f.lhs(row) + (f.op("←") if row.arrow else f.op("=")) + f.op("=").join(sides)


def row_latex_lines(row: Row, digits: int = DEFAULT_DIGITS, width: int = LINE_WIDTH, scalar: bool = False) -> list[str]:
    """Align rows ``lhs &= ...``: broken at ``=`` (one side per line) or, inside a long side,
    before a ``+``/``−`` term; never after a product dot."""
    f = _Fmt("latex", digits, scalar)
    rel = r" &\leftarrow " if row.arrow else " &= "
    whole = f.lhs(row) + rel + " = ".join(f.terms(s) for s in row.sides)
    if visual_width(whole) <= width + 12:
        return [whole]
    lines: list[str] = []
    for k, side in enumerate(row.sides):
        head = (f.lhs(row) + rel) if k == 0 else " &= "
        current = head
        for n, piece in enumerate(_latex_pieces(f, side)):
            if n and visual_width(current + piece) > width + 6:
                lines.append(current)
                current = r" &\quad " + piece.lstrip()
            else:
                current += piece
        lines.append(current)
    return [line.strip() for line in lines]


def _latex_pieces(f: _Fmt, side: tuple[Term, ...]) -> list[str]:
    """The terms of a side; a term with a parenthesised sum is cut before each ``+`` inside it."""
    pieces = []
    for n, (sign, factors) in enumerate(side):
        k = next((k for k, x in enumerate(factors) if isinstance(x, _Paren)), None)
        if k is None:
            whole = f.term((sign, factors), n == 0)
            if visual_width(whole) <= LINE_WIDTH:
                pieces.append(whole)
                continue
            # a long product: a break may come before a dot, or inside a long factor (at + or between
            # juxtaposed factors, by notation.latex_pieces); never right after a dot
            cut: list[str] = []
            for m, x in enumerate(factors):
                parts = _factor_pieces(f, x)
                parts[0] = (f.op("·").lstrip() if m else "") + parts[0]
                cut += parts
            lead = f.op(sign).lstrip() if (sign and n == 0) else (f.op(sign) if sign else "")
            cut[0] = lead + cut[0]
            pieces += cut
            continue
        if k:  # the factors before the parenthesis, then (a break may come here) "· (" and the sum
            for m, x in enumerate(factors[:k]):
                parts = _factor_pieces(f, x)
                parts[0] = (f.op("·").lstrip() if m else "") + parts[0]
                pieces += parts
        inner = [f.term(t, m == 0) for m, t in enumerate(factors[k].terms)]
        tail = f.op("·").join(f.factor(x) for x in factors[k + 1 :])
        inner[0] = (f.op("·").lstrip() if k else "") + f.op("(") + inner[0]
        inner[-1] = inner[-1] + f.op(")") + (f.op("·") + tail if tail else "")
        pieces += inner
    return pieces


def _factor_pieces(f: _Fmt, x: Any) -> list[str]:
    """One factor's LaTeX, cut where :func:`symprop.explain.notation.latex_pieces` may break it."""
    if not isinstance(x, sp.Expr) or isinstance(x, sp.Symbol):
        return [f.factor(x)]
    expr = tidy(x, f.p.digits)

    parts = latex_pieces(expr, LatexNotation(f.p.settings), LINE_WIDTH - 8)
    if precedence(expr) < PRECEDENCE["Mul"]:
        if len(parts) == 1:
            return [f.factor(x)]
        parts[0], parts[-1] = r"\bigl(" + parts[0], parts[-1] + r"\bigr)"
    return parts


def row_mathml(row: Row, digits: int = DEFAULT_DIGITS, scalar: bool = False) -> str:
    f = _Fmt("mathml", digits, scalar)
    rel = f.op("←") if row.arrow else f.op("=")
    return f"<mrow>{f.lhs(row)}{rel}{f.op('=').join(f'<mrow>{f.terms(s)}</mrow>' for s in row.sides)}</mrow>"


def render_text(bs: Sequence[Block], digits: int = DEFAULT_DIGITS) -> str:
    out = []
    for b in bs:
        p = Printers(digits, b.scalar)
        out += ["", b.title + ":"]
        out += [f"  ({note_text(n, p)})" for n in b.notes]
        out += [f"  {row_text(r, digits, b.scalar)}" for r in b.rows]
    return "\n".join(out) + "\n"


def render_latex(bs: Sequence[Block], digits: int = DEFAULT_DIGITS, standalone: bool = False) -> str:
    """align* blocks; titles and notes as LaTeX text in a document, as ``%`` comments otherwise."""
    out = []
    for b in bs:
        p = Printers(digits, b.scalar)
        if standalone:
            out += ["", rf"\subsection*{{{words_latex(b.title)}}}"]
            out += [x for n in b.notes for x in (rf"\noindent {words_latex(n, p)}.", "")]
        else:
            out += ["", f"% {b.title}", *(f"% {note_text(n, p)}" for n in b.notes)]
        lines = [line for r in b.rows for line in row_latex_lines(r, digits, scalar=b.scalar)]
        if lines:
            out += [r"\begin{align*}", *[f"  {x} \\\\" for x in lines[:-1]], f"  {lines[-1]}", r"\end{align*}"]
    return "\n".join(out) + "\n"


def render_markdown(bs: Sequence[Block], digits: int = DEFAULT_DIGITS) -> str:
    out = []
    for b in bs:
        f = _Fmt("latex", digits, b.scalar)
        out += ["", f"### {b.title}"]
        out += [x for n in b.notes for x in ("", note_markdown(n, f.p) + ".")]
        for r in b.rows:
            rel = r" \leftarrow " if r.arrow else " = "
            line = f.lhs(r) + rel + " = ".join(f.terms(s) for s in r.sides)
            out += ["", f"$${markdown_math(line)}$$"]
    return "\n".join(out) + "\n"


def render_html(bs: Sequence[Block], digits: int = DEFAULT_DIGITS) -> str:
    out = []
    for b in bs:
        p = Printers(digits, b.scalar)
        out.append(f"<h3>{html.escape(b.title)}</h3>")
        out += [f'<p class="note">{note_html(n, p)}.</p>' for n in b.notes]
        out += [
            f'<div class="eq worked"><math display="block">{row_mathml(r, digits, b.scalar)}</math></div>'
            for r in b.rows
        ]
    return "\n".join(out)


__all__ = [
    "DEFAULT_LR",
    "Problem",
    "Worked",
    "WorkedError",
    "blocks",
    "compute",
    "is_scalar_chain",
    "load_params",
    "parse_sample",
    "problem",
    "render_html",
    "render_latex",
    "render_markdown",
    "render_text",
]
