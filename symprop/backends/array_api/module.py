"""The array-API backend: the layer program over arrays of any namespace, with no in-place writes.

Every function binds ``xp`` to the namespace of its inputs (``array_api_compat.array_namespace``)
and prints the same statements as the NumPy vectorized backend, functionally: ``Z1 = Z1 + b1``
rather than ``+=``, ``D1 = G1 * f'(...)`` rather than scaling a buffer, so immutable arrays
(JAX) work and Dask stays lazy.  Results stay in the namespace: ``loss`` returns a 0-d array.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import sympy as sp

from symprop.backends.array_api.printer import XpPrinter
from symprop.backends.numpy.module import WholeArrays, render
from symprop.backends.numpy.printer import ArrayPrinter
from symprop.backends.templating import Line
from symprop.ir import program as ir
from symprop.ir.memory import fuse
from symprop.ir.names import Kind
from symprop.ir.program import (
    LAYER_VALUES,
    WEIGHTS,
    AddBias,
    Map,
    MatMul,
    N,
    Program,
    Reduce,
    Statement,
)


class ArrayApi(WholeArrays):
    mode = "array-api"
    target = "array-api"
    context = "xp, "
    docs: Mapping[str, str] = MappingProxyType(
        {
            "loss": "C = (1/n) * sum over the batch of C_k, a 0-d array of the inputs' namespace.",
            "loss_and_grad": "(C, grads): C a 0-d array, grads[name] = dC/dname (the batch mean), in X's namespace.",
        }
    )

    def __init__(self, program: Program) -> None:
        self.spec = program.spec
        # Z = A Wᵀ with the bias add right after it (the IR's fusion): one _affine call, which a
        # namespace with addmm (torch) runs as one GEMM with the bias inside
        products = [(s.stmt, s.bias) for f in program.functions for s in fuse(f.body) if isinstance(s.stmt, MatMul)]
        alone = {m.out.symbol for m, bias in products if bias is None}  # a product without its bias somewhere
        self.affine: dict[sp.Symbol, ir.Var] = {
            m.out.symbol: bias
            for m, bias in products
            if bias is not None and not m.left_t and m.right_t and m.out.symbol not in alone
        }

    def printer(self, program: Program) -> ArrayPrinter:
        return XpPrinter({}, "xp")

    def statement(self, s: Statement, p: ArrayPrinter) -> list[Line]:
        out = p.name(s.out.symbol)
        note = s.note.render()
        if isinstance(s, MatMul):
            if s.left_t and not s.right_t:  # dW = D.T @ A: an outer product at n = 1, see _t_matmul
                return [Line(f"{out} = _t_matmul(xp, {p.name(s.left.symbol)}, {p.name(s.right.symbol)})", note)]
            bias = self.affine.get(s.out.symbol)
            if bias is not None:
                args = ", ".join(p.name(v.symbol) for v in (s.left, s.right, bias))
                return [Line(f"{out} = {p.helper('_affine')}(xp, {args})", note)]
            return [self.matmul(s, p)]
        if isinstance(s, AddBias):
            if self.affine.get(s.out.symbol) == s.bias:
                return []  # added by _affine
            return [Line(f"{out} = {out} + {p.name(s.bias.symbol)}", note)]
        if isinstance(s, Map):
            pair = sigmoid_grad(s)
            if pair is not None:
                g, a = (p.name(v) for v in pair)
                return [Line(f"{out} = {p.helper('_sigmoid_grad')}(xp, {g}, {a})", note)]
            if WEIGHTS.symbol in s.expr.free_symbols <= {N.symbol, WEIGHTS.symbol} and s.out.math_kind in LAYER_VALUES:
                # a constant times the sample weights (a column, or 1.0): spread over the layer's units
                shape = f"({p.need('n')}, {self.spec.layer_sizes[s.out.layer]})"
                ones = f"xp.ones({shape}, dtype=X.dtype, device=X.device)"
                return [Line(f"{out} = ({p.code(s.expr)}) * {ones}", note)]
            if s.expr.free_symbols <= {N.symbol} and s.out.math_kind in LAYER_VALUES:
                shape = f"({p.need('n')}, {self.spec.layer_sizes[s.out.layer]})"
                value = p.code(s.expr)
                return [Line(f"{out} = xp.full({shape}, {value}, dtype=X.dtype, device=X.device)", note)]
            return [Line(f"{out} = {p.code(s.expr)}", note)]
        if isinstance(s, Reduce):
            return [Line(f"{out} = {self.reduce(s, p)}", note)]
        raise TypeError(f"the array-api backend prints no {type(s).__name__}")

    def reduce(self, s: Reduce, p: ArrayPrinter) -> str:
        return self.reduction(s, p, "xp")

    def cost(self, name: str) -> str:
        return name  # a 0-d array of the inputs' namespace (float() would leave the device)


def sigmoid_grad(s: Map) -> tuple[sp.Symbol, sp.Symbol] | None:
    """(G, A) when the map is δ = G ⊙ a(1 - a), σ' through the saved a (equal after expansion)."""
    symbols = sorted(s.expr.free_symbols, key=sp.default_sort_key)
    if s.out.kind is not Kind.DELTA or len(symbols) != 2:
        return None
    for g, a in (symbols, symbols[::-1]):
        if sp.expand(s.expr - g * a * (1 - a)) == 0:
            return g, a
    return None


def render_array_api(program: Program) -> str:
    return render(program, ArrayApi(program))


__all__ = ["ArrayApi", "render_array_api"]
