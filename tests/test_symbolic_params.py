"""--symbolic-params: activation parameters stay symbols in explain and report, never in code.

The symbolic formulas are checked against the numeric ones symprop derives by default: with
each layer's spec values substituted (beta_1 = 2.0, ...), every f, f' and δ of the chain-rule
view equals the numeric view's exactly (SymPy simplifies the difference to 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from symprop.cli import main
from symprop.emit import render
from symprop.explain import explain
from symprop.explain.report import report
from symprop.spec import load_spec
from symprop.symbolic.layer_math import param_values
from tests.support import EXAMPLES
from tests.test_explain import parse


@pytest.mark.parametrize("name", ["xor", "zoo", "bce_relu", "textbook"])
def test_symbolic_formulas_equal_the_numeric_ones(name: str) -> None:
    spec = load_spec(next(p for p in EXAMPLES if p.stem == name))
    numeric = parse(explain(spec, "sympy"))
    symbolic = parse(explain(spec, "sympy", symbolic_params=True))
    values = {str(k): v for l, layer in enumerate(spec.layers, 1) for k, v in param_values(layer, l).items()}
    assert values, "every example here has activation parameters"
    kept = set()
    for key, expr in symbolic.items():
        kept |= {str(s) for s in expr.free_symbols if str(s) in values}
        subs = {s: sp.nsimplify(values[str(s)]) for s in expr.free_symbols if str(s) in values}
        assert sp.simplify(expr.xreplace(subs) - sp.nsimplify(numeric[key])) == 0, key
    assert kept  # the parameters really were kept as symbols


def test_xor_reads_like_the_textbook() -> None:
    text = explain(load_spec(next(p for p in EXAMPLES if p.stem == "xor")), "text", symbolic_params=True)
    assert "f1'(z) = a*beta_1*(1 - a)" in text and "f2'(z) = a*beta_2*(1 - a)" in text
    latex = explain(load_spec(next(p for p in EXAMPLES if p.stem == "xor")), "latex", symbolic_params=True)
    assert r"\beta_{2}" in latex


def test_generated_code_always_has_the_numbers() -> None:
    spec = load_spec(next(p for p in EXAMPLES if p.stem == "zoo"))
    explain(spec, "text", symbolic_params=True)  # caches a symbolic derivation beside the numeric one
    assert "sigma_1" not in render(spec) and "alpha_3" not in render(spec, "unrolled")


def test_report_and_cli_flag(tmp_path: Path) -> None:
    spec_path = next(p for p in EXAMPLES if p.stem == "xor")
    page = report(load_spec(spec_path), ("W1[1,1]",), symbolic_params=True)
    assert "β" in page
    out = tmp_path / "r.html"
    assert main(["report", str(spec_path), "-o", str(out), "--symbolic-params"]) == 0 and out.is_file()
    assert main(["explain", str(spec_path), "--symbolic-params", "--param", "W1[1,1]"]) == 0
