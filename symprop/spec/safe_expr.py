"""Parse untrusted expression text (custom activations and losses) into SymPy.

A spec is untrusted input, so its expressions never reach ``eval`` or
``sympify``.  The text is parsed by :mod:`ast` (which only parses, never runs
code), every node is checked against a whitelist, and the SymPy expression is
built from the checked tree by hand.  Anything else is rejected with the
offending token named.

The work SymPy does while building is bounded before it happens: the text is at most
MAX_LENGTH characters and MAX_NODES syntax nodes, nested at most MAX_DEPTH deep; every constant
subexpression is evaluated alongside (mpmath, 30 digits, never SymPy) and refused when it is
complex, infinite or undefined, or has more than 308 digits (above 1e308, below float64's largest,
1.8e308); a power is refused when its estimated size (|exponent| * log10|base| digits) would pass
that bound, before SymPy computes it,
so ``((9**64)**64)**64*x`` is an error, not a run of minutes.  ``Heaviside``'s value at 0 must be
a real constant and comparisons are between real values.
"""

from __future__ import annotations

import ast
import cmath
import itertools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import mpmath
import sympy as sp
from sympy.printing.str import StrPrinter

from symprop.symbolic.bounded import GaveUp, bounded
from symprop.symbolic.functions import Heaviside

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_CONST_EXPONENT = 64
MAX_DEPTH = 32
MAX_CONST_LOG10 = 308  # no constant above 1e308: sizes are judged in digits (powers are estimated before computing)
# The two limits a constant meets, each stated as it is checked: its size in digits (1e308), and the
# float64 range (1.8e308) where a value is computed.  "'1.7e308' is larger than 1.8e308" was wrong.
TOO_LARGE = (
    f"is larger than 1e{MAX_CONST_LOG10} (constants may have at most {MAX_CONST_LOG10} digits, which keeps "
    "them below float64's largest, 1.8e308); use smaller constants"
)
TOO_LARGE_FLOAT = "is larger than 1.8e308, the largest float64; use smaller constants"

