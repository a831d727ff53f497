"""Everything symprop writes goes through here: checked paths, atomic and transactional writes,
safe CSV cells and safe echoes of user text.

The output path is checked before any work (``check_output``): a folder that is a file, a
module path that is a folder or not a regular file, and a file symprop did not write (no
generated header) are refused with :class:`OutputError` unless ``force``.  A file is written to
a temp file in its folder, flushed, then renamed over the target, so a failed or interrupted
write leaves the old file (or none).  A write killed by SIGKILL can leave its hidden temp file
``.<name>.<pid>.<random>.tmp`` behind; the next write of the same target removes such files
when their process is gone or they are over an hour old.

Commands with several products (``train``: module, params, plot; ``predict``: module, CSV) check
them all at once before any work (:func:`check_outputs`: every output differs from every input
and from each other, by resolved path and by inode, so symlinks and hard links count; none lies
inside an input folder; none replaces an existing file that symprop did not write unless
``force``), render them in memory, and write them with one :class:`Transaction`: every temp
file is written and flushed first, then all are renamed; a failure before the renames leaves
nothing behind.

User text echoed in a message (names, cells, paths) goes through :func:`show`: non-printable
characters escaped (no terminal escape sequence reaches the terminal) and long values cut.
CSV cells symprop writes go through :func:`csv_cell` (formula injection neutralised).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class OutputError(ValueError):
    """An output path symprop will not write; the message is one line naming the path and the fix."""


STALE_TEMP_SECONDS = 3600
_HEADER_BYTES = 16_384


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """Names of our temp files for ``path``: ``.<name>.<pid>.<mkstemp's 8 characters>.tmp``."""
    return re.compile(rf"\.{re.escape(path.name)}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}\.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: keep the file
    return True


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Remove temp files a killed earlier write of ``path`` left behind; return them.

    Only regular files (not links) named exactly like ours for this target are touched, and
    only when the process that created them is gone or they are over STALE_TEMP_SECONDS old.
    """
    pattern = _temp_pattern(path)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
            if old or not _pid_alive(int(match["pid"])):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _write_temp(path: Path, write: Callable[[IO[bytes]], object]) -> str:
    """Call ``write`` on a new temp file beside ``path`` (flushed, fsynced, mode 0666 less the
    umask); return its name. On failure the temp file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temp file in ``path``'s folder, then rename it to ``path``.

    ``path`` is never half-written: an interrupted or failed write leaves the old file (or
    none) and no temp file (a SIGKILL can leave the temp file; the next write of ``path``
    removes it, see ``remove_stale_temp_files``). The file gets the usual permissions (0666
    less the umask), not mkstemp's private 0600.
    """
    tmp = _write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically: see ``write_atomic_with``."""
    write_atomic_with(path, lambda handle: handle.write(text.encode("utf-8")))


def is_generated_module(path: Path) -> bool:
    """Does ``path`` look like a module symprop wrote?  A docstring first, then the header's
    ``GENERATOR = "symprop ...`` and ``SPEC_HASH = ...`` lines (within the first 16 KiB); for the
    C target's ``.h`` / ``.c``, a first line ``/* <name>: ... generated by symprop ... (spec hash ...``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEADER_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    if path.suffix in (".h", ".c"):
        first = head.split("\n", 1)[0]
        return first.startswith(f"/* {path.name}: ") and " generated by symprop " in first and "(spec hash " in first
    return head.startswith('"""') and '\nGENERATOR = "symprop ' in head and "\nSPEC_HASH = " in head


# ------------------------------------------------------------ echoing user text --
SHOW_LIMIT = 80
LINE_LIMIT = 1000


def _escaped(text: str) -> str:
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def show(value: object, limit: int = SHOW_LIMIT) -> str:
    """``value`` as text safe to echo: non-printable characters (ESC, CR, newlines, bidi controls,
    ...) escaped as ``\\x1b``, ``\\u202e``; more than ``limit`` characters cut, saying how many."""
    text = str(value)
    if len(text) <= limit:
        return _escaped(text)
    return f"{_escaped(text[:limit])}... ({len(text):,} characters)"


def quote(value: object, limit: int = SHOW_LIMIT) -> str:
    """:func:`show` in single quotes, for names and cells inside a message."""
    return f"'{show(value, limit)}'"


def safe_line(text: str, limit: int = LINE_LIMIT) -> str:
    """A whole message made safe for a terminal: one line, non-printable characters escaped, and
    at most about ``limit`` characters (the middle is cut, so the problem and the fix both stay)."""
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]} ...({len(text) - 2 * half:,} characters cut)... {text[-half:]}"
    return _escaped(text)


def safe_text(text: str) -> str:
    """Several lines for a terminal (a CSV printed to it): each line as in :func:`show`, uncut."""
    return "\n".join(_escaped(line) for line in text.split("\n"))


