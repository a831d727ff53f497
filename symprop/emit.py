"""Stage 5: render the optimized statements into a standalone NumPy module.

Templates live in ``templates/`` (shipped inside the wheel as
``symprop/templates``); the printer turns SymPy into NumPy text.  The whole
module is rendered in memory and written atomically (temp file + rename), so
a failed or interrupted run never leaves a truncated module behind.
"""

from __future__ import annotations

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
from symprop.elementwise import gradient_warnings, output_math
from symprop.optimize import Block, Statement, optimize
from symprop.printer import SympropPrinter, fold_numbers
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
        parts.append("*".join(printer.doprint(f) for f in factors))
    return " + ".join(parts)


def statement_text(s: Statement, block: Block, printer: SympropPrinter) -> str:
    if s.role == "z":
        return linear_text(s.rhs, printer)
    text = printer.doprint(fold_numbers(s.rhs))
    for holder, total in block.sums.items():
        if holder in s.rhs.free_symbols:
            text = re.sub(rf"\b{holder.name}\b", lambda _: f"({linear_text(total, printer)})", text)
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
    blocks = {key: optimize(derivation, loss=key != "forward", grad=key == "grad") for key in ("forward", "loss", "grad")}
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


def render(spec: Spec, mode: str = "unrolled") -> str:
    """The generated module's source text for ``spec``."""
    if mode not in MODES:
        raise SpecError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if mode != "unrolled":
        raise SpecError(f"mode {mode!r} is not available yet; use --mode unrolled")
    return render_unrolled(spec)[0]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(spec: Spec, out_dir: str | Path, mode: str = "unrolled") -> Path:
    """Render ``spec`` and write ``out_dir/<name>.py`` atomically; return the path."""
    source = render(spec, mode)
    path = Path(out_dir) / f"{spec.name}.py"
    write_atomic(path, source)
    return path


__all__ = ["MODES", "Line", "Statement", "generate", "render", "write_atomic"]
