"""The scalar math of one neuron, derived by SymPy on scalars.

For each layer: the activation a = f(z) and its derivative f'(z), rewritten in
terms of the saved activation ``a`` where that is exact and cheaper
(σ' = β a (1 − a), tanh' = 1 − a²).  For the output layer: the per-unit loss
ℓ(a, y) and δ = ∂ℓ/∂z.  Before anything is differentiated, a named table of
numerically stabilising rewrites is applied (``REWRITES``); the names of those
that fired are recorded so the generated module can list them.

:mod:`symprop.ir.backprop` composes these scalar expressions into the layer program.
Nothing here knows about layer sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType

import sympy as sp
from sympy.calculus.util import function_range

from symprop.spec import Layer, Spec, SpecError
from symprop.spec.registry import ACTIVATIONS, LOSSES
from symprop.spec.safe_expr import parse_expr
from symprop.symbolic.bounded import optional
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus, drop_dirac, log1p

Z = sp.Symbol("z", real=True)
A = sp.Symbol("a", real=True)
Y = sp.Symbol("y", real=True)
X = sp.Symbol("x", real=True)


# ---------------------------------------------------------------- rewrites --
@dataclass(frozen=True)
class Rewrite:
    """A named, exact identity that makes an expression numerically stable."""

    name: str
    formula: str
    apply: Callable[[sp.Expr], sp.Expr]


def _sigmoid_form(e: sp.Expr) -> sp.Expr:
    """1/(1 + exp(-u)) -> Sigmoid(u)."""

    def match(p: sp.Basic) -> bool:
        return (
            isinstance(p, sp.Pow)
            and p.exp == -1
            and isinstance(p.base, sp.Add)
            and len(p.base.args) == 2
            and sp.Integer(1) in p.base.args
            and any(isinstance(t, sp.exp) for t in p.base.args)
        )

    def repl(p: sp.Basic) -> sp.Expr:
        (ex,) = [t for t in p.base.args if isinstance(t, sp.exp)]
        return Sigmoid(-ex.args[0])

    e = e.replace(match, repl)
    # exp(u)/(1 + exp(u)) is now exp(u)*Sigmoid(-u): fold it to Sigmoid(u)
    return e.replace(
        lambda p: isinstance(p, sp.Mul) and any(_exp_times_sigmoid(p, t) for t in p.args),
        lambda p: _fold_exp_sigmoid(p),
    )


def _exp_times_sigmoid(p: sp.Mul, t: sp.Basic) -> bool:
    return isinstance(t, Sigmoid) and sp.exp(-t.args[0]) in p.args


def _fold_exp_sigmoid(p: sp.Mul) -> sp.Expr:
    sig = next(t for t in p.args if _exp_times_sigmoid(p, t))
    rest = list(p.args)
    rest.remove(sig)
    rest.remove(sp.exp(-sig.args[0]))
    return sp.Mul(Sigmoid(-sig.args[0]), *rest)


def _one_minus_sigmoid(e: sp.Expr) -> sp.Expr:
    """1 - Sigmoid(u) -> Sigmoid(-u) (no cancellation when Sigmoid(u) is near 1)."""

    def match(p: sp.Basic) -> bool:
        return isinstance(p, sp.Add) and sp.Integer(1) in p.args and any(_neg_sigmoid(t) for t in p.args)

    def repl(p: sp.Basic) -> sp.Expr:
        terms = list(p.args)
        terms.remove(sp.Integer(1))
        first = next(t for t in terms if _neg_sigmoid(t))
        terms.remove(first)
        return sp.Add(Sigmoid(-(-first).args[0]), *terms)

    return e.replace(match, repl)


def _neg_sigmoid(t: sp.Basic) -> bool:
    return isinstance(-t, Sigmoid)


def _log_sigmoid(e: sp.Expr) -> sp.Expr:
    """log(Sigmoid(u)) -> -Softplus(-u)."""
    return e.replace(
        lambda p: isinstance(p, sp.log) and isinstance(p.args[0], Sigmoid),
        lambda p: -Softplus(-p.args[0].args[0]),
    )


def _softplus_form(e: sp.Expr) -> sp.Expr:
    """log(1 + exp(u)) -> Softplus(u) (logaddexp: no overflow)."""
    return e.replace(
        lambda p: (
            isinstance(p, sp.log)
            and isinstance(p.args[0], sp.Add)
            and len(p.args[0].args) == 2
            and sp.Integer(1) in p.args[0].args
            and any(isinstance(t, sp.exp) for t in p.args[0].args)
        ),
        lambda p: Softplus(next(t for t in p.args[0].args if isinstance(t, sp.exp)).args[0]),
    )


def _log1p_form(e: sp.Expr) -> sp.Expr:
    """log(1 + u) -> log1p(u) (accurate for small u)."""
    return e.replace(
        lambda p: isinstance(p, sp.log) and isinstance(p.args[0], sp.Add) and sp.Integer(1) in p.args[0].args,
        lambda p: log1p(p.args[0] - 1),
    )


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("sigmoid", "1/(1+exp(-u)) -> sigmoid(u), exp(u)/(1+exp(u)) -> sigmoid(u)", _sigmoid_form),
    Rewrite("one_minus_sigmoid", "1 - sigmoid(u) -> sigmoid(-u)", _one_minus_sigmoid),
    Rewrite("log_sigmoid", "log(sigmoid(u)) -> -softplus(-u)", _log_sigmoid),
    Rewrite("softplus", "log(1+exp(u)) -> softplus(u)", _softplus_form),
    Rewrite("log1p", "log(1+u) -> log1p(u)", _log1p_form),
)


def apply_rewrites(expr: sp.Expr) -> tuple[sp.Expr, tuple[str, ...]]:
    """Apply every rewrite of ``REWRITES`` in order; return the result and the names that fired."""
    fired = []
    for rewrite in REWRITES:
        new = rewrite.apply(expr)
        if new != expr:
            fired.append(rewrite.name)
            expr = new
    return expr, tuple(fired)


# ------------------------------------------------------------- activations --
def param_symbol(name: str, l: int) -> sp.Symbol:
    """An activation parameter of layer l kept as a symbol (``--symbolic-params``): the spec key
    and the layer, ``beta_2`` (printed β₂), so that two layers' parameters never merge."""
    return sp.Symbol(f"{name}_{l}", real=True)


