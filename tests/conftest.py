"""The test harness: markers, tool checks, the require-all switch, Hypothesis profiles, shared fixtures.

* ``python -m pytest -m "not slow"`` is the inner loop (about a minute on a 2-core machine);
  ``python -m pytest`` runs everything, as CI does.
* Markers are given here, by file and by test name (:data:`FILE_MARKERS`, :data:`SLOW`), not in
  the test files, so the reason a test is slow is written next to the mark.  ``--strict-markers``
  (pyproject.toml) refuses a marker that is not registered.
* A test that needs a tool (a C compiler, pdflatex, the system Chromium, an optional package)
  is skipped with the reason when the tool is missing, so a contributor without it still sees
  green.  With ``SYMPROP_REQUIRE_ALL=1`` (``.ci/run`` sets it) every skip is a failure instead,
  so CI still proves every guarantee.
* ``HYPOTHESIS_PROFILE`` selects the Hypothesis profile: ``ci`` (default; derandomized, so a run
  is reproducible) or ``explore`` (fresh random draws, more examples).
* ``--update`` makes the golden-file tests rewrite ``generated/`` instead of failing (like
  ``python -m scripts.regen``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("SYMPROP_REQUIRE_ALL") == "1"

# --- Hypothesis: one place, one environment variable -------------------------------------------
# ``ci``/``explore`` apply to every property test; the fuzzer (tests/test_fuzz.py) runs whole CLI
# invocations and uses ``fuzz-<profile>``, which keeps its own example counts.
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fuzz-ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile("fuzz-explore", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if HYPOTHESIS_PROFILE not in ("ci", "explore"):
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={HYPOTHESIS_PROFILE!r}: use 'ci' (the default) or 'explore'")
settings.load_profile(HYPOTHESIS_PROFILE)

# --- markers -----------------------------------------------------------------------------------
# Registered in pyproject.toml ([tool.pytest.ini_options] markers); given here.
FILE_MARKERS: dict[str, tuple[str, ...]] = {
    "test_c_target.py": ("c",),
    "test_report_browser.py": ("browser", "slow"),  # starts Chromium: ~10 s before the first page
    "test_explain_latex.py": ("latex", "slow"),  # eight pdflatex runs, ~2 s each
    "test_distributed.py": ("dask", "slow"),  # starts LocalClusters of worker processes
    "test_array_api.py": ("frameworks",),  # torch, JAX, array-api-strict, Dask arrays
}
# Tests that need a marker by name: patterns over ``file::name[params]`` where ``*`` matches any
# text (and nothing else is special: brackets are literal); a pattern matches the whole id.
TEST_MARKERS: dict[str, tuple[str, ...]] = {
    "test_security.py::test_hostile_expressions_never_reach_an_emitted_file*": ("c",),
}
# What is left out of the inner loop, and why (measured with --durations on a 2-core machine).
SLOW: dict[str, str] = {}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _c_compiler() -> bool:
    from symprop.tools.cbuild import CompileError, compiler

    try:
        compiler()
    except CompileError:
        return False
    return True


def _chromium() -> bool:
    return (Path("/usr/bin/chromium").exists() or shutil.which("chromium") is not None) and _has_module("playwright")


# Tools a marker needs: (is it there?, the reason to skip when it is not).
TOOLS: dict[str, tuple[Callable[[], bool], str]] = {
    "c": (_c_compiler, "no C compiler ($CC or cc): apt-get install -y gcc libc6-dev"),
    "latex": (lambda: shutil.which("pdflatex") is not None, "no pdflatex: apt-get install -y texlive-latex-base"),
    "browser": (_chromium, "no system Chromium or playwright: apt-get install -y chromium; pip install playwright"),
    "dask": (lambda: _has_module("distributed"), 'dask/distributed missing: pip install ".[dask]"'),
}


@functools.cache
def _tool_present(marker: str) -> bool:
    return TOOLS[marker][0]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update",
        action="store_true",
        help="rewrite the stale golden files in generated/ instead of failing (as python -m scripts.regen)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    test_markers = [(_pattern(key), markers) for key, markers in TEST_MARKERS.items()]
    slow = [_pattern(key) for key in SLOW]
    for item in items:
        file = item.path.name
        key = f"{file}::{item.name}"
        names = list(FILE_MARKERS.get(file, ()))
        for pattern, markers in test_markers:
            if pattern.fullmatch(key):
                names += markers
        if any(pattern.fullmatch(key) for pattern in slow):
            names.append("slow")
        for name in dict.fromkeys(names):
            item.add_marker(name)


def _pattern(key: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in key.split("*")))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in TOOLS:
        if item.get_closest_marker(marker) and not _tool_present(marker):
            pytest.skip(TOOLS[marker][1])


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _refuse_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = f"skipped, but SYMPROP_REQUIRE_ALL=1 turns every skip into a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _refuse_skip(outcome.get_result())


# A module skipped at collection (importorskip of a missing package) is recorded rather than made
# a collection error, which would stop the whole run: every other test still runs, then the
# session fails and the summary names what was missing.
COLLECTION_SKIPS: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if REQUIRE_ALL and report.skipped:
        COLLECTION_SKIPS.append(f"{report.nodeid}: {_skip_reason(report)}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if COLLECTION_SKIPS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if COLLECTION_SKIPS:
        terminalreporter.section("SYMPROP_REQUIRE_ALL=1: modules skipped at collection count as failures", red=True)
        for line in COLLECTION_SKIPS:
            terminalreporter.write_line(f"FAILED {line}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = [marker for marker in TOOLS if not _tool_present(marker)]
    lines = [f"symprop: hypothesis profile {HYPOTHESIS_PROFILE!r}, SYMPROP_REQUIRE_ALL={int(REQUIRE_ALL)}"]
    if missing:
        lines.append(f"symprop: missing tools, their tests {'fail' if REQUIRE_ALL else 'skip'}: {', '.join(missing)}")
    return lines


# --- shared fixtures -----------------------------------------------------------------------------
class Goldens:
    """The golden files' expected text, rendered on first use and kept for the session."""

    def __init__(self, examples: Path, generated: Path) -> None:
        from scripts.regen import golden_sources

        self.sources = golden_sources(examples, generated)

    @functools.cache  # noqa: B019 (one instance per session)
    def text(self, path: Path) -> str:
        spec, renderer = self.sources[path]
        text = renderer(spec)
        assert text is not None, f"{path}: its renderer made nothing; exclude it with scripts.regen.ONLY_IF"
        return text


@pytest.fixture(scope="session")
def goldens() -> Goldens:
    return Goldens(ROOT / "examples", ROOT / "generated")


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update"))
