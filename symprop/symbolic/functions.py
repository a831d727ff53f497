"""SymPy functions with the derivative and printing conventions symprop needs.

SymPy's own ``Max``, ``Heaviside`` and ``1/(1+exp(-x))`` either differentiate
to ``DiracDelta``/``Heaviside(0)=1/2`` or print in numerically unstable forms.
These small classes carry the conventions explicitly:

* ``Sigmoid(x)``: 1/(1+e^(-x)), derivative ``Sigmoid(x)*(1 - Sigmoid(x))``,
  printed as a stable helper (no overflow at any x).
* ``Softplus(x)``: log(1+e^x), derivative ``Sigmoid(x)``, printed as
  ``np.logaddexp(0, x)``.
* ``Relu(x)``: max(x, 0), derivative ``Heaviside(x, 0)`` (relu'(0) = 0).
* ``Clip01(x)``: clamps into [eps, 1-eps] (eps: machine epsilon) for ``bce`` on bounded outputs that
  can reach 0 or 1; its derivative is taken as 1 (the gradient passes through).
* ``LogSumExp(x1, ..., xk)``: log Σ e^(xi), printed with the max shift.

``Heaviside`` is SymPy's; its derivative ``DiracDelta`` is replaced by 0
(step' = 0) after every differentiation, see :func:`drop_dirac`.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import log1p

Heaviside = sp.Heaviside
CLIP_EPS = 2.220446049250313e-16  # float64 machine epsilon, as the emitted _clip01 uses for float64
__all__ = [
    "CLIP_EPS",
    "Clip01",
    "Heaviside",
    "LogSumExp",
    "Relu",
    "Select",
    "Sigmoid",
    "Softplus",
    "drop_dirac",
    "log1p",
]


class _Elementwise(sp.Function):
    """Base: a real-valued function of one real argument with an exp form."""

    nargs = 1
    is_real = True

    def _exp_form(self, x: sp.Expr) -> sp.Expr:
        raise NotImplementedError

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self._exp_form(self.args[0])._eval_evalf(prec)

    def _eval_rewrite_as_exp(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return self._exp_form(x)


class Sigmoid(_Elementwise):
    """Logistic function 1/(1+e^(-x))."""

    def _exp_form(self, x: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-x))

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return sp.Rational(1, 2)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self * (1 - self)


class Softplus(_Elementwise):
    """log(1 + e^x)."""

    def _exp_form(self, x: sp.Expr) -> sp.Expr:
        return sp.log(1 + sp.exp(x))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Sigmoid(self.args[0])


class Relu(_Elementwise):
    """max(x, 0) with relu'(0) = 0."""

    def _exp_form(self, x: sp.Expr) -> sp.Expr:
        return sp.Max(x, 0)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)


class Clip01(_Elementwise):
    """Clamp into [CLIP_EPS, 1 - CLIP_EPS]; derivative taken as 1 (pass-through)."""

    def _exp_form(self, x: sp.Expr) -> sp.Expr:
        return sp.Min(sp.Max(x, CLIP_EPS), 1 - CLIP_EPS)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(1)


class LogSumExp(sp.Function):
    """log Σ_i e^(x_i), for softmax cross-entropy."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.exp(self.args[argindex - 1] - self)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return sp.log(sp.Add(*[sp.exp(arg) for arg in self.args]))._eval_evalf(prec)


class Select(sp.Function):
    """``Select(u, condition, safe)``: u where ``condition`` holds, ``safe`` elsewhere, elementwise.

    Guards the argument of a root, log, negative power or exp inside a Piecewise branch, which array
    code evaluates on every element (see :func:`symprop.ir.optimize.guard_branches`).  An opaque
    function, not a Piecewise: SymPy would fold a nested Piecewise with the branch's own condition
    back into the unguarded form."""

    nargs = 3
    is_real = True


def drop_dirac(expr: sp.Expr) -> sp.Expr:
    """Apply the convention step' = 0: every DiracDelta becomes 0."""
    if not expr.has(sp.DiracDelta):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
