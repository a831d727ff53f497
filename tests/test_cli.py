"""The command line: generate and check work; bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from symprop import emit
from symprop.backends.numpy import unrolled
from symprop.backends.templating import Line
from symprop.cli import main
from symprop.ir.program import Kind
from tests.support import ROOT

XOR = ROOT / "examples" / "xor.toml"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symprop", *args], capture_output=True, text=True, cwd=cwd)


def test_generate_writes_a_module_that_imports(tmp_path: Path) -> None:
    result = run("generate", str(XOR), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "xor.py"
    assert f"wrote {path}" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import xor, numpy as np; p = xor.init_params(); print(xor.forward(p, np.zeros((4, 2))).shape)",
        ],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert probe.stdout.strip() == "(4, 1)", probe.stderr


def test_check_prints_a_table_and_the_max_error() -> None:
    result = run("check", str(XOR))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["param", "shape"]
    assert {line.split()[0] for line in lines[1:5]} == {"W1", "b1", "W2", "b2"}
    assert lines[-1].startswith("max relative error: ")
    assert float(lines[-1].split(": ")[1]) < 1e-5


def test_check_exits_1_when_the_gradient_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken generator (sign flipped in every gradient line) is caught by `symprop check`."""
    original = unrolled.Unrolled.statement

    def flipped(self, s, p):  # type: ignore[no-untyped-def]
        lines = original(self, s, p)
        if s.out.kind in (Kind.GRAD_W, Kind.GRAD_B):
            lines = [Line(line.code.replace(" = ", " = -(", 1) + ")", line.comment) for line in lines]
        return lines

    monkeypatch.setattr(unrolled.Unrolled, "statement", flipped)
    assert main(["check", str(XOR), "--mode", "unrolled"]) == 1
    assert float(capsys.readouterr().out.strip().splitlines()[-1].split(": ")[1]) > 1


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


BAD_SPECS = {
    "typo": (
        'name = "n"\ninputs = 2\nloss = "mse"\n[[layers]]\nunits = 1\nactivaton = "tanh"\n',
        "did you mean 'activation'",
    ),
    "not toml": ("name = = 3\n", "not valid TOML"),
    "evil expr": (
        'name = "n"\ninputs = 1\nloss = "mse"\n[[layers]]\nunits = 1\nactivation = "custom"\nexpr = "__import__(\'os\').system(\'id\')"\n',
        "unknown name '__import__'",
    ),
    "too big for unrolled": (
        'name = "big"\ninputs = 200\nloss = "mse"\n[[layers]]\nunits = 100\nactivation = "tanh"\n',
        "use --mode vectorized",
    ),
    "bce on tanh": (
        'name = "n"\ninputs = 1\nloss = "bce"\n[[layers]]\nunits = 1\nactivation = "tanh"\n',
        "bce needs outputs inside (0, 1)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    text, needle = BAD_SPECS[case]
    spec = write(tmp_path, text)
    out = tmp_path / "out"
    result = run("generate", str(spec), "-o", str(out), "--mode", "unrolled")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("symprop: error: ") and needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_missing_file_and_bad_options_exit_2(tmp_path: Path) -> None:
    assert run("generate", str(tmp_path / "nope.toml")).returncode == 2
    bad = run("frobnicate")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert run("check", str(XOR), "--points", "0").returncode == 2


def test_step_layer_warns_on_stderr(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        'name = "s"\ninputs = 1\nloss = "mse"\n[[layers]]\nunits = 2\nactivation = "step"\n[[layers]]\nunits = 1\nactivation = "identity"\n',
    )
    result = run("generate", str(spec), "-o", str(tmp_path), "--mode", "unrolled")
    assert result.returncode == 0
    assert "symprop: warning: layer 1 uses 'step'" in result.stderr


def test_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Atomic output: if the final rename fails, neither the module nor a temp file remains."""

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        emit.write_atomic(tmp_path / "m.py", "x = 1\n")
    assert list(tmp_path.iterdir()) == []


def test_existing_module_survives_a_failed_regeneration(tmp_path: Path) -> None:
    assert run("generate", str(XOR), "-o", str(tmp_path)).returncode == 0
    before = (tmp_path / "xor.py").read_bytes()
    broken = write(tmp_path, XOR.read_text().replace('activation = "sigmoid"\nbeta', 'activation = "sigmod"\nbeta'))
    assert run("generate", str(broken), "-o", str(tmp_path)).returncode == 2
    assert (tmp_path / "xor.py").read_bytes() == before


def test_the_installed_package_ships_its_templates(tmp_path: Path) -> None:
    """Run from a folder outside the checkout, so the installed symprop (not ./symprop) is used:
    a non-editable `pip install .` must carry templates/ inside the package."""
    code = (
        "import symprop.emit as e, symprop.backends.templating as t; "
        "from symprop.spec import Layer, Spec; "
        "print(t.template_dir()); "
        "print(len(e.render(Spec('m', 1, (Layer.of(1, 'tanh'),), 'mse'), 'vectorized')) > 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder, rendered = result.stdout.split()
    assert all((Path(folder) / "python" / name).is_file() for name in ("module.py.jinja", "_common.py.jinja"))
    assert rendered == "True"
