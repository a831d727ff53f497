"""Command line: ``symprop generate|check ...`` (also ``python -m symprop``).

Bad input exits with code 2 and one line on stderr naming the problem and
the fix; nothing is written unless the whole module rendered.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from symprop import __version__
from symprop.spec import SpecError, load_spec


class UsageError(Exception):
    """A bad command-line option: exit 2 with this one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symprop", description="Symbolic backpropagation compiled to standalone NumPy modules.")
    parser.add_argument("--version", action="version", version=f"symprop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate", help="write DIR/<name>.py for a spec")
    gen.add_argument("spec", help="path of a TOML spec")
    gen.add_argument("-o", "--out", default=".", help="output folder (default: current folder)")
    gen.add_argument("--mode", default="unrolled", help="unrolled (default)")

    chk = sub.add_parser("check", help="compare the generated gradient with finite differences")
    chk.add_argument("spec", help="path of a TOML spec")
    chk.add_argument("--mode", default="unrolled", help="which generated mode to check")
    chk.add_argument("--points", type=int, default=3, help="random points to check (default 3)")
    chk.add_argument("--all", action="store_true", help="check every entry (default: up to 60 per array)")
    return parser


def _cmd_generate(args: argparse.Namespace) -> int:
    from symprop.emit import generate

    spec = load_spec(args.spec)
    path = generate(spec, Path(args.out), args.mode)
    print(f"wrote {path} ({spec.n_params} parameters, {args.mode} mode, spec hash {spec.hash()})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from symprop.check import TOLERANCE, compare, format_report, load_module
    from symprop.emit import render

    if args.points < 1:
        raise UsageError(f"--points must be >= 1, got {args.points}")
    spec = load_spec(args.spec)
    module = load_module(render(spec, args.mode), spec.name)
    reports = compare(module, spec, seeds=tuple(range(args.points)), max_entries=None if args.all else 60)
    print(format_report(reports))
    return 1 if max(r.max_rel_error for r in reports) > TOLERANCE else 0


COMMANDS = {"generate": _cmd_generate, "check": _cmd_check}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = COMMANDS[args.command](args)
        for w in caught:
            print(f"symprop: warning: {w.message}", file=sys.stderr)
        return code
    except (SpecError, UsageError) as exc:
        print(f"symprop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symprop: interrupted; nothing was written", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
