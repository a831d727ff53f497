"""Stage 2b: the symbolic network, one SymPy symbol per neuron's z and a.

Names follow the math, 1-based: inputs ``x1..xn``, targets ``y1..ym``,
weights ``W{l}_{j}_{i}`` (from neuron i of layer l-1 to neuron j of layer l),
biases ``b{l}_{j}``, pre-activations ``z{l}_{j}``, activations ``a{l}_{j}``
(``a0_i`` is ``x_i``).  The forward pass is a list of assignments
``z = Σ W a + b``, ``a = f(z)``, then the per-sample loss ``C_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symprop.spec import Spec
from symprop.symbolic.layer_math import A, Y, Z, activation_math, output_math, softmax_math


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def linear_sum(weights: tuple[sp.Symbol, ...], values: tuple[sp.Symbol, ...], bias: sp.Expr | None = None) -> sp.Expr:
    """Σ w·v (+ bias) built without SymPy's canonicalisation: distinct symbols never combine,
    and skipping it keeps the terms in index order and is ~10x faster for wide layers."""
    terms = [sp.Mul(w, v, evaluate=False) for w, v in zip(weights, values, strict=True)]
    if bias is not None:
        terms.append(bias)
    return terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)


@dataclass(frozen=True)
class Assign:
    """``lhs = rhs``; ``role`` is one of z, a, loss, delta, temp (a CSE temporary)."""

    lhs: sp.Symbol
    rhs: sp.Expr
    role: str


@dataclass(frozen=True)
class Network:
    spec: Spec
    x: tuple[sp.Symbol, ...]
    y: tuple[sp.Symbol, ...]
    # indexed by layer l = 1..L (index 0 is empty, except a[0] = x): W[l][j-1][i-1]
    W: tuple[tuple[tuple[sp.Symbol, ...], ...], ...]
    b: tuple[tuple[sp.Symbol, ...], ...]
    z: tuple[tuple[sp.Symbol, ...], ...]
    a: tuple[tuple[sp.Symbol, ...], ...]
    forward: tuple[Assign, ...]
    loss: sp.Expr  # per-sample C_k over the a, z and y symbols
    rewrites: tuple[str, ...]

    @property
    def n_layers(self) -> int:
        return len(self.spec.layers)

    def param_symbols(self) -> list[tuple[str, tuple[int, ...], sp.Symbol]]:
        """Every scalar parameter as (array name, 0-based index, symbol), in PARAM_SHAPES order."""
        out: list[tuple[str, tuple[int, ...], sp.Symbol]] = []
        for l in range(1, self.n_layers + 1):
            for j, row in enumerate(self.W[l]):
                out += [(f"W{l}", (j, i), w) for i, w in enumerate(row)]
            out += [(f"b{l}", (j,), bj) for j, bj in enumerate(self.b[l])]
        return out


def build_network(spec: Spec) -> Network:
    sizes = spec.layer_sizes
    x = tuple(sym(f"x{i}") for i in range(1, spec.inputs + 1))
    y = tuple(sym(f"y{j}") for j in range(1, spec.outputs + 1))
    W: list[tuple[tuple[sp.Symbol, ...], ...]] = [()]
    b: list[tuple[sp.Symbol, ...]] = [()]
    z: list[tuple[sp.Symbol, ...]] = [()]
    a: list[tuple[sp.Symbol, ...]] = [x]
    forward: list[Assign] = []
    rewrites: list[str] = []
    for l in range(1, len(sizes)):
        Wl = tuple(tuple(sym(f"W{l}_{j}_{i}") for i in range(1, sizes[l - 1] + 1)) for j in range(1, sizes[l] + 1))
        bl = tuple(sym(f"b{l}_{j}") for j in range(1, sizes[l] + 1))
        zl = tuple(sym(f"z{l}_{j}") for j in range(1, sizes[l] + 1))
        al = tuple(sym(f"a{l}_{j}") for j in range(1, sizes[l] + 1))
        act = activation_math(spec.layers[l - 1])
        rewrites += act.rewrites
        for j in range(sizes[l]):
            weighted = linear_sum(Wl[j], a[l - 1], bl[j])
            forward.append(Assign(zl[j], weighted, "z"))
            forward.append(Assign(al[j], act.f.xreplace({Z: zl[j]}), "a"))
        W.append(Wl)
        b.append(bl)
        z.append(zl)
        a.append(al)
    if spec.loss == "softmax_ce":
        loss, _, zs, ys = softmax_math(spec.outputs)
        per_sample = loss.xreplace(dict(zip(zs, z[-1], strict=True)) | dict(zip(ys, y, strict=True)))
    else:
        out = output_math(spec)
        rewrites += out.rewrites
        per_sample = sp.Add(
            *[out.loss.xreplace({A: aj, Z: zj, Y: yj}) for aj, zj, yj in zip(a[-1], z[-1], y, strict=True)]
        )
    return Network(
        spec,
        x,
        y,
        tuple(W),
        tuple(b),
        tuple(z),
        tuple(a),
        tuple(forward),
        per_sample,
        tuple(dict.fromkeys(rewrites)),
    )
