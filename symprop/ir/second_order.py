"""Second order: Hessian- and Gauss-Newton-vector products as transforms of the layer program.

For a direction V (one array per parameter, shaped like it), R(v) = d/dt v(params + tV) at t = 0.
Applied statement by statement to ``loss_and_grad`` (forward over reverse), it gives
R(∂C/∂params) = H V, the Hessian of the batch-mean cost times V, in one extra forward and
backward sweep:

* a matrix product ``out = L @ R`` gives ``R(out) = R(L) @ R + L @ R(R)`` (R(W) = V_W, R(X) = 0);
* a bias add gives ``R(Z) += V_b``;
* an elementwise map ``out = e(s1, s2, ...)`` gives ``R(out) = Σ_i ∂e/∂s_i · R(s_i)``, each partial
  derivative taken by SymPy on the expression (the only differentiation here), with a forward
  value put back where SymPy re-derives it (σ(z) → the saved a);
* a sum gives the sum of the R's; softmax's row maximum has R = 0 (the shift cancels exactly).

Conventions at kinks, as for first derivatives: relu'' = 0, step'' = 0, |x|'' = 0 (every
DiracDelta is dropped), so the product is exact away from the kinks.  An error term that is a
constant (δ = 0 below a step layer, whose derivative is 0; δ = c for a loss linear in z) has
R(D) = 0, written as an array of D's shape, so every gradient computed from it has its product.

The generalized Gauss-Newton product G V = Jᵀ H_ℓ J V (``gnvp``) is the same sweep with the
network's own second derivatives left out: at the output, R(δ) is l''(a)·f'(z)²·R(z) for a per-unit
loss (the full ∂δ/∂z for softmax_ce and bce on a sigmoid, the Fisher form of a canonical link);
below it only R(δ) travels (no D·V_W, no Dᵀ·R(a), no f'' term). It is positive semi-definite
when the loss is convex in the output.

The forward sweep's R statements come after the whole forward pass (so every function still
shares the same forward prefix), the backward sweep's right after the statement they follow.
The results are new functions ``hvp`` and ``gnvp`` in the layer program; backends print them like
any other, and :mod:`symprop.ir.unroll` unrolls them per neuron like the rest.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symprop.ir.program import (
    LAYER_VALUES,
    AddBias,
    Function,
    Kind,
    LinearSum,
    Map,
    MatMul,
    Program,
    Reduce,
    ReduceOp,
    Role,
    Statement,
    Var,
    note,
)
from symprop.symbolic.functions import drop_dirac

ZERO_R = {Kind.INPUT, Kind.TARGET, Kind.COUNT}


def direction(v: Var) -> Var:
    """V_W1, V_b1: the direction's array for a parameter."""
    return Var("V" + v.name, Kind.DIRECTION, v.layer)


def r_var(v: Var) -> Var:
    return Var("R" + v.name, Kind.R, v.layer, of=v.math_kind)


class _R:
    """Which variables have an R, and its variable."""

    def __init__(self) -> None:
        self.known: dict[sp.Symbol, Var] = {}
        self.values: dict[sp.Basic, sp.Symbol] = {}  # forward expression -> its saved variable
        self.forward: set[sp.Symbol] = set()  # the forward pass's variables (for Gauss-Newton)

    def of(self, v: Var) -> Var | None:
        if v.kind in (Kind.WEIGHT, Kind.BIAS):
            return direction(v)
        return self.known.get(v.symbol)

    def of_symbol(self, s: sp.Symbol) -> sp.Symbol | None:
        v = self.known.get(s)
        return v.symbol if v is not None else None


LINEAR_KINDS = {Kind.DELTA, Kind.UPSTREAM, Kind.GRAD_W, Kind.GRAD_B, Kind.R}


