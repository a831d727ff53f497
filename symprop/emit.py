"""Stage 5: render the optimized statements into a standalone NumPy module.

Templates live in ``templates/`` (shipped inside the wheel as
``symprop/templates``); the printer turns SymPy into NumPy text.  The whole
module is rendered in memory and written atomically (temp file + rename), so
a failed or interrupted run never leaves a truncated module behind.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sympy as sp

from symprop import __version__
from symprop.derive import Derivation, derive
from symprop.elementwise import A, Y, Z, activation_math, gradient_warnings, output_math, softmax_math
from symprop.functions import LogSumExp
from symprop.optimize import Block, Statement, fold_numbers, optimize
from symprop.printer import SympropPrinter
from symprop.spec import Spec, SpecError

MODES = ("unrolled", "vectorized", "auto")
UNROLLED_MAX_PARAMS = 10_000


def template_dir() -> Path:
    """The installed ``symprop/templates``, or ``templates/`` beside the package in a source checkout."""
    installed = Path(__file__).with_name("templates")
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@dataclass
class Line:
    code: str
    comment: str = ""


@dataclass
class ModuleContext:
    """Everything the templates need; plain data only."""

    name: str
    mode: str
    version: str
    spec_hash: str
    loss: str
    inputs: int
    outputs: int
    layer_sizes: tuple[int, ...]
    param_shapes: dict[str, tuple[int, ...]]
    sizes_text: str
    activations_text: str
    loss_formula: str
    rewrites_text: str
    warnings: list[str]
    spec_lines: list[str]
    helpers: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["extra"][key]
        except KeyError:
            raise AttributeError(key) from None


def describe_activation(layer: Any) -> str:
    params = ", ".join(f"{k}={v}" for k, v in layer.params)
    return f"{layer.activation}({params})" if params else layer.activation


def loss_formula(spec: Spec) -> str:
    if spec.loss == "softmax_ce":
        return "-sum_j y_j*log(softmax(z)_j) = logsumexp(z)*sum_j y_j - sum_j y_j*z_j"
    return f"sum_j {sp.sstr(output_math(spec).loss)}  (a, z, y of output unit j)"


def base_context(spec: Spec, mode: str, rewrites: tuple[str, ...]) -> ModuleContext:
    return ModuleContext(
        name=spec.name,
        mode=mode,
        version=__version__,
        spec_hash=spec.hash(),
        loss=spec.loss,
        inputs=spec.inputs,
        outputs=spec.outputs,
        layer_sizes=spec.layer_sizes,
        param_shapes=spec.param_shapes,
        sizes_text="-".join(map(str, spec.layer_sizes)),
        activations_text=" -> ".join(describe_activation(layer) for layer in spec.layers),
        loss_formula=loss_formula(spec),
        rewrites_text=", ".join(rewrites) if rewrites else "none",
        warnings=gradient_warnings(spec),
        spec_lines=spec.to_toml().rstrip("\n").split("\n"),
    )


# ------------------------------------------------------------ unrolled mode --
def _unrolled_names(derivation: Derivation) -> dict[sp.Symbol, str]:
    names = {}
    for array, index, symbol in derivation.network.param_symbols():
        names[symbol] = f"{array}[{', '.join(map(str, index))}]"
    return names


def delta_comment(derivation: Derivation, delta: sp.Symbol) -> str:
    """Compact chain-rule formula of one δ (the same text ``symprop explain`` prints)."""
    return derivation.delta_text(delta)


def linear_text(expr: sp.Expr, printer: SympropPrinter) -> str:
    """Print Σ w·v (+ b) term by term in index order (no SymPy sorting: fast and readable)."""
    parts = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        parts.append("*".join(printer.names.get(f, f.name) if f.is_Symbol else printer.doprint(f) for f in factors))
    return " + ".join(parts)


def statement_text(s: Statement, block: Block, printer: SympropPrinter) -> str:
    if s.role == "z":
        return linear_text(s.rhs, printer)
    text = printer.doprint(fold_numbers(s.rhs))
    for holder, total in block.sums.items():
        if holder in s.rhs.free_symbols:
            replacement = f"({linear_text(total, printer)})"
            text = re.sub(rf"\b{holder.name}\b", replacement.replace("\\", "\\\\"), text)
    return text


def _lines(block: Block, derivation: Derivation, printer: SympropPrinter) -> list[Line]:
    batch: set[sp.Symbol] = {*derivation.network.x, *derivation.network.y, *block.sums}
    lines = []
    for s in block.statements:
        rhs = statement_text(s, block, printer)
        if s.rhs.free_symbols & batch:
            batch.add(s.lhs)
        else:  # a constant (e.g. the zero δ below a step layer) still needs one value per sample
            rhs = f"np.full(X.shape[0], {rhs}, dtype=dtype)"
            batch.add(s.lhs)
        comment = delta_comment(derivation, s.lhs) if s.role == "delta" else ""
        lines.append(Line(f"{s.lhs.name} = {rhs}", comment))
    return lines


def _gradient_lines(derivation: Derivation) -> list[dict[str, Any]]:
    out = []
    previous = None
    for g in derivation.gradients:
        if g.activation is None:
            code = f"np.sum({g.delta.name}) / n"
        else:
            code = f"np.dot({g.delta.name}, {g.activation.name}) / n"
        out.append(
            {
                "array": g.array,
                "index": ", ".join(map(str, g.index)),
                "code": code,
                "label": g.label,
                "formula": g.formula_text,
                "first": g.array != previous,
            }
        )
        previous = g.array
    return out


def render_unrolled(spec: Spec) -> tuple[str, dict[str, int]]:
    if spec.n_params > UNROLLED_MAX_PARAMS:
        raise SpecError(
            f"{spec.source}: {spec.n_params} parameters is over the unrolled-mode limit of {UNROLLED_MAX_PARAMS}; "
            "use --mode vectorized"
        )
    derivation = derive(spec)
    printer = SympropPrinter(_unrolled_names(derivation))
    blocks = {
        key: optimize(derivation, loss=key != "forward", grad=key == "grad") for key in ("forward", "loss", "grad")
    }
    net = derivation.network
    m = base_context(spec, "unrolled", net.rewrites)
    m.extra = {
        "param_names": list(spec.param_shapes),
        "input_lines": [f"{x.name} = X[:, {i}]" for i, x in enumerate(net.x)],
        "target_lines": [f"{y.name} = Y[:, {j}]" for j, y in enumerate(net.y)],
        "forward_lines": _lines(blocks["forward"], derivation, printer),
        "loss_lines": _lines(blocks["loss"], derivation, printer),
        "grad_lines": _lines(blocks["grad"], derivation, printer),
        "outputs_list": ", ".join(a.name for a in net.a[-1]),
        "gradient_lines": _gradient_lines(derivation),
    }
    m.helpers = printer.used_helpers
    source = tidy(environment().get_template("unrolled.py.jinja").render(m=m))
    return source, {"ops_after_cse": blocks["grad"].n_ops}


# ---------------------------------------------------------- vectorized mode --
# Layer composition lives in templates/vectorized.py.jinja; here each layer's elementwise
# SymPy expressions (f, f', loss, output delta) are printed over whole (n, units) arrays.


def _comparison(h: sp.Heaviside, printer: SympropPrinter) -> str | None:
    """Heaviside(u, 0) as ``(u > 0)``, Heaviside(u, 1) as ``(u >= 0)``; None for other h0."""
    h0 = h.args[1] if len(h.args) > 1 else None
    if h0 not in (sp.Integer(0), sp.Integer(1)):
        return None
    return f"({printer.doprint(h.args[0])} {'>' if h0 == 0 else '>='} 0)"


def _array_ops(text: str) -> int:
    """How many NumPy operations (array passes) the printed expression makes: calls, binary
    operators and unary minus on non-constants, counted on the Python syntax tree."""
    count = 0
    for node in ast.walk(ast.parse(text, mode="eval")):
        unary = isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant)
        if unary or isinstance(node, ast.Call | ast.BinOp | ast.Compare):
            count += 1
    return count


def _sign_variants(expr: sp.Expr) -> list[sp.Expr]:
    """A product with the signs of its sum factors flipped in every way that keeps its value:
    -a*(a - 1) -> a*(1 - a), (y - a)*(a - 1) -> (a - y)*(1 - a), ..."""
    if not isinstance(expr, sp.Mul):
        return []
    coeff, factors = expr.as_coeff_mul()
    sums = [k for k, f in enumerate(factors) if isinstance(f, sp.Add)][:4]
    variants = []
    for flips in itertools.product((False, True), repeat=len(sums)):
        flipped = {k for k, flip in zip(sums, flips, strict=True) if flip}
        sign = -1 if len(flipped) % 2 else 1
        variants.append(sp.Mul(sign * coeff, *[-f if k in flipped else f for k, f in enumerate(factors)]))
    return variants


def _cost(lines: list[Line], texts: list[str]) -> tuple[int, int]:
    codes = [line.code.split(" = ", 1)[1] for line in lines] + texts
    return sum(_array_ops(c) for c in codes), sum(len(c) for c in codes)


def fewest_passes(expr: sp.Expr, printer: SympropPrinter, together: tuple[sp.Expr, ...] = ()) -> sp.Expr:
    """Among equal forms of ``expr`` (as given, factored, with a minus sign absorbed into a sum,
    expanded), the one whose NumPy code makes the fewest array passes, counted after one CSE
    with the expressions computed ``together`` with it; ties keep the shortest text."""
    factored = sp.factor(expr)
    forms = [expr, factored, *_sign_variants(factored), *_sign_variants(expr), sp.expand(expr)]
    candidates = list(dict.fromkeys(forms))
    helpers = set(printer.used_helpers)  # trial prints must not mark helpers as used
    costs = {c: _cost(*_printed([*together, c], printer, "T_")) for c in candidates}
    printer.used_helpers = helpers
    return min(candidates, key=lambda c: (costs[c], candidates.index(c)))


def _printed(exprs: list[sp.Expr], printer: SympropPrinter, prefix: str) -> tuple[list[Line], list[str]]:
    """One ``sympy.cse`` over a layer's few elementwise expressions: temp lines, then each
    reduced expression as text.  A constant prints as a plain literal (callers broadcast it)."""
    folded = [fold_numbers(e) for e in exprs]
    temps, reduced = sp.cse(folded, symbols=sp.numbered_symbols(prefix, real=True), order="canonical")
    lines = [Line(f"{t.name} = {printer.doprint(e)}") for t, e in temps]
    return lines, [printer.doprint(e) for e in reduced]


def _array_text(text: str, expr: sp.Expr, shape: str) -> str:
    """``text`` as an array of ``shape``: constants become ``np.full``, expressions stay."""
    return f"np.full({shape}, {text}, dtype=dtype)" if not expr.free_symbols else text


def _layer_names(l: int) -> dict[sp.Symbol, str]:
    return {Z: f"Z{l}", A: f"A{l}", Y: "Y"}


def _math_text(expr: sp.Expr, l: int) -> str:
    """A formula for comments, in the math's lower-case names (z1, a1, y)."""
    return sp.sstr(expr.xreplace({Z: sp.Symbol(f"z{l}"), A: sp.Symbol(f"a{l}")}))


