"""The naive reference: differentiate the fully expanded per-sample cost once per parameter.

This is what :mod:`symprop.ir.backprop` exists to avoid (it is ~1000x slower and
its CSE produces ~10x more operations), kept as an independent check for tiny
networks in the tests and as the baseline in ``benchmarks/generate.py``.
It shares only the scalar definitions of activations and losses with the
real pipeline, uses the plain (unrewritten) loss, and no intermediate symbols.
"""

from __future__ import annotations

import sympy as sp

from symprop.explain.view import sym
from symprop.spec import Spec
from symprop.symbolic.functions import drop_dirac
from symprop.symbolic.layer_math import A, Y, Z, activation_expr, per_unit_loss


def expanded_cost(
    spec: Spec,
) -> tuple[sp.Expr, list[sp.Symbol], list[sp.Symbol], list[tuple[str, tuple[int, ...], sp.Symbol]]]:
    """C_k in inputs, targets and parameters only; returns (cost, xs, ys, params)."""
    sizes = spec.layer_sizes
    xs = [sym(f"x{i}") for i in range(1, sizes[0] + 1)]
    ys = [sym(f"y{j}") for j in range(1, sizes[-1] + 1)]
    params: list[tuple[str, tuple[int, ...], sp.Symbol]] = []
    values: list[sp.Expr] = list(xs)
    zs: list[sp.Expr] = []
    for l in range(1, len(sizes)):
        f = activation_expr(spec.layers[l - 1])
        zs = []
        for j in range(sizes[l]):
            weights = [sym(f"W{l}_{j + 1}_{i + 1}") for i in range(sizes[l - 1])]
            bias = sym(f"b{l}_{j + 1}")
            params += [(f"W{l}", (j, i), w) for i, w in enumerate(weights)]
            params.append((f"b{l}", (j,), bias))
            zs.append(sp.Add(*[w * v for w, v in zip(weights, values, strict=True)]) + bias)
        values = [f.xreplace({Z: zj}) for zj in zs]
    if spec.loss == "softmax_ce":
        lse = sp.log(sp.Add(*[sp.exp(z) for z in zs]))
        cost = -sp.Add(*[y * (z - lse) for y, z in zip(ys, zs, strict=True)])
    else:
        ell = per_unit_loss(spec)
        cost = sp.Add(*[ell.xreplace({A: a, Y: y}) for a, y in zip(values, ys, strict=True)])
    order = {name: k for k, name in enumerate(spec.param_shapes)}
    params.sort(key=lambda p: (order[p[0]], p[1]))
    return cost, xs, ys, params


def naive_gradients(spec: Spec) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr], list[sp.Symbol], list[sp.Symbol]]:
    """(cost, {param symbol: ∂C_k/∂param}, xs, ys) by sympy.diff on the expanded cost."""
    cost, xs, ys, params = expanded_cost(spec)
    grads = {p: drop_dirac(sp.diff(cost, p)) for _, _, p in params}
    return cost, grads, xs, ys


def naive_cse_ops(grads: dict[sp.Symbol, sp.Expr]) -> int:
    """Operation count after one joint CSE of all naive gradients."""
    temps, reduced = sp.cse(list(grads.values()))
    return sum(int(sp.count_ops(e)) for e in [*(t[1] for t in temps), *reduced])


__all__ = ["expanded_cost", "naive_cse_ops", "naive_gradients"]
