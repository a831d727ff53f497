"""docs/tutorial.ipynb runs top to bottom (its cells assert the numbers against the generated
module and finite differences), executed with nbclient on an ipykernel kernel."""

from __future__ import annotations

import os

import pytest

from tests.support import ROOT


def test_tutorial_notebook_runs() -> None:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbclient)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed")
    nb = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env_path) if p
    )  # the kernel imports this checkout
    try:
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "dC_k/dw1 = x * f1'(z1) * w2 * f2'(z2) * w3 * f3'(z3) * dC_k/da3" in text  # the scalar view
    assert "delta2 = dC_k/dz2 = f2'(z2) * w3 * delta3" in text  # the δ recursion in scalars
    assert "delta3 = 2*" in text and "after one step" in text
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs)  # the Spec's diagram
