"""NumPy backend ``vectorized``: one matrix product per layer and direction, rows = samples.

Prints the layer program: ``Z1 = X @ W1.T``, ``Z1 += b1``, elementwise maps over whole
(n, units) arrays, reductions with ``axis=``.  The error sent down, G = D W, is computed
into the buffer of the δ it becomes (``D1 = D2 @ W2`` then ``D1 *= f'``), and Heaviside
masks multiply as comparisons (``D1 *= (A1 > 0)``): fewer passes and no temporaries.
Relu prints as the module's ``_relu`` (NumPy's maximum is faster against a row of zeros than
against a scalar), row sums over the units as a GEMV with ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import sympy as sp

from symprop.backends.numpy.module import WholeArrays, render, scaled
from symprop.backends.numpy.printer import ArrayPrinter
from symprop.backends.templating import Line
from symprop.ir import program as ir
from symprop.ir.forms import split_masks
from symprop.ir.memory import computed_into, overwritable
from symprop.ir.program import (
    LAYER_VALUES,
    WEIGHTS,
    AddBias,
    Axis,
    Map,
    MatMul,
    N,
    Program,
    Reduce,
    Statement,
    Var,
)
from symprop.symbolic.functions import Relu, Sigmoid, Softplus

# functions the printer writes as one ufunc call f(x) (or f(x, c)), so ", out=x" may be appended
UFUNCS = (Sigmoid, Relu, Softplus, sp.tanh, sp.exp, sp.sin, sp.cos, sp.Abs)


class Vectorized(WholeArrays):
    mode = "vectorized"
    target = "numpy"
    context = ""
    docs: Mapping[str, str] = MappingProxyType({})

    def __init__(self, program: Program) -> None:
        self.spec = program.spec
        # G (the error sent down, D W) lives in the buffer of the δ it becomes; an activation
        # overwrites its pre-activation when nothing reads it later (both decided by the IR)
        self.alias: dict[sp.Symbol, str] = {g: d.name for g, d in computed_into(program).items()}
        self.dead_after_forward = overwritable(program)

    def printer(self, program: Program) -> ArrayPrinter:
        p = ArrayPrinter(self.alias, "np")
        p.relu_helper = True
        return p

    def name(self, v: Var, p: ArrayPrinter) -> str:
        return p.name(v.symbol)

    def shape(self, v: Var, p: ArrayPrinter) -> str:
        return f"({p.need('n')}, {self.spec.layer_sizes[v.layer]})"

    def statement(self, s: Statement, p: ArrayPrinter) -> list[Line]:
        out = self.name(s.out, p)
        if isinstance(s, MatMul):
            if s.left_t and not s.right_t:
                # dW = D.T @ A: np.dot, not @. At n = 1 this is an outer product, which NumPy's matmul
                # runs 3-6x slower than np.dot (193 vs 18.5 us for 256 x 784, float32); alike at n > 1
                right = p.name(s.right.symbol)
                return [Line(f"{out} = np.dot({p.name(s.left.symbol)}.T, {right})", s.note.render())]
            return [self.matmul(s, p)]
        if isinstance(s, AddBias):
            return [Line(f"{out} += {self.name(s.bias, p)}", s.note.render())]
        if isinstance(s, Map):
            return self.map(s, out, p)
        if isinstance(s, Reduce):
            return [Line(f"{out} = {self.reduce(s, p)}", s.note.render())]
        raise TypeError(f"the vectorized backend prints no {type(s).__name__}")

    def map(self, s: Map, out: str, p: ArrayPrinter) -> list[Line]:
        if WEIGHTS.symbol in s.expr.free_symbols <= {N.symbol, WEIGHTS.symbol} and s.out.kind in LAYER_VALUES:
            # a constant times the sample weights (a column, or 1.0): spread over the layer's units
            ones = f"np.ones({self.shape(s.out, p)}, dtype={p.need('dtype')})"
            return [Line(f"{out} = ({p.code(s.expr)}) * {ones}", s.note.render())]
        if s.expr.free_symbols <= {N.symbol}:
            if s.out.math_kind not in LAYER_VALUES:
                return [Line(f"{out} = {p.code(s.expr)}", s.note.render())]
            fill = "np.zeros" if s.expr == 0 else "np.ones" if s.expr == 1 else None
            shape, dtype = self.shape(s.out, p), p.need("dtype")
            code = f"{fill}({shape}, dtype={dtype})" if fill else f"np.full({shape}, {p.code(s.expr)}, dtype={dtype})"
            return [Line(f"{out} = {code}", s.note.render())]
        factors = sp.Mul.make_args(s.expr)
        inplace = [f for f in factors if f in self.alias and self.alias[f] == out]
        if inplace:  # D = G * f'(...): scale the buffer in place, factor by factor, masks as comparisons
            rest, masks = split_masks(sp.Mul(*[f for f in factors if f not in inplace]))
            coeff, terms = rest.as_coeff_mul()
            parts = [*terms, coeff] if coeff != 1 else list(terms)
            lines = [Line(f"{out} *= {p.code(part)}") for part in parts]
            lines += [Line(f"{out} *= {p.comparison(m)}") for m in masks]
            if not lines:
                return []
            return [Line(lines[0].code, s.note.render()), *lines[1:]]
        code = p.code(s.expr)
        if self.reuses(s):  # f(Z) where Z is not needed later: write into Z's buffer
            code = f"{code[:-1]}, out={p.name(s.expr.args[0])})"
        return [Line(f"{out} = {code}", s.note.render())]

    def reuses(self, s: Map) -> bool:
        """``s`` applies one ufunc-printed function to a forward array that nothing reads later."""
        if not isinstance(s.expr, UFUNCS) or len(s.expr.args) != 1:
            return False
        arg = s.expr.args[0]
        return isinstance(arg, sp.Symbol) and arg in self.dead_after_forward

    def reduce(self, s: Reduce, p: ArrayPrinter) -> str:
        factors = sp.Mul.make_args(s.expr)
        # a dot product of two arrays (not of the weights, which may be the scalar 1.0)
        if (
            s.axis is Axis.ALL
            and len(factors) == 2
            and all(isinstance(f, sp.Symbol) and f != WEIGHTS.symbol for f in factors)
        ):
            return self.reduction(s, p, "np", f"np.vdot({', '.join(p.name(f) for f in factors)})")
        if s.axis is Axis.BATCH and isinstance(s.expr, sp.Symbol):
            # a bias gradient, the column sums of D, as the product ones(n) D: OpenBLAS's GEMV takes
            # 6 us for 256 x 256 float32 where np.sum(D, axis=0) takes 19-27 us (and never more at n < 256)
            ones = f"np.ones({p.need('n')}, {p.need('dtype')})"
            return scaled(f"np.dot({ones}, {p.name(s.expr)})", s.scale, p)
        if s.axis is Axis.UNITS and s.op is ir.ReduceOp.SUM and isinstance(s.expr, sp.Symbol):
            # row sums of an (n, k) array (softmax's S, the targets' sum) as the GEMV x @ ones(k, 1):
            # 3 us for 256 x 10 float32 where np.sum(x, axis=1, keepdims=True) takes 10 us
            x = p.name(s.expr)
            return scaled(f"{x} @ np.ones(({x}.shape[1], 1), {p.need('dtype')})", s.scale, p)
        return self.reduction(s, p, "np")


def render_vectorized(program: Program) -> str:
    return render(program, Vectorized(program))


__all__ = ["Vectorized", "render_vectorized"]
