"""Presentation stage: the derivatives of a spec, as text, LaTeX, Markdown or SymPy (``symprop explain``).

Nothing here derives anything: it is a view of the IR.  The per-layer formulas are the
program's (:class:`symprop.ir.program.LayerMath`, ``OutputMath``) and the whole-layer lines
are the notes of its statements, the same texts the generated modules carry as comments;
per-parameter formulas read the per-neuron program (:mod:`symprop.explain.view`).  This
module only arranges them:

* :func:`chain_rule` — per layer: δ^L = ∂C_k/∂a^L ⊙ f'(z^L), ∂C_k/∂W^l,
  ∂C_k/∂b^l, ∂C_k/∂a^(l−1) = (W^l)ᵀ δ^l, with generic unit indices j (this
  layer) and i (the layer below);
* :func:`parameter` — one scalar parameter per sample, compact (over z, a, δ
  with their definitions) or expanded (inputs, targets, parameters only);
* :func:`collapsed` — an all-identity network as the single affine map W x + B;

and :func:`render` prints an :class:`Explanation` in one of :data:`FORMATS`.
Symbol names are the per-neuron program's: ``x1``, ``y1``, ``W{l}_{j}_{i}``, ``b{l}_{j}``,
``z{l}_{j}``, ``a{l}_{j}``, ``delta{l}_{j}``, ``dC_da{l}_{j}``, 1-based.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp

from symprop import __version__
from symprop.explain.notation import (
    DEFAULT_DIGITS,
    LINE_WIDTH,
    Printers,
    chain_product,
    factor_lines,
    latex_lines,
    latex_name,
    legend,
    markdown_math,
    note_latex,
    note_parts,
    prose_latex,
    scalar_view,
    text_name,
    tidy,
    visual_width,
    whole_chain,
)
from symprop.explain.view import UnitView, sym
from symprop.explain.worked import DEFAULT_LR, blocks, compute, problem
from symprop.explain.worked import render_latex as render_worked_latex
from symprop.explain.worked import render_markdown as render_worked_markdown
from symprop.explain.worked import render_text as render_worked_text
from symprop.ir.backprop import derive
from symprop.ir.program import AddBias, Kind, Map, MatMul, Note, Program, Reduce, Role
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
_LABEL = re.compile(r"(?P<array>[Wb])(?P<layer>\d+)\[(?P<index>[^\]]*)\]")


class ExplainError(ValueError):
    """A bad explain option (unknown parameter, bad format...): one line, exit 2 on the command line."""


@dataclass(frozen=True)
class Equation:
    """``name = rhs``.  ``name`` is an identifier (the left side in ``--format sympy``).

    ``lhs``/``lhs_latex`` default to a reading of ``name``; ``text`` replaces the
    whole text line where it is shared with the generated modules' comments;
    ``factors`` (whose product is ``rhs``) are printed in the chain rule's order.
    """

    name: str
    rhs: sp.Expr
    lhs: str | None = None
    lhs_latex: str | None = None
    text: str | Note | None = None
    note: str = ""
    factors: tuple[sp.Expr, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    equations: tuple[Equation, ...]
    # whole-layer statements, (text, LaTeX), shown before the equations (not in --format sympy)
    vector: tuple[tuple[str | Note, str], ...] = ()  # (text, LaTeX); a Note is printed in the format's notation
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    spec: Spec
    heading: str  # what is explained, e.g. "the chain rule, layer by layer"
    intro: tuple[str, ...]
    sections: tuple[Section, ...]
    command: str = ""  # the command line that printed it (shown in the Markdown report)

    @property
    def title(self) -> str:
        return _title(self.spec)


# ------------------------------------------------------------------ names --
def sympy_name(label: str) -> str:
    """``W2[1,3]`` -> ``dC_dW2_1_3``: the identifier of a gradient in ``--format sympy``."""
    return "dC_d" + re.sub(r"\W+", "_", label).strip("_")


def _prev(l: int, index: str) -> sp.Symbol:
    """a^(l-1) with unit ``index`` (x for l = 1)."""
    return sym(f"x_{index}" if l == 1 else f"a{l - 1}_{index}")


# --------------------------------------------------------------- the math --
def chain_rule(spec: Spec, symbolic_params: bool = False) -> Explanation:
    """The chain rule per layer, as derived for this spec's activations and loss."""
    program = derive(spec, symbolic_params)
    L = len(spec.layers)
    sections = [_cost_section(program)]
    if spec.inputs == 1 and all(layer.units == 1 for layer in spec.layers):
        rows = tuple((s.text(), s.latex()) for s in scalar_view(L, spec.loss == "softmax_ce"))
        note = "one unit per layer: the same chain rule in scalars (the layer sections below give the general form)"
        sections.append(Section("The scalar view", (), rows, (note,)))
    for l in range(L, 0, -1):
        sections.append(_layer_section(program, l))
    intro = (
        "Per sample k: delta{l}_j = dC_k/dz{l}_j is the error of unit j of layer l; "
        "i indexes the units of layer l-1 (layer 0 is the input x).",
        "The batch cost is C = (1/n) Σ_k C_k, so every gradient of the module is the batch mean: "
        "dC/dW{l}[j,i] = (1/n) Σ_k dC_k/dW{l}_j_i.",
    )
    return Explanation(spec, "the chain rule, layer by layer", intro + _warnings(program), tuple(sections))


