"""Presentation stage: the derivatives of a spec, as text, LaTeX, Markdown or SymPy (``symprop explain``).

Nothing here derives anything: it is a view of the IR.  The per-layer formulas are the
program's (:class:`symprop.ir.program.LayerMath`, ``OutputMath``) and the whole-layer lines
are the notes of its statements (:class:`symprop.ir.notes.Note`), the same notes the generated
modules print as comments: the whole-layer chain rule is written once, in
:mod:`symprop.ir.backprop`.  Per-parameter formulas read the per-neuron program
(:mod:`symprop.explain.view`).  This module only arranges them:

* :func:`chain_rule` — per layer: δ^L = ∂C_k/∂a^L ⊙ f'(z^L), ∂C/∂W^l, ∂C/∂b^l,
  ∂C_k/∂a^(l−1) = (W^l)ᵀ δ^l, with generic unit indices j (this layer) and i (the layer
  below); when every layer has one unit, the same chain rule in scalars (the scalar view:
  w², z², a², δ², no ⊙, ᵀ, unit index or sum over units) instead;
* :func:`parameter` — one scalar parameter per sample, compact (over z, a, δ
  with their definitions) or expanded (inputs, targets, parameters only);
* :func:`collapsed` — an all-identity network as the single affine map W x + B;

and :func:`render` prints an :class:`Explanation` in one of :data:`FORMATS`.  Every symbol
is a reference (:class:`symprop.ir.notes.Ref`) named like the per-neuron program's variables
(``x1``, ``W2_1_3``, ``a2_j``, ``delta2_j``, ``dC_da1_2``, 1-based), printed from its kind,
layer and units; titles, notes and the intro are notes too: words and math, never parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp

from symprop import __version__
from symprop.explain.notation import (
    C_K,
    DEFAULT_DIGITS,
    LINE_WIDTH,
    Entry,
    Equality,
    Printers,
    chain_product,
    factor_lines,
    latex_lines,
    legend,
    markdown_math,
    note_latex,
    note_markdown,
    note_math_latex,
    note_text,
    tidy,
    visual_width,
    whole_chain,
    words_latex,
)
from symprop.explain.view import Gradient, UnitView
from symprop.explain.worked import DEFAULT_LR, blocks, compute, is_scalar_chain, problem
from symprop.explain.worked import render_latex as render_worked_latex
from symprop.explain.worked import render_markdown as render_worked_markdown
from symprop.explain.worked import render_text as render_worked_text
from symprop.ir.backprop import derive
from symprop.ir.names import ParamRef, weight
from symprop.ir.notes import Act, Deriv, Note, Op, Part, Partial, Ref, note, ref, softmax_cost
from symprop.ir.notes import C as C_REF
from symprop.ir.program import AddBias, Kind, Map, MatMul, N, Program, Reduce, Role, Var
from symprop.ir.second_order import with_hvp
from symprop.spec import Spec, validate
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus, log1p
from symprop.symbolic.layer_math import SY, A, P, Y, Z, per_unit_loss

FORMATS = ("text", "latex", "markdown", "sympy")
DEFAULT_PRINTERS = Printers()
# An expanded formula is a tree with every z, a and δ written out; printing one
# larger than this (in SymPy nodes) takes long and is unreadable anyway.
# --param and --expand build the per-neuron program of the whole network (as the unrolled mode does):
# a 1000-1000-1 net took 78 s and then ran out of memory; refused above the unrolled mode's limit
MAX_PER_NEURON_PARAMS = 10_000
MAX_EXPANDED_NODES = 200_000
# SymPy substitutes and prints trees recursively, several Python frames per level: deeper trees
# than this would hit the interpreter's recursion limit (1,000 frames) instead of printing.
MAX_EXPANDED_DEPTH = 150
J = sp.Symbol("j", integer=True, positive=True)

Words = str | Note  # prose: plain words, or a note of words and math


class ExplainError(ValueError):
    """A bad explain option (unknown parameter, bad format...): one line, exit 2 on the command line."""


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs``.  ``name`` is an identifier (the left side in ``--format sympy``).

    ``lhs`` is the left side as math (sides joined by ``=``: δ^(2)_j = ∂C_k/∂z^(2)_j), by default
    the symbol ``name``; ``text`` replaces the whole text line where it is a note of the program
    (the generated modules' comment); ``factors`` (whose product is ``rhs``) are printed in the
    chain rule's order."""

    name: str
    rhs: sp.Expr
    lhs: tuple[sp.Expr, ...] = ()
    text: Note | None = None
    note: Words = ""
    factors: tuple[sp.Expr, ...] = ()

    @property
    def sides(self) -> tuple[sp.Expr, ...]:
        return self.lhs or (sp.Symbol(self.name),)


@dataclass(frozen=True)
class Section:
    title: Words
    equations: tuple[Equation, ...]
    # whole-layer statements shown before the equations (not in --format sympy): the program's
    # notes, printed in the format's notation, or chain-rule products
    vector: tuple[Note | Equality, ...] = ()
    notes: tuple[Words, ...] = ()
    layer: int = 0  # the layer it is about (0: none)
    scalar: bool = False  # printed in the scalar view (one unit per layer)


@dataclass(frozen=True)
class Explanation:
    spec: Spec
    heading: Words  # what is explained, e.g. "the chain rule, layer by layer"
    intro: tuple[Words, ...]
    sections: tuple[Section, ...]
    command: str = ""  # the command line that printed it (shown in the Markdown report)
    scalar: bool = False  # a one-unit chain in the scalar view: the intro's symbols print as scalars too

    @property
    def printers(self) -> Printers:
        return Printers(DEFAULT_DIGITS, self.scalar)

    @property
    def title(self) -> Note:
        return _title(self.spec)


# ------------------------------------------------------------------ names --
def sympy_name(e: Entry) -> str:
    """``W2[1,3]`` -> ``dC_dW2_1_3``: the identifier of a gradient in ``--format sympy``."""
    return "dC_d" + "_".join((e.param.label, *map(str, e.index)))


def _prev(l: int, index: str | int = "", scalar: bool = False) -> Ref:
    """a^(l-1) with unit ``index`` (x for l = 1)."""
    sub = () if scalar else (index,)
    return ref(Kind.INPUT, 0, *sub) if l == 1 else ref(Kind.A, l - 1, *sub)


