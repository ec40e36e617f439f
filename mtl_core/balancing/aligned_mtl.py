"""Aligned-MTL: align the principal components of the task gradients.

Senushkin, D., Patakin, N., Kuznetsov, A. & Konushin, A. (2023). "Independent Component Alignment
for Multi-Task Learning". CVPR 2023.
"""

from __future__ import annotations

import numpy as np
import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, symmetric_eigen, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext

__all__ = ["AlignedMTL", "alignment_matrix", "alignment_weights", "eigenvalue_tolerance"]


def eigenvalue_tolerance(n_tasks: int, dtype: torch.dtype) -> float:
    """Eigenvalues of ``GGᵀ`` at most this fraction of the largest are treated as zero.

    ``max(T · eps(dtype), 1e-12)``: ``T · eps`` of the gradients' dtype, as in the authors' code,
    with a floor so that float64 round-off on an exactly rank-deficient ``G`` is never kept.
    """
    return max(n_tasks * float(torch.finfo(dtype).eps), 1e-12)


def alignment_matrix(matrix: np.ndarray, tolerance: float = 1e-12) -> np.ndarray:
    """``B = √λ_min V Λ^{-1/2} Vᵀ`` (T × T) for the Gramian ``M = GGᵀ = VΛVᵀ``.

    Eigenvalues ``≤ tolerance · λ_max`` are dropped (their eigenvectors get no weight) and
    ``λ_min`` is the smallest kept one. The aligned gradients ``BG`` then satisfy
    ``(BG)(BG)ᵀ = B M B = λ_min · V_k V_kᵀ``: ``λ_min`` times the identity when ``G`` has full row
    rank, times the projector onto the row space of ``M`` otherwise. All-zero ``M`` → ``B = 0``.
    """
    kept = _kept_spectrum(matrix, tolerance)
    if kept is None:
        return np.zeros((len(matrix), len(matrix)))
    values, vectors = kept
    return np.sqrt(values[0]) * (vectors / np.sqrt(values)) @ vectors.T


def alignment_weights(matrix: np.ndarray, tolerance: float = 1e-12) -> np.ndarray:
    """``α = B·1`` for :func:`alignment_matrix`'s ``B``, without forming ``B``:
    ``√λ_min V_k Λ_k^{-1/2} V_kᵀ 1``. All-zero ``M`` → ``α = 0``."""
    kept = _kept_spectrum(matrix, tolerance)
    if kept is None:
        return np.zeros(len(matrix))
    values, vectors = kept
    roots = np.sqrt(values)
    return vectors @ (vectors.sum(axis=0) * (roots[0] / roots))


def _kept_spectrum(matrix: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The eigenvalues above ``tolerance`` × the largest (ascending, so the first is ``λ_min``) and
    their eigenvectors; None when there are none (an empty or all-zero ``M``)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if not matrix.size:
        return None
    spectrum = symmetric_eigen(matrix)
    values, vectors = spectrum if spectrum is not None else np.linalg.eigh(matrix)
    largest = values[-1]
    if not largest > 0.0:
        return None
    keep = values > tolerance * largest
    return values[keep], vectors[:, keep]


@METHODS.register("aligned_mtl")
class AlignedMTL(BalancingMethod):
    """Aligned-MTL (Senushkin et al., CVPR 2023).

    The Gramian ``GGᵀ = VΛVᵀ`` gives ``B = √λ_min V Λ^{-1/2} Vᵀ`` (:func:`alignment_matrix`); the
    aligned gradients ``BG`` are orthogonal with equal norms ``√λ_min`` (condition number 1), and
    ``d = 1ᵀBG``, i.e. ``α = B·1`` (``weights``).

    Convention: the paper's scale, the smallest kept singular value ``√λ_min`` of ``G``: ``d`` is
    the sum of T orthogonal aligned gradients of norm ``√λ_min`` each (so ``‖d‖² = T·λ_min`` at full
    rank), and ``G d = √λ_min · M^{1/2} 1``. Eigenvalues below :func:`eigenvalue_tolerance` × the
    largest are dropped, so identical gradients give ``d = Σ gᵢ``.
    """

    name = "aligned_mtl"
    description = (
        "Rescales the principal components of the task gradients to the same strength (condition "
        "number one) and sums the aligned gradients."
    )
    paper = "Senushkin et al., CVPR 2023"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "Aligned-MTL rescaled the principal components of the gradients to equal strength"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        # The eigendecomposition drops what a float32 Gramian's round-off makes negative, so the
        # Gramian's semi-definite repair is left out.
        matrix = gramian(grads, semidefinite=False)
        alpha = alignment_weights(matrix, eigenvalue_tolerance(matrix.shape[0], grads.dtype))
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
