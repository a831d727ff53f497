"""Presentation stage: the derivatives of a spec, as text, LaTeX, Markdown or SymPy (``symprop explain``).

Nothing here derives anything.  The formulas are the ones the generator uses:
f'(z) and ∂ℓ/∂a from :mod:`symprop.elementwise`, the δ and gradient assignments
from :mod:`symprop.derive` (whose one-line texts are also the generated
modules' comments).  This module only arranges them:

* :func:`chain_rule` — per layer: δ^L = ∂C_k/∂a^L ⊙ f'(z^L), ∂C_k/∂W^l,
  ∂C_k/∂b^l, ∂C_k/∂a^(l−1) = (W^l)ᵀ δ^l, with generic unit indices j (this
  layer) and i (the layer below);
* :func:`parameter` — one scalar parameter per sample, compact (over z, a, δ
  with their definitions) or expanded (inputs, targets, parameters only);
* :func:`collapsed` — an all-identity network as the single affine map W x + B;

and :func:`render` prints an :class:`Explanation` in one of :data:`FORMATS`.
Symbol names are graph.py's: ``x1``, ``y1``, ``W{l}_{j}_{i}``, ``b{l}_{j}``,
``z{l}_{j}``, ``a{l}_{j}``, ``delta{l}_{j}``, 1-based.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symprop import __version__
from symprop.derive import Derivation, derive
from symprop.elementwise import A, Y, Z, activation_math, gradient_warnings, output_math, per_unit_loss, softmax_math
from symprop.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus, log1p
from symprop.graph import build_network, sym
from symprop.spec import Spec, validate

FORMATS = ("text", "latex", "markdown", "sympy")
# An expanded formula is a tree with every z, a and δ written out; printing one
# larger than this (in SymPy nodes) takes long and is unreadable anyway.
MAX_EXPANDED_NODES = 200_000
# SymPy substitutes and prints trees recursively, several Python frames per level: deeper trees
# than this would hit the interpreter's recursion limit (1,000 frames) instead of printing.
MAX_EXPANDED_DEPTH = 150
I = sp.Symbol("i", integer=True, positive=True)
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
    text: str | None = None
    note: str = ""
    factors: tuple[sp.Expr, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    equations: tuple[Equation, ...]
    # whole-layer statements, (text, LaTeX), shown before the equations (not in --format sympy)
    vector: tuple[tuple[str, str], ...] = ()
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


def latex_name(name: str) -> str | None:
    """LaTeX for symprop's symbol names (``W2_1_3`` -> ``W^{(2)}_{1,3}``); None for other names."""
    m = re.fullmatch(r"(W|b|z|a|delta)(\d+)_([0-9a-z]+)(?:_([0-9a-z]+))?", name)
    if m:
        base, layer, j, i = m.groups()
        head = r"\delta" if base == "delta" else base
        return f"{head}^{{({layer})}}_{{{j}{',' + i if i else ''}}}"
    m = re.fullmatch(r"([xy])_?([0-9]+|[a-z])", name)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if name.startswith("dC_d") and (inner := latex_name(name[4:])) is not None:
        return rf"\frac{{\partial C_k}}{{\partial {inner}}}"
    return None


def text_name(name: str) -> str:
    return "dC_k/d" + name[4:] if name.startswith("dC_d") else name


def _prev(l: int, index: str) -> sp.Symbol:
    """a^(l-1) with unit ``index`` (x for l = 1)."""
    return sym(f"x_{index}" if l == 1 else f"a{l - 1}_{index}")


# --------------------------------------------------------------- the math --
def chain_rule(spec: Spec) -> Explanation:
    """The chain rule per layer, as derived for this spec's activations and loss."""
    L = len(spec.layers)
    sections = [_cost_section(spec)]
    for l in range(L, 0, -1):
        sections.append(_layer_section(spec, l))
    intro = (
        "Per sample k: delta{l}_j = dC_k/dz{l}_j is the error of unit j of layer l; "
        "i indexes the units of layer l-1 (layer 0 is the input x).",
        "The batch cost is C = (1/n) sum_k C_k, so every gradient of the module is the batch mean: "
        "dC/dW{l}[j,i] = mean_k dC_k/dW{l}_j_i.",
    )
    return Explanation(spec, "the chain rule, layer by layer", intro + _warnings(spec), tuple(sections))


