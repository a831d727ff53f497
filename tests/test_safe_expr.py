"""Custom expressions are untrusted: only the documented names, numbers and operators pass."""

from __future__ import annotations

import pytest
import sympy as sp

from symprop.spec.safe_expr import ExprError, parse_expr

X = {"x": sp.Symbol("x", real=True)}

REJECTED = [
    ("__import__('os').system('id')", "unknown name '__import__'"),
    ("().__class__", "attribute access '().__class__'"),
    ("x.real", "attribute access 'x.real'"),
    ("(lambda: 1)()", "lambda 'lambda: 1'"),
    ("lambda x: x", "lambda"),
    ("x[0]", "subscript 'x[0]'"),
    ("'abc'", "constant"),
    ("y + 1", "unknown name 'y'"),
    ("open('f')", "unknown name 'open'"),
    ("x(2)", "function 'x'"),
    ("exp(x, base=2)", "keyword argument"),
    ("9**9**9", "constant exponent"),
    ("x if x > 0 else 0", "conditional expression"),
    ("[x for x in ()]", "comprehension"),
    ("x and 1", "'and'/'or'"),
    ("x // 2", "operator in 'x // 2'"),
    ("1e999", "larger than 1.8e308, the largest float64"),
    ("exp(x", "not a valid expression"),
    ("", "is empty"),
    ("x; import os", "not a valid expression"),
    ("x > 1", "comparison outside a Piecewise condition"),
    ("Piecewise((x, x > 0))", "last Piecewise condition must be True"),
]


@pytest.mark.parametrize("text,needle", REJECTED)
def test_rejected_with_the_offending_token(text: str, needle: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(text, X, "expr")
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


ACCEPTED = [
    ("x/(1 + abs(x))", lambda x: x / (1 + sp.Abs(x))),
    (
        "exp(-x**2) * cos(x) + sin(x) - sqrt(x**2 + 1)",
        lambda x: sp.exp(-(x**2)) * sp.cos(x) + sp.sin(x) - sp.sqrt(x**2 + 1),
    ),
    ("tanh(x) + log(2 + x**2) + pi + E", lambda x: sp.tanh(x) + sp.log(2 + x**2) + sp.pi + sp.E),
    ("Heaviside(x, 0) * x", lambda x: sp.Heaviside(x, 0) * x),
    (
        "Piecewise((0, x <= -1), (x + 1, x < 0), (1, True))",
        lambda x: sp.Piecewise((0, x <= -1), (x + 1, x < 0), (1, True)),
    ),
    ("-x ** 2.5", lambda x: -(x ** sp.Float(2.5))),
]


@pytest.mark.parametrize("text,build", ACCEPTED)
def test_allowed_expressions_build_the_expected_sympy(text: str, build) -> None:
    x = X["x"]
    parsed, expected = parse_expr(text, X, "expr"), build(x)
    for value in (-1.3, 0.2, 0.7, 2.9):  # equal as functions (Float precisions may differ)
        got, want = complex(parsed.subs(x, value).evalf(25)), complex(expected.subs(x, value).evalf(25))
        assert abs(got - want) <= 1e-14 * max(1.0, abs(want)), (value, got, want)
