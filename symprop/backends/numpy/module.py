"""What both NumPy backends share: a Program's functions as lines of a NumPy module.

Every function checks and casts its inputs (``_prepare``), then calls one ``_forward``
helper (the forward pass, written once) and continues with its own statements.  A
backend supplies a :class:`Style`: how variables are named and how each statement prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import sympy as sp

from symprop.backends.numpy.printer import ArrayPrinter, helpers_in
from symprop.backends.templating import FunctionCode, Line, ModuleContext, module_context, render_python
from symprop.ir import program as ir
from symprop.ir.memory import forward_values, shared_forward, symbols_read
from symprop.ir.program import Function, Kind, LinearSum, MatMul, N, Program, Reduce, Statement, Var

DOCS = {
    "forward": "Network output for a batch X of shape (n, {inputs}); returns shape (n, {outputs}).",
    "loss": "C = (1/n) * sum over the batch of C_k, as a Python float.",
    "loss_and_grad": "(C, grads): grads[name] = dC/dname, the batch mean of the per-sample gradients.",
    "hvp": "(C, grads, hv): hv[name] = (H V)[name], the Hessian of C times the direction V (keys as params).",
    "gnvp": "(C, grads, gv): gv[name] = (G V)[name], the generalized Gauss-Newton matrix of C times V (PSD).",
}
CURVATURE = ("hvp", "gnvp")  # the second-order functions: they take a direction V
# the weighted program's docstrings: what the cost is with per-sample weights s
WEIGHTED_DOC = {
    "C = (1/n) * sum over the batch of C_k": "C = sum_k s_k C_k / sum_k s_k (s = sample_weight, 1 if None)",
    "the batch mean of the per-sample gradients": "C as in loss(params, X, Y, sample_weight)",
    "dC/dname (the batch mean)": "dC/dname, C as in loss(..., sample_weight)",
}


class Style(Protocol):
    """One backend's naming and printing of statements."""

    mode: str
    target: str  # the runtime, as in BACKENDS: "numpy" or "array-api" (the templates' one switch)
    context: str  # what _prepare returns before params, X, Y and _forward takes first ("" or "xp, ")
    docs: Mapping[str, str]  # docstrings that differ from DOCS

    def printer(self, program: Program) -> ArrayPrinter: ...

    def statement(self, s: Statement, p: ArrayPrinter) -> list[Line]: ...

    def unpack(
        self, program: Program, statements: Sequence[Statement], skip: set[sp.Symbol], p: ArrayPrinter
    ) -> list[Line]: ...

    def outputs(self, f: Function, p: ArrayPrinter) -> tuple[list[Line], str]: ...


@dataclass(frozen=True)
class Split:
    """A function as: the forward values it takes from ``_forward``, and its own statements."""

    takes: tuple[Var, ...]
    own: tuple[Statement, ...]