def _cost_section(spec: Spec) -> Section:
    L = len(spec.layers)
    if spec.loss == "softmax_ce":
        loss, _, zs, ys = softmax_math(spec.outputs)
        subs = {z: sym(f"z{L}_{k}") for k, z in enumerate(zs, 1)} | {y: sym(f"y{k}") for k, y in enumerate(ys, 1)}
        cost = loss.xreplace(subs)
        note = "softmax cross-entropy on the logits z: -sum_j y_j log softmax(z)_j"
    else:
        ell = per_unit_loss(spec).xreplace({A: sym(f"a{L}_j"), Y: sym("y_j")})
        cost = sp.Sum(ell, (J, 1, spec.outputs))
        note = f"loss {spec.loss}, summed over the {spec.outputs} output unit(s)"
    return Section("Cost of one sample", (Equation("loss_k", cost, "C_k", "C_k", note=note),))


def _layer_section(spec: Spec, l: int) -> Section:
    L = len(spec.layers)
    layer = spec.layers[l - 1]
    act = activation_math(layer)
    a_j, z_j, y_j = sym(f"a{l}_j"), sym(f"z{l}_j"), sym("y_j")
    at = {A: a_j, Z: z_j, Y: y_j}
    dC_da = sym(f"dC_da{l}_j")
    delta = sym(f"delta{l}_j")
    role = "output" if l == L else "hidden"
    title = f"Layer {l} ({role}, {layer.units} unit{'s' if layer.units > 1 else ''}, {layer.describe()})"
    eqs = [
        Equation(f"f{l}", act.f, f"f{l}(z)", f"f_{{{l}}}(z)", note=f"a{l}_j = f{l}(z{l}_j)"),
        Equation(
            f"df{l}",
            act.df,
            f"f{l}'(z)",
            f"f_{{{l}}}'(z)",
            note=f"derived by SymPy, in terms of a = f{l}(z)" if act.df.has(A) else "derived by SymPy",
        ),
    ]
    notes: list[str] = []
    delta_lhs = f"delta{l}_j = dC_k/dz{l}_j"
    delta_lhs_latex = rf"\delta^{{({l})}}_{{j}} = \frac{{\partial C_k}}{{\partial z^{{({l})}}_{{j}}}}"
    vector = [(f"delta{l} = dC_k/da{l} * f{l}'(z{l})  (elementwise)", _vector_delta_latex(l))]
    if l == L and spec.loss == "softmax_ce":
        _, deltas, zs, ys = softmax_math(spec.outputs)
        subs = {z: sym(f"z{L}_{k}") for k, z in enumerate(zs, 1)} | {y: sym(f"y{k}") for k, y in enumerate(ys, 1)}
        for k, d in enumerate(deltas, 1):
            eqs.append(
                Equation(
                    f"delta{L}_{k}",
                    d.xreplace(subs),
                    f"delta{L}_{k} = dC_k/dz{L}_{k}",
                    rf"\delta^{{({L})}}_{{{k}}} = \frac{{\partial C_k}}{{\partial z^{{({L})}}_{{{k}}}}}",
                )
            )
        vector = [(f"delta{L} = softmax(z{L}) * sum(y) - y", _vector_softmax_latex(L))]
        notes.append("softmax and cross-entropy are differentiated together in z: delta = softmax(z) - y for one-hot y")
    elif l == L:
        out = output_math(spec)
        dl_da = sp.diff(per_unit_loss(spec), A).xreplace(at)
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
            notes.append(f"bce on a {layer.activation!r} output: a is clipped into [eps, 1-eps] inside log")
    else:
        local = act.df.xreplace(at)
        eqs.append(Equation(f"delta{l}_j", local * dC_da, delta_lhs, delta_lhs_latex, factors=(local, dC_da)))
    prev = _prev(l, "i")
    eqs.append(Equation(f"dC_dW{l}_j_i", delta * prev, factors=(delta, prev)))
    eqs.append(Equation(f"dC_db{l}_j", delta))
    vector.append((f"dC/dW{l} = mean_k delta{l} {_vec_prev(l)}^T,  dC/db{l} = mean_k delta{l}", _vector_grad_latex(l)))
    if l > 1:
        total = sp.Sum(sym(f"W{l}_j_i") * delta, (J, 1, layer.units))
        eqs.append(
            Equation(f"dC_da{l - 1}_i", total, note=f"= (W{l}^T delta{l})_i, the error sent down to layer {l - 1}")
        )
        vector.append(
            (
                f"dC_k/da{l - 1} = W{l}^T delta{l}",
                rf"\frac{{\partial C_k}}{{\partial a^{{({l - 1})}}}} = W^{{({l})\top}} \delta^{{({l})}}",
            )
        )
    return Section(title, tuple(eqs), tuple(vector), tuple(notes))


