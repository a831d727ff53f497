"""Shared by every backend: the Jinja environment, the typed template context, escaping, tidying.

Templates live in ``templates/`` (shipped inside the wheel as ``symprop/templates``).
"""

from __future__ import annotations

import ast
import io
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sympy as sp

from symprop import __version__
from symprop.ir.program import Program

LINE_WIDTH = 96  # code lines inside a function body: 100 characters with the indent


def template_dir() -> Path:
    """The installed ``symprop/templates``, or ``templates/`` beside the package in a source checkout."""
    installed = Path(__file__).resolve().parent.parent / "templates"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent.parent / "templates"


@lru_cache(maxsize=2)
def environment(autoescape: bool = False) -> jinja2.Environment:
    """The one Jinja environment over ``templates/``: strict (an undefined name is an error), block
    tags on their own lines leave no trace.  ``autoescape`` for HTML (the report); code templates
    escape their text themselves (:func:`docstring_literal`, the C backend's ``c_comment``)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )


@dataclass(frozen=True)
class Line:
    """One line of emitted code and its comment (a formula from the IR's notes)."""

    code: str
    comment: str = ""

    def __post_init__(self) -> None:
        for text in (self.code, self.comment):
            if not text.isprintable():  # a newline would end a comment and start code
                raise RuntimeError(f"symprop built a code line with a control character: {text!r}; please report it")

    def rendered(self, width: int = LINE_WIDTH) -> list[str]:
        """The comment (wrapped) and the code, every line at most ``width`` characters where the
        code allows: a long right-hand side is put in parentheses and broken at spaces."""
        out = [f"# {part}" for part in textwrap.wrap(self.comment, width - 2, break_long_words=False)]
        if len(self.code) <= width:
            return [*out, self.code]
        ops = [op for op in (" = ", " *= ", " += ") if op in self.code]
        if ops:
            op = min(ops, key=self.code.index)
            lhs, _, body = self.code.partition(op)
            head = f"{lhs}{op}("
        else:  # return ... / other statements: keyword, then the wrapped expression
            keyword, _, body = self.code.partition(" ")
            head = f"{keyword} ("
        parts = textwrap.wrap(body, width - 4, break_long_words=False, break_on_hyphens=False)
        return [*out, head, *(f"    {part}" for part in parts), ")"]


@dataclass(frozen=True)
class FunctionCode:
    """One emitted function: signature, docstring, and its lines (structure for the template)."""

    name: str
    args: str
    doc: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Header:
    """What every generated file says of where it comes from (plain data for the templates: the
    Python module's docstring, the C header's comment); :func:`header_fields` builds it."""

    name: str
    version: str
    spec_hash: str
    loss: str
    inputs: int
    outputs: int
    layer_sizes: tuple[int, ...]
    n_params: int
    sizes_text: str
    activations_text: str
    spec_lines: tuple[str, ...]


def header_fields(program: Program, escape: Callable[[str], str] = str) -> dict[str, Any]:
    """The :class:`Header` fields of ``program``; ``escape`` makes the spec's text safe where it
    lands (C: ``c_comment``; a Python module escapes its whole docstring at once, later)."""
    spec = program.spec
    return {
        "name": spec.name,
        "version": __version__,
        "spec_hash": spec.hash(),
        "loss": escape(spec.loss),
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "layer_sizes": tuple(spec.layer_sizes),
        "n_params": spec.n_params,
        "sizes_text": "-".join(map(str, spec.layer_sizes)),
        "activations_text": escape(" -> ".join(layer.label for layer in program.layers)),
        "spec_lines": tuple(escape(line) for line in spec.to_toml().rstrip("\n").split("\n")),
    }


@dataclass(frozen=True)
class ModuleContext(Header):
    """Everything a Python template needs; plain data only, built by a backend from a Program."""

    mode: str
    param_shapes: dict[str, tuple[int, ...]]
    loss_formula: str
    rewrites_text: str
    warnings: tuple[str, ...]
    helpers: tuple[str, ...]
    functions: tuple[FunctionCode, ...]
    target: str = "numpy"  # the runtime (BACKENDS' target): the one switch of templates/python/

    @property
    def array_api(self) -> bool:
        """The array-API target: its text where templates/python/ differs from the NumPy modes'."""
        return self.target == "array-api"


def loss_formula(program: Program) -> str:
    if program.spec.loss == "softmax_ce":
        return "-sum_j y_j*log(softmax(z)_j) = logsumexp(z)*sum_j y_j - sum_j y_j*z_j"
    return f"sum_j {sp.sstr(program.output.loss)}  (a, z, y of output unit j)"


def docstring_literal(text: str) -> str:
    """``text`` escaped to sit between triple double quotes of a Python docstring.

    The one escaping function for text that reaches an emitted Python module outside code.
    Backslashes are escaped; a double quote is escaped when another follows it or it ends the
    text (so no run of three can close the docstring, yet ``name = "xor"`` reads as written);
    every character outside printable ASCII but the newline becomes its Python escape, so no
    text can end the docstring, continue a line or hide a character.
    """
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"' if text[i + 1 : i + 2] in ('"', "") else ch)
        elif ch == "\n" or " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def check_module(source: str, docstring: str) -> str:
    """Fail unless the first token of ``source`` is a string literal equal to ``docstring``.

    A postcondition of every render: whatever text went into the header, it stayed text (an
    escape that closed the docstring early would make the first string differ). Only the
    first token is read, so the check costs nothing for large modules.
    """
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    first = next(tokens)
    if first.type != tokenize.STRING or ast.literal_eval(first.string) != docstring:
        raise RuntimeError("symprop rendered a module whose docstring is not its intended text; please report it")
    return source


def module_context(
    program: Program, mode: str, helpers: tuple[str, ...], functions: tuple[FunctionCode, ...], target: str = "numpy"
) -> ModuleContext:
    return ModuleContext(
        **header_fields(program),
        mode=mode,
        param_shapes=dict(program.spec.param_shapes),
        loss_formula=loss_formula(program),
        rewrites_text=", ".join(program.rewrites) if program.rewrites else "none",
        warnings=program.warnings,
        helpers=helpers,
        functions=functions,
        target=target,
    )


def docstring_text(template: str, m: ModuleContext) -> str:
    text = environment().get_template(template).render(m=m)
    return "\n".join(line.rstrip() for line in text.split("\n"))


def render_python(template: str, docstring_template: str, m: ModuleContext) -> str:
    """Render a Python module: its docstring as text, escaped once, then checked (:func:`check_module`)."""
    docstring = docstring_text(docstring_template, m)
    source = tidy(environment().get_template(template).render(m=m, docstring=docstring_literal(docstring)))
    return check_module(source, docstring)


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
