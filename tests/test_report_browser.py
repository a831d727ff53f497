"""``symprop report`` in a real browser: headless Chromium (the OS package), driven by Playwright.

CI (``.ci/run``) installs Chromium from the OS packages when it is missing; Playwright's own
browser download is never used (``executable_path`` is the system Chromium).  A missing
Chromium or Playwright skips these tests with the reason (marker ``browser``, tests/conftest.py);
CI sets ``SYMPROP_REQUIRE_ALL=1``, which makes that skip a failure: the guarantee is that the page renders.

Checked per example: the page loads from ``file://`` with no console error and no request but
the file itself, every ``<math>`` element has a non-empty rendered box (MathML Core renders
natively), and the SVG has one circle per drawn unit.  A screenshot is written under the
test's tmp dir (``report-<name>.png``) for a person to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from symprop.explain.report import report
from symprop.spec import load_spec
from symprop.spec.diagram import drawn_units
from tests.support import ROOT

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.toml"))
PARAMS = {"textbook": ["W1[1,1]", "b2[1]"], "xor": ["W2[1,3]"], "bce_relu": ["W1[2,1]"]}


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Chromium missing: apt-get install -y chromium")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("name", EXAMPLES)
def test_report_renders_in_chromium(name: str, browser, tmp_path: Path) -> None:
    spec = load_spec(ROOT / "examples" / f"{name}.toml")
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(report(spec, PARAMS.get(name, [])), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(page_file.as_uri(), wait_until="load")
    assert errors == []
    assert requests == [page_file.as_uri()]
    boxes = page.eval_on_selector_all(
        "math", "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })"
    )
    assert len(boxes) > 10
    empty = [k for k, (w, h) in enumerate(boxes) if not (w > 0 and h > 0)]
    assert empty == [], f"{len(empty)} of {len(boxes)} <math> elements render empty"
    # MathML is laid out as math, not as inline text: a fraction is taller than a line of text
    tallest = max(h for _, h in boxes)
    assert tallest > 30, tallest
    circles = page.eval_on_selector_all("svg.network circle", "els => els.length")
    assert circles == sum(drawn_units(n) for n in spec.layer_sizes)
    svg = page.eval_on_selector(
        "svg.network", "e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; }"
    )
    assert svg[0] > 200 and svg[1] > 100
    shot = tmp_path / f"report-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()