def _unit(kind: Kind, l: int, scalar: bool, index: str = "j") -> Ref:
    return ref(kind, l) if scalar else ref(kind, l, index)


# --------------------------------------------------------------- the math --
def chain_rule(spec: Spec, symbolic_params: bool = False) -> Explanation:
    """The chain rule per layer, as derived for this spec's activations and loss; in scalars when
    every layer has one unit (the scalar view replaces the matrix form there)."""
    program = derive(spec, symbolic_params)
    L = len(spec.layers)
    scalar = is_scalar_chain(spec)
    sections = [_cost_section(program, scalar)]
    if scalar:
        sections.append(_scalar_forward(program))
    for l in range(L, 0, -1):
        sections.append(_layer_section(program, l, scalar))
    if scalar:
        intro: tuple[Words, ...] = (
            note(
                "One unit per layer: the chain rule in scalars, ",
                ref(Kind.WEIGHT, 2 if L > 1 else 1),
                Op.COMMA,
                ref(Kind.Z, L),
                Op.COMMA,
                ref(Kind.A, L),
                Op.COMMA,
                ref(Kind.DELTA, L),
                ", with no unit index, transpose or sum over units. Per sample k: ",
                ref(Kind.DELTA, "l"),
                Op.EQ,
                Partial(C_K, ref(Kind.Z, "l")),
                " is the error of layer l (layer 0 is the input x).",
            ),
            _batch_intro(scalar),
        )
    else:
        intro = (
            note(
                "Per sample k: ",
                ref(Kind.DELTA, "l", "j"),
                Op.EQ,
                Partial(C_K, ref(Kind.Z, "l", "j")),
                " is the error of unit j of layer l; i indexes the units of layer l - 1 (layer 0 is the input x).",
            ),
            _batch_intro(scalar),
        )
    heading = "the chain rule, layer by layer" + (", in scalars" if scalar else "")
    return Explanation(spec, heading, intro + _warnings(program), tuple(sections), scalar=scalar)


def _batch_intro(scalar: bool) -> Note:
    w = ref(Kind.WEIGHT, "l") if scalar else ref(Kind.WEIGHT, "l", "j", "i")
    return note(
        "The batch cost is ",
        C_REF,
        Op.EQ,
        Op.MEAN_K,
        C_K,
        ", so every gradient of the module is the batch mean: ",
        Partial(C_REF, w),
        Op.EQ,
        Op.MEAN_K,
        Partial(C_K, w),
        ".",
    )


def _scalar_forward(program: Program) -> Section:
    """The forward pass of a one-unit chain in scalars: the program's own notes z = w a + b, a = f(z)."""
    forward = [
        s.note
        for s in program.function("forward").body
        if s.note and s.out.kind in (Kind.Z, Kind.A) and isinstance(s, MatMul | Map)
    ]
    words = "one unit per layer: every vector and matrix is a number; the layer sections below are in scalars too"
    return Section("The scalar view: the forward pass", (), tuple(forward), (words,), scalar=True)


def _cost_section(program: Program, scalar: bool = False) -> Section:
    spec = program.spec
    L = len(spec.layers)
    if spec.loss == "softmax_ce":
        k = spec.outputs
        zs = [sp.Symbol(f"z{j}", real=True) for j in range(1, k + 1)]
        ys = [sp.Symbol(f"y{j}", real=True) for j in range(1, k + 1)]
        subs = {z: ref(Kind.Z, L, j) for j, z in enumerate(zs, 1)} | {
            y: ref(Kind.TARGET, 0, j) for j, y in enumerate(ys, 1)
        }
        cost = program.output.loss.xreplace(subs)
        words: Words = note("softmax cross-entropy on the logits z: ", *softmax_cost(L))
    else:
        ell = per_unit_loss(spec).xreplace({A: _unit(Kind.A, L, scalar), Y: _unit(Kind.TARGET, 0, scalar)})
        cost = ell if scalar else sp.Sum(ell, (J, 1, spec.outputs))
        words = f"loss {spec.loss}" + ("" if scalar else f", summed over the {spec.outputs} output unit(s)")
    eqs = [Equation("loss_k", cost, (C_K,), note=words)]
    if spec.l2:  # the penalty is part of the batch cost, not of one sample's
        lam = sp.Float(spec.l2)
        penalty = sp.Add(*[sp.Symbol(f"sumsq_{weight(l)}") for l in range(1, L + 1)])
        eqs.append(
            Equation(
                "C",
                sp.Symbol("C_mean") + lam / 2 * penalty,
                (C_REF,),
                note=note(
                    sp.Symbol("C_mean"),
                    Op.EQ,
                    Op.MEAN_K,
                    C_K,
                    "; sumsq_Wl is the sum of the squared weights of layer l (the L2 penalty ",
                    sp.Symbol("l2") / 2 * sp.Symbol("sumsq_Wl"),
                    "; biases are not penalised)",
                ),
            )
        )
    return Section("Cost of one sample", tuple(eqs), scalar=scalar)


def _notes(program: Program, l: int) -> dict[str, Note]:
    """The whole-layer formulas of layer l: the notes of the statements the module prints."""
    out: dict[str, Note] = {}
    for s in program.function("loss_and_grad").body:
        if not s.note:
            continue
        if s.out.layer == l and isinstance(s, MatMul | Reduce) and s.out.kind in (Kind.GRAD_W, Kind.GRAD_B):
            out[s.out.kind.name] = s.note
        elif s.out.layer == l - 1 and isinstance(s, MatMul) and s.out.kind is Kind.UPSTREAM:
            out["UPSTREAM"] = s.note
        elif s.out.layer == l and s.out.kind is Kind.DELTA:
            out["DELTA"] = s.note
        elif s.out.layer == l and isinstance(s, Map) and s.out.kind is Kind.GRAD_W:
            out["PENALTY"] = s.note
    return out


def _layer_title(program: Program, l: int, scalar: bool) -> str:
    layer = program.layers[l - 1]
    role = "output" if l == len(program.layers) else "hidden"
    if scalar:
        return f"Layer {l} ({role}, {layer.label}), in scalars"
    return f"Layer {l} ({role}, {layer.units} unit{'s' if layer.units > 1 else ''}, {layer.label})"


