"""Backpropagation, written once: the layer-level :class:`Program` of a spec.

Per layer l = 1..L (A⁰ = X, rows are samples; n is the batch size):

* forward:  Zˡ = Aˡ⁻¹ Wˡᵀ + bˡ,  Aˡ = fˡ(Zˡ);
* loss:     C = (1/n) Σ_k C_k, C_k = Σ_j ℓ(a_j, z_j, y_j) (or softmax cross-entropy over the row);
* backward: Dᴸ = δᴸ/n with δᴸ = ∂C_k/∂zᴸ;  ∂C/∂Wˡ = Dˡᵀ Aˡ⁻¹;  ∂C/∂bˡ = Σ_batch Dˡ;
            Gˡ⁻¹ = Dˡ Wˡ (= ∂C/∂Aˡ⁻¹);  Dˡ⁻¹ = Gˡ⁻¹ ⊙ fˡ⁻¹'(Zˡ⁻¹).

D is ∂C/∂Z for the batch cost, δ/n: the 1/n of the mean is applied once, at the output,
so every product below it is a plain matrix product.  Only scalar functions are
differentiated (each activation's f, the per-unit loss, softmax cross-entropy over
symbols), in :mod:`symprop.symbolic.layer_math`; this module composes them.
Each statement carries its formula as a note: the generated modules' comments and
``symprop explain`` print these texts.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from symprop.ir.forms import choose_form, split_masks
from symprop.ir.notes import C_K, N_REF, Act, Deriv, Ell, Op, Partial, note, ref
from symprop.ir.notes import C as C_REF
from symprop.ir.program import (
    WEIGHTS,
    AddBias,
    Axis,
    Function,
    Granularity,
    Kind,
    LayerMath,
    Map,
    MatMul,
    N,
    OutputMath,
    Program,
    Reduce,
    ReduceOp,
    Role,
    Statement,
    Var,
    bias_var,
    grad_var,
    weight_var,
)
from symprop.spec import Spec
from symprop.symbolic import layer_math as lm


def layer_vars(l: int) -> tuple[Var, Var]:
    """(Zˡ, Aˡ); A⁰ is X."""
    return Var(f"Z{l}", Kind.Z, l), Var(f"A{l}", Kind.A, l)


def inputs_of(l: int) -> Var:
    return Var("X", Kind.INPUT) if l == 1 else Var(f"A{l - 1}", Kind.A, l - 1)


def _math(expr: sp.Expr, l: int) -> sp.Expr:
    """A formula in the math's references (z2, a2, y), for notes."""
    return expr.xreplace({lm.Z: ref(Kind.Z, l), lm.A: ref(Kind.A, l), lm.Y: ref(Kind.TARGET)})


def _below(l: int) -> sp.Symbol:
    """aˡ⁻¹ in a note: x for the first layer."""
    return ref(Kind.INPUT) if l == 1 else ref(Kind.A, l - 1)


def layers_math(spec: Spec, symbolic: bool = False) -> tuple[LayerMath, ...]:
    out = []
    for l, layer in enumerate(spec.layers, start=1):
        act = lm.activation_math(layer, l if symbolic else 0)
        out.append(LayerMath(l, layer.units, layer.describe(), act.f, act.df))
    return tuple(out)


def output_math(spec: Spec, symbolic: bool = False) -> OutputMath:
    if spec.loss == "softmax_ce":
        loss, _, _, _ = lm.softmax_math(spec.outputs)
        return OutputMath(loss, lm.softmax_delta(spec.outputs), fused=True, clipped=False, rewrites=())
    return lm.output_math(spec, symbolic)


def rewrites_fired(spec: Spec) -> tuple[str, ...]:
    names = [name for layer in spec.layers for name in lm.activation_math(layer).rewrites]
    if spec.loss != "softmax_ce":
        names += lm.output_math(spec).rewrites
    return tuple(dict.fromkeys(names))


