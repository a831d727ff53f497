"""The C backend: the layer program as loops over one sample, into a header and a source.

Why the layer program and not the per-neuron one: loops over the layer program scale (the
source grows with the number of layers, not of weights), and one sample's vectors are
exactly the workspace the ABI allows.  Each statement of the layer program, read with one
row (one sample), becomes one loop:

* ``Z = A Wᵀ`` + ``b``  ->  ``Z[j] = b[j] + Σ_i W[j*in + i] A[i]``;
* ``G = D W`` followed by ``D⁻ = G ⊙ f'``  ->  one fused loop, ``g = Σ_j D[j] W[j*in + i]``
  a scalar, ``D⁻[i] = g * f'[i]`` (G never stored);
* ``dW = Dᵀ A``  ->  ``dW[j*in + i] += D[j] A[i]`` (accumulated over the samples);
* elementwise maps -> one loop per map; row reductions -> a scalar per sample; the batch
  reductions (the cost, ``db``) accumulate over the samples.

The batch mean: the IR folds 1/n into the output error (``Dᴸ = δᴸ/n``) and the cost
(``C = Σ ℓ / n``).  Here ``n`` is the caller's batch size, known on entry, so each sample
contributes ``δ/n`` exactly as the NumPy module's rows do, and the sum over samples is the
batch mean with no final rescaling of the gradient.  The cost is summed and divided by n
once at the end, as NumPy's ``np.sum(...) / n``.

Workspace: every per-sample vector gets a slot in ``work``; slots are reused once a vector
is dead, an elementwise map writes in place of an input it reads for the last time, and an
identity map (``A = Z``) shares its input's slot.  The layout and the fusions are the IR's
(:func:`symprop.ir.memory.sample_layout`, :func:`symprop.ir.memory.fuse`), per function;
``WORK_SIZE`` is the largest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

from symprop.backends.c.printer import REALS, CPrinter, helper_source, helpers_used
from symprop.backends.templating import Header, environment, header_fields
from symprop.ir.memory import Slot, Step, expr_width, fuse, sample_layout
from symprop.ir.program import (
    AddBias,
    Axis,
    Function,
    Kind,
    Map,
    MatMul,
    N,
    Note,
    ParamRef,
    Program,
    Reduce,
    ReduceOp,
    Statement,
)
from symprop.spec import Spec, SpecError

# Every header of the C standard library (C89 to C23) and of POSIX (the base definitions' <*.h> at
# the top level): a spec of one of these names would write <name>.h, which hides the system header
# from any file compiled with -I on its folder.  Compared case-insensitively (macOS, Windows).
SYSTEM_HEADERS = frozenset(
    (
        "assert",
        "complex",
        "ctype",
        "errno",
        "fenv",
        "float",
        "inttypes",
        "iso646",
        "limits",
        "locale",
        "math",
        "setjmp",
        "signal",
        "stdalign",
        "stdarg",
        "stdatomic",
        "stdbit",
        "stdbool",
        "stdckdint",
        "stddef",
        "stdint",
        "stdio",
        "stdlib",
        "stdnoreturn",
        "string",
        "tgmath",
        "threads",
        "time",
        "uchar",
        "wchar",
        "wctype",
        "aio",
        "cpio",
        "dirent",
        "dlfcn",
        "fcntl",
        "fmtmsg",
        "fnmatch",
        "ftw",
        "glob",
        "grp",
        "iconv",
        "langinfo",
        "libgen",
        "libintl",
        "monetary",
        "mqueue",
        "ndbm",
        "netdb",
        "nl_types",
        "poll",
        "pthread",
        "pwd",
        "regex",
        "sched",
        "search",
        "semaphore",
        "spawn",
        "strings",
        "stropts",
        "syslog",
        "tar",
        "termios",
        "trace",
        "ulimit",
        "unistd",
        "utime",
        "utmpx",
        "wordexp",
        "alloca",
        "malloc",
        "memory",
        "features",
        "endian",
        "byteswap",
        "sysexits",
        "err",
        "getopt",
    )
)
INCLUDES = ("math.h", "stddef.h", "stdint.h")  # what the source includes (the header: stddef.h)
HEADER = "c/header.h.jinja"
SOURCE = "c/source.c.jinja"
ERRORS = (  # the return codes of every function, documented in the header
    ("ERR_NULL", 1, "a pointer argument is NULL"),
    ("ERR_SIZE", 2, "n is 0, or so large that an array of n rows would not fit in memory"),
    ("ERR_OVERLAP", 3, "an output array overlaps another array (grad == params, loss inside grad, ...)"),
    ("ERR_ARG", 4, "an invalid number: lr < 0, momentum < 0, beta outside [0, 1), eps < 0, t = 0 or NaN/inf"),
)
BATCH_KINDS = {Kind.WEIGHT, Kind.BIAS, Kind.GRAD_W, Kind.GRAD_B, Kind.COST, Kind.COUNT}
INDENT = "    "
UNROLL = 4  # loops of at most this many iterations are printed one line per index: gcc -O2 keeps
# short loops rolled, and a 1-3-iteration loop costs its counter and branch in every sample


PEEL_PARAMS = 64  # nets with at most this many parameters peel the first sample out of the loop:
# it writes the gradient with = (no zeroing pass, no load of a just-zeroed entry). On 2-3-1 at n = 1
# that is a tenth of a call; on wider nets it would double the loop's code for nothing measurable.


# at the end of the peeled sample, a compiler barrier (GCC and Clang; a no-op elsewhere): without it gcc
# keeps the parameters this sample loaded alive for the loop, spilling them to the stack across its
# exp calls; with it the loop loads its own. 2-3-1 double at n = 1: 536 -> 519 instructions a call.
PEEL_BARRIER = (
    "#if defined(__GNUC__) /* a compiler barrier: the loop loads the parameters itself */",
    '__asm__ __volatile__("" ::: "memory");',
    "#endif",
)


def each(var: str, count: int, line: Callable[[str], str], start: int = 0) -> list[str]:
    """``for (var = start; var < count) line(var)``, or ``line(index)`` once per index when short."""
    if count - start <= UNROLL:
        return [line(str(v)) for v in range(start, count)]
    return [f"for (size_t {var} = {start}; {var} < {count}; ++{var}) {line(var)}"]


def at(row: str, cols: int, col: str) -> str:
    """The index ``row * cols + col`` of a row-major array, folded where the parts are numbers."""
    if row.isdigit() and col.isdigit():
        return str(int(row) * cols + int(col))
    head = f"{row} * {cols}" if not row.isdigit() else (str(int(row) * cols) if int(row) else "")
    if col == "0" and head:
        return head
    return f"{head} + {col}" if head else col


INV_N = sp.Symbol("inv_n", positive=True)  # 1/n, computed once: a sample's δ multiplies, no division


def per_sample(expr: sp.Expr) -> sp.Expr:
    """``expr`` with its divisions by n as products with ``inv_n`` (a division costs ~15 cycles a sample)."""
    return expr.subs(N.symbol, 1 / INV_N)


def nan_max(value: str, out: str) -> str:
    """``value`` if it beats ``out`` or is NaN (NaN wins), else ``out``."""
    return f"({value} > {out} || {value} != {value}) ? {value} : {out}"


def dot(terms: list[str], init: str | None) -> str:
    """``init + t0 + t1 + ...`` summed left to right as the rolled loop did (no leading 0)."""
    return " + ".join(([init] if init is not None else []) + terms)


def c_comment(text: str) -> str:
    """``text`` made safe inside a C block comment: printable ASCII only, no comment delimiters.

    The one escaping function for text that reaches an emitted C file outside code.  Every
    character outside printable ASCII (newlines included) becomes ``<U+XXXX>``; ``*/`` and
    ``/*`` are broken by a space (one would end the comment, the other warns under -Wall);
    ``??`` is broken too (a trigraph such as ``??/`` could splice lines).
    """
    out = "".join(ch if " " <= ch <= "~" else f"<U+{ord(ch):04X}>" for ch in text)
    while True:
        fixed = out.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
        if fixed == out:
            return out
        out = fixed


def check_comment_safe(source: str) -> str:
    """Fail unless every block comment of ``source`` holds printable ASCII and no nested opener.

    A postcondition of every render: nothing in a comment could end it early or hide code.
    """
    if not all(ch == "\n" or " " <= ch <= "~" for ch in source):
        raise RuntimeError("symprop rendered C with a character outside printable ASCII; please report it")
    pos = 0
    while (start := source.find("/*", pos)) >= 0:
        end = source.find("*/", start + 2)
        if end < 0 or "/*" in source[start + 2 : end] or "??" in source[start:end]:
            raise RuntimeError("symprop rendered a C comment that is not closed once; please report it")
        pos = end + 2
    return source


