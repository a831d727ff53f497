"""Stage 5: emission. Pick a backend (mode), render the module, write it atomically.

Backends: :mod:`symprop.unrolled` and :mod:`symprop.vectorized`, sharing
:mod:`symprop.templating`; the printer (:mod:`symprop.printer`) turns SymPy into
NumPy text.  The whole module is rendered in memory and written atomically (temp
file + rename), so a failed or interrupted run never leaves a truncated module.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from symprop.spec import Spec, SpecError, validate

MODES = ("unrolled", "vectorized", "auto")


def __getattr__(name: str) -> Any:
    """The backends (SymPy, Jinja2) are imported on first use, so that running a cached module
    (``symprop train``/``predict``) never pays for them."""
    if name in ("UNROLLED_MAX_PARAMS", "render_unrolled"):
        from symprop import unrolled

        return getattr(unrolled, name)
    if name == "render_vectorized":
        from symprop.vectorized import render_vectorized

        return render_vectorized
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------- auto --
# From benchmarks/runtime.py (README, "Vectorized mode and runtime benchmark"), batch 1024,
# float64: vectorized is as fast or faster than unrolled at every size measured, from 1-1-1
# (4 parameters: a tie to 1.2x) through 2-3-1 (1.2-1.4x) to 8-16-16-4 (4.7x). Unrolled is
# faster only at small batches for one-hidden-neuron nets (1-1-1, 2-1-1: ~8% at batch 32),
# too little to trade for up to 20% at large batches, so auto always picks vectorized.
# Unrolled stays for reading: one line per neuron. Re-measure before raising the threshold.
AUTO_UNROLLED_MAX_PARAMS = 0


def choose_mode(spec: Spec) -> str:
    """The mode ``auto`` renders: see ``auto_rule()``."""
    return "unrolled" if spec.n_params <= AUTO_UNROLLED_MAX_PARAMS else "vectorized"


def auto_rule() -> str:
    """``choose_mode`` in words (CLI help, benchmark output)."""
    if AUTO_UNROLLED_MAX_PARAMS <= 0:
        return "always vectorized"
    return f"unrolled up to {AUTO_UNROLLED_MAX_PARAMS} parameters, vectorized above"


def resolve_mode(spec: Spec, mode: str) -> str:
    """The mode actually rendered: ``auto`` becomes ``choose_mode(spec)``."""
    if mode not in MODES:
        raise SpecError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return choose_mode(spec) if mode == "auto" else mode


def render(spec: Spec, mode: str = "auto") -> str:
    """The generated module's source text for ``spec`` (``mode``: unrolled, vectorized or auto)."""
    spec = validate(spec)  # custom expressions re-printed from SymPy: no raw user text below
    if resolve_mode(spec, mode) == "vectorized":
        from symprop.vectorized import render_vectorized

        return render_vectorized(spec)
    from symprop.unrolled import render_unrolled

    return render_unrolled(spec)[0]


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temp file in ``path``'s folder, then rename it to ``path``.

    ``path`` is never half-written: an interrupted or failed write leaves the old file (or
    none) and no temp file. The file gets the usual permissions (0666 less the umask), not
    mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically: see ``write_atomic_with``."""
    write_atomic_with(path, lambda handle: handle.write(text.encode("utf-8")))


def generate(spec: Spec, out_dir: str | Path, mode: str = "auto") -> Path:
    """Render ``spec`` and write ``out_dir/<name>.py`` atomically; return the path."""
    source = render(spec, mode)
    path = Path(out_dir) / f"{spec.name}.py"
    write_atomic(path, source)
    return path


__all__ = [
    "AUTO_UNROLLED_MAX_PARAMS",
    "MODES",
    "auto_rule",
    "choose_mode",
    "generate",
    "render",
    "resolve_mode",
    "write_atomic",
    "write_atomic_with",
]
