"""Emission: spec -> program (derive, unroll if the backend prints neurons, CSE) -> backend -> file.

The backends are listed in :mod:`symprop.backends.registry`.  Output paths are checked
before any work and the whole module is rendered in memory, then written atomically
(:mod:`symprop.io`), so a failed or interrupted run never leaves a truncated module and never
overwrites a file symprop did not write (unless ``force``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from symprop.backends.base import Backend, BackendConfig
from symprop.backends.registry import BACKENDS, TARGETS, modes
from symprop.io import OutputError, check_output, write_atomic, write_atomic_with
from symprop.ir.backprop import derive
from symprop.ir.optimize import cse
from symprop.ir.program import Granularity, Program
from symprop.ir.second_order import with_hvp
from symprop.ir.unroll import unroll
from symprop.modes import AUTO_UNROLLED_MAX_PARAMS, NUMPY_MODES, auto_rule, choose_mode, resolve_mode
from symprop.spec import Spec, SpecError, validate

MODES = (*modes("numpy"), "auto")
UNROLLED_MAX_PARAMS = BACKENDS["unrolled"].max_params
if set(modes("numpy")) != set(NUMPY_MODES):  # symprop.modes names them for callers that skip the generator
    raise ImportError(f"symprop.modes.NUMPY_MODES {NUMPY_MODES} differs from the registry's {modes('numpy')}")


def backend_for(spec: Spec, mode: str = "auto", target: str = "numpy") -> Backend:
    """The backend that renders ``spec`` for ``target`` (and, for numpy, ``mode``)."""
    if target not in TARGETS:
        raise SpecError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    if target == "numpy":
        return BACKENDS[resolve_mode(spec, mode)]
    if mode not in ("auto", "vectorized"):
        raise SpecError(f"--mode {mode} is for --target numpy; the {target} target has one mode")
    return next(b for b in BACKENDS.values() if b.target == target)


def program_for(
    spec: Spec, mode: str = "auto", target: str = "numpy", second_order: bool = False, inference_only: bool = False
) -> Program:
    """The optimized program a backend prints: the layer program (with a Hessian-vector product if
    ``second_order``; ``forward`` alone if ``inference_only``), unrolled per neuron if the backend
    wants it, then one CSE."""
    backend = backend_for(spec, mode, target)
    if second_order and inference_only:
        raise SpecError("--second-order and --inference-only exclude each other: the products need the loss")
    if backend.max_params is not None and spec.n_params > backend.max_params:
        raise SpecError(
            f"{spec.source}: {spec.n_params} parameters is over the {backend.name}-mode limit of "
            f"{backend.max_params}; use --mode vectorized"
        )
    program = derive(spec, weighted=backend.sample_weight)
    if second_order:
        if not backend.second_order:
            able = " or ".join(dict.fromkeys(b.target for b in BACKENDS.values() if b.second_order))
            raise SpecError(f"--second-order is not available for --target {backend.target} yet; use {able}")
        program = with_hvp(program)
    if inference_only:
        program = replace(program, functions=(program.function("forward"),))
    if backend.granularity is Granularity.UNIT:
        program = unroll(program)
    return cse(program)


def render_files(
    spec: Spec,
    mode: str = "auto",
    target: str = "numpy",
    options: Mapping[str, str] | None = None,
    second_order: bool = False,
    inference_only: bool = False,
) -> dict[str, str]:
    """Every file a backend writes for ``spec``, by name; ``options`` are the target's own, as
    text (C: ``real``), checked into its typed config (:class:`symprop.backends.base.BackendConfig`);
    ``inference_only``: the forward pass alone (no loss, gradient or training code)."""
    spec = validate(spec)  # custom expressions re-printed from SymPy: no raw user text below
    backend = backend_for(spec, mode, target)
    config = backend.config.from_options(target, options, second_order=second_order, inference_only=inference_only)
    return _render(spec, backend, config, mode, target)


def render_config(spec: Spec, config: BackendConfig, mode: str = "auto", target: str = "numpy") -> dict[str, str]:
    """Every file a backend writes for ``spec`` under a typed ``config`` (``CConfig(real="float")``)."""
    spec = validate(spec)
    backend = backend_for(spec, mode, target)
    if not isinstance(config, backend.config):
        raise SpecError(f"a {type(config).__name__} is not the {target} target's config; use {backend.config.__name__}")
    return _render(spec, backend, config, mode, target)


def _render(spec: Spec, backend: Backend, config: BackendConfig, mode: str, target: str) -> dict[str, str]:
    program = program_for(spec, mode, target, config.second_order, config.inference_only)
    try:
        return backend.render(program, config)
    except SpecError:  # already one line naming the spec and the fix (a C name, a real type)
        raise
    except ValueError as exc:  # the printer refuses what it cannot print as valid code (an inf constant)
        raise SpecError(f"{spec.source}: cannot generate code for this spec: {exc}; rescale the expression") from None


def render(spec: Spec, mode: str = "auto", target: str = "numpy", second_order: bool = False) -> str:
    """The generated Python module's source text for ``spec`` (numpy or array-api target)."""
    files = render_files(spec, mode, target, second_order=second_order)
    return files[f"{spec.name}.py"]


def write_files(
    spec: Spec,
    out_dir: str | Path,
    mode: str = "auto",
    target: str = "numpy",
    options: Mapping[str, str] | None = None,
    force: bool = False,
    second_order: bool = False,
    inference_only: bool = False,
) -> list[Path]:
    """Render ``spec`` and write every file of its backend into ``out_dir`` atomically.

    The output paths are checked first (:func:`symprop.io.check_output`), then everything is
    rendered in memory: a refused path or a failure writes nothing. Raises :class:`OutputError`
    for a path symprop must not write and when a write fails.
    """
    names = [f"{spec.name}{suffix}" for suffix in backend_for(spec, mode, target).suffixes]
    for name in names:
        check_output(Path(out_dir) / name, force)
    files = render_files(spec, mode, target, options, second_order, inference_only)
    paths = []
    for name, text in files.items():
        path = Path(out_dir) / name
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); choose another -o") from None
        paths.append(path)
    return paths


def generate(spec: Spec, out_dir: str | Path, mode: str = "auto", force: bool = False) -> Path:
    """Render ``spec``'s NumPy module and write ``out_dir/<name>.py`` atomically; return the path."""
    return write_files(spec, out_dir, mode, force=force)[0]


__all__ = [
    "AUTO_UNROLLED_MAX_PARAMS",
    "MODES",
    "TARGETS",
    "UNROLLED_MAX_PARAMS",
    "OutputError",
    "auto_rule",
    "backend_for",
    "choose_mode",
    "generate",
    "program_for",
    "render",
    "render_config",
    "render_files",
    "resolve_mode",
    "write_atomic",
    "write_atomic_with",
    "write_files",
]