def param_values(layer: Layer, l: int) -> dict[sp.Symbol, float]:
    """The layer's numeric parameters by symbol: what a symbolic formula stands for."""
    return {param_symbol(k, l): float(v) for k, v in layer.params if isinstance(v, float)} | {
        param_symbol(p.name, l): float(p.default)
        for p in ACTIVATIONS[layer.activation].params
        if p.default is not None and p.name not in dict(layer.params)
    }


def activation_expr(layer: Layer, x: sp.Symbol = Z, symbolic_layer: int = 0) -> sp.Expr:
    """f(x) for a validated layer, from its registry formula, with its parameters as numbers
    (or, given the layer's number ``symbolic_layer``, as symbols: beta_2, mu_1, sigma_1, ...)."""
    entry = ACTIVATIONS[layer.activation]
    if entry.formula is None:  # custom: the spec's (canonical) expression text, parsed again
        expr = parse_expr(str(layer.param("expr")), {"x": X}, "expr")
        return apply_rewrites(expr)[0].xreplace({X: x})

    def value(name: str) -> sp.Expr:
        return param_symbol(name, symbolic_layer) if symbolic_layer else _num(layer.number(name))

    def optional(name: str) -> sp.Expr | None:
        return None if layer.param(name) is None else value(name)

    return entry.formula(x, value, optional)


def number(value: float) -> sp.Expr:
    """A spec number as SymPy: integers stay exact (2.0 -> 2), others are Floats."""
    return _num(value)


def _num(value: float) -> sp.Expr:
    """A spec number as SymPy: integers stay exact (2.0 -> 2), others are Floats."""
    return sp.Integer(int(value)) if float(value).is_integer() and abs(value) < 2**53 else sp.Float(repr(value), 30)


def _sigmoid_symmetry(e: sp.Expr) -> sp.Expr:
    """Sigmoid(-u) -> 1 - Sigmoid(u), so derivatives collapse onto the saved a."""
    return e.replace(
        lambda p: isinstance(p, Sigmoid) and p.args[0].could_extract_minus_sign(),
        lambda p: 1 - Sigmoid(-p.args[0]),
    )


_PROBE_Z = (-2.3, -0.71, 0.37, 1.9, 3.1)
_PROBE_Y = (0.0, 0.3, 1.0)


