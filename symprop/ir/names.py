"""Parameter names, spelled in one place: ``W1``, ``b1``, their gradients ``dW1``, ``db1`` and
the directions ``VW1``, ``Vb1`` of a Hessian-vector product.

The spec (``param_shapes``), the IR (``Var`` names) and every backend (``params["W1"]``,
``grads["W1"]``) take these names from here instead of spelling them with f-strings or slicing
``name[1:]``; a :class:`ParamRef` is a parsed name (which array, which layer).
It imports nothing of symprop, so the spec can use it too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Kind(enum.Enum):
    """What a variable holds; with ``layer`` and ``unit`` it names the math object."""

    INPUT = "x"  # X, or x_i in the unit program
    TARGET = "y"  # Y, or y_j
    WEIGHT = "W"  # a weight matrix, or one entry W[j, i]
    BIAS = "b"  # a bias vector, or one entry b[j]
    Z = "z"  # pre-activation of a layer (or unit)
    A = "a"  # activation
    UPSTREAM = "dC_da"  # ∂C_k/∂a sent down from the layer above, Σ_j W_ji δ_j
    DELTA = "delta"  # δ = ∂C_k/∂z (divided by n in the program: the batch mean is folded in)
    ROW = "row"  # one value per sample (softmax's row max, sums, log-sum-exp)
    COST = "C"  # the batch-mean cost, a scalar
    GRAD_W = "dW"  # ∂C/∂W, or one entry
    GRAD_B = "db"  # ∂C/∂b, or one entry
    TEMP = "t"  # a common subexpression
    COUNT = "n"  # the batch size
    DIRECTION = "V"  # the direction of a Hessian-vector product (one per parameter array)
    R = "R"  # the directional derivative R(v) = d/dt v(params + t V) of a variable v


GRAD = "d"  # dW1 = ∂C/∂W1
DIRECTION = "V"  # VW1: the direction of a Hessian-vector product for W1


@dataclass(frozen=True)
class ParamRef:
    """One parameter array: the weights ``W`` or the biases ``b`` of layer ``layer`` (1-based)."""

    array: Literal["W", "b"]
    layer: int

    @classmethod
    def parse(cls, name: str) -> ParamRef:
        """``W1``, ``b2``, and the gradient (``dW1``) or direction (``VW1``) of one; ValueError else."""
        bare = name[1:] if name[:1] in (GRAD, DIRECTION) and name[1:2] in ("W", "b") else name
        array, digits = bare[:1], bare[1:]
        if array not in ("W", "b") or not digits.isdigit() or digits.startswith("0"):
            raise ValueError(f"{name!r} names no parameter array (W1, b1, dW1, VW1, ...)")
        return cls("W" if array == "W" else "b", int(digits))

    @property
    def label(self) -> str:
        """The array's name: ``W1``, ``b1`` (the key in ``params`` and ``grads``)."""
        return f"{self.array}{self.layer}"

    @property
    def grad(self) -> str:
        """Its gradient's name: ``dW1``."""
        return grad_of(self.label)

    @property
    def direction(self) -> str:
        """Its direction's name in a Hessian-vector product: ``VW1``."""
        return DIRECTION + self.label


def weight(l: int) -> str:
    """``W{l}``: the weights of layer ``l``."""
    return ParamRef("W", l).label


def bias(l: int) -> str:
    """``b{l}``: the biases of layer ``l``."""
    return ParamRef("b", l).label


def grad_of(param: str) -> str:
    """The gradient's name of a parameter array: ``dW1`` for ``W1``."""
    return GRAD + param


__all__ = ["DIRECTION", "GRAD", "Kind", "ParamRef", "bias", "grad_of", "weight"]
