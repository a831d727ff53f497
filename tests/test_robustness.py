"""Issue 14's robustness classes: bad math, hangs, output paths, names, contracts.

Every refusal is checked the way a user meets it: ``symprop`` exits 2 with exactly one line on
stderr, no traceback, and nothing new in the output folder.  Cases that hung before the fix
(exponent towers, a FIFO as spec, ``explain --expand`` on a deep net) run in a subprocess with a
timeout, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symprop.cli import main
from tests.support import ROOT

XOR = ROOT / "examples" / "xor.toml"
TIMEOUT = 120  # seconds per subprocess: the fixed cases end in ~1-2 s; a hang ends the test as a failure


def spec_text(
    expr: str = "tanh(x)", loss: str = "mse", loss_expr: str | None = None, name: str = "net", out: str = "identity"
) -> str:
    lines = [f'name = "{name}"', "inputs = 2", f'loss = "{loss}"']
    if loss_expr is not None:
        lines.append(f"loss_expr = '{loss_expr}'")
    lines += ["[[layers]]", "units = 3", 'activation = "custom"', f"expr = '{expr}'"]
    lines += ["[[layers]]", "units = 1", f"activation = {out}" if out.startswith('"') else f'activation = "{out}"']
    return "\n".join(lines) + "\n"


def refused(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Generate from ``text``: exit 2, one stderr line without a traceback, nothing written."""
    spec = tmp_path / "spec.toml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    before = sorted(out.iterdir())
    code = main(["generate", str(spec), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("symprop: error: "), err
    assert "Traceback" not in err
    assert sorted(out.iterdir()) == before
    return err


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "symprop", *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd
    )


# --------------------------------------------------------- class 4: invalid or non-real math --
NON_REAL = {
    "Heaviside(x, x)": "Heaviside's value at 0 must be a real number",
    "Heaviside(x, sqrt(-1))": "is not a real number",
    "Piecewise((x, x < sqrt(-1)), (0, True))": "is not a real number",
    "Piecewise((x, x < log(-2)), (0, True))": "is not a real number",
    "sqrt(-1)*x": "is not a real number",
    "log(-2) + x": "is not a real number",
    "(-8)**(1/3)*x": "is not a real number",
    "x/0": "undefined",
    "0/0": "divides by 0",
    "0**-1*x": "divides by 0",
    "log(0)*x": "log(0)",
    "0**x": "raises a constant <= 0 to a variable power",  # the printer raised ValueError (nan) on its derivative
    "(-2)**x": "raises a constant <= 0 to a variable power",
    "1e308*pi*x": "larger than 1.8e308",  # printed as inf before: NameError when the module ran
    "exp(710)*x": "larger than 1e308",
}


@pytest.mark.parametrize("expr", list(NON_REAL))
def test_non_real_math_exits_2(tmp_path: Path, expr: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert NON_REAL[expr] in refused(tmp_path, spec_text(expr), capsys)


def test_non_real_math_in_a_loss_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, spec_text(loss="custom", loss_expr="(a - y)**2*Heaviside(a, y)"), capsys)
    assert "Heaviside's value at 0" in err


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ('activation = "piecewise_linear"\nx_min = 0.0\nx_max = 5e-324', "float64 cannot hold"),
        ('activation = "piecewise_linear"\nx_min = -1e308\nx_max = 1e308', "float64 cannot hold"),
        ('activation = "gaussian"\nsigma = 1e-200', "use a sigma between"),
    ],
)
def test_parameters_whose_derived_constants_overflow_exit_2(
    tmp_path: Path, params: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = f'name = "n"\ninputs = 1\nloss = "mse"\n[[layers]]\nunits = 1\n{params}\n'
    assert needle in refused(tmp_path, text, capsys)


# ------------------------------------------------------------ class 5: bounded parse work --
@pytest.mark.parametrize(
    "expr",
    [
        "((((9**64)**64)**64)**64)**64*x",  # ran for minutes: each exponent <= 64, the number unbounded
        "((x*9**64)**64)**64",  # SymPy multiplies the powers out into the coefficient
        "exp(exp(exp(exp(10))))*x",
        "(1e-300)**(-64)*x",
    ],
)
def test_huge_constants_are_refused_before_sympy_computes_them(tmp_path: Path, expr: str) -> None:
    spec = tmp_path / "tower.toml"
    spec.write_text(spec_text(expr), encoding="utf-8")
    result = run_cli("generate", str(spec), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "larger than 1e308" in result.stderr
    assert not (tmp_path / "out").exists()


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    """40 nested tanh ran for over a minute before (SymPy on the nested derivative)."""
    spec = tmp_path / "nested.toml"
    spec.write_text(spec_text("tanh(" * 40 + "x" + ")" * 40), encoding="utf-8")
    result = run_cli("generate", str(spec), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "nested more than 32 levels" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh"])
def test_explain_expand_on_120_one_unit_layers_ends_with_one_line(tmp_path: Path, activation: str) -> None:
    """It raised RecursionError (identity, tanh) after counting the tree recursively."""
    layers = "".join(f'[[layers]]\nunits = 1\nactivation = "{activation}"\n' for _ in range(120))
    spec = tmp_path / "tall.toml"
    spec.write_text(f'name = "tall"\ninputs = 1\nloss = "mse"\n{layers}', encoding="utf-8")
    result = run_cli("explain", str(spec), "--expand")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "--expand:" in result.stderr
    assert "drop --expand" in result.stderr


# ----------------------------------------------------------------- class 7: output paths --
def test_output_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("keep", encoding="utf-8")
    for out in (blocker, blocker / "sub"):
        assert main(["generate", str(XOR), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert blocker.read_text(encoding="utf-8") == "keep"


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: use a folder no one can create files in
        out = Path("/proc/self")
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o555)
    assert main(["generate", str(XOR), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "permission denied" in err
    assert not (out / "xor.py").exists()


def test_module_path_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "xor.py").mkdir()
    assert main(["generate", str(XOR), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "xor.py is a folder" in err


def test_a_module_symprop_did_not_write_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "xor.py"
    mine.write_text('"""My own xor."""\nGENERATOR = "me"\n', encoding="utf-8")
    assert main(["generate", str(XOR), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not written by symprop" in err and "--force" in err
    assert mine.read_text(encoding="utf-8").startswith('"""My own xor.')
    assert main(["generate", str(XOR), "-o", str(tmp_path), "--force"]) == 0
    assert 'GENERATOR = "symprop ' in mine.read_text(encoding="utf-8")
    # a module symprop wrote is replaced without --force
    assert main(["generate", str(XOR), "-o", str(tmp_path), "--mode", "unrolled"]) == 0
    assert "(unrolled mode)" in mine.read_text(encoding="utf-8")


def test_a_killed_write_leaves_a_temp_file_that_the_next_write_removes(tmp_path: Path) -> None:
    """SIGKILL during a write leaves ``.xor.py.<pid>.<random>.tmp``; the next write of xor.py removes it."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom symprop.io import write_atomic_with\n"
        "def slow(handle):\n    handle.write(b'partial')\n    handle.flush()\n"
        "    print('writing', flush=True)\n    time.sleep(600)\n"
        f"write_atomic_with(Path({str(tmp_path / 'xor.py')!r}), slow)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=TIMEOUT)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".xor.py.") and left[0].endswith(".tmp"), left
    time.sleep(0.01)
    assert main(["generate", str(XOR), "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.py"]


def test_temp_files_of_live_writers_and_other_names_are_kept(tmp_path: Path) -> None:
    from symprop.io import remove_stale_temp_files

    live = tmp_path / f".xor.py.{os.getpid()}.abcdefgh.tmp"  # this process is alive
    other = tmp_path / ".xor.py.backup.tmp"  # not our pattern
    for p in (live, other):
        p.write_text("x", encoding="utf-8")
    assert remove_stale_temp_files(tmp_path / "xor.py") == []
    assert live.exists() and other.exists()


# ------------------------------------------------------------------------ class 8: names --
@pytest.mark.parametrize("name", ["numpy", "math", "os", "sys", "sympy", "torch", "jax", "symprop", "array_api_compat"])
def test_names_that_shadow_modules_are_refused(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, spec_text(name=name), capsys)
    assert f"name {name!r} is the name of a Python module" in err and f'name = "{name}_net"' in err


# --------------------------------------------------------- class 11: contracts enforced --
def test_bce_on_a_custom_output_whose_peak_is_1_5_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sampled on the old grid (0, ±1e-3 ... ±1e3) this stays in [0, 1]; its peak at x = 0.07 is 1.5."""
    text = spec_text("tanh(x)", loss="bce", out='"custom"\nexpr = "1.5*exp(-1000*(x - 0.07)**2)"')
    assert "can't prove" in refused(tmp_path, text, capsys)


@pytest.mark.parametrize(
    ("out", "ok"),
    [
        ('"custom"\nexpr = "(tanh(x) + 1)/2"', True),
        ('"custom"\nexpr = "0.5 + 0.5*x/(1 + abs(x))"', True),
        ('"custom"\nexpr = "sin(x)"', False),
        ('"gaussian"\nsigma = 0.5', True),  # peak 1/(0.5*sqrt(2*pi)) = 0.80: wide enough
        ('"gaussian"\nsigma = 0.3', False),  # peak 1.33: too narrow (rule: sigma >= 1/sqrt(2*pi))
        ('"piecewise_linear"\nx_min = -3.0\nx_max = 2.5', True),
        ('"piecewise_linear"\nm = 2.0', False),  # the line 2x + 2 rises to 4 at x_max
    ],
)
def test_bce_output_range_is_proved_or_refused(
    tmp_path: Path, out: str, ok: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    text = spec_text("tanh(x)", loss="bce", out=out)
    if ok:
        spec = tmp_path / "spec.toml"
        spec.write_text(text, encoding="utf-8")
        assert main(["check", str(spec), "--points", "1"]) == 0, capsys.readouterr()
    else:
        assert "can't prove" in refused(tmp_path, text, capsys)


def test_spec_that_is_a_device_or_too_large_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    for path, needle in ((Path("/dev/zero"), "not a regular file"), (big, "larger than 1024 KiB")):
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err


def test_spec_that_is_a_fifo_exits_2_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    result = run_cli("check", str(fifo))  # opening a FIFO for reading blocked until a writer came
    assert result.returncode == 2 and "not a regular file" in result.stderr
