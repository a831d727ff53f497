"""generated/ holds the modules for examples/, byte for byte (regenerate: python -m scripts.regen).

The list of golden files is made at collection from the specs alone; each file is rendered only
when its test runs, by the session fixture ``goldens`` (tests/conftest.py).  ``python -m pytest
tests/test_golden.py --update`` rewrites the stale files instead of failing (as
``python -m scripts.regen`` does); review the diff and commit it with the change that caused it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts.regen import golden_sources
from symprop.io import write_atomic
from tests.support import ROOT

GENERATED = ROOT / "generated"
PATHS = sorted(golden_sources(ROOT / "examples", GENERATED))


def _id(path) -> str:
    return path.relative_to(GENERATED).as_posix()  # unrolled/xor.py, c/xor.h: unique and readable


@pytest.mark.parametrize("path", PATHS, ids=_id)
def test_golden_file_is_up_to_date(path, goldens, update_goldens: bool) -> None:
    expected = goldens.text(path)
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if update_goldens and current != expected:
        write_atomic(path, expected)
        return
    assert current is not None, f"{path} is missing: run python -m scripts.regen (or pytest --update)"
    assert current == expected, f"{path} is stale: run python -m scripts.regen (or pytest --update)"


def test_no_orphans_in_generated() -> None:
    """Every file in generated/ belongs to an example (a removed example leaves no stale module)."""
    present = {p for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert present <= set(PATHS), sorted(p.name for p in present - set(PATHS))


@pytest.mark.parametrize("path", [p for p in PATHS if p.suffix == ".py" and p.parent.name != "array_api"], ids=_id)
def test_generated_modules_import_only_numpy(path, goldens) -> None:
    """NumPy and the standard library's abstract Mapping (params may be any mapping), nothing else.

    (The array-api target imports array-api-compat instead.)"""
    imports = [line for line in goldens.text(path).splitlines() if line.startswith(("import ", "from "))]
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
