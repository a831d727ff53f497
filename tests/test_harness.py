"""The harness itself (tests/conftest.py): a missing tool skips locally and fails under CI's switch.

A copy of the conftest runs a small suite in a subprocess: one test that skips for a missing
tool, one module skipped at collection (``importorskip`` of a package that does not exist), one
expected failure and one passing test. Without ``SYMPROP_REQUIRE_ALL`` the run passes with the
skips shown; with ``SYMPROP_REQUIRE_ALL=1`` it fails, naming both skips, and the other tests still
ran; an ``xfail`` stays an expected failure in both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

SUITE = {
    "test_tool.py": (
        "import pytest\n\n"
        "def test_needs_a_tool():\n    pytest.skip('no frobnicator: apt-get install frobnicator')\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_known_bug():\n    assert False\n\n"
        "def test_passes():\n    assert True\n"
    ),
    "test_package.py": "import pytest\n\npytest.importorskip('no_such_package_xyz')\n\ndef test_x():\n    pass\n",
}


def run_suite(tmp_path: Path, require_all: bool) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    for name, text in SUITE.items():
        (tests / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SYMPROP_REQUIRE_ALL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if require_all:
        env["SYMPROP_REQUIRE_ALL"] = "1"
    args = [sys.executable, "-m", "pytest", "-rsxf", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "tests"]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_tool_skips_locally(tmp_path: Path) -> None:
    result = run_suite(tmp_path, require_all=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no frobnicator: apt-get install frobnicator" in result.stdout  # the reason is shown
    assert "no_such_package_xyz" in result.stdout
    assert "1 passed" in result.stdout and "1 xfailed" in result.stdout


def test_require_all_turns_every_skip_into_a_failure(tmp_path: Path) -> None:
    result = run_suite(tmp_path, require_all=True)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "SYMPROP_REQUIRE_ALL=1 turns every skip into a failure: Skipped: no frobnicator" in out
    assert "FAILED tests/test_package.py" in out and "no_such_package_xyz" in out  # collection skip, reported
    assert "1 failed" in out and "1 passed" in out and "1 xfailed" in out  # the run went on; xfail untouched


def test_an_unknown_hypothesis_profile_is_refused(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    (tests / "test_a.py").write_text("def test_a():\n    pass\n", encoding="utf-8")
    env = dict(os.environ, HYPOTHESIS_PROFILE="nonsense", PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "tests"]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "HYPOTHESIS_PROFILE='nonsense'" in result.stdout + result.stderr
