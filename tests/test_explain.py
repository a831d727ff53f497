"""``symprop explain``: the printed formulas are the generated module's gradient, and read like the textbook.

Numbers: every formula printed with ``--format sympy`` is parsed back with
``sympy.sympify`` (no extra names) and evaluated at 30 significant digits; the
generated module computes in float64.  An exact formula agrees to ~1e-15
relative (a few roundings in a short chain of float64 operations on values of
order 1), so ``TOL = 1e-10`` (relative, floor 1) leaves a margin of ~1e5; a
wrong formula (a missing factor, a dropped term, the wrong parameter) is off
by order 1.  ``test_the_comparison_can_fail`` shows it catching a factor of 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

from scripts.regen import ARTIFACTS
from symprop.cli import main
from symprop.emit import render
from symprop.explain import explain
from symprop.spec import Layer, Spec, load_spec
from symprop.tools.check import load_module
from tests.support import ROOT, spec_for

TOL = 1e-10
XOR = ROOT / "examples" / "xor.toml"
TEXTBOOK = Spec("textbook_net", 1, (Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid")), "sse")

# Every activation, each paired with a loss so that every loss appears twice (the full
# activation x loss product is covered against finite differences in test_gradients.py).
PAIRS = [
    ("identity", "softmax_ce"),
    ("sigmoid", "mse"),
    ("piecewise_linear", "sse"),
    ("gaussian", "custom"),
    ("step", "bce"),
    ("relu", "softmax_ce"),
    ("tanh", "bce"),
    ("softplus", "mse"),
    ("leaky_relu", "custom"),
    ("custom", "sse"),
]


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def spec_file(spec: Spec, tmp_path: Path) -> Path:
    path = tmp_path / f"{spec.name}.toml"
    path.write_text(spec.to_toml(), encoding="utf-8")
    return path


def parse(text: str) -> dict[str, sp.Expr]:
    """``name = expr`` lines -> {name: expr}; sympify with no locals, so unknown functions would show."""
    out = {}
    for line in text.splitlines():
        name, sep, rhs = line.partition(" = ")
        assert sep and re.fullmatch(r"\w+", name), line
        expr = sp.sympify(rhs)
        assert not expr.atoms(AppliedUndef), (name, expr.atoms(AppliedUndef))
        out[name] = expr
    return out


def point(spec: Spec, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, float]]:
    """Random params, one sample (x, y) valid for the loss, and the same values by symbol name."""
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, 0.8, size=s) for k, s in spec.param_shapes.items()}
    X = rng.normal(0.0, 1.0, size=(1, spec.inputs))
    if spec.loss == "softmax_ce":
        Y = np.eye(spec.outputs)[[rng.integers(spec.outputs)]]
    elif spec.loss == "bce":
        Y = rng.uniform(0.0, 1.0, size=(1, spec.outputs))
    else:
        Y = rng.normal(0.0, 1.0, size=(1, spec.outputs))
    values = {f"x{i + 1}": X[0, i] for i in range(spec.inputs)} | {f"y{j + 1}": Y[0, j] for j in range(spec.outputs)}
    for name, array in params.items():
        for index in np.ndindex(*array.shape):
            values[f"{name}_{'_'.join(str(k + 1) for k in index)}"] = array[index]
    return params, X, Y, values


def evaluate(expr: sp.Expr, values: dict[str, float]) -> float:
    return float(expr.xreplace({s: sp.Float(values[s.name], 30) for s in expr.free_symbols}).evalf(30))


def gradient_index(name: str) -> tuple[str, tuple[int, ...]]:
    """``dC_dW2_1_3`` -> ("W2", (0, 2))."""
    array, *index = name[len("dC_d") :].split("_")
    return array, tuple(int(k) - 1 for k in index)


def worst_error(formulas: dict[str, sp.Expr], spec: Spec, module_spec: Spec, seed: int) -> tuple[float, float]:
    """(worst relative error of the formulas vs the module's batch-of-one gradient, largest |gradient|)."""
    module = load_module(render(module_spec, "unrolled"), module_spec.name)
    params, X, Y, values = point(spec, seed)
    _, grads = module.loss_and_grad(params, X, Y)
    worst = biggest = 0.0
    for name, expr in formulas.items():
        array, index = gradient_index(name)
        want = float(grads[array][index])
        worst = max(worst, abs(evaluate(expr, values) - want) / max(1.0, abs(want)))
        biggest = max(biggest, abs(want))
    return worst, biggest


# ------------------------------------------------------------- numbers --
@pytest.mark.parametrize(("activation", "loss"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_expanded_formulas_equal_the_generated_gradient(activation: str, loss: str, tmp_path: Path, capsys) -> None:
    spec = spec_for(activation, loss, (2, 2, 2))
    code, out, err = cli(str(spec_file(spec, tmp_path)), "--expand", "--format", "sympy", capsys=capsys)
    assert code == 0, err
    formulas = parse(out)
    assert set(formulas) == {
        f"dC_d{a}_{'_'.join(str(k + 1) for k in i)}" for a, s in spec.param_shapes.items() for i in np.ndindex(*s)
    }
    for expr in formulas.values():  # expanded: inputs, targets and parameters only
        assert all(re.fullmatch(r"x\d+|y\d+|W\d+_\d+_\d+|b\d+_\d+", s.name) for s in expr.free_symbols), expr
    for seed in (0, 1):
        worst, biggest = worst_error(formulas, spec, spec, seed)
        assert worst < TOL
        assert biggest > 1e-3  # not a vacuous 0 == 0 comparison


@pytest.mark.parametrize(("activation", "loss"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_chain_rule_view_parses_in_every_format(activation: str, loss: str) -> None:
    spec = spec_for(activation, loss, (2, 3, 2))
    lines = parse(explain(spec, "sympy"))
    assert {"loss_k", "f1", "df1", "f2", "df2", "delta1_j", "dC_dW1_j_i", "dC_db2_j", "dC_da1_i"} <= set(lines)
    latex = explain(spec, "latex").split("% Worked example")[0]  # the derivation, before the worked example
    assert latex.count(r"\begin{align*}") == latex.count(r"\end{align*}") == 3
    assert latex.count("{") == latex.count("}") and "}^{\\top" not in latex and ")}^\\top" not in latex
    markdown = explain(spec, "markdown")
    formulas = [line for line in markdown.splitlines() if line.startswith("$$")]
    assert formulas and all(line.endswith("$$") and len(line) > 4 for line in formulas)
    # no backslash before punctuation: Markdown may eat it even inside math (\{ on GitHub)
    assert not any(re.search(r"\\[!-/:-@\[-`{-~]", line) for line in formulas), formulas
    assert "delta2" in explain(spec, "text")


def test_the_comparison_can_fail(tmp_path: Path, capsys) -> None:
    """The sse formulas checked against the mse module (half the gradient) are caught."""
    sse = spec_for("tanh", "sse", (2, 2, 2))
    mse = Spec(sse.name, sse.inputs, sse.layers, "mse")
    formulas = parse(explain(sse, "sympy", expand=True))
    worst, _ = worst_error(formulas, sse, mse, 0)
    assert worst > 1e3 * TOL


def test_compact_formula_with_its_definitions_is_the_gradient() -> None:
    """--param (compact): substituting the printed definitions gives the module's gradient."""
    spec = load_spec(XOR)
    for label in ("W1[2,1]", "b1[3]", "W2[1,3]", "b2[1]"):
        lines = parse(explain(spec, "sympy", param=label))
        (name, formula), *definitions = lines.items()
        assert name == "dC_d" + re.sub(r"\W+", "_", label).strip("_")
        assert {n for n, _ in definitions} >= {"delta2_1", "a2_1", "z2_1"}
        defs = {sp.Symbol(n): e for n, e in definitions}
        for _ in range(10):
            formula = formula.xreplace(defs)
        worst, _ = worst_error({name: formula}, spec, spec, 3)
        assert worst < TOL


def test_module_comments_are_the_explain_texts() -> None:
    """The generated module's delta comments are printed by explain's --param text, verbatim."""
    spec = load_spec(XOR)
    comments = [
        line.strip()[2:] for line in render(spec, "unrolled").splitlines() if line.strip().startswith("# delta")
    ]
    assert len(comments) == 4
    text = explain(spec, "text", param="W1[1,1]") + explain(spec, "text", param="W1[3,2]")
    for comment in comments:
        if comment.startswith(("delta1_1 ", "delta1_3 ", "delta2_1 ")):
            assert comment in text
    assert "dC_k/dW1[1,1] = delta1_1*x1" in text


# ------------------------------------------------------------- textbook --
def test_textbook_one_neuron_per_layer() -> None:
    """1-1-1 sigmoid net with sse: dC/dW2 = a1 σ'(z2) 2(a2 − y), dC/db2 = σ'(z2) 2(a2 − y),
    and one layer down dC/da1 = W2 σ'(z2) 2(a2 − y)."""
    a1, a2, z2, y, W2 = sp.symbols("a1_1 a2_1 z2_1 y1 W2_1_1")
    sigma_prime = a2 * (1 - a2)  # σ'(z2) in terms of a2 = σ(z2)
    textbook = {
        "dC_dW2_1_1": a1 * sigma_prime * 2 * (a2 - y),
        "dC_db2_1": sigma_prime * 2 * (a2 - y),
        "dC_da1_1": W2 * sigma_prime * 2 * (a2 - y),
    }
    printed: dict[str, sp.Expr] = {}
    for label in ("W2[1,1]", "b2[1]", "W1[1,1]"):
        lines = parse(explain(TEXTBOOK, "sympy", param=label))
        deltas = {sp.Symbol(n): e for n, e in lines.items() if n.startswith("delta2")}
        printed |= {n: e.xreplace(deltas) for n, e in lines.items() if n in textbook}
    assert set(printed) == set(textbook)
    for name, expected in textbook.items():
        assert sp.simplify(printed[name] - expected) == 0, (name, printed[name])
        # and σ' really is the derivative: with a2 = σ(z2) both sides agree as functions of z2
        sigma = 1 / (1 + sp.exp(-z2))
        truth = expected.xreplace({sigma_prime: sp.diff(sigma, z2)}).xreplace({a2: sigma})
        assert sp.simplify(printed[name].xreplace({a2: sigma}) - truth) == 0, name


def test_textbook_chain_rule_view() -> None:
    """The per-layer view shows dC/da2 = 2(a2 − y) and δ2 = σ'(z2) 2(a2 − y) as SymPy derived them;
    one unit per layer, so in the scalar view (no unit index j)."""
    lines = parse(explain(TEXTBOOK, "sympy"))
    a, y, a2 = sp.symbols("a y a2")
    assert sp.simplify(lines["df2"] - a * (1 - a)) == 0
    assert lines["dC_da2"] == 2 * (a2 - y)  # factored, as printed
    assert sp.simplify(lines["delta2"] - a2 * (1 - a2) * 2 * (a2 - y)) == 0
    text = explain(TEXTBOOK, "text")
    assert "dC_k/da2 = 2*(a2 - y)" in text and "f2'(z) = " in text
    assert "_j" not in text.split("Worked example")[0]  # no unit index in the scalar view


# ------------------------------------------------------------- collapse --
def test_collapse_numbers_equal_the_forward_pass(tmp_path: Path, capsys) -> None:
    spec = Spec("linear", 3, (Layer.of(4, "identity"), Layer.of(2, "identity"), Layer.of(2, "identity")), "mse")
    code, out, err = cli(str(spec_file(spec, tmp_path)), "--collapse", "--format", "sympy", capsys=capsys)
    assert code == 0, err
    lines = parse(out)
    assert set(lines) == {"W_1_1", "W_1_2", "W_1_3", "W_2_1", "W_2_2", "W_2_3", "B_1", "B_2"}
    module = load_module(render(spec), spec.name)
    params, _, _, values = point(spec, 5)
    W = np.array([[evaluate(lines[f"W_{j}_{i}"], values) for i in (1, 2, 3)] for j in (1, 2)])
    B = np.array([evaluate(lines[f"B_{j}"], values) for j in (1, 2)])
    X = np.random.default_rng(6).normal(size=(7, 3))
    np.testing.assert_allclose(X @ W.T + B, module.forward(params, X), rtol=1e-12, atol=1e-12)
    assert "W = W3 W2 W1" in explain(spec, "text", collapse=True)


# ------------------------------------------------------------- CLI --
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "W9[1,1]"], "no layer 9"),
        (["--param", "W2[1,4]"], "out of range"),
        (["--param", "W2[0,1]"], "out of range"),
        (["--param", "b1[4]"], "out of range"),
        (["--param", "W2[1]"], "two indices"),
        (["--param", "b1[1,1]"], "one index"),
        (["--param", "W2(1,3)"], "expected W<l>[j,i]"),
        (["--param", "__import__('os').system('id')"], "expected W<l>[j,i]"),
        (["--format", "html"], "invalid choice"),
        (["--collapse"], "layer 1 is 'sigmoid'"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(args, needle, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "report.md"
    code, out, err = cli(str(XOR), *args, "-o", str(out_file), capsys=capsys)
    assert code == 2
    assert err.startswith("symprop: error: ") and err.count("\n") == 1 and needle in err, err
    assert out == "" and not out_file.exists() and list(tmp_path.iterdir()) == []


def test_collapse_with_param_is_refused(tmp_path: Path, capsys) -> None:
    spec = Spec("lin", 2, (Layer.of(2, "identity"),), "mse")
    code, _, err = cli(str(spec_file(spec, tmp_path)), "--collapse", "--param", "W1[1,1]", capsys=capsys)
    assert code == 2 and "--collapse" in err


def test_output_file_is_what_stdout_shows(tmp_path: Path, capsys) -> None:
    code, shown, _ = cli(str(XOR), "--param", "W2[1,3]", "--format", "latex", capsys=capsys)
    assert code == 0
    target = tmp_path / "w.tex"
    code, out, _ = cli(str(XOR), "--param", "W2[1,3]", "--format", "latex", "-o", str(target), capsys=capsys)
    assert code == 0 and out == f"wrote {target}\n"
    assert target.read_text(encoding="utf-8") == shown
    assert r"\frac{\partial C_k}{\partial W^{(2)}_{1,3}} &= \delta^{(2)}_{1} \cdot a^{(1)}_{3}" in shown


# ------------------------------------------------------------- golden --
def test_golden_markdown_report() -> None:
    """generated/xor.md is `symprop explain examples/xor.toml --format markdown`, byte for byte
    (regenerated with the modules by `python -m scripts.regen`)."""
    path = ROOT / "generated" / "xor.md"
    assert "{name}.md" in [pattern for pattern, _ in ARTIFACTS]  # so tests/test_golden.py checks every example's
    assert path.read_text(encoding="utf-8") == explain(load_spec(XOR), "markdown")
    report = path.read_text(encoding="utf-8")
    assert report.startswith("# xor: the chain rule, layer by layer\n") and "```toml\n" in report
    assert report.count("## Layer ") == 2 and report.count("$$") % 2 == 0