def _layer_section(program: Program, l: int, scalar: bool = False) -> Section:
    """Layer l: the program's notes (δ, the gradients, the error sent down) in the format's
    notation, then f, f', δ and the per-sample gradients of one unit."""
    spec = program.spec
    L = len(spec.layers)
    layer = program.layers[l - 1]
    out = program.output
    a_j, z_j, y_j = _unit(Kind.A, l, scalar), _unit(Kind.Z, l, scalar), _unit(Kind.TARGET, 0, scalar)
    at = {A: a_j, Z: z_j, Y: y_j}
    dC_da = _unit(Kind.UPSTREAM, l, scalar)
    delta = _unit(Kind.DELTA, l, scalar)
    eqs = [
        Equation(f"f{l}", layer.f, (Act(l, 0, Z),), note=note(a_j, Op.EQ, Act(l, 0, z_j))),
        Equation(
            f"df{l}",
            layer.df,
            (Act(l, 1, Z),),
            note=note("derived by SymPy, in terms of ", A, Op.EQ, Act(l, 0, Z))
            if layer.df.has(A)
            else "derived by SymPy",
        ),
    ]
    notes: list[Words] = []
    texts = _notes(program, l)
    delta_lhs = (delta, Partial(C_K, z_j))
    # the scalar view keeps each sample's δ (the batch D = δ/n and the batch means are the intro's)
    vector = [texts["DELTA"].split(Op.SEP)[0] if scalar else texts["DELTA"]]
    if l == L and spec.loss == "softmax_ce":
        p_j, i = sp.Symbol("p_j", positive=True), sp.Symbol("i", integer=True)
        targets = sp.Sum(ref(Kind.TARGET, 0, "i"), (i, 1, layer.units))
        d = out.delta.xreplace({P: p_j, SY: targets, Y: y_j})
        softmax_j = sp.exp(z_j) / sp.Sum(sp.exp(ref(Kind.Z, L, "i")), (i, 1, layer.units))
        words = note("derived by SymPy: ", Deriv(z_j), " of ", C_K, "; ", p_j, Op.EQ, softmax_j)
        eqs.append(Equation(delta.name, d, delta_lhs, note=words))
        # the program's note, read with the softmax and the sum of the targets written out
        shown = {SY: targets, sp.Symbol(f"softmax{L}", real=True): sp.Function("softmax")(ref(Kind.Z, L))}
        clauses = [c for c in texts["DELTA"].xreplace(shown).split(Op.COMMA) if len(set(c.split(Op.EQ))) > 1]
        vector = [_joined(clauses, Op.COMMA)]
        notes.append("softmax and cross-entropy are differentiated together in z: δ = softmax(z) - y for one-hot y")
    elif l == L:
        assert out.dloss_da is not None
        dl_da = out.dloss_da.xreplace(at)
        if dl_da.is_rational_function(a_j, y_j):  # 2*(a - y) rather than 2*a - 2*y (or -2*(-a + y))
            coeff, rest = sp.factor(dl_da).as_coeff_Mul()
            dl_da = sp.Mul(-coeff, -rest, evaluate=False) if coeff.is_negative and rest.is_Add else coeff * rest
        eqs.append(Equation(dC_da.name, dl_da, (dC_da,), note=note(Deriv(A), " of the loss, at ", A, Op.EQ, a_j)))
        how = note(Partial(C_K, a_j), Op.HADAMARD, Act(L, 1, z_j))
        if out.fused:
            how += note(", loss and activation differentiated together in z (numerically stable), then simplified")
        else:
            how += note(", simplified by SymPy")
        eqs.append(Equation(delta.name, out.delta.xreplace(at), delta_lhs, note=how))
        if out.clipped:
            notes.append(f"bce on a {spec.layers[-1].activation!r} output: a is clipped into [ε, 1 - ε] inside log")
    elif scalar:  # the textbook's recursion: δˡ = f_l'(zˡ) · wˡ⁺¹ · δˡ⁺¹, with f_l' written out
        local = layer.df.xreplace(at)
        up = (ref(Kind.WEIGHT, l + 1), ref(Kind.DELTA, l + 1))
        recursion = note(Act(l, 1, z_j), Op.EQ, local)
        eqs.append(
            Equation(delta.name, local * up[0] * up[1], delta_lhs, note=recursion, factors=(Act(l, 1, z_j), *up))
        )
    else:
        local = layer.df.xreplace(at)
        eqs.append(Equation(delta.name, local * dC_da, delta_lhs, factors=(local, dC_da)))
    prev = _prev(l, "i", scalar)
    weight_entry = ref(Kind.WEIGHT, l) if scalar else ref(Kind.WEIGHT, l, "j", "i")
    bias_entry = ref(Kind.BIAS, l) if scalar else ref(Kind.BIAS, l, "j")
    eqs.append(Equation(f"dC_d{weight_entry.name}", delta * prev, (Partial(C_K, weight_entry),), factors=(delta, prev)))
    eqs.append(Equation(f"dC_d{bias_entry.name}", delta, (Partial(C_K, bias_entry),)))
    if not scalar:
        vector.append(texts["GRAD_W"])
        vector += [texts["PENALTY"]] if "PENALTY" in texts else []
        vector.append(texts["GRAD_B"])
    if l > 1:
        below = _unit(Kind.UPSTREAM, l - 1, scalar, "i")
        if scalar:
            eqs.append(
                Equation(
                    below.name, ref(Kind.WEIGHT, l) * delta, (below,), note=f"the error sent down to layer {l - 1}"
                )
            )
        else:
            total = sp.Sum(ref(Kind.WEIGHT, l, "j", "i") * delta, (J, 1, layer.units))
            sent = note("entry i of ", ref(Kind.WEIGHT, l).t(), Op.PRODUCT, ref(Kind.DELTA, l))
            eqs.append(
                Equation(below.name, total, (below,), note=sent + note(f": the error sent down to layer {l - 1}"))
            )
        if "UPSTREAM" in texts:
            vector.append(texts["UPSTREAM"])
    if scalar:  # δ, the recursion and the error sent down are the equations' own rows: one line each
        vector = []
    return Section(_layer_title(program, l, scalar), tuple(eqs), tuple(vector), tuple(notes), layer=l, scalar=scalar)


