"""Every backend, by mode name; the CLI's choices and the tests read this table."""

from __future__ import annotations

from collections.abc import Mapping

from symprop.backends.base import Backend
from symprop.backends.numpy.unrolled import MAX_PARAMS, render_unrolled
from symprop.backends.numpy.vectorized import render_vectorized
from symprop.ir.program import Granularity

BACKENDS: Mapping[str, Backend] = {
    "vectorized": Backend(
        "vectorized",
        "numpy",
        Granularity.LAYER,
        render_vectorized,
        "matrix code, one product per layer and direction, any size",
    ),
    "unrolled": Backend(
        "unrolled",
        "numpy",
        Granularity.UNIT,
        render_unrolled,
        f"one line per neuron, for reading (at most {MAX_PARAMS:,} parameters)",
        max_params=MAX_PARAMS,
    ),
}

__all__ = ["BACKENDS"]
