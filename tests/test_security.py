"""A spec is untrusted input: no text in it can make an emitted file run code or change shape.

Hostile text goes into every field a spec lets a user write free text into (custom activation
and loss expressions, the spec file's name; ``name`` must be an identifier) and through every
output (both NumPy modes, the C target in double and float, explain in every format).  Each hostile string would, if copied raw
into a docstring or comment, close it and run code that creates a marker file; the test imports
every emitted module and checks the marker never appears and the module works.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from symprop.backends.c.module import check_comment_safe
from symprop.backends.templating import check_module, docstring_literal
from symprop.emit import MODES, render, render_files
from symprop.explain import FORMATS, explain
from symprop.spec import Spec, SpecError, load_spec
from symprop.tools.cbuild import load_c
from symprop.tools.check import load_module

RENDER_MODES = [m for m in MODES if m != "auto"]
# every Python-module target: (mode, target); init_params of the array-api module takes a namespace
PY_TARGETS = [*((m, "numpy") for m in RENDER_MODES), ("auto", "array-api")]


def payloads(marker: Path) -> list[str]:
    """Expressions that parse as ``x`` (or ``a - y``) but carry code after a comment or in odd characters."""
    run = f"open({str(marker)!r}, 'w').write('pwned')"
    return [
        f'x #"""+{run}+"""',  # the reported exploit: closes the header docstring, runs on import
        f'(x #"""\n{run}\n"""\n)',
        f"(x #'''\n){run}#'''",
        f'(x #"""\n)\n{run}\n#"""',
        'x #\\"""\\\\ \x00 \u2028 \r end',
        f"(x #\r{run}\n)",
        f"(x # */ {run} /*\n)",
    ]


N_PAYLOADS = 7


def write_spec(path: Path, expr: str, loss_expr: str) -> Path:
    text = (
        'name = "hostile"\ninputs = 2\nloss = "custom"\n'
        f"loss_expr = {_toml(loss_expr)}\n\n"
        f'[[layers]]\nunits = 3\nactivation = "custom"\nexpr = {_toml(expr)}\n\n'
        '[[layers]]\nunits = 1\nactivation = "identity"\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


def _toml(text: str) -> str:
    """A TOML basic string holding ``text`` exactly (escapes for quote, backslash and controls)."""
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@pytest.mark.parametrize("index", range(N_PAYLOADS))
def test_hostile_expressions_never_reach_an_emitted_file(tmp_path: Path, index: int) -> None:
    marker = tmp_path / "marker"
    expr = payloads(marker)[index]
    loss_expr = expr.replace("x", "(a - y)**2", 1)
    try:
        spec = load_spec(write_spec(tmp_path / "hostile.toml", expr, loss_expr))
    except SpecError:  # refused as a whole is safe too; most of these parse as plain x
        return
    assert spec.layers[0].param("expr") == "x"  # re-printed from SymPy, the comment gone
    assert spec.loss_expr == "(a - y)**2"
    for mode, target in PY_TARGETS:
        source = render(spec, mode, target)
        assert "pwned" not in source and "open(" not in source
        module = load_module(source, f"hostile_{mode}_{target}")
        rng = np.random.default_rng(0)
        params = module.init_params(np, 1) if target == "array-api" else module.init_params(1)
        C, grads = module.loss_and_grad(params, rng.normal(size=(4, 2)), rng.normal(size=(4, 1)))
        assert np.isfinite(C) and set(grads) == set(module.PARAM_SHAPES)
    for fmt in FORMATS:
        assert "pwned" not in explain(spec, fmt)
    _check_c_target(spec)
    assert not marker.exists()


def _check_c_target(spec: Spec) -> None:
    """The C target: no payload text in either file, comments closed once, and it compiles
    (warnings as errors) and runs."""
    for real in ("double", "float"):
        files = render_files(spec, target="c", options={"real": real})
        for text in files.values():
            assert "pwned" not in text and "open(" not in text
            check_comment_safe(text)
        c = load_c(spec, real)
        rng = np.random.default_rng(0)
        params = {k: rng.normal(size=s) for k, s in c.PARAM_SHAPES.items()}
        C, grads = c.loss_and_grad(params, rng.normal(size=(4, 2)), rng.normal(size=(4, 1)))
        assert np.isfinite(C) and set(grads) == set(c.PARAM_SHAPES)


def test_a_spec_built_in_python_is_re_printed_before_emission(tmp_path: Path) -> None:
    """``Spec(...)`` objects skip load_spec; render and explain validate them, so raw text still never lands."""
    from symprop.spec import Layer, Spec

    marker = tmp_path / "marker"
    expr = payloads(marker)[0]
    spec = Spec("py_hostile", 2, (Layer.of(2, "custom", expr=expr), Layer.of(1, "identity")), "mse")
    for mode, target in PY_TARGETS:
        source = render(spec, mode, target)
        assert "pwned" not in source
        load_module(source, f"py_hostile_{mode}_{target}")
    assert "pwned" not in explain(spec, "latex")
    _check_c_target(spec)
    assert not marker.exists()


@pytest.mark.parametrize(
    "file_name",
    ["evil\nname.toml", "x`y.toml", "a$b{c}\\input{d}.toml", 'q"""z.toml', "ok-name_1.toml"],
)
def test_a_hostile_spec_file_name_is_never_shown_raw(tmp_path: Path, file_name: str) -> None:
    path = write_spec(tmp_path / file_name, "x", "(a - y)**2")
    spec = load_spec(path)
    shown = "ok-name_1.toml" if file_name == "ok-name_1.toml" else "SPEC"
    assert spec.file_label == shown
    assert f"symprop explain {shown} " in explain(spec, "markdown")
    for fmt in FORMATS:
        out = explain(spec, fmt)
        assert file_name not in out or file_name == shown
        assert "symprop explain" not in out or f"symprop explain {shown} " in out


@pytest.mark.parametrize("text", ['"""', '""""', 'a"', "\\", '\\"""', "\x00\r\t\u2028\x7f", 'end with quote"'])
def test_docstring_literal_round_trips_any_text(text: str) -> None:
    literal = '"""' + docstring_literal(text) + '"""'
    tree = ast.parse(literal)
    assert len(tree.body) == 1
    assert ast.literal_eval(literal) == text


def test_the_docstring_postcondition_catches_an_escape() -> None:
    """check_module is the last line of defence: a docstring that ends early fails the render."""
    with pytest.raises(RuntimeError, match="docstring"):
        check_module('"""intended"""\n"""other"""\n', "intended text")
    with pytest.raises(RuntimeError, match="docstring"):
        check_module("x = 1\n", "x = 1")
    assert check_module('"""a"""\n', "a")