def _cost_section(program: Program) -> Section:
    spec = program.spec
    L = len(spec.layers)
    if spec.loss == "softmax_ce":
        k = spec.outputs
        zs = [sym(f"z{j}") for j in range(1, k + 1)]
        ys = [sym(f"y{j}") for j in range(1, k + 1)]
        subs = {z: sym(f"z{L}_{j}") for j, z in enumerate(zs, 1)} | {y: sym(f"y{j}") for j, y in enumerate(ys, 1)}
        cost = program.output.loss.xreplace(subs)
        note = "softmax cross-entropy on the logits z: -sum_j y_j log softmax(z)_j"
    else:
        ell = per_unit_loss(spec).xreplace({A: sym(f"a{L}_j"), Y: sym("y_j")})
        cost = sp.Sum(ell, (J, 1, spec.outputs))
        note = f"loss {spec.loss}, summed over the {spec.outputs} output unit(s)"
    eqs = [Equation("loss_k", cost, "C_k", "C_k", note=note)]
    if spec.l2:  # the penalty is part of the batch cost, not of one sample's
        lam = sp.Float(spec.l2)
        penalty = sp.Add(*[sym(f"sumsq_W{l}") for l in range(1, L + 1)])
        eqs.append(
            Equation(
                "C",
                sym("C_mean") + lam / 2 * penalty,
                "C",
                "C",
                note="C_mean = (1/n) sum_k C_k; sumsq_Wl = sum of the squared weights of layer l "
                "(the L2 penalty l2/2 sum_l |W_l|^2; biases are not penalised)",
            )
        )
    return Section("Cost of one sample", tuple(eqs))


def _notes(program: Program, l: int) -> dict[str, Note]:
    """The whole-layer formula texts of layer l: the notes of the statements the module prints."""
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