def parse_label(label: str, spec: Spec) -> str:
    """Validate ``W2[1,3]`` / ``b1[2]`` against the spec; return it normalised (``W2[1,3]``)."""
    return parse_entry(label, spec).label


def parse_entry(label: str, spec: Spec) -> Entry:
    """Validate ``W2[1,3]`` / ``b1[2]`` (1-based; also the printed ``W2_1_3``, and ``W2`` of a 1x1
    layer) against the spec: the entry it names.  The user's text is only split and compared,
    never evaluated; a bad label is one :class:`ExplainError` line."""
    text = "".join(label.split())
    usage = (
        f"--param {label!r}: expected W<l>[j,i] or b<l>[j], 1-based, e.g. W2[1,3], W2_1_3 or b1[2]"
        " (W<l> alone for a 1x1 layer)"
    )
    name, bracket, rest = text.partition("[")
    if bracket:
        if not rest.endswith("]"):
            raise ExplainError(usage)
        parts = rest[:-1].split(",")
    else:
        name, *parts = text.split("_")
    try:
        param = ParamRef.parse(name)
    except ValueError:
        raise ExplainError(usage) from None
    if name != param.label:  # dW1, VW1 name gradients and directions, not parameters
        raise ExplainError(usage)
    L = len(spec.layers)
    if not 1 <= param.layer <= L:
        raise ExplainError(f"--param {label!r}: there is no layer {param.layer}; this network has layers 1-{L}")
    shape = spec.param_shapes[param.label]
    if not bracket and not parts:  # W2 / b3 of a one-entry array
        if math.prod(shape) != 1:
            ones = ",".join(["1"] * len(shape))
            raise ExplainError(
                f"--param {label!r}: {name} has shape {shape}; name one entry, 1-based, e.g. {name}[{ones}]"
            )
        parts = ["1"] * len(shape)
    if not bracket and not all(p.isascii() and p.isdigit() for p in parts):
        raise ExplainError(usage)
    if len(parts) != len(shape) or not all(p.isascii() and p.isdigit() for p in parts):
        want = f"{name}[j,i] with two indices" if param.array == "W" else f"{name}[j] with one index"
        raise ExplainError(f"--param {label!r}: expected {want}, 1-based")
    index = tuple(int(p) for p in parts)
    if not all(1 <= k <= n for k, n in zip(index, shape, strict=True)):
        ranges = " and ".join(f"1-{n}" for n in shape)
        raise ExplainError(
            f"--param {label!r}: index out of range; {name} has shape {shape}, indices {ranges} (1-based)"
        )
    return Entry(param, index)


WHOLE_CHAIN_PATH = (
    "second line: the product along one highlighted path (this unit, then unit 1 of every layer above); "
    "the derivative is the sum of such products over all paths, which the δ recursion below computes"
)
WHOLE_CHAIN_SCALAR = "second line: the whole chain-rule product, from the parameter up to the loss"


def _entry_ref(e: Entry) -> Ref:
    """The entry as the comments write it, ``W2[1,3]``, printed W^(2)_{1,3}."""
    return Ref(e.label, e.kind, e.layer, tuple(map(str, e.index)))


def _entry_of(g: Gradient) -> Entry:
    return Entry(ParamRef.parse(g.array), tuple(i + 1 for i in g.index))


def parameter(
    spec: Spec, label: str, expand: bool = False, view: UnitView | None = None, symbolic_params: bool = False
) -> Explanation:
    """∂C_k/∂(one parameter), per sample: compact with its definitions, or expanded."""
    d = view or UnitView(spec, derive(spec, symbolic_params))
    e = parse_entry(label, spec)
    g = d.gradient(e.label)
    name = sympy_name(e)
    lhs = Partial(C_K, _entry_ref(e))
    batch = note("the batch gradient ", Partial(C_REF, _entry_ref(e)), " is the mean over the samples k")
    warnings = _warnings(d.program)
    if expand:
        expanded = _expand_all(d, [g.per_sample])[0]
        eq = Equation(name, expanded, (lhs,), note=batch)
        section = Section(note(lhs, " in inputs, targets and parameters"), (eq,), layer=e.layer)
        written = "Written out in the inputs x, targets y and parameters W, b only (every z, a and δ substituted)."
        return Explanation(spec, note(lhs, ", expanded"), (written, *warnings), (section,))
    factors = (g.delta,) if g.activation is None else (g.delta, g.activation)
    top = Equation(name, g.per_sample, (lhs,), text=note(lhs, Op.EQ, g.per_sample), note=batch, factors=factors)
    scalar = is_scalar_chain(spec)  # one unit per layer: the scalar view (w1, z1, no unit index)
    product = chain_product(e, len(spec.layers), spec.loss == "softmax_ce", scalar=scalar)
    needed = _closure(g.per_sample, d.defs)
    backward = [_compact_equation(d, s, is_scalar_chain(spec)) for s in _backward_order(d) if s in needed]
    forward = [Equation(s.name, d.defs[s], (s,)) for s in d.order if s in needed and d.kind(s) in (Kind.Z, Kind.A)]
    sizes = spec.layer_sizes
    whole = whole_chain(e, sizes, spec.loss == "softmax_ce")
    notes = (WHOLE_CHAIN_SCALAR if all(s == 1 for s in sizes) else WHOLE_CHAIN_PATH,)
    sections = [Section(note(lhs, ", per sample"), (top,), (product, whole), notes, e.layer, scalar)]
    if backward:
        title = "Backpropagated errors (chain rule, from this layer up to the output)"
        sections.append(Section(title, tuple(backward), scalar=scalar))
    if forward:
        sections.append(Section("Forward pass (the z and a used above)", tuple(forward), scalar=scalar))
    intro = (
        note(_entry_ref(e), f" is the {_describe_param(e)}; indices are 1-based."),
        "Compact form: over the z, a and δ symbols, each defined below (same formulas as the module's comments).",
    )
    return Explanation(spec, note(lhs), intro + warnings, tuple(sections), scalar=scalar)


