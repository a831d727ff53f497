"""A small evaluator of the IR: run one :class:`~symprop.ir.program.Function` on NumPy arrays.

It reads the same statements the backends print and returns the value of **every**
variable it assigns (``Z1``, ``A1``, ``D2``, ``G1``, ``dW1``, the cost ``C``...), which a
generated module keeps to itself.  ``symprop report`` and ``symprop explain`` take their
worked-example numbers from here, so there is one numeric path: the program.  The tests
compare it with the generated NumPy module (``tests/test_interpret.py``).

Semantics, per statement (the layer program; arrays have one row per sample):

* :class:`MatMul` ``out = op(left) @ op(right)``, op a transpose when flagged;
* :class:`AddBias` ``out = out + bias`` (the bias broadcast over the rows);
* :class:`Map` ``out = expr`` elementwise, ``expr`` evaluated by a NumPy function made with
  :func:`sympy.lambdify` and the printer of the NumPy backend (the same stable helpers:
  σ, clip, log-sum-exp);
* :class:`Reduce` ``out = scale · op(expr)`` over the units of a sample (keeping a column),
  the batch (one value per unit) or everything (a scalar);
* :class:`LinearSum` ``out = Σ w·v (+ b)`` (the per-neuron program; its parameter entries
  are read from the parameter arrays by ``Var.array`` and ``Var.index``).

The expressions come from the derivation (custom activations are re-printed from SymPy by
the spec stage), never from user text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from symprop.backends.numpy.printer import ArrayPrinter
from symprop.ir.names import bias
from symprop.ir.program import (
    LAYER_VALUES,
    AddBias,
    Axis,
    Function,
    Map,
    MatMul,
    Program,
    Reduce,
    ReduceOp,
    Statement,
    Var,
)


class InterpretError(ValueError):
    """Inputs that do not fit the program (a missing parameter, a wrong shape)."""


def _sigmoid(x: Any) -> Any:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _clip01(x: Any) -> Any:
    x = np.asarray(x, dtype=np.float64)
    eps = np.finfo(x.dtype).eps
    return np.clip(x, eps, 1.0 - eps)


def _logsumexp(*zs: Any) -> Any:
    top = zs[0]
    for z in zs[1:]:
        top = np.maximum(top, z)
    total = np.exp(zs[0] - top)
    for z in zs[1:]:
        total = total + np.exp(z - top)
    return top + np.log(total)


_HELPERS = {"_sigmoid": _sigmoid, "_clip01": _clip01, "_logsumexp": _logsumexp, "np": np, "dtype": np.float64}


@lru_cache(maxsize=4096)
def _compiled(expr: sp.Expr) -> tuple[Callable[..., Any], tuple[sp.Symbol, ...]]:
    """``expr`` as a NumPy function of its free symbols (sorted by name), printed like the module's code."""
    args = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    names = {s: f"v{k}" for k, s in enumerate(args)}
    printer = ArrayPrinter(names, module="np")
    code = printer.code(expr)
    # The text is the backend printer's output for a derived expression (no user text); it is
    # compiled once per expression, with only NumPy and the three helpers in scope.
    params = ", ".join(names[s] for s in args)
    fn = eval(f"lambda {params}: {code}", {"__builtins__": {}, **_HELPERS})
    return fn, args


def evaluate(expr: sp.Expr, env: Mapping[sp.Symbol, Any]) -> Any:
    """The value of ``expr`` with its symbols bound by ``env``."""
    fn, args = _compiled(expr)
    try:
        values = [env[s] for s in args]
    except KeyError as exc:
        raise InterpretError(f"the program reads {exc.args[0]} before it is assigned") from None
    return fn(*values)


def _entry(var: Var, params: Mapping[str, np.ndarray]) -> Any:
    return params[var.array][var.index]