def _vector_layer(spec: Spec, l: int, printer: SympropPrinter) -> dict[str, Any]:
    layer = spec.layers[l - 1]
    act = activation_math(layer)
    printer.names = _layer_names(l)
    z, a = f"Z{l}", f"A{l}"
    if act.f == Z:
        forward = [Line(f"{a} = {z}")]
    else:
        forward, (f_text,) = _printed([act.f], printer, f"T{l}_")
        forward.append(Line(f"{a} = {_array_text(f_text, act.f, f'{z}.shape')}"))
    df = act.df
    backward: list[Line] = []
    if not act.blocks_gradient:
        masks = [m for m in sp.Mul.make_args(df) if isinstance(m, sp.Heaviside) and _comparison(m, printer)]
        rest = fewest_passes(sp.Mul(*[m for m in sp.Mul.make_args(df) if m not in masks]), printer)
        if rest != 1:
            backward, (rest_text,) = _printed([rest], printer, f"dT{l}_")
            backward.append(Line(f"D{l} *= {rest_text}"))
        backward += [Line(f"D{l} *= {_comparison(m, printer)}") for m in masks]
    return {
        "l": l,
        "units": layer.units,
        "input": "X" if l == 1 else f"A{l - 1}",
        "f_text": _math_text(act.f, l),
        "forward": forward,
        "df_text": _math_text(df, l),
        "blocks_gradient": act.blocks_gradient,
        "backward": backward,
    }


