"""What ``train`` prints while it runs: the progress of the epochs (a redrawn bar on a terminal, else
a plain line every 10% of epochs), and the lines it says, each made safe for a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from symprop.io import safe_line, show
from symprop.tools.loop import History


class Progress:
    """Epoch, loss and validation scores (never test scores): a redrawn bar on a terminal, else a plain
    line every 10% of epochs."""

    def __init__(
        self, epochs: int, stream: IO[str] | None = None, tty: bool | None = None, unit: str = "epoch"
    ) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = max(1, epochs // 10)
        self.last_draw = 0.0
        self.width = 24
        self.unit = unit

    @staticmethod
    def metrics(history: History) -> str:
        short = "acc" if history.metric_name == "accuracy" else history.metric_name
        parts = [f"loss {history.loss[-1]:.4f}"]
        if history.val_loss:
            parts.append(f"val loss {history.val_loss[-1]:.4f}")
            parts.append(f"val {short} {history.val_metric[-1]:.4f}")
        return "  ".join(parts)  # never the test scores: they are for the end, not for choosing

    def __call__(self, epoch: int, history: History) -> None:
        digits = len(str(self.epochs))
        if self.tty:
            now = time.perf_counter()
            if epoch < self.epochs and now - self.last_draw < 0.1:
                return
            self.last_draw = now
            filled = self.width * epoch // self.epochs
            bar = "#" * filled + "." * (self.width - filled)
            line = (
                f"{self.unit} {epoch:>{digits}}/{self.epochs} [{bar}] {self.metrics(history)}  {history.seconds:.1f}s"
            )
            self.stream.write(f"\r{line}\x1b[K")
            self.stream.flush()
        elif epoch % self.every == 0 or epoch == self.epochs:
            self.stream.write(f"{self.unit} {epoch:>{digits}}/{self.epochs}  {self.metrics(history)}\n")
            self.stream.flush()

    def summary(self, history: History) -> list[str]:
        """The lines after training: its time, why it stopped early, which epoch's params were kept."""
        per = history.seconds / max(history.epochs, 1)
        lines = [f"training time: {history.seconds:.3f} s ({per * 1000:.2f} ms per {self.unit})"]
        if history.stop_reason:
            lines.append(f"stopped after {history.epochs} {self.unit}s: {history.stop_reason}")
        if history.best_epoch:
            lines.append(f"kept the params of {self.unit} {history.best_epoch} (lowest validation loss)")
        return lines

    def close(self) -> None:
        """End the redrawn line (training may stop before the last epoch)."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def sayer(stream: IO[str]) -> Callable[[str], None]:
    """A function printing one line to ``stream`` through :func:`symprop.io.safe_line` (user text in
    it, such as column names, cannot send terminal escapes)."""

    def say(line: str) -> None:
        stream.write(safe_line(line) + "\n")
        stream.flush()

    return say


def short_list(names: Sequence[str], limit: int = 10) -> str:
    """At most ``limit`` names, each through :func:`symprop.io.show`, then how many there are in all."""
    shown = ", ".join(show(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


__all__ = ["Progress", "sayer", "short_list"]