def _layer_section(program: Program, l: int) -> Section:
    spec = program.spec
    L = len(spec.layers)
    layer = program.layers[l - 1]
    out = program.output
    a_j, z_j, y_j = sym(f"a{l}_j"), sym(f"z{l}_j"), sym("y_j")
    at = {A: a_j, Z: z_j, Y: y_j}
    dC_da = sym(f"dC_da{l}_j")
    delta = sym(f"delta{l}_j")
    role = "output" if l == L else "hidden"
    title = f"Layer {l} ({role}, {layer.units} unit{'s' if layer.units > 1 else ''}, {layer.label})"
    eqs = [
        Equation(f"f{l}", layer.f, f"f{l}(z)", f"f_{{{l}}}(z)", note=f"a{l}_j = f{l}(z{l}_j)"),
        Equation(
            f"df{l}",
            layer.df,
            f"f{l}'(z)",
            f"f_{{{l}}}'(z)",
            note=f"derived by SymPy, in terms of a = f{l}(z)" if layer.df.has(A) else "derived by SymPy",
        ),
    ]
    notes: list[str] = []
    texts = _notes(program, l)
    delta_lhs = f"delta{l}_j = dC_k/dz{l}_j"
    delta_lhs_latex = rf"\delta^{{({l})}}_{{j}} = \frac{{\partial C_k}}{{\partial z^{{({l})}}_{{j}}}}"
    vector = [(texts["DELTA"], _vector_delta_latex(l))]
    if l == L and spec.loss == "softmax_ce":
        d = out.delta.xreplace({P: sym(f"softmax{L}_j"), SY: sym("sum_y"), Y: y_j})
        note = f"derived by SymPy: d/dz_j of C_k; softmax{L}_j = exp(z{L}_j)/sum_i exp(z{L}_i), sum_y = sum_i y_i"
        eqs.append(Equation(f"delta{L}_j", d, delta_lhs, delta_lhs_latex, note=note))
        vector = [(texts["DELTA"], _vector_softmax_latex(L))]
        notes.append("softmax and cross-entropy are differentiated together in z: delta = softmax(z) - y for one-hot y")
    elif l == L:
        assert out.dloss_da is not None
        dl_da = out.dloss_da.xreplace(at)
        if dl_da.is_rational_function(a_j, y_j):
            dl_da = sp.factor(dl_da)  # 2*(a - y) rather than 2*a - 2*y
        eqs.append(Equation(f"dC_da{L}_j", dl_da, note=f"d/da of the loss of unit j, at a = a{L}_j"))
        how = f"dC_k/da{L}_j * f{L}'(z{L}_j)"
        if out.fused:
            how += ", loss and activation differentiated together in z (numerically stable), then simplified"
        else:
            how += ", simplified by SymPy"
        eqs.append(Equation(f"delta{L}_j", out.delta.xreplace(at), delta_lhs, delta_lhs_latex, note=how))
        if out.clipped:
            notes.append(f"bce on a {spec.layers[-1].activation!r} output: a is clipped into [eps, 1-eps] inside log")
    else:
        local = layer.df.xreplace(at)
        eqs.append(Equation(f"delta{l}_j", local * dC_da, delta_lhs, delta_lhs_latex, factors=(local, dC_da)))
    prev = _prev(l, "i")
    eqs.append(Equation(f"dC_dW{l}_j_i", delta * prev, factors=(delta, prev)))
    eqs.append(Equation(f"dC_db{l}_j", delta))
    penalty = (" ", *texts["PENALTY"].parts) if "PENALTY" in texts else ()
    grads = Note((*texts["GRAD_W"].parts, *penalty, ";  ", *texts["GRAD_B"].parts))
    vector.append((grads, _vector_grad_latex(l)))
    if l > 1:
        total = sp.Sum(sym(f"W{l}_j_i") * delta, (J, 1, layer.units))
        eqs.append(
            Equation(f"dC_da{l - 1}_i", total, note=f"= (W{l}^T delta{l})_i, the error sent down to layer {l - 1}")
        )
        if "UPSTREAM" in texts:
            vector.append(
                (
                    texts["UPSTREAM"],
                    rf"\frac{{\partial C_k}}{{\partial a^{{({l - 1})}}}} = W^{{({l})\top}} \delta^{{({l})}}",
                )
            )
    return Section(title, tuple(eqs), tuple(vector), tuple(notes))


