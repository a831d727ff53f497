"""Property-based fuzzing of the command line with hostile specs (issue 14, "Must hold").

Two generators: random spec *texts* (valid and broken TOML, wrong types, hostile strings in every
field, out-of-range numbers) and random *expression trees* from the whitelist grammar of
:mod:`symprop.spec.safe_expr` (used as custom activations and losses).  Each case runs
``symprop generate`` in-process (``symprop.cli.main``, stdout/stderr captured) and must end in one
of two ways:

* exit 0, with exactly the module in the output folder; the module imports and runs, and its
  ``loss_and_grad`` is finite at a test point, or ``symprop.tools.check.compare`` reports a clear failure
  (a NaN/inf named in ``problems``);
* exit 2, with exactly one line on stderr and nothing in the output folder.

Never a traceback, another exit code, or a hang: a watchdog interrupts a case after CASE_SECONDS
(the CLI then exits 130, which fails the test).  Derandomized like tests/test_properties.py
(``HYPOTHESIS_PROFILE=explore`` for fresh draws); the example counts keep the file to a few tens of
seconds.
"""

from __future__ import annotations

import _thread
import contextlib
import io
import json
import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from symprop.cli import main
from symprop.spec import ACTIVATIONS, LOSSES, load_spec
from symprop.tools.check import compare, load_module, random_problem
from tests.support import NUMPY_MODES

# fuzz-ci / fuzz-explore are registered in tests/conftest.py (HYPOTHESIS_PROFILE selects)
PROFILE = "fuzz-explore" if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else "fuzz-ci"
CASE_SECONDS = 60.0  # generous for a 2-core machine under load; a fixed case takes well under a second

HOSTILE = [
    '"""',
    "'''",
    "\\",
    "\x00",
    "\u2028",
    "\r\n",
    "{{ x }}",
    "{% raw %}",
    "$(id)",
    "../../etc/passwd",
    "x #\"\"\"+open('m','w').write('p')+\"\"\"",
    "__import__('os')",
    "ñame",
    "__init__",
    "",
    " ",
    "x" * 3000,
]

# ------------------------------------------------------------------ expression trees --
NUMBERS = st.one_of(
    st.integers(0, 100).map(str),
    st.sampled_from(["0.5", "1e300", "1e-300", "2.5e-7", "0", "64", "65", "1e308", "9"]),
)
LEAVES = st.one_of(st.just("x"), NUMBERS, st.sampled_from(["pi", "E"]))


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"
        ),
        children.map(lambda e: f"-({e})"),
        st.tuples(st.sampled_from(["exp", "log", "tanh", "sqrt", "abs", "sin", "cos", "Heaviside"]), children).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(children, children).map(lambda t: f"Heaviside({t[0]}, {t[1]})"),
        st.tuples(children, children, st.sampled_from(["<", "<=", ">", ">="]), children, children).map(
            lambda t: f"Piecewise(({t[0]}, {t[1]} {t[2]} {t[3]}), ({t[4]}, True))"
        ),
    )


EXPRESSIONS = st.recursive(LEAVES, _grow, max_leaves=10)