def _vec_prev(l: int) -> str:
    return "x" if l == 1 else f"a{l - 1}"


def _vector_delta_latex(l: int) -> str:
    return rf"\delta^{{({l})}} = \frac{{\partial C_k}}{{\partial a^{{({l})}}}} \odot f_{{{l}}}'\left(z^{{({l})}}\right)"


def _vector_softmax_latex(l: int) -> str:
    return rf"\delta^{{({l})}} = \operatorname{{softmax}}\left(z^{{({l})}}\right) \textstyle\sum_j y_j - y"


def _vector_grad_latex(l: int) -> str:
    prev = "x^{\\top}" if l == 1 else f"a^{{({l - 1})\\top}}"
    return (
        rf"\frac{{\partial C}}{{\partial W^{{({l})}}}} = \operatorname{{mean}}_k \delta^{{({l})}} {prev},"
        rf"\quad \frac{{\partial C}}{{\partial b^{{({l})}}}} = \operatorname{{mean}}_k \delta^{{({l})}}"
    )


def parse_label(label: str, spec: Spec) -> str:
    """Validate ``W2[1,3]`` / ``b1[2]`` (1-based) against the spec; return it normalised (no spaces)."""
    text = re.sub(r"\s+", "", label)
    m = _LABEL.fullmatch(text)
    if m is None:
        raise ExplainError(f"--param {label!r}: expected W<l>[j,i] or b<l>[j], 1-based, e.g. W2[1,3] or b1[2]")
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


def parameter(spec: Spec, label: str, expand: bool = False, derivation: Derivation | None = None) -> Explanation:
    """∂C_k/∂(one parameter), per sample: compact with its definitions, or expanded."""
    d = derivation or derive(spec)
    g = d.gradient(parse_label(label, spec))
    name = sympy_name(g.label)
    lhs = f"dC_k/d{g.label}"
    lhs_latex = latex_name("dC_d" + g.param.name)
    batch = f"the batch gradient dC/d{g.label} is the mean over the samples k"
    if expand:
        expanded = _expand_all(d, [g.per_sample])[0]
        eq = Equation(name, expanded, lhs, lhs_latex, note=batch)
        section = Section(f"dC_k/d{g.label} in inputs, targets and parameters", (eq,))
        written = "Written out in the inputs x, targets y and parameters W, b only (every z, a and delta substituted)."
        return Explanation(spec, f"dC_k/d{g.label}, expanded", (written, *_warnings(spec)), (section,))
    factors = (g.delta,) if g.activation is None else (g.delta, g.activation)
    top = Equation(name, g.per_sample, lhs, lhs_latex, text=f"{lhs} = {g.formula_text}", note=batch, factors=factors)
    defs = _compact_definitions(d)
    needed = _closure(g.per_sample, defs)
    backward = [_compact_equation(d, s, defs) for s in _backward_order(d) if s in needed]
    forward = [Equation(s.lhs.name, s.rhs) for s in d.network.forward if s.lhs in needed]
    sections = [Section(f"dC_k/d{g.label}, per sample", (top,))]
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
    return Explanation(spec, f"dC_k/d{g.label}", intro + _warnings(spec), tuple(sections))


