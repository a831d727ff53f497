"""``symprop train --engine dask``: full-batch training on data that lives on Dask workers.

What happens, in order (the client never holds the rows):

1. Connect: ``--scheduler ADDRESS`` joins a running cluster; otherwise an embedded
   ``distributed.LocalCluster`` of ``--workers`` processes (one thread each) bound to 127.0.0.1,
   without a dashboard, closed at the end.
2. Read: ``dask.dataframe.read_csv`` (a path or a glob; delimiter sniffed from the first file's
   first 64 KiB, or ``--delimiter``) or ``read_parquet``.  Each partition becomes float64
   arrays (X, Y) on a worker; the rows of a partition go to its test split with probability
   ``--test-fraction``, drawn from ``default_rng([seed, partition number])``.  The arrays are
   held as futures (persisted) and keep their lineage, so Dask can recompute a partition whose
   worker died.
3. Standardize: per partition (rows, mean, M2) of the train rows, combined on the client by
   Chan's pairwise formula (small arrays only); the workers apply it.  Regression targets the
   same way when the last layer is identity.
4. Train: per iteration the flat params go to the cluster once, as one small task the partition
   tasks depend on (a scatter would have no lineage: with a worker killed mid-scatter it hung); each partition
   computes the generated module's ``loss_and_grad`` on its train rows and returns the
   sample-weighted sums (rows, rows·loss, rows·grad); a pairwise tree of ``combine`` tasks adds
   them (depth ⌈log2 partitions⌉); the client divides by the rows.  So the loss and gradient
   are those of the full batch, as ``--engine local`` computes them, up to summation order.
   Solvers: ``lbfgs`` (scipy, as local) and full-batch ``sgd``; mini-batch options (Adam,
   ``--batch-size``) are refused.  Every iteration checks that the rows summed are all the
   rows: a lost partition can never silently change the gradient.
5. Faults: gradient tasks are retried (``retries=2``) and lost partitions recomputed from their
   lineage; if Dask gives up, the run fails with one line naming the cause, writing nothing.

The generated module's source is sent once (a task, like the params) and compiled once per worker process.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import numpy as np

from symprop.io import quote, show
from symprop.spec import Spec
from symprop.tools.datasets import is_regression, non_finite_label
from symprop.tools.loader import cached_module
from symprop.tools.loop import (
    Diverged,
    Failed,
    History,
    TrainError,
    accuracy,
    fold_standardization,
    fold_targets,
    train,
)
from symprop.tools.modcache import Products, prepare_module
from symprop.tools.plotting import loss_label, render_plot
from symprop.tools.progress import Progress, sayer, short_list
from symprop.tools.tables import (
    DataError,
    TableOptions,
    check_header,
    check_table_header,
    is_parquet_path,
    pick_columns,
    sniff_file,
)
from symprop.tools.targets import Classes, one_hot

RETRIES = 2
RESULT_TIMEOUT = 600  # seconds to wait for one reduction before calling the cluster failed
CONNECT_TIMEOUT = 10.0  # seconds for --scheduler: the TCP connection, then the scheduler's handshake
MAX_CONNECT_TIMEOUT = 3600.0
HANDSHAKE_BYTES = 1 << 20  # a Dask handshake is a few hundred bytes; more is not a Dask scheduler


class EngineError(TrainError):
    """The Dask engine cannot run as asked; one line naming the fix (exit 2)."""


class ClusterFailed(Failed):
    """The cluster lost work Dask could not recover; one line, exit 1, nothing written."""


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask.dataframe as dd
        import distributed
    except ImportError:
        raise EngineError('--engine dask needs dask and distributed: pip install "symprop[dask]"') from None
    return dd, distributed


# ------------------------------------------------------------- worker side --
@dataclass
class Part:
    """One partition on a worker: train and test rows, features and encoded targets (float64)."""

    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray


@dataclass(frozen=True)
class Encoding:
    """How to turn a pandas partition into arrays (decided on the client from column names and labels)."""

    features: tuple[str, ...]
    label: str
    task: str
    classes: Classes  # classification: the classes in output order (none for regression)
    outputs: int
    test_fraction: float
    seed: int


def encode_partition(frame: Any, encoding: Encoding, number: int, test: np.ndarray | None = None) -> Part:
    """A partition's arrays; ``test`` (one bool per row) says which rows are held out, as decided
    on the client for the whole file (the local engine's split); None: drawn per partition."""
    try:
        X = frame[list(encoding.features)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(c for c in encoding.features if frame[c].dtype.kind not in "biuf")
        raise DataError(f"column {quote(bad)} is not numeric; drop it with --drop or choose it as --label") from None
    if not np.all(np.isfinite(X)):
        j = int(np.argwhere(~np.isfinite(X))[0][1])
        raise DataError(f"column {quote(encoding.features[j])} has a value that is empty or not a finite number")
    if encoding.task == "regression":
        Y = frame[encoding.label].to_numpy().astype(np.float64).reshape(-1, 1)
    else:
        Y = one_hot(label_codes(frame, encoding), encoding.outputs)
    if test is None:
        test = np.random.default_rng([encoding.seed, number]).random(X.shape[0]) < encoding.test_fraction
    if test.shape != (X.shape[0],):
        raise DataError(f"partition {number} has {X.shape[0]} rows, but its split mask has {test.shape[0]}")
    return Part(X[~test], Y[~test], X[test], Y[test])


def label_codes(frame: Any, encoding: Encoding) -> np.ndarray:
    """The class number of each row of a partition (for a stratified split decided on the client)."""
    return encoding.classes.codes(str(v).strip() for v in frame[encoding.label].to_numpy())


def split_masks(sizes: Sequence[int], encoding: Encoding, codes: np.ndarray | None, stratify: bool) -> list[np.ndarray]:
    """The local engine's test split (:func:`symprop.tools.datasets.split_indices` over the rows in file
    order, stratified by ``codes`` when given), cut into one mask per partition."""
    from symprop.tools.datasets import _strata_fit, split_indices

    n = int(sum(sizes))
    strata = _strata_fit(codes, encoding.test_fraction) if stratify and codes is not None else None
    _, test = split_indices(n, encoding.test_fraction, encoding.seed, strata)
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [is_test[offsets[k] : offsets[k + 1]] for k in range(len(sizes))]


def moments(part: Part, which: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean, M2 = Σ (v - mean)²) of the train rows' features ("X") or targets ("Y")."""
    values = part.X if which == "X" else part.Y
    n = values.shape[0]
    if n == 0:
        return 0, np.zeros(values.shape[1]), np.zeros(values.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
    return n, mean, m2


def combine_moments(
    a: tuple[int, np.ndarray, np.ndarray], b: tuple[int, np.ndarray, np.ndarray]
) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (rows, mean, M2)."""
    na, ma, sa = a
    nb, mb, sb = b
    if na == 0:
        return b
    if nb == 0:
        return a
    n = na + nb
    delta = mb - ma
    with np.errstate(over="ignore", invalid="ignore"):
        return n, ma + delta * (nb / n), sa + sb + delta**2 * (na * nb / n)


def standardize(part: Part, mean: np.ndarray, scale: np.ndarray, which: str) -> Part:
    if which == "X":
        return Part((part.X - mean) / scale, part.Y, (part.X_test - mean) / scale, part.Y_test)
    return Part(part.X, (part.Y - mean) / scale, part.X_test, (part.Y_test - mean) / scale)


Sums = tuple[int, float, np.ndarray]  # rows, rows * loss, rows * flat gradient


def partition_grad(source: str, keys: Sequence[str], flat: np.ndarray, part: Part) -> Sums:
    from symprop.tools.solvers import FlatParams

    module = cached_module(source)
    n = part.X.shape[0]
    if n == 0:
        return 0, 0.0, np.zeros_like(flat)
    shapes = module.PARAM_SHAPES
    params = FlatParams.of({k: np.zeros(shapes[k]) for k in keys}, list(keys), np.float64)
    params.vector[...] = flat
    value, grads = module.loss_and_grad(params.views, part.X, part.Y)
    return n, n * value, n * params.gather(grads, np.empty_like(flat))


def _value(x: Any) -> Any:
    return x


def combine(a: Sums, b: Sums) -> Sums:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


@dataclass
class Scores:
    """Per-partition sums for the final report (raw target units)."""

    train_rows: int = 0
    train_loss: float = 0.0
    train_right: float = 0.0
    test_rows: int = 0
    test_loss: float = 0.0
    test_right: float = 0.0
    test_sse: float = 0.0
    test_sum: float = 0.0
    test_sum_sq: float = 0.0


def partition_scores(source: str, params: dict[str, np.ndarray], part: Part, y_mean: Any, y_scale: Any) -> Scores:
    module = cached_module(source)
    s = Scores()

    def raw(Y: np.ndarray) -> np.ndarray:
        return Y if y_mean is None else Y * y_scale + y_mean

    if part.X.shape[0]:
        s.train_rows = part.X.shape[0]
        s.train_loss = s.train_rows * module.loss(params, part.X, raw(part.Y))
        s.train_right = s.train_rows * accuracy(module.forward(params, part.X), part.Y)
    if part.X_test.shape[0]:
        Y = raw(part.Y_test)
        s.test_rows = part.X_test.shape[0]
        outputs = module.forward(params, part.X_test)
        s.test_loss = s.test_rows * module.loss(params, part.X_test, Y)
        s.test_right = s.test_rows * accuracy(outputs, part.Y_test)
        s.test_sse = float(np.sum((outputs - Y) ** 2))
        s.test_sum = float(np.sum(Y))
        s.test_sum_sq = float(np.sum(Y**2))
    return s


def add_scores(a: Scores, b: Scores) -> Scores:
    return Scores(*(x + y for x, y in zip(vars(a).values(), vars(b).values(), strict=True)))


def check_csv_headers(data: str, delimiter: str | None) -> None:
    """Refuse, before any cluster starts, a CSV (each file a glob matches here) or Parquet file (a file,
    or the files of a data-set folder) whose header names a column twice: pandas would silently
    rename the second ``a`` to ``a.1``."""
    import glob

    p = Path(data)
    files: list[str | Path] = []
    if is_parquet_path(data) or p.is_dir():
        files += sorted(q for q in p.rglob("*") if is_parquet_path(q)) if p.is_dir() else [p]
    elif data.lower().endswith(".csv"):
        files += sorted(glob.glob(data))
    for path in files:
        check_table_header(path, delimiter)


# ------------------------------------------------------------- client side --
def tree_reduce(client: Any, futures: list[Any], fn: Any) -> Any:
    """Pairwise reduction on the workers: ⌈log2 n⌉ levels of ``fn`` tasks; returns one future."""
    level = list(futures)
    while len(level) > 1:
        nxt = [
            client.submit(fn, level[i], level[i + 1], pure=False, retries=RETRIES) for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)"
_ADDRESS = re.compile(rf"(?:tcp://)?(?P<host>{_HOST}):(?P<port>[0-9]{{1,5}})")


def parse_scheduler(address: str) -> tuple[str, int]:
    """(host, port) of a ``--scheduler`` address: ``tcp://HOST:PORT`` or ``HOST:PORT`` (HOST a name,
    an IPv4 address or a bracketed IPv6 one; PORT 1..65535). Anything else (tls://, ucx://,
    inproc://, no port, an empty string) is an EngineError, one line."""
    match = _ADDRESS.fullmatch(address)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        scheme = address.split("://", 1)[0] if "://" in address else ""
        why = f"the {show(scheme)}:// protocol is not supported; " if scheme and scheme != "tcp" else ""
        raise EngineError(
            f"--scheduler {quote(address)}: {why}give the address as tcp://HOST:PORT or HOST:PORT "
            "(e.g. tcp://127.0.0.1:8786)"
        )
    return match["host"].strip("[]"), int(match["port"])


def check_connect_timeout(seconds: float) -> None:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and 0 < seconds <= MAX_CONNECT_TIMEOUT):
        raise EngineError(
            f"--connect-timeout must be a number of seconds in (0, {MAX_CONNECT_TIMEOUT:g}], got {seconds}"
        )


def _receive(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        data += chunk
    return data


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Check, within ``timeout`` seconds in all, that a Dask scheduler answers at ``address``: open a
    TCP connection and read its greeting (a Dask server sends its handshake as soon as it accepts:
    8 bytes of length, then that many bytes of frames, a few hundred in all). A silent server, one
    that closes, and one that sends anything else are EngineErrors naming the address, one line."""
    host, port = parse_scheduler(address)
    deadline = time.monotonic() + timeout
    where = f"--scheduler {quote(address)}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            (size,) = struct.unpack("<Q", _receive(sock, 8, deadline))
            if not 16 <= size <= HANDSHAKE_BYTES:
                raise EngineError(
                    f"{where}: the server there does not speak Dask's protocol (its greeting announces "
                    f"{size:,} bytes); check the host and port"
                )
            frames = _receive(sock, size, deadline)
            (count,) = struct.unpack("<Q", frames[:8])
            if not 1 <= count <= 64 or 8 * (count + 1) > size:
                raise EngineError(
                    f"{where}: the server there does not speak Dask's protocol (its greeting is not a Dask "
                    "handshake); check the host and port"
                )
    except TimeoutError:
        raise EngineError(
            f"{where}: no Dask handshake within {timeout:g} s (the server accepted but did not answer, or the host "
            "does not respond); check the address, or raise --connect-timeout"
        ) from None
    except OSError as exc:
        reason = show(exc.strerror or str(exc) or type(exc).__name__)
        raise EngineError(
            f"{where}: cannot connect ({reason}); check the address and that the scheduler runs"
        ) from None


def _quiet_dask_logs() -> None:
    """Silence distributed's, tornado's and asyncio's loggers, children included (distributed's config
    gives some, e.g. ``tornado.application``, their own level): on shutdown after an error or
    Ctrl-C, no pages of tracebacks."""
    prefixes = ("distributed", "tornado", "asyncio")
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".", 1)[0] in prefixes]
    for name in (*prefixes, *names):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _in_finalizer(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a ``__del__`` (at any depth): Python ignores an exception raised
    there, printing "Exception ignored in ..." and carrying on as if nothing happened."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


@contextmanager
def _quiet_on_sigint() -> Iterator[Callable[[], None]]:
    """While the cluster runs, a Ctrl-C first silences the cluster's logging, then raises
    KeyboardInterrupt: callbacks that fail on the event loop thread as the interrupt unwinds
    (distributed's own ``sync`` can) then print nothing.

    A Ctrl-C that lands while the main thread runs a finalizer (a dropped Dask ``Future``'s
    ``__del__``, between two iterations) would be swallowed there, with a traceback on stderr, and
    training would go on: it is then only recorded, and the check this yields raises it at the next
    point the run reaches (each gradient, and before anything is written)."""
    pending = threading.Event()

    def check() -> None:
        if pending.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def interrupted(signum: int, frame: FrameType | None) -> None:
        pending.set()
        _quiet_dask_logs()
        if not _in_finalizer(frame):
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """While starting worker processes, ignore SIGINT, so the workers inherit that: a Ctrl-C then reaches
    only this process, which closes the cluster, instead of every worker printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _session(client: Any, *closing: Any) -> Iterator[Any]:
    """Yield ``client``; on any error (a Ctrl-C too) silence the cluster's logs first; at the end close
    the client, then whatever else ``closing`` holds (the LocalCluster), ignoring errors in closing."""
    try:
        yield client
    except BaseException:
        _quiet_dask_logs()
        raise
    finally:
        for thing in (client, *closing):
            with suppress(Exception):
                thing.close()


@contextmanager
def connect(scheduler: str | None, workers: int | None, timeout: float | None = None) -> Iterator[Any]:
    _, distributed = _import_dask()
    if scheduler is not None:
        import dask

        seconds = CONNECT_TIMEOUT if timeout is None else timeout
        probe_scheduler(scheduler, seconds)
        host, port = parse_scheduler(scheduler)
        address = f"tcp://{'[' + host + ']' if ':' in host else host}:{port}"
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": f"{seconds}s"}):
                client = distributed.Client(address, timeout=f"{seconds}s")
        except Exception as exc:  # anything the client raises is one line
            _quiet_dask_logs()
            detail = show(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise EngineError(f"--scheduler {quote(scheduler)}: cannot connect ({detail}); check the address") from None
        with _session(client) as joined:
            yield joined
        return
    n = 2 if workers is None else workers
    if n < 1:
        raise EngineError(f"--workers must be an integer >= 1, got {n}")
    with _sigint_ignored():
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,  # CRITICAL: a Ctrl-C must not print the workers' closed-stream errors (issue 22 E26)
        )
    with _session(distributed.Client(cluster), cluster) as local:
        yield local


def read_frame(dd: Any, client: Any, data: str, delimiter: str | None, partitions: int = 1) -> Any:
    """The data as a Dask frame of about ``partitions`` partitions (CSV: blocks of total size /
    partitions; Parquet: its row groups, repartitioned when fewer)."""
    import glob
    import os

    lower = data.lower()
    if is_parquet_path(data) or Path(data).is_dir():
        frame = dd.read_parquet(data)
        return frame if frame.npartitions == partitions else frame.repartition(npartitions=partitions)
    if not lower.endswith(".csv"):
        raise EngineError(
            f"--engine dask reads CSV files (a path or glob ending in .csv) or Parquet, not {quote(data)}"
        )
    matches = sorted(glob.glob(data))
    if not matches:
        raise DataError(f"{data}: no file matches; give a CSV path or glob")
    used = (
        delimiter
        if delimiter is not None
        else client.submit(sniff_file, matches[0], pure=False).result(timeout=RESULT_TIMEOUT)
    )
    total = sum(os.path.getsize(m) for m in matches)
    blocksize = max(1024, math.ceil(total / max(partitions, 1)) + 1)
    frame = dd.read_csv(data, sep=used, skipinitialspace=True, blocksize=blocksize, encoding="utf-8-sig")
    # blocks end at line ends, so their count can differ by one or two: repartition to exactly N
    return frame if frame.npartitions == partitions else frame.repartition(npartitions=partitions)


def encoding_for(
    dd: Any, frame: Any, spec: Spec, data: str, options: TableOptions, test_fraction: float, seed: int
) -> tuple[Encoding, tuple[str, ...]]:
    header = [str(c) for c in frame.columns]
    check_header(data, header)
    cols = pick_columns(Path(data), header, options)
    features = tuple(header[j] for j in cols.features)
    label = header[cols.label]
    if len(features) != spec.inputs:
        raise DataError(
            f"{spec.source}: inputs = {spec.inputs}, but {data} has {len(features)} feature columns; "
            f"set inputs = {len(features)} in the spec, or choose the label with --label and ignore columns with --drop"
        )
    values = list(frame[label].unique().compute())
    import pandas as pd

    missing = [v for v in values if v is None or pd.isna(v) or non_finite_label(v)]
    if missing:
        bad = missing[0]
        raise DataError(
            f"{data}: the label column {quote(label)} holds {quote(bad)} (missing or not a finite number); "
            "fix or remove those rows: NaN is never a class"
        )
    uniques = [str(v).strip() for v in values]
    if is_regression(uniques, spec):
        if spec.outputs != 1:
            raise DataError(f"{spec.source}: regression needs units = 1 in the last [[layers]] table")
        return Encoding(features, label, "regression", Classes((), False), 1, test_fraction, seed), ()
    classes = Classes.of(uniques)
    k = len(classes.keys)
    if k < 2:
        raise DataError(f"{data}: the label column has {k} class(es); classification needs at least two")
    if not (spec.outputs == k or (spec.outputs == 1 and k == 2)):
        raise DataError(
            f"{spec.source}: {data} has {k} classes, but the last layer has units = {spec.outputs}; "
            f"set units = {k} in the last [[layers]] table"
        )
    return Encoding(features, label, "classification", classes, spec.outputs, test_fraction, seed), classes.names


def _stats(client: Any, parts: list[Any], which: str, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    from symprop.tools.datasets import standardizer

    each = [client.submit(moments, p, which, pure=False, retries=RETRIES) for p in parts]
    n, mean, m2 = tree_reduce(client, each, combine_moments).result(timeout=RESULT_TIMEOUT)
    if n == 0:
        raise DataError("no training rows: the data is empty or --test-fraction took them all")
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.sqrt(m2 / n)
    # the same checks and constant-column rule as the local engine
    check = np.vstack([mean, mean + scale, mean - scale])
    standardizer(check, names)
    scale = np.where(scale == 0, 1.0, scale)
    return mean, scale, int(n)


def run_dask(args: Any, spec: Spec, use: Any, stream: IO[str]) -> int:
    """``symprop train --engine dask`` (``args``: the TrainArgs, already checked by symprop.tools.train,
    as have the output paths; ``use``: the solver, epochs, learning rate and momentum chosen)."""
    from symprop.tools.paramfile import Saved, params_bytes

    solver, epochs, lr, momentum = use.solver, use.epochs, use.lr, use.momentum
    if solver not in ("lbfgs", "sgd"):
        raise EngineError(f"--engine dask trains on the full batch: --solver {solver} is refused; use lbfgs or sgd")
    if args.batch_size is not None:
        raise EngineError("--engine dask trains on the full batch: --batch-size (mini-batches) is refused; drop it")
    if args.validation_fraction or args.early_stopping:
        raise EngineError("--validation-fraction and --early-stopping are for --engine local only; drop them")
    if not 0 <= args.test_fraction < 1:
        raise DataError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    partitions = getattr(args, "partitions", None)
    if partitions is not None and partitions < 1:
        raise EngineError(f"--partitions must be an integer >= 1, got {partitions}")
    dd, distributed = _import_dask()
    out_dir = Path(args.out)
    save_path = None if args.save is None else Path(args.save)
    plot_path = None if args.plot is None else Path(args.plot)
    prepared = prepare_module(spec, out_dir, args.mode, force=args.force)
    source = prepared.source if prepared.source is not None else prepared.path.read_text(encoding="utf-8")
    keys = list(spec.param_shapes)
    say = sayer(stream)

    options = TableOptions(args.label, args.drop, args.delimiter)
    check_csv_headers(args.data, args.delimiter)
    try:
        with _quiet_on_sigint() as interrupt, connect(args.scheduler, args.workers, args.connect_timeout) as client:
            where = args.scheduler or f"LocalCluster of {args.workers or 2} worker processes on 127.0.0.1"
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            wanted = partitions or n_workers  # default: one partition per worker
            frame = read_frame(dd, client, args.data, args.delimiter, wanted)
            encoding, classes = encoding_for(dd, frame, spec, args.data, options, args.test_fraction, args.seed)
            delayed_parts = frame.to_delayed()
            # the split is decided before training, over the rows in file order, exactly as --engine
            # local decides it (same seed, same stratification): only row counts (and, for a
            # stratified split, the class codes) come to the client
            sizes = client.compute([distributed_delayed(len)(d) for d in delayed_parts], sync=True)
            codes = None
            if encoding.task == "classification" and getattr(args, "stratify", True):
                each = client.compute([distributed_delayed(label_codes)(d, encoding) for d in delayed_parts], sync=True)
                codes = np.concatenate(each) if each else np.empty(0, dtype=np.int64)
            masks = split_masks(sizes, encoding, codes, getattr(args, "stratify", True))
            parts = client.compute(
                [distributed_delayed(encode_partition)(d, encoding, i, masks[i]) for i, d in enumerate(delayed_parts)],
                retries=RETRIES,
            )
            mean, scale, n_rows = _stats(client, parts, "X", encoding.features)
            parts = client.map(standardize, parts, mean=mean, scale=scale, which="X", pure=False, retries=RETRIES)
            y_mean = y_scale = None
            if encoding.task == "regression" and spec.layers[-1].activation == "identity":
                y_mean, y_scale, _ = _stats(client, parts, "Y", (encoding.label,))
                parts = client.map(
                    standardize, parts, mean=y_mean, scale=y_scale, which="Y", pure=False, retries=RETRIES
                )
            source_future = client.submit(_value, source, pure=False)
            prepared.announce(say, spec.n_params)
            say(f"engine: dask ({where}), {len(parts)} partitions, {n_rows} train rows on the workers")
            say(f"features: {short_list(encoding.features)}")
            say(
                f"label: {quote(encoding.label)}"
                + (f", classes: {short_list(classes)}" if classes else " (regression target)")
            )

            def gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
                # Sent once per iteration as one small task that the partition tasks depend on (not
                # embedded in each of them); unlike scattered data it has lineage, so a worker that
                # dies holding it costs a recompute, not a hang (scatter(broadcast=True) hung then).
                params_future = client.submit(_value, np.array(flat, dtype=np.float64), pure=False)
                sums = [
                    client.submit(partition_grad, source_future, keys, params_future, p, pure=False, retries=RETRIES)
                    for p in parts
                ]
                n, loss_sum, grad_sum = tree_reduce(client, sums, combine).result(timeout=RESULT_TIMEOUT)
                if n != n_rows:
                    raise ClusterFailed(f"a gradient summed {n} rows instead of {n_rows}; the run was stopped")
                return loss_sum / n, grad_sum / n

            def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
                """One full-batch gradient; a scatter or connection that breaks (a worker died) is tried
                again on the workers left, up to RETRIES more times; lost partitions are recomputed."""
                for attempt in range(RETRIES + 1):
                    interrupt()
                    try:
                        return gradient(flat)
                    except (distributed.comm.CommClosedError, OSError) as exc:
                        if attempt == RETRIES:
                            raise
                        say(f"note: {type(exc).__name__} (a worker was lost?); computing this gradient again")
                        time.sleep(0.5 * (attempt + 1))
                raise AssertionError("unreachable")

            what = "lbfgs (scipy L-BFGS-B" if solver == "lbfgs" else f"sgd (lr {lr:g}, momentum {momentum:g}"
            unit = "iterations" if solver == "lbfgs" else "epochs"
            say(f"training: {what}, full batch on the workers), {epochs} {unit}")
            progress = Progress(epochs, stream, unit="iteration" if solver == "lbfgs" else "epoch")
            module = prepared.module
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                try:
                    result = train(
                        module,
                        None,
                        None,
                        solver=solver,
                        epochs=epochs,
                        lr=lr,
                        batch_size=max(n_rows, 1),
                        momentum=momentum,
                        nesterov=args.nesterov,
                        lr_schedule=args.lr_schedule,
                        seed=args.seed,
                        classification=encoding.task == "classification",
                        objective=objective,
                        n_rows=n_rows,
                        on_epoch=progress,
                    )
                finally:
                    progress.close()
            raw_params = result.params
            if y_mean is not None and y_scale is not None:
                raw_params = fold_targets(result.params, y_mean, y_scale)
            scores_each = [
                client.submit(partition_scores, source_future, raw_params, p, y_mean, y_scale, pure=False)
                for p in parts
            ]
            scores = tree_reduce(client, scores_each, add_scores).result(timeout=RESULT_TIMEOUT)
    except (distributed.KilledWorker, distributed.comm.CommClosedError, OSError, TimeoutError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise ClusterFailed(
            f"the Dask cluster failed and Dask could not recover ({type(exc).__name__}: {detail})"
        ) from None
    interrupt()  # a Ctrl-C swallowed by a finalizer after the last gradient or while closing: write nothing
    history: History = result.history
    train_loss = scores.train_loss / scores.train_rows
    if not math.isfinite(train_loss):
        raise Diverged(f"the final train loss is {train_loss}; lower --lr (now {lr:g})")
    for line in progress.summary(history):
        say(line)
    products = Products()
    if save_path is not None:
        saved = fold_standardization(raw_params, mean, scale)
        products.add(
            save_path,
            params_bytes(spec, Saved(saved, classes, encoding.features)),
            f"saved params: {save_path} (standardization folded in: they take raw features and give raw targets)",
        )
    if plot_path is not None:
        title = f"{spec.name} on {args.data} (dask)"
        products.add(plot_path, render_plot(history, title, loss_label(y_mean)), f"plot: {plot_path}")
    products.write(prepared, say)  # all or nothing
    say(f"train loss: {train_loss:.10g}")
    if encoding.task == "classification":
        say(f"train accuracy: {scores.train_right / scores.train_rows:.4f}")
        if scores.test_rows:
            say(f"test accuracy: {scores.test_right / scores.test_rows:.4f}")
    elif scores.test_rows:
        m = scores.test_rows
        sst = scores.test_sum_sq - scores.test_sum**2 / m
        say(f"test loss: {scores.test_loss / m:.6g}")
        say(f"test rmse: {math.sqrt(scores.test_sse / m):.6g}")
        say(f"test r2: {1 - scores.test_sse / sst if sst > 0 else 0.0:.4f}")
    return 0


def distributed_delayed(fn: Any) -> Any:
    import dask

    return dask.delayed(fn, pure=True)  # type: ignore[attr-defined]


__all__ = [
    "EngineError",
    "Part",
    "combine",
    "combine_moments",
    "encode_partition",
    "partition_grad",
    "run_dask",
    "tree_reduce",
]
