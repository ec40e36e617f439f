"""UPGrad: average the projections of the task gradients onto the dual cone of the rows.

Quinton, P. & Rey, V. (2024). "Jacobian Descent for Multi-Objective Optimization". arXiv:2406.16232
(the ``torchjd`` library).
"""

from __future__ import annotations

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, mean_projection_weights, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext

__all__ = ["UPGrad"]


@METHODS.register("upgrad")
class UPGrad(BalancingMethod):
    """UPGrad (Quinton & Rey, arXiv 2024).

    Each ``gᵢ`` is projected onto the dual cone ``{x : Gx ≥ 0}`` (the directions that increase no
    task's loss to first order); ``d`` is the **mean** of the T projections. Hence ``d·gᵢ ≥ 0`` for
    every ``i`` and, when no pair of gradients conflicts, ``d`` is exactly the mean gradient.

    Each projection is a non-negative QP on the T × T Gramian (exact active set, KKT tolerance
    ``KKT_TOLERANCE`` relative to the largest squared gradient norm, so ``d·gᵢ ≥ −1e-12·maxⱼ‖gⱼ‖²``
    up to round-off; for float32 gradients the Gramian is a float32 GEMM, whose round-off of about
    ``√P·eps`` relative comes on top). No regularisation is added. ``weights`` are ``α`` with
    ``d = αᵀG``.
    """

    name = "upgrad"
    description = (
        "Projects each task gradient onto the cone of directions that harm no task, then averages "
        "the projections."
    )
    paper = "Quinton & Rey, arXiv 2024"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "UPGrad projected each gradient onto the cone of directions that harm no task, then averaged"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        alpha = mean_projection_weights(gramian(grads))
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