def _describe_param(array: str, index: tuple[int, ...]) -> str:
    l = int(array[1:])
    if array.startswith("W"):
        j, i = (k + 1 for k in index)
        src = f"input {i}" if l == 1 else f"neuron {i} of layer {l - 1}"
        return f"weight from {src} to neuron {j} of layer {l}"
    return f"bias of neuron {index[0] + 1} of layer {l}"


def _compact_definitions(d: Derivation) -> dict[sp.Symbol, sp.Expr]:
    """z, a and δ definitions, hidden δ split as f'(z) · dC_da with dC_da = Σ W δ its own symbol."""
    defs: dict[sp.Symbol, sp.Expr] = {s.lhs: s.rhs for s in d.network.forward}
    for s in d.backward:
        if s.lhs in d.upstream:
            up = _upstream_symbol(s.lhs)
            defs[s.lhs] = d.local[s.lhs] * up
            defs[up] = d.upstream[s.lhs]
        else:
            defs[s.lhs] = s.rhs
    return defs


def _upstream_symbol(delta: sp.Symbol) -> sp.Symbol:
    return sym("dC_da" + delta.name[len("delta") :])


def _backward_order(d: Derivation) -> list[sp.Symbol]:
    """δ (each followed by its dC_da) from layer 1 up to the output: the chain rule read upwards."""
    out: list[tuple[int, int, int, sp.Symbol]] = []
    for s in d.backward:
        l, j = map(int, s.lhs.name[len("delta") :].split("_"))
        out.append((l, j, 0, s.lhs))
        if s.lhs in d.upstream:
            out.append((l, j, 1, _upstream_symbol(s.lhs)))
    return [s for *_, s in sorted(out, key=lambda t: t[:3])]


def _compact_equation(d: Derivation, s: sp.Symbol, defs: dict[sp.Symbol, sp.Expr]) -> Equation:
    if s.name.startswith("delta"):
        factors = (d.local[s], _upstream_symbol(s)) if s in d.upstream else ()
        l, j = s.name[len("delta") :].split("_")
        return Equation(
            s.name,
            defs[s],
            f"{s.name} = dC_k/dz{l}_{j}",
            rf"{latex_name(s.name)} = \frac{{\partial C_k}}{{\partial {latex_name(f'z{l}_{j}')}}}",
            text=d.delta_text(s),
            factors=factors,
        )
    return Equation(s.name, defs[s], note="sum over the units of the layer above")


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


def expanded_shape(d: Derivation, exprs: Iterable[sp.Expr]) -> tuple[int, int]:
    """(nodes, depth) of the expanded trees, counted without building them.

    Iterative, over the compact DAG with a memo: a deep network (hundreds of layers) cannot
    exhaust Python's stack here, and the depth it reports is what ``_expand_all`` bounds
    before SymPy's own recursive substitution and printing see the tree.
    """
    defs = d.definitions()
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


def expanded_size(d: Derivation, exprs: Iterable[sp.Expr]) -> int:
    """Nodes of the expanded trees, counted without building them."""
    return expanded_shape(d, exprs)[0]


def _expand_all(d: Derivation, exprs: list[sp.Expr]) -> list[sp.Expr]:
    n, depth = expanded_shape(d, exprs)
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


def every_parameter_expanded(spec: Spec, derivation: Derivation | None = None) -> Explanation:
    """Every ∂C_k/∂p written out in inputs, targets and parameters, one section per layer."""
    d = derivation or derive(spec)
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
    return Explanation(spec, "every gradient, expanded", intro + _warnings(spec), tuple(sections))


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
    net = build_network(spec)
    L = len(spec.layers)
    W = sp.Matrix(net.W[1])
    B = sp.Matrix(net.b[1])
    for l in range(2, L + 1):
        W = sp.Matrix(net.W[l]) * W
        B = sp.Matrix(net.W[l]) * B + sp.Matrix(net.b[l])
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


