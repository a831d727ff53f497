"""Command line: ``symprop generate|check|export|train|predict|explain ...`` (also ``python -m symprop``).

Bad input exits with code 2 and one line on stderr naming the problem and
the fix; nothing is written unless the whole module rendered.

``train`` and ``predict`` on a cached module import neither SymPy nor the generator: this
module and what it imports at the top stay free of both (see tests/test_train.py).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symprop import __version__
from symprop.io import OutputError, check_not_file_name, check_not_folder, quote, safe_line
from symprop.spec import Spec, SpecError, load_spec
from symprop.tools.options import TrainArgs
from symprop.tools.options import add_arguments as add_train_arguments


class UsageError(Exception):
    """A bad command-line option: exit 2 with this one-line message."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --out must not silently mean --output (issue 18)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        if "unrecognized arguments: --out" in message or "unrecognized arguments: --save" in message:
            message += "; the product is -o/--output, the module folder --module-dir"
        raise UsageError(f"{message} (see '{self.prog} --help')")


# generate -o names a folder: one of these suffixes names a file instead (a typo), refused
GENERATE_NOT_FOLDERS = (".py", ".h", ".c", ".csv", ".npz", ".json", ".onnx")
# Commands that run a cached module: their parser does not import the generator for help texts.
LIGHT_COMMANDS = ("train", "predict")


@dataclass(frozen=True)
class _Generator:
    """What the generate/check options read from the backend registry (None: not loaded)."""

    modes: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    unrolled_limit: str = "a size limit of"
    auto_rule: str = "see the README"
    target_help: str = "numpy (default), array-api or c (see the README)"


def _generator(light: bool) -> _Generator:
    """The registry's choices, or placeholders for train/predict, which must not import the generator."""
    if light:
        return _Generator()
    from symprop.backends.registry import BACKENDS
    from symprop.emit import MODES, TARGETS, UNROLLED_MAX_PARAMS, auto_rule

    others = "; ".join(f"{b.target}: {b.summary}" for b in BACKENDS.values() if b.target != "numpy")
    target_help = f"numpy (default): a NumPy module; {others}"
    return _Generator(MODES, TARGETS, f"{UNROLLED_MAX_PARAMS:,}", auto_rule(), target_help)