FUNCTIONS: Mapping[str, Callable[..., sp.Expr]] = {
    "exp": sp.exp,
    "log": sp.log,
    "tanh": sp.tanh,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "sin": sp.sin,
    "cos": sp.cos,
    "Heaviside": Heaviside,
}
CONSTANTS: Mapping[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
ALLOWED_HELP = "x, numbers, + - * / **, exp, log, tanh, sqrt, abs, sin, cos, Heaviside, Piecewise, pi, E"


class ExprError(ValueError):
    """The expression text is not allowed; the message names the token."""


_BINOPS: Mapping[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_COMPARE: Mapping[type, Callable[[sp.Expr, sp.Expr], sp.Basic]] = {
    ast.Lt: lambda a, b: sp.Lt(a, b),
    ast.LtE: lambda a, b: sp.Le(a, b),
    ast.Gt: lambda a, b: sp.Gt(a, b),
    ast.GtE: lambda a, b: sp.Ge(a, b),
}
_NODE_WORDS: Mapping[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.JoinedStr: "f-string",
    ast.ListComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.List: "list",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.Starred: "star argument",
    ast.Compare: "comparison outside a Piecewise condition",
    ast.Tuple: "tuple outside Piecewise",
}


def parse_expr(text: str, variables: Mapping[str, sp.Symbol], what: str) -> sp.Expr:
    """Parse ``text`` into a SymPy expression in ``variables`` only.

    ``what`` names the field in error messages (e.g. ``"layers[1].expr"``).
    Raises :class:`ExprError` with a one-line message on anything not allowed.
    """
    if not isinstance(text, str):
        raise ExprError(f'{what} must be a string such as "x/(1+abs(x))"')
    if len(text) > MAX_LENGTH:
        raise ExprError(f"{what} is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ExprError(f"{what} is empty; write an expression in {', '.join(variables)}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"{what} {text!r} is not a valid expression ({exc.msg})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExprError(f"{what} has more than {MAX_NODES} syntax nodes; simplify it")
    if _depth(tree.body) > MAX_DEPTH:
        raise ExprError(f"{what} is nested more than {MAX_DEPTH} levels deep; simplify it")
    builder = _Builder(text, variables, what)
    known = {*variables, *CONSTANTS, *FUNCTIONS, "Piecewise"}
    for node in ast.walk(tree):  # name the first unknown name before any structural complaint
        if isinstance(node, ast.Name) and node.id not in known:
            raise builder.fail(node, "unknown name")
    result = builder.expr(tree.body)
    if not isinstance(result, sp.Expr):
        raise ExprError(f"{what} {text!r} is a condition, not a number-valued expression")
    unused = set(result.free_symbols) - set(variables.values())
    if unused:  # cannot happen with the whitelist, kept as a guard
        raise ExprError(f"{what} uses unknown symbols {sorted(map(str, unused))}")
    for number in result.atoms(sp.Number):
        if number.is_finite and abs(float(number)) > sys.float_info.max:
            raise ExprError(
                f"{what} {text!r} has the constant {sp.sstr(number, full_prec=False)}, beyond float64's range "
                f"(about 1.8e308); rescale it"
            )
    if result.has(sp.I, sp.oo, -sp.oo, sp.zoo, sp.nan):
        raise ExprError(
            f"{what} {text!r} evaluates to a complex, infinite or undefined constant ({sp.sstr(result)}); "
            "write a real-valued expression (e.g. no log of a negative number, no division by 0)"
        )
    return result


# Real probe points: a custom expression (and each part of it that depends on a variable) must be a
# finite real number at one of them at least, or it is refused (sqrt(-x**2 - 1) is complex for every
# real x; SymPy would carry the imaginary unit into the derivatives and fail there).
PROBE_X = (0.0, 1e-3, 0.37, 1.0, 1.9, 3.1, 10.0, 1e3, 1e6, 1e15, 1e30)
PROBE_POINTS = tuple(sorted({v for p in PROBE_X for v in (p, -p)}))
PROBE_Y = (0.0, 0.3, 1.0, -1.0, 2.5)
_NOT_REAL = (
    "is not a real number for any real {names} (e.g. the square root or log of a negative number); "
    "write an expression that is real for some inputs at least"
)
_NOT_FINITE = (
    "is not a finite number for any {names} tried (it overflows float64 or divides by 0 everywhere); rescale it"
)


def _probe_grid(names: Sequence[str]) -> list[dict[str, float]]:
    """The probe points: every x; for a loss, every a with each y (y = 0, 0.3, 1, -1, 2.5)."""
    grids = [PROBE_Y if name == "y" else PROBE_POINTS for name in names]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grids)]


class _Undefined(Exception):
    """A probe value that is not a finite number (overflow, division by 0, log(0))."""


def _finite(value: complex) -> complex:
    """``value``, with a real one's imaginary part +0.0 (no signed zero picks a side of a branch
    cut: sqrt(-1 - 0j) is -1j); _Undefined if it is not finite."""
    if not (math.isfinite(value.real) and math.isfinite(value.imag)):
        raise _Undefined
    return complex(value.real, 0.0) if value.imag == 0 else value


def _is_real(value: complex) -> bool:
    return value.imag == 0 or abs(value.imag) <= 1e-12 * abs(value.real)


def _probe_value(node: ast.AST, point: Mapping[str, float], out: dict[int, complex | None]) -> complex | None:
    """The value of ``node`` at ``point`` in complex float arithmetic (None: undefined there);
    every subtree's value is recorded in ``out`` by id. Iterative (post-order): deep input is fine."""
    stack: list[tuple[ast.AST, bool]] = [(node, False)]
    while stack:
        current, ready = stack.pop()
        if id(current) in out:
            continue
        children = _probe_children(current)
        if not ready:
            stack.append((current, True))
            stack.extend((child, False) for child in children)
            continue
        args = [out.get(id(child)) for child in children]
        try:
            if any(a is None for a in args):
                raise _Undefined
            out[id(current)] = _finite(_probe_step(current, point, args))  # type: ignore[arg-type]
        except (_Undefined, OverflowError, ZeroDivisionError, ValueError):
            out[id(current)] = None
    return out[id(node)]


def _probe_children(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "Piecewise":
            return [e for arg in node.args if isinstance(arg, ast.Tuple) for e in arg.elts[:1]]
        return list(node.args)
    return []


def _probe_step(node: ast.AST, point: Mapping[str, float], args: list[complex]) -> complex:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _Undefined
        return complex(float(node.value))
    if isinstance(node, ast.Name):
        constants = {"pi": math.pi, "E": math.e}
        return complex(point[node.id] if node.id in point else constants[node.id])
    if isinstance(node, ast.UnaryOp):
        return -args[0] if isinstance(node.op, ast.USub) else args[0]
    if isinstance(node, ast.BinOp):
        left, right = args
        if isinstance(node.op, ast.Pow):
            if _is_real(left) and _is_real(right) and (left.real >= 0 or right.real.is_integer()):
                if left.real == 0 and right.real < 0:
                    raise _Undefined
                return complex(math.pow(left.real, right.real))
            return left**right
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
        raise _Undefined
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "Piecewise":  # the branches are judged on their own; the value: the first branch's
            return args[0]
        x = args[0]
        if name == "abs":
            return complex(abs(x))
        if name == "Heaviside":
            if not _is_real(x):
                return complex(0, 1)  # a step of a non-real number is not real
            return complex(1.0 if x.real > 0 else 0.0 if x.real < 0 else (args[1] if len(args) > 1 else 0.5))
        if _is_real(x) and name in ("exp", "tanh", "sin", "cos"):
            return complex(getattr(math, name)(x.real))
        if _is_real(x) and name in ("sqrt", "log") and x.real > 0:
            return complex(getattr(math, name)(x.real))
        if name == "log" and x == 0:
            raise _Undefined
        funcs = {"exp": cmath.exp, "log": cmath.log, "tanh": cmath.tanh, "sqrt": cmath.sqrt, "sin": cmath.sin,
                 "cos": cmath.cos}  # fmt: skip
        return funcs[name](x)
    raise _Undefined


def check_real(text: str, names: Sequence[str], what: str) -> None:
    """Refuse an expression (already accepted by :func:`parse_expr`) of which some part depending on
    a variable is never a finite real number at the probe points (x from -1e30 to 1e30; a with
    each of five y for a loss): ``sqrt(-x**2 - 1)``, ``log(-1 - x**2)``, ``sqrt(sin(x) - 2)``.
    Parts that are real somewhere (``sqrt(x)``) are kept: NumPy gives NaN where they are not.
    The innermost such part is named."""
    tree = ast.parse(text.strip(), mode="eval")
    variable = {
        id(node) for node in ast.walk(tree) if any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))
    }
    real: dict[int, bool] = {}
    complex_seen: dict[int, bool] = {}
    for point in _probe_grid(names):
        values: dict[int, complex | None] = {}
        _probe_value(tree.body, point, values)
        for key, value in values.items():
            real[key] = real.get(key, False) or (value is not None and _is_real(value))
            complex_seen[key] = complex_seen.get(key, False) or (value is not None and not _is_real(value))
    for node in _post_order(tree.body):
        if id(node) not in variable or real.get(id(node), True):
            continue
        if all(real.get(id(child), True) for child in _probe_children(node) if id(child) in variable):
            token = ast.get_source_segment(text.strip(), node) or type(node).__name__
            problem = _NOT_REAL if complex_seen.get(id(node)) else _NOT_FINITE
            raise ExprError(f"{what}: {token!r} {problem.format(names=' and '.join(names))}")