def _vector_delta_latex(l: int) -> str:
    return rf"\delta^{{({l})}} = \frac{{\partial C_k}}{{\partial a^{{({l})}}}} \odot f_{{{l}}}'\left(z^{{({l})}}\right)"


def _vector_softmax_latex(l: int) -> str:
    return rf"\delta^{{({l})}} = \operatorname{{softmax}}\left(z^{{({l})}}\right) \textstyle\sum_j y_j - y"


def _vector_grad_latex(l: int) -> str:
    prev = "x^{\\top}" if l == 1 else f"a^{{({l - 1})\\top}}"
    return (
        rf"\frac{{\partial C}}{{\partial W^{{({l})}}}} = \frac{{1}}{{n}} \sum_k \delta^{{({l})}} {prev},"
        rf"\quad \frac{{\partial C}}{{\partial b^{{({l})}}}} = \frac{{1}}{{n}} \sum_k \delta^{{({l})}}"
    )


def parse_label(label: str, spec: Spec) -> str:
    """Validate ``W2[1,3]`` / ``b1[2]`` (1-based) against the spec; return it normalised (no spaces)."""
    text = re.sub(r"\s+", "", label)
    printed = re.fullmatch(r"([Wb])(\d+)((?:_\d+)+)", text)  # the printed name W2_1_3
    if printed:
        text = f"{printed[1]}{printed[2]}[{printed[3][1:].replace('_', ',')}]"
    bare = re.fullmatch(r"([Wb])(\d+)", text)  # W2 / b3 of a one-entry array
    if bare and f"{text}" in spec.param_shapes:
        shape = spec.param_shapes[text]
        if math.prod(shape) != 1:
            ones = ",".join(["1"] * len(shape))
            raise ExplainError(
                f"--param {label!r}: {text} has shape {shape}; name one entry, 1-based, e.g. {text}[{ones}]"
            )
        text = f"{text}[{','.join(['1'] * len(shape))}]"
    m = _LABEL.fullmatch(text)
    if m is None:
        raise ExplainError(
            f"--param {label!r}: expected W<l>[j,i] or b<l>[j], 1-based, e.g. W2[1,3], W2_1_3 or b1[2]"
            " (W<l> alone for a 1x1 layer)"
        )
    array, layer = m["array"], int(m["layer"])
    parts = m["index"].split(",")
    L = len(spec.layers)
    if not 1 <= layer <= L:
        raise ExplainError(f"--param {label!r}: there is no layer {layer}; this network has layers 1-{L}")
    shape = spec.param_shapes[f"{array}{layer}"]
    if len(parts) != len(shape) or not all(p.isdigit() for p in parts):
        want = f"W{layer}[j,i] with two indices" if array == "W" else f"b{layer}[j] with one index"
        raise ExplainError(f"--param {label!r}: expected {want}, 1-based")
    index = tuple(int(p) for p in parts)
    if not all(1 <= k <= n for k, n in zip(index, shape, strict=True)):
        ranges = " and ".join(f"1-{n}" for n in shape)
        raise ExplainError(
            f"--param {label!r}: index out of range; {array}{layer} has shape {shape}, indices {ranges} (1-based)"
        )
    return f"{array}{layer}[{','.join(map(str, index))}]"


WHOLE_CHAIN_PATH = (
    "second line: the product along one highlighted path (this unit, then unit 1 of every layer above); "
    "the derivative is the sum of such products over all paths, which the delta recursion below computes"
)
WHOLE_CHAIN_SCALAR = "second line: the whole chain-rule product, from the parameter up to the loss"


