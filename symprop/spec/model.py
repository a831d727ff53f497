"""Stage 1 of the pipeline: the network spec (TOML or Python), strictly validated.

A spec is untrusted input.  Every key is checked against the known ones (with
a "did you mean" for typos), every number against its range, and custom
expressions are parsed by :mod:`symprop.spec.safe_expr` without ``eval``.  Errors
are :class:`SpecError` with a one-line message naming the field and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import keyword
import math
import os
import re
import stat
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from symprop.io import read_problem
from symprop.ir.names import bias, weight
from symprop.spec.registry import ACTIVATIONS, LOSSES

ParamValue = float | str


class SpecError(ValueError):
    """A spec is invalid; the message is one line naming the field and the fix."""


SPEC_KEYS = ("name", "inputs", "loss", "loss_expr", "l2", "layers")
OPTIONAL_KEYS = ("loss_expr", "l2")
LAYER_KEYS = ("units", "activation")
MAX_UNITS = 100_000
# Total parameters: 10 million is 80 MB per float64 copy, and check, train and report hold several
# copies (gradients, optimizer state, finite differences); 100,000 x 100,000 would be 74.5 GiB.
MAX_PARAMS = 10_000_000
MAX_PARAMS_ENV = "SYMPROP_MAX_PARAMS"  # raises (or lowers) MAX_PARAMS, e.g. SYMPROP_MAX_PARAMS=50000000
MAX_SPEC_BYTES = 1 << 20  # 1 MiB: a spec is a few hundred bytes; bounds reading /dev/zero or a huge file
# Packages generated modules import, or may import in other backends, and the generator's own: a
# module with one of these names (or a standard-library name) would shadow it or be shadowed.
RESERVED_MODULE_NAMES = frozenset(
    {
        "numpy", "array_api_compat", "sympy", "mpmath", "jinja2", "markupsafe", "symprop", "scipy",
        "torch", "jax", "jaxlib", "dask", "distributed", "cupy", "numba", "sklearn", "matplotlib",
        "pytest", "hypothesis", "tomllib", "tomli",
    }
)  # fmt: skip
_PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")


@dataclass(frozen=True)
class Layer:
    """One layer: ``units`` neurons, ``activation`` with its parameters."""

    units: int
    activation: str
    params: tuple[tuple[str, ParamValue], ...] = ()

    @classmethod
    def of(cls, units: int, activation: str, **params: ParamValue) -> Layer:
        """Python spelling of a TOML layer table: ``Layer.of(3, "sigmoid", beta=2.0)``."""
        return cls(units, activation, tuple(sorted(params.items())))

    def param(self, name: str) -> ParamValue | None:
        """The value given in the spec, or the documented default (None if optional)."""
        given = dict(self.params)
        if name in given:
            return given[name]
        entry = ACTIVATIONS.get(self.activation)
        for p in entry.params if entry else ():
            if p.name == name:
                return p.default
        return None

    def describe(self) -> str:
        """``sigmoid(beta=2.0)``, or the bare name when no parameters were given."""
        params = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.activation}({params})" if params else self.activation

    def number(self, name: str) -> float:
        value = self.param(name)
        if not isinstance(value, float):
            raise KeyError(f"{self.activation} has no numeric parameter {name!r}")
        return value


@dataclass(frozen=True)
class Spec:
    """A fixed network: ``inputs`` features, ``layers``, and a ``loss``."""

    name: str
    inputs: int
    layers: tuple[Layer, ...]
    loss: str
    loss_expr: str | None = None
    l2: float = 0.0  # the L2 penalty λ: C = (1/n) Σ_k C_k + (λ/2) Σ_l ‖W^l‖² (weights, not biases)
    source: str = field(default="<spec>", compare=False)

    # computed once per spec (cached_property writes the instance's __dict__, which a frozen dataclass
    # allows): the generator asks for them once per layer, which was quadratic in the number of layers
    @cached_property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.inputs, *(layer.units for layer in self.layers))

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @cached_property
    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        sizes = self.layer_sizes
        for l in range(1, len(sizes)):
            shapes[weight(l)] = (sizes[l], sizes[l - 1])
            shapes[bias(l)] = (sizes[l],)
        return shapes

    @property
    def param_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """``{"W1": (units, inputs), "b1": (units,), ...}``, read-only (computed once per spec)."""
        return MappingProxyType(self._param_shapes)

    @cached_property
    def n_params(self) -> int:
        return sum(math.prod(shape) for shape in self.param_shapes.values())

    @property
    def file_label(self) -> str:
        """The spec's file name for display in emitted text, or ``SPEC`` if the name holds anything
        but letters, digits and ``._+-`` (a file name is user text and is never copied raw)."""
        name = Path(self.source).name
        return name if _PLAIN_FILE_NAME.fullmatch(name) else "SPEC"

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (the TOML structure, defaults not filled in)."""
        data: dict[str, Any] = {"name": self.name, "inputs": self.inputs, "loss": self.loss}
        if self.loss_expr is not None:
            data["loss_expr"] = self.loss_expr
        if self.l2:
            data["l2"] = self.l2
        data["layers"] = [
            {"units": layer.units, "activation": layer.activation, **dict(layer.params)} for layer in self.layers
        ]
        return data

    def hash(self) -> str:
        """A stable hash of the spec's content (not its formatting): 16 hex digits of SHA-256."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def _repr_svg_(self) -> str:
        """Jupyter: the network drawn as a self-contained SVG (its look in presentation attributes)."""
        from symprop.spec.diagram import LayerPicture, network_svg

        pictures = [LayerPicture(self.inputs, "inputs x")]
        pictures += [
            LayerPicture(layer.units, f"layer {l}", (layer.describe(),)) for l, layer in enumerate(self.layers, 1)
        ]
        return network_svg(pictures, cost="C(a, y)")

    def _repr_html_(self) -> str:
        """Jupyter: the network drawn as SVG, then the spec as TOML (every string escaped)."""
        import html

        sizes = "-".join(map(str, self.layer_sizes))
        head = f"<p><b>{html.escape(self.name)}</b>: {sizes} network, loss {html.escape(self.loss)}</p>"
        return f"<div>{head}{self._repr_svg_()}<pre>{html.escape(self.to_toml())}</pre></div>"

    def _repr_latex_(self) -> str:
        """Jupyter: the layer sizes with each activation over its arrow, and the loss."""

        def words(text: str) -> str:
            return re.sub(r"([_%&#${}^~\\])", r"\\\1", text)

        arrows = "".join(rf" \xrightarrow{{\text{{{words(layer.activation)}}}}} {layer.units}" for layer in self.layers)
        return rf"$\text{{{words(self.name)}}}\colon\ {self.inputs}{arrows},\quad \text{{loss {words(self.loss)}}}$"

    def to_toml(self) -> str:
        """The spec as TOML text that :func:`load_spec` reads back to an equal spec."""
        data = self.to_dict()
        keys = ("name", "inputs", "loss", "loss_expr", "l2")
        lines = [f"{key} = {_toml_value(data[key])}" for key in keys if key in data]
        for layer in data["layers"]:
            lines += ["", "[[layers]]"] + [f"{k} = {_toml_value(v)}" for k, v in layer.items()]
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(choices)}"


def _check_keys(table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise SpecError(f"{where}: unknown key {key!r}; {_suggest(key, known)}")


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{where} must be an integer >= {minimum}, got {value!r}")
    if value > MAX_UNITS:
        raise SpecError(f"{where} is {value}; the limit is {MAX_UNITS} per layer")
    return value


def _expression(text: Any, names: Sequence[str], where: str) -> str:
    """The canonical text of a custom expression: parsed, then re-printed from SymPy.

    The user's own text is never kept, so it can never reach an emitted file; the spec
    hash depends on the expression, not on how it was spelled.  SymPy is imported here, not at the
    top: loading a spec without custom expressions (``symprop train`` on a cached module) skips it.
    """
    import sympy as sp

    from symprop.spec.safe_expr import ExprError, canonical_text, check_real, parse_expr

    variables = {name: sp.Symbol(name, real=True) for name in names}
    try:
        expr = parse_expr(text, variables, where)
        check_real(text, names, where)
        return canonical_text(expr, variables, where)
    except ExprError as exc:
        raise SpecError(str(exc)) from None


def _layer(table: Any, where: str) -> Layer:
    if not isinstance(table, Mapping):
        raise SpecError(f"{where} must be a table with 'units' and 'activation'")
    activation = table.get("activation")
    if isinstance(activation, str) and activation in ACTIVATIONS:
        known = [
            *LAYER_KEYS,
            *(p.name for p in ACTIVATIONS[activation].params),
            *(["expr"] if activation == "custom" else []),
        ]
    else:  # judge the other keys against every activation's parameters
        known = [*LAYER_KEYS, *dict.fromkeys(p.name for a in ACTIVATIONS.values() for p in a.params), "expr"]
    _check_keys(table, known, where)
    if "units" not in table:
        raise SpecError(f"{where}: missing key 'units' (the number of neurons, e.g. units = 3)")
    if activation is None:
        raise SpecError(f"{where}: missing key 'activation' (one of {', '.join(ACTIVATIONS)})")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise SpecError(
            f"{where}.activation: unknown activation {activation!r}; {_suggest(str(activation), list(ACTIVATIONS))}"
        )
    schema = {p.name: p for p in ACTIVATIONS[activation].params}
    units = _int(table["units"], f"{where}.units", 1)
    params: dict[str, ParamValue] = {}
    for key, value in table.items():
        if key in LAYER_KEYS:
            continue
        if key == "expr":
            params[key] = _expression(value, ("x",), f"{where}.expr")
            continue
        p = schema[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not p.check(float(value)):
            raise SpecError(f"{where}.{key} must be {p.rule}, got {value!r}")
        params[key] = float(value)
    if activation == "custom" and "expr" not in params:
        raise SpecError(f'{where}: activation \'custom\' needs expr = "..." in x, e.g. expr = "x/(1+abs(x))"')
    layer = Layer(units, activation, tuple(sorted(params.items())))
    if activation == "piecewise_linear":
        _check_piecewise_linear(layer, where)
    if activation == "gaussian" and not 1e-150 <= layer.number("sigma") <= 1e150:
        raise SpecError(
            f"{where}.sigma = {layer.number('sigma')} makes 1/(2*sigma**2) overflow or vanish in float64; "
            "use a sigma between 1e-150 and 1e150"
        )
    return layer


def _check_piecewise_linear(layer: Layer, where: str) -> None:
    """x_max > x_min, and the line through the two knees computes in float64 (no overflow)."""
    x_min, x_max = layer.number("x_min"), layer.number("x_max")
    if not x_max > x_min:
        raise SpecError(f"{where}: x_max must be greater than x_min, got x_min={x_min}, x_max={x_max}")
    width = x_max - x_min
    m, b = layer.param("m"), layer.param("b")
    slope = float(m) if m is not None else (1 / width if width >= 1e-300 else math.inf)
    intercept = float(b) if b is not None else -x_min * slope
    if not (1e-300 <= width <= 1e300 and math.isfinite(slope) and math.isfinite(intercept)):
        raise SpecError(
            f"{where}: x_min={x_min}, x_max={x_max} give a line (slope {slope}, intercept {intercept}) "
            "that float64 cannot hold; use knees whose distance is between 1e-300 and 1e300"
        )


def spec_from_dict(data: Mapping[str, Any], source: str = "<spec>") -> Spec:
    """Validate plain data (as parsed from TOML) into a :class:`Spec`."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: a spec must be a table with keys {', '.join(SPEC_KEYS)}")
    _check_keys(data, SPEC_KEYS, source)
    for key in ("name", "inputs", "loss", "layers"):
        if key not in data:
            raise SpecError(
                f"{source}: missing key {key!r}; a spec needs "
                f"{', '.join(k for k in SPEC_KEYS if k not in OPTIONAL_KEYS)}"
            )
    name = data["name"]
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SpecError(
            f'{source}: name {name!r} must be a Python identifier that is not a keyword, e.g. name = "xor_net"'
        )
    if name in sys.stdlib_module_names or name in RESERVED_MODULE_NAMES:
        raise SpecError(
            f"{source}: name {name!r} is the name of a Python module ({_module_kind(name)}); "
            f'the generated {name}.py would shadow it or be shadowed: use another name, e.g. name = "{name}_net"'
        )
    inputs = _int(data["inputs"], f"{source}: inputs", 1)
    loss = data["loss"]
    if not isinstance(loss, str) or loss not in LOSSES:
        raise SpecError(f"{source}: unknown loss {loss!r}; {_suggest(str(loss), list(LOSSES))}")
    loss_expr = data.get("loss_expr")
    if loss == "custom":
        if loss_expr is None:
            raise SpecError(
                f'{source}: loss \'custom\' needs loss_expr = "..." in a and y, e.g. loss_expr = "(a-y)**4"'
            )
        loss_expr = _expression(loss_expr, ("a", "y"), f"{source}: loss_expr")
    elif loss_expr is not None:
        raise SpecError(f'{source}: loss_expr is only used with loss = "custom"; remove it or set loss = "custom"')
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(f"{source}: layers must be a non-empty list of [[layers]] tables")
    layers = tuple(_layer(t, f"{source}: layers[{i}]") for i, t in enumerate(raw_layers, start=1))
    l2 = data.get("l2", 0.0)
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not math.isfinite(l2) or l2 < 0:
        raise SpecError(f"{source}: l2 must be a number >= 0 (the L2 penalty on the weights), got {l2!r}")
    spec = Spec(name, inputs, layers, loss, loss_expr, float(l2), source=source)
    limit = max_params()
    if spec.n_params > limit:
        raise SpecError(
            f"{source}: {spec.n_params:,} parameters is over the limit of {limit:,} (about {8 * limit / 1e6:,.0f} MB "
            f"per float64 copy; check, train and report hold several); use smaller layers, or set "
            f"{MAX_PARAMS_ENV} to raise the limit"
        )
    if loss == "softmax_ce":
        if spec.outputs < 2:
            raise SpecError(
                f"{source}: softmax_ce needs at least 2 output units, got {spec.outputs}; use bce for one output"
            )
        if layers[-1].activation != "identity":
            raise SpecError(
                f'{source}: softmax_ce needs activation = "identity" on the last layer (the logits), '
                f"got {layers[-1].activation!r}"
            )
    return spec


