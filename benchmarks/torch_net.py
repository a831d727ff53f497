"""The PyTorch eager peer, written once for `benchmarks.peers` and `benchmarks/runtime.py`.

Each caller passes its own `torch` module, imported and pinned to one thread before anything
else loads; this file imports neither torch nor the callers' settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from symprop.ir.names import bias, weight
from symprop.spec import Spec


def torch_loss_and_grad(
    torch: Any, spec: Spec, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray
) -> Callable[[], tuple[float, dict[str, Any]]]:
    """One eager `loss_and_grad` call: forward with `addmm`, the batch-mean cost (cross-entropy with
    probability targets for softmax_ce, half the squared error summed over the outputs otherwise),
    backward; returns the cost and the gradient tensors by parameter name."""
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    acts = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "identity": lambda t: t}

    def run() -> tuple[float, dict[str, Any]]:
        for p in tp.values():
            p.grad = None
        h = tX
        for l, layer in enumerate(spec.layers, start=1):
            h = acts[layer.activation](torch.addmm(tp[bias(l)], h, tp[weight(l)].T))
        if spec.loss == "softmax_ce":
            cost = torch.nn.functional.cross_entropy(h, tY)  # probability targets: -sum y log softmax / n
        else:
            cost = 0.5 * ((h - tY) ** 2).sum() / tX.shape[0]
        cost.backward()
        return cost.item(), {k: p.grad for k, p in tp.items()}

    return run
