"""Stage 3: backpropagation as a list of assignments, by the chain rule.

One symbol per neuron's error δ = ∂C_k/∂z (per sample k):

* output layer: δL_j = ∂ℓ/∂z, from :mod:`symprop.symbolic.layer_math` (local derivative only);
* hidden layers: δl_i = f'(zl_i) · Σ_j W(l+1)_j_i δ(l+1)_j, where the sum is ∂C_k/∂al_i;
* gradients: ∂C/∂Wl_j_i = mean_k(δl_j · a(l-1)_i), ∂C/∂bl_j = mean_k(δl_j).

Nothing differentiates the whole cost: every derivative taken is of one scalar
activation or loss (the measured alternative is ~1000x slower).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symprop.ir.graph import Assign, Network, build_network, linear_sum, sym
from symprop.spec import Spec
from symprop.symbolic.layer_math import A, Y, Z, activation_math, output_math, softmax_math


@dataclass(frozen=True)
class Gradient:
    """∂C/∂param = mean over the batch of ``delta * activation`` (activation None for a bias)."""

    array: str
    index: tuple[int, ...]  # 0-based, into the parameter array
    param: sp.Symbol
    delta: sp.Symbol
    activation: sp.Symbol | None

    @property
    def label(self) -> str:
        """1-based, as in the math: ``W2[1,3]``, ``b1[2]``."""
        return f"{self.array}[{','.join(str(i + 1) for i in self.index)}]"

    @property
    def per_sample(self) -> sp.Expr:
        return self.delta if self.activation is None else self.delta * self.activation

    @property
    def formula_text(self) -> str:
        """The per-sample formula as text, e.g. ``a1_1*delta2_1`` (module comments, ``symprop explain``)."""
        return sp.sstr(self.per_sample)


@dataclass(frozen=True)
class Derivation:
    network: Network
    backward: tuple[Assign, ...]  # delta assignments, output layer first
    upstream: dict[sp.Symbol, sp.Expr]  # hidden delta -> Σ W δ (= ∂C_k/∂a of that neuron)
    local: dict[sp.Symbol, sp.Expr]  # hidden delta -> f'(z) of that neuron
    gradients: tuple[Gradient, ...]

    @property
    def spec(self) -> Spec:
        return self.network.spec

    def definitions(self) -> dict[sp.Symbol, sp.Expr]:
        """Every z, a and delta symbol with its defining expression."""
        return {s.lhs: s.rhs for s in (*self.network.forward, *self.backward)}

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """Write ``expr`` in inputs, targets and parameters only (substitute z, a, delta).

        Each definition is expanded once, bottom-up, and remembered (``_expanded``):
        substituting the whole tree level by level rebuilt and re-simplified every
        Piecewise many times (measured ~30x slower for a 2-2-2 piecewise_linear net).
        """
        defs = self._definitions
        done = self._expanded

        def full(s: sp.Symbol) -> sp.Expr:
            if s not in done:
                rhs = defs[s]
                done[s] = rhs.xreplace({t: full(t) for t in rhs.free_symbols if t in defs})
            return done[s]

        return expr.xreplace({t: full(t) for t in expr.free_symbols if t in defs})

    @cached_property
    def _definitions(self) -> dict[sp.Symbol, sp.Expr]:
        return self.definitions()

    @cached_property
    def _expanded(self) -> dict[sp.Symbol, sp.Expr]:
        return {}

    def delta_text(self, delta: sp.Symbol) -> str:
        """Compact chain-rule formula of one δ as one line of text.

        Shared by the generated modules' comments and ``symprop explain``, e.g.
        ``delta1_2 = dC_k/dz1_2 = (2*a1_2*(1 - a1_2)) * sum_j W2_j_2*delta2_j``.
        """
        l, i = delta.name[len("delta") :].split("_")
        if delta in self.upstream:
            upper = int(l) + 1
            local = sp.sstr(self.local[delta])
            return f"{delta.name} = dC_k/dz{l}_{i} = ({local}) * sum_j W{upper}_j_{i}*delta{upper}_j"
        rhs = next(s.rhs for s in self.backward if s.lhs == delta)
        return f"{delta.name} = dC_k/dz{l}_{i} = {sp.sstr(rhs)}"

    def gradient(self, label: str) -> Gradient:
        """Look up a gradient by its 1-based label, e.g. ``W2[1,3]``."""
        wanted = label.replace(" ", "")
        for g in self.gradients:
            if g.label == wanted:
                return g
        raise KeyError(label)


def derive(spec: Spec) -> Derivation:
    net = build_network(spec)
    L = net.n_layers
    backward: list[Assign] = []
    upstream: dict[sp.Symbol, sp.Expr] = {}
    local_derivative: dict[sp.Symbol, sp.Expr] = {}
    deltas: list[tuple[sp.Symbol, ...]] = [() for _ in range(L + 1)]

    out_deltas = tuple(sym(f"delta{L}_{j}") for j in range(1, spec.outputs + 1))
    if spec.loss == "softmax_ce":
        _, d_exprs, zs, ys = softmax_math(spec.outputs)
        subs = dict(zip(zs, net.z[L], strict=True)) | dict(zip(ys, net.y, strict=True))
        for d, expr in zip(out_deltas, d_exprs, strict=True):
            backward.append(Assign(d, expr.xreplace(subs), "delta"))
    else:
        local = output_math(spec).delta
        for d, aj, zj, yj in zip(out_deltas, net.a[L], net.z[L], net.y, strict=True):
            backward.append(Assign(d, local.xreplace({A: aj, Z: zj, Y: yj}), "delta"))
    deltas[L] = out_deltas

    for l in range(L - 1, 0, -1):
        df = activation_math(spec.layers[l - 1]).df
        layer_deltas = []
        for i in range(spec.layer_sizes[l]):
            d = sym(f"delta{l}_{i + 1}")
            total = linear_sum(tuple(row[i] for row in net.W[l + 1]), deltas[l + 1])
            upstream[d] = total
            local = df.xreplace({A: net.a[l][i], Z: net.z[l][i]})
            local_derivative[d] = local
            backward.append(Assign(d, local * total, "delta"))
            layer_deltas.append(d)
        deltas[l] = tuple(layer_deltas)

    gradients: list[Gradient] = []
    for l in range(1, L + 1):
        for j, dj in enumerate(deltas[l]):
            gradients += [Gradient(f"W{l}", (j, i), net.W[l][j][i], dj, ai) for i, ai in enumerate(net.a[l - 1])]
            gradients.append(Gradient(f"b{l}", (j,), net.b[l][j], dj, None))
    order = {name: k for k, name in enumerate(spec.param_shapes)}
    gradients.sort(key=lambda g: (order[g.array], g.index))
    return Derivation(net, tuple(backward), upstream, local_derivative, tuple(gradients))
