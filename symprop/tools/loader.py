"""The one place generated Python source becomes a module object.

Generated source is symprop's own output (never user text): the check executes it straight
from the renderer, ``train`` and ``predict`` from the cached file (after its header and
content hash were checked, :mod:`symprop.tools.modcache`), the Dask workers from the source
sent to them.  All of them go through :func:`module_from_source`; nothing else in symprop calls
``exec``.  No bytecode cache is written beside a generated file.
"""

from __future__ import annotations

import hashlib
import types
from pathlib import Path

_PREFIX = "symprop_generated_"
_BY_HASH: dict[str, types.ModuleType] = {}  # per process: modules of :func:`cached_module`


def module_from_source(source: str, path: str | Path, name: str | None = None) -> types.ModuleType:
    """Execute generated ``source`` as a fresh module (not put in ``sys.modules``) whose tracebacks
    name ``path`` (a file, possibly not written yet, or a label such as ``<symprop generated xor>``);
    ``name`` defaults to ``symprop_generated_<stem of path>``."""
    filename = str(path)
    module = types.ModuleType(name if name is not None else _PREFIX + Path(filename).stem)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def load_generated(path: str | Path) -> types.ModuleType:
    """Import a generated module from its file."""
    p = Path(path)
    return module_from_source(p.read_text(encoding="utf-8"), p)


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source held in memory as the module ``name`` (the check, the tests)."""
    return module_from_source(source, f"<symprop generated {name}>", name)


def cached_module(source: str) -> types.ModuleType:
    """The module of ``source``, executed once per process and kept by its SHA-256 (the Dask
    workers, which get the source once and run it for every task)."""
    key = hashlib.sha256(source.encode("utf-8")).hexdigest()
    module = _BY_HASH.get(key)
    if module is None:
        module = _BY_HASH[key] = module_from_source(source, "<symprop generated module>", _PREFIX + "worker")
    return module


__all__ = ["cached_module", "load_generated", "load_module", "module_from_source"]
