"""The backend interface: what every target supplies, in the spirit of SymForce's CodegenConfig.

A backend is a typed config (:class:`BackendConfig`, one subclass per target: its options are
fields with defaults), a printer (the array module a parameter), a templates folder
(``templates/<language>/``: ``python/`` for the NumPy and array-API targets, ``c/``) and a
function from an optimized :class:`Program` and its config to the files it writes, by name.
:mod:`symprop.backends.registry` lists them; the CLI's choices and the tests' parametrisation
(``tests/test_backend_contract.py``) are read from there.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from symprop.ir.program import Granularity, Program
from symprop.spec import SpecError


@dataclass(frozen=True)
class BackendConfig:
    """What every target is told: the options every backend shares.

    ``second_order``: also the Hessian-vector products; ``inference_only``: the forward pass
    alone (no loss, gradient or training code).  A target adds its own options as fields.
    """

    second_order: bool = False
    inference_only: bool = False

    @classmethod
    def target_options(cls) -> tuple[str, ...]:
        """The target's own options (the fields a subclass adds), by name."""
        shared = {f.name for f in dataclasses.fields(BackendConfig)}
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in shared)

    @classmethod
    def from_options(cls, target: str, options: Mapping[str, str] | None = None, **shared: bool) -> BackendConfig:
        """The config from the target's options as text (the CLI's ``--c-real``), each checked
        against its field's ``Literal`` type: SpecError naming the option and the choices."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.target_options()))
        if unknown:
            raise SpecError(f"option {', '.join(unknown)} is not one of the {target} target's")
        hints = typing.get_type_hints(cls)
        for name, value in options.items():
            choices = typing.get_args(hints[name])
            if value not in choices:
                what = name.replace("_", " ")
                raise SpecError(f"{what} type {value!r}: use {' or '.join(choices)}")
        fields: dict[str, Any] = {**shared, **options}
        return cls(**fields)


@dataclass(frozen=True)
class NumpyConfig(BackendConfig):
    """The NumPy modules (``--mode vectorized`` or ``unrolled``): no options of their own."""


@dataclass(frozen=True)
class ArrayApiConfig(BackendConfig):
    """The array-API module: no options of its own (the namespace is chosen when it runs)."""


@dataclass(frozen=True)
class CConfig(BackendConfig):
    """The C99 header and source: ``real`` is the floating type of every array and scalar."""

    real: Literal["double", "float"] = "double"


@dataclass(frozen=True)
class Backend:
    name: str  # unique: "vectorized", "unrolled" (the NumPy modes), "array-api", "c"
    target: str  # the runtime: "numpy", "array-api", "c"
    granularity: Granularity  # which program it prints: the layer program or the per-neuron one
    render: Callable[[Program, Any], dict[str, str]]  # (program, config) -> file name -> text
    summary: str
    config: type[BackendConfig] = NumpyConfig  # its typed options
    max_params: int | None = None  # refuse larger specs (generation time, readability)
    mode: str = ""  # the --mode that selects it within its target ("" if the target has one backend)
    suffixes: tuple[str, ...] = (".py",)  # the files it writes: <spec name><suffix>
    second_order: bool = True  # prints the Hessian-vector products (generate --second-order)
    sample_weight: bool = False  # its loss functions take per-sample weights (the weighted program)

    @property
    def options(self) -> tuple[str, ...]:
        """The names of its target's own options (C: ``real``)."""
        return self.config.target_options()


__all__ = ["ArrayApiConfig", "Backend", "BackendConfig", "CConfig", "NumpyConfig"]
