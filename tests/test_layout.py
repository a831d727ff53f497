"""The pipeline's imports flow one way: a stage never imports a later stage or a tool on top.

Stages, in order: symbolic functions, the spec, scalar layer math, the IR (program,
backprop, unroll, optimisation), the backends, emission; then explain and the tools,
and the CLI on top.  Development tools (scripts/regen.py, tests/oracles/) are not in
the package at all, so the wheel never ships them.
"""

from __future__ import annotations

import ast

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "symprop"

# Each module (dotted, below symprop) with its rank; a module may import only lower ranks.
RANKS = {
    "symbolic.functions": 0,
    "ir.names": 0,  # parameter names (W1, b1, dW1, VW1), spelled once; the spec uses them too
    "ir.notes": 1,  # notes as math: words, references (kind, layer, units), operators; the ASCII printer
    "symbolic.bounded": 0,  # size and time bounds on SymPy calls that can explode
    "spec.safe_expr": 1,
    "spec.diagram": 1,  # the network drawn as SVG (Jupyter reprs, the report); imports nothing
    "spec.registry": 1,  # one entry per activation and loss
    "spec.model": 2,
    "spec": 3,  # the package's re-exports
    "symbolic.layer_math": 4,  # scalar math of one neuron: f, f', the loss and its δ
    "ir.program": 5,  # the IR's types
    "ir.forms": 5,
    "ir.backprop": 6,
    "ir.memory": 6,  # liveness, fusion, in place and slots: the analyses every backend reads  # the layer program from the spec
    "ir.unroll": 7,  # the per-neuron program from the layer program
    "ir.optimize": 7,
    "ir.second_order": 7,  # the Hessian-vector product as a transform of the layer program
    "backends.printing": 7,  # what the array and C printers share (folds, Piecewise branches)
    "ir.interpret": 9,  # evaluates a program on NumPy arrays with the NumPy printer (one numeric path)
    "backends.templating": 8,
    "backends.base": 8,
    "backends.numpy.printer": 8,
    "backends.numpy.module": 9,
    "backends.numpy.unrolled": 10,
    "backends.numpy.vectorized": 10,
    "backends.array_api.printer": 9,
    "backends.array_api.module": 10,
    "backends.c.printer": 8,
    "backends.c.module": 9,
    "backends.registry": 11,
    "io": 0,
    "modes": 4,  # the NumPy mode names and auto's rule, without the generator (train/predict use it)
    "emit": 12,
    "explain.view": 12,
    "explain.notation": 12,
    "tools.loader": 0,  # generated source -> module: the one exec in symprop
    "tools.tables": 1,  # the one table reader (CSV, Parquet): a header and checked numeric columns
    "tools.targets": 2,  # class labels <-> one-hot targets, for every training path
    "tools.options": 0,  # the train options, listed once (TrainArgs); the CLI's parser reads them
    "tools.check": 12,
    "tools.datasets": 12,
    "explain.worked": 13,  # the worked example: numbers by the IR interpreter
    "explain.model": 14,
    "tools.solvers": 12,
    "tools.paramfile": 12,  # the params .npz: one reader, one writer, checked against the spec
    "tools.loop": 13,  # the training loop
    "tools.modcache": 14,  # the cached generated module of train/predict
    "tools.progress": 14,  # what train prints while it runs
    "tools.plotting": 14,  # the learning-curve PNG
    "tools.scores": 14,  # the final scores and class weights
    "tools.train": 16,  # the train command: options checked, local run, --engine dask dispatched
    "tools.cbuild": 13,
    "tools.export": 13,  # trained params as C arrays (or ONNX through tools.onnx_export)
    "tools.predict": 15,
    "tools.onnx_export": 13,  # a spec and its params as an ONNX graph (the module's forward)
    "tools.distributed": 15,
    "explain.report": 15,
    "explain": 16,
    "sklearn": 16,  # the scikit-learn estimators over train() and the generated module
    "cli": 17,
    "__main__": 18,
    "ir": 0,
    "symbolic": 0,
    "backends": 0,
    "backends.numpy": 0,
    "backends.array_api": 0,
    "backends.c": 0,
    "tools": 0,
}


def modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def source_of(name: str) -> str:
    path = PACKAGE.joinpath(*name.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()


def symprop_imports(name: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source_of(name))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("symprop."):
            found.add(node.module.removeprefix("symprop."))
        elif isinstance(node, ast.ImportFrom) and node.module == "symprop":
            found |= {alias.name for alias in node.names if alias.name in RANKS}
    return found


def test_every_module_has_a_rank() -> None:
    assert modules() == set(RANKS)


# Upward edges, imported inside a function: export dispatches --format onnx to onnx_export
# (an optional module: export says so in one line when it is absent).
LAZY_EDGES = {("tools.export", "tools.onnx_export")}


@pytest.mark.parametrize("name", sorted(RANKS))
def test_imports_flow_one_way(name: str) -> None:
    later = {m for m in symprop_imports(name) if (name, m) not in LAZY_EDGES and RANKS[m] >= RANKS[name]}
    assert not later, f"symprop.{name} imports {sorted(later)}, which come at or after it in the pipeline"


def test_development_tools_are_not_in_the_package() -> None:
    assert not (PACKAGE / "regen.py").exists() and not (PACKAGE / "naive.py").exists()
    assert (ROOT / "scripts" / "regen.py").is_file() and (ROOT / "tests" / "oracles" / "naive.py").is_file()


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject.toml lists the packages explicitly (templates/ is mapped into the wheel): a new
    sub-package missing from that list would install without its code."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {".".join(("symprop", *p.parent.relative_to(PACKAGE).parts)) for p in PACKAGE.rglob("__init__.py")}
    assert present <= listed, sorted(present - listed)


def test_every_template_ships_in_the_wheel() -> None:
    """Every file under templates/ matches pyproject.toml's package-data for ``symprop.templates``
    (matched as setuptools globs it: part by part, ``*`` never crossing a ``/``), so the wheel
    carries it; the Python targets share one set, templates/python/."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = [pattern.split("/") for pattern in patterns["symprop.templates"]]
    folder = ROOT / "templates"
    files = [p.relative_to(folder).parts for p in folder.rglob("*") if p.is_file()]
    assert any(parts[0] == "python" for parts in files)
    for parts in files:
        shipped = any(
            len(glob) == len(parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, glob, strict=True))
            for glob in globs
        )
        assert shipped, f"templates/{'/'.join(parts)} is not in the wheel's package-data"
