"""Bounds on the SymPy calls that can explode: by size before the call, by wall time during it.

symprop asks SymPy for *optional* work: a simpler form of a derivative (``factor``, ``expand``,
``simplify``, substituting the saved activation), a proof that an output stays in [0, 1]
(``function_range``), a check that a re-printed expression equals the original.  Each is
an improvement, never a necessity, so each can be given up.  Two things make one explode:

* **size**: ``(1 + x + exp(x))**64`` expands into 2,145 terms, each an exponential, and
  ``simplify`` expands it; ``exp(100*z)`` (a gaussian with mu = 100, once its square is expanded)
  or ``exp(709)`` is a polynomial of degree 100 or 709 in ``exp(z)`` or ``E`` to ``factor``.
  :func:`too_big` refuses such expressions before the call: more than MAX_EXPANDED_TERMS
  terms once expanded, or a number larger than MAX_EXP_NUMBER inside an exponent (as written or
  expanded);
* **time**: anything else that is slow.  :func:`bounded` runs the call with a deadline of
  SYMPY_SECONDS and gives up when it passes.  The deadline works in any thread (a Dask worker,
  a Jupyter kernel thread): a watchdog timer raises an exception in the calling thread
  (CPython's ``PyThreadState_SetAsyncExc``), where SymPy's own ``except Exception`` cannot
  catch it.  No signal is used.  (Elsewhere than CPython the size bounds alone apply.)

When a call is given up, the caller keeps what it had (the derivative as derived, the proof
not made), and a warning says so: a form chosen under a deadline could differ on a faster machine,
so the deadline is far above what any call takes on an ordinary spec.
"""

from __future__ import annotations

import ctypes
import math
import threading
import warnings
from collections.abc import Callable
from typing import Any, Final, TypeVar

import sympy as sp

MAX_EXPANDED_TERMS: Final = 256  # an expression larger than this once expanded is not factored or simplified
MAX_EXP_NUMBER: Final = 64  # exp(65*z) is a polynomial of degree 65 in exp(z) to factor; no larger
SYMPY_SECONDS: Final = (
    60.0  # the deadline of one optional SymPy call: far above any on an ordinary spec, even on a busy machine
)

T = TypeVar("T")

# CPython's way to raise an exception in another thread; None elsewhere (then no deadline)
_SET_ASYNC_EXC: Any = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)


class SympyTimeout(BaseException):
    """A bounded SymPy call passed its deadline (a BaseException: SymPy's ``except Exception``
    does not swallow it)."""


class GaveUp:
    """What :func:`bounded` returns instead of a result: why the call was not made or not finished."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"GaveUp({self.reason!r})"


def expanded_terms(expr: sp.Basic, cap: int = MAX_EXPANDED_TERMS + 1) -> int:
    """An upper estimate (capped at ``cap``) of the number of terms ``expr``, or any expression inside
    a function call in it, has once expanded: sums add, products multiply, a sum of k terms to the
    power n gives C(n + k - 1, k - 1)."""

    def terms(e: sp.Basic) -> int:
        if isinstance(e, sp.Add):
            return min(cap, sum(terms(a) for a in e.args))
        if isinstance(e, sp.Mul):
            return min(cap, math.prod(terms(a) for a in e.args))
        if isinstance(e, sp.Pow) and e.exp.is_Integer and abs(e.exp) > 1:
            k, n = terms(e.base), abs(int(e.exp))
            if k == 1:
                return 1
            if n >= cap:  # at least n + 1 terms
                return cap
            return min(cap, math.comb(n + k - 1, k - 1))
        return 1

    largest = terms(expr)
    for node in sp.preorder_traversal(expr):  # the arguments of calls and of non-integer powers
        if isinstance(node, sp.Add | sp.Mul) or not node.args:
            continue
        if isinstance(node, sp.Pow) and node.exp.is_Integer:
            continue
        largest = max([largest, *(terms(a) for a in node.args)])
        if largest >= cap:
            return cap
    return largest


def _large_exponent_number(expr: sp.Basic) -> sp.Basic | None:
    """A power or exponential whose exponent holds a number of size above MAX_EXP_NUMBER, as written
    or once the exponent is expanded ((z - 20)**2 holds 400): SymPy's polynomial algebra would see
    exp(400) as a polynomial of degree 400 in E, exp(40*z) one of degree 40 in exp(z)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.exp):
            exponent = node.args[0]
        elif isinstance(node, sp.Pow) and not node.exp.is_Number:
            exponent = node.exp
        else:
            continue
        forms = [exponent]
        if expanded_terms(exponent) <= MAX_EXPANDED_TERMS:
            forms.append(sp.expand(exponent))
        for form in forms:
            for number in form.atoms(sp.Number):
                if not number.is_finite or abs(float(number)) > MAX_EXP_NUMBER:
                    return node
    return None


