"""The test harness: markers, tool checks, the require-all switch, Hypothesis profiles, shared fixtures.

* ``python -m pytest -m "not slow"`` is the inner loop (about a minute of CPU on a 2-core machine);
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
    "test_backend_contract.py::test_gradient_is_the_derivative_of_its_own_loss[c-*": ("c",),
    "test_backend_contract.py::test_inference_only_has_forward_and_no_gradient[c]": ("c",),
}
# What is left out of the inner loop, and why. Chosen from per-test times measured on the 2-core
# development machine (2026-11-30); CPU seconds of the test process, children not counted.
_SUBPROCESS = "runs Python in a fresh interpreter (start-up and imports: 1-2 s each, more under load)"
_EXPENSIVE_SPEC = (
    "custom, piecewise_linear and gaussian activations and the custom loss: SymPy's simplification, "
    "range proofs and expansion take seconds per spec; the grid's other cells keep each test in the loop"
)
SLOW: dict[str, str] = {
    # whole files
    "test_fuzz.py::*": "80 whole CLI runs on random hostile specs, each under a watchdog (tens of seconds)",
    "test_properties.py::*": "25 random networks, each derived and checked against finite differences in every mode",
    "test_train.py::*": "trains on real data sets; some runs in fresh interpreters",
    "test_harness.py::*": "runs pytest three times in subprocesses",
    # whole files added in the 2026-11-30 round, each heavy as a whole (to be split into fast and slow tests)
    "test_redteam_tools.py::*": "trains through the CLI, starts Dask clusters and hostile scheduler sockets",
    "test_practitioner.py::*": "trains through the CLI on real data sets",
    "test_sklearn.py::*": "scikit-learn's check_estimator: dozens of fits per estimator",
    "test_c_kit.py::*": "compiles C for many specs, cross-compiles for a Cortex-M4",
    "test_c_examples.py::*": "make: host, arm-none-eabi and armhf builds, qemu-arm runs",
    "test_export.py::*": "compiles exported C params and runs onnxruntime",
    "test_onnx_export.py::*": "an ONNX model per activation and example, run in onnxruntime",
    "test_limits.py::*": "derives networks of thousands of layers and SymPy expressions at their bounds",
    "test_tutorial.py::*": "executes the tutorial notebook in a Jupyter kernel",
    "test_repr_browser.py::*": "renders the notebook reprs in Chromium",
    "test_array_api.py::*": "imports torch, JAX and Dask (about 7 s before the first test); the array-API target "
    "stays in the loop through test_backend_contract.py and test_second_order.py (array-api-strict)",
    # single tests
    "test_cli.py::test_generate_writes_a_module_that_imports": _SUBPROCESS,
    "test_cli.py::test_check_prints_a_table_and_the_max_error": _SUBPROCESS,
    "test_cli.py::test_bad_input_exits_2_with_one_line_and_writes_nothing*": _SUBPROCESS,
    "test_cli.py::test_missing_file_and_bad_options_exit_2": _SUBPROCESS,
    "test_cli.py::test_step_layer_warns_on_stderr": _SUBPROCESS,
    "test_cli.py::test_existing_module_survives_a_failed_regeneration": _SUBPROCESS,
    "test_cli.py::test_the_installed_package_ships_its_templates": "pip-installs the package outside the checkout",
    "test_trust.py::test_same_spec_gives_the_same_bytes_whatever_the_hash_seed*": _SUBPROCESS + ", three per case",
    "test_numerics.py::test_twelve_nested_tanh_generates_in_bounded_time": _SUBPROCESS,
    "test_robustness.py::test_explain_expand_on_120_one_unit_layers_ends_with_one_line*": _SUBPROCESS,
    "test_robustness.py::test_huge_constants_are_refused_before_sympy_computes_them*": _SUBPROCESS,
    "test_robustness.py::test_deep_nesting_is_refused": _SUBPROCESS,
    "test_robustness.py::test_spec_that_is_a_fifo_exits_2_without_waiting": _SUBPROCESS,
    "test_robustness.py::test_a_killed_write_leaves_a_temp_file_that_the_next_write_removes": _SUBPROCESS,
    "test_robustness.py::test_bce_output_range_is_proved_or_refused*": "SymPy range proofs, up to 5 s each",
    "test_explain.py::test_the_comparison_can_fail": "expands every gradient of a net to catch a wrong one (~3 s)",
    "test_report.py::test_worked_example_disagreement_is_caught": "derives and reports a net to catch a wrong one (~2 s)",
    "test_vectorized.py::test_softmax_gradient_derived_with_plain_sympy": "plain sympy.diff and simplify (~1.5 s)",
    "test_robustness.py::test_bce_on_a_custom_output_whose_peak_is_1_5_is_refused": "a SymPy range proof (~1.5 s)",
    "test_naive.py::test_gradient_equals_naive_diff*": "sympy.diff of the fully expanded cost per parameter: 0.5-4 s per spec",
    "test_gradients.py::test_examples_pass_the_check[digits-unrolled]": "finite differences on digits' 2,410 parameters, unrolled (~8 s)",
    "test_check.py::*784*": "the check on a 784-256-128-10 network (1-2 s each)",
    "test_report.py::test_big_expansion_is_described_not_refused": "expands a large gradient to size it (~5 s)",
    "test_explain.py::test_expanded_formulas_equal_the_generated_gradient*": (
        "writes every gradient out in x, y, W, b and evaluates it (1-6 s per cell)"
    ),
    "test_vectorized.py::test_auto_follows_the_documented_rule*": "renders two nets in every mode (~1 s each)",
    "test_vectorized.py::test_float32_constants_are_python_literals": "renders the whole grid in float32 (~18 s)",
    "test_vectorized.py::test_vectorized_output_is_deterministic": "renders the same modules again to compare bytes",
    "test_golden.py::test_regen_check_reports_a_stale_file": _SUBPROCESS + ", three times",
    "test_vectorized.py::test_float32_in_float32_out*": "renders every activation again in float32 (~1 s each)",
    "test_symbolic_params.py::test_generated_code_always_has_the_numbers": "renders every example twice (~8 s)",
    "test_golden.py::*[*zoo*]": "the zoo example's derivation (~8 s); every other example's golden files stay",
    "test_array_api.py::test_every_activation_and_loss_in_the_strict_namespace*": (
        "the activation x loss grid in array-api-strict (~8 s); every example stays, in NumPy and strict"
    ),
    "test_second_order.py::test_hessian_equals_sympy_hessian_of_the_expanded_cost*": "sympy.hessian of the expanded cost (1-2 s each)",
    "test_second_order.py::test_hvp_on_the_examples_and_the_array_api_target*": "every example in both targets (zoo alone ~7 s)",
    "test_c_target.py::test_large_pre_activations_stay_finite*": "ten C compiles",
    "test_c_target.py::test_c_equals_the_numpy_module_in_double[*-*]": "the activation x loss grid: a C compile per cell; the examples stay",
    "test_c_target.py::test_c_in_float_is_within_float_rounding_of_the_numpy_module[*-*]": "as above, in float",
    "test_c_target.py::test_the_memory_bill_is_within_5_percent_of_the_minimum[*-*]": "a C render per grid cell",
    "test_array_api.py::test_every_namespace_equals_the_numpy_module[*-jax]": "JAX traces and compiles each module (1-2 s)",
    "test_array_api.py::test_every_namespace_equals_the_numpy_module[*-dask]": "Dask graphs per example",
    "test_array_api.py::test_every_namespace_equals_the_numpy_module[*-torch]": "torch's first calls per example",
    "test_worked.py::test_standalone_latex_compiles_without_overfull_boxes*": "a pdflatex run per case (0.5-3.5 s)",
    "test_sample_weight.py::*[*custom*]": _EXPENSIVE_SPEC,
    # the zoo example has every costly activation at once
    "*::*[zoo]": "the zoo example: every costly activation and a Huber loss in one net (5-10 s per test)",
    "*::*[zoo-*]": "the zoo example, as above",
}
for _file in (
    "test_gradients.py",
    "test_explain.py",
    "test_report.py",
    "test_vectorized.py",
    "test_second_order.py",
    "test_c_target.py",
    "test_array_api.py",
    "test_symbolic_params.py",
    "test_trust.py",
    "test_l2.py",
):
    for _word in ("custom", "piecewise", "gaussian"):
        SLOW[f"{_file}::*[*{_word}*]"] = _EXPENSIVE_SPEC


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


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A file whose every test is deselected by ``-m`` is not imported at all: importing
    test_array_api.py (torch, JAX) or test_onnx_export.py (onnxruntime) costs seconds of the inner
    loop's collection for tests it then drops.  A file is left out only when the marker expression
    is false for its markers whatever other registered markers its tests may carry; an expression
    with marker arguments, or a pytest without the expression parser, collects as usual."""
    markexpr = config.getoption("markexpr", "")
    whole = f"{collection_path.name}::*"
    if not markexpr or "(" in markexpr or collection_path.suffix != ".py" or whole not in SLOW:
        return None
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # a private module: without it, nothing is skipped early
        return None
    expression = Expression.compile(markexpr)
    known = {*FILE_MARKERS.get(collection_path.name, ()), "slow"}
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    extra = sorted(registered - known)
    for bits in range(2 ** len(extra)):
        present = known | {name for i, name in enumerate(extra) if bits >> i & 1}
        if expression.evaluate(lambda name, present=present: name in present):  # type: ignore[misc]
            return None
    return True


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
