"""Class labels as training targets, one encoding for every path (``train`` locally and on Dask,
the scikit-learn classifier, ``predict`` and the scores).

* The classes are the distinct labels, sorted: as numbers when every label is a number (so
  ``"1"`` and ``"1.0"`` are one class, sorted numerically), else as text.
* A class's code is its position in that order; a row's target is the one-hot row of its code,
  except that two classes and one output unit give a single 0/1 column (the second class is 1).
* Back from targets or outputs: the argmax of a row, or for a single column whether it is
  above 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from symprop.tools.tables import number


def label_keys(labels: Sequence[Any]) -> list[Any]:
    """One key per label: the number when every label is a number, else the text."""
    numbers = [number(str(label)) for label in labels]
    if all(v is not None for v in numbers):
        return numbers
    return [str(label) for label in labels]


def class_name(key: Any) -> str:
    """A class key as it is shown and saved: ``3`` for the number 3.0, the text otherwise."""
    if isinstance(key, float):
        return str(int(key)) if key.is_integer() else repr(key)
    return str(key)


@dataclass(frozen=True)
class Classes:
    """The classes of a label column: their keys in output order, and whether they are numbers."""

    keys: tuple[Any, ...]
    numeric: bool

    @classmethod
    def of(cls, labels: Sequence[Any]) -> Classes:
        keys = sorted(set(label_keys(labels)))
        return cls(tuple(keys), bool(keys) and isinstance(keys[0], float))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(class_name(k) for k in self.keys)

    def codes(self, labels: Iterable[Any]) -> np.ndarray:
        """The code of each label (every label is one of the classes)."""
        index = {k: i for i, k in enumerate(self.keys)}
        to_key = (lambda v: float(str(v))) if self.numeric else str
        return np.array([index[to_key(v)] for v in labels], dtype=np.int64)


def one_hot(codes: np.ndarray, outputs: int) -> np.ndarray:
    """Float64 targets (rows, outputs) of class codes: one-hot, or one 0/1 column when ``outputs`` is 1."""
    codes = np.asarray(codes)
    if outputs == 1:
        return codes.reshape(-1, 1).astype(np.float64)
    return np.eye(outputs)[codes]


def class_codes(Y: np.ndarray) -> np.ndarray:
    """The class code of each row of targets or outputs: the argmax, or for one column ``> 0.5``."""
    return np.argmax(Y, axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5).astype(int)


__all__ = ["Classes", "class_codes", "class_name", "label_keys", "one_hot"]
