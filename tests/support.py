"""Shared test helpers: one layer per activation, and generated modules cached per (spec, mode)."""

from __future__ import annotations

import types
from functools import cache
from pathlib import Path

from symprop.backends.registry import modes
from symprop.emit import render
from symprop.spec import Layer, Spec
from symprop.tools.check import load_module

ROOT = Path(__file__).resolve().parent.parent
# the NumPy modes, read from the backend registry (a new mode is tested without editing the tests)
NUMPY_MODES: tuple[str, ...] = modes("numpy")
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))

# Every activation with non-default parameters where it has any, so parameters are exercised.
ACTIVATIONS: dict[str, dict[str, float | str]] = {
    "identity": {},
    "sigmoid": {"beta": 1.7},
    "piecewise_linear": {"x_min": -1.5, "x_max": 2.0},
    "gaussian": {"mu": 0.3, "sigma": 0.9},
    "step": {},
    "relu": {},
    "tanh": {},
    "softplus": {},
    "leaky_relu": {"alpha": 0.05},
    "custom": {"expr": "x/(1 + abs(x)) + 0.1*sin(x)"},
}
LOSSES = ("mse", "sse", "bce", "softmax_ce", "custom")
CUSTOM_LOSS = "(a - y)**2 + 0.5*(a - y)**4"


def layer(activation: str, units: int) -> Layer:
    return Layer.of(units, activation, **ACTIVATIONS[activation])


def spec_for(activation: str, loss: str, sizes: tuple[int, ...] = (3, 4, 2)) -> Spec:
    """A small net with ``activation`` in every hidden layer and an output layer valid for ``loss``."""
    hidden = tuple(layer(activation, u) for u in sizes[1:-1])
    if loss == "bce":
        out = Layer.of(sizes[-1], "sigmoid", beta=1.3)
    elif loss == "softmax_ce":
        out = Layer.of(max(sizes[-1], 2), "identity")
    else:
        out = layer(activation, sizes[-1])
    return Spec(f"net_{activation}_{loss}", sizes[0], (*hidden, out), loss, CUSTOM_LOSS if loss == "custom" else None)


@cache
def module_for(spec: Spec, mode: str = "unrolled") -> types.ModuleType:
    return load_module(render(spec, mode), spec.name)