def run(
    program: Program,
    params: Mapping[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray | None = None,
    function: str = "loss_and_grad",
) -> dict[str, Any]:
    """Run ``function`` of ``program`` on float64 ``params``, ``X`` (n, inputs) and ``Y`` (n, outputs).

    Returns every variable's value by name: the inputs (``X``, ``Y``, ``W1``...), then each
    assigned variable's last value.  In the layer program ``D{l}`` is ∂C/∂Z for the batch mean
    (δ/n) and ``G{l}`` is ∂C/∂A; ``dW{l}``, ``db{l}`` are the gradients."""
    fn: Function = program.function(function)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != program.spec.inputs:
        raise InterpretError(f"X must have shape (n, {program.spec.inputs}), got {X.shape}")
    n = X.shape[0]
    values: dict[str, Any] = {"X": X, "n": float(n)}
    if Y is not None:
        values["Y"] = np.asarray(Y, dtype=np.float64)
    for k, shape in program.spec.param_shapes.items():
        if k not in params:
            raise InterpretError(f"missing parameter {k}")
        array = np.asarray(params[k], dtype=np.float64)
        if array.shape != tuple(shape):
            raise InterpretError(f"{k} has shape {array.shape}, the spec needs {tuple(shape)}")
        values[k] = array
    env: dict[sp.Symbol, Any] = {}
    for name, value in values.items():
        env[sp.Symbol(name, real=True)] = value
    if program.granularity.value == "unit":
        _bind_units(program, values, env)
    for s in fn.body:
        value = _step(s, env, values)
        values[s.out.name] = value
        env[s.out.symbol] = value
    return values


def _bind_units(program: Program, values: dict[str, Any], env: dict[sp.Symbol, Any]) -> None:
    """The per-neuron program reads x1, y1 (columns) and parameter entries (``Var.array``, ``Var.index``)."""
    for v in program.params:
        env[v.symbol] = values[v.array][v.index]
    for j in range(1, program.spec.inputs + 1):
        env[sp.Symbol(f"x{j}", real=True)] = values["X"][:, j - 1]
    if "Y" in values:
        for j in range(1, program.spec.outputs + 1):
            env[sp.Symbol(f"y{j}", real=True)] = values["Y"][:, j - 1]


def _units(values: Mapping[str, Any], layer: int) -> int:
    return int(np.shape(values[bias(layer)])[0])


def _step(s: Statement, env: dict[sp.Symbol, Any], values: dict[str, Any]) -> Any:
    if isinstance(s, MatMul):
        left, right = env[s.left.symbol], env[s.right.symbol]
        return (left.T if s.left_t else left) @ (right.T if s.right_t else right)
    if isinstance(s, AddBias):
        return env[s.out.symbol] + env[s.bias.symbol]
    if isinstance(s, Map):
        value = evaluate(s.expr, env)
        shapes = [np.shape(env[v]) for v in s.expr.free_symbols]
        if (
            s.out.kind in LAYER_VALUES and s.out.layer and s.out.unit is None
        ):  # a constant map (D = 0 below a step) fills the layer
            shapes.append((np.shape(values["X"])[0], _units(values, s.out.layer)))
        shape = np.broadcast_shapes(*shapes) if shapes else ()
        return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy() if shape else value
    if isinstance(s, Reduce):
        inner = evaluate(s.expr, env)
        reduce = np.sum if s.op is ReduceOp.SUM else np.max
        if s.axis is Axis.UNITS:
            out = reduce(inner, axis=1, keepdims=True)
        elif s.axis is Axis.BATCH:
            out = reduce(inner, axis=0)
        else:
            out = reduce(inner)
        scale = s.scale if s.scale == 1 else evaluate(sp.sympify(s.scale), env)
        return out * scale if s.scale != 1 else out
    total: Any = 0.0
    for w, v in s.terms:
        total = total + env[w.symbol] * env[v.symbol]
    if s.bias is not None:
        total = total + env[s.bias.symbol]
    return total


__all__ = ["InterpretError", "evaluate", "run"]
