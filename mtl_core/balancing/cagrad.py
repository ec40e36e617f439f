"""CAGrad: the best worst-case improvement within a ball around the average gradient.

Liu, B., Liu, X., Jin, X., Stone, P. & Liu, Q. (2021). "Conflict-Averse Gradient Descent for
Multi-task Learning". NeurIPS 2021.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import closest_in_hull, gramian, normalise_gramian, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["CAGrad", "conflict_averse_weights"]

# Below this (relative to the largest gradient norm) the radius c‖g₀‖ counts as zero.
_RADIUS_FLOOR = 1e-12
# Smallest τ tried, relative to the bracket's upper end (see conflict_averse_weights). Norms of
# hull points come from Gramian quadratic forms, accurate to ~1e-8 of the largest gradient norm,
# so the gap is only trusted where ‖g_w(τ)‖ is well above that.
_TAU_FLOOR = 1e-6


def conflict_averse_weights(matrix: np.ndarray, c: float) -> np.ndarray:
    """Weights ``α`` (T,) with ``αᵀG`` CAGrad's direction *before* the ``1/(1 + c²)`` rescaling.

    With ``g₀`` the mean gradient, ``k = c‖g₀‖`` and ``H`` the convex hull of the rows, the inner
    problem ``min_{w ∈ Δ} g_wᵀg₀ + k‖g_w‖`` is solved through its one-parameter family of QPs:
    ``g_w(τ) = argmin_{x ∈ H} ‖x + τ g₀‖`` (the point of ``H`` nearest to ``−τ g₀``) is optimal
    exactly when ``‖g_w(τ)‖ = kτ``, and ``kτ − ‖g_w(τ)‖`` changes sign once, so ``τ`` is found by
    Brent's method (relative tolerance 1e-12). Then ``k/‖g_w‖ = 1/τ`` and
    ``d = g₀ + g_w/τ``. If the root is at ``τ → 0`` (the origin of ``H`` is optimal) the limit is
    taken at ``τ = 1e-6 · τ_max``.
    """
    normalised, scale = normalise_gramian(np.asarray(matrix, dtype=np.float64))
    n_tasks = normalised.shape[0]
    mean_weights = np.full(n_tasks, 1.0 / n_tasks)
    mean_norm = math.sqrt(max(float(mean_weights @ normalised @ mean_weights), 0.0))
    radius = c * mean_norm
    if scale == 0.0 or radius <= _RADIUS_FLOOR:
        return mean_weights

    def hull_weights(tau: float) -> np.ndarray:
        return closest_in_hull(normalised, -tau * mean_weights)

    def gap(tau: float) -> float:
        w = hull_weights(tau)
        return radius * tau - math.sqrt(max(float(w @ normalised @ w), 0.0))

    # Every row has norm ≤ 1 on the normalised scale, so the gap is ≥ 0 at τ = 1/radius.
    tau_high = (1.0 + 1e-9) / radius
    tau_low = _TAU_FLOOR * tau_high
    if gap(tau_low) >= 0.0:
        tau = tau_low
    else:
        tau = float(brentq(gap, tau_low, tau_high, xtol=1e-15 * tau_high, rtol=1e-12, maxiter=200))
    return mean_weights + hull_weights(tau) / tau


@METHODS.register("cagrad")
class CAGrad(BalancingMethod):
    """CAGrad (Liu et al., NeurIPS 2021).

    With ``g₀ = mean gᵢ``: ``w* = argmin_{w ∈ Δ} g_wᵀg₀ + c‖g₀‖‖g_w‖`` (``g_w = wᵀG``), and
    ``d = (g₀ + (c‖g₀‖/‖g_w*‖) g_w*) / (1 + c²)``. Before the rescaling, ``d`` maximises the worst
    task improvement ``minᵢ gᵢ·d`` over the ball ``‖d − g₀‖ ≤ c‖g₀‖``.

    Convention: the result is divided by ``1 + c²`` (LibMTL's convention), so ``c = 0`` gives exactly
    the **mean** gradient. ``weights`` are the ``α`` with ``d = αᵀG``. The inner problem is solved
    on the T × T Gramian (see :func:`conflict_averse_weights`; QP tolerance ``KKT_TOLERANCE``, root
    tolerance 1e-12 relative). The paper takes ``c ∈ [0, 1)``; larger values are accepted.
    """

    name = "cagrad"
    description = (
        "Moves along the average gradient, but bends it within a ball of radius c·‖mean‖ to "
        "maximise the improvement of the worst-off task."
    )
    paper = "Liu et al., NeurIPS 2021"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "CAGrad moved the average gradient, within a ball around it, towards the task it improves least"
    options = (
        Option("c", "float", 0.5, "Radius of the ball around the mean gradient (c = 0: the mean).", low=0.0),
    )

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        c = float(self.settings["c"])
        alpha = conflict_averse_weights(gramian(grads), c) / (1.0 + c * c)
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
