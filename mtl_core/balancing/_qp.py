"""Small dense solvers shared by the gradient methods (private).

Every gradient method here is a function of the T × P matrix ``G`` whose answer is a weight vector
``α`` (T,) with ``d = αᵀG``; the weights only depend on the T × T Gramian ``M = GGᵀ``. So the
methods compute ``M`` once (in float64), solve a tiny problem on it with numpy, and combine the rows
of ``G`` in ``G``'s own dtype and device. Nothing here ever works on a P-sized problem.

Solvers:

* :func:`nonnegative_qp` — ``min ½xᵀQx − bᵀx`` subject to ``x ≥ 0`` for a positive semi-definite
  ``Q``: the Lawson–Hanson active-set method written on the normal equations (Bro & De Jong,
  "A fast non-negativity-constrained least squares algorithm", J. Chemometrics 1997). It is exact
  once the active set is found; it stops when every inactive variable's gradient is at most
  :data:`KKT_TOLERANCE` (relative to a Gramian normalised to a largest diagonal entry of 1).
* :func:`min_norm_simplex` — ``α ∈ Δ`` minimising ``αᵀMα`` (the min-norm point of the convex hull
  of the rows). The simplex constraint is removed by homogenisation: with ``m`` the optimal value,
  ``min_{β ≥ 0} βᵀMβ + (1ᵀβ − 1)²`` is solved by ``β = α/(1 + m)``, so ``α = β/1ᵀβ``.
* :func:`closest_in_hull` — ``α ∈ Δ`` minimising ``‖Gᵀα − Gᵀt‖²`` for a target ``Gᵀt`` (CAGrad's
  inner problem), reduced to :func:`min_norm_simplex` on shifted rows.
* :func:`dual_cone_projection_weights` — weights of the projection of every ``gᵢ`` onto the dual
  cone ``{x : Gx ≥ 0}`` (UPGrad), one non-negative QP per row.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "KKT_TOLERANCE",
    "as_weights",
    "closest_in_hull",
    "combine_rows",
    "dual_cone_projection_weights",
    "gramian",
    "min_norm_simplex",
    "nonnegative_qp",
    "normalise_gramian",
]

#: Largest positive gradient left on an inactive variable when :func:`nonnegative_qp` stops, on a
#: Gramian normalised to a largest diagonal entry of 1. For UPGrad it bounds the constraint
#: violation: ``gⱼ·d ≥ −KKT_TOLERANCE · maxᵢ‖gᵢ‖²``.
KKT_TOLERANCE = 1e-12


def gramian(grads: torch.Tensor) -> np.ndarray:
    """The float64 T × T Gramian ``GGᵀ`` of the rows of ``grads`` (exactly symmetric)."""
    rows = grads.detach().to(torch.float64)
    matrix = (rows @ rows.T).cpu().numpy()
    return (matrix + matrix.T) / 2.0


def normalise_gramian(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """``M / s`` with ``s`` the largest diagonal entry (the largest squared row norm), and ``s``.

    For an all-zero Gramian ``s`` is 0 and the zero matrix comes back unchanged.
    """
    scale = float(np.max(np.diag(matrix))) if matrix.size else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        return np.zeros_like(matrix), 0.0
    return matrix / scale, scale


def combine_rows(weights: np.ndarray | torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``weightsᵀ G`` (P,), computed in ``grads``' dtype on ``grads``' device."""
    w = torch.as_tensor(weights, dtype=grads.dtype, device=grads.device)
    return w @ grads