def _warnings(spec: Spec) -> tuple[str, ...]:
    return tuple(f"Warning: {w}." for w in gradient_warnings(spec))


# --------------------------------------------------------------- printing --
def plain(expr: sp.Expr) -> sp.Expr:
    """symprop's functions rewritten to plain SymPy, so ``sympy.sympify(str(expr))`` needs no locals."""
    expr = expr.replace(
        lambda e: isinstance(e, Sigmoid | Softplus | Relu | Clip01), lambda e: e.rewrite(sp.exp, deep=False)
    )
    expr = expr.replace(lambda e: isinstance(e, LogSumExp), lambda e: sp.log(sp.Add(*[sp.exp(a) for a in e.args])))
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))


class _Latex(LatexPrinter):
    """LaTeX with symprop's names (W^{(2)}_{1,3}) and functions (σ, softplus, relu, LSE)."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name = latex_name(expr.name)
        return name if name is not None else str(super()._print_Symbol(expr, style))

    def _call(self, head: str, expr: sp.Basic, exp: str | None) -> str:
        if exp is not None:
            head = f"{head}^{{{exp}}}"
        return rf"{head}\left({', '.join(self._print(a) for a in expr.args)}\right)"

    def _print_Sigmoid(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\sigma", expr, exp)

    def _print_Softplus(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\operatorname{softplus}", expr, exp)

    def _print_Relu(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\operatorname{relu}", expr, exp)

    def _print_Clip01(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\operatorname{clip}_{[\epsilon, 1-\epsilon]}", expr, exp)

    def _print_LogSumExp(self, expr: sp.Basic, exp: str | None = None) -> str:
        return self._call(r"\operatorname{LSE}", expr, exp)

    def _print_log1p(self, expr: sp.Basic, exp: str | None = None) -> str:
        inner = rf"\log\left(1 + {self._print(expr.args[0])}\right)"
        return inner if exp is None else rf"\left({inner}\right)^{{{exp}}}"


def _latex(expr: sp.Expr) -> str:
    return str(_Latex().doprint(expr))


class _Str(StrPrinter):
    """SymPy's str printer, with the dC_da symbols shown as dC_k/da."""

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return text_name(expr.name)


def _text(expr: sp.Expr) -> str:
    return str(_Str().doprint(expr))


def rhs_text(eq: Equation) -> str:
    if not eq.factors:
        return _text(eq.rhs)
    return " * ".join(f"({_text(f)})" if precedence(f) < PRECEDENCE["Mul"] else _text(f) for f in eq.factors)


def rhs_latex(eq: Equation) -> str:
    if not eq.factors:
        return _latex(eq.rhs)
    printer = _Latex()
    return r" \cdot ".join(str(printer.parenthesize(f, PRECEDENCE["Mul"], strict=True)) for f in eq.factors)


def lhs_text(eq: Equation) -> str:
    return eq.lhs if eq.lhs is not None else text_name(eq.name)


def lhs_latex(eq: Equation) -> str:
    if eq.lhs_latex is not None:
        return eq.lhs_latex
    return latex_name(eq.name) or r"\mathrm{" + eq.name.replace("_", r"\_") + "}"