@dataclass(frozen=True)
class CFunction:
    """A function of the C source, as the header declares it: name, signature, doc lines."""

    name: str
    signature: str
    doc: tuple[str, ...]


@dataclass(frozen=True)
class Block(CFunction):
    """A function of the layer program: checks, declarations and body, as lines (structure for templates)."""

    checks: tuple[str, ...]
    pointers: tuple[str, ...]
    before: tuple[str, ...]  # before the loop over samples
    loop: tuple[str, ...]  # one sample
    after: tuple[str, ...]  # after the loop
    work: tuple[Slot, ...]
    work_size: int
    first: tuple[str, ...] = ()  # the first sample, peeled: it writes the gradient (the loop starts at 1)


@dataclass(frozen=True)
class KitFunction(CFunction):
    """A function of the on-device kit (init, optimizers): its body lines."""

    body: tuple[str, ...]


@dataclass(frozen=True)
class ArrayInfo:
    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size


@dataclass(frozen=True)
class CContext(Header):
    """Everything the C templates need; plain data only."""

    upper: str
    real: str
    real_bytes: int
    work_size: int
    min_work: int
    params: tuple[ArrayInfo, ...]
    helpers: tuple[str, ...]
    functions: tuple[Block, ...]
    guard: str = ""
    logits: bool = False
    training: bool = True
    blocked: bool = False  # float: the batch sums accumulate in blocks of ceil(sqrt(n)) samples
    kit: tuple[KitFunction, ...] = ()
    errors: tuple[tuple[str, int, str], ...] = ERRORS
    includes: tuple[str, ...] = INCLUDES

    @property
    def bill(self) -> int:
        return (2 * self.n_params + self.work_size) * self.real_bytes

    @property
    def min_bill(self) -> int:
        return (2 * self.n_params + self.min_work) * self.real_bytes


@dataclass(frozen=True)
class _Step(Step):
    """A step of the C loop: a fused step of the IR (:func:`symprop.ir.memory.fuse`), and whether
    it runs once after the loop over samples (the cost from its sums)."""

    post: bool = False