# ------------------------------------------------------------------------ spec texts --
def toml_value(value: object) -> str:
    """A TOML literal for value (floats inf/nan as TOML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string for any text (JSON escapes)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


ANY_VALUE = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=2),
)
NAMES = st.one_of(
    st.sampled_from(["net", "xor", "numpy", "os", "sys", "class", "math", "sympy"]), st.sampled_from(HOSTILE)
)


@st.composite
def valid_layer(draw: st.DrawFn) -> dict[str, object]:
    """A layer the spec rules accept (parameters in range), custom ones with a random expression."""
    activation = draw(st.sampled_from(list(ACTIVATIONS)))
    table: dict[str, object] = {"units": draw(st.integers(1, 3)), "activation": activation}
    if activation == "sigmoid":
        table["beta"] = draw(st.sampled_from([0.5, 2.0, -1.0]))
    elif activation == "gaussian":
        table["sigma"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
    elif activation == "piecewise_linear":
        table["x_min"], table["x_max"] = draw(st.sampled_from([(-1.0, 1.0), (0.0, 3.0)]))
    elif activation == "custom":
        table["expr"] = draw(EXPRESSIONS)
    return table


@st.composite
def valid_spec(draw: st.DrawFn) -> dict[str, object]:
    layers = draw(st.lists(valid_layer(), min_size=1, max_size=3))
    loss = draw(st.sampled_from(list(LOSSES)))
    data: dict[str, object] = {"name": "net", "inputs": draw(st.integers(1, 3)), "loss": loss}
    if loss == "custom":
        data["loss_expr"] = draw(EXPRESSIONS.map(lambda e: e.replace("x", "(a-y)")))
    elif loss == "softmax_ce":
        layers[-1] = {"units": 2, "activation": "identity"}
    elif loss == "bce" and draw(st.booleans()):
        layers[-1] = {"units": 1, "activation": "sigmoid"}
    data["layers"] = layers
    return data


@st.composite
def mutate(draw: st.DrawFn, data: dict[str, object]) -> dict[str, object]:
    """One hostile change: a field replaced by any value, a key dropped, or an unknown key added."""
    layers = data.get("layers")
    tables = [t for t in layers if isinstance(t, dict)] if isinstance(layers, list) else []
    target: dict[str, object] = draw(st.sampled_from([data, *tables]))
    keys = sorted(set(target) | {"beta", "sigma", "x_min", "x_max", "m", "b", "mu", "alpha", "expr", "nmae"})
    key = draw(st.sampled_from(keys))
    action = draw(st.sampled_from(["replace", "replace", "drop"]))
    if action == "drop":
        target.pop(key, None)
    elif key == "name":
        target[key] = draw(NAMES)
    elif key in ("expr", "loss_expr"):
        target[key] = draw(st.one_of(EXPRESSIONS, st.sampled_from(HOSTILE)))
    else:
        target[key] = draw(ANY_VALUE)
    return data


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    data = draw(valid_spec())
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        data = draw(mutate(data))
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if k != "layers"]
    layers = data.get("layers", [])
    if isinstance(layers, list) and all(isinstance(t, dict) for t in layers):
        for table in layers:
            lines.append("[[layers]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    else:
        lines.append(f"layers = {toml_value(layers)}")
    text = "\n".join(lines) + "\n"
    corruption = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert"]))
    if corruption == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif corruption == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(['"', "[", "=", "\x00", "\n[[layers]]\n", "\ufeff", "]]"])) + text[at:]
    return text


# ------------------------------------------------------------------------- the oracle --
def run_case(text: str, mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = Path(tmp) / "out"
        stdout, stderr = io.StringIO(), io.StringIO()
        watchdog = threading.Timer(CASE_SECONDS, _thread.interrupt_main)
        watchdog.start()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(["generate", str(spec), "-o", str(out), "--mode", mode])
        finally:
            watchdog.cancel()
        err = "\n".join(line for line in stderr.getvalue().splitlines() if not line.startswith("symprop: warning:"))
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        assert "Traceback" not in err, err
        if code == 2:
            assert err.count("\n") == 0 and err.startswith("symprop: error: "), (text, err)
            assert left == [], left
            return
        assert code == 0, (code, text, err)
        assert err == "", err
        parsed = load_spec(spec)
        assert left == [f"{parsed.name}.py"], left
        source = (out / f"{parsed.name}.py").read_text(encoding="utf-8")
        module = load_module(source, parsed.name)
        params, X, Y = random_problem(parsed, seed=0, n=3)
        with np.errstate(all="ignore"):
            value, grads = module.loss_and_grad(params, X, Y)
            finite = math.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())
            if not finite:  # the check must then say so, naming where
                result = compare(module, parsed, seeds=(0,), max_entries=2)
                assert not result.passed and result.problems, result


@settings.get_profile(PROFILE)
@given(spec_texts(), st.sampled_from(list(NUMPY_MODES)))
def test_random_spec_texts_end_in_a_module_or_one_line(text: str, mode: str) -> None:
    run_case(text, mode)


def expression_spec(expr: str, loss_expr: str) -> str:
    return (
        f'name = "fuzz"\ninputs = 2\nloss = "custom"\nloss_expr = {json.dumps(loss_expr)}\n'
        f'[[layers]]\nunits = 2\nactivation = "custom"\nexpr = {json.dumps(expr)}\n'
        '[[layers]]\nunits = 1\nactivation = "identity"\n'
    )


@settings.get_profile(PROFILE)
@given(EXPRESSIONS, EXPRESSIONS, st.sampled_from(list(NUMPY_MODES)))
def test_random_expression_trees_end_in_a_module_or_one_line(expr: str, loss: str, mode: str) -> None:
    run_case(expression_spec(expr, f"({loss.replace('x', 'a')}) + (a - y)**2"), mode)