def _forward(spec: Spec, layers: tuple[LayerMath, ...]) -> list[Statement]:
    body: list[Statement] = []
    for lay in layers:
        l = lay.l
        Zl, Al = layer_vars(l)
        W, b = weight_var(l), bias_var(l)
        z = ref(Kind.Z, l)
        text = note(z, Op.EQ, ref(Kind.WEIGHT, l), Op.PRODUCT, _below(l), Op.PLUS, ref(Kind.BIAS, l))
        body.append(MatMul(Zl, inputs_of(l), W, False, True, Role.FORWARD, text))
        body.append(AddBias(Zl, b, Role.FORWARD))
        text = note(ref(Kind.A, l), Op.EQ, Act(l, 0, z), Op.EQ, _math(lay.f, l))
        body.append(Map(Al, lay.f.xreplace({lm.Z: Zl.symbol}), Role.FORWARD, text))
    return body


def _at_output(expr: sp.Expr, L: int) -> sp.Expr:
    Z, A = layer_vars(L)
    return expr.xreplace({lm.Z: Z.symbol, lm.A: A.symbol, lm.Y: Var("Y", Kind.TARGET).symbol})


def _loss(spec: Spec, out: OutputMath, weighted: bool = False) -> tuple[list[Statement], list[Statement]]:
    """(statements computing C, statements computing Dᴸ after them).

    ``weighted``: each sample's C_k and δ are multiplied by its weight w_k (:data:`WEIGHTS`), so
    C = (1/n) Σ w_k C_k and Dᴸ = w δᴸ / n, the derivative of that C."""
    L = len(spec.layers)
    Y = Var("Y", Kind.TARGET)
    n = N.symbol
    C = Var("C", Kind.COST)
    w = WEIGHTS.symbol if weighted else sp.Integer(1)
    wk: tuple[Op | sp.Basic, ...] = (ref(Kind.ROW, 0, "k"), Op.PRODUCT) if weighted else ()
    wdot: tuple[Op | sp.Basic, ...] = (ref(Kind.ROW), Op.TIMES) if weighted else ()
    zL, dL = ref(Kind.Z, L), ref(Kind.DELTA, L)
    mean = (C_REF, Op.EQ, Op.MEAN_K, *wk, C_K, Op.COMMA)
    per_sample = (dL, Op.EQ, Partial(C_K, zL), Op.EQ)
    batch_delta = (ref(Kind.DELTA, L, batch=True), Op.EQ)
    if spec.loss != "softmax_ce":
        ell = _at_output(out.loss, L)
        args = (ref(Kind.A, L, "j"), ref(Kind.Z, L, "j"), ref(Kind.TARGET, 0, "j"))
        text = note(*mean, C_K, Op.EQ, Op.SUM_J, Ell(*args), Op.COMMA, Ell(), Op.EQ, _math(out.loss, L))
        loss: list[Statement] = [Reduce(C, w * ell, ReduceOp.SUM, Axis.ALL, Role.LOSS, 1 / n, text)]
        D = Var(f"D{L}", Kind.DELTA, L)
        dC_dZ = Partial(C_REF, ref(Kind.Z, L, batch=True))
        delta_note = note(
            *per_sample, _math(out.delta, L), Op.SEP, *batch_delta, dC_dZ, Op.EQ, *wdot, dL, Op.DIV, N_REF
        )
        rest, masks = split_masks(_at_output(out.delta, L))
        delta = sp.Mul(choose_form(rest, (ell,)), *masks)
        return loss, [Map(D, w * delta / n, Role.BACKWARD, delta_note)]
    # Softmax cross-entropy, shifted by the row maximum M before both terms (no overflow, and
    # no cancellation between LSE·Σy and Σ y z when the logits are large):
    # C_k = log(Σ_j exp(z_j − M))·Σy − Σ_j y_j (z_j − M).
    Z, _ = layer_vars(L)
    M, E, S = Var(f"M{L}", Kind.ROW, L), Var(f"E{L}", Kind.TEMP, L), Var(f"S{L}", Kind.ROW, L)
    SY, C1, C2 = Var("SY", Kind.ROW), Var("C_lse", Kind.COST), Var("C_yz", Kind.COST)
    shifted = Z.symbol - M.symbol
    lse = f"log(S{L})*SY - sum_j y_j*(z{L}_j - M{L}) = LSE(z{L})*sum_j y_j - sum_j y_j*z{L}_j"  # comment only
    loss = [
        Reduce(
            M, Z.symbol, ReduceOp.MAX, Axis.UNITS, Role.LOSS, note=note(f"softmax cross-entropy; M{L} = max_j z{L}_j")
        ),
        Map(E, sp.exp(shifted), Role.LOSS, note(f"E{L} = exp(z{L} - M{L}): no overflow")),
        Reduce(S, E.symbol, ReduceOp.SUM, Axis.UNITS, Role.LOSS, note=note(f"log(S{L}) = LSE(z{L}) - M{L}")),
        Reduce(SY, Y.symbol, ReduceOp.SUM, Axis.UNITS, Role.LOSS, note=note("SY = sum_j y_j")),
        Reduce(C1, w * sp.log(S.symbol) * SY.symbol, ReduceOp.SUM, Axis.ALL, Role.LOSS),
        Reduce(C2, w * Y.symbol * shifted, ReduceOp.SUM, Axis.ALL, Role.LOSS),
        Map(
            C,
            (C1.symbol - C2.symbol) / n,
            Role.LOSS,
            note(*(mean if weighted else ()), C_K, Op.EQ, lse),
        ),
    ]
    P, D = Var(f"P{L}", Kind.TEMP, L), Var(f"D{L}", Kind.DELTA, L)
    delta = out.delta.xreplace({lm.P: P.symbol, lm.SY: SY.symbol, lm.Y: Y.symbol})
    backward: list[Statement] = [
        Map(P, E.symbol / S.symbol, Role.BACKWARD, note(f"P{L} = softmax(z{L}) = E{L} / S{L}")),
        Map(
            D,
            w * delta / n,
            Role.BACKWARD,
            note(
                *per_sample,
                out.delta.xreplace({lm.P: sp.Symbol(f"softmax{L}", real=True), lm.Y: ref(Kind.TARGET)}),
                Op.SEP,
                *batch_delta,
                *wdot,
                dL,
                Op.DIV,
                N_REF,
                Op.COMMA,
                sp.Symbol(f"softmax{L}", real=True),
                Op.EQ,
                sp.Function("softmax")(zL),
            ),
        ),
    ]
    return loss, backward


