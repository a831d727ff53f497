"""One entry per activation and per loss: its parameters, its formula, its one-line description.

Everything else reads this table: spec validation (which keys a layer takes, their ranges and
defaults), the scalar math (:mod:`symprop.symbolic.layer_math` builds f(z) and ℓ(a, y) from the
formulas here), the CLI help and the tests' parametrisation.  How each function *prints* is
defined once per SymPy function class (``Sigmoid``, ``Relu``, ``Softplus`` …) in the printers,
so an activation built from them needs no printing code of its own.

Formulas get the pre-activation symbol and a ``number(name)`` callback that returns a
parameter's value as an exact SymPy number (integers stay integers, others are Floats kept at
30 digits); custom expressions are parsed by the caller (:mod:`symprop.spec.safe_expr`).
SymPy is imported inside the formulas, not here: validating a spec (``symprop train`` on a
cached module) does not load it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sympy as sp


@dataclass(frozen=True)
class Param:
    """One activation parameter: its default (None = optional) and range check."""

    name: str
    default: float | None
    check: Callable[[float], bool] = math.isfinite
    rule: str = "a finite number"


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


MAX_SCALE = 1e30  # beta * z must stay finite in float32 (max 3.4e38) for |z| up to 1e8


def _scale(v: float) -> bool:
    return math.isfinite(v) and v != 0 and abs(v) <= MAX_SCALE


Number = Callable[[str], "sp.Expr"]  # a parameter's value, as SymPy
OptionalNumber = Callable[[str], "sp.Expr | None"]


@dataclass(frozen=True)
class Activation:
    name: str
    params: tuple[Param, ...]
    formula: Callable[[sp.Symbol, Number, OptionalNumber], sp.Expr] | None  # None: custom (parsed text)
    summary: str


@dataclass(frozen=True)
class Loss:
    name: str
    per_unit: Callable[[sp.Symbol, sp.Symbol], sp.Expr] | None  # ℓ(a, y); None: not per unit, or custom
    summary: str


def _identity(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    return x


def _sigmoid(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    from symprop.symbolic.functions import Sigmoid

    return Sigmoid(num("beta") * x)


def _piecewise_linear(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    import sympy as sp

    x_min, x_max = num("x_min"), num("x_max")
    m, b = opt("m"), opt("b")
    slope = m if m is not None else 1 / (x_max - x_min)
    intercept = b if b is not None else -x_min * slope
    return sp.Piecewise((0, x <= x_min), (slope * x + intercept, x < x_max), (1, True))


def _gaussian(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    import sympy as sp

    mu, sigma = num("mu"), num("sigma")
    return sp.exp(-((x - mu) ** 2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))


def _step(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    import sympy as sp

    return sp.Heaviside(x, 1)


def _relu(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    from symprop.symbolic.functions import Relu

    return Relu(x)


def _tanh(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    import sympy as sp

    return sp.tanh(x)


def _softplus(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    from symprop.symbolic.functions import Softplus

    return Softplus(x)


def _leaky_relu(x: sp.Symbol, num: Number, opt: OptionalNumber) -> sp.Expr:
    import sympy as sp

    return sp.Piecewise((num("alpha") * x, x <= 0), (x, True))


def _mse(a: sp.Symbol, y: sp.Symbol) -> sp.Expr:
    return (a - y) ** 2 / 2


def _sse(a: sp.Symbol, y: sp.Symbol) -> sp.Expr:
    return (a - y) ** 2


def _bce(a: sp.Symbol, y: sp.Symbol) -> sp.Expr:
    import sympy as sp

    return -(y * sp.log(a) + (1 - y) * sp.log(1 - a))


ACTIVATIONS: Mapping[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", (), _identity, "a = z"),
        Activation(
            "sigmoid",
            (Param("beta", 1.0, _scale, "a number other than 0 with |beta| <= 1e30"),),
            _sigmoid,
            "a = 1/(1 + exp(-beta z))",
        ),
        Activation(
            "piecewise_linear",
            (Param("x_min", -1.0), Param("x_max", 1.0), Param("m", None), Param("b", None)),
            _piecewise_linear,
            "0 below x_min, m z + b between, 1 from x_max (default: the line through (x_min, 0), (x_max, 1))",
        ),
        Activation(
            "gaussian",
            (Param("mu", 0.0), Param("sigma", 1.0, _positive, "a number > 0")),
            _gaussian,
            "a = exp(-(z - mu)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))",
        ),
        Activation("step", (), _step, "a = 1 for z >= 0, else 0; derivative 0"),
        Activation("relu", (), _relu, "a = max(0, z), relu'(0) = 0"),
        Activation("tanh", (), _tanh, "a = tanh(z)"),
        Activation("softplus", (), _softplus, "a = log(1 + exp(z))"),
        Activation(
            "leaky_relu",
            (Param("alpha", 0.01),),
            _leaky_relu,
            "a = alpha z for z <= 0, else z",
        ),
        Activation("custom", (), None, 'a = expr, a formula in x (expr = "...")'),
    )
}

LOSSES: Mapping[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("mse", _mse, "sum_j (a_j - y_j)^2 / 2"),
        Loss("sse", _sse, "sum_j (a_j - y_j)^2"),
        Loss("bce", _bce, "binary cross-entropy, outputs in (0, 1)"),
        Loss("softmax_ce", None, "cross-entropy of softmax(z) over the output row; last layer identity"),
        Loss("custom", None, 'loss_expr = "...", a formula in a and y, summed over the outputs'),
    )
}

__all__ = ["ACTIVATIONS", "LOSSES", "Activation", "Loss", "Param"]