def functions(program: Program, style: Style) -> tuple[tuple[FunctionCode, ...], tuple[str, ...]]:
    """The module's functions (``_forward`` first) and the helpers they call."""
    p = style.printer(program)
    forward = shared_forward(program)
    takes_of = forward_values(program)  # what each function needs of the forward pass (the IR's liveness)
    splits = {f.name: Split(takes_of[f.name], f.body[len(forward) :]) for f in program.functions}
    takes = {v for split in splits.values() for v in split.takes}
    returned = tuple(dict.fromkeys(s.out for s in forward if s.out in takes))
    body = _lines(forward, style, p)
    head = style.unpack(program, forward, set(), p)
    ret = ", ".join(p.name(v.symbol) for v in returned)
    ret = f"({ret},)" if len(returned) == 1 else ret
    doc = "The forward pass: the values the other functions use."
    ctx = style.context
    out = [_finish("_forward", f"{ctx}params, X", doc, [], head + body, ret, p.needs)]
    for f in program.functions:
        split = splits[f.name]
        taken = set(split.takes)  # a set: a tuple's `in` made this quadratic in the number of layers
        got = ", ".join(p.name(v.symbol) if v in taken else "_" for v in returned)
        call = f"_forward({ctx}params, X)"
        lines = [Line(f"({got},) = {call}" if len(returned) == 1 else f"{got} = {call}")]
        p.needs = set()  # what this function's own lines use, recorded while they are printed
        own = _lines(split.own, style, p)
        lines += style.unpack(program, split.own, {v.symbol for v in returned}, p)
        lines += _unpack_direction(program, split.own)
        result_lines, result = _outputs(f, style, p)
        args = {"forward": "params, X", "hvp": "params, X, Y, V", "gnvp": "params, X, Y, V"}.get(f.name, "params, X, Y")
        doc = {**DOCS, **style.docs}[f.name].format(inputs=program.spec.inputs, outputs=program.spec.outputs)
        prepare = [
            Line(f"{ctx}params, X, {'_' if f.name == 'forward' else 'Y'} = _prepare({args.removesuffix(', V')})")
        ]
        if f.name in CURVATURE:
            prepare.append(Line(f"V = _direction({ctx}V, X.dtype)"))
        if ir.WEIGHTS.symbol in symbols_read(split.own):  # the weighted program: w = n s / sum(s), or 1
            args += ", sample_weight=None"
            for old, new in WEIGHTED_DOC.items():
                doc = doc.replace(old, new)
            shape = "(-1,)" if program.granularity is ir.Granularity.UNIT else "(-1, 1)"
            prepare.append(Line(f"w = _weights({ctx}sample_weight, X, {shape})"))
        out.append(_finish(f.name, args, doc, prepare + lines, own + result_lines, result, p.needs))
    weighted = any(ir.WEIGHTS.symbol in symbols_read(f.body) for f in program.functions)
    # the helpers as recorded while the statements were printed
    return tuple(out), helpers_in(p.helpers) + (("_weights",) if weighted else ())


def _unpack_direction(program: Program, statements: Sequence[Statement]) -> list[Line]:
    """``VW1 = V["W1"]`` for the direction arrays a Hessian-vector product reads."""
    used = symbols_read(statements)
    refs = [v.param for v in program.params if not v.index]  # entries: the unrolled style's job
    return [Line(f'{r.direction} = V["{r.label}"]') for r in refs if sp.Symbol(r.direction, real=True) in used]


def _outputs(f: Function, style: Style, p: ArrayPrinter) -> tuple[list[Line], str]:
    """The style's return value; for ``hvp``/``gnvp``, (C, grads) and the product as a second dict."""
    if f.name not in CURVATURE:
        return style.outputs(f, p)
    k = (len(f.returns) - 1) // 2
    lines, result = style.outputs(Function("loss_and_grad", f.body, f.returns[: 1 + k]), p)
    # one entry per product array (the per-neuron program returns its entries, one per parameter)
    arrays = dict.fromkeys((param_key(r), r.array or p.name(r.symbol)) for r in f.returns[1 + k :])
    pairs = ", ".join(f'"{key}": {name}' for key, name in arrays)
    return [*lines, Line(f"hv = {{{pairs}}}")], f"{result}, hv"


def _lines(statements: Sequence[Statement], style: Style, p: ArrayPrinter) -> list[Line]:
    return [line for s in statements for line in style.statement(s, p)]


def _finish(
    name: str, args: str, doc: str, head: list[Line], body: list[Line], result: str, needs: set[str]
) -> FunctionCode:
    """Bind ``dtype`` and ``n`` where the printer recorded them as used (after ``_prepare``),
    then return ``result``."""
    lines = head[1:] + body  # head[0] is the call of _prepare (none in _forward)
    binds = []
    if "dtype" in needs:
        binds.append(Line("dtype = X.dtype"))
    if "n" in needs:
        binds.append(Line("n = X.shape[0]"))
    return FunctionCode(name, args, doc, (*head[:1], *binds, *lines, Line(f"return {result}")))


