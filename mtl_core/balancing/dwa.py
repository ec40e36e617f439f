"""Dynamic weight average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod
from mtl_core.options import Option

__all__ = ["DynamicWeightAverage", "dwa_weights"]

_MAX_RATIO = 1e6


@METHODS.register("dwa")
class DynamicWeightAverage(BalancingMethod):
    """Weights from the rate of change of each task's epoch-mean training loss.

    Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention" (MTAN), CVPR 2019.

    With L̄ᵢ(e) the mean training loss of task i in epoch e (given to :meth:`on_epoch_end`),
    the weights used during epoch t are::

        wᵢ(t) = T · softmax(r(t−1) / τ)ᵢ,    rᵢ(t−1) = L̄ᵢ(t−1) / L̄ᵢ(t−2)

    and wᵢ = 1 for the first two epochs (no ratio exists yet). A task whose loss falls slowly
    (ratio near 1) gets more weight than one that falls fast. A zero previous mean gives ratio 1;
    ratios are capped at 1e6 so that a loss jumping from almost zero cannot overflow the softmax.
    """

    name = "dwa"
    description = "Weights each task by how slowly its epoch loss falls: T·softmax(L̄(t−1)/L̄(t−2)/τ)."
    paper = "Liu et al., CVPR 2019"
    kind = "loss"
    positive_weights = True
    options = (Option("temperature", "float", 2.0, "softmax temperature τ (larger → flatter)", low=1e-3),)

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self._history: list[torch.Tensor] = []
        self._weights = torch.ones(n_tasks, dtype=torch.float64)

    def current_weights(self) -> torch.Tensor:
        return self._weights.clone()

    def on_epoch_end(self, epoch: int, mean_train_losses: torch.Tensor) -> None:
        means = torch.as_tensor(mean_train_losses).detach().to(device="cpu", dtype=torch.float64).flatten()
        if means.numel() != self.n_tasks:
            raise ValueError(
                f"`mean_train_losses` must have {self.n_tasks} entries (one per task), got {means.numel()}"
            )
        if not bool(torch.isfinite(means).all()):
            raise ValueError(f"`mean_train_losses` must be finite, got {means.tolist()}")
        self._history = [*self._history[-1:], means]
        if len(self._history) == 2:
            self._weights = dwa_weights(self._history[1], self._history[0], self.settings["temperature"])


def dwa_weights(last: torch.Tensor, before_last: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T · softmax((last / before_last) / τ)``, with ratio 1 where ``before_last`` is 0."""
    safe = torch.where(before_last > 0, before_last, torch.ones_like(before_last))
    ratios = torch.where(before_last > 0, last / safe, torch.ones_like(last))
    # A huge ratio already gives a one-hot softmax; the cap only keeps ratio / τ finite.
    ratios = torch.nan_to_num(ratios, nan=1.0).clamp(max=_MAX_RATIO)
    return last.numel() * torch.softmax(ratios / temperature, dim=0)
