"""DB-MTL: dual-balancing multi-task learning (Lin et al., 2023)."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["DBMTL"]

_EPS = 1e-8


@METHODS.register("db_mtl")
class DBMTL(BalancingMethod):
    """Balance loss scales with a log transform and gradient scales with norm matching.

    Lin, Ye, Xu, Shi & Zhang, "Dual-Balancing for Multi-Task Learning", arXiv:2308.12029, 2023.

    * Loss-scale balancing: the per-task gradients gᵢ are taken of log(Lᵢ + ε)
      (:meth:`transform_losses`, ε = 1e-8), which removes each loss's scale.
    * Gradient-magnitude balancing: an EMA ĝᵢ ← β ĝᵢ + (1 − β) gᵢ (``beta``; the first call sets
      ĝᵢ = gᵢ) is rescaled to the largest norm::

          d = Σᵢ (maxⱼ ‖ĝⱼ‖ / ‖ĝᵢ‖) ĝᵢ

      so every scaled ĝᵢ has the norm maxⱼ‖ĝⱼ‖. A (near-)zero ĝᵢ gets scale 1 (it adds nothing).

    Losses are assumed ≥ 0 (negative values are clamped to 0 before the log).
    ``self.weights`` records the scale factors maxⱼ‖ĝⱼ‖/‖ĝᵢ‖ (≥ 1, positive).
    """

    name = "db_mtl"
    description = "Log-transformed losses, then EMA task gradients rescaled to the largest norm and summed."
    paper = "Lin et al., 2023 (Dual-Balancing)"
    kind = "gradient"
    positive_weights = True
    playground_lead = "DB-MTL rescaled every gradient to the largest norm and added them"
    options = (Option("beta", "float", 0.9, "EMA factor β of the task gradients", low=0.0, high=1.0),)

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self._ema: torch.Tensor | None = None

    def transform_losses(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.log(losses.clamp_min(0.0) + _EPS)

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        if self._ema is None:
            self._ema = grads.detach().clone()
        else:
            if self._ema.shape != grads.shape:
                raise ValueError(
                    f"`grads` must keep the shape {tuple(self._ema.shape)} between steps, got {tuple(grads.shape)}"
                )
            beta = float(self.settings["beta"])
            if self._ema.dtype != grads.dtype or self._ema.device != grads.device:
                self._ema = self._ema.to(grads)
            # In place: the EMA is the one T × P buffer; no temporaries of that size per step.
            self._ema.mul_(beta).add_(grads.detach(), alpha=1.0 - beta)
        norms = self._ema.norm(dim=1)
        usable = norms > _EPS
        ones = torch.ones_like(norms)
        # A (near-)zero EMA gradient keeps scale 1: scaling it up would only amplify noise.
        scales = torch.where(usable, norms.max() / torch.where(usable, norms, ones), ones)
        self.weights = scales.detach().clone()
        return scales @ self._ema
