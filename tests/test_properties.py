"""Property-based: random architectures, activations, parameters and losses.

For each drawn network the generated gradient must agree with central finite
differences (symprop.tools.check.TOLERANCE, justified in symprop/check.py) and every
emission mode must agree with the unrolled one to 1e-10 (float64; both compute
the same formulas in a different order, so they differ by rounding only).
Derandomized so CI is reproducible; run with HYPOTHESIS_PROFILE=explore for fresh draws.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from symprop.emit import MODES
from symprop.spec import Spec, spec_from_dict
from symprop.tools.check import compare, random_problem
from tests.support import module_for

# the Hypothesis profile (ci or explore) is chosen in tests/conftest.py by HYPOTHESIS_PROFILE

CUSTOM_EXPRS = ["x/(1 + abs(x))", "tanh(x) + 0.1*x", "exp(-x**2)", "log(1 + exp(x))", "x*Heaviside(x, 0) + 0.2*sin(x)"]


@st.composite
def layer_tables(draw: st.DrawFn, units: int) -> dict:
    name = draw(
        st.sampled_from(
            ["identity", "sigmoid", "piecewise_linear", "gaussian", "relu", "tanh", "softplus", "leaky_relu", "custom"]
        )
    )
    table: dict = {"units": units, "activation": name}
    finite = st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 3))
    if name == "sigmoid":
        table["beta"] = draw(finite.filter(lambda v: abs(v) > 0.1))
    elif name == "piecewise_linear":
        lo = draw(st.floats(-3, 0, allow_nan=False).map(lambda v: round(v, 3)))
        table["x_min"], table["x_max"] = lo, lo + draw(st.floats(0.5, 4).map(lambda v: round(v, 3)))
    elif name == "gaussian":
        table["mu"], table["sigma"] = draw(finite), draw(st.floats(0.3, 3).map(lambda v: round(v, 3)))
    elif name == "leaky_relu":
        table["alpha"] = draw(st.floats(0, 0.5).map(lambda v: round(v, 3)))
    elif name == "custom":
        table["expr"] = draw(st.sampled_from(CUSTOM_EXPRS))
    return table


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    n_layers = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 6)) for _ in range(n_layers + 1)]
    loss = draw(st.sampled_from(["mse", "sse", "bce", "softmax_ce", "custom"]))
    layers = [draw(layer_tables(u)) for u in widths[1:]]
    if loss == "bce":
        layers[-1] = {"units": widths[-1], "activation": "sigmoid", "beta": draw(st.sampled_from([0.5, 1.0, 3.0]))}
    elif loss == "softmax_ce":
        layers[-1] = {"units": max(widths[-1], 2), "activation": "identity"}
    data = {"name": "prop", "inputs": widths[0], "loss": loss, "layers": layers}
    if loss == "custom":
        data["loss_expr"] = draw(
            st.sampled_from(["(a - y)**2 + 0.1*(a - y)**4", "abs(a - y)**3", "(a - y)**2*exp(-y**2)"])
        )
    return spec_from_dict(data)


@given(specs())
def test_random_networks_have_correct_gradients(spec: Spec) -> None:
    result = compare(module_for(spec, "unrolled"), spec, seeds=(0,), max_entries=12)
    assert result.passed, result


@given(specs())
def test_every_mode_agrees_with_unrolled(spec: Spec) -> None:
    params, X, Y = random_problem(spec, seed=3, n=7)
    reference_value, reference = module_for(spec, "unrolled").loss_and_grad(params, X, Y)
    for mode in [m for m in MODES if m not in ("unrolled", "auto")]:
        value, grads = module_for(spec, mode).loss_and_grad(params, X, Y)
        assert abs(value - reference_value) <= 1e-10 * max(1.0, abs(reference_value)), mode
        for name, g in reference.items():
            np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-10, err_msg=f"{mode} {name}")
