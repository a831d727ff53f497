"""The notebook reprs alone in Chromium: the ``Spec`` SVG draws its edges and units with no page
stylesheet (what a notebook cell shows), and the labels of the teaching diagram are there.

System Chromium through Playwright, as ``tests/test_report_browser.py``; skipped (with the
reason) when either is missing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from symprop.spec import Layer, Spec, load_spec
from symprop.spec.diagram import drawn_units
from tests.support import ROOT

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CHAIN = Spec("chain", 1, (Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid"), Layer.of(1, "sigmoid")), "sse")


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _rgb(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize(
    "spec",
    [CHAIN, load_spec(ROOT / "examples" / "xor.toml"), load_spec(ROOT / "examples" / "digits.toml")],
    ids=["chain", "xor", "digits"],
)
def test_spec_svg_alone_shows_edges_and_units(spec: Spec, browser) -> None:
    svg = spec._repr_svg_()
    assert "<style" not in svg and "<link" not in svg  # nothing from a page: its look is in the elements
    page = browser.new_page()
    page.set_content(f"<!DOCTYPE html><html><body>{svg}</body></html>")
    edges = page.eval_on_selector_all(
        "line.edge",
        "els => els.map(e => { const s = getComputedStyle(e); return [s.stroke, s.strokeWidth, s.display]; })",
    )
    assert edges, "no edges"
    for stroke, width, display in edges:
        assert stroke not in ("none", "") and float(width.removesuffix("px")) > 0 and display != "none"
        assert _rgb(stroke) != (255, 255, 255)
    fills = page.eval_on_selector_all("circle", "els => els.map(e => getComputedStyle(e).fill)")
    assert len(fills) == sum(drawn_units(n) for n in spec.layer_sizes)
    assert all(_rgb(f) != (0, 0, 0) for f in fills), "units drawn as black dots"
    # pixels: the picture is not blank, and an edge's colour appears in it
    shot = page.locator("svg").screenshot()
    from io import BytesIO

    png = pytest.importorskip("PIL.Image").open(BytesIO(shot)).convert("RGB")
    colours = {c for _, c in png.getcolors(maxcolors=1 << 24)}
    edge = _rgb(edges[0][0])
    assert any(max(abs(a - b) for a, b in zip(c, edge, strict=True)) < 40 for c in colours if c != (255, 255, 255))
    page.close()


def test_teaching_labels() -> None:
    svg = CHAIN._repr_svg_()
    for label in ("x₁", "z¹₁", "a¹₁", "a³₁", "W²₁‚₁", "C(a, y)"):
        assert label in svg, label
    wide = load_spec(ROOT / "examples" / "digits.toml")._repr_svg_()
    assert 'class="weight"' not in wide  # no weight labels between wide layers
