"""The params file (``.npz``) that ``train --save`` writes and ``predict``, ``export``, ``explain``
and ``report`` read: one format, one reader, one writer.

Arrays in the file:

* the params, ``W1``, ``b1``, ..., in the spec's shapes (float64);
* ``classes``: the class names in output order (empty for regression);
* ``feature_names``: the input columns in order (empty when unknown);
* ``spec_hash``: the 16 hex digits of :meth:`Spec.hash` of the spec they were trained for;
* ``spec_text``: that spec as TOML (:meth:`Spec.to_toml`), so a params file documents itself;
* ``symprop``: ``"symprop <version> params"``, which marks the file as written by symprop;
* optional ``impute_means``: one value per feature, what ``--missing mean`` filled in.

A file is untrusted input: it is read with ``allow_pickle=False`` and every array's kind, shape and
values are checked against the spec, with a one-line :class:`ParamsError` naming the array and the
fix.  A file with no ``spec_hash`` (made by hand) is accepted with a one-line notice; one with the
hash of another spec is refused, naming both hashes.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symprop import __version__
from symprop.io import safe_line, write_atomic_with
from symprop.spec import Spec

MARK = "symprop"
META_KEYS = ("classes", "feature_names", "spec_hash", "spec_text", MARK, "impute_means")


class ParamsError(ValueError):
    """A params file that does not fit the spec; the message is one line naming the array and the fix."""


@dataclass(frozen=True)
class Saved:
    """The contents of a params file, checked against a spec."""

    params: dict[str, np.ndarray]
    classes: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    spec_hash: str | None = None
    impute_means: np.ndarray | None = None


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=str)


def params_bytes(spec: Spec, saved: Saved) -> bytes:
    """The ``.npz`` file's bytes for ``saved`` (the params of ``spec`` and the metadata above; its
    ``spec_hash`` is ignored: the spec's own is written), rendered in memory so that a command can
    write all its products at once, or none."""
    arrays: dict[str, Any] = {k: np.asarray(saved.params[k], dtype=np.float64) for k in spec.param_shapes}
    arrays["classes"] = _strings(saved.classes)
    arrays["feature_names"] = _strings(saved.feature_names)
    arrays["spec_hash"] = np.array(spec.hash())
    arrays["spec_text"] = np.array(spec.to_toml())
    arrays[MARK] = np.array(f"symprop {__version__} params")
    if saved.impute_means is not None:
        arrays["impute_means"] = np.asarray(saved.impute_means, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_params(
    path: str | Path,
    spec: Spec,
    params: Mapping[str, np.ndarray],
    classes: Sequence[str] = (),
    feature_names: Sequence[str] = (),
    impute_means: np.ndarray | None = None,
) -> None:
    """Write ``params`` for ``spec`` as ``.npz`` at exactly ``path`` (atomically), with the metadata above."""
    saved = Saved(dict(params), tuple(classes), tuple(feature_names), impute_means=impute_means)
    data = params_bytes(spec, saved)
    write_atomic_with(Path(path), lambda handle: handle.write(data))


def is_params_file(path: Path) -> bool:
    """Was ``path`` written by :func:`save_params` (an ``.npz`` holding the ``symprop`` mark)?"""
    try:
        with np.load(path, allow_pickle=False) as f:
            return MARK in f.files and str(f[MARK][()]).startswith("symprop ")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return False


def _short(text: str, limit: int = 60) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read(p: Path, option: str) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ParamsError(f"{option} {p}: a bare .npy array, not an .npz; give the file of train --save")
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise ParamsError(f"{option} {p}: no such file; give the .npz written by symprop train --save") from None
    except IsADirectoryError:
        raise ParamsError(f"{option} {p}: is a folder; give the .npz written by symprop train --save") from None
    except ParamsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError) as exc:
        reason = _short(str(exc).split("\n", 1)[0] or type(exc).__name__)
        raise ParamsError(
            f"{option} {p}: not a readable .npz file ({reason}); give the file written by train --save"
        ) from None


def _names(arrays: Mapping[str, np.ndarray], key: str, length: int | None, p: Path, option: str) -> tuple[str, ...]:
    if key not in arrays:
        return ()
    a = arrays[key]
    if a.ndim != 1 or a.dtype.kind not in "US":
        raise ParamsError(
            f"{option} {p}: {key} must be a 1-D array of strings; it is {a.dtype} of shape {a.shape}: "
            "give the file train --save wrote"
        )
    if a.size and length is not None and a.size != length:
        raise ParamsError(f"{option} {p}: {key} holds {a.size} names, the spec needs {length}")
    return tuple(str(v) for v in a)


def _class_count(spec: Spec) -> int | None:
    """How many class names fit the spec's outputs (None: any count, the output is one unit)."""
    return None if spec.outputs == 1 else spec.outputs


