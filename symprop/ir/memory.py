"""Memory analyses of a program, computed once here for every backend.

A backend asks these questions of the IR instead of answering them itself:

* **liveness** — where each variable of a function is read for the last time
  (:func:`last_reads`), which variables are still needed after a statement (:func:`live_after`),
  and which forward values each function takes from the shared forward pass (:func:`forward_values`);
* **fusion** — which statements print as one (:func:`fuse`): a product ``Z = A Wᵀ`` with the bias
  add after it (one linear map: C's loop, the per-neuron program's linear sum), and the error sent
  down ``G = D W`` with the map right after it when that map is G's one reader (G never stored);
* **in place** — which activation map may write over its pre-activation (:func:`overwritable`:
  nothing reads Z afterwards in any function), and which error sent down may be computed straight
  into the buffer of the δ it becomes (:func:`computed_into`: G is read once, no later than δ is
  written);
* **slots** — a first-fit layout of one sample's vectors in a workspace (:func:`sample_layout`):
  a slot is reused once its vector is dead, an elementwise map writes over an input it reads for
  the last time, and an identity map (``A = Z``) shares its input's slot.

``tests/test_ir_passes.py`` checks each against a brute-force computation from the statement list.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

from symprop.ir.program import (
    LAYER_VALUES,
    AddBias,
    Kind,
    Map,
    MatMul,
    Program,
    Reduce,
    Role,
    Statement,
    Var,
    reads,
)
from symprop.spec import Spec

# ------------------------------------------------------------------------------- liveness --


def symbols_read(statements: Iterable[Statement]) -> set[sp.Symbol]:
    """Every symbol the statements read."""
    return {sym for s in statements for sym in reads(s)}


def readers(statements: Iterable[Statement]) -> Counter[sp.Symbol]:
    """How many of the statements read each symbol."""
    return Counter(sym for s in statements for sym in reads(s))


def last_reads(body: Sequence[Statement], returns: Iterable[Var] = ()) -> dict[sp.Symbol, int]:
    """The position in ``body`` of the last statement reading each symbol; ``len(body)`` for the
    returned ones (they outlive the body)."""
    last = {sym: k for k, s in enumerate(body) for sym in reads(s)}
    last.update({v.symbol: len(body) for v in returns})
    return last


def live_after(body: Sequence[Statement], k: int, returns: Iterable[Var] = ()) -> set[sp.Symbol]:
    """The symbols still needed after ``body[k]``: read by a later statement, or returned."""
    return symbols_read(body[k + 1 :]) | {v.symbol for v in returns}


def shared_forward(program: Program) -> tuple[Statement, ...]:
    """The forward pass, which every function starts with (the Python modules' ``_forward``)."""
    return tuple(s for s in program.function("forward").body if s.role is Role.FORWARD)


def forward_values(program: Program) -> dict[str, tuple[Var, ...]]:
    """Per function, the values of the shared forward pass it still needs after it, in order."""
    forward = shared_forward(program)
    taken: dict[str, tuple[Var, ...]] = {}
    for f in program.functions:
        if tuple(f.body[: len(forward)]) != forward:
            raise ValueError(f"{f.name} does not start with the forward pass")
        needed = live_after(f.body, len(forward) - 1, f.returns)
        taken[f.name] = tuple(dict.fromkeys(s.out for s in forward if s.out.symbol in needed))
    return taken


# --------------------------------------------------------------------------------- fusion --


@dataclass(frozen=True)
class Step:
    """One statement, or a product with the statement it absorbs (printed as one)."""

    stmt: Statement
    bias: Var | None = None  # Z = A Wᵀ with the bias add right after it: Z = A Wᵀ + b
    fused: Map | None = None  # G = D W with the map right after it, G's one reader: G never stored

    @property
    def out(self) -> Var:
        """What the step writes: the fused map's output, else the statement's."""
        return self.fused.out if self.fused is not None else self.stmt.out

    @property
    def reads(self) -> frozenset[sp.Symbol]:
        """What the step reads (a fused G is not read: it is never stored)."""
        if self.fused is None:
            return reads(self.stmt) | ({self.bias.symbol} if self.bias is not None else frozenset())
        return reads(self.stmt) | (reads(self.fused) - {self.stmt.out.symbol})


def fuse(body: Sequence[Statement]) -> list[Step]:
    """``body`` as steps: each product with the bias add after it, and each error sent down
    (``G = D W``) with the map after it when that map is the one statement reading G."""
    count = readers(body)
    out: list[Step] = []
    k = 0
    while k < len(body):
        s = body[k]
        nxt = body[k + 1] if k + 1 < len(body) else None
        if isinstance(s, MatMul) and isinstance(nxt, AddBias) and nxt.out == s.out:
            out.append(Step(s, bias=nxt.bias))
            k += 2
        elif (
            isinstance(s, MatMul)
            and s.out.kind is Kind.UPSTREAM
            and isinstance(nxt, Map)
            and s.out.symbol in nxt.expr.free_symbols
            and count[s.out.symbol] == 1
        ):
            out.append(Step(s, fused=nxt))
            k += 2
        else:
            out.append(Step(s))
            k += 1
    return out


# ------------------------------------------------------------------------------- in place --


def overwritable(program: Program) -> frozenset[sp.Symbol]:
    """The pre-activations Z that their activation map ``A = f(Z)`` may overwrite: the map is Z's
    last reader in the shared forward pass, and no function reads or returns Z after that pass."""
    forward = shared_forward(program)
    later = set().union(*(live_after(f.body, len(forward) - 1, f.returns) for f in program.functions))
    last = last_reads(forward)
    found = set()
    for k, s in enumerate(forward):
        if isinstance(s, Map) and s.out.kind is Kind.A and s.expr.args:
            z = s.expr.args[0]
            if isinstance(z, sp.Symbol) and z not in later and last.get(z, -1) <= k:
                found.add(z)
    return frozenset(found)


def computed_into(program: Program) -> dict[sp.Symbol, Var]:
    """The errors sent down (G = D W) that may be computed into the buffer of the δ they become:
    G's symbol -> that δ, when in every function G is read at most once (a Hessian-vector product
    reads G again: then G keeps its own buffer) and the buffer holds nothing else meanwhile."""
    upstream = {s.out.symbol for s in program.statements() if s.out.kind is Kind.UPSTREAM}
    uses = [_uses(f.body) for f in program.functions]  # one pass per function: linear in the layers
    return {
        g: s.out
        for s in program.statements()
        if isinstance(s, Map) and s.out.kind is Kind.DELTA
        for g in s.expr.free_symbols & upstream
        if all(_may_share(read, written, g, s.out.symbol) for read, written in uses)
    }


def _uses(body: Sequence[Statement]) -> tuple[dict[sp.Symbol, list[int]], dict[sp.Symbol, list[int]]]:
    """Where each symbol is read, and where it is written, in ``body`` (positions, in order)."""
    read: dict[sp.Symbol, list[int]] = {}
    written: dict[sp.Symbol, list[int]] = {}
    for k, s in enumerate(body):
        for sym in reads(s):
            read.setdefault(sym, []).append(k)
        written.setdefault(s.out.symbol, []).append(k)
    return read, written


def _may_share(
    read: Mapping[sp.Symbol, list[int]], written: Mapping[sp.Symbol, list[int]], g: sp.Symbol, d: sp.Symbol
) -> bool:
    """May G live in d's buffer: G read at most once, no later than d is written (once), and d
    read only after that write?"""
    reads_g, writes_d = read.get(g, []), written.get(d, [])
    first = writes_d[0] if writes_d else math.inf
    return (
        len(reads_g) <= 1
        and len(writes_d) <= 1
        and all(k <= first for k in reads_g)
        and all(k > first for k in read.get(d, []))
    )


# ---------------------------------------------------------------------------------- slots --


@dataclass(frozen=True)
class Slot:
    """One named vector of a workspace (a variable of the layer program for one sample)."""

    name: str
    offset: int
    size: int
    shares: str = ""  # the variable whose slot it reuses (for a comment)
    made: int = 0  # the step that writes it (listing order within a slot)


@dataclass(frozen=True)
class Layout:
    """Where one sample's vectors live: a slot per variable, the workspace's size, and the width
    of every per-sample array (its slot's size; the inputs' and targets' rows too)."""

    slots: Mapping[sp.Symbol, Slot]
    size: int
    widths: Mapping[sp.Symbol, int]


@dataclass
class _Arena:
    """First-fit allocation of vectors in a workspace; freed slots merge with their neighbours."""

    free: list[tuple[int, int]] = field(default_factory=list)  # (offset, size), sorted
    top: int = 0

    def take(self, size: int) -> int:
        fits = [(s, o) for o, s in self.free if s >= size]
        if fits:
            s, o = min(fits)
            self.free.remove((o, s))
            if s > size:
                self.free.append((o + size, s - size))
                self.free.sort()
            return o
        if self.free and self.free[-1][0] + self.free[-1][1] == self.top:
            o, s = self.free.pop()
            self.top = o + size
            return o
        o, self.top = self.top, self.top + size
        return o

    def give(self, offset: int, size: int) -> None:
        self.free.append((offset, size))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for o, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.free = merged


INPUTS, TARGETS = Var("X", Kind.INPUT), Var("Y", Kind.TARGET)  # a sample's rows of X and Y


def row_width(spec: Spec, v: Var, widths: Mapping[sp.Symbol, int]) -> int:
    """Entries of one sample's row of ``v`` (0: a scalar per sample, or no per-sample value)."""
    if v.kind is Kind.INPUT:
        return spec.inputs
    if v.kind is Kind.TARGET:
        return spec.outputs
    if v.kind in LAYER_VALUES:
        return spec.layer_sizes[v.layer]
    return widths.get(v.symbol, 0)


def expr_width(expr: sp.Expr, widths: Mapping[sp.Symbol, int]) -> int:
    """The row width of an elementwise expression: that of its arrays (which must agree)."""
    found = {widths[s] for s in expr.free_symbols if widths.get(s, 0) > 0}
    if len(found) > 1:
        raise ValueError(f"cannot print {expr} per sample: its arrays have widths {sorted(found)}")
    return found.pop() if found else 0


def sample_layout(spec: Spec, steps: Sequence[Step], returns: Sequence[Var] = ()) -> Layout:
    """Slots for the per-sample vectors the steps write (not the batch values: parameters,
    gradients, costs; not the per-sample scalars), reused once dead; ``returns`` live to the end."""
    widths: dict[sp.Symbol, int] = {INPUTS.symbol: spec.inputs, TARGETS.symbol: spec.outputs}
    alias: dict[sp.Symbol, sp.Symbol] = {}  # identity maps: the variable whose slot they share
    defs: dict[sp.Symbol, int] = {}
    last: dict[sp.Symbol, int] = {}
    made: dict[sp.Symbol, int] = {}
    inplace_ok: dict[int, set[sp.Symbol]] = {}  # per step, the inputs it may write over

    def root(sym: sp.Symbol) -> sp.Symbol:
        while sym in alias:
            sym = alias[sym]
        return sym

    for pos, st in enumerate(steps):
        s = st.stmt
        for sym in st.reads:
            if sym in widths:
                last[root(sym)] = pos
        target = st.out
        if isinstance(s, Reduce) or target.kind in (Kind.COST, Kind.GRAD_W, Kind.GRAD_B):
            continue
        w = row_width(spec, target, widths)
        if isinstance(s, Map) and target.kind not in LAYER_VALUES:
            w = expr_width(s.expr, widths)
        if w == 0:
            continue  # a per-sample scalar: a local variable
        widths[target.symbol] = w
        made[target.symbol] = pos
        if isinstance(s, Map) and isinstance(s.expr, sp.Symbol) and widths.get(s.expr, 0) == w and s.expr in made:
            alias[target.symbol] = root(s.expr)  # an identity map of a vector in work (not X or Y)
            continue
        defs[target.symbol] = pos
        last.setdefault(target.symbol, pos)
        if isinstance(s, Map):
            inplace_ok[pos] = {root(x) for x in s.expr.free_symbols if widths.get(root(x), 0) == w}
        elif st.fused is not None:  # the fused map's inputs, but G (never stored)
            inputs = st.fused.expr.free_symbols - {s.out.symbol}
            inplace_ok[pos] = {root(x) for x in inputs if widths.get(root(x), 0) == w}
    for v in returns:
        if v.symbol in widths:
            last[root(v.symbol)] = len(steps)

    arena = _Arena()
    slots: dict[sp.Symbol, Slot] = {}
    dying: dict[int, list[sp.Symbol]] = {}
    for sym in defs:
        dying.setdefault(last[sym], []).append(sym)
    held: set[sp.Symbol] = set()
    by_pos: dict[int, list[sp.Symbol]] = {}
    for sym in sorted(defs, key=lambda sym: defs[sym]):
        by_pos.setdefault(defs[sym], []).append(sym)
    for pos in range(len(steps) + 1):
        taken_inplace: set[sp.Symbol] = set()
        for sym in by_pos.get(pos, []):
            w = widths[sym]
            reuse = [
                x
                for x in sorted(inplace_ok.get(pos, set()), key=str)
                if x in held and last[x] == pos and slots[x].size == w and x not in taken_inplace
            ]
            if reuse:  # an elementwise map over an input read here for the last time: in place
                x = reuse[0]
                taken_inplace.add(x)
                held.discard(x)
                slots[sym] = Slot(sym.name, slots[x].offset, w, slots[x].name, pos)
            else:
                slots[sym] = Slot(sym.name, arena.take(w), w, made=pos)
            held.add(sym)
        for sym in dying.get(pos, []):
            if sym in held and sym not in taken_inplace:
                held.discard(sym)
                arena.give(slots[sym].offset, slots[sym].size)
    for sym, target in alias.items():
        r = root(target)
        slots[sym] = Slot(sym.name, slots[r].offset, slots[r].size, r.name, made[sym])
    sizes = {sym: slot.size for sym, slot in slots.items()}
    return Layout(slots, arena.top, {**sizes, INPUTS.symbol: spec.inputs, TARGETS.symbol: spec.outputs})


__all__ = [
    "INPUTS",
    "TARGETS",
    "Layout",
    "Slot",
    "Step",
    "computed_into",
    "expr_width",
    "forward_values",
    "fuse",
    "last_reads",
    "live_after",
    "overwritable",
    "readers",
    "row_width",
    "sample_layout",
    "shared_forward",
    "symbols_read",
]
