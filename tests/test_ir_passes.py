"""The IR's memory analyses (``symprop/ir/memory.py``), each against a brute-force computation.

The backends trust these answers without checking them (the NumPy module writes in place where
:func:`overwritable` and :func:`computed_into` say so; the C workspace is :func:`sample_layout`),
so each is checked here on its own, from the statement list and nothing else:

* ``last_reads`` / ``forward_values``: by scanning each function backwards;
* ``fuse``: the steps, flattened, are the body again, and every fusion is one the body allows;
* ``overwritable`` / ``computed_into``: no statement of any function reads the overwritten
  value afterwards (and every such value is found);
* ``sample_layout``: no two vectors whose slots share an entry are live at once, with liveness
  computed afresh from the steps; only an elementwise step may write over an input it reads for
  the last time.  On the programs of real specs, and on random straight-line programs (Hypothesis).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as hs

from symprop.emit import program_for
from symprop.ir.memory import (
    INPUTS,
    Layout,
    Step,
    computed_into,
    forward_values,
    fuse,
    last_reads,
    overwritable,
    sample_layout,
    shared_forward,
)
from symprop.ir.program import AddBias, Kind, Map, MatMul, Program, Role, Statement, Var, reads
from symprop.spec import Spec
from tests.support import spec_for

SPECS: tuple[Spec, ...] = (
    spec_for("sigmoid", "mse", (3, 4, 2)),
    spec_for("tanh", "softmax_ce", (2, 5, 3, 3)),
    spec_for("relu", "bce", (4, 3, 3, 1)),
    spec_for("softplus", "custom", (2, 3, 2)),
    spec_for("identity", "mse", (2, 2)),
)


# the programs the backends print: NumPy (weighted, with and without second order) and C (full,
# and forward alone); built when a test first asks (collection stays fast)
KINDS = ("numpy", "numpy-hvp", "c", "c-forward")
CASES = [(spec, kind) for spec in SPECS for kind in KINDS]


@functools.cache
def _program(spec: Spec, kind: str) -> Program:
    if kind.startswith("numpy"):
        return program_for(spec, "vectorized", second_order=kind == "numpy-hvp")
    return program_for(spec, target="c", inference_only=kind == "c-forward")


def _id(case: tuple[Spec, str]) -> str:
    return f"{case[0].name}-{'-'.join(map(str, case[0].layer_sizes))}-{case[1]}"


@pytest.fixture(params=CASES, ids=_id)
def program(request: pytest.FixtureRequest) -> Program:
    return _program(*request.param)


# ------------------------------------------------------------------------------- liveness --


def test_last_reads_is_the_last_reader_scanning_backwards(program: Program) -> None:
    for f in program.functions:
        last = last_reads(f.body, f.returns)
        returned = {v.symbol for v in f.returns}
        symbols = {sym for s in f.body for sym in reads(s)} | returned
        for sym in symbols:
            expected = (
                len(f.body)
                if sym in returned
                else next(k for k in range(len(f.body) - 1, -1, -1) if sym in reads(f.body[k]))
            )
            assert last[sym] == expected, (f.name, sym)
        assert set(last) == symbols


def test_forward_values_are_what_each_function_reads_after_the_forward_pass(program: Program) -> None:
    forward = shared_forward(program)
    outs = {s.out.symbol for s in forward}
    taken = forward_values(program)
    for f in program.functions:
        assert f.body[: len(forward)] == forward
        after = f.body[len(forward) :]
        needed = {sym for s in after for sym in reads(s) if sym in outs} | {
            v.symbol for v in f.returns if v.symbol in outs
        }
        assert {v.symbol for v in taken[f.name]} == needed, f.name


# --------------------------------------------------------------------------------- fusion --


def _flatten(steps: Sequence[Step]) -> list[Statement]:
    out: list[Statement] = []
    for st in steps:
        out.append(st.stmt)
        if st.bias is not None:
            out.append(AddBias(st.stmt.out, st.bias, st.stmt.role))
        if st.fused is not None:
            out.append(st.fused)
    return out


def test_fuse_keeps_every_statement_in_order_and_fuses_only_what_it_may(program: Program) -> None:
    for f in program.functions:
        steps = fuse(f.body)
        # the steps, flattened, are the body (a fused bias add as the AddBias it was, notes aside)
        flat = _flatten(steps)
        assert [(type(s), s.out) for s in flat] == [(type(s), s.out) for s in f.body]
        for st in steps:
            if st.bias is not None:  # a product with the bias add of its own output
                assert isinstance(st.stmt, MatMul)
                assert any(isinstance(s, AddBias) and s.out == st.stmt.out and s.bias == st.bias for s in f.body)
            if st.fused is not None:  # G = D W whose one reader is the map fused with it
                g = st.stmt.out.symbol
                assert st.stmt.out.kind is Kind.UPSTREAM
                assert [s for s in f.body if g in reads(s)] == [st.fused]
        # no bias add is left after its product
        for a, b in itertools.pairwise(flat):
            if isinstance(a, MatMul) and isinstance(b, AddBias) and b.out == a.out:
                assert any(st.stmt is a and st.bias == b.bias for st in steps)


def test_every_layer_product_takes_its_bias() -> None:
    program = _program(SPECS[1], "c")  # 2-5-3-3: three layers, each Z = A Wᵀ + b
    steps = fuse(program.function("loss_and_grad").body)
    z_products = [st for st in steps if isinstance(st.stmt, MatMul) and st.stmt.out.kind is Kind.Z]
    assert len(z_products) == 3 and all(st.bias is not None for st in z_products)
    assert not any(isinstance(st.stmt, AddBias) for st in steps)


# ------------------------------------------------------------------------------- in place --


def _replay(program: Program, buffer_of: dict[sp.Symbol, sp.Symbol]) -> None:
    """Run every function's statements over buffers (a symbol lives in ``buffer_of[symbol]``, else
    its own): each read must find the value it names still in its buffer, not another."""
    for f in program.functions:
        holds: dict[sp.Symbol, sp.Symbol] = {}
        for s in f.body:
            for sym in reads(s):
                buffer = buffer_of.get(sym, sym)
                assert holds.get(buffer, sym) == sym, f"{f.name}: {sym} was overwritten by {holds[buffer]}"
            holds[buffer_of.get(s.out.symbol, s.out.symbol)] = s.out.symbol
        for v in f.returns:
            buffer = buffer_of.get(v.symbol, v.symbol)
            assert holds.get(buffer, v.symbol) == v.symbol, f"{f.name} returns an overwritten {v.name}"


def _activations(program: Program) -> dict[sp.Symbol, sp.Symbol]:
    """Each activation map A = f(Z) of the forward pass: A's symbol -> Z's."""
    return {
        s.out.symbol: s.expr.args[0]
        for s in shared_forward(program)
        if isinstance(s, Map) and s.out.kind is Kind.A and s.expr.args and isinstance(s.expr.args[0], sp.Symbol)
    }


def test_overwritable_pre_activations_are_never_read_again(program: Program) -> None:
    found = overwritable(program)
    activations = _activations(program)
    # writing each found activation over its pre-activation leaves every read intact
    _replay(program, {a: z for a, z in activations.items() if z in found})
    # and each one not found would break a read if it were overwritten
    for a, z in activations.items():
        if z not in found:
            with pytest.raises(AssertionError):
                _replay(program, {a: z})


def test_the_error_sent_down_may_live_in_the_buffer_of_its_delta(program: Program) -> None:
    into = computed_into(program)
    _replay(program, {g: d.symbol for g, d in into.items()})
    for g in into:  # read at most once per function (the NumPy module scales that buffer in place)
        assert all(sum(g in reads(s) for s in f.body) <= 1 for f in program.functions)


def test_second_order_keeps_g_in_its_own_buffer() -> None:
    """The Hessian-vector product reads G again after δ: the NumPy module must not overwrite it."""
    assert computed_into(_program(SPECS[0], "numpy"))
    assert not computed_into(_program(SPECS[0], "numpy-hvp"))


# ---------------------------------------------------------------------------------- slots --


def _check_no_overlap_while_live(steps: Sequence[Step], returns: Sequence[Var], layout: Layout) -> None:
    """Brute force: each vector's live range [written, last read] from the steps alone (an
    identity map's reads count for the vector it names), and no two vectors whose slots share an
    entry are live at once; only an elementwise step may write over what it reads last there."""
    identity: dict[sp.Symbol, sp.Symbol] = {}
    written: dict[sp.Symbol, int] = {}
    for pos, st in enumerate(steps):
        sym = st.out.symbol
        if sym not in layout.slots:
            continue
        expr = st.stmt.expr if isinstance(st.stmt, Map) else None
        if isinstance(expr, sp.Symbol) and (expr in written or expr in identity):  # a vector of work renamed
            identity[sym] = expr
            continue
        written.setdefault(sym, pos)

    def base(sym: sp.Symbol) -> sp.Symbol:
        while sym in identity:
            sym = identity[sym]
        return sym

    end: dict[sp.Symbol, int] = dict(written)
    for pos, st in enumerate(steps):
        for sym in st.reads:
            if base(sym) in written and pos >= written[base(sym)]:
                end[base(sym)] = max(end[base(sym)], pos)
    for v in returns:
        if base(v.symbol) in written:
            end[base(v.symbol)] = len(steps)
    vectors = sorted(written, key=str)
    for sym in identity:  # an identity map names its input's slot
        assert layout.slots[sym].offset == layout.slots[base(sym)].offset
    for i, a in enumerate(vectors):
        sa = layout.slots[a]
        assert sa.offset >= 0 and sa.offset + sa.size <= layout.size
        for b in vectors[i + 1 :]:
            sb = layout.slots[b]
            if sa.offset + sa.size <= sb.offset or sb.offset + sb.size <= sa.offset:
                continue  # no shared entry
            first, second = (a, b) if written[a] <= written[b] else (b, a)
            if end[first] < written[second]:
                continue  # dead before the other is written
            # written over at the very step that reads it for the last time: in place
            assert end[first] == written[second], f"{first} and {second} share a slot while both are live"
            step = steps[written[second]]
            assert isinstance(step.stmt, Map) or step.fused is not None, f"{second} overwrites {first} not elementwise"
            assert layout.slots[first].offset == layout.slots[second].offset


# the programs of the one target with a per-sample workspace (C: forward and loss_and_grad)
C_CASES = [case for case in CASES if case[1].startswith("c")]


@pytest.mark.parametrize("case", C_CASES, ids=_id)
def test_no_slot_is_reused_while_live(case: tuple[Spec, str]) -> None:
    program = _program(*case)
    for f in program.functions:
        steps = fuse(f.body)
        returns = f.returns if f.name == "forward" else ()
        layout = sample_layout(program.spec, steps, returns)
        _check_no_overlap_while_live(steps, returns, layout)
        # every per-sample vector a step reads has a place: a slot, or the sample's row of X or Y
        for st in steps:
            for sym in st.reads:
                kind = next((s.out.kind for s in f.body if s.out.symbol == sym), None)
                if kind in (Kind.Z, Kind.A, Kind.DELTA):
                    assert sym in layout.slots


def test_slots_are_reused() -> None:
    """The layout is not the trivial one: the workspace is smaller than all its vectors together."""
    spec = SPECS[1]  # 2-5-3-3: Z3 takes the place of Z1 (= A1), dead once Z2 is computed
    forward = _program(spec, "c-forward").function("forward")
    layout = sample_layout(spec, fuse(forward.body), forward.returns)
    assert layout.size < sum(slot.size for slot in layout.slots.values() if not slot.shares)


@hs.composite
def _straight_line(draw: hs.DrawFn) -> tuple[list[Step], list[Var]]:
    """A random straight-line program over one sample's row of X: maps of one or two earlier
    vectors (some of them identity maps), of which some are returned."""
    known = [INPUTS.symbol]
    steps: list[Step] = []
    for k in range(draw(hs.integers(1, 12))):
        v = Var(f"t{k}", Kind.TEMP)
        args = draw(hs.lists(hs.sampled_from(known), min_size=1, max_size=2))
        expr: sp.Expr = args[0] if len(args) == 1 and draw(hs.booleans()) else sp.tanh(sp.Add(*args))
        steps.append(Step(Map(v, expr, Role.FORWARD)))
        known.append(v.symbol)
    temps = [s.stmt.out for s in steps]
    returns = draw(hs.lists(hs.sampled_from(temps), max_size=3, unique=True))
    return steps, returns


@given(_straight_line())
def test_no_slot_is_reused_while_live_in_random_programs(program: tuple[list[Step], list[Var]]) -> None:
    steps, returns = program
    spec = spec_for("tanh", "mse", (3, 4, 2))
    layout = sample_layout(spec, steps, returns)
    _check_no_overlap_while_live(steps, returns, layout)