class _Builder:
    def __init__(self, program: Program, real_type: str) -> None:
        self.program = program
        self.spec = program.spec
        self.p = CPrinter(real_type)
        self.blocked = real_type == "float"
        self.first = False  # printing the peeled first sample (gradient written with =)
        self.real = f"{self.spec.name}_real"
        self.upper = self.spec.name.upper()
        self.declared_after: set[str] = set()  # costs declared after the loop (per function)
        self.kinds: dict[sp.Symbol, Kind] = {N.symbol: Kind.COUNT}
        for v in program.params:
            self.kinds[v.symbol] = v.kind
        for st in program.statements():
            for v in (st.out, *((st.left, st.right) if isinstance(st, MatMul) else ())):
                self.kinds.setdefault(v.symbol, v.kind)
        self.offsets: dict[str, int] = {}
        offset = 0
        for name, shape in self.spec.param_shapes.items():
            self.offsets[name] = offset
            offset += shape[0] * (shape[1] if len(shape) > 1 else 1)

    # ----------------------------------------------------------------- steps --
    def steps(self, f: Function) -> list[_Step]:
        out = [_Step(st.stmt, st.bias, st.fused, post=self.once(st.stmt)) for st in fuse(f.body)]
        if any(isinstance(st.stmt, AddBias) for st in out):
            raise ValueError("a bias without its product")
        return out

    def once(self, s: Statement) -> bool:
        """``s`` reads no per-sample value (only parameters, gradients, costs and n): it runs once,
        after the loop over samples (the cost from its sums, the L2 penalty and its gradient)."""
        if not isinstance(s, Map | Reduce) or (isinstance(s, Reduce) and s.axis is not Axis.ALL):
            return False
        if s.out.kind not in (Kind.COST, Kind.GRAD_W, Kind.GRAD_B):
            return False
        return all(self.kinds.get(sym) in BATCH_KINDS for sym in s.expr.free_symbols)

    # ----------------------------------------------------------------- print --
    def block(self, f: Function) -> Block:
        steps = self.steps(f)
        returns = f.returns if f.name == "forward" else ()
        layout = sample_layout(self.spec, steps, returns)
        slots, size = layout.slots, layout.size
        gsum: Slot | None = None
        if f.name != "forward" and self.blocked:
            gsum = Slot("gsum", size, self.spec.n_params, made=len(steps) + 1)
            size += self.spec.n_params
        loop_end: list[str] = []
        widths = layout.widths
        scalars: dict[str, None] = {}
        accum: dict[str, None] = {}
        self.declared_after = set()
        loop: list[str] = []
        after: list[str] = []
        self.first = False
        for st in steps:
            lines = self.step(st, widths, scalars, accum, after)
            if st.post:
                after += lines
            else:
                loop += lines
        peel = f.name == "loss_and_grad" and self.spec.n_params <= PEEL_PARAMS
        first: list[str] = []
        if peel:  # the same statements once more, each gradient entry written (=), not accumulated (+=)
            self.first = True
            for st in steps:
                if not st.post:
                    first += self.step(st, widths, {}, {}, [])
            self.first = False
        if f.name == "forward":
            A = f.returns[0].name
            loop.append(
                f"for (size_t j = 0; j < {self.upper}_N_OUTPUTS; ++j) out[k * {self.upper}_N_OUTPUTS + j] = {A}[j];"
            )
        used = _names_in(loop + after)
        pointers = [
            f"const {self.real} *{name} = params + {self.upper}_OFF_{name.upper()};"
            for name in self.spec.param_shapes
            if name in used
        ]
        if f.name == "loss_and_grad":
            pointers += [
                f"{self.real} *d{name} = grad + {self.upper}_OFF_{name.upper()};" for name in self.spec.param_shapes
            ]
        pointers += [
            f"{self.real} *{s.name} = work + {s.offset};"
            + (f"  /* shares the slot of {s.shares} */" if s.shares else "")
            for s in sorted(slots.values(), key=lambda s: (s.offset, s.made, s.name))
            if s.name in used
        ]
        if gsum is not None:
            pointers.append(f"{self.real} *gsum = work + {gsum.offset};  /* the totals of the blocks before */")
        before: list[str] = []
        if "rn" in used:
            before.append(f"const {self.real} rn = ({self.real})n;")
        if "inv_n" in used:
            before.append(f"const {self.real} inv_n = {self.p.lit(1.0)} / ({self.real})n;")
        before += [f"{self.real} {name} = {self.p.lit(0.0)};" for name in accum]
        head = [f"{self.real} {', '.join(scalars)};"] if scalars else []
        U, R, r = self.upper, f"{self.upper}_RESTRICT", self.real
        rows = f"{U}_N_INPUTS > {U}_N_OUTPUTS ? {U}_N_INPUTS : {U}_N_OUTPUTS"
        size_check = f"if (n == 0 || n > SIZE_MAX / sizeof({r}) / ({rows})) return {U}_ERR_SIZE;"
        if f.name == "forward":
            signature = (
                f"int {self.spec.name}_forward(const {r} *{R} params, const {r} *{R} x, size_t n, "
                f"{r} *{R} out, {r} *{R} work)"
            )
            nulls = "params == NULL || x == NULL || out == NULL || work == NULL"
            arrays = {
                "params": f"{U}_N_PARAMS",
                "x": f"n * {U}_N_INPUTS",
                "out": f"n * {U}_N_OUTPUTS",
                "work": f"{U}_WORK_SIZE",
            }
            outputs: tuple[str, ...] = ("out", "work")
            doc: tuple[str, ...] = ("The network's outputs for n samples: out[k*N_OUTPUTS + j], row k.",)
            if self.program.output.loss == "softmax_ce":
                doc += ("The outputs are logits: apply softmax for probabilities.",)
            xy = [f"const {r} *X = x + k * {U}_N_INPUTS;"]
        else:
            if not peel:
                before.insert(0, f"for (size_t k = 0; k < {U}_N_PARAMS; ++k) grad[k] = {self.p.lit(0.0)};")
            C = f.returns[0].name
            if self.blocked:
                before += self.block_start(accum)
                loop_end = self.block_end(accum)
                after[:0] = self.block_finish(accum)
            after.append(f"*loss = {C};")
            signature = (
                f"int {self.spec.name}_loss_and_grad(const {r} *{R} params, const {r} *{R} x, "
                f"const {r} *{R} y, size_t n, {r} *{R} loss, {r} *{R} grad, {r} *{R} work)"
            )
            nulls = "params == NULL || x == NULL || y == NULL || loss == NULL || grad == NULL || work == NULL"
            arrays = {
                "params": f"{U}_N_PARAMS",
                "x": f"n * {U}_N_INPUTS",
                "y": f"n * {U}_N_OUTPUTS",
                "loss": "1",
                "grad": f"{U}_N_PARAMS",
                "work": f"{U}_WORK_SIZE",
            }
            outputs = ("loss", "grad", "work")
            doc = (
                "The batch-mean cost into *loss and its gradient into grad (laid out like params),",
                "accumulated one sample at a time"
                + (" in blocks of ceil(sqrt(n)) samples (see the header)." if self.blocked else "."),
            )
            xy = [f"const {r} *X = x + k * {U}_N_INPUTS;"]
            if "Y" in used:
                xy.append(f"const {r} *Y = y + k * {U}_N_OUTPUTS;")
            if peel:
                first = [f"const {r} *X = x;", *([f"const {r} *Y = y;"] if "Y" in used else []), *head, *first]
                first += PEEL_BARRIER
        checks = [f"if ({nulls}) return {U}_ERR_NULL;", size_check, *overlap_checks(U, arrays, outputs)]
        loop = xy + head + loop
        if f.name != "forward" and self.blocked:
            loop += loop_end
        return Block(
            f.name,
            signature,
            doc,
            tuple(checks),
            tuple(pointers),
            tuple(before),
            tuple(loop),
            tuple(after),
            tuple(sorted([*slots.values(), *([gsum] if gsum else [])], key=lambda s: (s.offset, s.made, s.name))),
            size,
            tuple(first),
        )

    # ------------------------------------------------- float: blocked sums --
    def block_start(self, accum: Mapping[str, None]) -> list[str]:
        """Before the loop: the totals (gsum in work, one scalar per cost) and the block length."""
        zero = self.p.lit(0.0)
        return [
            *(f"{self.real} {name}_sum = {zero};" for name in accum),
            "size_t block = 1; /* ceil(sqrt(n)) samples a block, without overflow */",
            "while (block < n / block) ++block;",
            "/* a block ends before the last sample only if block < n: else gsum stays unused (n <= 2) */",
            f"if (block < n) for (size_t q = 0; q < {self.upper}_N_PARAMS; ++q) gsum[q] = {zero};",
        ]

    def block_end(self, accum: Mapping[str, None]) -> list[str]:
        """At the end of a block: its partial sums (in grad and the cost) join the totals."""
        zero = self.p.lit(0.0)
        return [
            "if ((k + 1) % block == 0 && k + 1 < n) { /* a block ends: its partial sums join the totals */",
            f"{INDENT}for (size_t q = 0; q < {self.upper}_N_PARAMS; ++q) {{",
            f"{INDENT * 2}gsum[q] += grad[q];",
            f"{INDENT * 2}grad[q] = {zero};",
            f"{INDENT}}}",
            *(f"{INDENT}{name}_sum += {name};" for name in accum),
            *(f"{INDENT}{name} = {zero};" for name in accum),
            "}",
        ]

    def block_finish(self, accum: Mapping[str, None]) -> list[str]:
        """After the loop: the last block's partial sums plus the totals of the others."""
        return [
            "/* the last block's partial sums plus the totals of the blocks before it */",
            f"if (block < n) for (size_t q = 0; q < {self.upper}_N_PARAMS; ++q) grad[q] += gsum[q];",
            *(f"{name} += {name}_sum;" for name in accum),
        ]

    @property
    def acc(self) -> str:
        """How a sample's gradient term enters grad: = in the peeled first sample, else +=."""
        return "=" if self.first else "+="

    def names(self, widths: Mapping[sp.Symbol, int], index: str) -> dict[sp.Symbol, str]:
        names = {sym: f"{sym.name}[{index}]" for sym, w in widths.items() if w > 0}
        names[N.symbol] = "rn"
        names[INV_N] = "inv_n"
        return names

    def comment(self, note: Note | str) -> list[str]:
        text = note if isinstance(note, str) else note.render()
        return [f"/* {c_comment(text)} */"] if text else []

    def step(
        self,
        st: _Step,
        widths: Mapping[sp.Symbol, int],
        scalars: dict[str, None],
        accum: dict[str, None],
        after: list[str],
    ) -> list[str]:
        s = st.stmt
        p = self.p
        out = s.out.name
        if isinstance(s, MatMul):
            return self.matmul(st, widths)
        if st.post:
            return self.once_lines(s, accum)
        if isinstance(s, Map):
            w = widths.get(s.out.symbol, 0)
            expr = per_sample(s.expr)
            if w == 0:
                scalars[out] = None
                return [*self.comment(s.note), f"{out} = {p.code(expr, self.names(widths, 'j'))};"]
            if isinstance(s.expr, sp.Symbol) and widths.get(s.expr, 0) == w:
                text = s.note.render()
                return self.comment(text + (" " if text else "") + f"({out} is {s.expr.name}: no copy)")
            return [
                *self.comment(s.note),
                *each("j", w, lambda j: f"{out}[{j}] = {p.code(expr, self.names(widths, j))};"),
            ]
        if isinstance(s, Reduce):
            w = expr_width(s.expr, widths)

            def code_at(j: str, expr: sp.Expr = s.expr) -> str:
                return p.code(per_sample(expr), self.names(widths, j))

            code = code_at("j")
            note = self.comment(s.note)
            if s.axis is Axis.UNITS:
                scalars[out] = None
                if s.op is ReduceOp.MAX:
                    return [
                        *note,
                        f"{out} = {code_at('0')};",
                        *each("j", w, lambda j: f"{out} = {nan_max(code_at(j), out)};", 1),
                    ]
                if w <= UNROLL:
                    return [*note, f"{out} = {dot([code_at(str(j)) for j in range(w)], None)};"]
                return [*note, f"{out} = {p.lit(0.0)};", f"for (size_t j = 0; j < {w}; ++j) {out} += {code};"]
            if s.axis is Axis.ALL:
                accum[out] = None
                if s.scale != 1:
                    after.append(f"{out} = {p.code(s.scale * sp.Symbol(out, real=True), self.names(widths, 'j'))};")
                if w == 0:
                    return [*note, f"{out} += {code};"]
                return [*note, *each("j", w, lambda j: f"{out} += {code_at(j)};")]
            # Axis.BATCH: one gradient entry per unit, summed over the samples
            scaled = s.expr * s.scale
            return [*note, *each("j", w, lambda j: f"{out}[{j}] {self.acc} {code_at(j, scaled)};")]
        raise TypeError(f"the C backend prints no {type(s).__name__}")

    def once_lines(self, s: Statement, accum: dict[str, None]) -> list[str]:
        """A statement of the whole batch, after the loop: a cost, or a loop over whole arrays."""
        assert isinstance(s, Map | Reduce)
        p, out = self.p, s.out.name
        arrays = {sym for sym in s.expr.free_symbols if self.kinds.get(sym) not in (Kind.COST, Kind.COUNT)}
        if s.out.kind in (Kind.GRAD_W, Kind.GRAD_B):
            arrays.add(s.out.symbol)
        sizes = {self.size_of(sym.name) for sym in arrays}
        if len(sizes) > 1:
            raise ValueError(f"cannot print {out} = {s.expr}: its arrays have sizes {sorted(sizes)}")
        names = {sym: f"{sym.name}[j]" for sym in arrays}
        names[N.symbol] = "rn"
        code = p.code(s.expr, names)
        note = self.comment(s.note)
        if isinstance(s, Map) and not arrays:  # a cost from the sums
            if out in accum or out in self.declared_after:
                return [*note, f"{out} = {code};"]
            self.declared_after.add(out)
            return [*note, f"{self.real} {out} = {code};"]
        loop = f"for (size_t j = 0; j < {sizes.pop()}; ++j)"
        if isinstance(s, Map):  # a gradient array: dW = dW + l2 W
            return [*note, f"{loop} {out}[j] = {code};"]
        lines = [*note, f"{self.real} {out} = {p.lit(0.0)};", f"{loop} {out} += {code};"]
        if s.scale != 1:
            lines.append(f"{out} = {p.code(s.scale * sp.Symbol(out, real=True), names)};")
        self.declared_after.add(out)
        return lines

    def size_of(self, name: str) -> int:
        """Entries of a parameter or gradient array (``W1``, ``dW1``, ``b2``)."""
        shape = self.spec.param_shapes[ParamRef.parse(name).label]
        return shape[0] * (shape[1] if len(shape) > 1 else 1)

    def matmul(self, st: _Step, widths: Mapping[sp.Symbol, int]) -> list[str]:
        s = st.stmt
        assert isinstance(s, MatMul)
        p = self.p
        zero = p.lit(0.0)
        if s.out.kind is Kind.Z:  # Z = A Wᵀ + b
            rows, cols = self.spec.param_shapes[s.right.name]
            A, W = s.left.name, s.right.name
            bias = st.bias

            if cols <= UNROLL:  # one line a row: Z[j] = b[j] + W[j * cols] * A[0] + ...

                def row(j: str) -> str:
                    terms = [f"{W}[{at(j, cols, str(i))}] * {A}[{i}]" for i in range(cols)]
                    return f"{s.out.name}[{j}] = {dot(terms, f'{bias.name}[{j}]' if bias is not None else None)};"

                return [*self.comment(s.note), *each("j", rows, row)]
            init = f"{bias.name}[j]" if bias is not None else zero
            return [
                *self.comment(s.note),
                f"for (size_t j = 0; j < {rows}; ++j) {{",
                f"{INDENT}{self.real} z = {init};",
                f"{INDENT}for (size_t i = 0; i < {cols}; ++i) z += {W}[j * {cols} + i] * {A}[i];",
                f"{INDENT}{s.out.name}[j] = z;",
                "}",
            ]
        if s.out.kind is Kind.GRAD_W:  # dW += Dᵀ A, one sample
            rows, cols = self.spec.param_shapes[s.out.param.label]
            D, A = s.left.name, s.right.name
            dW = s.out.name

            def inner(j: str) -> list[str]:
                return each("i", cols, lambda i: f"{dW}[{at(j, cols, i)}] {self.acc} {D}[{j}] * {A}[{i}];")

            if rows <= UNROLL:
                return [*self.comment(s.note), *(line for j in range(rows) for line in inner(str(j)))]
            body = inner("j")
            if len(body) == 1:
                return [*self.comment(s.note), f"for (size_t j = 0; j < {rows}; ++j) {body[0]}"]
            return [
                *self.comment(s.note),
                f"for (size_t j = 0; j < {rows}; ++j) {{",
                *(INDENT + line for line in body),
                "}",
            ]
        if s.out.kind is Kind.UPSTREAM:  # G = D W (fused with the δ map after it, or stored)
            rows, cols = self.spec.param_shapes[s.right.name]
            D, W = s.left.name, s.right.name
            lines = self.comment(s.note)
            if rows <= UNROLL:  # the short sum in place of g: G[i] = D[0] * W[i] + D[1] * W[cols + i] ...

                def total(i: str) -> str:
                    return dot([f"{D}[{j}] * {W}[{at(str(j), cols, i)}]" for j in range(rows)], None)

                if st.fused is None:
                    return [*lines, *each("i", cols, lambda i: f"{s.out.name}[{i}] = {total(i)};")]
                fused = st.fused

                def fused_line(i: str) -> str:
                    names = self.names(widths, i)
                    names[s.out.symbol] = f"({total(i)})"
                    return f"{fused.out.name}[{i}] = {p.code(fused.expr, names)};"

                return [*lines, *self.comment(fused.note), *each("i", cols, fused_line)]
            lines += [
                f"for (size_t i = 0; i < {cols}; ++i) {{",
                f"{INDENT}{self.real} g = {zero};",
                f"{INDENT}for (size_t j = 0; j < {rows}; ++j) g += {D}[j] * {W}[j * {cols} + i];",
            ]
            if st.fused is None:
                return [*lines, f"{INDENT}{s.out.name}[i] = g;", "}"]
            names = self.names(widths, "i")
            names[s.out.symbol] = "g"
            code = p.code(st.fused.expr, names)
            lines += [f"{INDENT}{line}" for line in self.comment(st.fused.note)]
            return [*lines, f"{INDENT}{st.fused.out.name}[i] = {code};", "}"]
        raise ValueError(f"no C form for the product into {s.out.name}")


