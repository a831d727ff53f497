"""An SVG picture of a layered network: one circle per unit, edges, a label per layer.

Pure drawing: it takes plain data (:class:`LayerPicture`), imports nothing from the
pipeline, and escapes every label with :func:`html.escape`.  Invariants: a layer of
more than :data:`MAX_DRAWN` units is drawn compactly (the first and last
:data:`SHOWN_EACH_SIDE` units, an ellipsis and the count), so the number of circles
is :func:`drawn_units` summed over the layers (the cost node is a rectangle); the output
is deterministic (no ids but the arrow marker's, no timestamps), so it can be pinned by
golden files.

Self-contained: every element carries its look as presentation attributes (stroke, fill,
font), so the SVG alone (a notebook's ``_repr_svg_``) draws the same as inside the report,
whose stylesheet may refine it through the class names.  The teaching labels: z and a inside
each unit (x for the inputs), the weight W^(l)_ji on each edge between layers of at most
:data:`MAX_LABELLED` units, and a cost node C(a, y) after the output layer.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

MAX_DRAWN = 12  # a layer with more units than this is drawn compactly
SHOWN_EACH_SIDE = 5  # ... with this many units drawn at each end
COLUMN = 210  # horizontal distance between layers (px)
ROW = 38  # vertical distance between units (px)
RADIUS = 16
TOP = 60  # room for the forward arrow
LABEL_LINE = 16
LABEL_CHARS = 34  # label lines are wrapped at this many characters
CHAR_WIDTH = 6.2  # px per character of a 12px label, for spacing the columns
MAX_COLUMN = 260
MAX_LABELLED = 4  # edges between two layers of at most this many units carry their weight's name
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
EDGE = 'stroke="#8d99a6" stroke-width="0.8"'
FILL = {"input": "#e8f0e8", "hidden": "#e6eef8", "output": "#fbe9d8"}
SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
SUB = str.maketrans("0123456789,", "₀₁₂₃₄₅₆₇₈₉‚")


def _text(x: float, y: float, content: str, size: int = 12, cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:g}" y="{y:g}"{c} {FONT} font-size="{size}" text-anchor="middle" fill="#222"{extra}>'
        f"{html.escape(content)}</text>"
    )


def _unit_numbers(units: int) -> list[int | None]:
    """The 1-based unit drawn in each row (None: the ellipsis)."""
    return [
        None if r is None else (int(r) + 1 if r < SHOWN_EACH_SIDE + 1 else units - (2 * SHOWN_EACH_SIDE - int(r)))
        for r in _rows(units)
    ]


@dataclass(frozen=True)
class LayerPicture:
    """One column: ``units`` circles; ``title`` and ``lines`` (plain text) under it."""

    units: int
    title: str
    lines: tuple[str, ...] = ()


def _wrapped(lines: Sequence[str]) -> tuple[str, ...]:
    """Label lines wrapped at :data:`LABEL_CHARS` (at spaces; a long word is cut)."""
    return tuple(part for line in lines for part in textwrap.wrap(line, LABEL_CHARS, break_on_hyphens=False) or [""])


def drawn_units(units: int) -> int:
    """How many circles a layer of ``units`` units gets."""
    return units if units <= MAX_DRAWN else 2 * SHOWN_EACH_SIDE


def _rows(units: int) -> list[float | None]:
    """Row positions (in rows) of the drawn units; None marks the ellipsis."""
    if units <= MAX_DRAWN:
        return [float(k) for k in range(units)]
    return [*map(float, range(SHOWN_EACH_SIDE)), None, *(SHOWN_EACH_SIDE + 1.0 + k for k in range(SHOWN_EACH_SIDE))]


def network_svg(layers: Sequence[LayerPicture], cost: str | None = None) -> str:
    """The network as an inline ``<svg>`` element (layer 0 = the inputs); ``cost`` labels a cost
    node after the output layer (e.g. ``C(a, y)``)."""
    esc = html.escape
    layers = [LayerPicture(layer.units, layer.title, _wrapped(layer.lines)) for layer in layers]
    longest = max(len(line) for layer in layers for line in (layer.title, *layer.lines))
    column = int(max(COLUMN, min(MAX_COLUMN, CHAR_WIDTH * longest + 24)))
    heights = [len(_rows(layer.units)) for layer in layers]
    tallest = max(heights)
    label_lines = max(2 + len(layer.lines) for layer in layers)
    width_pad = max(100, column // 2)
    extra = column // 2 if cost else 0
    width = column * (len(layers) - 1) + 2 * width_pad + extra
    body_height = tallest * ROW
    height = TOP + body_height + 24 + label_lines * LABEL_LINE + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="network" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="background:#fff">',
        f"<title>{esc(' - '.join(str(layer.units) for layer in layers))} network</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    centres: list[list[tuple[float, float, int]]] = []
    for k, layer in enumerate(layers):
        x = width_pad + column * k
        rows = _rows(layer.units)
        offset = TOP + (tallest - len(rows)) * ROW / 2 + ROW / 2
        numbers = _unit_numbers(layer.units)
        centres.append([(x, offset + r * ROW, n) for r, n in zip(rows, numbers, strict=True) if r is not None and n])
    edges, weights = [], []
    for l, (left, right) in enumerate(pairwise(centres), 1):
        labelled = layers[l - 1].units <= MAX_LABELLED and layers[l].units <= MAX_LABELLED
        for x1, y1, i in left:
            for x2, y2, j in right:
                edges.append(
                    f'<line x1="{x1 + RADIUS:g}" y1="{y1:g}" x2="{x2 - RADIUS:g}" y2="{y2:g}" class="edge" {EDGE}/>'
                )
                if labelled:  # the weight's name at 70% of the way, where edges into one unit fan apart
                    t = 0.7
                    lx, ly = x1 + RADIUS + t * (x2 - x1 - 2 * RADIUS), y1 + t * (y2 - y1)
                    name = f"W{str(l).translate(SUP)}{f'{j},{i}'.translate(SUB)}"
                    weights.append(_text(lx, ly - 3, name, 9, "weight", ' fill-opacity="0.9"'))
    out.append('<g class="edges">' + "".join(edges) + "</g>")
    if weights:
        out.append('<g class="weights">' + "".join(weights) + "</g>")
    for k, layer in enumerate(layers):
        x = width_pad + column * k
        kind = "input" if k == 0 else ("output" if k == len(layers) - 1 else "hidden")
        rows = _rows(layer.units)
        offset = TOP + (tallest - len(rows)) * ROW / 2 + ROW / 2
        group = [f'<g class="layer {kind}" data-units="{layer.units}" data-drawn="{drawn_units(layer.units)}">']
        for r, n in zip(rows, _unit_numbers(layer.units), strict=True):
            if r is None or n is None:
                group.append(_text(x, offset + SHOWN_EACH_SIDE * ROW + 5, "⋮", 18, "ellipsis"))
                continue
            cy = offset + r * ROW
            group.append(
                f'<circle cx="{x:g}" cy="{cy:g}" r="{RADIUS}" class="unit {kind}" '
                f'stroke="#333" stroke-width="1.2" fill="{FILL[kind]}"/>'
            )
            sub = str(n).translate(SUB)
            if k == 0:
                group.append(_text(x, cy + 3, f"x{sub}", 9, "value"))
            else:  # z above a, inside the unit
                sup = str(k).translate(SUP)
                group.append(_text(x, cy - 1, f"z{sup}{sub}", 8, "value"))
                group.append(_text(x, cy + 7, f"a{sup}{sub}", 8, "value"))
        y = TOP + body_height + 24
        texts = [layer.title, f"{layer.units} unit{'s' if layer.units != 1 else ''}", *layer.lines]
        for n, text in enumerate(texts):
            extra_attr = ' font-weight="bold"' if n == 0 else ""
            group.append(_text(x, y + n * LABEL_LINE, text, 12, "label title" if n == 0 else "label", extra_attr))
        group.append("</g>")
        out.append("".join(group))
    x_left, x_right = width_pad, width_pad + column * (len(layers) - 1)
    if cost:
        cx, cy = x_right + extra, TOP + body_height / 2
        links = "".join(
            f'<line x1="{x + RADIUS:g}" y1="{y:g}" x2="{cx - 30:g}" y2="{cy:g}" class="edge cost" {EDGE} '
            'stroke-dasharray="3,2"/>'
            for x, y, _ in centres[-1]
        )
        out.append(
            f'<g class="cost">{links}<rect x="{cx - 30:g}" y="{cy - 13:g}" width="60" height="26" rx="5" '
            f'stroke="#333" stroke-width="1.2" fill="#f6e3e3"/>{_text(cx, cy + 4, cost, 11, "label")}</g>'
        )
    out.append(
        f'<g class="direction forward" color="#264"><line x1="{x_left:g}" y1="22" x2="{x_right:g}" y2="22" '
        f'stroke="#264" stroke-width="1.5" marker-end="url(#arrow)"/>'
        + _text((x_left + x_right) / 2, 16, "forward: z = W a + b, a = f(z)")
        + "</g>"
    )
    yb = height - 22
    out.append(
        f'<g class="direction backward" color="#a33"><line x1="{x_right:g}" y1="{yb:g}" x2="{x_left:g}" y2="{yb:g}" '
        f'stroke="#a33" stroke-width="1.5" marker-end="url(#arrow)"/>'
        + _text((x_left + x_right) / 2, yb + 16, "backward: δ = ∂C/∂z, from the output down")
        + "</g>"
    )
    out.append("</svg>")
    return "\n".join(out)
