"""``symprop train``: check every option, output path, the spec and the data before any work; train
the spec's generated module; then write the module (if it was not cached), the params, the plot
and the metrics all at once, or nothing.

The jobs live in their own modules, re-exported here (``symprop.tools.train.train`` and the
other names of earlier releases still import):

* :mod:`symprop.tools.options`: the options, listed once (:class:`TrainArgs`);
* :mod:`symprop.tools.loop`: the training loop (:func:`train`, :class:`History`, the errors);
* :mod:`symprop.tools.modcache`: the cached module (:func:`prepare_module`, :func:`commit`);
* :mod:`symprop.tools.loader`: generated source to a module (:func:`load_generated`);
* :mod:`symprop.tools.progress`: what is printed while training (:class:`Progress`, :func:`sayer`);
* :mod:`symprop.tools.scores`: the final scores (:class:`Report`);
* :mod:`symprop.tools.plotting`: the learning curves (:func:`render_plot`);
* :mod:`symprop.tools.distributed`: ``--engine dask``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from symprop import __version__
from symprop.io import Output, check_folder, check_outputs, data_inputs, is_symprop_png, quote, show
from symprop.spec import Spec
from symprop.tools.loader import load_generated, module_from_source
from symprop.tools.loop import (
    Diverged,
    Failed,
    History,
    Result,
    TrainError,
    accuracy,
    check_options,
    fold_standardization,
    fold_targets,
    r2_score,
    train,
)
from symprop.tools.modcache import Prepared, Products, commit, ensure_module, header, prepare_module
from symprop.tools.options import TrainArgs
from symprop.tools.paramfile import Saved, is_params_file, params_bytes
from symprop.tools.plotting import loss_label, plot_available, render_plot, save_plot
from symprop.tools.progress import Progress, sayer, short_list
from symprop.tools.scores import Report, balanced_weights, confusion, per_class_scores
from symprop.tools.solvers import NEWTON_SOLVERS, SCIPY_METHODS, make_step_solver
from symprop.tools.targets import class_codes


@dataclass(frozen=True)
class Defaults:
    """The step options whose default depends on the data set and the solver (see :func:`chosen`)."""

    solver: str
    epochs: int
    lr: float
    batch_size: int
    momentum: float


# Chosen by trying breast_cancer, wine, diabetes (tests/test_train.py) and digits as a new user would:
# Adam at scikit-learn's rate with batch 32 converges on all of them within 200 epochs.
GENERAL_DEFAULTS = Defaults("adam", 200, 0.001, 32, 0.0)
SOLVER_DEFAULTS = {
    "adam": GENERAL_DEFAULTS,
    "sgd": Defaults("sgd", 200, 0.1, 32, 0.0),
    "lbfgs": Defaults("lbfgs", 200, 1.0, 32, 0.0),  # lr and batch size unused: full batch, line search
    "newton-cg": Defaults("newton-cg", 100, 1.0, 32, 0.0),  # iterations; each solves with hvp by CG
    "trust-krylov": Defaults("trust-krylov", 100, 1.0, 32, 0.0),
}
# Built-in sets too small for the general defaults: xor is four points, one full batch per epoch,
# and needs many more, larger steps; iris (112 train rows, 4 batches per epoch) reaches 0.87 test
# accuracy with Adam at 0.001 in 200 epochs and 0.97 at 0.01.
DATA_DEFAULTS = {"xor": Defaults("sgd", 1000, 2.0, 4, 0.9), "iris": Defaults("adam", 200, 0.01, 32, 0.0)}


def defaults_for(data: str, solver: str | None = None) -> Defaults:
    special = DATA_DEFAULTS.get(data)
    if special is not None and solver in (None, special.solver):
        return special
    return SOLVER_DEFAULTS.get(solver or GENERAL_DEFAULTS.solver, GENERAL_DEFAULTS)


def chosen(args: TrainArgs) -> Defaults:
    """The solver, epochs, learning rate, batch size and momentum a run uses: each as given, else
    the default for the data set and solver (:func:`defaults_for`)."""
    base = defaults_for(args.data, args.solver)
    return Defaults(
        args.solver or base.solver,
        base.epochs if args.epochs is None else args.epochs,
        base.lr if args.lr is None else args.lr,
        base.batch_size if args.batch_size is None else args.batch_size,
        base.momentum if args.momentum is None else args.momentum,
    )


def product_outputs(
    module_path: Path, save: str | None = None, plot: str | None = None, metrics: str | None = None
) -> tuple[list[Output], Path | None, Path | None, Path | None]:
    """The outputs ``train`` may write, each with the test that recognises an earlier one of ours:
    the module (generated header), ``-o/--output`` (a params file holding symprop's mark), ``--plot``
    (a PNG whose Software text starts with ``symprop``), ``--metrics-json`` (a JSON object whose
    ``symprop`` key holds the version)."""
    save_path = None if save is None else Path(save)
    plot_path = None if plot is None else Path(plot)
    metrics_path = None if metrics is None else Path(metrics)
    outputs = [Output("--module-dir", module_path)]
    if save_path is not None:
        outputs.append(Output("-o/--output", save_path, is_params_file, "params file"))
    if plot_path is not None:
        outputs.append(Output("--plot", plot_path, is_symprop_png, "plot"))
    if metrics_path is not None:
        outputs.append(Output("--metrics-json", metrics_path, is_metrics_json, "metrics file"))
    return outputs, save_path, plot_path, metrics_path


def is_metrics_json(path: Path) -> bool:
    """Did ``train --metrics-json`` write ``path``?  A JSON object (read at most 16 MiB) with a ``symprop`` string."""
    import json

    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(1 << 24))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("symprop"), str)


def run(spec_path: str, data: str, *, stdout: IO[str] | None = None, **options: Any) -> int:
    """``symprop train``: validate everything (options, output paths, spec, data) before any work,
    train, and only then write the module (if it was not cached), the params and the plot.

    Raises SpecError, DataError, TrainError or OutputError (one line each) before anything is
    written; a run that diverges raises Diverged, also with nothing written; products are written
    all at once (:func:`commit`) only after everything succeeded.
    """
    return run_args(TrainArgs.of(spec_path, data, **options), stdout)


def run_args(args: TrainArgs, stdout: IO[str] | None = None) -> int:
    """:func:`run` with the options as one :class:`TrainArgs` (the CLI builds it from its parsed options)."""
    return _run(args, stdout if stdout is not None else sys.stdout)


def check_engine_options(args: TrainArgs) -> None:
    """Refuse options the chosen engine would ignore, and a malformed --scheduler, before any work."""
    if args.engine not in ("local", "dask"):
        raise TrainError(f"--engine {show(args.engine)}: use local or dask")
    given = [
        name
        for name, value in (
            ("--scheduler", args.scheduler),
            ("--workers", args.workers),
            ("--connect-timeout", args.connect_timeout),
        )
        if value is not None
    ]
    if args.engine == "local" and given:
        verb, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
        raise TrainError(f"{' and '.join(given)} {verb} to --engine dask only; add --engine dask or drop {them}")
    if args.engine != "dask":
        return
    from symprop.tools.distributed import check_connect_timeout, parse_scheduler

    if args.scheduler is not None:
        parse_scheduler(args.scheduler)
        if args.workers is not None:
            raise TrainError(
                "--workers sizes the LocalCluster symprop starts; with --scheduler the cluster's own workers run: "
                "drop --workers"
            )
    elif args.connect_timeout is not None:
        raise TrainError("--connect-timeout bounds joining a --scheduler; add --scheduler ADDRESS or drop it")
    if args.connect_timeout is not None:
        check_connect_timeout(args.connect_timeout)


def check_ignored_options(args: TrainArgs, solver: str) -> None:
    """Refuse options that would be silently ignored: --lr and --batch-size with a scipy solver (full
    batch, its own line search), --delimiter with data that is not a CSV file."""
    if solver in SCIPY_METHODS:
        given = [o for o, v in (("--lr", args.lr), ("--batch-size", args.batch_size)) if v is not None]
        if given:
            raise TrainError(
                f"--solver {solver} trains on the full batch with its own step sizes, so {' and '.join(given)} "
                "would be ignored; drop them (or use --solver sgd or adam)"
            )
    if args.delimiter is not None and not args.data.lower().endswith(".csv"):
        raise TrainError(f"--delimiter applies to CSV files, not --data {show(args.data)}; drop it")


def _run(args: TrainArgs, stream: IO[str]) -> int:
    from symprop.spec import load_spec
    from symprop.tools.datasets import load
    from symprop.tools.tables import TableOptions

    use = chosen(args)
    solver, epochs, lr, batch_size, momentum = use.solver, use.epochs, use.lr, use.batch_size, use.momentum
    check_options(
        epochs,
        lr,
        batch_size,
        momentum,
        args.seed,
        solver=solver,
        nesterov=args.nesterov,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
    )
    if args.early_stopping and not args.validation_fraction:
        raise TrainError("--early-stopping needs a validation split: add --validation-fraction 0.1")
    check_engine_options(args)
    check_ignored_options(args, solver)
    if args.class_weight not in (None, "balanced"):
        raise TrainError(f"--class-weight {quote(args.class_weight)}: use balanced")
    if args.engine != "dask" and args.partitions is not None:
        raise TrainError("--partitions is for --engine dask; remove it or add --engine dask")
    out_dir = Path(args.out)
    check_folder("--module-dir", out_dir)
    if args.plot is not None and not plot_available():
        raise TrainError('--plot needs matplotlib: pip install "symprop[train]"')
    spec = load_spec(args.spec)
    outputs, save_path, plot_path, metrics_path = product_outputs(
        out_dir / f"{spec.name}.py", args.save, args.plot, args.metrics_json
    )
    check_outputs(outputs, [("the spec", Path(args.spec)), *data_inputs(args.data)], force=args.force)
    if args.engine == "dask":
        from symprop.tools.distributed import run_dask

        unsupported = {
            "--class-weight": args.class_weight is not None,
            "--missing": args.missing != "error",
            "--metrics-json": args.metrics_json is not None,
        }
        for option, given in unsupported.items():
            if given:
                raise TrainError(f"{option} is for --engine local only (not implemented for dask yet); remove it")

        return run_dask(args, spec, use, stream)
    table = TableOptions(args.label, args.drop, args.delimiter, args.missing)
    dataset = load(
        args.data,
        spec,
        args.test_fraction,
        args.seed,
        validation_fraction=args.validation_fraction,
        options=table,
        stratify=args.stratify,
    )
    if args.class_weight is not None and not dataset.classification:
        raise TrainError("--class-weight is for classification; this data is a regression target")
    prepared = prepare_module(spec, out_dir, args.mode, second_order=solver in NEWTON_SOLVERS, force=args.force)
    module = prepared.module
    say = sayer(stream)
    prepared.announce(say, spec.n_params)
    n_train, n_test = dataset.X_train.shape[0], dataset.X_test.shape[0]
    n_val = 0 if dataset.X_val is None else dataset.X_val.shape[0]
    kind = f"{len(dataset.classes)} classes" if dataset.classification else "regression"
    scaled = ", features standardized on the train split" if dataset.mean is not None else ""
    targets = ", targets standardized on the train split" if dataset.y_mean is not None else ""
    val = f" / {n_val} validation" if n_val else ""
    say(
        f"data: {dataset.name}, {n_train} train{val} / {n_test} test rows, {dataset.n_features} features, "
        f"{kind}{scaled}{targets}"
    )
    say(f"features: {short_list(dataset.feature_names)}")
    if dataset.classification:
        say(f"label: {quote(dataset.label_name)}, classes: {short_list(dataset.classes)}")
    else:
        say(f"label: {quote(dataset.label_name)} (regression target)")
    for note in dataset.notes:
        say(f"note: {note}")
    weights = None
    if args.class_weight == "balanced":
        codes = class_codes(dataset.Y_train)
        per_class = balanced_weights(codes, len(dataset.classes))
        weights = per_class[codes]
        shown = ", ".join(f"{name} {w:.4g}" for name, w in zip(dataset.classes, per_class, strict=True))
        say(f"class weights (balanced, n / (classes * count) on the train split): {short_list([shown])}")
    if dataset.classification and dataset.held_out:
        say("split: stratified by class" if args.stratify else "split: not stratified (--no-stratify)")
    step_solver = make_step_solver(solver, lr, momentum, args.nesterov, args.lr_schedule)
    if solver in SCIPY_METHODS:
        say(
            f"training: {solver} (scipy {SCIPY_METHODS[solver]}, full batch"
            f"{', Hessian-vector products from the module' if solver in NEWTON_SOLVERS else ''}), "
            f"at most {epochs} iterations, seed {args.seed}"
        )
    else:
        say(
            f"training: {step_solver.describe()}, {epochs} epochs, batch size {min(batch_size, n_train)}, "
            f"seed {args.seed}"
        )
    if args.early_stopping:
        say(f"early stopping: patience {args.patience} epochs on the validation loss, best params kept")
    progress = Progress(epochs, stream, unit="iteration" if solver in SCIPY_METHODS else "epoch")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is reported below
        try:
            result = train(
                module,
                dataset.X_train,
                dataset.Y_train,
                solver=solver,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                momentum=momentum,
                nesterov=args.nesterov,
                lr_schedule=args.lr_schedule,
                seed=args.seed,
                sample_weight=weights,
                X_test=dataset.X_test if n_test and dataset.held_out and plot_path is not None else None,
                Y_test=dataset.Y_test if n_test and dataset.held_out and plot_path is not None else None,
                validation=(dataset.X_val, dataset.Y_val)
                if dataset.X_val is not None and dataset.Y_val is not None
                else None,
                classification=dataset.classification,
                early_stopping=args.early_stopping,
                patience=args.patience,
                on_epoch=progress,
            )
        finally:
            progress.close()
        report = Report.of(module, result.params, dataset)
    if not math.isfinite(report.train_loss):
        raise Diverged(f"the final train loss is {report.train_loss}; lower --lr (now {lr:g})")
    history = result.history
    for line in progress.summary(history):
        say(line)
    products = Products()
    if save_path is not None:
        saved = result.params
        notes = []
        if dataset.mean is not None and dataset.scale is not None:
            saved = fold_standardization(saved, dataset.mean, dataset.scale)
            notes.append("feature standardization folded into W1, b1: they take raw features")
        if dataset.y_mean is not None and dataset.y_scale is not None:
            saved = fold_targets(saved, dataset.y_mean, dataset.y_scale)
            notes.append("target standardization folded into the last layer: it gives raw targets")
        if dataset.impute_means is not None:
            notes.append("with the train-split means --missing mean filled in")
        products.add(
            save_path,
            params_bytes(spec, Saved(saved, dataset.classes, dataset.feature_names, impute_means=dataset.impute_means)),
            f"saved params: {save_path}" + (f" ({'; '.join(notes)})" if notes else ""),
        )
    if plot_path is not None:
        title = f"{spec.name} on {dataset.name}"
        products.add(plot_path, render_plot(history, title, loss_label(dataset.y_mean)), f"plot: {plot_path}")
    if metrics_path is not None:
        data = metrics_bytes(spec, dataset, args, use, history, report)
        products.add(metrics_path, data, f"metrics: {metrics_path}")
    products.write(prepared, say)  # everything rendered: now write it all, or nothing
    for line in report.lines(spec.loss, dataset.classes):
        say(line)
    return 0


def metrics_bytes(
    spec: Spec,
    dataset: Any,
    args: TrainArgs,
    use: Defaults,
    history: History,
    report: Report,
) -> bytes:
    """The run as JSON (schema in docs/training-data.md): options, per-epoch history (train loss;
    validation loss and score when there is a validation split), and the final scores."""
    import json

    short = history.metric_name
    rows = []
    for i, loss in enumerate(history.loss):
        row: dict[str, Any] = {"epoch": i + 1, "train_loss": loss}
        if i < len(history.val_loss):
            row["val_loss"] = history.val_loss[i]
            row[f"val_{short}"] = history.val_metric[i]
        rows.append(row)
    data: dict[str, Any] = {
        "symprop": __version__,
        "spec": {"name": spec.name, "hash": spec.hash(), "loss": spec.loss},
        "data": dataset.name,
        "task": dataset.task,
        "classes": list(dataset.classes),
        "feature_names": list(dataset.feature_names),
        "rows": {
            "train": int(dataset.X_train.shape[0]),
            "validation": 0 if dataset.X_val is None else int(dataset.X_val.shape[0]),
            "test": int(dataset.X_test.shape[0]) if dataset.held_out else 0,
        },
        "options": {
            "solver": use.solver,
            "epochs": use.epochs,
            "lr": None if use.solver in SCIPY_METHODS else use.lr,
            "batch_size": None if use.solver in SCIPY_METHODS else use.batch_size,
            "seed": args.seed,
            "test_fraction": args.test_fraction,
            "validation_fraction": args.validation_fraction,
            "class_weight": args.class_weight,
            "stratify": args.stratify,
            "missing": args.missing,
        },
        "history": rows,
        "stop_reason": history.stop_reason or None,
        "best_epoch": history.best_epoch or None,
        "seconds": history.seconds,
        "train": report.section("train"),
        "validation": report.section("validation"),
        "test": report.section("test"),
    }
    return (json.dumps(data, indent=2, allow_nan=False, default=float) + "\n").encode("utf-8")


__all__ = [
    "Defaults",
    "Diverged",
    "Failed",
    "History",
    "Prepared",
    "Progress",
    "Report",
    "Result",
    "TrainArgs",
    "TrainError",
    "accuracy",
    "balanced_weights",
    "check_engine_options",
    "chosen",
    "class_codes",
    "commit",
    "confusion",
    "data_inputs",
    "defaults_for",
    "ensure_module",
    "fold_standardization",
    "fold_targets",
    "header",
    "load_generated",
    "metrics_bytes",
    "module_from_source",
    "per_class_scores",
    "plot_available",
    "prepare_module",
    "product_outputs",
    "r2_score",
    "render_plot",
    "run",
    "run_args",
    "save_plot",
    "sayer",
    "train",
]
