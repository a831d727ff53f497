"""``symprop report`` and the notebook reprs: numbers, notation, escaping, CLI errors.

The worked example's gradient is computed twice, independently: by the generated module
(``loss_and_grad`` on a batch of one) and from the per-layer z, a, δ the report computes from
the layer formulas (δ^l (a^(l-1))ᵀ).  Both are float64 evaluations of the same math, a
few roundings apart (~1e-15 relative), so they are compared at 1e-9 (a margin of ~1e6; a
wrong factor or term is off by order 1).  ``test_worked_example_disagreement_is_caught``
shows the comparison failing for a module of the wrong loss.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symprop.cli import main
from symprop.emit import render
from symprop.explain.model import parse_entry
from symprop.explain.notation import Printers, chain_product, disjoint_cases, legend, short_float, tidy
from symprop.explain.report import explained, report
from symprop.explain.worked import compute, problem
from symprop.ir.notes import ref
from symprop.ir.program import Kind
from symprop.spec import Layer, Spec, load_spec
from symprop.spec.diagram import LayerPicture, drawn_units, network_svg
from symprop.tools.check import load_module, random_problem
from tests.support import ROOT, spec_for

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


# ------------------------------------------------------------------ numbers --
@pytest.mark.parametrize(("activation", "loss"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_worked_example_equals_the_generated_module(activation: str, loss: str) -> None:
    """The worked example's numbers (IR interpreter) against the emitted modules, both modes.
    Same float64 formulas, different association: 1e-12 relative is ~1e4 ulps of margin."""
    spec = spec_for(activation, loss, (3, 4, 2))
    for seed in (0, 1):
        w = compute(spec, problem(spec, seed=seed))
        params, X, Y = random_problem(spec, seed, n=1)
        module = load_module(render(spec, "unrolled"), spec.name)
        loss_value, grads = module.loss_and_grad(params, X, Y)
        assert w.loss == pytest.approx(float(loss_value), rel=1e-12)
        for name, g in grads.items():
            np.testing.assert_allclose(w.grads[name], g, rtol=1e-12, atol=1e-14)
        out = module.forward(params, X)[0]
        np.testing.assert_allclose(w.a[-1] if loss != "softmax_ce" else w.z[-1], out, rtol=1e-12)
        assert max(float(np.max(np.abs(g))) for g in grads.values()) > 1e-6 or activation == "step"


def test_report_shows_the_module_numbers() -> None:
    """Every gradient entry and the cost, at the worked example's 4 digits, are the module's."""
    spec = load_spec(ROOT / "examples" / "xor.toml")
    page = report(spec, seed=3, digits=4)
    params, X, Y = random_problem(spec, 3, n=1)
    loss, grads = load_module(render(spec), spec.name).loss_and_grad(params, X, Y)
    for g in grads.values():
        for v in np.ravel(g):
            assert short_float(float(v), 4).lstrip("-") in page
    assert short_float(float(loss), 4) in page
    assert "Worked example (seed 3)" in page and "seeded random problem" in page


# ------------------------------------------------------------------ the page --
@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.stem)
def test_page_is_self_contained(path: Path) -> None:
    spec = load_spec(path)
    page = report(spec)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)  # nothing loaded from anywhere
    assert re.findall(r"https?://[^\"\s<]*", page) == ["http://www.w3.org/2000/svg"]  # the SVG namespace, not a request
    assert page.count("<math") == page.count("</math>") > 10
    assert page.count("<circle") == sum(drawn_units(n) for n in spec.layer_sizes)
    assert "mfenced" not in page  # not MathML Core
    for l in range(1, len(spec.layers) + 1):  # per layer f, f', delta, dC/dW, dC/db
        assert f"Layer {l} (" in page


def test_report_with_params_shows_the_chain_rule_product() -> None:
    spec = load_spec(ROOT / "examples" / "textbook.toml")
    page = report(spec, ["W1[1,1]"])
    assert "dC_k/dW1[1,1], expanded" not in page  # headings are the compact one and the expanded section
    assert "By the chain rule, in the paper" in page and "in inputs, targets and parameters" in page
    product = chain_product(parse_entry("W1[1,1]", spec), 2, False)
    assert product.text() == "dC_k/dW1_1_1 = dz1_1/dW1_1_1 * da1_1/dz1_1 * dC_k/da1_1 = x1 * f1'(z1_1) * dC_k/da1_1"
    # one unit per layer: the page shows the same product in the scalar view (w1, x, no unit index)
    assert chain_product(parse_entry("W1[1,1]", spec), 2, False, scalar=True).mathml() in page


def test_spec_text_is_escaped(tmp_path: Path) -> None:
    """A custom expression with < and & reaches the page only escaped."""
    spec = Spec(
        "esc",
        1,
        (Layer.of(2, "custom", expr="Piecewise((x, x < 0), (2*x, True))"), Layer.of(1, "identity")),
        "custom",
        "Piecewise(((a - y)**2, a - y < 1), (abs(a - y), True))",
    )
    page = report(spec)
    assert "x < 0" not in page and "x &lt; 0" in page
    body = re.sub(r"<[^>]*>", "", re.sub(r"<style>.*?</style>", "", page, flags=re.S))  # text has no raw < or >
    assert "<" not in body and ">" not in body.replace("->", "")


def test_big_layer_drawn_compactly() -> None:
    svg = network_svg([LayerPicture(64, "inputs x"), LayerPicture(3, "layer 1", ("<b>&",))])
    assert svg.count("<circle") == 10 + 3 and "⋮" in svg and "64 units" in svg
    assert "&lt;b&gt;&amp;" in svg and "<b>" not in svg


# ------------------------------------------------------------------ notation --
def test_piecewise_conditions_are_disjoint() -> None:
    z = sp.Symbol("z")
    pw = sp.Piecewise((0, z <= -2), (z / 4 + sp.Rational(1, 2), z < 2), (1, True))
    cases = disjoint_cases(pw)
    for point in (-3, -2, -1.5, 0, 1.99, 2, 7):
        holding = [value for value, cond in cases if bool(cond.subs(z, point))]
        assert len(holding) == 1 and holding[0].subs(z, point) == pw.subs(z, point), point
    text = Printers().text(pw)
    assert text == "{0 if z <= -2; z/4 + 1/2 if -2 < z < 2; 1 if z >= 2}"


def test_textbook_notation() -> None:
    from symprop.symbolic.functions import LogSumExp, Relu, Sigmoid, Softplus

    z = sp.Symbol("z")
    p = Printers()
    assert p.text(Sigmoid(z)) == "σ(z)" and p.latex(Sigmoid(z)) == r"\sigma\left(z\right)"
    assert p.text(Relu(z)) == "max(0, z)" and p.text(sp.Heaviside(z, 0)) == "1[z > 0]"
    assert p.text(sp.Heaviside(z, 1)) == "θ(z)" and "θ(0) = 1" in legend([sp.Heaviside(z, 1)])[0]
    assert p.text(Softplus(z)) == "log(1 + exp(z))"
    zs = [ref(Kind.Z, 2, j) for j in (1, 2, 3)]  # one layer's z, as references (kind, layer, unit)
    assert p.latex(LogSumExp(*zs)) == r"\log \sum_{j=1}^{3} e^{z^{(2)}_{j}}"
    assert p.text(sp.Float("0.3333333333333333", 30) * z) == "z/3"
    assert (
        p.text(sp.Float("0.123456789", 30) * z) == "0.123457*z"
        and Printers(3).text(sp.Float(0.123456789) * z) == "0.123*z"
    )
    assert p.text(sp.Float("0.1", 30) * z) == "0.1*z"
    j = sp.Symbol("j", integer=True, positive=True)
    one = sp.Sum(ref(Kind.WEIGHT, 2, "j", "i") * ref(Kind.DELTA, 2, "j"), (j, 1, 1))
    assert p.latex(one) == r"W^{(2)}_{1,i} \delta^{(2)}_{1}" and "sum" not in p.latex(one)
    assert tidy(one) == ref(Kind.WEIGHT, 2, 1, "i") * ref(Kind.DELTA, 2, 1)


def test_explain_text_uses_the_notation() -> None:
    from symprop.explain import explain

    text = explain(load_spec(ROOT / "examples" / "bce_relu.toml"), "text")
    # relu's mask in terms of the saved a (a = max(0, z) > 0 exactly where z > 0), as sigmoid's a*(1 - a)
    assert "max(0, z)" in text and "f1'(z) = 1[a > 0]" in text and "1_{z>0} is 1 where z > 0" in text
    assert "Heaviside" not in text and "Relu" not in text and "mean_k" not in text
    latex = explain(load_spec(ROOT / "examples" / "textbook.toml"), "latex")  # one unit per layer: scalars
    assert r"\sum_{j=1}^{1}" not in latex and r"w^{(2)} \delta^{(2)}" in latex and r"\top" not in latex
    wide = explain(load_spec(ROOT / "examples" / "xor.toml"), "latex")
    assert r"\frac{1}{n} \sum_k" in wide and "W2^T" not in wide and r"W^{(2)\top} \delta^{(2)}" in wide


# ------------------------------------------------------------------ notebook --
def test_notebook_reprs() -> None:
    spec = load_spec(ROOT / "examples" / "xor.toml")
    shown = spec._repr_html_()
    assert shown.count("<circle") == 2 + 3 + 1 and "<pre>" in shown
    assert spec._repr_latex_().startswith("$") and r"\xrightarrow" in spec._repr_latex_()
    ex = explained(spec, param="W2[1,3]")
    assert "<math" in ex._repr_html_() and r"\begin{align*}" in ex._repr_latex_()
    assert "dC_k/dW2[1,3] = a1_3*delta2_1" in str(ex)


# ------------------------------------------------------------------ CLI --
def test_cli_writes_the_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.html"
    code = main(["report", str(ROOT / "examples" / "xor.toml"), "-o", str(out), "--param", "W2[1,3]", "--at", "2"])
    assert code == 0 and capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_text(encoding="utf-8") == report(load_spec(ROOT / "examples" / "xor.toml"), ["W2[1,3]"], seed=2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "W9[1,1]"], "no layer 9"),
        (["--param", "W2[1,4]"], "out of range"),
        (["--digits", "0"], "--digits"),
        (["--at", "-1"], "--at"),
    ],
)
def test_cli_bad_options_exit_2_and_write_nothing(args: list[str], needle: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.html"
    code = main(["report", str(ROOT / "examples" / "xor.toml"), "-o", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("symprop: error: ") and err.count("\n") == 1 and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_folder_as_output(tmp_path: Path, capsys) -> None:
    code = main(["report", str(ROOT / "examples" / "xor.toml"), "-o", str(tmp_path)])
    assert code == 2 and "is a folder" in capsys.readouterr().err
    assert html.escape("x") == "x"


def test_big_expansion_is_described_not_refused() -> None:
    """digits (64-32-10): W1's expanded formula is over the node limit; the page says so instead of failing."""
    page = report(load_spec(ROOT / "examples" / "digits.toml"), ["W1[1,1]"])
    assert "Not written out in x, y, W and b" in page and "By the chain rule" in page


def test_explain_digits_option(tmp_path: Path, capsys) -> None:
    """Long floats: 6 significant digits by default, --digits N otherwise; exact simple fractions stay fractions."""
    spec = Spec("d", 1, (Layer.of(1, "sigmoid", beta=1.23456789), Layer.of(1, "gaussian", sigma=0.8)), "mse")
    path = tmp_path / "d.toml"
    path.write_text(spec.to_toml(), encoding="utf-8")
    assert main(["explain", str(path)]) == 0
    default = capsys.readouterr().out
    assert main(["explain", str(path), "--digits", "3"]) == 0
    short = capsys.readouterr().out
    assert (
        "σ(1.23457*z)" in default and "σ(1.23*z)" in short and "1.23456789*" not in default + short
    )  # (the spec echo keeps it)
    assert "-1.5625*a*z" in default and "-25*a*z/16" in short  # 1.5625 has 5 digits: kept, or 25/16 exactly