def overlap_checks(upper: str, arrays: Mapping[str, str], outputs: Sequence[str]) -> list[str]:
    """``return ERR_OVERLAP`` when an output array shares a byte with any other array (sizes in reals)."""
    names = list(arrays)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if a in outputs or b in outputs]
    tests = [f"spr_overlap({a}, {arrays[a]}, {b}, {arrays[b]})" for a, b in pairs]
    lines = [f"if ({tests[0]}"]
    lines += [f"{INDENT}| {t}" for t in tests[1:]]  # | not ||: every test is cheap, no branch each
    lines[-1] += f") return {upper}_ERR_OVERLAP;"
    return unless_trusted(upper, lines)


def unless_trusted(upper: str, lines: Sequence[str]) -> list[str]:
    """``lines`` (overlap checks) compiled only without ``-D<NAME>_TRUST_DISJOINT`` (see the header)."""
    return [f"#ifndef {upper}_TRUST_DISJOINT", *lines, "#endif"]


def overlap_helper(real_name: str) -> str:
    """The C helper behind :func:`overlap_checks`: addresses compared as integers, one comparison."""
    return (
        "/* do the n_a reals at a and the n_b reals at b share a byte?  Addresses compared as integers\n"
        " * (uintptr_t): comparing pointers into different arrays with < is undefined in C.  One unsigned\n"
        " * comparison: they overlap iff -s_b < pb - pa < s_a (sizes s in bytes, n_a, n_b >= 1), i.e. iff\n"
        " * pb - pa + s_b - 1 < s_a + s_b - 1 modulo 2^bits, exact while both arrays lie in the address space. */\n"
        f"static inline int spr_overlap(const void *a, size_t n_a, const void *b, size_t n_b)\n"
        "{\n"
        "    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;\n"
        f"    const size_t s_a = n_a * sizeof({real_name}), s_b = n_b * sizeof({real_name});\n"
        "    return pb - pa + (s_b - 1) < s_a + (s_b - 1);\n"
        "}"
    )