def _backward(spec: Spec, layers: tuple[LayerMath, ...]) -> list[Statement]:
    L = len(layers)
    body: list[Statement] = []
    for l in range(L, 0, -1):
        D = Var(f"D{l}", Kind.DELTA, l)
        dW, db = grad_var(weight_var(l)), grad_var(bias_var(l))
        delta = ref(Kind.DELTA, l)
        text = note(Partial(C_REF, ref(Kind.WEIGHT, l)), Op.EQ, Op.MEAN_K, delta, Op.PRODUCT, _below(l).t())
        body.append(MatMul(dW, D, inputs_of(l), True, False, Role.OUTPUT, text))
        text = note(Partial(C_REF, ref(Kind.BIAS, l)), Op.EQ, Op.MEAN_K, delta)
        body.append(Reduce(db, D.symbol, ReduceOp.SUM, Axis.BATCH, Role.OUTPUT, note=text))
        if l == 1:
            continue
        below = layers[l - 2]
        Dm = Var(f"D{l - 1}", Kind.DELTA, l - 1)
        a_m, df_m = ref(Kind.A, l - 1), Act(l - 1, 1, ref(Kind.Z, l - 1))
        rule = (ref(Kind.DELTA, l - 1), Op.EQ, Partial(C_K, a_m), Op.HADAMARD, df_m, Op.COMMA, df_m, Op.EQ)
        if below.blocks_gradient:
            text = note(*rule, sp.Integer(0), f": no gradient flows below layer {l}")
            body.append(Map(Dm, sp.Integer(0), Role.BACKWARD, text))
            continue
        G = Var(f"G{l - 1}", Kind.UPSTREAM, l - 1)
        text = note(Partial(C_K, a_m), Op.EQ, ref(Kind.WEIGHT, l).t(), Op.PRODUCT, delta)
        body.append(MatMul(G, D, weight_var(l), False, False, Role.BACKWARD, text))
        Zm, Am = layer_vars(l - 1)
        rest, masks = split_masks(below.df.xreplace({lm.Z: Zm.symbol, lm.A: Am.symbol}))
        df = sp.Mul(choose_form(rest), *masks)
        text = note(*rule, _math(below.df, l - 1))
        body.append(Map(Dm, G.symbol * df, Role.BACKWARD, text))
    return body


