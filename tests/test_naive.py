"""Tiny nets: the generated gradient equals naive sympy.diff of the fully expanded cost.

The naive side differentiates C_k written out in inputs, targets and parameters
(no intermediate symbols, the unrewritten loss) and is evaluated exactly with
SymPy at 30 digits; the generated side is float64 NumPy. Agreement to 1e-12
(relative, floor 1) leaves float64 rounding (~1e-15 per operation on these
tiny nets) a factor ~100 of room while any mistake shows as ~1e-2 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symprop.spec import Layer, Spec
from symprop.symbolic.functions import Clip01, LogSumExp, Relu, Sigmoid, Softplus
from tests.oracles.naive import naive_gradients
from tests.support import ACTIVATIONS, module_for, spec_for

CASES = [spec_for(act, loss, sizes=(2, 2, 2)) for act in ACTIVATIONS for loss in ("mse", "bce", "softmax_ce")]
CASES += [spec_for(act, loss, sizes=(2, 3, 1)) for act in ("sigmoid", "tanh", "custom") for loss in ("sse", "custom")]
CASES.append(Spec("deep", 1, (Layer.of(2, "tanh"), Layer.of(2, "sigmoid", beta=0.5), Layer.of(2, "softplus")), "mse"))


def _exact(expr: sp.Expr, values: dict[sp.Symbol, float]) -> float:
    """Evaluate with SymPy at 30 digits (custom functions via their exp/Max forms)."""
    plain = expr.replace(lambda e: isinstance(e, Sigmoid | Softplus | Relu | Clip01), lambda e: e._exp_form(e.args[0]))
    plain = plain.replace(lambda e: isinstance(e, LogSumExp), lambda e: sp.log(sp.Add(*[sp.exp(a) for a in e.args])))
    return float(plain.xreplace({k: sp.Float(v, 30) for k, v in values.items()}).evalf(30))


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.name + "_" + "-".join(map(str, s.layer_sizes)))
def test_gradient_equals_naive_diff(spec: Spec) -> None:
    assert spec.n_params <= 30
    cost, grads, xs, ys = naive_gradients(spec)
    module = module_for(spec)
    rng = np.random.default_rng(11)
    for _ in range(2):
        params = {k: rng.normal(0, 0.8, size=s) for k, s in spec.param_shapes.items()}
        x = rng.normal(size=(1, spec.inputs))
        y = np.eye(spec.outputs)[[1]] if spec.loss == "softmax_ce" else rng.uniform(0.05, 0.95, size=(1, spec.outputs))
        values = {s: float(v) for s, v in zip(xs, x[0], strict=True)} | {
            s: float(v) for s, v in zip(ys, y[0], strict=True)
        }
        for name, shape in spec.param_shapes.items():
            for index in np.ndindex(*shape):
                symbol = sp.Symbol(f"{name}_{'_'.join(str(i + 1) for i in index)}", real=True)
                values[symbol] = float(params[name][index])
        value, generated = module.loss_and_grad(params, x, y)
        assert value == pytest.approx(_exact(cost, values), rel=1e-12, abs=1e-12)
        for symbol, expr in grads.items():
            name, *idx = symbol.name.split("_")
            got = generated[name][tuple(int(i) - 1 for i in idx)]
            want = _exact(expr, values)
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (symbol, got, want)