def _describe_param(e: Entry) -> str:
    l = e.layer
    if e.kind is Kind.WEIGHT:
        j, i = e.index
        src = f"input {i}" if l == 1 else f"neuron {i} of layer {l - 1}"
        return f"weight from {src} to neuron {j} of layer {l}"
    return f"bias of neuron {e.index[0]} of layer {l}"


def _backward_order(d: UnitView) -> list[sp.Symbol]:
    """δ (each followed by its dC_da) from layer 1 up to the output: the chain rule read upwards."""
    out: list[tuple[int, int, int, sp.Symbol]] = []
    for s in d.order:
        if d.kind(s) is Kind.DELTA:
            l, j = d.layer_unit(s)
            out.append((l, j, 0, s))
            if s in d.upstream:
                out.append((l, j, 1, d.upstream[s]))
    return [s for *_, s in sorted(out, key=lambda t: t[:3])]


def _compact_equation(d: UnitView, s: sp.Symbol, scalar: bool = False) -> Equation:
    if d.kind(s) is Kind.DELTA:
        factors = (d.local(s), d.upstream[s]) if s in d.upstream else ()
        l, j = d.layer_unit(s)
        return Equation(
            s.name,
            d.defs[s],
            (s, Partial(C_K, ref(Kind.Z, l, j))),
            text=d.delta_text(s, typed=scalar),
            factors=factors,
        )
    words = "the error sent down from the layer above" if scalar else "sum over the units of the layer above"
    return Equation(s.name, d.defs[s], (s,), note=words)


def _closure(expr: sp.Expr, defs: dict[sp.Symbol, sp.Expr]) -> set[sp.Symbol]:
    seen: set[sp.Symbol] = set()
    todo = [s for s in expr.free_symbols if s in defs]
    while todo:
        s = todo.pop()
        if s in seen:
            continue
        seen.add(s)
        todo += [t for t in defs[s].free_symbols if t in defs and t not in seen]
    return seen


def _expand_all(d: UnitView, exprs: list[sp.Expr]) -> list[sp.Expr]:
    n, depth = d.shape(exprs)
    which = "formulas would" if len(exprs) > 1 else "formula would"
    hint = "drop --expand for the compact form" + (", or pick one --param" if len(exprs) > 1 else "")
    if n > MAX_EXPANDED_NODES:
        raise ExplainError(
            f"--expand: the expanded {which} have about {n:,} SymPy nodes (limit {MAX_EXPANDED_NODES:,}); {hint}"
        )
    if depth > MAX_EXPANDED_DEPTH:
        raise ExplainError(
            f"--expand: the expanded {which} be nested {depth:,} levels deep (limit {MAX_EXPANDED_DEPTH}); "
            "drop --expand for the compact form"
        )
    return [d.expand(e) for e in exprs]


def every_parameter_expanded(spec: Spec, view: UnitView | None = None, symbolic_params: bool = False) -> Explanation:
    """Every ∂C_k/∂p written out in inputs, targets and parameters, one section per layer."""
    d = view or UnitView(spec, derive(spec, symbolic_params))
    expanded = _expand_all(d, [g.per_sample for g in d.gradients])
    sections = []
    for l in range(1, len(spec.layers) + 1):
        entries = [(_entry_of(g), e) for g, e in zip(d.gradients, expanded, strict=True)]
        eqs = tuple(
            Equation(sympy_name(entry), e, (Partial(C_K, _entry_ref(entry)),))
            for entry, e in entries
            if entry.layer == l
        )
        title = note(f"Layer {l}: ", ref(Kind.WEIGHT, l), " and ", ref(Kind.BIAS, l))
        sections.append(Section(title, eqs, layer=l))
    intro = (
        note(
            "Every per-sample gradient ",
            Partial(C_K, sp.Symbol("p")),
            ", written out in the inputs x, targets y and parameters W, b only.",
        ),
        "The batch gradient is the mean over the samples k.",
    )
    return Explanation(spec, "every gradient, expanded", intro + _warnings(d.program), tuple(sections))


def second_order(spec: Spec, symbolic_params: bool = False) -> Explanation:
    """The Hessian-vector product's sweep, as the module computes it: R(v) = d/dt v(params + t V).

    A view of the program's ``hvp`` function (ir/second_order.py): every R statement with its
    expression; nothing is differentiated here."""
    program = with_hvp(derive(spec, symbolic_params))
    hvp = program.function("hvp")
    forward: list[Equation] = []
    backward: list[Equation] = []
    seen_backward = False
    vector: list[Note] = []
    for s in hvp.body:
        seen_backward = seen_backward or s.role is Role.LOSS
        if s.role is not Role.CURVATURE:
            continue
        if isinstance(s, MatMul):
            left, right = _named(s.left, s.left_t), _named(s.right, s.right_t)
            vector.append(note(_named(s.out), Op.EQ, left, Op.PRODUCT, right))
            continue
        if isinstance(s, AddBias):
            vector.append(note(_named(s.out), Op.PLUS_EQ, _named(s.bias)))
            continue
        if isinstance(s, Map | Reduce):
            named = {v: Ref(v.name, Kind.TEMP) for v in s.expr.free_symbols if v != N.symbol}  # upright names
            eq = Equation(
                s.out.name,
                s.expr.xreplace(named),
                (_named(s.out),),
                note="summed over the batch" if isinstance(s, Reduce) else "",
            )
            (backward if seen_backward else forward).append(eq)
    intro = (
        "H V by forward-over-reverse (Pearlmutter's R-operator): R(v) = d/dt v(params + t V) at t = 0, "
        "V_W and V_b the direction; R(X) = R(Y) = 0, R(W) = V_W.",
        "Statement by statement the module's sweep: matrix products by the product rule (below), "
        "elementwise maps by SymPy's partial derivatives. Conventions at kinks: relu'' = step'' = 0.",
        "The product H V is R of the gradients: R(dW_l), R(db_l).",
    )
    sections = (
        Section("Matrix products of the sweep", (), tuple(vector)),
        Section("Forward sweep: R(z), R(a)", tuple(forward)),
        Section("Backward sweep: R(δ) and the product", tuple(backward)),
    )
    return Explanation(spec, "the Hessian-vector product", intro, sections)


