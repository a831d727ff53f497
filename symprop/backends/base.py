"""The backend interface: what every target supplies, in the spirit of SymForce's CodegenConfig.

A backend is a printer (the array module a parameter), a templates folder
(``templates/<target>/``) and a function from an optimized :class:`Program` to the files it
writes, by name (through a typed template context).  :mod:`symprop.backends.registry` lists
them; the CLI's choices and the tests' parametrisation are read from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from symprop.ir.program import Granularity, Program


@dataclass(frozen=True)
class Backend:
    name: str  # unique: "vectorized", "unrolled" (the NumPy modes), "array-api", "c"
    target: str  # the runtime: "numpy", "array-api", "c"
    granularity: Granularity  # which program it prints: the layer program or the per-neuron one
    render: Callable[[Program], dict[str, str]]  # file name -> text, e.g. {"xor.py": ...}
    summary: str
    max_params: int | None = None  # refuse larger specs (generation time, readability)
    mode: str = ""  # the --mode that selects it within its target ("" if the target has one backend)
    # target options (e.g. {"real": "float"} for C): the render used when any is given, and their names
    render_options: Callable[[Program, Mapping[str, str]], dict[str, str]] | None = None
    options: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = (".py",)  # the files it writes: <spec name><suffix>
    second_order: bool = True  # prints the Hessian-vector products (generate --second-order)
    sample_weight: bool = False  # its loss functions take per-sample weights (the weighted program)


__all__ = ["Backend"]