def load_params(
    path: str | Path,
    spec: Spec,
    *,
    option: str = "--params",
    notice: Callable[[str], None] | None = None,
) -> Saved:
    """Read and check a params file for ``spec``; raise :class:`ParamsError` (one line) on any mismatch.

    Checked: the file is a readable ``.npz`` without pickles; it holds exactly the spec's params
    (a missing or an extra array is named) of numeric dtype and the spec's shapes (non-finite values
    are the caller's to handle: ``predict`` leaves such rows' predictions empty);
    ``classes`` and ``feature_names`` are 1-D string arrays of the right length; a stored
    ``spec_hash`` equals ``spec.hash()``.  No hash: ``notice`` (default: stderr) gets one line."""
    p = Path(path)
    arrays = _read(p, option)
    shapes = spec.param_shapes
    missing = [k for k in shapes if k not in arrays]
    if missing:
        raise ParamsError(
            f"{option} {p}: missing {', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}; "
            f"give params for this spec ({', '.join(list(shapes)[:4])}{', ...' if len(shapes) > 4 else ''})"
        )
    extra = [k for k in arrays if k not in shapes and k not in META_KEYS]
    if extra:
        shown = ", ".join(_short(k, 30) for k in extra[:4]) + (", ..." if len(extra) > 4 else "")
        raise ParamsError(f"{option} {p}: unexpected array(s) {shown}, which this spec has no use for; remove them")
    stored = arrays.get("spec_hash")
    if stored is not None:
        if stored.ndim != 0 or stored.dtype.kind not in "US":
            raise ParamsError(f"{option} {p}: spec_hash must be one string, not {stored.dtype} of shape {stored.shape}")
        found = _short(str(stored[()]), 40)
        if found != spec.hash():
            raise ParamsError(
                f"{option} {p}: saved for a spec with hash {found}, but {spec.file_label} has hash {spec.hash()}; "
                "give the params trained for this spec"
            )
    params: dict[str, np.ndarray] = {}
    for k, shape in shapes.items():
        a = arrays[k]
        if a.dtype.kind not in "fiu":
            raise ParamsError(f"{option} {p}: {k} holds {a.dtype} values, not numbers; give float params")
        if a.shape != shape:
            raise ParamsError(f"{option} {p}: {k} has shape {a.shape}, the spec needs {shape}")
        params[k] = a.astype(np.float64)
    classes = _names(arrays, "classes", _class_count(spec), p, option)
    features = _names(arrays, "feature_names", spec.inputs, p, option)
    if spec.outputs == 1 and len(classes) not in (0, 2):
        raise ParamsError(f"{option} {p}: classes holds {len(classes)} names; one output unit gives 2 classes")
    if len(set(classes)) != len(classes) or len(set(features)) != len(features):
        raise ParamsError(f"{option} {p}: classes and feature_names must not repeat a name")
    means = arrays.get("impute_means")
    if means is not None and (
        means.dtype.kind not in "fiu" or means.shape != (spec.inputs,) or not np.all(np.isfinite(means))
    ):
        raise ParamsError(f"{option} {p}: impute_means must be {spec.inputs} finite numbers, one per feature")
    if stored is None:
        say = notice or (lambda line: print(safe_line(line), file=sys.stderr))
        say(
            safe_line(
                f"symprop: notice: {option} {p} holds no spec hash (made by hand?); its shapes fit {spec.file_label}"
            )
        )
    return Saved(
        params,
        classes,
        features,
        None if stored is None else str(stored[()]),
        None if means is None else means.astype(np.float64),
    )


__all__ = ["META_KEYS", "ParamsError", "Saved", "is_params_file", "load_params", "params_bytes", "save_params"]
