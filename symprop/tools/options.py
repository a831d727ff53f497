"""The options of ``symprop train``, listed once: :class:`TrainArgs`.

Each field is one option: its default, and in its metadata the command-line flags and
argparse's keywords (help, type, choices, metavar, action).  The CLI builds the ``train``
parser from these fields (:func:`add_arguments`) and the parsed options back into a
:class:`TrainArgs` (:meth:`TrainArgs.from_namespace`); the Python entry point
(:func:`symprop.tools.train.run`) takes the same names as keywords; the Dask engine reads the
same record.  Light on purpose: no NumPy, so the CLI's parser costs nothing to build.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

SOLVER_CHOICES = ("sgd", "adam", "lbfgs", "newton-cg", "trust-krylov")


def _columns(text: str) -> tuple[str, ...]:
    """``--drop a,b``: the column names or indices, spaces around each removed, empties skipped."""
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _option(default: Any, *flags: str, **argparse_keywords: Any) -> Any:
    """A TrainArgs field: ``default``, and the flags and argparse keywords of its option."""
    return field(default=default, metadata={"flags": flags, "argparse": argparse_keywords})


def _switch(flag: str, help: str, default: bool = False) -> Any:
    """A boolean TrainArgs field set by a flag without a value: ``--x`` turns on what is off by
    default, ``--no-x`` turns off what is on."""
    return _option(default, flag, action="store_false" if default else "store_true", help=help)


@dataclass(frozen=True)
class TrainArgs:
    """Everything ``symprop train`` was asked to do (the CLI's options, defaults not yet applied:
    None means not given, and the data set's or solver's default applies)."""

    spec: str = field(metadata={"flags": ("spec",), "argparse": {"help": "path of a TOML spec"}})
    data: str = field(
        metadata={
            "flags": ("--data",),
            "argparse": {
                "required": True,
                "help": "xor, digits, iris (scikit-learn's bundled data), PATH.csv or PATH.parquet",
            },
        }
    )
    solver: str | None = _option(
        None,
        "--solver",
        choices=SOLVER_CHOICES,
        help="optimizer (default adam; xor sgd); newton-cg and trust-krylov use the module's Hessian-vector products",
    )
    epochs: int | None = _option(
        None, "--epochs", type=int, help="passes over the train split; lbfgs: max iterations (default 200)"
    )
    lr: float | None = _option(None, "--lr", type=float, help="learning rate (default: adam 0.001, sgd 0.1; xor 2)")
    batch_size: int | None = _option(
        None, "--batch-size", type=int, help="rows per gradient step, sgd and adam (default 32; xor 4)"
    )
    momentum: float | None = _option(None, "--momentum", type=float, help="sgd momentum in [0, 1) (default 0; xor 0.9)")
    nesterov: bool = _switch("--nesterov", "sgd: Nesterov momentum (needs --momentum > 0)")
    lr_schedule: str = _option(
        "constant",
        "--lr-schedule",
        choices=("constant", "invscaling", "adaptive"),
        help="sgd learning-rate schedule, as scikit-learn's (default constant)",
    )
    seed: int = _option(0, "--seed", type=int, help="seed of the init, split and shuffles (default 0)")
    test_fraction: float = _option(0.25, "--test-fraction", type=float, help="share of rows held out (default 0.25)")
    validation_fraction: float = _option(
        0.0, "--validation-fraction", type=float, help="share of the train split kept for validation"
    )
    early_stopping: bool = _switch("--early-stopping", "stop when the validation loss stalls; keep the best")
    patience: int = _option(10, "--patience", type=int, help="epochs without improvement before stopping (default 10)")
    label: str | None = _option(
        None, "--label", metavar="COLUMN", help="label column: name or 0-based index (default: the last)"
    )
    drop: tuple[str, ...] = _option(
        (), "--drop", type=_columns, metavar="COL[,COL...]", help="columns to ignore: names or 0-based indices"
    )
    delimiter: str | None = _option(
        None, "--delimiter", metavar="CHAR", help="CSV delimiter (default: sniffed; 'tab' for a tab)"
    )
    save: str | None = _option(
        None,
        "-o",
        "--output",
        "--save",
        metavar="PARAMS.npz",
        help="write the trained params file (with the spec hash, classes, feature names)",
    )
    plot: str | None = _option(None, "--plot", metavar="CURVE.png", help="write a PNG of the loss and metric per epoch")
    out: str = _option(".symprop", "--module-dir", metavar="DIR", help="folder of the generated module (.symprop)")
    mode: str = _option("auto", "--mode", help="generator mode: auto (default), vectorized or unrolled")
    engine: str = _option("local", "--engine", choices=("local", "dask"), help="where to train (default local)")
    scheduler: str | None = _option(
        None, "--scheduler", metavar="ADDRESS", help="dask: join this scheduler (default: a LocalCluster)"
    )
    workers: int | None = _option(  # None: not given (the LocalCluster's default is 2)
        None, "--workers", type=int, help="dask: worker processes of the LocalCluster (default 2)"
    )
    connect_timeout: float | None = _option(  # None: not given (default CONNECT_TIMEOUT seconds)
        None,
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="dask --scheduler: seconds to connect and get the scheduler's handshake (default 10)",
    )
    force: bool = _switch("--force", "replace existing --save, --plot or module files symprop did not write")
    partitions: int | None = _option(
        None, "--partitions", type=int, help="dask: partitions of the rows (default: one per worker)"
    )
    class_weight: str | None = _option(
        None, "--class-weight", choices=("balanced",), help="weigh classes n / (classes * count), as scikit-learn's"
    )
    stratify: bool = _switch("--no-stratify", "classification: split without stratifying", default=True)
    missing: str = _option(
        "error",
        "--missing",
        choices=("error", "drop", "mean"),
        help="blank feature cells: error (default), drop the rows, or fill the train-split mean",
    )
    metrics_json: str | None = _option(
        None, "--metrics-json", metavar="PATH.json", help="write the history and final metrics as JSON"
    )

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace, **replaced: Any) -> TrainArgs:
        """The options parsed by a parser that :func:`add_arguments` built (``replaced``: values
        the caller converted further, such as the delimiter)."""
        values = {f.name: getattr(namespace, f.name) for f in fields(cls)}
        return cls(**{**values, **replaced})

    @classmethod
    def of(cls, spec: str, data: str, **options: Any) -> TrainArgs:
        """From keywords named as the fields; None (not given) keeps a field's default."""
        return cls(spec, data, **{k: v for k, v in options.items() if v is not None})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argument per :class:`TrainArgs` field, in field order (the ``--help`` order)."""
    for f in fields(TrainArgs):
        flags = f.metadata["flags"]
        keywords = dict(f.metadata["argparse"])
        if flags[0].startswith("-"):
            keywords.setdefault("dest", f.name)
            if keywords.get("action") not in ("store_true", "store_false") and "required" not in keywords:
                keywords.setdefault("default", f.default)
        parser.add_argument(*flags, **keywords)


__all__ = ["SOLVER_CHOICES", "TrainArgs", "add_arguments"]
