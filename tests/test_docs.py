"""The docs site kept everything the long README had, and the README stays a front page.

Until commit 0b622e8 the README was the whole manual (1,028 lines). Its sections moved to the
pages under docs/ (built by ``mkdocs build --strict``, which CI runs; it checks links, anchors and
the navigation). These tests check what mkdocs cannot: that no former section was dropped, and
that the README does not grow back into a manual.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 200

# Every ## / ### heading of README.md at commit 0b622e8, and the page that holds that section now.
OLD_README_SECTIONS: dict[str, str] = {
    "Quick start": "getting-started.md",
    "The spec": "spec.md",
    "Activations (x is the pre-activation z)": "spec.md",
    "Losses (per sample k; C = (1/n) Σ_k C_k over the batch)": "spec.md",
    "The generated module": "targets/numpy.md",
    "The command line": "cli.md",
    "Reading the formulas: symprop explain": "explain.md",
    "The derivation as a web page: symprop report": "explain.md",
    "Vectorized mode and runtime benchmark": "targets/numpy.md",
    "Benchmark": "benchmarks-history.md",
    "Other runtimes: the array-API target": "targets/array-api.md",
    "The C target: allocation-free training on a device": "targets/c.md",
    "Benchmark: C target vs the NumPy module": "benchmarks-history.md",
    "Second order: Hessian-vector products": "second-order.md",
    "Training: symprop train": "training.md",
    "Benchmark: benchmarks/train.py": "benchmarks-history.md",
    "Benchmark: digits training loop against scikit-learn (benchmarks/train_digits.py)": "benchmarks-history.md",
    "How it works": "architecture.md",
    "Numerically stabilising rewrites": "spec.md",
    "Guarantees and how they are tested": "guarantees.md",
    "Generator speed": "benchmarks-history.md",
    "Golden files": "development.md",
    "Development": "development.md",
}


def headings(path: Path) -> list[str]:
    """The Markdown headings of a page, outside fenced code blocks."""
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.append(match.group(1).strip())
    return found


@pytest.mark.parametrize("heading", sorted(OLD_README_SECTIONS))
def test_every_former_readme_section_has_a_page(heading: str) -> None:
    page = DOCS / OLD_README_SECTIONS[heading]
    assert page.is_file(), f"{page} is missing: the README section {heading!r} moved there"
    assert heading in headings(page), f"{page.relative_to(ROOT)} lost the section {heading!r} (moved from the README)"


def test_headings_skips_code_blocks(tmp_path: Path) -> None:
    """The check can fail: a heading only inside a code block (a shell comment) does not count."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n```sh\n# Golden files\n```\n\n### Golden files, moved\n", encoding="utf-8")
    assert headings(page) == ["Title", "Golden files, moved"]
    assert "Golden files" not in headings(page)


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to a docs/ page"
    text = "\n".join(lines)
    assert 'python -m pytest -m "not slow"' in text and "python -m pytest\n" in text + "\n"


def test_readme_links_point_to_existing_pages() -> None:
    links = re.findall(r"\]\(((?:docs/)[^)#]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    assert links, "the README links to no docs page"
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert missing == [], f"README.md links to missing pages: {missing}"


def test_readme_code_excerpt_is_from_the_golden_module() -> None:
    """The README's excerpt of generated code is quoted verbatim from generated/xor.py."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    excerpts = [b for b in blocks if "loss_and_grad" not in b and ">>>" not in b]
    assert len(excerpts) == 1, "expected one excerpt of generated code in the README"
    module = (ROOT / "generated" / "xor.py").read_text(encoding="utf-8").splitlines()
    stale = [line for line in excerpts[0].splitlines() if line.strip() and line not in module]
    assert stale == [], f"README excerpt lines not in generated/xor.py (re-quote them): {stale}"


def test_security_page_includes_security_md_instead_of_copying_it() -> None:
    page = (DOCS / "security.md").read_text(encoding="utf-8")
    assert '--8<-- "SECURITY.md"' in page
    first_paragraph = (ROOT / "SECURITY.md").read_text(encoding="utf-8").split("\n\n")[1]
    assert first_paragraph not in page
