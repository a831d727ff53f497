"""``symprop explain --format latex --standalone``: a whole document that pdflatex compiles cleanly.

pdflatex is a real compiler (texlive-latex-base, installed by ``.ci/run``); a missing pdflatex
skips these tests with the reason (marker ``latex``, tests/conftest.py), and CI's
``SYMPROP_REQUIRE_ALL=1`` turns that skip into a failure.  "Cleanly" means exit code 0 and no ``Overfull`` box in
the log: headings and prose are text, notes are paragraphs, and long formulas (the expanded
gradients of the 1-1-1 and 2-3-1 nets) are broken over lines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from symprop.cli import main
from symprop.explain import explain
from symprop.spec import load_spec
from tests.support import ROOT

CASES = [
    ("textbook", []),
    ("textbook", ["--expand"]),
    ("textbook", ["--param", "W1[1,1]"]),
    ("textbook", ["--param", "W1[1,1]", "--expand"]),
    ("xor", ["--expand"]),
    ("zoo", []),
    ("bce_relu", ["--expand"]),
    ("iris_classifier", []),
]


def compile_latex(tex: Path) -> str:
    pdflatex = shutil.which("pdflatex")
    if not pdflatex:
        pytest.skip("pdflatex missing: apt-get install -y texlive-latex-base (.ci/run installs it)")
    result = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = tex.with_suffix(".log").read_text(encoding="latin-1")
    assert result.returncode == 0, log[-3000:]
    assert tex.with_suffix(".pdf").stat().st_size > 1000
    return log


@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{n}{''.join(a)}" for n, a in CASES])
def test_standalone_document_compiles_without_overfull_boxes(name: str, args: list[str], tmp_path: Path) -> None:
    tex = tmp_path / "doc.tex"
    code = main(
        ["explain", str(ROOT / "examples" / f"{name}.toml"), *args, "--format", "latex", "--standalone", "-o", str(tex)]
    )
    assert code == 0
    text = tex.read_text(encoding="utf-8")
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    assert r"\section*{" in text and "\n% " not in text  # headings are headings, not comments
    assert r"\text{" not in text.replace(r"\text{if }", "")  # notes are prose, not \text{} rows
    log = compile_latex(tex)
    overfull = [line for line in log.splitlines() if "Overfull" in line]
    assert overfull == [], overfull


def test_the_overfull_check_can_fail(tmp_path: Path) -> None:
    """Without line breaking (the fragment's one-line rows, wrapped in a document) the log has an overfull box."""
    fragment = explain(load_spec(ROOT / "examples" / "xor.toml"), "latex", expand=True)
    tex = tmp_path / "raw.tex"
    tex.write_text(
        "\\documentclass[11pt]{article}\n\\usepackage{amsmath}\n\\begin{document}\n" + fragment + "\\end{document}\n"
    )
    assert "Overfull" in compile_latex(tex)


def test_long_expanded_formula_is_broken_over_lines() -> None:
    text = explain(load_spec(ROOT / "examples" / "xor.toml"), "latex", expand=True, standalone=True)
    assert text.count(r"&\quad ") > 20


def test_standalone_needs_latex(tmp_path: Path, capsys) -> None:
    code = main(["explain", str(ROOT / "examples" / "xor.toml"), "--standalone", "-o", str(tmp_path / "x.md")])
    err = capsys.readouterr().err
    assert code == 2 and "--standalone" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
