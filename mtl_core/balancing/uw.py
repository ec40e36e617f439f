"""Uncertainty weighting (Kendall et al., CVPR 2018)."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["UncertaintyWeighting"]


@METHODS.register("uw")
class UncertaintyWeighting(BalancingMethod):
    """Homoscedastic-uncertainty weighting.

    Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry
    and Semantics", CVPR 2018.

    Each task has a learnable log-variance sᵢ = log σᵢ², optimised by the run's own optimiser
    together with the model (:meth:`parameters`). The objective is the paper's regression form for
    every task::

        Σᵢ ½·exp(−sᵢ)·Lᵢ + ½·sᵢ

    so the recorded weights are ½·exp(−sᵢ). For fixed Lᵢ > 0 the optimum is sᵢ = log Lᵢ, i.e.
    weight 1/(2Lᵢ): tasks with a larger loss are down-weighted. ``init`` sets sᵢ at the start
    (0 → every weight ½).

    The log-variances live on the CPU in float32 and are moved to the losses' device/dtype with a
    differentiable ``.to`` in :meth:`loss`, so their gradient reaches the stored parameter.
    """

    name = "uw"
    description = "Learns a log-variance per task and weights each loss by ½·exp(−s)."
    paper = "Kendall et al., CVPR 2018"
    kind = "loss"
    positive_weights = True
    options = (Option("init", "float", 0.0, "initial log-variance sᵢ = log σᵢ²", low=-10.0, high=10.0),)

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self.log_vars = torch.nn.Parameter(torch.full((n_tasks,), float(self.settings["init"])))

    def parameters(self) -> list[torch.Tensor]:
        return [self.log_vars]

    def current_weights(self) -> torch.Tensor:
        return 0.5 * torch.exp(-self.log_vars.detach())

    def loss(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_vars = self.log_vars.to(losses)
        weights = 0.5 * torch.exp(-log_vars)
        self.weights = weights.detach().clone()
        return (weights * losses).sum() + 0.5 * log_vars.sum()