def render(ex: Explanation, fmt: str = "text") -> str:
    """The explanation as ``text``, ``latex``, ``markdown`` or ``sympy`` (one ``name = expr`` per line)."""
    if fmt == "sympy":
        lines = [f"{eq.name} = {sp.sstr(plain(eq.rhs))}" for s in ex.sections for eq in s.equations]
        return "\n".join(lines) + "\n"
    if fmt == "text":
        return _render_text(ex)
    if fmt == "latex":
        return _render_latex(ex)
    if fmt == "markdown":
        return _render_markdown(ex)
    raise ExplainError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _render_text(ex: Explanation) -> str:
    out = [f"{ex.title}: {ex.heading}", *ex.intro]
    for s in ex.sections:
        out += ["", s.title + ":"]
        out += [f"  {text}" for text, _ in s.vector]
        out += [f"  ({note})" for note in s.notes]
        for eq in s.equations:
            line = eq.text if eq.text is not None else f"{lhs_text(eq)} = {rhs_text(eq)}"
            out.append(f"  {line}" + (f"    # {eq.note}" if eq.note else ""))
    return "\n".join(out) + "\n"


def _latex_text(text: str) -> str:
    """Plain words for \\text{...}: escape LaTeX's special characters."""
    text = re.sub(r"([_%&#${}])", r"\\\1", text)
    return text.replace("^", r"\^{}")


def _render_latex(ex: Explanation) -> str:
    out = [f"% {ex.title}: {ex.heading}", *(f"% {line}" for line in ex.intro)]
    for s in ex.sections:
        out += ["", f"% {s.title}", *(f"% {note}" for note in s.notes), r"\begin{align*}"]
        rows = [latex.replace(" = ", " &= ", 1) for _, latex in s.vector]
        for eq in s.equations:
            note = rf" && \text{{{_latex_text(eq.note)}}}" if eq.note else ""
            rows.append(f"{lhs_latex(eq)} &= {rhs_latex(eq)}{note}")
        out += [f"  {row} \\\\" for row in rows[:-1]] + [f"  {rows[-1]}", r"\end{align*}"]
    return "\n".join(out) + "\n"


def _render_markdown(ex: Explanation) -> str:
    """A report for a code-hosting site: the spec, then a section per layer of one-line ``$$...$$`` formulas.

    Notes go below their formula as inline code, not inside the math (``\\text`` and
    underscores render differently across Markdown math engines)."""
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
    if ex.intro:
        out += ["", *[f"{line}  " for line in ex.intro[:-1]], ex.intro[-1]]
    for s in ex.sections:
        out += ["", f"## {s.title}"]
        out += [x for note in s.notes for x in ("", f"Note: {note}.")]
        out += [x for _, latex in s.vector for x in ("", f"$${_markdown_math(latex)}$$")]
        for eq in s.equations:
            out += ["", f"$${_markdown_math(f'{lhs_latex(eq)} = {rhs_latex(eq)}')}$$"]
            if eq.note:
                out += ["", f"`{eq.note}`"]
    return "\n".join(out) + "\n"


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


def _markdown_math(latex: str) -> str:
    """One display formula for ``$$...$$`` on one line, without backslash-punctuation pairs."""
    for old, new in _MARKDOWN_SAFE:
        latex = latex.replace(old, new)
    return latex


def explain(
    spec: Spec, fmt: str = "text", param: str | None = None, expand: bool = False, collapse: bool = False
) -> str:
    """What ``symprop explain`` prints; :class:`ExplainError` for a bad combination of options."""
    if fmt not in FORMATS:
        raise ExplainError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    spec = validate(spec)  # custom expressions re-printed from SymPy: no raw user text below
    options = [f"--param {param}"] * (param is not None) + ["--expand"] * expand + ["--collapse"] * collapse
    command = " ".join(["symprop explain", spec.file_label, *options, f"--format {fmt}"])
    if collapse:
        if param is not None or expand:
            raise ExplainError("--collapse shows the whole network as one affine map; drop --param and --expand")
        ex = collapsed(spec)
    elif param is not None:
        parse_label(param, spec)  # fail on a bad label before deriving anything
        ex = parameter(spec, param, expand)
    elif expand:
        ex = every_parameter_expanded(spec)
    else:
        ex = chain_rule(spec)
    return render(replace(ex, command=command), fmt)


__all__ = ["FORMATS", "ExplainError", "Explanation", "explain", "parse_label", "plain", "render"]