def as_weights(weights: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A detached (T,) tensor for ``BalancingMethod.weights``, in ``like``'s dtype and device."""
    return torch.as_tensor(np.asarray(weights, dtype=np.float64)).to(dtype=like.dtype, device=like.device)


def nonnegative_qp(
    quadratic: np.ndarray, linear: np.ndarray, tol: float = KKT_TOLERANCE, max_iter: int | None = None
) -> np.ndarray:
    """Solve ``min ½xᵀQx − bᵀx`` subject to ``x ≥ 0`` (``Q`` symmetric positive semi-definite).

    Active-set method of Lawson & Hanson on the normal equations (Bro & De Jong 1997): a variable
    enters the passive set when its gradient ``(b − Qx)ⱼ`` exceeds ``tol``; the unconstrained
    solution on the passive set is taken by least squares (so a singular ``Q`` is fine), stepping
    back to the feasible region when it leaves it. Returns a minimiser (one of them if not unique).
    """
    quadratic = np.asarray(quadratic, dtype=np.float64)
    linear = np.asarray(linear, dtype=np.float64)
    n = linear.shape[0]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    # The outer loop adds one variable per pass; each inner step removes at least one, so a few
    # multiples of n passes always suffice — the bound only guards against round-off cycling.
    max_iter = max_iter if max_iter is not None else 5 * n + 10
    blocked = -1
    for _ in range(max_iter):
        gradient = linear - quadratic @ x
        candidates = ~passive & (gradient > tol)
        if blocked >= 0:
            candidates[blocked] = False
        if not candidates.any():
            break
        entering = int(np.argmax(np.where(candidates, gradient, -np.inf)))
        passive[entering] = True
        for _inner in range(n + 1):
            z = _solve_on(quadratic, linear, passive)
            if np.all(z[passive] > 0.0):
                x = z
                blocked = -1
                break
            # Move from x towards z until the first passive variable hits zero, and drop it.
            leaving = passive & (z <= 0.0)
            gap = x[leaving] - z[leaving]
            steps = np.where(gap > 0.0, x[leaving] / np.where(gap > 0.0, gap, 1.0), 0.0)
            step = float(np.clip(np.min(steps), 0.0, 1.0)) if steps.size else 0.0
            x = x + step * (z - x)
            passive &= x > 0.0
            x[~passive] = 0.0
            if not passive[entering] and step == 0.0:
                # The entering variable could not move (round-off at the tolerance): do not pick
                # it again until some other variable has changed.
                blocked = entering
                break
    return np.maximum(x, 0.0)


def _solve_on(quadratic: np.ndarray, linear: np.ndarray, passive: np.ndarray) -> np.ndarray:
    z = np.zeros(linear.shape[0])
    index = np.flatnonzero(passive)
    if index.size:
        block = quadratic[np.ix_(index, index)]
        z[index] = np.linalg.lstsq(block, linear[index], rcond=None)[0]
    return z


def min_norm_simplex(matrix: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """``α`` on the probability simplex minimising ``αᵀMα`` for a Gramian ``M`` (T × T).

    ``αᵀG`` is the min-norm point of the convex hull of the rows of ``G``. The point is unique; the
    weights are unique when the rows are affinely independent. All-zero ``M`` → uniform weights.
    """
    normalised, scale = normalise_gramian(np.asarray(matrix, dtype=np.float64))
    size = normalised.shape[0]
    if scale == 0.0 or size == 1:
        return np.full(size, 1.0 / size)
    ones = np.ones(size)
    beta = nonnegative_qp(normalised + np.outer(ones, ones), ones, tol)
    total = float(beta.sum())
    if not np.isfinite(total) or total <= 0.0:  # cannot happen for a PSD input; stay finite anyway
        return np.full(size, 1.0 / size)
    return beta / total


def closest_in_hull(matrix: np.ndarray, target: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """``α ∈ Δ`` minimising ``‖Gᵀα − Gᵀt‖²`` where ``t`` (T,) are any weights of the target point.

    On the simplex ``α − t = (I − t1ᵀ)α``, so this is :func:`min_norm_simplex` on the Gramian of
    the shifted rows ``(I − 1tᵀ)G``, i.e. on ``(I − 1tᵀ) M (I − t1ᵀ)``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    shift = np.eye(matrix.shape[0]) - np.outer(np.asarray(target, dtype=np.float64), np.ones(matrix.shape[0]))
    shifted = shift.T @ matrix @ shift
    return min_norm_simplex((shifted + shifted.T) / 2.0, tol)


def dual_cone_projection_weights(matrix: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """Row ``i``: weights ``wᵢ = eᵢ + λᵢ`` with ``wᵢᵀG`` the projection of ``gᵢ`` onto ``{x : Gx ≥ 0}``.

    The projection ``min ½‖x − gᵢ‖²`` subject to ``Gx ≥ 0`` has the Lagrangian dual
    ``λᵢ = argmin_{λ ≥ 0} ½λᵀMλ + λᵀMeᵢ`` and ``x = Gᵀ(eᵢ + λᵢ)``; ``λᵢ`` is scale-free, so the
    problem is solved on the normalised Gramian. Rows that conflict with nobody keep ``λᵢ = 0``.
    """
    normalised, scale = normalise_gramian(np.asarray(matrix, dtype=np.float64))
    size = normalised.shape[0]
    weights = np.eye(size)
    if scale == 0.0:
        return weights
    for i in range(size):
        column = normalised[:, i]
        if np.all(column >= 0.0):  # gᵢ already lies in the dual cone
            continue
        weights[i] += nonnegative_qp(normalised, -column, tol)
    return weights
