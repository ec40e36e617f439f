"""MGDA: the min-norm point of the convex hull of the task gradients.

Désidéri, J.-A. (2012). "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization". Comptes Rendus Mathématique 350(5–6), 313–318.
Sener, O. & Koltun, V. (2018). "Multi-Task Learning as Multi-Objective Optimization". NeurIPS 2018.
"""

from __future__ import annotations

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, min_norm_simplex, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext

__all__ = ["MGDA"]


@METHODS.register("mgda")
class MGDA(BalancingMethod):
    """MGDA (Désidéri, C. R. Math. 2012; Sener & Koltun, NeurIPS 2018).

    ``α* = argmin_{α ∈ Δ} ‖αᵀG‖²`` and ``d = α*ᵀG``.

    Convention: ``d`` is the **min-norm point of the convex hull** of the task gradients, with
    ``α`` on the probability simplex (``weights``); it satisfies ``d·gᵢ ≥ ‖d‖²`` for every task, so
    ``d`` is a common descent direction unless it is zero (a Pareto-stationary point). Two tasks:
    ``α₁ = clip(((g₂ − g₁)·g₂) / ‖g₁ − g₂‖², 0, 1)``. No gradient normalisation is applied.

    The simplex QP is solved exactly (active set, :mod:`._qp`) on the T × T Gramian; the KKT
    tolerance is ``KKT_TOLERANCE`` relative to the largest squared gradient norm. When the
    weights are not unique (affinely dependent gradients) ``d`` still is, and one minimiser is
    returned.
    """

    name = "mgda"
    description = (
        "Finds the smallest vector in the convex hull of the task gradients, a direction that "
        "decreases every task's loss whenever one exists."
    )
    paper = "Désidéri, C. R. Math. 2012; Sener & Koltun, NeurIPS 2018"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "MGDA took the shortest vector in the convex hull of the gradients"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        alpha = min_norm_simplex(gramian(grads))
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