def _per_unit_output(spec: Spec, printer: SympropPrinter) -> dict[str, Any]:
    """Loss and output delta for the per-unit losses (mse, sse, bce, custom)."""
    L = len(spec.layers)
    out = output_math(spec)
    printer.names = _layer_names(L)
    shape = f"Z{L}.shape"
    loss_temps, (loss_text,) = _printed([out.loss], printer, "TC_")
    delta_form = fewest_passes(out.delta, printer, (out.loss,))
    grad_temps, (joint_loss, delta_text) = _printed([out.loss, delta_form], printer, "TC_")
    comment = f"C_k = sum_j l(a{L}_j, z{L}_j, y_j), l = {_math_text(out.loss, L)}"
    delta = _array_text(delta_text, out.delta, shape)
    return {
        "loss_lines": [*loss_temps, Line(f"C = np.sum({_array_text(loss_text, out.loss, shape)}) / n", comment)],
        "grad_lines": [*grad_temps, Line(f"C = np.sum({_array_text(joint_loss, out.loss, shape)}) / n", comment)],
        "delta": f"{delta} / n" if re.fullmatch(r"\w+", delta) else f"({delta}) / n",
        "delta_text": _math_text(out.delta, L),
    }


def _unit_terms(expr: sp.Expr, zs: list[sp.Symbol], ys: list[sp.Symbol]) -> tuple[sp.Expr, sp.Expr]:
    """Split a symmetric sum ``row + Σ_j g(z_j, y_j)`` into (row, g(z_1, y_1)); check the symmetry."""
    row, units = sp.Integer(0), [sp.Integer(0) for _ in zs]
    for term in sp.Add.make_args(expr):
        owners = [j for j, (zj, yj) in enumerate(zip(zs, ys, strict=True)) if term.has(zj) or term.has(yj)]
        if len(owners) == 1:
            units[owners[0]] += term
        else:
            row += term
    for j in range(1, len(zs)):
        if units[j] != units[0].xreplace({zs[0]: zs[j], ys[0]: ys[j]}):
            raise ValueError(f"softmax loss is not a symmetric sum over units: {expr}")
    return row, units[0]