def parameter(
    spec: Spec, label: str, expand: bool = False, view: UnitView | None = None, symbolic_params: bool = False
) -> Explanation:
    """∂C_k/∂(one parameter), per sample: compact with its definitions, or expanded."""
    d = view or UnitView(spec, derive(spec, symbolic_params))
    g = d.gradient(parse_label(label, spec))
    name = sympy_name(g.label)
    lhs = f"dC_k/d{g.label}"
    lhs_latex = latex_name("dC_d" + g.param.name)
    batch = f"the batch gradient dC/d{g.label} is the mean over the samples k"
    warnings = _warnings(d.program)
    if expand:
        expanded = _expand_all(d, [g.per_sample])[0]
        eq = Equation(name, expanded, lhs, lhs_latex, note=batch)
        section = Section(f"dC_k/d{g.label} in inputs, targets and parameters", (eq,))
        written = "Written out in the inputs x, targets y and parameters W, b only (every z, a and delta substituted)."
        return Explanation(spec, f"dC_k/d{g.label}, expanded", (written, *warnings), (section,))
    factors = (g.delta,) if g.activation is None else (g.delta, g.activation)
    top = Equation(name, g.per_sample, lhs, lhs_latex, text=f"{lhs} = {g.formula_text}", note=batch, factors=factors)
    product = chain_product(g.label, len(spec.layers), spec.loss == "softmax_ce")
    needed = _closure(g.per_sample, d.defs)
    backward = [_compact_equation(d, s) for s in _backward_order(d) if s in needed]
    forward = [Equation(s.name, d.defs[s]) for s in d.order if s in needed and d.kind(s) in (Kind.Z, Kind.A)]
    chain = (product.text(), product.latex())
    sizes = spec.layer_sizes
    whole = whole_chain(g.label, sizes, spec.loss == "softmax_ce")
    vector = [chain, (whole.text(), whole.latex())]
    notes = (WHOLE_CHAIN_SCALAR if all(s == 1 for s in sizes) else WHOLE_CHAIN_PATH,)
    sections = [Section(f"dC_k/d{g.label}, per sample", (top,), tuple(vector), notes)]
    if backward:
        sections.append(
            Section("Backpropagated errors (chain rule, from this layer up to the output)", tuple(backward))
        )
    if forward:
        sections.append(Section("Forward pass (the z and a used above)", tuple(forward)))
    intro = (
        f"{g.label} is the {_describe_param(g.array, g.index)}; indices are 1-based.",
        "Compact form: over the z, a and delta symbols, each defined below (same formulas as the module's comments).",
    )
    return Explanation(spec, f"dC_k/d{g.label}", intro + warnings, tuple(sections))


def _describe_param(array: str, index: tuple[int, ...]) -> str:
    l = int(array[1:])
    if array.startswith("W"):
        j, i = (k + 1 for k in index)
        src = f"input {i}" if l == 1 else f"neuron {i} of layer {l - 1}"
        return f"weight from {src} to neuron {j} of layer {l}"
    return f"bias of neuron {index[0] + 1} of layer {l}"


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


