"""Every backend, by mode name; the CLI's choices and the tests read this table."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from symprop.backends.array_api.module import render_array_api
from symprop.backends.base import ArrayApiConfig, Backend, BackendConfig, CConfig, NumpyConfig
from symprop.backends.c.module import render_c
from symprop.backends.numpy.unrolled import MAX_PARAMS, render_unrolled
from symprop.backends.numpy.vectorized import render_vectorized
from symprop.ir.program import Granularity, Program


def _python(render: Callable[[Program], str]) -> Callable[[Program, BackendConfig], dict[str, str]]:
    """One ``<name>.py``; the Python targets' configs hold only the shared options, which
    shaped the program already."""
    return lambda program, config: {f"{program.spec.name}.py": render(program)}


def _c(program: Program, config: CConfig) -> dict[str, str]:
    return render_c(program, config.real)


BACKENDS: Mapping[str, Backend] = {
    "vectorized": Backend(
        "vectorized",
        "numpy",
        Granularity.LAYER,
        _python(render_vectorized),
        "matrix code, one product per layer and direction, any size",
        NumpyConfig,
        mode="vectorized",
        sample_weight=True,
    ),
    "unrolled": Backend(
        "unrolled",
        "numpy",
        Granularity.UNIT,
        _python(render_unrolled),
        f"one line per neuron, for reading (at most {MAX_PARAMS:,} parameters)",
        NumpyConfig,
        max_params=MAX_PARAMS,
        mode="unrolled",
        sample_weight=True,
    ),
    "array-api": Backend(
        "array-api",
        "array-api",
        Granularity.LAYER,
        _python(render_array_api),
        "one module for any array-API namespace (NumPy, CuPy, PyTorch, JAX, Dask)",
        ArrayApiConfig,
        sample_weight=True,
    ),
    "c": Backend(
        "c",
        "c",
        Granularity.LAYER,
        _c,
        "C99 header and source: loops over one sample, no allocation, for on-device training",
        CConfig,
        suffixes=(".h", ".c"),
        second_order=False,
    ),
}
TARGETS: tuple[str, ...] = tuple(dict.fromkeys(b.target for b in BACKENDS.values()))


def modes(target: str) -> tuple[str, ...]:
    """The --mode choices of a target (empty when it has one backend)."""
    return tuple(b.mode for b in BACKENDS.values() if b.target == target and b.mode)


__all__ = ["BACKENDS", "TARGETS", "modes"]