# ------------------------------------------------------------- reading inputs --
def read_problem(path: Path, exc: OSError | UnicodeDecodeError, *, missing: str, folder: str, not_text: str) -> str:
    """One line for an input text file that could not be read: ``PATH: no such file; <missing>``,
    ``PATH: is a directory; <folder>``, ``PATH: not UTF-8 text; <not_text>``, or the OS's reason."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no such file; {missing}"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory; {folder}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{path}: not UTF-8 text; {not_text}"
    return f"{path}: cannot read ({exc.strerror})"


# ------------------------------------------------------------------ CSV cells --
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def csv_cell(value: object) -> str:
    """A cell safe for a spreadsheet (OWASP's CSV injection rule): text starting with ``= + - @``,
    tab or CR (also after leading spaces) gets a leading ``'``, so it is shown, not run; finite
    numbers (``-1.5``, ``-3``) are left as they are, so a numeric column stays numeric."""
    text = str(value)
    if not text or _finite_number(text):
        return text
    if text.startswith(FORMULA_START) or text.lstrip(" \t\r\n").startswith(FORMULA_START[:4]):
        return "'" + text
    return text


def csv_text(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """The CSV symprop writes: ``,``-separated, ``\\n`` line ends, every cell through :func:`csv_cell`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in header])
    writer.writerows([csv_cell(c) for c in row] for row in rows)
    return buffer.getvalue()


# ------------------------------------------------------------- symprop's files --
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SOFTWARE = "symprop "  # plots are saved with metadata {"Software": "symprop <version>"}


def is_symprop_png(path: Path) -> bool:
    """Is ``path`` a PNG whose ``Software`` text chunk (before the image data) starts with ``symprop ``?"""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError:
        return False
    if not head.startswith(PNG_SIGNATURE):
        return False
    at = len(PNG_SIGNATURE)
    while at + 8 <= len(head):
        length = int.from_bytes(head[at : at + 4], "big")
        kind = head[at + 4 : at + 8]
        body = head[at + 8 : at + 8 + length]
        if kind == b"IDAT" or len(body) < length:
            return False
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            if key == b"Software" and value.startswith(PNG_SOFTWARE.encode()):
                return True
        at += 12 + length
    return False


# --------------------------------------------------------------- output checks --
def _same_file(a: Path, b: Path) -> bool:
    """The same file by resolved path (symlinks followed) or by device and inode (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


@dataclass(frozen=True)
class Output:
    """One file a command will write: its option, path, and how to recognise an earlier one of ours."""

    option: str
    path: Path
    owned: Callable[[Path], bool] = field(default=is_generated_module)
    kind: str = "generated module"


# suffixes that name a file, never a folder: a new folder called so is refused (issue 18: a typo
# like --out preds.csv created a folder named preds.csv)
FILE_SUFFIXES = (
    ".csv",
    ".npz",
    ".npy",
    ".json",
    ".png",
    ".py",
    ".onnx",
    ".txt",
    ".md",
    ".html",
    ".parquet",
    ".h",
    ".c",
)


def check_folder(option: str, path: Path) -> None:
    """Refuse a folder option (``--module-dir``) that is a file, lies under a file, cannot be written,
    or does not exist yet and is named like a file (``preds.csv``)."""
    check_not_file(option, path, "the generated module")
    check_not_file_name(
        option, path, f"{option} is a folder (the generated module goes in it); for the product use -o/--output"
    )
    _check_parent(option, path if path.exists() else path.parent, path)


def check_not_file(option: str, path: Path, contents: str) -> None:
    """Refuse a folder option that names an existing file: it is to hold ``contents``."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {show(path)}: is a file; give a folder for {contents}")


def check_not_file_name(option: str, path: Path, fix: str, suffixes: Sequence[str] = FILE_SUFFIXES) -> None:
    """Refuse a folder option that does not exist yet and is named like a file (``preds.csv``): a typo
    would create a folder of that name (issue 18)."""
    if not path.exists() and path.suffix.lower() in suffixes:
        raise OutputError(f"{option} {show(path)}: looks like a file name, but {fix}")


def check_not_folder(option: str, path: Path, example: str) -> None:
    """Refuse a file option that names a folder; the fix names ``example`` inside it."""
    if path.is_dir():
        raise OutputError(f"{option} {show(path)}: is a folder; give a file name, e.g. {option} {show(path / example)}")


def check_not_input(option: str, path: Path, input_option: str, input_path: Path) -> None:
    """Refuse an output that is the input file ``input_option`` (by resolved path or inode)."""
    if _same_file(path, input_path):
        raise OutputError(
            f"{option} {show(path)} is the {input_option} file; choose another {option} "
            "(an output never replaces an input)"
        )


