"""generated/ holds the modules for examples/, byte for byte (regenerate: python -m scripts.regen)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts.regen import expected_files
from tests.support import ROOT

EXPECTED = expected_files(ROOT / "examples", ROOT / "generated")


@pytest.mark.parametrize("path", sorted(EXPECTED), ids=lambda p: p.name)
def test_golden_file_is_up_to_date(path) -> None:
    assert path.exists(), f"{path} is missing: run python -m scripts.regen"
    assert path.read_text(encoding="utf-8") == EXPECTED[path], f"{path} is stale: run python -m scripts.regen"


def test_no_orphans_in_generated() -> None:
    """Every file in generated/ belongs to an example (a removed example leaves no stale module)."""
    present = {p for p in (ROOT / "generated").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert present <= set(EXPECTED), sorted(p.name for p in present - set(EXPECTED))


def test_generated_modules_import_only_numpy() -> None:
    """NumPy and the standard library's abstract Mapping (params may be any mapping), nothing else."""
    for path in EXPECTED:
        if path.suffix != ".py" or path.parent.name == "array_api":  # that target imports array-api-compat
            continue
        imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert imports == ["from collections.abc import Mapping", "import numpy as np"], (path.name, imports)


def test_regen_check_reports_a_stale_file(tmp_path) -> None:
    """The regeneration command can fail: a changed golden file is reported and exit code is 1."""
    examples, generated = tmp_path / "examples", tmp_path / "generated"
    examples.mkdir()
    (examples / "xor.toml").write_text((ROOT / "examples" / "xor.toml").read_text())
    args = [sys.executable, "-m", "scripts.regen", "--examples", str(examples), "--generated", str(generated)]
    assert subprocess.run(args, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*args, "--check"], capture_output=True).returncode == 0
    module = generated / "xor.py"
    module.write_text(module.read_text() + "# edited\n")
    result = subprocess.run([*args, "--check"], capture_output=True, text=True)
    assert result.returncode == 1 and "stale: " in result.stdout