def _compact_equation(d: UnitView, s: sp.Symbol) -> Equation:
    if d.kind(s) is Kind.DELTA:
        factors = (d.local(s), d.upstream[s]) if s in d.upstream else ()
        l, j = d.layer_unit(s)
        return Equation(
            s.name,
            d.defs[s],
            f"{s.name} = dC_k/dz{l}_{j}",
            rf"{latex_name(s.name)} = \frac{{\partial C_k}}{{\partial {latex_name(f'z{l}_{j}')}}}",
            text=d.delta_text(s),
            factors=factors,
        )
    return Equation(s.name, d.defs[s], note="sum over the units of the layer above")


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
        eqs = tuple(
            Equation(sympy_name(g.label), e, f"dC_k/d{g.label}", latex_name("dC_d" + g.param.name))
            for g, e in zip(d.gradients, expanded, strict=True)
            if g.array[1:] == str(l)
        )
        sections.append(Section(f"Layer {l}: W{l} and b{l}", eqs))
    intro = (
        "Every per-sample gradient dC_k/dp, written out in the inputs x, targets y and parameters W, b only.",
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
    vector: list[tuple[str | Note, str]] = []
    for s in hvp.body:
        seen_backward = seen_backward or s.role is Role.LOSS
        if s.role is not Role.CURVATURE:
            continue
        if isinstance(s, MatMul):
            left = s.left.name + ("^T" if s.left_t else "")
            right = s.right.name + ("^T" if s.right_t else "")
            vector.append(
                (f"{s.out.name} = {left} {right}", rf"\mathrm{{{s.out.name}}} = \mathrm{{{left}}}\,\mathrm{{{right}}}")
            )
            continue
        if isinstance(s, AddBias):
            vector.append(
                (f"{s.out.name} += {s.bias.name}", rf"\mathrm{{{s.out.name}}} \mathrel{{+}}= \mathrm{{{s.bias.name}}}")
            )
            continue
        if isinstance(s, Map | Reduce):
            eq = Equation(s.out.name, s.expr, note="summed over the batch" if isinstance(s, Reduce) else "")
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
        Section("Backward sweep: R(delta) and the product", tuple(backward)),
    )
    return Explanation(spec, "the Hessian-vector product", intro, sections)


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
    product = " ".join(f"W{l}" for l in range(L, 0, -1))
    bias = "b1"
    for l in range(2, L + 1):
        bias = f"W{l} {bias if l == 2 else '(' + bias + ')'} + b{l}"
    eqs = [
        Equation(f"W_{j + 1}_{i + 1}", sp.expand(W[j, i]), f"W[{j + 1},{i + 1}]", f"W_{{{j + 1},{i + 1}}}")
        for j in range(W.rows)
        for i in range(W.cols)
    ]
    eqs += [Equation(f"B_{j + 1}", sp.expand(B[j]), f"B[{j + 1}]", f"B_{{{j + 1}}}") for j in range(B.rows)]
    note = (
        f"Every activation is identity, so the {L} layer(s) are one affine map a{L} = W x + B "
        f"with W = {product} (shape {sizes[-1]}x{sizes[0]}) and B = {bias}: depth adds nothing here."
    )
    section = Section(f"W = {product} and B = {bias}", tuple(eqs))
    return Explanation(spec, "one affine map", (note,), (section,))


def _title(spec: Spec) -> str:
    acts = " -> ".join(layer.describe() for layer in spec.layers)
    sizes = "-".join(map(str, spec.layer_sizes))
    return f"{spec.name}: {sizes} network ({acts}), loss {spec.loss}"


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


def lhs_text(eq: Equation) -> str:
    return eq.lhs if eq.lhs is not None else text_name(eq.name)


def lhs_latex(eq: Equation) -> str:
    if eq.lhs_latex is not None:
        return eq.lhs_latex
    return latex_name(eq.name) or r"\mathrm{" + eq.name.replace("_", r"\_") + "}"


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
    out = [f"{ex.title}: {ex.heading}", *ex.intro, *notation_legend(ex)]
    for s in ex.sections:
        out += ["", s.title + ":"]
        out += [f"  {text if isinstance(text, str) else text.render(printers.text)}" for text, _ in s.vector]
        out += [f"  ({note})" for note in s.notes]
        for eq in s.equations:
            if isinstance(eq.text, Note):
                line = eq.text.render(printers.text)
            else:
                line = eq.text if eq.text is not None else f"{lhs_text(eq)} = {rhs_text(eq, printers)}"
            out.append(f"  {line}" + (f"    # {eq.note}" if eq.note else ""))
    return "\n".join(out) + "\n"


def _render_latex(ex: Explanation, printers: Printers) -> str:
    out = [f"% {ex.title}: {ex.heading}", *(f"% {line}" for line in (*ex.intro, *notation_legend(ex)))]
    for s in ex.sections:
        out += ["", f"% {s.title}", *(f"% {note}" for note in s.notes), r"\begin{align*}"]
        rows = [latex.replace(" = ", " &= ", 1) for _, latex in s.vector]
        for eq in s.equations:
            note = rf" && \text{{{note_latex(eq.note)}}}" if eq.note else ""
            rows.append(f"{lhs_latex(eq)} &= {rhs_latex(eq, printers)}{note}")
        out += [f"  {row} \\\\" for row in rows[:-1]] + [f"  {rows[-1]}", r"\end{align*}"]
    return "\n".join(out) + "\n"