def _penalty(spec: Spec) -> list[Statement]:
    """C += (λ/2) Σ_l ‖Wˡ‖²: one sum of squares per weight matrix, then one update of C."""
    lam = lm.number(spec.l2)
    C = Var("C", Kind.COST)
    sums: list[Statement] = []
    for l in range(1, len(spec.layers) + 1):
        W = weight_var(l)
        sums.append(Reduce(Var(f"R{l}", Kind.COST, l), W.symbol**2, ReduceOp.SUM, Axis.ALL, Role.LOSS))
    total = sp.Add(*[s.out.symbol for s in sums])
    text = note("C = (1/n) sum_k C_k + (l2/2) sum_l |W_l|^2, l2 = ", lam)
    return [*sums, Map(C, C.symbol + lam / 2 * total, Role.LOSS, text)]


def _penalty_gradients(spec: Spec, backward: list[Statement]) -> list[Statement]:
    """After each dWˡ = Dˡᵀ Aˡ⁻¹: dWˡ = dWˡ + λ Wˡ (the penalty's gradient; biases have none)."""
    lam = lm.number(spec.l2)
    out: list[Statement] = []
    for s in backward:
        out.append(s)
        if isinstance(s, MatMul) and s.out.kind is Kind.GRAD_W:
            W = weight_var(s.out.layer)
            w_ref = ref(Kind.WEIGHT, s.out.layer)
            text = note("+ ", Deriv(w_ref), " of the penalty: ", sp.Symbol("l2"), Op.TIMES, w_ref)
            out.append(Map(s.out, s.out.symbol + lam * W.symbol, Role.OUTPUT, text))
    return out


@lru_cache(maxsize=64)
def derive(spec: Spec, symbolic_params: bool = False, weighted: bool = False) -> Program:
    """The layer-level program of a validated spec (cached: specs are frozen and hashable).

    ``symbolic_params`` keeps activation parameters (beta, mu, sigma, alpha, x_min, x_max, m, b)
    as symbols: a program for reading (explain, report), never printed as code.
    ``weighted``: the cost is the weighted mean C = Σ s_k C_k / Σ s_k over per-sample weights s
    (the variable :data:`WEIGHTS`, w = n s / Σ s, which the backend binds; 1 when none are given)."""
    layers = layers_math(spec, symbolic_params)
    out = output_math(spec, symbolic_params)
    L = len(layers)
    forward = _forward(spec, layers)
    loss, delta_out = _loss(spec, out, weighted)
    backward = _backward(spec, layers)
    if spec.l2:
        loss += _penalty(spec)
        backward = _penalty_gradients(spec, backward)
    C = Var("C", Kind.COST)
    _, AL = layer_vars(L)
    grads = tuple(grad_var(v) for l in range(1, L + 1) for v in (weight_var(l), bias_var(l)))
    functions = (
        Function("forward", tuple(forward), (AL,)),
        Function("loss", tuple(forward + loss), (C,)),
        Function("loss_and_grad", tuple(forward + loss + delta_out + backward), (C, *grads)),
    )
    params = tuple(v for l in range(1, L + 1) for v in (weight_var(l), bias_var(l)))
    return Program(
        spec,
        Granularity.LAYER,
        functions,
        layers,
        out,
        rewrites_fired(spec),
        tuple(lm.gradient_warnings(spec)),
        params,
    )


__all__ = ["WEIGHTS", "N", "derive", "inputs_of", "layer_vars"]
