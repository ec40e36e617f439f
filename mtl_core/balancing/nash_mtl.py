"""Nash-MTL: the Nash bargaining solution between the tasks.

Navon, A., Shamsian, A., Achituve, I., Maron, H., Kawaguchi, K., Chechik, G. & Fetaya, E. (2022).
"Multi-Task Learning as a Bargaining Game". ICML 2022.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext, check_finite
from mtl_core.options import Option

__all__ = ["NashMTL", "bargaining_weights"]

#: Newton stops when ``maxᵢ |αᵢ (Mα)ᵢ − 1| ≤ NASH_TOLERANCE`` (the equation is scale-free).
NASH_TOLERANCE = 1e-12
# Ridge added to the cosine matrix so that a solution always exists (see bargaining_weights).
_RIDGE = 1e-12
# Rows shorter than this fraction of the longest row are treated as zero gradients.
_ZERO_ROW = 1e-12


def bargaining_weights(matrix: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """``α > 0`` solving ``(GGᵀ)α = 1/α`` element-wise, for the Gramian ``M = GGᵀ``.

    With ``nᵢ = ‖gᵢ‖`` and the cosine matrix ``C`` (``M = NCN``), ``α = β/n`` where ``Cβ = 1/β``: the
    equation is invariant to rescaling any task's gradient, so it is solved on the well-scaled ``C``.
    That is the stationarity condition of the strictly convex, self-concordant problem
    ``min_{β > 0} ½βᵀCβ − Σ log βᵢ``, solved by damped Newton steps. A ridge of 1e-12 on ``C`` keeps
    a solution in existence when no direction improves every task (some non-negative combination of
    the gradients vanishes, e.g. ``g₂ = −g₁``); ``d`` is then close to zero. Zero rows are left out
    and get ``α = 0``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n_tasks = matrix.shape[0]
    norms = np.sqrt(np.clip(np.diag(matrix), 0.0, None))
    alpha = np.zeros(n_tasks)
    largest = float(norms.max()) if n_tasks else 0.0
    if largest <= 0.0:
        return alpha
    index = np.flatnonzero(norms > _ZERO_ROW * largest)
    sub_norms = norms[index]
    cosines = matrix[np.ix_(index, index)] / np.outer(sub_norms, sub_norms)
    cosines = (cosines + cosines.T) / 2.0 + _RIDGE * np.eye(index.size)
    # Exact when all gradients are identical; a positive, well-scaled start otherwise.
    current = np.full(index.size, 1.0 / np.sqrt(index.size))
    for _ in range(max_iter):
        gradient = cosines @ current - 1.0 / current
        if np.max(np.abs(current * gradient)) <= NASH_TOLERANCE:
            break
        hessian = cosines + np.diag(1.0 / current**2)
        step = np.linalg.solve(hessian, gradient)
        decrement = float(np.sqrt(max(gradient @ step, 0.0)))
        # Damped Newton for self-concordant functions: the iterate stays strictly positive.
        current = current - (step if decrement < 0.25 else step / (1.0 + decrement))
        current = np.maximum(current, np.finfo(np.float64).tiny)
    alpha[index] = current / sub_norms
    return alpha


@METHODS.register("nash_mtl")
class NashMTL(BalancingMethod):
    """Nash-MTL (Navon et al., ICML 2022).

    ``d = αᵀG`` with ``α > 0`` solving ``(GGᵀ)α = 1/α``: the Nash bargaining solution of the tasks'
    utilities ``gᵢ·d`` within the unit ball. Then ``gᵢ·d = 1/αᵢ > 0`` for every task and
    ``‖d‖² = T``, whatever the scale of ``G`` (the direction is scale-free).

    Convention: the equation is solved exactly (damped Newton, :func:`bargaining_weights`,
    tolerance ``maxᵢ|αᵢ(GGᵀα)ᵢ − 1| ≤ 1e-12``) instead of the paper's sequential convex
    approximation with cvxpy (the authors' code normalises ``GGᵀ`` by its Frobenius norm for the
    solver and puts the norm back, so its ``d`` has the same scale as this one). Options:
    ``update_weights_every`` (recompute ``α`` every k calls and reuse it in between, as in the
    paper's speed-up) and ``max_norm`` (clip ``‖d‖``; 0 = off). ``weights`` are ``α``. The solution, and hence ``d``, does not
    change when one task's gradient is rescaled.
    """

    name = "nash_mtl"
    description = (
        "Treats the tasks as players bargaining over the update and picks the Nash bargaining "
        "solution, which improves every task's loss."
    )
    paper = "Navon et al., ICML 2022"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "Nash-MTL weighted the gradients by the Nash bargaining solution"
    options = (
        Option(
            "update_weights_every",
            "int",
            1,
            "Recompute the weights every k calls (reuse them in between).",
            low=1,
        ),
        Option(
            "max_norm",
            "float",
            0.0,
            "Clip the norm of the direction to this value (0 = no clipping).",
            low=0.0,
        ),
    )

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self._calls = 0
        self._alpha: np.ndarray | None = None

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        if self._alpha is None or self._calls % int(self.settings["update_weights_every"]) == 0:
            self._alpha = bargaining_weights(gramian(grads))
        else:  # the Gramian is what finds NaN or inf (reads_gramian): without it, look at G
            check_finite(grads)
        self._calls += 1
        self.weights, direction = weights_and_direction(self._alpha, grads)
        max_norm = float(self.settings["max_norm"])
        if max_norm > 0.0:
            norm = float(torch.linalg.vector_norm(direction))
            if norm > max_norm:
                direction = direction * (max_norm / norm)
        return direction