def _check_parent(option: str, folder: Path, shown: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(
            f"{option} {show(shown)}: {show(existing)} is a file, not a folder; choose a folder for {option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{option} {show(shown)}: cannot write in {show(existing)} (permission denied); choose another {option}"
        )


def _check_place(option: str, path: Path) -> None:
    _check_parent(option, path.parent, path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file"
        raise OutputError(f"{option} {show(path)} is {kind}; remove it or choose another {option} (or spec name)")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {show(path)}: the file is not writable; choose another path")


def data_inputs(data: str, option: str = "--data") -> list[tuple[str, Path]]:
    """The files (or Parquet folder) a ``--data`` value reads, as (option, path), for
    :func:`check_outputs`' inputs: none for a built-in set's name, every match of a glob (the
    Dask engine reads globs)."""
    import glob

    try:
        found = [Path(m) for m in sorted(glob.glob(data))] if glob.has_magic(data) else []
        if Path(data).exists():
            found.append(Path(data))
    except (OSError, ValueError):  # a name the OS refuses (too long, NUL): the reader says so
        return []
    return [(option, p) for p in found]


def check_output(path: Path, force: bool = False, option: str = "-o") -> None:
    """Refuse (``OutputError``) a module path symprop must not write, before any work is done."""
    check_outputs([Output(option, path)], force=force)


def check_outputs(outputs: Sequence[Output], inputs: Sequence[tuple[str, Path]] = (), *, force: bool = False) -> None:
    """Refuse (``OutputError``, one line) before any work: an output that is a folder, a symlink or
    not writable; an output that is one of the ``inputs`` (same resolved path or same inode) or lies
    inside an input folder; two outputs that are one file; an existing output that symprop did not
    write (its ``owned`` test fails) unless ``force``.  ``force`` never allows replacing an input."""
    seen: list[Output] = []
    for out in outputs:
        try:
            _check_one(out, inputs, seen, force)
        except OSError as exc:
            reason = show(exc.strerror or type(exc).__name__)
            raise OutputError(
                f"{out.option} {show(out.path)}: cannot use this path ({reason}); choose another"
            ) from None
        seen.append(out)


def _check_one(out: Output, inputs: Sequence[tuple[str, Path]], seen: Sequence[Output], force: bool) -> None:
    for option, source in inputs:
        if _same_file(out.path, source):
            raise OutputError(
                f"{out.option} {show(out.path)} is the input {option} {show(source)}; writing it would destroy "
                f"the input: choose another {out.option}"
            )
        if _inside(out.path, source):
            raise OutputError(
                f"{out.option} {show(out.path)} lies inside the input folder {option} {show(source)}; "
                f"choose a path outside it"
            )
    _check_place(out.option, out.path)
    for other in seen:
        if _same_file(out.path, other.path):
            raise OutputError(
                f"{other.option} and {out.option} are the same file {show(out.path)}; give them different paths"
            )
    if out.path.exists() and not force and not out.owned(out.path):
        raise OutputError(
            f"{show(out.path)} exists and was not written by symprop (not a {out.kind} of ours); leaving it alone: "
            f"choose another {out.option}, or pass --force to overwrite it"
        )


# ---------------------------------------------------------------- transactions --
def _missing_folders(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


class Transaction:
    """Several files written all or nothing: :meth:`add` the products (rendered in memory), then
    :meth:`commit` writes every one to a temp file in its folder (flushed to disk) and only then
    renames them all into place.  A failure while writing removes every temp file: no product is
    written.  (Only a crash between two renames, microseconds apart, could leave part of them.)"""

    def __init__(self) -> None:
        self.items: list[tuple[Path, Callable[[IO[bytes]], object]]] = []

    def add(self, path: Path, data: bytes | str) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.items.append((Path(path), lambda handle: handle.write(raw)))

    def add_with(self, path: Path, write: Callable[[IO[bytes]], object]) -> None:
        self.items.append((Path(path), write))

    def commit(self) -> list[Path]:
        temps: list[tuple[str, Path]] = []
        created = sorted(
            {f for path, _ in self.items for f in _missing_folders(path.parent)}, key=lambda f: -len(f.parts)
        )
        try:
            for path, write in self.items:
                temps.append((_write_temp(path, write), path))
            for tmp, path in temps:
                os.replace(tmp, path)
        except BaseException:
            for tmp, _ in temps:
                Path(tmp).unlink(missing_ok=True)
            for folder in created:  # the folders this commit made, deepest first, if still empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        self.items = []
        return [path for _, path in temps]


__all__ = [
    "Output",
    "OutputError",
    "Transaction",
    "check_folder",
    "check_not_file",
    "check_not_file_name",
    "check_not_folder",
    "check_not_input",
    "check_output",
    "check_outputs",
    "csv_cell",
    "csv_text",
    "data_inputs",
    "is_generated_module",
    "is_symprop_png",
    "quote",
    "read_problem",
    "remove_stale_temp_files",
    "safe_line",
    "safe_text",
    "show",
    "write_atomic",
    "write_atomic_with",
]
