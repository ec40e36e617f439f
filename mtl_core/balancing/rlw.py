"""Random loss weighting (Lin et al., TMLR 2022)."""

from __future__ import annotations

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod

__all__ = ["RandomLossWeighting"]


@METHODS.register("rlw")
class RandomLossWeighting(BalancingMethod):
    """Random weights drawn afresh every step.

    Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
    Multi-Task Learning", TMLR 2022.

    Every call of :meth:`current_weights` draws z ~ N(0, I) (from ``self.generator`` when one is
    given, so runs are reproducible) and returns ``T · softmax(z)``.

    Convention: the paper's weights lie on the simplex; here they are **scaled by T** so that they
    sum to T and average 1, which keeps the loss on the same scale as equal weighting (Σ Lᵢ), DWA
    and GradNorm. The direction of the update is the paper's; only its length is T times larger.
    """

    name = "rlw"
    description = "Random weights T·softmax(z), z ~ N(0, I), drawn afresh every step."
    paper = "Lin et al., TMLR 2022"
    kind = "loss"
    randomised = True
    positive_weights = True

    def current_weights(self) -> torch.Tensor:
        draws = torch.randn(self.n_tasks, generator=self.generator)
        return self.n_tasks * torch.softmax(draws, dim=0)