def render(program: Program, style: Style) -> str:
    """The module: ``templates/python/module.py.jinja`` (one template set for every Python target)
    with the style's functions."""
    funcs, helpers = functions(program, style)
    m: ModuleContext = module_context(program, style.mode, helpers, funcs, style.target)
    return render_python("python/module.py.jinja", "python/_docstring.txt.jinja", m)


class WholeArrays:
    """What the styles that print one array per layer variable share (vectorized, array-api)."""

    def unpack(
        self, program: Program, statements: Sequence[Statement], skip: set[sp.Symbol], p: ArrayPrinter
    ) -> list[Line]:
        """``W1 = params["W1"]`` for each parameter array the statements read (but ``skip``)."""
        used = symbols_read(statements) - skip
        return [Line(f'{param_name(v)} = params["{param_name(v)}"]') for v in program.params if v.symbol in used]

    def reduction(self, s: Reduce, p: ArrayPrinter, xp: str, whole: str = "") -> str:
        """``scale * op(expr)`` over the statement's axis with array module ``xp``; ``whole``, if
        given, is the code of the sum over everything (NumPy's ``vdot`` of a product)."""
        if s.axis is ir.Axis.ALL:
            total = whole or f"{xp}.sum({p.code(s.expr)})"
        elif s.axis is ir.Axis.UNITS:
            fn = f"{xp}.max" if s.op is ir.ReduceOp.MAX else f"{xp}.sum"
            total = f"{fn}({p.code(s.expr)}, axis=1, keepdims=True)"
        else:
            total = f"{xp}.sum({p.code(s.expr)}, axis=0)"
        return scaled(total, s.scale, p)

    def cost(self, name: str) -> str:
        """How a function returns the cost ``name``: a Python float (the array-API keeps an array)."""
        return f"float({name})"

    def outputs(self, f: Function, p: ArrayPrinter) -> tuple[list[Line], str]:
        """``forward``'s output; the cost; or (cost, grads) with ``grads = {"W1": dW1, ...}``."""
        first = p.name(f.returns[0].symbol)
        if f.name == "forward":
            return [], first
        if f.name == "loss":
            return [], self.cost(first)
        grads = ", ".join(f'"{v.param.label}": {p.name(v.symbol)}' for v in f.returns[1:])
        return [Line(f"grads = {{{grads}}}")], f"{self.cost(first)}, grads"

    def matmul(self, s: MatMul, p: ArrayPrinter) -> Line:
        left = p.name(s.left.symbol) + (".T" if s.left_t else "")
        right = p.name(s.right.symbol) + (".T" if s.right_t else "")
        return Line(f"{p.name(s.out.symbol)} = {left} @ {right}", s.note.render())


def param_name(v: Var) -> str:
    """``W1`` for the array, ``W1[0, 2]`` for an entry (names of parameters, gradients and their R
    arrays in code)."""
    if v.kind in (Kind.WEIGHT, Kind.BIAS):
        base = v.param.label
    elif v.kind in (Kind.GRAD_W, Kind.GRAD_B):
        base = v.param.grad
    else:
        base = v.array or v.name
    return f"{base}[{', '.join(map(str, v.index))}]" if v.index else base


def param_key(v: Var) -> str:
    """The params key a gradient (or its R, the product H V) belongs to: ``W1``, ``b2``."""
    return v.param.label


def is_entry(v: Var) -> bool:
    return bool(v.index)


def scaled(total: str, scale: sp.Expr, p: ArrayPrinter) -> str:
    """A reduction's code times its scale: ``total / n`` for the batch mean."""
    if scale == 1:
        return total
    if scale == 1 / N.symbol:
        return f"{total} / {p.need('n')}"
    return f"{total} * {p.code(scale)}"


def linear_sum_code(s: LinearSum, p: ArrayPrinter) -> str:
    terms = [f"{param_name(w)}*{p.name(v.symbol)}" for w, v in s.terms]
    if s.bias is not None:
        terms.append(param_name(s.bias))
    return " + ".join(terms)


__all__ = [
    "Split",
    "Style",
    "WholeArrays",
    "functions",
    "is_entry",
    "linear_sum_code",
    "param_name",
    "render",
    "scaled",
]
