"""The learning curves of ``train --plot``: a PNG rendered in memory with matplotlib (Agg backend),
marked as symprop's by its ``Software`` text so a later run may replace it."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np

from symprop import __version__
from symprop.io import show, write_atomic_with
from symprop.tools.loop import History


def plot_available() -> bool:
    """Is matplotlib installed (``--plot`` is refused before any work when it is not)?"""
    return importlib.util.find_spec("matplotlib") is not None


def _zoom(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    margin = max((high - low) * 0.08, 1e-3)
    return low - margin, high + margin


COLOURS = {"train": "tab:blue", "validation": "tab:orange", "test": "tab:green"}


def loss_label(y_mean: object) -> str:
    """The loss axis's label: the loss of standardized targets when they were standardized."""
    return "loss (standardized targets)" if y_mean is not None else "loss"


def render_plot(history: History, title: str = "", loss_label: str = "loss") -> bytes:
    """PNG bytes: train, validation and test loss per epoch (left), and the metric (accuracy or R²)
    of the validation and test sets on an axis zoomed to the values' range (right). matplotlib,
    Agg backend. The title is plain text (no mathtext: a ``$`` in a file name is just a ``$``);
    the PNG's ``Software`` text is ``symprop <version>``, which marks it as ours."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    epochs = np.arange(1, history.epochs + 1)
    left, right = fig.subplots(1, 2)
    left.plot(epochs, history.loss, label="train", color=COLOURS["train"])
    losses = list(history.loss)
    for name, values in (("validation", history.val_loss), ("test", history.test_loss)):
        if values:
            left.plot(epochs[: len(values)], values, label=name, color=COLOURS[name])
            losses += values
    left.set_xlabel("epoch")
    left.set_ylabel(loss_label)
    left.set_yscale("log" if min(losses) > 0 else "linear")
    if history.best_epoch:
        left.axvline(history.best_epoch, color="grey", linestyle=":", label="kept")
    left.legend()
    scores = [(n, v) for n, v in (("validation", history.val_metric), ("test", history.test_metric)) if v]
    if scores:
        for name, values in scores:
            right.plot(epochs[: len(values)], values, label=name, color=COLOURS[name])
        right.set_ylabel(history.metric_name)
        right.set_ylim(*_zoom([v for _, values in scores for v in values]))
        right.legend()
    else:
        right.axis("off")
        right.text(0.5, 0.5, f"no held-out set: no {history.metric_name} curve", ha="center", va="center")
    right.set_xlabel("epoch")
    if title:
        fig.suptitle(show(title), parse_math=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": f"symprop {__version__}"})
    return buffer.getvalue()


def save_plot(path: str | Path, history: History, title: str = "", loss_label: str = "loss") -> None:
    """Write :func:`render_plot`'s PNG to ``path`` atomically."""
    data = render_plot(history, title, loss_label)
    write_atomic_with(Path(path), lambda handle: handle.write(data))


__all__ = ["COLOURS", "loss_label", "plot_available", "render_plot", "save_plot"]
