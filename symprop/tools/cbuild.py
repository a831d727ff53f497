"""Build a spec's C target into a shared library and call it like a NumPy module (ctypes).

:func:`compile_c` writes the generated ``<name>.h`` / ``<name>.c`` into a temporary folder and
runs the C compiler (``$CC`` or ``cc``) with the warning flags the target promises
(:data:`WARNINGS`, plus :data:`FLOAT_WARNINGS` for ``float``) and ``-shared -fPIC``; any
warning fails the build.  :class:`CModule` wraps the library with the NumPy module's
interface (``PARAM_SHAPES``, ``forward``, ``loss``, ``loss_and_grad`` over a params dict), so
``symprop check --target c`` and the tests reuse the finite-difference comparison of
:mod:`symprop.tools.check` unchanged.  The library is loaded once and the folder removed
(the mapping outlives the file on POSIX).
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from symprop.emit import render_files
from symprop.spec import Spec

WARNINGS = (
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-Wconversion",
    "-Wdouble-promotion",
    "-Wshadow",
    "-ffp-contract=off",
)
FLOAT_WARNINGS: tuple[str, ...] = ()  # the float build is held to the same flags (no double anywhere)


class CompileError(Exception):
    """No C compiler, or the generated code did not compile cleanly."""


def compiler() -> list[str]:
    """``$CC`` split like a shell would (``CC="gcc -m64"``), or ``cc``."""
    try:
        cc = shlex.split(os.environ.get("CC", "cc"))
    except ValueError:
        raise CompileError("CC is not a valid command line (unbalanced quotes); set CC=gcc or unset it") from None
    if not cc:
        raise CompileError("CC is empty; set CC=gcc (a host compiler) or unset it")
    if shutil.which(cc[0]) is None:
        raise CompileError(f"no C compiler: {cc[0]!r} not found; install gcc or clang, or set CC")
    return cc


def load_library(path: Path) -> ctypes.CDLL:
    """Load a library built by :func:`compiler`; a cross compiler's output is one line naming CC."""
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        cc = " ".join(compiler())
        reason = str(exc).split(": ", 1)[-1][:80]
        raise CompileError(
            f"the library that CC={cc!r} built cannot be loaded here ({reason}): CC must be a host compiler "
            "for check and the tests; run with CC=cc (or CC=gcc), or unset CC"
        ) from None


def flags(real: str) -> list[str]:
    return [*WARNINGS, *(FLOAT_WARNINGS if real == "float" else ())]