SPLITMIX = """/* splitmix64 (Steele, Lea and Flood, 2014): one 64-bit state, exact in uint64_t on any target,
 * so a seed gives the same numbers on 8-, 32- and 64-bit machines. */
static inline uint64_t spr_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}"""


def uniform_helper(real_type: str, real_name: str) -> str:
    """``spr_uniform``: a uniform number in [-1, 1) on a grid of 2^-52 (double) or 2^-23 (float).

    Exact: the top 53 (24) bits m of a splitmix64 output give m * 2^-52 - 1 (m * 2^-23 - 1), which
    the real type holds exactly, so no rounding depends on the target."""
    p = CPrinter(real_type)
    if real_type == "float":
        bits, scale = 24, p.lit(2.0**-23)
        m = "(float)(uint32_t)(spr_splitmix64(state) >> 40)"
    else:
        bits, scale = 53, p.lit(2.0**-52)
        m = "(double)(spr_splitmix64(state) >> 11)"
    return (
        f"/* uniform in [-1, 1): the top {bits} bits m of splitmix64 as m * 2^-{bits - 1} - 1, "
        f"exact in {real_type} */\n"
        f"static inline {real_name} spr_uniform(uint64_t *state)\n"
        "{\n"
        f"    return {m} * {scale} - {p.lit(1.0)};\n"
        "}"
    )