def _named(v: Var, transposed: bool = False) -> Ref:
    """A variable of the sweep by its code name (``RZ1``, ``W1^T``), printed upright."""
    return Ref(v.name + "^T" * transposed, Kind.TEMP, v.layer, (), transposed)


def collapsed(spec: Spec) -> Explanation:
    """An all-identity network is one affine map a^L = W x + B: W = W^L...W^1, B folded likewise."""
    nonlinear = [(l, layer.activation) for l, layer in enumerate(spec.layers, 1) if layer.activation != "identity"]
    if nonlinear:
        l, name = nonlinear[0]
        raise ExplainError(f"--collapse needs every activation to be identity, but layer {l} is {name!r}")
    sizes = spec.layer_sizes
    terms = math.prod(sizes[1:-1]) * sizes[0] * sizes[-1]
    if terms > MAX_EXPANDED_NODES:
        raise ExplainError(f"--collapse: the product would have about {terms:,} terms (limit {MAX_EXPANDED_NODES:,})")
    d = UnitView(spec)
    L = len(spec.layers)
    W = d.weights(1)
    B = d.biases(1)
    for l in range(2, L + 1):
        W = d.weights(l) * W
        B = d.weights(l) * B + d.biases(l)
    product: list[Part] = []
    for l in range(L, 0, -1):
        product += [ref(Kind.WEIGHT, l)] + [Op.PRODUCT] * (l > 1)
    bias: list[Part] = [ref(Kind.BIAS, 1)]
    for l in range(2, L + 1):
        inner = bias if l == 2 else [Op.OPEN, *bias, Op.CLOSE]
        bias = [ref(Kind.WEIGHT, l), Op.PRODUCT, *inner, Op.PLUS, ref(Kind.BIAS, l)]
    big_w, big_b = sp.Symbol("W"), sp.Symbol("B")
    eqs = [
        Equation(
            f"W_{j + 1}_{i + 1}",
            sp.expand(W[j, i]),
            (Ref(f"W[{j + 1},{i + 1}]", Kind.WEIGHT, 0, (str(j + 1), str(i + 1))),),
        )
        for j in range(W.rows)
        for i in range(W.cols)
    ]
    eqs += [Equation(f"B_{j + 1}", sp.expand(B[j]), (sp.Symbol(f"B_{j + 1}"),)) for j in range(B.rows)]
    words = note(
        f"Every activation is identity, so the {L} layer(s) are one affine map ",
        ref(Kind.A, L),
        Op.EQ,
        big_w,
        Op.PRODUCT,
        ref(Kind.INPUT),
        Op.PLUS,
        big_b,
        " with ",
        big_w,
        Op.EQ,
        *product,
        f" (shape {sizes[-1]}x{sizes[0]}) and ",
        big_b,
        Op.EQ,
        *bias,
        ": depth adds nothing here.",
    )
    section = Section(note(big_w, Op.EQ, *product, " and ", big_b, Op.EQ, *bias), tuple(eqs))
    return Explanation(spec, "one affine map", (words,), (section,))


def _title(spec: Spec) -> Note:
    acts: list[Part] = []
    for k, layer in enumerate(spec.layers):
        acts += [Op.ARROW] * (k > 0) + [layer.describe()]
    sizes = "-".join(map(str, spec.layer_sizes))
    return note(f"{spec.name}: {sizes} network (", *acts, f"), loss {spec.loss}")


def _warnings(program: Program) -> tuple[str, ...]:
    return tuple(f"Warning: {w}." for w in program.warnings)


# --------------------------------------------------------------- printing --
def plain(expr: sp.Expr) -> sp.Expr:
    """symprop's functions rewritten to plain SymPy, so ``sympy.sympify(str(expr))`` needs no locals."""
    expr = expr.replace(
        lambda e: isinstance(e, Sigmoid | Softplus | Relu | Clip01), lambda e: e.rewrite(sp.exp, deep=False)
    )
    expr = expr.replace(lambda e: isinstance(e, LogSumExp), lambda e: sp.log(sp.Add(*[sp.exp(a) for a in e.args])))
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))


def rhs_text(eq: Equation, printers: Printers = DEFAULT_PRINTERS) -> str:
    if not eq.factors:
        return printers.text(eq.rhs)
    return " * ".join(printers.text_factor(f) for f in eq.factors)


def rhs_latex(eq: Equation, printers: Printers = DEFAULT_PRINTERS) -> str:
    if not eq.factors:
        return printers.latex(eq.rhs)
    return r" \cdot ".join(printers.latex_factor(f) for f in eq.factors)


def lhs_text(eq: Equation, printers: Printers = DEFAULT_PRINTERS) -> str:
    return " = ".join(printers.text(side) for side in eq.sides)


def lhs_latex(eq: Equation, printers: Printers = DEFAULT_PRINTERS) -> str:
    return " = ".join(printers.latex(side) for side in eq.sides)


def vector_text(v: Note | Equality, printers: Printers = DEFAULT_PRINTERS) -> str:
    return note_text(v, printers) if isinstance(v, Note) else v.text()


def vector_latex(v: Note | Equality, printers: Printers = DEFAULT_PRINTERS) -> str:
    return note_math_latex(v, printers) if isinstance(v, Note) else v.latex()


def section_printers(s: Section, digits: int) -> Printers:
    """The printers of a section: the scalar view's (w², no unit index) where it is one."""
    return Printers(digits, s.scalar)


def notation_legend(ex: Explanation) -> tuple[str, ...]:
    """Sentences fixing the notation the explanation's formulas use (the step functions' value at 0)."""
    return legend(e for s in ex.sections for eq in s.equations for e in (eq.rhs, *eq.factors))