def _post_order(node: ast.AST) -> list[ast.AST]:
    """The subtrees of ``node`` that :func:`_probe_value` evaluates, children before parents."""
    order: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        order.append(current)
        stack.extend(_probe_children(current))
    return order[::-1]


def _depth(node: ast.AST) -> int:
    """Nesting depth of an expression tree (iterative: deep input cannot exhaust the stack)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(current))
    return deepest


def _log10(value: int) -> float:
    """log10|value| for an int of any size (no float overflow)."""
    value = abs(value)
    if value == 0:
        return 0.0
    bits = value.bit_length()
    if bits < 1000:
        return math.log10(value)
    return (bits - 1) * math.log10(2)


def _number_size(expr: sp.Basic) -> float:
    """The largest log10 magnitude of the numbers written in ``expr`` (0 when there are none)."""
    size = 0.0
    for atom in expr.atoms(sp.Number):
        if isinstance(atom, sp.Rational):
            size = max(size, _log10(int(atom.p)), _log10(int(atom.q)))
        elif isinstance(atom, sp.Float) and atom != 0:  # tiny floats are cheap: only the size above 1 counts
            size = max(size, float(mpmath.log10(abs(mpmath.mpf(atom._mpf_)))))
    return size


_Value: TypeAlias = Any  # an mpmath mpf or mpc (mpmath has no type hints)


class _CanonicalPrinter(StrPrinter):
    """Prints a parsed expression back in the whitelist grammar that :func:`parse_expr` reads.

    The text contains only names from the whitelist and the variables, numbers, operators,
    parentheses, commas and spaces: it is the only form of an expression that symprop ever
    writes (spec dumps, module headers, explain titles).  Floats print as the shortest
    Python literal of their double value, which parses back to the same number.
    """

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Exp1(self, expr: sp.Expr) -> str:
        return "E"

    def _print_Pi(self, expr: sp.Expr) -> str:
        return "pi"

    def _print_BooleanTrue(self, expr: sp.Expr) -> str:
        return "True"


_CANONICAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-*/(), <>=")


def canonical_text(expr: sp.Expr, variables: Mapping[str, sp.Symbol], what: str) -> str:
    """``expr`` re-printed in the whitelist grammar; it parses back to the same expression.

    Raises :class:`ExprError` if it would not (a printer gap): symprop never falls back to
    copying the user's text.
    """
    text = _CanonicalPrinter().doprint(expr)
    if not set(text) <= _CANONICAL_CHARS:  # a guard: the whitelist grammar has no other characters
        raise ExprError(f"{what}: cannot print {sp.sstr(expr)!r} in the expression grammar; simplify it")
    try:
        again = parse_expr(text, variables, what)
    except ExprError:
        again = None
    # SymPy may rebuild the printed text differently (2*(u + 1) becomes 2*u + 2): equal in value
    # is what matters, since the canonical text is what every later stage reads
    if again is None or (sp.srepr(again) != sp.srepr(expr) and not _same(again, expr, variables)):
        raise ExprError(f"{what}: {text!r} does not read back as the same expression; simplify it")
    return text


def _same(a: sp.Expr, b: sp.Expr, variables: Mapping[str, sp.Symbol]) -> bool:
    """a == b as functions: ``simplify(a - b) == 0`` where SymPy can tell within its size and time
    bounds, else equal values (to 25 digits) at probe points where both are finite reals."""
    difference = a - b
    simplified = bounded(sp.simplify, difference, size=difference)
    if not isinstance(simplified, GaveUp):
        return bool(simplified == 0)
    names = list(variables)
    compared = 0
    for point in _probe_grid(names)[::7]:
        values = {variables[name]: sp.Float(v, 30) for name, v in point.items()}
        try:
            u, v = complex(a.xreplace(values).evalf(30)), complex(b.xreplace(values).evalf(30))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            continue
        if not all(math.isfinite(w.real) and math.isfinite(w.imag) for w in (u, v)):
            continue
        if abs(u - v) > 1e-25 * max(1.0, abs(u)):
            return False
        compared += 1
    return compared > 0


class _Builder:
    def __init__(self, text: str, variables: Mapping[str, sp.Symbol], what: str) -> None:
        self.text = text
        self.variables = variables
        self.what = what
        self.context = mpmath.MPContext()
        self.context.dps = 30
        self.values: dict[int, _Value | None] = {}

    def constant(self, node: ast.AST, value: _Value) -> _Value:
        """Refuse a constant that is complex, not finite or too large; return it otherwise."""
        ctx = self.context
        if ctx.isnan(value) or ctx.isinf(value):
            raise self.refuse(node, "is infinite or undefined; write a finite expression (no division by 0, no log(0))")
        if isinstance(value, ctx.mpc) and value.imag != 0:
            raise self.refuse(
                node, "is not a real number; write a real-valued expression (no sqrt or log of a negative number)"
            )
        value = ctx.mpf(value.real)
        if abs(value) > sys.float_info.max:
            raise self.refuse(node, TOO_LARGE_FLOAT)
        return value

    def check_size(self, node: ast.AST, expr: sp.Expr) -> sp.Expr:
        if _number_size(expr) > MAX_CONST_LOG10:
            raise self.refuse(node, TOO_LARGE)
        return expr

    def value(self, node: ast.AST) -> _Value | None:
        """The value of a constant subtree (mpmath), None if it depends on a variable."""
        if id(node) not in self.values:
            self.values[id(node)] = self._value(node)
        return self.values[id(node)]

    def _value(self, node: ast.AST) -> _Value | None:
        ctx = self.context
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int) and not isinstance(node.value, bool):
                return self.constant(node, ctx.mpf(node.value))
            if isinstance(node.value, float):
                return self.constant(node, ctx.mpf(repr(node.value)))
            return None
        if isinstance(node, ast.Name):
            return {"pi": ctx.pi, "E": ctx.e}.get(node.id)
        if isinstance(node, ast.UnaryOp):
            inner = self.value(node.operand)
            return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Pow):
                if left == 0 and right <= 0:
                    raise self.refuse(node, "divides by 0 (0 to a power <= 0); write a finite expression")
                if left != 0 and abs(right) * abs(ctx.log10(abs(left))) > MAX_CONST_LOG10:
                    raise self.refuse(node, TOO_LARGE)
                return self.constant(node, ctx.power(left, right))
            if isinstance(node.op, ast.Div) and right == 0:
                raise self.refuse(node, "divides by 0; write a finite expression")
            ops = {ast.Add: ctx.fadd, ast.Sub: ctx.fsub, ast.Mult: ctx.fmul, ast.Div: ctx.fdiv}
            op = ops.get(type(node.op))
            return None if op is None else self.constant(node, op(left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            args = [self.value(arg) for arg in node.args]
            if not args or any(a is None for a in args):
                return None
            x = args[0]
            assert x is not None
            name = node.func.id
            if name == "exp" and x.real > MAX_CONST_LOG10 * math.log(10):
                raise self.refuse(node, TOO_LARGE)
            if name == "log" and x == 0:
                raise self.refuse(node, "is log(0), which is infinite; write a finite expression")
            if name == "Heaviside":
                if x.imag != 0:
                    raise self.refuse(node, "is not a real number; write a real-valued expression")
                at_zero = args[1] if len(args) > 1 else ctx.mpf(0.5)
                assert at_zero is not None
                return self.constant(node, ctx.mpf(1) if x > 0 else ctx.mpf(0) if x < 0 else at_zero)
            funcs = {
                "exp": ctx.exp,
                "log": ctx.log,
                "tanh": ctx.tanh,
                "sqrt": ctx.sqrt,
                "abs": ctx.fabs,
                "sin": ctx.sin,
                "cos": ctx.cos,
            }
            return self.constant(node, funcs[name](x))
        return None

    def refuse(self, node: ast.AST, problem: str) -> ExprError:
        """``what: 'token' problem`` (the problem says the fix)."""
        token = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        return ExprError(f"{self.what}: {token!r} {problem}")

    def fail(self, node: ast.AST, problem: str) -> ExprError:
        token = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        allowed = ALLOWED_HELP.replace("x,", ", ".join(self.variables) + ",", 1)
        return ExprError(f"{self.what}: {problem} {token!r} is not allowed; use only {allowed}")

    def expr(self, node: ast.AST) -> sp.Expr:
        result = self._expr(node)
        if result.is_number:
            self.value(node)  # refuses complex, infinite, undefined and huge constants
        return self.check_size(node, result)

    def _expr(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(node, "constant")
            if isinstance(value, float) and not math.isfinite(value):  # a literal past float64 (1e999)
                raise self.refuse(node, TOO_LARGE_FLOAT)
            return sp.Integer(value) if isinstance(value, int) else sp.Float(repr(value), 30)
        if isinstance(node, ast.Name):
            if node.id in self.variables:
                return self.variables[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise self.fail(node, "unknown name")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.expr(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            if isinstance(node.op, ast.Pow):
                return self.power(node, left, right)
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(node, "operator in")
            return op(left, right)
        if isinstance(node, ast.Call):
            return self.call(node)
        word = _NODE_WORDS.get(type(node), "syntax")
        raise self.fail(node, word)

    def power(self, node: ast.BinOp, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        if base.is_number and not exponent.is_number:
            value = self.value(node.left)
            if value is None or value <= 0:
                raise self.refuse(
                    node,
                    "raises a constant <= 0 to a variable power (not real or not finite for some x); "
                    "use a positive base, e.g. exp(x*log(c)) with c > 0",
                )
        if exponent.is_number:
            value = self.value(node.right)
            if value is None or abs(value) > MAX_CONST_EXPONENT:
                raise self.fail(node, f"constant exponent above {MAX_CONST_EXPONENT} in")
            # SymPy multiplies nested integer powers out ((9*x)**64 -> 9**64*x**64): bound that
            # before it computes the number
            if abs(value) * _number_size(base) > MAX_CONST_LOG10:
                raise self.refuse(node, TOO_LARGE)
            if base.is_number:
                self.value(node)
        return sp.Pow(base, exponent)

    def call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            self.expr(node.func)  # names what is wrong with the callee (attribute, lambda, ...)
            raise self.fail(node.func, "call of")
        if node.keywords:
            raise self.fail(node.keywords[0], "keyword argument")
        name = node.func.id
        if name == "Piecewise":
            return self.piecewise(node)
        func = FUNCTIONS.get(name)
        if func is None:
            raise self.fail(node.func, "function")
        if name == "Heaviside":
            if len(node.args) not in (1, 2):
                raise self.fail(node, "Heaviside takes (x) or (x, value_at_0);")
            if len(node.args) == 2 and self.value(node.args[1]) is None:
                raise self.refuse(
                    node.args[1],
                    "is not a constant; Heaviside's value at 0 must be a real number, e.g. Heaviside(x, 0.5)",
                )
        elif len(node.args) != 1:
            raise self.fail(node, f"{name} takes one argument;")
        return func(*[self.expr(arg) for arg in node.args])

    def piecewise(self, node: ast.Call) -> sp.Expr:
        if not node.args:
            raise self.fail(node, "empty Piecewise")
        pieces = []
        for arg in node.args:
            if not isinstance(arg, ast.Tuple) or len(arg.elts) != 2:
                raise self.fail(arg, "Piecewise takes (value, condition) pairs;")
            pieces.append((self.expr(arg.elts[0]), self.condition(arg.elts[1])))
        if pieces[-1][1] is not sp.true:
            raise self.fail(node.args[-1], "the last Piecewise condition must be True;")
        return sp.Piecewise(*pieces)

    def condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Constant) and node.value is True:
            return sp.true
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            op = _COMPARE.get(type(node.ops[0]))
            if op is not None:
                left, right = self.expr(node.left), self.expr(node.comparators[0])
                try:
                    return op(left, right)
                except TypeError:  # SymPy: "Invalid comparison of non-real ..."
                    raise self.refuse(node, "compares non-real values; write real-valued conditions") from None
        raise self.fail(node, "condition")
