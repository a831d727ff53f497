"""Everything symprop writes goes through here: checked paths, atomic writes.

The output path is checked before any work (``check_output``): a folder that is a file, a
module path that is a folder or not a regular file, and a file symprop did not write (no
generated header) are refused with :class:`OutputError` unless ``force``.  A file is written to
a temp file in its folder, flushed, then renamed over the target, so a failed or interrupted
write leaves the old file (or none).  A write killed by SIGKILL can leave its hidden temp file
``.<name>.<pid>.<random>.tmp`` behind; the next write of the same target removes such files
when their process is gone or they are over an hour old.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
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


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temp file in ``path``'s folder, then rename it to ``path``.

    ``path`` is never half-written: an interrupted or failed write leaves the old file (or
    none) and no temp file (a SIGKILL can leave the temp file; the next write of ``path``
    removes it, see ``remove_stale_temp_files``). The file gets the usual permissions (0666
    less the umask), not mkstemp's private 0600.
    """
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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically: see ``write_atomic_with``."""
    write_atomic_with(path, lambda handle: handle.write(text.encode("utf-8")))


def is_generated_module(path: Path) -> bool:
    """Does ``path`` look like a module symprop wrote?  A docstring first, then the header's
    ``GENERATOR = "symprop ...`` and ``SPEC_HASH = ...`` lines (within the first 16 KiB)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEADER_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith('"""') and '\nGENERATOR = "symprop ' in head and "\nSPEC_HASH = " in head


def check_output(path: Path, force: bool = False, option: str = "-o") -> None:
    """Refuse (``OutputError``) a module path symprop must not write, before any work is done."""
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{option} {folder}: {existing} is a file, not a folder; choose a folder for {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {folder}: cannot write in {existing} (permission denied); choose another {option}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file"
        raise OutputError(f"{path} is {kind}; remove it or choose another {option} (or spec name)")
    if path.exists() and not force and not is_generated_module(path):
        raise OutputError(
            f"{path} exists and was not written by symprop; leaving it alone: "
            f"choose another {option}, or pass --force to overwrite it"
        )


__all__ = [
    "OutputError",
    "check_output",
    "is_generated_module",
    "remove_stale_temp_files",
    "write_atomic",
    "write_atomic_with",
]