def _parser(light: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="symprop", description="Symbolic backpropagation compiled to standalone NumPy modules.")
    parser.add_argument("--version", action="version", version=f"symprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = _generator(light)

    gen = sub.add_parser("generate", help="write DIR/<name>.py for a spec")
    gen.add_argument("spec", help="path of a TOML spec")
    gen.add_argument(
        "-o", "--output", dest="out", default=".", metavar="DIR", help="the folder to write into (default: current)"
    )
    gen.add_argument(
        "--target",
        default="numpy",
        choices=g.targets,
        help=g.target_help,
    )
    gen.add_argument(
        "--mode",
        default="auto",
        choices=g.modes,
        help="vectorized (matrix code, any size), unrolled (one line per neuron, at most "
        f"{g.unrolled_limit} parameters) or auto (default): the faster as measured, "
        f"{g.auto_rule} (see the README)",
    )
    gen.add_argument("--c-real", choices=("double", "float"), help="--target c: the real type (default double)")
    gen.add_argument("--force", action="store_true", help="overwrite a DIR/<name>.py that symprop did not write")
    gen.add_argument(
        "--second-order",
        action="store_true",
        help="add hvp/gnvp(params, X, Y, V) (Hessian and Gauss-Newton products) and hessian(params, X, Y)",
    )
    gen.add_argument(
        "--inference-only",
        action="store_true",
        help="the forward pass only, no loss, gradient or training code (NumPy: forward and init_params; "
        "C: <name>_forward and its work size)",
    )

    chk = sub.add_parser("check", help="compare the generated gradient with finite differences")
    chk.add_argument("spec", help="path of a TOML spec")
    chk.add_argument("--mode", default="auto", choices=g.modes, help="which generated mode to check (default auto)")
    chk.add_argument("--target", default="numpy", choices=g.targets, help="which target to check (default numpy)")
    chk.add_argument("--points", type=int, default=3, help="random points to check (default 3)")
    chk.add_argument("--all", action="store_true", help="check every entry (default: up to 60 per array)")
    chk.add_argument("--tol", type=float, default=None, help="largest relative error that passes (default 1e-5)")
    chk.add_argument("--seed", type=int, default=0, help="seed of the first test point (default 0)")
    chk.add_argument("--scale", type=float, default=1.0, help="spread of the test points (default 1)")
    chk.add_argument(
        "--c-real",
        choices=("double", "float"),
        help="--target c: the real type to build and check (default double; float: the tolerance of a float build)",
    )

    xpt = sub.add_parser("export", help="write trained params (train --save) as files for a target: C arrays or ONNX")
    xpt.add_argument("spec", help="path of the TOML spec the params were trained for")
    xpt.add_argument("--params", required=True, metavar="PARAMS.npz", help="the file written by train --save")
    xpt.add_argument("--format", required=True, choices=("c", "onnx"), help="c: <name>_params.h/.c; onnx: a model")
    xpt.add_argument("--c-real", choices=("double", "float"), help="--format c: the real type (default double)")
    xpt.add_argument("-o", "--out", required=True, help="c: the output folder; onnx: the .onnx file")
    xpt.add_argument("--force", action="store_true", help="overwrite files that symprop did not write")

    # -- train / predict (symprop.tools) --
    trn = sub.add_parser("train", help="train a spec's generated module (sgd, adam or lbfgs; locally or on Dask)")
    add_train_arguments(trn)  # one argument per TrainArgs field (symprop/tools/options.py)

    prd = sub.add_parser("predict", help="apply params saved by 'train --save' to the rows of a CSV or Parquet file")
    prd.add_argument("spec", help="path of the TOML spec the params were trained for")
    prd.add_argument("--params", required=True, metavar="PARAMS.npz", help="the file written by train --save")
    prd.add_argument("--data", required=True, metavar="X.csv", help="rows to predict (CSV or Parquet)")
    prd.add_argument("-o", "--output", metavar="OUT.csv", help="write the CSV here (default: standard output)")
    prd.add_argument("--proba", action="store_true", help="add one probability column per class")
    prd.add_argument(
        "--force", action="store_true", help="replace an existing -o file (or module) that symprop did not write"
    )
    prd.add_argument("--delimiter", metavar="CHAR", help="CSV delimiter of --data (default: sniffed)")
    prd.add_argument(
        "--module-dir", dest="out", default=".symprop", metavar="DIR", help="folder of the generated module (.symprop)"
    )
    prd.add_argument("--mode", default="auto", help="generator mode: auto (default), vectorized or unrolled")

    exp = sub.add_parser("explain", help="print the derivative formulas (chain rule per layer, or one parameter)")
    exp.add_argument("spec", help="path of a TOML spec")
    exp.add_argument("--param", metavar="NAME", help="one parameter, 1-based: W2[1,3] (row 1, column 3) or b1[2]")
    exp.add_argument("--expand", action="store_true", help="write formulas in inputs, targets and parameters only")
    exp.add_argument("--format", default="text", choices=("text", "latex", "markdown", "sympy"), help="default text")
    exp.add_argument(
        "-o", "--output", dest="out", metavar="FILE", help="write to FILE (atomically) instead of standard output"
    )
    exp.add_argument("--collapse", action="store_true", help="all-identity network: show it as one affine map W x + B")
    exp.add_argument("--second-order", action="store_true", help="the Hessian-vector product's R sweep")
    exp.add_argument("--digits", type=int, default=6, help="significant digits of long numbers (default 6)")
    exp.add_argument("--standalone", action="store_true", help="with --format latex: a whole document for pdflatex")
    exp.add_argument(
        "--symbolic-params", action="store_true", help="keep beta, mu, sigma, alpha, x_min, ... as symbols"
    )

    _worked_options(exp)
    exp.add_argument("--at", metavar="SEED", type=int, default=0, help="seed of the worked example (default 0)")
    rep = sub.add_parser("report", help="write the derivation as one self-contained HTML page (MathML, SVG)")
    rep.add_argument("spec", help="path of a TOML spec")
    rep.add_argument(
        "-o", "--output", dest="out", metavar="FILE", required=True, help="the HTML file to write (atomically)"
    )
    rep.add_argument(
        "--param", metavar="NAME", action="append", default=[], help="add one parameter's derivation (repeatable)"
    )
    rep.add_argument("--at", metavar="SEED", type=int, default=0, help="seed of the worked example (default 0)")
    rep.add_argument("--digits", type=int, default=6, help="significant digits of long numbers (default 6)")
    rep.add_argument(
        "--symbolic-params", action="store_true", help="keep beta, mu, sigma, alpha, x_min, ... as symbols"
    )
    _worked_options(rep)
    return parser


def _worked_options(p: argparse.ArgumentParser) -> None:
    """--params, --sample, --lr: the numbers of the worked example (explain, report)."""
    p.add_argument("--params", metavar="P.npz", help="worked example: these params (default: seeded random ones)")
    p.add_argument(
        "--sample", metavar="X;Y", help='worked example: one sample "x1,...,xd;y1,...,ym" (default: a seeded one)'
    )
    p.add_argument("--lr", type=float, default=0.1, help="worked example: step of the update shown (default 0.1)")


def _warn_gradients(spec: Spec) -> None:
    from symprop.symbolic.layer_math import gradient_warnings

    for note in gradient_warnings(spec):
        print(f"symprop: warning: {note}", file=sys.stderr)


def _cmd_generate(args: argparse.Namespace) -> int:
    from symprop.emit import backend_for, write_files

    check_not_file_name("-o", Path(args.out), "generate writes into a folder; give a folder", GENERATE_NOT_FOLDERS)
    spec = load_spec(args.spec)
    backend = backend_for(spec, args.mode, args.target)
    if args.c_real is not None and args.target != "c":
        raise UsageError(f"--c-real is for --target c, not {args.target}")
    options = {"real": args.c_real} if args.c_real is not None else None
    paths = write_files(
        spec,
        Path(args.out),
        args.mode,
        args.target,
        options,
        force=args.force,
        second_order=args.second_order,
        inference_only=args.inference_only,
    )
    _warn_gradients(spec)
    what = f"{backend.name} mode" if args.target == "numpy" else f"target {backend.target}"
    print(
        safe_line(f"wrote {', '.join(map(str, paths))} ({spec.n_params} parameters, {what}, spec hash {spec.hash()})")
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import math

    from symprop.emit import backend_for, render
    from symprop.tools.check import TOLERANCE, compare, float_results, format_report
    from symprop.tools.loader import load_module

    tol = TOLERANCE if args.tol is None else args.tol
    if args.points < 1:
        raise UsageError(f"--points must be >= 1, got {args.points}")
    if not (math.isfinite(tol) and 0 < tol < 1):
        raise UsageError(f"--tol must be a number in (0, 1), got {tol}; e.g. --tol 1e-6")
    if not (math.isfinite(args.scale) and 1e-3 <= args.scale <= 1e3):
        raise UsageError(f"--scale must be between 1e-3 and 1e3, got {args.scale}; e.g. --scale 0.5")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, 2**32), got {args.seed}")
    if args.c_real is not None and args.target != "c":
        raise UsageError(f"--c-real is for --target c, not {args.target}")
    spec = load_spec(args.spec)
    backend_for(spec, args.mode, args.target)  # a --mode that the target has not is an error
    if args.target == "c":
        from symprop.tools.cbuild import CompileError, load_c
        from symprop.tools.check import FLOAT_TOLERANCE, float_checked

        real = args.c_real or "double"
        try:
            module: object = load_c(spec, real)
        except CompileError as exc:
            raise UsageError(str(exc)) from None
        if real == "float":
            # finite differences need float64 costs: the float build's gradient is compared with
            # those of the float64 cost at the float32-rounded point (see check.float_checked)
            module = float_checked(module, load_module(render(spec, "vectorized"), spec.name))
            tol = FLOAT_TOLERANCE if args.tol is None else tol
    else:
        loaded = load_module(render(spec, args.mode, args.target), spec.name)
        # the array-api module is checked on NumPy arrays; its cost is a 0-d array, not a float
        module = float_results(loaded) if args.target == "array-api" else loaded
    seeds = tuple(range(args.seed, args.seed + args.points))
    result = compare(module, spec, seeds=seeds, max_entries=None if args.all else 60, tol=tol, scale=args.scale)
    print(format_report(result))
    if not result.passed:
        first = result.problems[0] if result.problems else f"max relative error {result.max_rel_error:.3e} > {tol:.0e}"
        print(f"symprop: check failed: {first}", file=sys.stderr)
        return 1
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from symprop.tools.export import ExportError, export
    from symprop.tools.paramfile import ParamsError

    if args.c_real is not None and args.format != "c":
        raise UsageError(f"--c-real is for --format c, not {args.format}")
    spec = load_spec(args.spec)
    try:
        paths = export(spec, args.params, args.format, args.out, args.c_real, force=args.force)
    except (ExportError, ParamsError) as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {', '.join(map(str, paths))} ({spec.n_params} parameters, spec hash {spec.hash()})")
    return 0


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    value = "\t" if value in ("tab", "\\t") else value
    if len(value) != 1 or value in '"\r\n':
        raise UsageError(f"--delimiter must be one character (or 'tab'), got {quote(value)}")
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    from symprop.tools.loop import Failed, TrainError
    from symprop.tools.solvers import SolverError
    from symprop.tools.tables import DataError
    from symprop.tools.train import run_args

    try:
        return run_args(TrainArgs.from_namespace(args, delimiter=_delimiter(args.delimiter)))
    except Failed as exc:
        print(safe_line(f"symprop: error: {exc}; nothing was written"), file=sys.stderr)
        return 1
    except (DataError, TrainError, SolverError) as exc:
        raise UsageError(str(exc)) from None


def _cmd_predict(args: argparse.Namespace) -> int:
    from symprop.tools.loop import TrainError
    from symprop.tools.predict import run_predict
    from symprop.tools.tables import DataError

    try:
        return run_predict(
            args.spec,
            args.params,
            args.data,
            output=args.output,
            proba=args.proba,
            force=args.force,
            delimiter=_delimiter(args.delimiter),
            out=args.out,
            mode=args.mode,
        )
    except (DataError, TrainError) as exc:
        raise UsageError(str(exc)) from None


def _worked(args: argparse.Namespace) -> dict[str, Any]:
    """The options explain and report share: the worked example's numbers and how they print."""
    return {
        "digits": args.digits,
        "symbolic_params": args.symbolic_params,
        "values": args.params,
        "sample": args.sample,
        "lr": args.lr,
        "seed": args.at,
    }


def _cmd_explain(args: argparse.Namespace) -> int:
    from symprop.explain import ExplainError, explain
    from symprop.explain.worked import WorkedError

    spec = load_spec(args.spec)
    try:
        text = explain(
            spec,
            args.format,
            param=args.param,
            expand=args.expand,
            collapse=args.collapse,
            standalone=args.standalone,
            second=args.second_order,
            **_worked(args),
        )
    except (ExplainError, WorkedError) as exc:
        raise UsageError(str(exc)) from None
    if args.out is None:
        sys.stdout.write(text)
        return 0
    return _write_text(Path(args.out), text, spec.name + ".md")


def _cmd_report(args: argparse.Namespace) -> int:
    from symprop.explain import ExplainError
    from symprop.explain.report import ReportError, report
    from symprop.explain.worked import WorkedError

    spec = load_spec(args.spec)
    try:
        text = report(spec, args.param, **_worked(args))
    except (ExplainError, ReportError, WorkedError) as exc:
        raise UsageError(str(exc)) from None
    return _write_text(Path(args.out), text, spec.name + ".html")


def _write_text(path: Path, text: str, example: str) -> int:
    from symprop.io import write_atomic

    check_not_folder("-o", path, example)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"-o {path}: cannot write ({exc.strerror or exc})") from None
    print(safe_line(f"wrote {path}"))
    return 0


COMMANDS = {
    "generate": _cmd_generate,
    "check": _cmd_check,
    "export": _cmd_export,
    "train": _cmd_train,
    "predict": _cmd_predict,
    "explain": _cmd_explain,
    "report": _cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = _parser(light=bool(argv) and argv[0] in LIGHT_COMMANDS).parse_args(argv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = COMMANDS[args.command](args)
        for w in caught:
            print(safe_line(f"symprop: warning: {w.message}"), file=sys.stderr)
        return code
    except (SpecError, UsageError, OutputError) as exc:  # OutputError: also from train's generate
        print(safe_line(f"symprop: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symprop: interrupted; nothing was written", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
