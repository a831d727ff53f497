"""Numerics past the usual range: handled where possible, refused with one line where not.

* softmax_ce with logits near 1e20: the loss is shifted by the row maximum before both of its
  terms, so both modes give log 2 for two equal logits (not 0 from LSE·Σy − Σy·z cancelling);
* a constant that overflows float64 (in a spec, or after SymPy folds exp(800)) is refused at
  generation with exit 2 and one line, never printed as ``inf`` (a NameError at call time);
* sigmoid's beta is bounded (|beta| <= 1e30) so beta * z stays finite in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.spec import Layer, Spec, SpecError, spec_from_dict
from tests.support import NUMPY_MODES, module_for


@pytest.mark.parametrize("mode", NUMPY_MODES)
def test_softmax_with_huge_logits(mode: str) -> None:
    module = module_for(Spec("big_logits", 2, (Layer.of(2, "identity"),), "softmax_ce"), mode)
    params = {"W1": np.eye(2), "b1": np.zeros(2)}
    X = np.array([[1e20, 1e20], [1e20, -1e20]])
    Y = np.array([[1.0, 0.0], [1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        C, grads = module.loss_and_grad(params, X, Y)
    assert pytest.approx(np.log(2) / 2, rel=1e-15) == C  # sample 1: log 2; sample 2: 0
    assert np.all(np.isfinite(grads["W1"]))


@pytest.mark.parametrize("expr", ["1e308*x*10", "exp(800)*x", "x*exp(710)"])
def test_constants_beyond_float64_are_refused(tmp_path: Path, expr: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(
        f'name = "c"\ninputs = 1\nloss = "mse"\n[[layers]]\nunits = 1\nactivation = "custom"\nexpr = "{expr}"\n'
    )
    out = tmp_path / "out"
    assert main(["generate", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("float64" in err or "finite" in err)
    assert not out.exists() or not any(out.iterdir())


def test_sigmoid_beta_is_bounded() -> None:
    base = {"name": "n", "inputs": 1, "loss": "mse"}
    with pytest.raises(SpecError, match=r"\|beta\| <= 1e30"):
        spec_from_dict({**base, "layers": [{"units": 1, "activation": "sigmoid", "beta": 1e39}]})
    spec_from_dict({**base, "layers": [{"units": 1, "activation": "sigmoid", "beta": -1e30}]})


def test_twelve_nested_tanh_generates_in_bounded_time(tmp_path: Path) -> None:
    """The form search is bounded by size: 12 nested tanh took 81 s (and a RecursionError before the
    redesign); it now keeps the large derivative as derived and finishes well inside the limit."""
    import subprocess
    import sys

    expr = "x"
    for _ in range(12):
        expr = f"tanh({expr})"
    spec = tmp_path / "deep.toml"
    spec.write_text(
        f'name = "deep"\ninputs = 1\nloss = "mse"\n[[layers]]\nunits = 1\nactivation = "custom"\nexpr = "{expr}"\n'
    )
    run = [sys.executable, "-m", "symprop", "generate", str(spec), "-o", str(tmp_path / "out")]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