def render(ex: Explanation, fmt: str = "text", digits: int = DEFAULT_DIGITS, standalone: bool = False) -> str:
    """The explanation as ``text``, ``latex``, ``markdown`` or ``sympy`` (one ``name = expr`` per line).

    ``digits``: significant digits of long floats (text, latex, markdown); ``standalone``: a whole
    LaTeX document (``latex`` only)."""
    if standalone and fmt != "latex":
        raise ExplainError(f"--standalone makes a LaTeX document; use it with --format latex, not {fmt}")
    if digits < 1:
        raise ExplainError(f"--digits must be >= 1, got {digits}")
    printers = Printers(digits)
    if fmt == "sympy":
        lines = [f"{eq.name} = {sp.sstr(plain(eq.rhs))}" for s in ex.sections for eq in s.equations]
        return "\n".join(lines) + "\n"
    if fmt == "text":
        return _render_text(ex, printers)
    if fmt == "latex":
        return latex_document(ex, printers) if standalone else _render_latex(ex, printers)
    if fmt == "markdown":
        return _render_markdown(ex, printers)
    raise ExplainError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _render_text(ex: Explanation, printers: Printers) -> str:
    intro = [note_text(line, ex.printers) for line in ex.intro]
    out = [f"{note_text(ex.title)}: {note_text(ex.heading, ex.printers)}", *intro, *notation_legend(ex)]
    for s in ex.sections:
        p = section_printers(s, printers.digits)
        out += ["", note_text(s.title, p) + ":"]
        out += [f"  {vector_text(v, p)}" for v in s.vector]
        out += [f"  ({note_text(n, p)})" for n in s.notes]
        for eq in s.equations:
            line = note_text(eq.text, p) if eq.text is not None else f"{lhs_text(eq, p)} = {rhs_text(eq, p)}"
            out.append(f"  {line}" + (f"    # {note_text(eq.note, p)}" if eq.note else ""))
    return "\n".join(out) + "\n"


def _render_latex(ex: Explanation, printers: Printers) -> str:
    comments = (*(note_text(line, ex.printers) for line in ex.intro), *notation_legend(ex))
    out = [f"% {note_text(ex.title)}: {note_text(ex.heading)}", *(f"% {line}" for line in comments)]
    for s in ex.sections:
        p = section_printers(s, printers.digits)
        out += ["", f"% {note_text(s.title, p)}", *(f"% {note_text(n, p)}" for n in s.notes), r"\begin{align*}"]
        rows = [vector_latex(v, p).replace(" = ", " &= ", 1) for v in s.vector]
        for eq in s.equations:
            words = rf" && \text{{{note_latex(eq.note, p)}}}" if eq.note else ""
            rows.append(f"{lhs_latex(eq, p)} &= {rhs_latex(eq, p)}{words}")
        out += [f"  {row} \\\\" for row in rows[:-1]] + [f"  {rows[-1]}", r"\end{align*}"]
    return "\n".join(out) + "\n"


def _statements(v: Note | Equality, p: Printers) -> list[tuple[str, list[list[str]]]]:
    """A whole-layer row as statements ``lhs = side = side``, each side as LaTeX lines: a note is cut
    at its separators (``;`` and ``,``) and equals signs, an :class:`Equality` at its sides; a long
    side breaks between terms or factors (a product never right after its dot)."""
    if isinstance(v, Equality):
        latex = [Equality((side,), v.digits).latex() for side in v.sides]
        return [(latex[0], [_product_lines(side) for side in latex[1:]])]
    out = []
    for part in v.split(Op.SEP):
        for clause in part.split(Op.COMMA):
            lhs, *sides = clause.split(Op.EQ)
            lines = [
                latex_lines(tidy(side.parts[0], p.digits), p.digits)
                if len(side.parts) == 1 and isinstance(side.parts[0], sp.Basic)
                else _product_lines(note_math_latex(side, p))
                for side in sides
            ]
            out.append((note_math_latex(lhs, p), lines))
    return out


def latex_document(ex: Explanation, printers: Printers = DEFAULT_PRINTERS) -> str:
    """A complete LaTeX document (article + amsmath) that pdflatex compiles without an overfull box:
    headings and prose as text with their math as math, notes as text between the formulas, long
    formulas broken over lines."""
    out = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{amsmath}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
        r"\raggedright\sloppy",
        rf"\section*{{{words_latex(ex.title)}}}",
        rf"\noindent Shown: {words_latex(ex.heading)}.",
        "",
        *[x for line in (*ex.intro, *notation_legend(ex)) for x in (words_latex(line, ex.printers), "")],
        rf"\noindent Generated by symprop {__version__} from spec hash \texttt{{{ex.spec.hash()}}}.",
    ]
    for s in ex.sections:
        p = section_printers(s, printers.digits)
        out += ["", rf"\subsection*{{{note_latex(s.title, p)}}}"]
        out += [x for n in s.notes for x in (note_latex(n, p) + ".", "")]
        groups: list[list[str]] = [[]]
        for v in s.vector:  # one statement per line, one side per line: lhs &= side \\ &= side
            if isinstance(v, Note) and not v.is_math:  # words in it: a paragraph, its math inline
                groups += [[note_latex(v, p) + "."], []]
                continue
            for lhs, sides in _statements(v, p):
                if not sides:
                    groups[-1].append(f"&{lhs}")
                for k, side in enumerate(sides):
                    first, *rest = side
                    groups[-1].append(f"{lhs if k == 0 else ''} &= {first}".lstrip())
                    groups[-1] += [rf"&\quad {line}" for line in rest]
        for eq in s.equations:
            lines = factor_lines(eq.factors, p.digits) if eq.factors else latex_lines(tidy(eq.rhs, p.digits), p.digits)
            groups[-1].append(f"{lhs_latex(eq, p)} &= {lines[0]}")
            groups[-1] += [rf"&\quad {line}" for line in lines[1:]]
            if eq.note:  # a paragraph between two align blocks (a text row would widen the lhs column)
                groups += [[note_latex(eq.note, p) + "."], []]
        for k, group in enumerate(groups):
            if k % 2:  # a note
                out += ["", rf"\noindent {group[0]}"]
            elif group:
                rows = [f"  {row} \\\\" for row in group[:-1]] + [f"  {group[-1]}"]
                out += [r"\begin{align*}", *rows, r"\end{align*}"]
    out += [r"\end{document}"]
    return "\n".join(out) + "\n"


