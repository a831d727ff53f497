"""Atomic writes for everything symprop writes (modules, params, plots, reports).

A file is written to a temp file in its folder, flushed, then renamed over the target,
so a failed or interrupted write leaves the old file (or none) and no partial file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temp file in ``path``'s folder, then rename it to ``path``.

    ``path`` is never half-written: an interrupted or failed write leaves the old file (or
    none) and no temp file. The file gets the usual permissions (0666 less the umask), not
    mkstemp's private 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


__all__ = ["write_atomic", "write_atomic_with"]
