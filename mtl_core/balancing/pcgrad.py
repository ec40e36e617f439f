"""PCGrad: project away the conflicting component of each task gradient.

Yu, T., Kumar, S., Gupta, A., Levine, S., Hausman, K. & Finn, C. (2020). "Gradient Surgery for
Multi-Task Learning". NeurIPS 2020.
"""

from __future__ import annotations

import numpy as np
import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext

__all__ = ["PCGrad", "partner_order"]


def partner_order(n_tasks: int, task: int, generator: torch.Generator | None = None) -> list[int]:
    """The other tasks ``j ≠ task`` in a random order drawn from ``generator`` (global RNG if None).

    With two tasks there is only one order and nothing is drawn.
    """
    others = [j for j in range(n_tasks) if j != task]
    if len(others) < 2:
        return others
    device = generator.device if generator is not None else torch.device("cpu")
    order = torch.randperm(len(others), generator=generator, device=device).tolist()
    return [others[k] for k in order]


@METHODS.register("pcgrad")
class PCGrad(BalancingMethod):
    """PCGrad (Yu et al., NeurIPS 2020).

    For each task ``i``, start from ``g̃ᵢ = gᵢ`` and visit the other tasks ``j`` in a random order;
    whenever ``g̃ᵢ·gⱼ < 0`` replace ``g̃ᵢ ← g̃ᵢ − (g̃ᵢ·gⱼ / ‖gⱼ‖²) gⱼ`` (projection onto the normal
    plane of the *original* ``gⱼ``).

    Convention: the direction is the **sum** ``d = Σᵢ g̃ᵢ`` (as in the paper), so with no conflict
    PCGrad returns the plain sum of the task gradients. With two tasks the result is deterministic;
    with more, the orders are drawn from ``generator`` (one permutation per task).

    Every ``g̃ᵢ`` is a combination of the rows of ``G``, so the surgery runs on the T × T Gramian;
    ``weights`` are the effective weights ``α`` with ``d = αᵀG``.
    """

    name = "pcgrad"
    description = (
        "Projects each task gradient onto the normal plane of the other task gradients it conflicts "
        "with (negative dot product), then sums the projected gradients."
    )
    paper = "Yu et al., NeurIPS 2020"
    kind = "gradient"
    reads_gramian = True
    randomised = True
    weighted_sum = True
    scale_invariant = True
    playground_lead = "PCGrad projected each gradient off the gradients it conflicts with, then added them"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        matrix = gramian(grads)
        n_tasks = matrix.shape[0]
        squared_norms = np.diag(matrix)
        # Row i holds the coefficients of g̃ᵢ in the basis of the original rows of G.
        coefficients = np.eye(n_tasks)
        for i in range(n_tasks):
            for j in partner_order(n_tasks, i, self.generator):
                dot = float(coefficients[i] @ matrix[:, j])
                if dot < 0.0 and squared_norms[j] > 0.0:
                    coefficients[i, j] -= dot / squared_norms[j]
        alpha = coefficients.sum(axis=0)
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