def _evaluate(expr: sp.Expr, values: dict[sp.Symbol, float]) -> float | None:
    try:
        v = complex(expr.xreplace({k: sp.Float(v) for k, v in values.items()}).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if v.imag != 0 or not math.isfinite(v.real):
        return None
    return v.real


def _agrees(
    candidate: sp.Expr, reference: sp.Expr, f: sp.Expr, params: Mapping[sp.Symbol, float] = MappingProxyType({})
) -> bool:
    """Numerically check ``candidate`` (in a, z, y) equals ``reference`` (in z, y) with a = f(z);
    ``params`` gives values to parameters kept as symbols."""
    checked = 0
    for zv in _PROBE_Z:
        av = _evaluate(f, {**params, Z: zv})
        if av is None:
            continue
        for yv in _PROBE_Y:
            want = _evaluate(reference, {**params, Z: zv, Y: yv})
            got = _evaluate(candidate, {**params, Z: zv, Y: yv, A: av})
            if want is None or got is None:
                continue
            if abs(want - got) > 1e-12 * max(1.0, abs(want)):
                return False
            checked += 1
    return checked >= 3


def _cost(e: sp.Expr) -> tuple[int, int, str]:
    """Fewest operations first; among equals, fewest powers (a*(1 - a) over a - a**2), then text."""
    return (sp.count_ops(e), sum(1 for p in sp.preorder_traversal(e) if isinstance(p, sp.Pow)), sp.srepr(e))


MAX_FORM_SEARCH_OPS = 120  # larger derivatives are used as derived: factoring and probing them costs minutes


def _relu_mask_of_a(d: sp.Expr, f: sp.Expr) -> list[sp.Expr]:
    """relu's step θ(z) as θ(a), a = max(z, 0): a > 0 exactly when z > 0 (a NaN z gives a NaN a),
    so θ(z, 0) = θ(a, 0) for every z. With the mask read from a, z is dead after the forward pass
    and a takes its buffer. Not θ(z, 1): a >= 0 always holds."""
    step = sp.Heaviside(Z, 0)
    if f != Relu(Z) or not d.has(step):
        return []
    return [d.xreplace({step: sp.Heaviside(A, 0)})]


def in_terms_of_a(derivative: sp.Expr, f: sp.Expr, params: Mapping[sp.Symbol, float] = MappingProxyType({})) -> sp.Expr:
    """Rewrite a derivative in z using the saved activation a = f(z), if exact and not costlier.

    Bounded: a derivative of more than MAX_FORM_SEARCH_OPS operations (12 nested tanh) is kept
    as derived, in z; the search (substitution, factoring, numeric probes) would take minutes.
    Each SymPy step of the search is bounded by size and time (:mod:`symprop.symbolic.bounded`);
    one given up leaves its candidate out."""
    d = drop_dirac(_sigmoid_symmetry(derivative))
    if sp.count_ops(d) > MAX_FORM_SEARCH_OPS:
        return d
    what = f"the derivative {sp.sstr(d)[:60]}"
    candidates = [d, *_relu_mask_of_a(d, f)]
    if f != Z:
        subs = [optional(what, d.subs, f, A)]
        # f = c*g(z) with a Float c (a gaussian's 1/(sigma*sqrt(2*pi))): subs misses g, so
        # replace g by a/c directly
        coeff, rest = f.as_independent(Z, as_Add=False)
        if coeff != 0 and rest != Z and rest.has(Z) and d.has(rest):
            subs.append(d.xreplace({rest: A / coeff}))
        for sub in subs:
            if sub is not None and sub != d and _agrees(sub, d, f, params):
                candidates += [sub, optional(what, sp.factor, sub, size=sub), optional(what, sp.expand, sub, size=sub)]
    if sp.count_ops(d) <= 40:
        simple = optional(what, sp.simplify, d, size=d)
        if simple is not None:
            candidates.append(simple)
            if f != Z:
                sub = optional(what, simple.subs, f, A)
                if sub is not None and sub != simple and _agrees(sub, d, f, params):
                    candidates += [sub, optional(what, sp.factor, sub, size=sub)]
    return min((c for c in candidates if c is not None), key=_cost)


@dataclass(frozen=True)
class ActivationMath:
    """a = f(z) and f'(z), the latter in terms of the saved a where possible."""

    activation: str
    f: sp.Expr
    df: sp.Expr
    rewrites: tuple[str, ...]

    @property
    def blocks_gradient(self) -> bool:
        return self.df == 0


def activation_math(layer: Layer, symbolic_layer: int = 0) -> ActivationMath:
    """f and f' of a layer; given its number ``symbolic_layer``, with its parameters as symbols
    (for explain and report; generated code always has the numbers).

    Cached by activation and parameters, not by width: a 3-unit and a 64-unit sigmoid layer share
    one derivation (the range proofs and form searches take most of a derive)."""
    return _activation_math(replace(layer, units=1), symbolic_layer)


@lru_cache(maxsize=256)
def _activation_math(layer: Layer, symbolic_layer: int) -> ActivationMath:
    f = activation_expr(layer, symbolic_layer=symbolic_layer)
    rewrites: tuple[str, ...] = ()
    if layer.activation == "custom":
        raw = parse_expr(str(layer.param("expr")), {"x": X}, "expr")
        rewrites = apply_rewrites(raw)[1]
    df = in_terms_of_a(sp.diff(f, Z), f, param_values(layer, symbolic_layer) if symbolic_layer else {})
    return ActivationMath(layer.activation, f, df, rewrites)


# ------------------------------------------------------------------ losses --
def per_unit_loss(spec: Spec) -> sp.Expr:
    """ℓ(a, y) for one output unit (not used for softmax_ce), from the registry or the spec's text."""
    return _per_unit_loss(spec.loss, str(spec.loss_expr))


def _per_unit_loss(loss: str, loss_expr: str) -> sp.Expr:
    if loss == "custom":
        return parse_expr(loss_expr, {"a": A, "y": Y}, "loss_expr")
    per_unit = LOSSES[loss].per_unit
    if per_unit is None:
        raise SpecError(f"loss {loss!r} has no per-unit form")
    return per_unit(A, Y)


@dataclass(frozen=True)
class OutputMath:
    """The output layer's per-unit loss, ∂ℓ/∂a (None when fused in z) and δ = ∂ℓ/∂z (in a, z, y)."""

    loss: sp.Expr
    delta: sp.Expr
    fused: bool
    clipped: bool
    rewrites: tuple[str, ...]
    dloss_da: sp.Expr | None = None


RANGE_PROOF_MAX_OPS = 80
_RANGE_SLACK = 1e-12  # excursions this small are removed by the clip to [eps, 1 - eps] anyway


def _pieces(f: sp.Expr) -> list[tuple[sp.Expr, sp.Set]]:
    """f over the reals as (expression, domain) pieces: Heaviside, Abs, Max, Min made Piecewise."""
    g = f.rewrite(sp.exp) if f.has(Sigmoid, Softplus, Relu) else f
    g = sp.piecewise_fold(g.rewrite(sp.Piecewise))
    if not isinstance(g, sp.Piecewise):
        return [(g, sp.S.Reals)]
    pieces, remaining = [], sp.S.Reals
    for expr, cond in g.args:
        where = remaining if cond is sp.true else sp.Intersection(cond.as_set(), remaining)
        remaining = sp.Complement(remaining, where)
        pieces.append((expr, where))
    return pieces


@lru_cache(maxsize=256)
def _output_range_ok(f: sp.Expr) -> bool:
    """Prove with SymPy (``function_range``, bounded in size and time, in any thread) that f maps the
    reals into [0, 1]; False when the range leaves it or cannot be established (then bce is refused)."""
    if sp.count_ops(f) > RANGE_PROOF_MAX_OPS:
        return False
    return optional(f"the range of {sp.sstr(f)[:60]}", _range_in_unit, f, size=f) is True


def _range_in_unit(f: sp.Expr) -> bool:
    unit = sp.Interval(-_RANGE_SLACK, 1 + _RANGE_SLACK)
    for expr, where in _pieces(f):
        if where is sp.S.EmptySet:
            continue
        if isinstance(where, sp.FiniteSet):
            values = sp.FiniteSet(*[expr.subs(Z, point) for point in where])
        else:
            values = function_range(expr, Z, where)
        if values.is_subset(unit) is not True:
            return False
    return True


def output_math(spec: Spec, symbolic: bool = False) -> OutputMath:
    """The output layer's loss and δ; ``symbolic`` keeps the output activation's parameters as symbols.

    Cached by what it depends on (the loss and the last layer's activation), so specs that differ
    only in their hidden layers or widths share one derivation."""
    if spec.loss == "softmax_ce":
        raise SpecError("softmax_ce has no per-unit form; see softmax_math")
    out = spec.layers[-1]
    symbolic_layer = len(spec.layers) if symbolic else 0
    f = activation_math(out, symbolic_layer).f
    if spec.loss == "bce" and not isinstance(f, Sigmoid) and not _output_range_ok(activation_math(out).f):
        raise SpecError(
            f"{spec.source}: loss bce needs outputs inside (0, 1), but symprop can't prove the last activation "
            f"{out.activation!r} stays in [0, 1] (SymPy finds a wider range or none); "
            'use activation = "sigmoid" on the last layer'
        )
    return _output_math(spec.loss, str(spec.loss_expr), replace(out, units=1), symbolic_layer)


@lru_cache(maxsize=256)
def _output_math(loss_name: str, loss_expr: str, out: Layer, symbolic_layer: int) -> OutputMath:
    f = activation_math(out, symbolic_layer).f
    params = param_values(out, symbolic_layer) if symbolic_layer else {}
    ell = _per_unit_loss(loss_name, loss_expr)
    clipped = False
    if loss_name == "bce" and not isinstance(f, Sigmoid):
        ell = ell.xreplace({A: Clip01(A)})
        clipped = True
    loss_ak, fired_a = apply_rewrites(ell)
    fused_z, fired_z = apply_rewrites(ell.xreplace({A: f}))
    fused = any(name in fired_z for name in ("log_sigmoid", "one_minus_sigmoid", "softplus"))
    if fused:
        delta_z = drop_dirac(sp.diff(fused_z, Z))
        loss, fired = fused_z, fired_z
    else:
        delta_z = drop_dirac(sp.diff(ell.xreplace({A: f}), Z))
        loss, fired = loss_ak, fired_a
    delta = in_terms_of_a(delta_z, f, params)
    if not fused:
        # Chain rule through the saved a: ∂ℓ/∂a · f'(z) can be cheaper than the z form.
        chained = sp.diff(loss_ak, A) * activation_math(out, symbolic_layer).df
        if _cost(chained) < _cost(delta) and _agrees(chained, delta_z, f, params):
            delta = chained
    dloss_da = sp.diff(_per_unit_loss(loss_name, loss_expr), A)  # of the loss as defined, for showing the chain rule
    if dloss_da.is_rational_function(A, Y):  # 2*(a - y) rather than 2*a - 2*y
        dloss_da = optional("the loss's derivative", sp.factor, dloss_da, size=dloss_da) or dloss_da
    return OutputMath(loss, delta, fused, clipped, fired, dloss_da)


P = sp.Symbol("p", real=True)  # softmax(z)_j of the unit at hand
SY = sp.Symbol("sy", real=True)  # Σ_j y_j of the sample


def softmax_math(k: int) -> tuple[sp.Expr, list[sp.Expr], list[sp.Symbol], list[sp.Symbol]]:
    """Softmax cross-entropy over k logits: (loss, deltas, z symbols, y symbols).

    C = LSE(z)·Σy − Σ y_j z_j (= −Σ y_j log softmax(z)_j); δ_j = ∂C/∂z_j is derived by
    SymPy (LogSumExp's derivative is the softmax): softmax_j·Σy − y_j, which is
    softmax − y for one-hot (or any Σy = 1) targets.
    """
    zs = [sp.Symbol(f"z{j}", real=True) for j in range(1, k + 1)]
    ys = [sp.Symbol(f"y{j}", real=True) for j in range(1, k + 1)]
    lse = LogSumExp(*zs)
    total = sp.Add(*ys)
    loss = lse * total - sp.Add(*[y * z for y, z in zip(ys, zs, strict=True)])
    deltas = [sp.diff(loss, z) for z in zs]
    return loss, deltas, zs, ys


@lru_cache(maxsize=16)
def softmax_delta(k: int) -> sp.Expr:
    """δ of one unit in p = softmax(z)_j, Σy and that unit's y (symbols P, SY, Y), from softmax_math."""
    _, deltas, zs, ys = softmax_math(k)
    lse, total = LogSumExp(*zs), sp.Add(*ys)
    delta = deltas[0].xreplace({sp.exp(zs[0] - lse): P}).xreplace({total: SY}).xreplace({ys[0]: Y})
    if not delta.free_symbols <= {P, SY, Y}:
        raise ValueError(f"softmax delta did not reduce to softmax and the sum of y: {delta}")
    return delta


def clear_caches() -> None:
    """Forget the cached activation and output math, so the next derivation runs SymPy again."""
    for cached in (_activation_math, _output_math, _output_range_ok, softmax_delta):
        cached.cache_clear()


def gradient_warnings(spec: Spec) -> list[str]:
    """Human warnings about layers through which no gradient flows."""
    notes = []
    for l, layer in enumerate(spec.layers, start=1):
        if activation_math(layer).blocks_gradient:
            below = "layers 1-" + str(l) if l > 1 else "layer 1"
            notes.append(
                f"layer {l} uses {layer.activation!r}, whose derivative is 0: "
                f"no gradient flows to the parameters of {below}"
            )
    return notes