def glorot_limit(shape: tuple[int, ...]) -> float:
    """sqrt(6 / (fan_in + fan_out)): the bound of the Python modules' ``init_params``, in float64."""
    return math.sqrt(6.0 / (shape[0] + shape[1]))


def kit_functions(spec: Spec, real_type: str) -> tuple[KitFunction, ...]:
    """init_params, sgd_step and adam_step: the rest of a training loop on the device."""
    p = CPrinter(real_type)
    name, U, r = spec.name, spec.name.upper(), f"{spec.name}_real"
    R = f"{U}_RESTRICT"
    zero, one = p.lit(0.0), p.lit(1.0)
    sqrt, pow_ = p.fn("sqrt"), p.fn("pow")
    N = f"{U}_N_PARAMS"

    def finite(x: str) -> str:  # x - x is 0 for a finite x, NaN for NaN and inf (no isfinite: no double)
        return f"{x} - {x} == {zero}"

    init: list[str] = [f"if (params == NULL) return {U}_ERR_NULL;", "{", f"{INDENT}uint64_t state = (uint64_t)seed;"]
    for k, shape in spec.param_shapes.items():
        size = shape[0] * (shape[1] if len(shape) > 1 else 1)
        off = f"{U}_OFF_{k.upper()}"
        if k.startswith("W"):
            limit = glorot_limit(shape)
            init += [
                f"{INDENT}/* {k}: U[-l, l), l = sqrt(6 / (fan_in + fan_out)) = sqrt(6 / ({shape[1]} + {shape[0]})) */",
                f"{INDENT}for (size_t k = 0; k < {size}; ++k) "
                f"params[{off} + k] = {p.lit(limit)} * spr_uniform(&state);",
            ]
        else:
            init.append(f"{INDENT}for (size_t k = 0; k < {size}; ++k) params[{off} + k] = {zero};  /* {k}: zero */")
    init += ["}", "return 0;"]

    sgd = [
        f"if (params == NULL || grad == NULL || (velocity == NULL && momentum != {zero})) return {U}_ERR_NULL;",
        f"if (!(lr >= {zero} && {finite('lr')} && momentum >= {zero} && {finite('momentum')})) return {U}_ERR_ARG;",
        *unless_trusted(
            U,
            [
                f"if (spr_overlap(params, {N}, grad, {N})",
                f"{INDENT}|| (velocity != NULL && (spr_overlap(params, {N}, velocity, {N})",
                f"{INDENT * 5}|| spr_overlap(grad, {N}, velocity, {N}))))",
                f"{INDENT}return {U}_ERR_OVERLAP;",
            ],
        ),
        f"if (momentum == {zero}) {{",
        f"{INDENT}for (size_t k = 0; k < {N}; ++k) params[k] -= lr * grad[k];",
        f"{INDENT}return 0;",
        "}",
        f"for (size_t k = 0; k < {N}; ++k) {{",
        f"{INDENT}velocity[k] = momentum * velocity[k] + grad[k];",
        f"{INDENT}params[k] -= lr * velocity[k];",
        "}",
        "return 0;",
    ]
    adam = [
        f"if (params == NULL || grad == NULL || m == NULL || v == NULL) return {U}_ERR_NULL;",
        f"if (t == 0 || !(lr >= {zero} && {finite('lr')}) || !(beta1 >= {zero} && beta1 < {one})",
        f"{INDENT}|| !(beta2 >= {zero} && beta2 < {one}) || !(eps >= {zero} && {finite('eps')}))",
        f"{INDENT}return {U}_ERR_ARG;",
        *overlap_checks(U, {a: N for a in ("params", "grad", "m", "v")}, ("params", "m", "v")),
        "{",
        f"{INDENT}const {r} step = lr / ({one} - {pow_}(beta1, ({r})t));  /* lr / (1 - beta1^t) */",
        f"{INDENT}const {r} root = {sqrt}({one} - {pow_}(beta2, ({r})t));  /* sqrt(1 - beta2^t) */",
        f"{INDENT}for (size_t k = 0; k < {N}; ++k) {{",
        f"{INDENT * 2}m[k] = beta1 * m[k] + ({one} - beta1) * grad[k];",
        f"{INDENT * 2}v[k] = beta2 * v[k] + ({one} - beta2) * grad[k] * grad[k];",
        f"{INDENT * 2}params[k] -= step * (m[k] / ({sqrt}(v[k]) / root + eps));",
        f"{INDENT}}}",
        "}",
        "return 0;",
    ]
    law = "W ~ U[-l, l), l = sqrt(6 / (fan_in + fan_out)); b = 0"
    return (
        KitFunction(
            "init_params",
            f"int {name}_init_params({r} *params, unsigned long seed)",
            (
                f"Glorot-uniform weights and zero biases, the law of the Python init_params: {law}.",
                "Deterministic: splitmix64 from seed, the same values on any target for seed < 2^32",
                "(not the Python module's values: another generator, the same law).",
            ),
            tuple(init),
        ),
        KitFunction(
            "sgd_step",
            f"int {name}_sgd_step({r} *{R} params, const {r} *{R} grad, {r} *{R} velocity, {r} lr, {r} momentum)",
            (
                "One SGD step, PyTorch's convention: v = momentum v + grad, params -= lr v;",
                "momentum 0: params -= lr grad, and velocity may be NULL. Start velocity at 0.",
            ),
            tuple(sgd),
        ),
        KitFunction(
            "adam_step",
            f"int {name}_adam_step({r} *{R} params, const {r} *{R} grad, {r} *{R} m, {r} *{R} v, unsigned long t, "
            f"{r} lr, {r} beta1, {r} beta2, {r} eps)",
            (
                "One Adam step, torch.optim.Adam's default update; t >= 1 counts the steps, m and v start at 0:",
                "m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,",
                "params -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).",
            ),
            tuple(adam),
        ),
    )