def _sum_text(expr: sp.Expr, printer: SympropPrinter) -> str:
    """Σ over all entries of ``expr``: a product of two arrays as ``np.vdot`` (no temporary)."""
    factors = sp.Mul.make_args(expr)
    if len(factors) == 2 and all(isinstance(f, sp.Symbol) for f in factors):
        return f"np.vdot({', '.join(printer.doprint(f) for f in factors)})"
    return f"np.sum({printer.doprint(expr)})"


def _softmax_output(spec: Spec, printer: SympropPrinter) -> dict[str, Any]:
    """softmax_ce from ``softmax_math``: C_k = LSE(z)·Σy − Σ y_j z_j, δ_j = softmax_j·Σy − y_j.

    The row quantities (LSE with the max shift, Σy) are reductions along axis 1; the rest is
    SymPy's expression for unit 1, printed over the whole (n, K) array.
    """
    L = len(spec.layers)
    loss, deltas, zs, ys = softmax_math(spec.outputs)
    lse_sym, sy_sym, p_sym = (sp.Symbol(name, real=True) for name in (f"LSE{L}", "SY", f"P{L}"))
    lse, total = LogSumExp(*zs), sp.Add(*ys)
    row, unit = _unit_terms(loss.xreplace({lse: lse_sym, total: sy_sym}), zs, ys)
    z1, y1 = zs[0], ys[0]
    delta = deltas[0].xreplace({sp.exp(z1 - lse): p_sym, total: sy_sym})
    if delta.has(*zs[1:], *ys[1:], lse):
        raise ValueError(f"softmax delta did not reduce to softmax and Σy: {delta}")
    printer.names = {z1: f"Z{L}", y1: "Y"}
    sign, unit_abs = ("-", -unit) if unit.could_extract_minus_sign() else ("+", unit)
    shown: dict[sp.Basic, sp.Basic] = {z1: sp.Symbol(f"z{L}_j"), y1: sp.Symbol("y_j"), sy_sym: sp.Symbol("sum_j(y_j)")}
    total_line = Line(
        f"C = ({_sum_text(row, printer)} {sign} {_sum_text(unit_abs, printer)}) / n",
        f"C_k = {sp.sstr(row.xreplace(shown))} {sign} sum_j {sp.sstr(unit_abs.xreplace(shown))}",
    )
    shift = [
        Line(f"M{L} = np.max(Z{L}, axis=1, keepdims=True)", f"softmax cross-entropy; LSE{L} = log(sum_j exp(z{L}_j))"),
        Line(f"E{L} = np.exp(Z{L} - M{L})", "shifted by the row maximum: no overflow"),
        Line(f"S{L} = np.sum(E{L}, axis=1, keepdims=True)"),
        Line(f"LSE{L} = M{L} + np.log(S{L})"),
        Line("SY = np.sum(Y, axis=1, keepdims=True)"),
        total_line,
    ]
    return {
        "loss_lines": shift,
        "grad_lines": [*shift, Line(f"P{L} = E{L} / S{L}", f"softmax(z{L}) = exp(z{L} - LSE{L})")],
        "delta": f"({printer.doprint(delta)}) / n",
        "delta_text": sp.sstr(delta.xreplace({**shown, p_sym: sp.Symbol(f"softmax(z{L})"), y1: sp.Symbol("y")})),
    }