def compile_c(files: dict[str, str], folder: Path, real: str, output: str, extra: tuple[str, ...] = ()) -> Path:
    """Write ``files`` into ``folder``, compile every ``.c`` (and ``extra`` args) into ``output``."""
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    sources = [str(folder / n) for n in files if n.endswith(".c")]
    out = folder / output
    cmd = [*compiler(), *flags(real), *extra, *sources, "-o", str(out), "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["(no message)"])[0]
        raise CompileError(f"the generated C did not compile cleanly: {first}")
    return out


class CModule:
    """A compiled C target with the NumPy module's interface (float64 or float32 arrays)."""

    def __init__(self, spec: Spec, library: ctypes.CDLL, real: str, work_size: int) -> None:
        self.spec = spec
        self.real = real
        self.dtype = np.float32 if real == "float" else np.float64
        self.PARAM_SHAPES = dict(spec.param_shapes)
        self.N_PARAMS = spec.n_params
        self.WORK_SIZE = work_size
        self.lib = library
        ptr = ctypes.c_void_p
        self._forward = getattr(library, f"{spec.name}_forward")
        self._forward.argtypes = [ptr, ptr, ctypes.c_size_t, ptr, ptr]
        self._forward.restype = ctypes.c_int
        self.training = hasattr(library, f"{spec.name}_loss_and_grad")  # not in an inference-only build
        self._loss_and_grad: Any = None
        self._init_params: Any = None
        self._sgd_step: Any = None
        self._adam_step: Any = None
        if self.training:
            real_c = ctypes.c_float if real == "float" else ctypes.c_double
            ulong = ctypes.c_ulong
            for fn, args in (
                ("loss_and_grad", [ptr, ptr, ptr, ctypes.c_size_t, ptr, ptr, ptr]),
                ("init_params", [ptr, ulong]),
                ("sgd_step", [ptr, ptr, ptr, real_c, real_c]),
                ("adam_step", [ptr, ptr, ptr, ptr, ulong, real_c, real_c, real_c, real_c]),
            ):
                f = getattr(library, f"{spec.name}_{fn}")
                f.argtypes, f.restype = args, ctypes.c_int
                setattr(self, f"_{fn}", f)

    def flat(self, params: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(params[k], self.dtype).ravel() for k in self.PARAM_SHAPES])

    def unflat(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out, offset = {}, 0
        for k, shape in self.PARAM_SHAPES.items():
            size = int(np.prod(shape))
            out[k] = flat[offset : offset + size].reshape(shape)
            offset += size
        return out

    def _array(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=self.dtype)

    def raw_loss_and_grad(
        self, flat: np.ndarray, X: np.ndarray, Y: np.ndarray, loss: np.ndarray, grad: np.ndarray, work: np.ndarray
    ) -> int:
        """The C call on contiguous arrays of the real type, as they are (no copies, no checks)."""
        return int(
            self._loss_and_grad(
                flat.ctypes.data,
                X.ctypes.data,
                Y.ctypes.data,
                X.shape[0],
                loss.ctypes.data,
                grad.ctypes.data,
                work.ctypes.data,
            )
        )

    def loss_and_grad(
        self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        X, Y = self._array(X), self._array(Y)
        flat, grad = self.flat(params), np.zeros(self.N_PARAMS, self.dtype)
        loss, work = np.zeros(1, self.dtype), np.zeros(self.WORK_SIZE, self.dtype)
        code = self.raw_loss_and_grad(flat, X, Y, loss, grad, work)
        if code != 0:
            raise ValueError(f"{self.spec.name}_loss_and_grad returned {code}")
        return float(loss[0]), self.unflat(grad)

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        """The C ``init_params`` (Glorot uniform from splitmix64) as a params dict."""
        flat = np.zeros(self.N_PARAMS, self.dtype)
        code = int(self._init_params(flat.ctypes.data, seed))
        if code != 0:
            raise ValueError(f"{self.spec.name}_init_params returned {code}")
        return self.unflat(flat)

    def loss(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
        return self.loss_and_grad(params, X, Y)[0]

    def forward(self, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        X = self._array(X)
        out = np.zeros((X.shape[0], self.spec.outputs), self.dtype)
        flat, work = self.flat(params), np.zeros(self.WORK_SIZE, self.dtype)  # named: alive through the call
        code = self._forward(flat.ctypes.data, X.ctypes.data, X.shape[0], out.ctypes.data, work.ctypes.data)
        if code != 0:
            raise ValueError(f"{self.spec.name}_forward returned {code}")
        return out


def work_size(header: str, name: str) -> int:
    prefix = f"#define {name.upper()}_WORK_SIZE "
    line = next(line for line in header.splitlines() if line.startswith(prefix))
    return int(line[len(prefix) :])


def load_c(spec: Spec, real: str = "double", inference_only: bool = False) -> CModule:
    """Generate, compile (warnings as errors) and load ``spec``'s C target."""
    files = render_files(spec, target="c", options={"real": real}, inference_only=inference_only)
    with tempfile.TemporaryDirectory(prefix="symprop-c-") as tmp:
        path = compile_c(files, Path(tmp), real, f"lib{spec.name}.so", ("-shared", "-fPIC"))
        library = load_library(path)
    return CModule(spec, library, real, work_size(files[f"{spec.name}.h"], spec.name))


__all__ = [
    "FLOAT_WARNINGS",
    "WARNINGS",
    "CModule",
    "CompileError",
    "compile_c",
    "compiler",
    "flags",
    "load_c",
    "load_library",
]