def _names_in(lines: Sequence[str]) -> frozenset[str]:
    """The identifiers a function's code uses (not in its ``/* */`` comments, not after a ``.``):
    which pointers, ``rn`` and ``Y`` to declare.  The statements are written by many methods
    here, so this one tokenization stands where a recording printer would."""
    code, pieces, start = "\n".join(lines), [], 0
    while (begin := code.find("/*", start)) >= 0 and (end := code.find("*/", begin + 2)) >= 0:
        pieces.append(code[start:begin])
        start = end + 2
    pieces.append(code[start:])
    return frozenset(re.findall(r"(?<![\w.])[A-Za-z_]\w*", " ".join(pieces)))


def build(program: Program, real_type: str = "double") -> CContext:
    """The template context of ``program`` (the layer program after CSE) in ``real_type``.

    A program holding ``forward`` alone (``--inference-only``) gives forward and its work size only;
    otherwise loss_and_grad and the kit (init_params, sgd_step, adam_step) follow."""
    b = _Builder(program, real_type)
    spec = program.spec
    names = [f.name for f in program.functions if f.name in ("forward", "loss_and_grad")]
    training = "loss_and_grad" in names
    blocks = tuple(b.block(program.function(name)) for name in names)
    exprs = [s.expr for f in program.functions if f.name in names for s in f.body if isinstance(s, Map | Reduce)]
    params = tuple(ArrayInfo(name, b.offsets[name], shape) for name, shape in spec.param_shapes.items())
    real_name = f"{spec.name}_real"
    helpers = [helper_source(h, real_type, real_name) for h in helpers_used(exprs)]
    helpers.append(overlap_helper(real_name))
    if training:
        helpers += [SPLITMIX, uniform_helper(real_type, real_name)]
    blocked = training and b.blocked
    return CContext(
        **header_fields(program, c_comment),
        upper=spec.name.upper(),
        real=real_type,
        real_bytes=4 if real_type == "float" else 8,
        work_size=max(1, *(blk.work_size for blk in blocks)),
        min_work=(2 if training else 1) * sum(spec.layer_sizes[1:]) + (spec.n_params if blocked else 0),
        params=params,
        helpers=tuple(helpers),
        functions=blocks,
        guard=f"SYMPROP_{spec.name.upper()}_{spec.hash().upper()}_H",
        logits=spec.loss == "softmax_ce",
        training=training,
        blocked=blocked,
        kit=kit_functions(spec, real_type) if training else (),
        includes=INCLUDES if training else ("math.h", "stddef.h", "stdint.h"),
    )