def _statement(s: Statement, r: _R, params: dict[sp.Symbol, Var], linear: bool = False) -> list[Statement]:
    """The R statements of ``s``; ``linear`` (the Gauss-Newton backward sweep) propagates only the
    R of backward quantities (δ, the error sent down, gradients) and the penalty's direction."""
    role = Role.CURVATURE
    if isinstance(s, MatMul):
        terms: list[tuple[Var, Var, bool, bool]] = []
        left_r, right_r = r.of(s.left), r.of(s.right)
        if linear:  # J^T H J: no second derivative of the network, so no D @ V_W, no D^T R(A)
            left_r = left_r if s.left.kind in LINEAR_KINDS else None
            right_r = right_r if s.right.kind in LINEAR_KINDS else None
        if left_r is not None:
            terms.append((left_r, s.right, s.left_t, s.right_t))
        if right_r is not None:
            terms.append((s.left, right_r, s.left_t, s.right_t))
        if not terms:
            return []
        out = r_var(s.out)
        r.known[s.out.symbol] = out
        if len(terms) == 1:
            a, b, lt, rt = terms[0]
            return [MatMul(out, a, b, lt, rt, role, note(f"R({s.out.name})"))]
        parts = [Var(f"{out.name}_{k}", Kind.R, s.out.layer, of=s.out.math_kind) for k in (1, 2)]
        return [
            *(MatMul(p, a, b, lt, rt, role) for p, (a, b, lt, rt) in zip(parts, terms, strict=True)),
            Map(out, parts[0].symbol + parts[1].symbol, role, note(f"R({s.out.name}), the product rule")),
        ]
    if isinstance(s, AddBias):
        target = r.of(s.out)
        return [] if target is None else [AddBias(target, direction(s.bias), role)]
    if isinstance(s, Map | Reduce):
        if isinstance(s, Reduce) and s.op is ReduceOp.MAX:
            return []  # softmax's shift: R(M) = 0, every use of M cancels
        if s.out.kind is Kind.COST:
            return []  # the cost's own R is not needed for H V
        terms = []
        for sym in sorted(s.expr.free_symbols, key=sp.default_sort_key):
            if linear and sym in r.forward:
                continue  # R(a), R(z) of the forward pass: their terms are f'' and D-terms, dropped
            rs = r.of_symbol(sym) if sym not in params else direction(params[sym]).symbol
            if rs is None:
                continue
            # the conventions at kinks: relu'' = step'' = 0 (a DiracDelta of a derivative is dropped)
            partial = drop_dirac(sp.diff(s.expr, sym)).xreplace(r.values)
            if partial == 0:
                continue
            terms.append(partial * rs)
        if not terms:
            if isinstance(s, Map) and s.out.kind in LAYER_VALUES and s.out.kind is not Kind.A:
                # a constant error term (δ = 0 below a step layer, δ = c for a loss linear in z):
                # R(D) = 0, an array of D's shape, so every gradient computed from D has an R
                out = r_var(s.out)
                r.known[s.out.symbol] = out
                return [Map(out, sp.Integer(0), role, note(f"R({s.out.name}) = 0: {s.out.name} is constant"))]
            return []
        out = r_var(s.out)
        r.known[s.out.symbol] = out
        expr = sp.Add(*terms)
        if isinstance(s, Reduce):
            return [replace(s, out=out, expr=expr, role=role, note=note(f"R({s.out.name})"))]
        return [Map(out, expr, role, note(f"R({s.out.name})"))]
    if isinstance(s, LinearSum):
        raise ValueError("the Hessian-vector product transforms the layer program, not the per-neuron one")
    return []


def _curvature(program: Program, gauss_newton: bool) -> Function:
    lag = program.function("loss_and_grad")
    forward = [s for s in program.function("forward").body if s.role is Role.FORWARD]
    r = _R()
    params = {v.symbol: v for v in program.params}
    for s in forward:  # forward values, so that derivatives SymPy re-derives reuse them
        r.forward.add(s.out.symbol)
        if isinstance(s, Map) and not s.expr.is_Symbol:
            r.values[s.expr] = s.out.symbol
    body: list[Statement] = list(forward)
    for s in forward:
        body += _statement(s, r, params)
    L = len(program.spec.layers)
    output_done = False
    for s in lag.body[len(forward) :]:
        body.append(s)
        is_output_delta = isinstance(s, Map) and s.out.kind is Kind.DELTA and s.out.layer == L
        if gauss_newton and isinstance(s, Map) and is_output_delta and not program.output.fused:
            body.append(_ggn_output(program, s, r))
        else:
            body += _statement(s, r, params, linear=gauss_newton and output_done)
        output_done = output_done or is_output_delta
    grads = lag.returns[1:]
    products = tuple(r.known[g.symbol] for g in grads)
    return Function("gnvp" if gauss_newton else "hvp", tuple(body), (*lag.returns, *products))


def _ggn_output(program: Program, s: Map, r: _R) -> Statement:
    """R(D^L) of the generalized Gauss-Newton matrix for a per-unit loss on an activation:
    l''(a) f'(z)^2 R(z) / n, positive semi-definite when l is convex in a (mse, sse, bce)."""
    from symprop.ir.backprop import layer_vars
    from symprop.ir.program import N
    from symprop.symbolic import layer_math as lm

    L = len(program.spec.layers)
    Z, A = layer_vars(L)
    assert program.output.dloss_da is not None
    curvature = sp.diff(program.output.dloss_da, lm.A)
    df = program.layers[-1].df
    at = {lm.A: A.symbol, lm.Z: Z.symbol, lm.Y: Var("Y", Kind.TARGET).symbol}
    rz = r.known[Z.symbol].symbol
    out = r_var(s.out)
    r.known[s.out.symbol] = out
    expr = drop_dirac(curvature * df**2).xreplace(at) * rz / N.symbol
    return Map(out, expr, Role.CURVATURE, note(f"R({s.out.name}) = l''(a) f'(z)^2 R(z) / n (Gauss-Newton)"))


def with_hvp(program: Program) -> Program:
    """``program`` with ``hvp(params, X, Y, V) -> (C, grads, H V)`` and ``gnvp(...) -> (C, grads, G V)``."""
    return replace(program, functions=(*program.functions, _curvature(program, False), _curvature(program, True)))


__all__ = ["direction", "r_var", "with_hvp"]
