"""Emission: spec -> program (derive, unroll if the backend prints neurons, CSE) -> backend -> file.

The backends are listed in :mod:`symprop.backends.registry`.  The whole module is rendered
in memory and written atomically (:mod:`symprop.io`), so a failed or interrupted run never
leaves a truncated module.
"""

from __future__ import annotations

from pathlib import Path

from symprop.backends.registry import BACKENDS
from symprop.io import write_atomic, write_atomic_with
from symprop.ir.backprop import derive
from symprop.ir.optimize import cse
from symprop.ir.program import Granularity, Program
from symprop.ir.unroll import unroll
from symprop.spec import Spec, SpecError, validate

MODES = (*BACKENDS, "auto")
UNROLLED_MAX_PARAMS = BACKENDS["unrolled"].max_params


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


def program_for(spec: Spec, mode: str = "auto") -> Program:
    """The optimized program a mode prints: the layer program, unrolled per neuron if the backend
    wants it, then one CSE."""
    backend = BACKENDS[resolve_mode(spec, mode)]
    if backend.max_params is not None and spec.n_params > backend.max_params:
        raise SpecError(
            f"{spec.source}: {spec.n_params} parameters is over the {backend.name}-mode limit of "
            f"{backend.max_params}; use --mode vectorized"
        )
    program = derive(spec)
    if backend.granularity is Granularity.UNIT:
        program = unroll(program)
    return cse(program)


def render(spec: Spec, mode: str = "auto") -> str:
    """The generated module's source text for ``spec`` (``mode``: unrolled, vectorized or auto)."""
    spec = validate(spec)  # custom expressions re-printed from SymPy: no raw user text below
    return BACKENDS[resolve_mode(spec, mode)].render(program_for(spec, mode))


def generate(spec: Spec, out_dir: str | Path, mode: str = "auto") -> Path:
    """Render ``spec`` and write ``out_dir/<name>.py`` atomically; return the path."""
    source = render(spec, mode)
    path = Path(out_dir) / f"{spec.name}.py"
    write_atomic(path, source)
    return path


__all__ = [
    "AUTO_UNROLLED_MAX_PARAMS",
    "MODES",
    "UNROLLED_MAX_PARAMS",
    "auto_rule",
    "choose_mode",
    "generate",
    "program_for",
    "render",
    "resolve_mode",
    "write_atomic",
    "write_atomic_with",
]
