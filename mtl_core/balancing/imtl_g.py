"""IMTL-G: the direction with equal projections on every task's unit gradient.

Liu, L., Li, Y., Kuang, Z., Xue, J.-H., Chen, Y., Yang, W., Liao, Q. & Zhang, W. (2021). "Towards
Impartial Multi-task Learning". ICLR 2021.
"""

from __future__ import annotations

import numpy as np
import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing._qp import gramian, symmetric_eigen, weights_and_direction
from mtl_core.balancing.base import BalancingMethod, StepContext

__all__ = ["IMTLG", "impartial_weights"]

# Rows shorter than this fraction of the longest row are treated as zero gradients.
_ZERO_ROW = 1e-12
# Singular values of the cosine matrix below this fraction of the largest are ignored.
_RCOND = 1e-10


def _minimum_norm_solution(cosines: np.ndarray) -> np.ndarray:
    """The least-squares solution of minimum norm of ``Cβ = 1`` for a symmetric ``C``, singular
    values below ``_RCOND`` × the largest ignored: ``np.linalg.lstsq(C, 1, rcond=_RCOND)``, through
    the eigendecomposition (for a symmetric matrix the singular values are ``|λ|``), which LAPACK's
    ``dsyevd`` gives at a fraction of the SVD's cost on small matrices."""
    spectrum = symmetric_eigen(cosines)
    if spectrum is None:
        return np.linalg.lstsq(cosines, np.ones(cosines.shape[0]), rcond=_RCOND)[0]
    values, vectors = spectrum
    magnitudes = np.abs(values)
    keep = magnitudes > _RCOND * magnitudes.max()
    kept = vectors[:, keep]
    return kept @ (kept.sum(axis=0) / values[keep])


def impartial_weights(matrix: np.ndarray) -> np.ndarray:
    """``α`` (T,) with ``Σα = 1`` and ``(αᵀG)·uᵢ`` equal for every unit gradient ``uᵢ = gᵢ/‖gᵢ‖``.

    Written on unit rows: ``β`` solves ``Cβ = 1`` for the cosine matrix ``C`` (least squares with
    minimum norm when ``C`` is singular, e.g. for identical gradients), so ``Σ βᵢuᵢ`` has projection 1
    on every ``uᵢ``; then ``αᵢ ∝ βᵢ/‖gᵢ‖``, normalised to sum 1. This is the paper's closed form
    ``α₂..T = g₁Uᵀ(DUᵀ)⁻¹`` without privileging task 1. Zero rows get weight 0 (they have no
    direction); all-zero ``G`` gives uniform weights.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n_tasks = matrix.shape[0]
    norms = np.sqrt(np.clip(np.diag(matrix), 0.0, None))
    largest = float(norms.max()) if n_tasks else 0.0
    if largest <= 0.0:
        return np.full(n_tasks, 1.0 / n_tasks)
    active = norms > _ZERO_ROW * largest
    index = np.flatnonzero(active)
    sub_norms = norms[index]
    cosines = matrix[np.ix_(index, index)] / np.outer(sub_norms, sub_norms)
    unit_weights = _minimum_norm_solution(cosines)
    gamma = unit_weights / sub_norms
    total, absolute = float(gamma.sum()), float(np.abs(gamma).sum())
    alpha = np.zeros(n_tasks)
    if absolute <= 0.0:
        alpha[index] = 1.0 / index.size
    elif abs(total) > 1e-12 * absolute:
        alpha[index] = gamma / total
    else:  # the equal-projection direction has weights summing to ~0: keep the output finite
        alpha[index] = gamma / absolute
    return alpha


@METHODS.register("imtl_g")
class IMTLG(BalancingMethod):
    """IMTL-G, the gradient part of Impartial MTL (Liu et al., ICLR 2021).

    ``d = αᵀG`` with ``Σαᵢ = 1`` and ``d·uᵢ`` the same for every unit gradient ``uᵢ = gᵢ/‖gᵢ‖``:
    no task is favoured in the update's projection. Equivalently ``α ∝ (GGᵀ)⁺ √diag(GGᵀ)``.

    Convention: ``α`` sums to 1 exactly as in the paper (solved on the cosine matrix, see
    :func:`impartial_weights`). As in the paper, that normalisation can make the common projection
    negative for three or more tasks when the unnormalised weights sum to a negative number; in the
    degenerate case where they sum to (almost) zero the weights are divided by their absolute sum
    instead, so the output stays finite. Zero gradients get weight 0.
    """

    name = "imtl_g"
    description = (
        "Chooses the combination of task gradients, with weights summing to one, whose projection "
        "onto every task's unit gradient is the same."
    )
    paper = "Liu et al., ICLR 2021"
    kind = "gradient"
    reads_gramian = True
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    playground_lead = "IMTL-G chose weights summing to one so that the update projects equally on every unit gradient"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        alpha = impartial_weights(gramian(grads))
        self.weights, direction = weights_and_direction(alpha, grads)
        return direction
