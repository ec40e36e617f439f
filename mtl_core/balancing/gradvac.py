"""Gradient Vaccine: pull pairwise gradient similarities up to an adaptive target.

Wang, Z., Tsvetkov, Y., Firat, O. & Cao, Y. (2021). "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models". ICLR 2021.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.balancing.pcgrad import partner_order
from mtl_core.options import Option

__all__ = ["GradVac"]

# Targets are kept inside (−1 + δ, 1 − δ) in the update formula, whose denominator is √(1 − φ̂²).
_TARGET_MARGIN = 1e-6


@METHODS.register("gradvac")
class GradVac(BalancingMethod):
    """GradVac (Wang et al., ICLR 2021).

    Keeps an EMA target ``φ̂ᵢⱼ`` (``targets``, T × T, starting at 0 on each instance). For each task
    ``i`` and each other task ``j`` in random order (as in PCGrad), with ``ρᵢⱼ = cos(g̃ᵢ, gⱼ)``:
    if ``ρᵢⱼ < φ̂ᵢⱼ``, ``g̃ᵢ ← g̃ᵢ + gⱼ ‖g̃ᵢ‖(φ̂ᵢⱼ√(1−ρᵢⱼ²) − ρᵢⱼ√(1−φ̂ᵢⱼ²)) / (‖gⱼ‖√(1−φ̂ᵢⱼ²))``, which
    makes ``cos(g̃ᵢ, gⱼ) = φ̂ᵢⱼ`` exactly; then ``φ̂ᵢⱼ ← (1 − β)φ̂ᵢⱼ + βρᵢⱼ`` (every call, with the
    ``ρᵢⱼ`` just tested).

    Convention: ``d = Σᵢ g̃ᵢ`` (the **sum**, like PCGrad). While ``φ̂ = 0`` (the first call) GradVac
    is PCGrad, and with non-negative cosines it returns the plain sum. Targets are clipped to
    ``±(1 − 1e-6)`` inside the formula; pairs with a zero gradient are skipped. ``weights`` are the
    effective ``α`` with ``d = αᵀG``.
    """

    name = "gradvac"
    description = (
        "Nudges each pair of task gradients towards an adaptive target similarity (a running "
        "average of past cosines) whenever they are less aligned than the target, then sums them."
    )
    paper = "Wang et al., ICLR 2021"
    kind = "gradient"
    reads_gramian = True
    randomised = True
    weighted_sum = True
    scale_invariant = True
    playground_lead = "GradVac raised each pair's cosine to its target (0 on a first step, so it acts like PCGrad)"
    options = (
        Option(
            "beta", "float", 0.5, "EMA rate of the target cosines (1 = last cosine only).", low=0.0, high=1.0
        ),
    )

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        #: EMA targets φ̂ᵢⱼ (row i: the target of task i's gradient against task j's).
        self.targets = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        beta = float(self.settings["beta"])
        matrix = gramian(grads)
        n_tasks = matrix.shape[0]
        norms = np.sqrt(np.clip(np.diag(matrix), 0.0, None))
        targets = self.targets.numpy()  # shares memory: updates land in self.targets
        coefficients = np.eye(n_tasks)
        for i in range(n_tasks):
            for j in partner_order(n_tasks, i, self.generator):
                norm_i = math.sqrt(max(float(coefficients[i] @ matrix @ coefficients[i]), 0.0))
                if norm_i <= 0.0 or norms[j] <= 0.0:
                    continue
                rho = float(np.clip((coefficients[i] @ matrix[:, j]) / (norm_i * norms[j]), -1.0, 1.0))
                target = float(np.clip(targets[i, j], -1.0 + _TARGET_MARGIN, 1.0 - _TARGET_MARGIN))
                if rho < target:
                    sin_target, sin_rho = math.sqrt(1.0 - target**2), math.sqrt(1.0 - rho**2)
                    coefficients[i, j] += (
                        norm_i * (target * sin_rho - rho * sin_target) / (norms[j] * sin_target)
                    )
                targets[i, j] = (1.0 - beta) * targets[i, j] + beta * rho
        alpha = coefficients.sum(axis=0)
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
