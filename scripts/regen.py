"""Regenerate the checked-in golden files: ``python -m scripts.regen [--check]``.

For every ``examples/*.toml`` it renders ``generated/<name>.py`` in the default
mode (what ``symprop generate`` writes), ``generated/<name>.md`` (what
``symprop explain --format markdown`` writes), ``generated/<name>.html`` (what
``symprop report`` writes, with the ``--param`` of :data:`REPORT_PARAMS`) and
``generated/c/<name>.h`` / ``.c`` (what ``symprop generate --target c`` writes).
``--check`` writes nothing and exits 1
listing the files that are stale or missing; the test suite runs the same
comparison byte for byte.  Run it from the repository root after changing a
template, the printer or the derivation, and commit the result with the change.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from symprop.emit import render, render_files, write_atomic
from symprop.explain import explain
from symprop.explain.report import report
from symprop.spec import Spec, load_spec

# Golden artifacts per example: (path pattern, renderer); a renderer may return None to skip.
Artifact = tuple[str, Callable[[Spec], str | None]]
REPORT_PARAMS = {"textbook": ("W1[1,1]",), "xor": ("W2[1,3]",)}  # --param of the golden HTML reports
UNROLLED_GOLDEN_MAX_PARAMS = 500  # larger unrolled modules are long and add nothing to review


@cache
def _c_files(spec: Spec) -> dict[str, str]:
    return render_files(spec, target="c")  # .h and .c come from one render


ARTIFACTS: list[Artifact] = [
    ("{name}.py", lambda spec: render(spec)),  # what `symprop generate` writes (mode auto)
    ("unrolled/{name}.py", lambda spec: render(spec, "unrolled")),  # the straight-line version, for reading
    ("array_api/{name}.py", lambda spec: render(spec, target="array-api")),  # --target array-api
    ("{name}.md", lambda spec: explain(spec, "markdown")),  # symprop explain's report
    ("{name}.html", lambda spec: report(spec, REPORT_PARAMS.get(spec.name, ()))),  # symprop report
    ("c/{name}.h", lambda spec: _c_files(spec)[f"{spec.name}.h"]),  # symprop generate --target c
    ("c/{name}.c", lambda spec: _c_files(spec)[f"{spec.name}.c"]),
]
# Which examples an artifact is made for (decided from the spec alone, without rendering, so the
# tests can list the golden files at collection and render them only when a test asks).
ONLY_IF: dict[str, Callable[[Spec], bool]] = {
    "unrolled/{name}.py": lambda spec: spec.n_params <= UNROLLED_GOLDEN_MAX_PARAMS,
}


def golden_sources(examples: Path, generated: Path) -> dict[Path, tuple[Spec, Callable[[Spec], str | None]]]:
    """Every golden file's path, with the spec and the renderer that make it (nothing is rendered)."""
    sources: dict[Path, tuple[Spec, Callable[[Spec], str | None]]] = {}
    for path in sorted(examples.glob("*.toml")):
        spec = load_spec(path)
        for pattern, renderer in ARTIFACTS:
            if ONLY_IF.get(pattern, lambda _: True)(spec):
                sources[generated / pattern.format(name=spec.name)] = (spec, renderer)
    return sources


def expected_files(examples: Path, generated: Path) -> dict[Path, str]:
    """Every golden file's path and its expected content."""
    files: dict[Path, str] = {}
    for path, (spec, renderer) in golden_sources(examples, generated).items():
        text = renderer(spec)
        if text is not None:
            files[path] = text
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.regen", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, default=Path("examples"), help="folder of spec files")
    parser.add_argument("--generated", type=Path, default=Path("generated"), help="folder of golden files")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    args = parser.parse_args(argv)
    if not args.examples.is_dir():
        print(f"scripts.regen: error: {args.examples} is not a folder; run from the repository root", file=sys.stderr)
        return 2
    stale = []
    for path, text in expected_files(args.examples, args.generated).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            write_atomic(path, text)
    verb = "stale" if args.check else "rewrote"
    for path in stale:
        print(f"{verb}: {path}")
    if not stale:
        print("generated/ is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