def _product_lines(side: str, width: int = LINE_WIDTH) -> list[str]:
    """A long product ``f \\cdot g \\cdot ...`` over several lines, each after the first starting with
    the dot (a line never ends with one)."""
    if visual_width(side) <= width:
        return [side]
    lines: list[str] = []
    for k, factor in enumerate(side.split(r" \cdot ")):
        piece = factor if k == 0 else r"\cdot " + factor
        if lines and visual_width(lines[-1] + piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return lines


def _render_markdown(ex: Explanation, printers: Printers) -> str:
    """A report for a code-hosting site: the spec, then a section per layer of one-line ``$$...$$`` formulas.

    Titles, notes and the intro are words with inline ``$...$`` math."""
    spec = ex.spec
    made = f" with `{ex.command}`" if ex.command else ""
    out = [
        f"# {note_markdown(note(spec.name + ': ') + _as_note(ex.heading))}",
        "",
        f"Generated by symprop {__version__}{made} from spec hash `{spec.hash()}`.",
        "",
        f"{note_markdown(ex.title)}:",
        "",
        "```toml",
        spec.to_toml().rstrip("\n"),
        "```",
    ]
    intro = (*(note_markdown(line, ex.printers) for line in ex.intro), *notation_legend(ex))
    if intro:
        out += ["", *[f"{line}  " for line in intro[:-1]], intro[-1]]
    for s in ex.sections:
        p = section_printers(s, printers.digits)
        out += ["", f"## {note_markdown(s.title, p)}"]
        out += [x for n in s.notes for x in ("", f"Note: {note_markdown(n, p)}.")]
        out += [x for v in s.vector for x in ("", f"$${markdown_math(vector_latex(v, p))}$$")]
        for eq in s.equations:
            out += ["", f"$${markdown_math(f'{lhs_latex(eq, p)} = {rhs_latex(eq, p)}')}$$"]
            if eq.note:
                out += ["", note_markdown(eq.note, p)]
    return "\n".join(out) + "\n"


def _joined(notes: list[Note], op: Op) -> Note:
    parts: list[Part] = []
    for k, n in enumerate(notes):
        parts += [op] * (k > 0) + list(n.parts)
    return Note(tuple(parts))


def _as_note(words: Words) -> Note:
    return words if isinstance(words, Note) else note(words)


def explain(
    spec: Spec,
    fmt: str = "text",
    param: str | None = None,
    expand: bool = False,
    collapse: bool = False,
    digits: int = DEFAULT_DIGITS,
    standalone: bool = False,
    symbolic_params: bool = False,
    second: bool = False,
    values: str | Path | None = None,
    sample: str | None = None,
    lr: float = DEFAULT_LR,
    seed: int = 0,
) -> str:
    """What ``symprop explain`` prints; :class:`ExplainError` for a bad combination of options.

    The chain-rule and ``--param`` views end with the worked example (text, Markdown, LaTeX) on
    the params of ``values`` (a ``.npz``) and the sample ``"x1,...;y1,..."``; what is not given
    is the seeded random problem (``seed``), said so in the text
    (:mod:`symprop.explain.worked`; bad values raise its ``WorkedError``).

    ``symbolic_params`` keeps activation parameters as symbols named like the spec keys
    (σ'(z) = β a (1 − a)); the generated code always has them substituted."""
    if fmt not in FORMATS:
        raise ExplainError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    spec = validate(spec)  # custom expressions re-printed from SymPy: no raw user text below
    options = [f"--param {param}"] * (param is not None) + ["--expand"] * expand + ["--collapse"] * collapse
    options += [f"--digits {digits}"] * (digits != DEFAULT_DIGITS) + ["--standalone"] * standalone
    options += ["--symbolic-params"] * symbolic_params + ["--second-order"] * second
    # the user's file name and sample text are not copied into the output: the options are named only
    options += ["--params P.npz"] * (values is not None) + ["--sample X;Y"] * (sample is not None)
    options += [f"--lr {lr:g}"] * (lr != DEFAULT_LR) + [f"--at {seed}"] * (seed != 0)
    command = " ".join(["symprop explain", spec.file_label, *options, f"--format {fmt}"])
    if second:
        if param is not None or expand or collapse:
            raise ExplainError(
                "--second-order shows the Hessian-vector product's sweep; drop --param, --expand, --collapse"
            )
        ex = second_order(spec, symbolic_params)
    elif collapse:
        if param is not None or expand:
            raise ExplainError("--collapse shows the whole network as one affine map; drop --param and --expand")
        ex = collapsed(spec)
    elif param is not None:
        parse_label(param, spec)  # fail on a bad label before deriving anything
        if spec.n_params > MAX_PER_NEURON_PARAMS:  # the per-neuron view unrolls every parameter
            raise ExplainError(
                f"--param: this network has {spec.n_params:,} parameters; the per-neuron view is limited to "
                f"{MAX_PER_NEURON_PARAMS:,}; run explain without --param for the layer formulas"
            )
        ex = parameter(spec, param, expand, symbolic_params=symbolic_params)
    elif expand:
        if spec.n_params > MAX_PER_NEURON_PARAMS:
            raise ExplainError(
                f"--expand: this network has {spec.n_params:,} parameters; the per-neuron view is limited to "
                f"{MAX_PER_NEURON_PARAMS:,}; run explain without --expand for the layer formulas"
            )
        ex = every_parameter_expanded(spec, symbolic_params=symbolic_params)
    else:
        ex = chain_rule(spec, symbolic_params)
    text = render(replace(ex, command=command), fmt, digits, standalone)
    example = fmt != "sympy" and not (second or collapse or expand)
    if not example:
        if values is not None or sample is not None:
            raise ExplainError("--params and --sample choose the worked example: drop --format sympy, --expand, ...")
        return text
    bs = blocks(compute(spec, problem(spec, values, sample, seed), lr))
    if fmt == "text":
        return text + "\nWorked example (one sample, one update):\n" + render_worked_text(bs)
    if fmt == "markdown":
        return text + "\n## Worked example\n" + render_worked_markdown(bs)
    worked = render_worked_latex(bs, standalone=standalone)
    if standalone:
        return text.replace(r"\end{document}", r"\section*{Worked example}" + worked + r"\end{document}")
    return text + "\n% Worked example\n" + worked


__all__ = ["FORMATS", "ExplainError", "Explanation", "explain", "parse_entry", "parse_label", "plain", "render"]