def too_big(expr: sp.Basic) -> str | None:
    """Why ``expr`` is too large for factor/expand/simplify (None: it is not)."""
    if expanded_terms(expr) > MAX_EXPANDED_TERMS:
        return f"it has more than {MAX_EXPANDED_TERMS} terms once expanded"
    node = _large_exponent_number(expr)
    if node is not None:
        return f"{sp.sstr(node)[:60]} has a number above {MAX_EXP_NUMBER} in its exponent"
    return None


class _Watch:
    """A one-shot watchdog: after ``seconds``, raise ``exc`` in the thread that created it, unless
    disarmed first.  Disarming clears an exception that was sent but not yet raised."""

    def __init__(self, seconds: float) -> None:
        self.exc: type[SympyTimeout] = type("SympyTimeout", (SympyTimeout,), {})  # this watch's own
        self.thread = threading.get_ident()
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            _SET_ASYNC_EXC(ctypes.c_ulong(self.thread), ctypes.py_object(self.exc))

    def disarm(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.done = True
            if self.fired:  # sent, maybe not raised yet: clear it
                _SET_ASYNC_EXC(ctypes.c_ulong(self.thread), None)


def bounded(
    call: Callable[..., T], *args: Any, size: sp.Basic | None = None, seconds: float = SYMPY_SECONDS
) -> T | GaveUp:
    """``call(*args)``, or :class:`GaveUp` if ``size`` (an expression, when given) is :func:`too_big`,
    if the call raises an ordinary exception (SymPy's NotImplementedError, an OverflowError on a huge
    number, a RecursionError), or if it runs past ``seconds``."""
    if size is not None:
        reason = too_big(size)
        if reason is not None:
            return GaveUp(reason)
    watch: _Watch | None = None
    try:
        try:
            if _SET_ASYNC_EXC is not None:
                watch = _Watch(seconds)
            return call(*args)
        finally:
            if watch is not None:
                watch.disarm()
    except SympyTimeout as exc:
        if watch is None or not isinstance(exc, watch.exc):
            raise  # another (outer) watch's deadline: not ours to absorb
        return GaveUp(f"it took longer than {seconds:g} s")
    except (ArithmeticError, ValueError, TypeError, NotImplementedError, RecursionError, AttributeError) as exc:
        return GaveUp(f"SymPy failed ({type(exc).__name__})")


def optional(what: str, call: Callable[..., T], *args: Any, size: sp.Basic | None = None) -> T | None:
    """:func:`bounded`, with None for a call given up (and a warning if it was the deadline)."""
    result = bounded(call, *args, size=size)
    if isinstance(result, GaveUp):
        warn_gave_up(what, result)
        return None
    return result


def warn_gave_up(what: str, result: GaveUp) -> None:
    """Say (as a warning) that an optional SymPy step was given up, when it was a deadline: the
    form chosen then depends on the machine's speed.  Size refusals are deterministic: silent."""
    if "longer than" in result.reason:
        warnings.warn(f"{what}: SymPy was stopped ({result.reason}); the form as derived is used", stacklevel=2)


__all__ = [
    "MAX_EXPANDED_TERMS",
    "MAX_EXP_NUMBER",
    "SYMPY_SECONDS",
    "GaveUp",
    "SympyTimeout",
    "bounded",
    "expanded_terms",
    "optional",
    "too_big",
    "warn_gave_up",
]