def check_name(spec: Spec) -> None:
    """Refuse a spec name whose files or macros would collide with the C library's or be reserved."""
    name = spec.name
    if name.lower() in SYSTEM_HEADERS:
        raise SpecError(
            f"{spec.source}: name {name!r} would write {name}.h, which hides the C library's <{name.lower()}.h> "
            'for every file compiled with -I on its folder; choose another name, e.g. name = "net"'
        )
    if name.startswith("_"):
        raise SpecError(
            f"{spec.source}: name {name!r} starts with '_', which makes reserved C identifiers "
            f"({name.upper()}_N_INPUTS); choose a name starting with a letter"
        )


def render_c(program: Program, real_type: str = "double") -> dict[str, str]:
    """``{name}.h`` and ``{name}.c`` for ``program``, each checked comment-safe."""
    if real_type not in REALS:
        raise SpecError(f"real type {real_type!r}: use double or float")
    check_name(program.spec)
    m = build(program, real_type)
    env = environment()
    header = check_comment_safe(env.get_template(HEADER).render(m=m))
    source = check_comment_safe(env.get_template(SOURCE).render(m=m))
    return {f"{m.name}.h": header, f"{m.name}.c": source}


__all__ = [
    "ERRORS",
    "SYSTEM_HEADERS",
    "Block",
    "CContext",
    "KitFunction",
    "Slot",
    "build",
    "c_comment",
    "check_comment_safe",
    "check_name",
    "glorot_limit",
    "render_c",
]
