"""The pipeline's imports flow one way: a stage never imports a later stage or a tool on top."""

from __future__ import annotations

import ast

import pytest

from tests.support import ROOT

# Each module with its rank; a module may import only modules of a lower rank.
RANKS = {
    "functions": 0,
    "safe_expr": 1,
    "spec": 2,  # stage 1: the spec
    "elementwise": 3,  # stage 2: the symbolic graph
    "graph": 4,
    "derive": 5,  # stage 3: derivation
    "optimize": 6,  # stage 4: optimization
    "printer": 7,  # stage 5: emission
    "templating": 8,
    "unrolled": 9,
    "vectorized": 9,
    "emit": 10,
    # tools on top of the pipeline
    "naive": 11,
    "check": 11,
    "datasets": 11,
    "explain": 11,
    # the tools/ package (issue 11): solvers below train; predict and distributed import train
    # lazily-called helpers and are reached from train and cli only inside functions (see below)
    "tools": 11,
    "train": 12,
    "regen": 12,
    "cli": 13,
    "__main__": 14,
}


PACKAGES = {"tools"}


def symprop_imports(name: str) -> set[str]:
    tree = ast.parse((ROOT / "symprop" / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("symprop."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "symprop":
            found |= {alias.name for alias in node.names if alias.name in RANKS}
    return found


# Inside tools/: each module may import only the symprop modules listed (at the top of the file).
TOOLS = {
    "solvers": set(),
    "predict": {"datasets", "train"},
    "distributed": {"datasets", "spec", "train"},
}


def test_every_module_has_a_rank() -> None:
    modules = {p.stem for p in (ROOT / "symprop").glob("*.py")} - {"__init__"}
    assert modules == set(RANKS) - PACKAGES
    assert {p.stem for p in (ROOT / "symprop" / "tools").glob("*.py")} - {"__init__"} == set(TOOLS)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tools_import_only_what_they_are_allowed_at_the_top(name: str) -> None:
    tree = ast.parse((ROOT / "symprop" / "tools" / f"{name}.py").read_text())
    top = {
        node.module.split(".")[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("symprop.")
    }
    assert top <= TOOLS[name], f"symprop.tools.{name} imports {sorted(top - TOOLS[name])} at the top"


@pytest.mark.parametrize("name", sorted(set(RANKS) - PACKAGES))
def test_imports_flow_one_way(name: str) -> None:
    later = {m for m in symprop_imports(name) if RANKS[m] >= RANKS[name]}
    assert not later, f"symprop.{name} imports {sorted(later)}, which come at or after it in the pipeline"