def vectorized_rewrites(spec: Spec) -> tuple[str, ...]:
    """Names of the stabilising rewrites that fired, in pipeline order (as in unrolled mode)."""
    names = [name for layer in spec.layers for name in activation_math(layer).rewrites]
    if spec.loss != "softmax_ce":
        names += output_math(spec).rewrites
    return tuple(dict.fromkeys(names))


def render_vectorized(spec: Spec) -> str:
    """The vectorized module: matmuls per layer from the template, elementwise math from SymPy."""
    printer = SympropPrinter()
    layers = [_vector_layer(spec, l, printer) for l in range(1, len(spec.layers) + 1)]
    output = _softmax_output(spec, printer) if spec.loss == "softmax_ce" else _per_unit_output(spec, printer)
    m = base_context(spec, "vectorized", vectorized_rewrites(spec))
    m.extra = {"layers": layers, "output": output, "n_layers": len(spec.layers)}
    m.helpers = printer.used_helpers
    return tidy(environment().get_template("vectorized.py.jinja").render(m=m))


# ------------------------------------------------------------------- auto --
# From benchmarks/runtime.py (README, "Vectorized mode and runtime benchmark"), batch 1024,
# float64: vectorized is as fast or faster than unrolled at every size measured, from 1-1-1
# (4 parameters: a tie to 1.2x) through 2-3-1 (1.2-1.4x) to 8-16-16-4 (4.7x). Unrolled is
# faster only at small batches for one-hidden-neuron nets (1-1-1, 2-1-1: ~8% at batch 32),
# too little to trade for up to 20% at large batches, so auto always picks vectorized.
# Unrolled stays for reading: one line per neuron. Re-measure before raising the threshold.
AUTO_UNROLLED_MAX_PARAMS = 0


def choose_mode(spec: Spec) -> str:
    """The mode ``auto`` renders: see ``auto_rule()``."""
    return "unrolled" if spec.n_params <= AUTO_UNROLLED_MAX_PARAMS else "vectorized"


def auto_rule() -> str:
    """``choose_mode`` in words (CLI help, benchmark output)."""
    if AUTO_UNROLLED_MAX_PARAMS <= 0:
        return "always vectorized"
    return f"unrolled up to {AUTO_UNROLLED_MAX_PARAMS} parameters, vectorized above"


def tidy(source: str) -> str:
    """PEP 8 spacing for rendered code: no trailing spaces, two blank lines before top-level
    statements after a block, at most one blank line inside functions."""
    end = source.index('"""', 3) + 3  # the module docstring is kept as written
    out: list[str] = [line.rstrip() for line in source[:end].split("\n")]
    blanks = 0
    for raw in source[end:].split("\n"):
        line = raw.rstrip()
        if not line:
            blanks += 1
            continue
        if out:
            top_level = not line.startswith((" ", "#")) and out[-1].startswith(" ")
            if line.startswith(("def ", "class ")) or top_level:
                out += [""] * 2
            elif blanks:
                out.append("")
        blanks = 0
        out.append(line)
    return "\n".join(out) + "\n"


def resolve_mode(spec: Spec, mode: str) -> str:
    """The mode actually rendered: ``auto`` becomes ``choose_mode(spec)``."""
    if mode not in MODES:
        raise SpecError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return choose_mode(spec) if mode == "auto" else mode


def render(spec: Spec, mode: str = "auto") -> str:
    """The generated module's source text for ``spec`` (``mode``: unrolled, vectorized or auto)."""
    if resolve_mode(spec, mode) == "vectorized":
        return render_vectorized(spec)
    return render_unrolled(spec)[0]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(spec: Spec, out_dir: str | Path, mode: str = "auto") -> Path:
    """Render ``spec`` and write ``out_dir/<name>.py`` atomically; return the path."""
    source = render(spec, mode)
    path = Path(out_dir) / f"{spec.name}.py"
    write_atomic(path, source)
    return path


__all__ = ["MODES", "Line", "Statement", "generate", "render", "write_atomic"]
