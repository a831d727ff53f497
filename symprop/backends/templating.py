"""Shared by both emission backends: the Jinja environment, the template context, tidying.

Templates live in ``templates/`` (shipped inside the wheel as ``symprop/templates``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import sympy as sp

from symprop import __version__
from symprop.spec import Spec
from symprop.symbolic.layer_math import gradient_warnings, output_math


def template_dir() -> Path:
    """The installed ``symprop/templates``, or ``templates/`` beside the package in a source checkout."""
    installed = Path(__file__).resolve().parent.parent / "templates"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent.parent / "templates"


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
    docstring: str = ""
    helpers: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["extra"][key]
        except KeyError:
            raise AttributeError(key) from None


def loss_formula(spec: Spec) -> str:
    if spec.loss == "softmax_ce":
        return "-sum_j y_j*log(softmax(z)_j) = logsumexp(z)*sum_j y_j - sum_j y_j*z_j"
    return f"sum_j {sp.sstr(output_math(spec).loss)}  (a, z, y of output unit j)"


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
    """Fail unless ``source`` parses and its docstring is exactly ``docstring``.

    A postcondition of every render: whatever text went into the header, it stayed text.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:  # a generator bug, never user input: say so loudly
        raise RuntimeError(
            f"symprop rendered invalid Python ({exc.msg}, line {exc.lineno}); please report it"
        ) from None
    if ast.get_docstring(tree, clean=False) != docstring:
        raise RuntimeError("symprop rendered a module whose docstring is not its intended text; please report it")
    return source


def base_context(spec: Spec, mode: str, rewrites: tuple[str, ...]) -> ModuleContext:
    m = ModuleContext(
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
        activations_text=" -> ".join(layer.describe() for layer in spec.layers),
        loss_formula=loss_formula(spec),
        rewrites_text=", ".join(rewrites) if rewrites else "none",
        warnings=gradient_warnings(spec),
        spec_lines=spec.to_toml().rstrip("\n").split("\n"),
    )
    text = environment().get_template("numpy/_docstring.txt.jinja").render(m=m)
    m.docstring = "\n".join(line.rstrip() for line in text.split("\n"))
    return m


def finish(template: str, m: ModuleContext) -> str:
    """Render ``template`` with ``m``, tidy it, and check the postcondition of :func:`check_module`."""
    source = tidy(environment().get_template(template).render(m=m, docstring=docstring_literal(m.docstring)))
    return check_module(source, m.docstring)


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