def latex_document(ex: Explanation, printers: Printers = DEFAULT_PRINTERS) -> str:
    """A complete LaTeX document (article + amsmath) that pdflatex compiles without an overfull box:
    headings and prose as text, notes as text between the formulas, long formulas broken over lines."""
    out = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{amsmath}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
        r"\raggedright\sloppy",
        rf"\section*{{{prose_latex(ex.title)}}}",
        rf"\noindent Shown: {prose_latex(ex.heading)}.",
        "",
        *[x for line in (*ex.intro, *notation_legend(ex)) for x in (prose_latex(line), "")],
        rf"\noindent Generated by symprop {__version__} from spec hash \texttt{{{ex.spec.hash()}}}.",
    ]
    for s in ex.sections:
        out += ["", rf"\subsection*{{{prose_latex(s.title)}}}"]
        out += [x for note in s.notes for x in (prose_latex(note) + ".", "")]
        groups: list[list[str]] = [[]]
        for _, latex in s.vector:  # one statement per line, one side per line: lhs &= side \\ &= side
            for statement in latex.split(r",\quad "):
                lhs, *sides = statement.split(" = ")
                for k, side in enumerate(sides):
                    first, *rest = _product_lines(side)
                    groups[-1].append(f"{lhs if k == 0 else ''} &= {first}".lstrip())
                    groups[-1] += [rf"&\quad {line}" for line in rest]
        for eq in s.equations:
            if eq.factors:
                lines = factor_lines(eq.factors, printers.digits)
            else:
                lines = latex_lines(tidy(eq.rhs, printers.digits), printers.digits)
            groups[-1].append(f"{lhs_latex(eq)} &= {lines[0]}")
            groups[-1] += [rf"&\quad {line}" for line in lines[1:]]
            if eq.note:  # a paragraph between two align blocks (a text row would widen the lhs column)
                groups += [[prose_latex(eq.note) + "."], []]
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

    Notes go below their formula as words with inline ``$...$`` math."""
    spec = ex.spec
    made = f" with `{ex.command}`" if ex.command else ""
    out = [
        f"# {spec.name}: {ex.heading}",
        "",
        f"Generated by symprop {__version__}{made} from spec hash `{spec.hash()}`.",
        "",
        f"{ex.title}:",
        "",
        "```toml",
        spec.to_toml().rstrip("\n"),
        "```",
    ]
    intro = (*ex.intro, *notation_legend(ex))
    if intro:
        out += ["", *[f"{line}  " for line in intro[:-1]], intro[-1]]
    for s in ex.sections:
        out += ["", f"## {s.title}"]
        out += [x for note in s.notes for x in ("", f"Note: {note}.")]
        out += [x for _, latex in s.vector for x in ("", f"$${markdown_math(latex)}$$")]
        for eq in s.equations:
            out += ["", f"$${markdown_math(f'{lhs_latex(eq)} = {rhs_latex(eq, printers)}')}$$"]
            if eq.note:
                out += ["", _markdown_note(eq.note)]
    return "\n".join(out) + "\n"


def _markdown_note(note: str) -> str:
    """A note as Markdown: words as they are (Markdown punctuation escaped), math as ``$...$``."""
    parts = []
    for kind, text in note_parts(note):
        parts.append(re.sub(r"([*_`\\\[\]<>])", r"\\\1", text) if kind == "text" else f"${markdown_math(text)}$")
    return "".join(parts)


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


__all__ = ["FORMATS", "ExplainError", "Explanation", "explain", "parse_label", "plain", "render"]
