"""Which NumPy mode a spec is rendered in: the names, and the rule of ``auto``.

Light on purpose (no SymPy, no generator): ``symprop train`` and ``predict`` read the cached
module's mode with it.  :mod:`symprop.emit` checks that these names are the registry's.
"""

from __future__ import annotations

from symprop.spec import Spec, SpecError

NUMPY_MODES = ("vectorized", "unrolled")


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
    if mode not in (*NUMPY_MODES, "auto"):
        raise SpecError(f"unknown mode {mode!r}; use one of {', '.join((*NUMPY_MODES, 'auto'))}")
    return choose_mode(spec) if mode == "auto" else mode


__all__ = ["AUTO_UNROLLED_MAX_PARAMS", "NUMPY_MODES", "auto_rule", "choose_mode", "resolve_mode"]
