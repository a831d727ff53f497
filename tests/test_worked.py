"""The worked example and the IR interpreter it reads (one numeric path), against the emitted modules.

The interpreter and the generated NumPy module evaluate the same float64 formulas; they may
associate sums differently, so values are compared at 1e-12 relative (thousands of ulps of margin;
a wrong factor or term is off by order 1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.emit import render
from symprop.explain import explain
from symprop.explain.model import ExplainError, parse_label
from symprop.explain.notation import short_float
from symprop.explain.report import report
from symprop.explain.worked import WorkedError, blocks, compute, problem, render_text
from symprop.ir.backprop import derive
from symprop.ir.interpret import run
from symprop.ir.unroll import unroll
from symprop.spec import Layer, Spec, load_spec
from symprop.tools.check import load_module, random_problem
from tests.support import ROOT, spec_for

RTOL = 1e-12

# issue 22 E20: long custom expressions overflowed the page (822 pt, 1,097 pt)
LONG_EXPR = "x/(abs(x) + 1) + 0.1*sin(3*x) + 0.3*tanh(2*x)*exp(-x**2) + x**3/(1 + x**4) + log(1 + exp(x)) - 0.25*cos(x)"
LONG_LOSS = "(a - y)**2 + 0.5*(a - y)**4 + 0.1*log(1 + exp(a - y)) + 0.05*sin(a)*cos(y) + 0.2*(a*y - 1)**2"
LONG = Spec(
    "long",
    2,
    (Layer.of(3, "custom", expr=LONG_EXPR), Layer.of(2, "custom", expr=LONG_EXPR)),
    "custom",
    LONG_LOSS,
)
CHAIN = Spec("chain", 1, (Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid")), "sse")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.stem)
def test_interpreter_equals_the_generated_module(path: Path) -> None:
    spec = load_spec(path)
    params, X, Y = random_problem(spec, 4, n=5)
    module = load_module(render(spec), spec.name)
    loss, grads = module.loss_and_grad(params, X, Y)
    values = run(derive(spec), params, X, Y)
    assert values["C"] == pytest.approx(float(loss), rel=RTOL)
    for name, g in grads.items():
        np.testing.assert_allclose(values["d" + name], g, rtol=RTOL, atol=1e-15)
    L = len(spec.layers)
    forward = run(derive(spec), params, X, function="forward")
    np.testing.assert_allclose(forward[f"A{L}"], module.forward(params, X), rtol=RTOL)
    if sum(int(np.prod(s)) for s in spec.param_shapes.values()) < 200:  # the per-neuron program too
        unit = run(unroll(derive(spec)), params, X, Y)
        assert unit["C"] == pytest.approx(float(loss), rel=RTOL)


def test_worked_numbers_are_the_module_numbers_with_given_values(tmp_path: Path) -> None:
    """--params and --sample: loss, every gradient, the update and the cost after it."""
    spec = spec_for("tanh", "mse", (2, 3, 1))
    rng = np.random.default_rng(7)
    params = {k: rng.normal(size=s) for k, s in spec.param_shapes.items()}
    np.savez(tmp_path / "p.npz", **params)
    w = compute(spec, problem(spec, tmp_path / "p.npz", "0.5,-1.25;0.75"), lr=0.3)
    module = load_module(render(spec), spec.name)
    X, Y = np.array([[0.5, -1.25]]), np.array([[0.75]])
    loss, grads = module.loss_and_grad(params, X, Y)
    assert w.loss == pytest.approx(float(loss), rel=RTOL)
    for k, g in grads.items():
        np.testing.assert_allclose(w.grads[k], g, rtol=RTOL, atol=1e-15)
        np.testing.assert_allclose(w.updated[k], params[k] - 0.3 * g, rtol=RTOL, atol=1e-15)
    after = module.loss({k: params[k] - 0.3 * grads[k] for k in params}, X, Y)
    assert w.loss_after == pytest.approx(float(after), rel=RTOL)
    text = render_text(blocks(w))
    for v in (*np.ravel(params["W1"]), *np.ravel(params["b2"])):  # every W and b value is shown
        assert short_float(float(v), 4) in text
    assert "seeded" not in text and "0.3" in text


def test_one_unit_chain_substitutions() -> None:
    """δ³ = 2·a·(1 − a)·(a − y) written with the numbers, one line per z, a and δ, in the scalar names."""
    w = compute(CHAIN, problem(CHAIN, sample="1.5;0.5"))
    text = render_text(blocks(w))
    a3, y = short_float(float(w.a[3][0]), 4), "0.5"
    assert f"delta3 = 2*{a3}*(1 - {a3})*({a3} - {y}) = " in text
    for name in ("z1 =", "a1 =", "z3 =", "a3 =", "delta1 =", "dC/dw1 =", "w1 <-", "C (after) ="):  # scalars: w
        assert name in text
    assert "_1" not in text.split("Forward pass")[1]  # no unit indices in a one-unit chain


@pytest.mark.parametrize("units", [61, 64, 100, 130])
def test_wide_layers(units: int) -> None:
    """Issue 22 C9: a layer over 60 units (bias arrays are 1-D) reports and explains."""
    spec = spec_for("relu", "mse", (3, units, 2))
    page = report(spec)
    assert "Worked example" in page and "likewise" in page
    text = explain(spec)
    assert "One gradient-descent update" in text


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("1,2", "separated by one ';'"),
        ("1;2", "1 input value(s), the spec needs 2"),
        ("1,x;2", "is not a number"),
        ("1,nan;2", "not a finite number"),
        ("1,2;3,4", "target value(s)"),
    ],
)
def test_bad_sample_is_one_line(sample: str, message: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(spec_for("tanh", "mse", (2, 3, 1)).to_toml())
    assert main(["explain", str(path), "--sample", sample]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_params_file_is_one_line(tmp_path: Path, capsys) -> None:
    spec = spec_for("tanh", "mse", (2, 3, 1))
    (tmp_path / "s.toml").write_text(spec.to_toml())
    np.savez(tmp_path / "wrong.npz", W1=np.zeros((2, 2)), b1=np.zeros(3), W2=np.zeros((1, 3)), b2=np.zeros(1))
    np.savez(tmp_path / "text.npz", W1=np.full((3, 2), "a"), b1=np.zeros(3), W2=np.zeros((1, 3)), b2=np.zeros(1))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases = [("missing.npz", "no such file"), ("wrong.npz", "W1 has shape (2, 2)"), ("junk.npz", "not a readable")]
    cases.append(("text.npz", "not numbers"))
    for name, message in cases:
        out = tmp_path / "r.html"
        assert main(["report", str(tmp_path / "s.toml"), "-o", str(out), "--params", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(WorkedError, match="--lr"):
        compute(spec, problem(spec), lr=-1.0)


def test_parameter_names() -> None:
    assert parse_label("W2", CHAIN) == "W2[1,1]" and parse_label("b3", CHAIN) == "b3[1]"
    wide = spec_for("tanh", "mse", (2, 3, 1))
    assert parse_label("W2_1_3", wide) == "W2[1,3]" and parse_label("b1_2", wide) == "b1[2]"
    with pytest.raises(ExplainError, match=r"shape \(3, 2\); name one entry"):
        parse_label("W1", wide)


def test_whole_chain_product() -> None:
    text = explain(CHAIN, param="W1")
    assert "dC_k/dw1 = x * f1'(z1) * w2 * f2'(z2) * w3 * f3'(z3) * dC_k/da3" in text  # in scalars
    wide = explain(spec_for("tanh", "mse", (2, 3, 1)), param="W1[2,1]")
    assert "dC_k/dW1_2_1 = x1 * f1'(z1_2) * W2_1_2 * f2'(z2_1) * dC_k/da2_1" in wide
    assert "one highlighted path" in wide


def test_scalar_view() -> None:
    """One unit per layer: the scalar view replaces the matrix form (no layer section in matrices after
    it) and keeps what a student needs: each layer's f and f', the cost and δ of the output."""
    text = explain(CHAIN)
    view = text.split("The scalar view:")[1].split("Worked example")[0]
    assert "delta2 = dC_k/dz2 = f2'(z2) * w3 * delta3" in view and "z2 = w2 a1 + b2" in view
    assert "⊙" not in view and "^T" not in view and "sum" not in view and "_j" not in view
    assert "W2" not in view and "Layer 2 (hidden, 1 unit" not in text  # no matrix-form section after it
    for l in (1, 2, 3):
        assert f"f{l}(z) = " in view and f"f{l}'(z) = " in view
    assert "delta3 = dC_k/dz3 = " in view and "C_k = " in text


@pytest.mark.parametrize(
    "spec",
    [
        CHAIN,
        spec_for("tanh", "mse", (2, 3, 1)),
        spec_for("custom", "custom", (3, 4, 2)),
        spec_for("gaussian", "softmax_ce", (3, 4, 3)),
        LONG,
    ],
    ids=["chain", "2-3-1", "custom", "softmax", "long-custom"],
)
def test_standalone_latex_compiles_without_overfull_boxes(spec: Spec, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    for param in (None, "W1[1,1]"):
        tex = explain(spec, "latex", param=param, standalone=True)
        body = tex.split(r"\begin{document}")[1]
        for ascii_math in (r"->", r"(?<!\\)sum_[kj]", r"dC_k/dz", r"delta\\?\{l"):
            assert not re.search(ascii_math, body), ascii_math
        assert not re.search(r"\\cdot\s*\\\\", tex)  # never a line break right after a product dot
        (tmp_path / "d.tex").write_text(tex)
        proc = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = (tmp_path / "d.log").read_text(errors="replace")
        assert proc.returncode == 0, log[-2000:]
        assert "Overfull" not in log, [line for line in log.splitlines() if "Overfull" in line]


def test_repr_latex_keeps_the_headings() -> None:
    from symprop.explain.report import explained

    ex = explained(CHAIN)
    latex = ex._repr_latex_()
    for section in ex.explanation.sections:
        assert rf"\textbf{{{section.title.split(' (')[0]}" in latex, section.title
    assert latex.count(r"\begin{align*}") == latex.count(r"\end{align*}") == len(ex.explanation.sections) + 1


def test_worked_options_need_a_worked_example() -> None:
    with pytest.raises(ExplainError, match="choose the worked example"):
        explain(CHAIN, "sympy", sample="1;0")


def test_report_shows_the_whole_chain_product() -> None:
    from symprop.explain.model import parse_entry
    from symprop.explain.notation import whole_chain

    spec = load_spec(ROOT / "examples" / "xor.toml")
    page = report(spec, ["W1[2,1]"])
    entry = parse_entry("W1[2,1]", spec)
    assert whole_chain(entry, spec.layer_sizes, False).mathml() in page and "highlighted path" in page