def max_params() -> int:
    """MAX_PARAMS, or the value of the environment variable MAX_PARAMS_ENV (a positive integer)."""
    text = os.environ.get(MAX_PARAMS_ENV)
    if text is None:
        return MAX_PARAMS
    if not re.fullmatch(r"[1-9][0-9_]{0,17}", text.strip()):
        shown = text if len(text) <= 40 and text.isprintable() else repr(text[:40]) + "..."
        raise SpecError(f"{MAX_PARAMS_ENV}={shown} is not a positive integer; e.g. {MAX_PARAMS_ENV}=50000000")
    return int(text.strip())


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file."""
    p = Path(path)
    try:
        text = _read_spec_text(p)
    except (OSError, UnicodeDecodeError) as exc:
        folder, not_text = "give the path of a .toml spec file", "a spec is a TOML file"
        raise SpecError(read_problem(p, exc, missing="check the path", folder=folder, not_text=not_text)) from None
    _check_toml_structure(text, p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: not valid TOML ({exc}); see the spec reference in the README") from None
    except RecursionError:  # a guard: _check_toml_structure bounds the nesting tomllib recurses on
        raise SpecError(f"{p}: nested too deeply for the TOML parser; a spec nests 2 levels") from None
    return spec_from_dict(data, source=str(p))


MAX_TOML_NESTING = 16  # brackets and braces open at once; a spec needs 2 ([[layers]])
MAX_TOML_KEY_PARTS = 16  # parts of one dotted key a.b.c; a spec needs 1 (tomllib is quadratic in them)
# TOML's tokens as far as nesting and dotted keys go: the four kinds of strings and comments (skipped
# whole, so brackets and dots inside them do not count), brackets, dots, key characters, the rest
_TOML_TOKENS = re.compile(
    r'"""(?:\\.|[^\\])*?""""{0,2}'
    r"|'''.*?''''{0,2}"
    r'|"(?:\\.|[^"\\\n])*"?'
    r"|'[^'\n]*'?"
    r"|#[^\n]*"
    r"|(?P<open>[\[{])|(?P<close>[\]}])|(?P<dot>\.)|(?P<key>[A-Za-z0-9_-]+|[ \t]+)|(?P<other>.)",
    re.DOTALL,
)


def _check_toml_structure(text: str, p: Path) -> None:
    """Refuse structural bombs before tomllib sees them: nesting deeper than MAX_TOML_NESTING
    (tomllib recurses once per level: RecursionError) and dotted keys of more than
    MAX_TOML_KEY_PARTS parts (tomllib's time and memory grow with the square of their length:
    100,000 parts take gigabytes).  Strings and comments are skipped as TOML defines them."""
    depth = dots = 0
    for match in _TOML_TOKENS.finditer(text):
        kind = match.lastgroup
        if kind == "open":
            depth += 1
            if depth > MAX_TOML_NESTING:
                raise SpecError(
                    f"{p}: brackets or braces nested more than {MAX_TOML_NESTING} deep; a spec nests 2 levels "
                    "([[layers]] tables of plain values)"
                )
        elif kind == "close":
            depth = max(depth - 1, 0)
        elif kind == "dot":
            dots += 1
            if dots >= MAX_TOML_KEY_PARTS:
                raise SpecError(
                    f"{p}: a dotted key of more than {MAX_TOML_KEY_PARTS} parts (a.b.c...); a spec's keys are "
                    "plain names"
                )
        if kind in ("open", "close", "other"):  # a key part (bare or quoted) or a dot continue a dotted key
            dots = 0


def _module_kind(name: str) -> str:
    return "standard library" if name in sys.stdlib_module_names else "a package generated code or symprop uses"


def _read_spec_text(p: Path) -> str:
    """The file's text, if it is a regular file of at most MAX_SPEC_BYTES (read with that bound).

    Opened non-blocking and checked with fstat before reading: a FIFO or device is refused
    without waiting on it.
    """
    not_regular = SpecError(f"{p}: not a regular file (a device, pipe or socket); give the path of a .toml spec file")
    if p.exists() and not p.is_dir() and not p.is_file():
        raise not_regular
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(p)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular
        data = handle.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"{p}: larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is a short TOML file")
    return data.decode("utf-8-sig")  # a BOM (Notepad, Excel) is not part of the TOML


def validate(spec: Spec) -> Spec:
    """Check a spec built in Python (``Spec(...)`` with ``Layer.of``) by the same rules as TOML."""
    return spec_from_dict(spec.to_dict(), source=spec.source)
