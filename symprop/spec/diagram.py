"""An SVG picture of a layered network: one circle per unit, edges, a label per layer.

Pure drawing: it takes plain data (:class:`LayerPicture`), imports nothing from the
pipeline, and escapes every label with :func:`html.escape`.  Invariants: a layer of
more than :data:`MAX_DRAWN` units is drawn compactly (the first and last
:data:`SHOWN_EACH_SIDE` units, an ellipsis and the count), so the number of circles
is :func:`drawn_units` summed over the layers; the output is deterministic (no ids,
no timestamps), so it can be pinned by golden files.
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
ROW = 34  # vertical distance between units (px)
RADIUS = 11
TOP = 60  # room for the forward arrow
LABEL_LINE = 16
LABEL_CHARS = 34  # label lines are wrapped at this many characters
CHAR_WIDTH = 6.2  # px per character of a 12px label, for spacing the columns
MAX_COLUMN = 260


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


def network_svg(layers: Sequence[LayerPicture]) -> str:
    """The network as an inline ``<svg>`` element (layer 0 = the inputs)."""
    esc = html.escape
    layers = [LayerPicture(layer.units, layer.title, _wrapped(layer.lines)) for layer in layers]
    longest = max(len(line) for layer in layers for line in (layer.title, *layer.lines))
    column = int(max(COLUMN, min(MAX_COLUMN, CHAR_WIDTH * longest + 24)))
    heights = [len(_rows(layer.units)) for layer in layers]
    tallest = max(heights)
    label_lines = max(2 + len(layer.lines) for layer in layers)
    width_pad = max(100, column // 2)
    width = column * (len(layers) - 1) + 2 * width_pad
    body_height = tallest * ROW
    height = TOP + body_height + 24 + label_lines * LABEL_LINE + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="network" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{esc(' - '.join(str(layer.units) for layer in layers))} network</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>',
    ]
    centres: list[list[tuple[float, float]]] = []
    for k, layer in enumerate(layers):
        x = width_pad + column * k
        rows = _rows(layer.units)
        offset = TOP + (tallest - len(rows)) * ROW / 2 + ROW / 2
        centres.append([(x, offset + r * ROW) for r in rows if r is not None])
    edges = []
    for left, right in pairwise(centres):
        for x1, y1 in left:
            for x2, y2 in right:
                edges.append(f'<line x1="{x1 + RADIUS:g}" y1="{y1:g}" x2="{x2 - RADIUS:g}" y2="{y2:g}" class="edge"/>')
    out.append('<g class="edges">' + "".join(edges) + "</g>")
    for k, layer in enumerate(layers):
        x = width_pad + column * k
        kind = "input" if k == 0 else ("output" if k == len(layers) - 1 else "hidden")
        rows = _rows(layer.units)
        offset = TOP + (tallest - len(rows)) * ROW / 2 + ROW / 2
        group = [f'<g class="layer {kind}" data-units="{layer.units}" data-drawn="{drawn_units(layer.units)}">']
        for r in rows:
            if r is None:
                group.append(f'<text x="{x:g}" y="{offset + (SHOWN_EACH_SIDE) * ROW + 5:g}" class="ellipsis">⋮</text>')
            else:
                group.append(f'<circle cx="{x:g}" cy="{offset + r * ROW:g}" r="{RADIUS}" class="unit {kind}"/>')
        y = TOP + body_height + 24
        texts = [layer.title, f"{layer.units} unit{'s' if layer.units != 1 else ''}", *layer.lines]
        for n, text in enumerate(texts):
            cls = "label title" if n == 0 else "label"
            group.append(f'<text x="{x:g}" y="{y + n * LABEL_LINE:g}" class="{cls}">{esc(text)}</text>')
        group.append("</g>")
        out.append("".join(group))
    x_left, x_right = width_pad, width_pad + column * (len(layers) - 1)
    out.append(
        f'<g class="direction forward"><line x1="{x_left:g}" y1="22" x2="{x_right:g}" y2="22" '
        f'marker-end="url(#arrow)"/><text x="{(x_left + x_right) / 2:g}" y="16">'
        "forward: z = W a + b, a = f(z)</text></g>"
    )
    yb = height - 22
    out.append(
        f'<g class="direction backward"><line x1="{x_right:g}" y1="{yb:g}" x2="{x_left:g}" y2="{yb:g}" '
        f'marker-end="url(#arrow)"/><text x="{(x_left + x_right) / 2:g}" y="{yb + 16:g}">'
        "backward: δ = ∂C/∂z, from the output down</text></g>"
    )
    out.append("</svg>")
    return "\n".join(out)
