"""Small dense solvers shared by the gradient methods (private).

Every gradient method here is a function of the T × P matrix ``G`` whose answer is a weight vector
``α`` (T,) with ``d = αᵀG``; the weights only depend on the T × T Gramian ``M = GGᵀ``. So the
methods compute ``M`` once (one GEMM in ``G``'s own dtype and device, then float64 as a T × T
array), solve a tiny problem on it with numpy, and combine the rows of ``G`` in ``G``'s own dtype
and device (one GEMV). Nothing here ever works on a P-sized problem or copies ``G``. The T × T work
calls LAPACK through ``scipy.linalg.lapack`` where one matrix is factorised: right after the GEMM
has streamed ``G`` through the caches, each wrapper layer of ``np.linalg`` costs microseconds.

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

import math

import numpy as np
import torch
from scipy.linalg import lapack

from mtl_core.balancing.base import NON_FINITE_MESSAGE

__all__ = [
    "KKT_TOLERANCE",
    "closest_in_hull",
    "dual_cone_projection_weights",
    "mean_projection_weights",
    "gramian",
    "min_norm_simplex",
    "nonnegative_qp",
    "nonnegative_qp_many",
    "normalise_gramian",
    "symmetric_eigen",
    "weights_and_direction",
]

#: Largest positive gradient left on an inactive variable when :func:`nonnegative_qp` stops, on a
#: Gramian normalised to a largest diagonal entry of 1. For UPGrad it bounds the constraint
#: violation: ``gⱼ·d ≥ −KKT_TOLERANCE · maxᵢ‖gᵢ‖²``.
KKT_TOLERANCE = 1e-12


def gramian(grads: torch.Tensor, semidefinite: bool = True) -> np.ndarray:
    """The T × T Gramian ``GGᵀ`` of the rows of ``grads``, as an exactly symmetric float64 array.

    One GEMM in ``grads``' own dtype on its device (float32 stays float32: no float64 copy of the
    T × P matrix, one read of it); only the T × T result moves to float64 and to the CPU. Half
    precision (float16, bfloat16) is multiplied in float32, since a Gramian rounded to 3 digits would
    be useless (that is a float32 copy). In float32 the entries carry the GEMM's round-off, about
    ``√P · eps`` relative to ``‖gᵢ‖‖gⱼ‖`` (see ``benchmarks/aggregators.py`` for measurements), which
    can make the Gramian of nearly dependent rows slightly indefinite: its negative eigenvalues are
    then set to zero (``semidefinite=False`` leaves that to a caller that drops small eigenvalues
    itself).

    It is also the finiteness check of :attr:`BalancingMethod.reads_gramian`: a NaN or inf entry of
    row ``i`` makes ``(GGᵀ)ᵢᵢ`` NaN or inf, and only then are the entries searched; if they are all
    finite their squares overflowed the dtype, and the Gramian is taken again in float64 (also when
    the largest diagonal entry is so small that float32 would round the smaller ones to subnormals).
    Raises ``ValueError`` (the message of :func:`~mtl_core.balancing.base.check_finite`) otherwise.
    """
    rows = grads.detach()
    if rows.dtype not in (torch.float32, torch.float64):
        rows = rows.to(torch.float32)
    product = rows @ rows.T
    if product.device.type != "cpu":
        product = product.cpu()
    matrix = product.numpy().astype(np.float64)
    # The common case costs one comparison: the largest squared norm is finite (a NaN compares
    # false, an inf is not below inf) and large enough for float32 (see _FLOAT32_FLOOR).
    largest = matrix.diagonal().max()
    floor = _FLOAT32_FLOOR if rows.dtype != torch.float64 else 0.0
    if not floor <= largest < math.inf:
        # Squared norms are finite exactly when every entry is finite and no square overflowed.
        if not math.isfinite(largest) and not bool(torch.isfinite(rows).all()):
            raise ValueError(NON_FINITE_MESSAGE)
        if rows.dtype != torch.float64:  # an overflowed or too small float32 Gramian
            matrix = _float64_gramian(rows)
    matrix = matrix + matrix.T
    matrix *= 0.5
    if semidefinite and rows.dtype != torch.float64:
        matrix = _nearest_semidefinite(matrix)
    return matrix


def _nearest_semidefinite(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` made positive semi-definite (unchanged when it already is).

    A float32 GEMM can leave the Gramian of (nearly) dependent rows slightly indefinite, with a
    "cosine" beyond ±1; the solvers assume a positive semi-definite matrix. The negative
    eigenvalues of the cosine matrix ``D^{-1/2} M D^{-1/2}`` are set to zero (on the cosine scale, so
    short rows keep their relative precision), and zero rows stay exactly zero.
    """
    # The common case, linearly independent rows: positive definite (a Cholesky factorisation
    # exists), nothing to repair. LAPACK directly: np.linalg's wrapper costs more than the 8 × 8
    # factorisation on the caches a large GEMM has just flushed.
    if lapack.dpotrf(matrix, lower=True, clean=False)[1] == 0:
        return matrix
    diagonal = np.diag(matrix)
    index = np.flatnonzero(diagonal > 0.0)
    if index.size < 2:
        return matrix
    norms = np.sqrt(diagonal[index])
    cosines = matrix[np.ix_(index, index)] / np.outer(norms, norms)
    values, vectors = np.linalg.eigh(cosines)
    if values.min() >= 0.0:
        return matrix
    cosines = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    repaired = np.zeros_like(matrix)
    repaired[np.ix_(index, index)] = (cosines + cosines.T) / 2.0 * np.outer(norms, norms)
    return repaired


# Below this largest squared norm a float32 Gramian would hold entries KKT_TOLERANCE times smaller
# as subnormal numbers (fewer digits), or even zeros for non-zero rows, so it is taken in float64
# instead (also for an all-zero G, whose Gramian cannot tell it from underflow).
_FLOAT32_FLOOR = float(torch.finfo(torch.float32).tiny) / KKT_TOLERANCE


def _float64_gramian(rows: torch.Tensor) -> np.ndarray:
    """The Gramian in float64 (a float64 copy of ``G``: only for inputs at the edge of float32)."""
    wide = rows.to(torch.float64)
    return (wide @ wide.T).cpu().numpy()


def normalise_gramian(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """``M / s`` with ``s`` the largest diagonal entry (the largest squared row norm), and ``s``.

    For an all-zero Gramian ``s`` is 0 and the zero matrix comes back unchanged.
    """
    scale = float(np.max(np.diag(matrix))) if matrix.size else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        return np.zeros_like(matrix), 0.0
    return matrix / scale, scale


def weights_and_direction(weights: np.ndarray, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weights`` (T,) as a tensor in ``grads``' dtype and device (for ``BalancingMethod.weights``),
    and ``weightsᵀ G`` (P,) computed with that same tensor: one conversion, one GEMV."""
    tensor = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float64)).to(grads.device, grads.dtype)
    return tensor, tensor @ grads


def nonnegative_qp(quadratic: np.ndarray, linear: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """Solve ``min ½xᵀQx − bᵀx`` subject to ``x ≥ 0`` (``Q`` symmetric positive semi-definite).

    :func:`nonnegative_qp_many` for one right-hand side. Returns a minimiser (one of them if not
    unique).
    """
    linear = np.asarray(linear, dtype=np.float64)
    return nonnegative_qp_many(quadratic, linear[None, :], tol)[0]


def nonnegative_qp_many(quadratic: np.ndarray, linear: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """Row ``k``: a minimiser of ``½xᵀQx − bₖᵀx`` subject to ``x ≥ 0``, for the rows ``bₖ`` of ``linear`` (K × n).

    All K problems share ``Q`` (symmetric positive semi-definite, n × n) and are solved together by
    block principal pivoting (Júdice & Pires 1994; Kim & Park, "Fast nonnegative matrix
    factorization: an active-set-like method and comparisons", SIAM J. Sci. Comput. 2011): each
    problem guesses its passive set, solves the equations ``Q_SS x_S = b_S`` (one batched
    ``np.linalg.solve`` for the K problems, padded to n × n), and exchanges every variable that
    breaks a KKT condition (``x_S ≤ 0``, or a gradient ``(b − Qx)ⱼ > tol`` off the set) at once,
    or only the last one when full exchanges stop reducing their number. The first guess, the
    variables whose gradient at 0 is positive, is usually the answer. A problem is accepted only
    when every KKT condition holds: ``x_S > 0``, ``|(b − Qx)_S| ≤ tol`` and
    ``(b − Qx)ⱼ ≤ tol`` elsewhere; the others (a singular ``Q_SS``, dependent rows of ``G``) are solved
    by the Lawson–Hanson active-set method on least squares (:func:`_lawson_hanson`), which is exact
    there too.
    """
    quadratic = np.asarray(quadratic, dtype=np.float64)
    linear = np.asarray(linear, dtype=np.float64)
    solution, settled = _block_pivoting(quadratic, linear, tol)
    if not settled.all():
        for k in np.flatnonzero(~settled):
            solution[k] = _lawson_hanson(quadratic, linear[k], tol)
    return solution


def _block_pivoting(quadratic: np.ndarray, linear: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The K problems of :func:`nonnegative_qp_many` by block principal pivoting: the solutions and
    whether each one satisfies every KKT condition (the others are left to the caller)."""
    count, size = linear.shape
    passive = linear > tol
    if not passive.any():  # every gradient at 0 is ≤ tol: x = 0 is optimal for all K problems
        return np.zeros((count, size)), np.ones(count, dtype=bool)
    # Off the passive set a padded system is the identity (row and column), so LU gives exactly 0
    # there; a singular Q_SS gives an exception or non-finite values, refused below.
    identity = _identity(size)
    fewest = backups = rows = None
    for _ in range(5 * size + 10):
        systems = np.where(passive[:, :, None] & passive[:, None, :], quadratic, identity)
        solution = _solve(systems, linear * passive)
        if solution is None:  # an exactly singular Q_SS somewhere: least squares for all
            return np.zeros((count, size)), np.zeros(count, dtype=bool)
        gradient = linear - solution @ quadratic
        infeasible = np.where(passive, solution <= 0.0, gradient > tol)
        if not infeasible.any():
            break
        # Júdice & Pires' rule: exchange every infeasible variable while that lowers their number
        # (with three more tries), otherwise only the last one, which ends in finitely many steps.
        if fewest is None:
            fewest, backups, rows = np.full(count, size + 1), np.full(count, 3), np.arange(count)
        counts = infeasible.sum(axis=1)
        fewer = counts < fewest
        fewest = np.where(fewer, counts, fewest)
        backups = np.where(fewer, 3, backups - 1)
        last = size - 1 - np.argmax(infeasible[:, ::-1], axis=1)
        single = np.zeros_like(infeasible)
        single[rows, last] = True
        passive ^= np.where((backups >= 0)[:, None], infeasible, single & infeasible)
    # Rows still exchanging after the last pass (cycling on a singular Q) are not settled; the
    # others kept the passive set their solution was computed on. A non-finite solution makes
    # every gradient NaN or inf, so the residual test refuses it too.
    settled = np.abs(gradient * passive).max(axis=1) <= tol
    if infeasible.any():
        settled &= ~infeasible.any(axis=1)
    return solution, settled


def _solve(systems: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    """Row ``k``: the solution of ``systems[k] x = right[k]``; None if a system is exactly singular.

    One system (MGDA's and CAGrad's single problem) goes to LAPACK's ``dgesv`` directly, several to
    one batched ``np.linalg.solve``."""
    if systems.shape[0] == 1:
        solution, info = lapack.dgesv(systems[0], right[0])[2:]
        return solution[None, :] if info == 0 else None
    try:
        return np.linalg.solve(systems, right[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return None


_IDENTITIES: dict[int, np.ndarray] = {}


def _identity(size: int) -> np.ndarray:
    """A read-only ``size`` × ``size`` identity, made once per size."""
    identity = _IDENTITIES.get(size)
    if identity is None:
        identity = np.eye(size)
        identity.flags.writeable = False
        _IDENTITIES[size] = identity
    return identity


def _lawson_hanson(
    quadratic: np.ndarray, linear: np.ndarray, tol: float = KKT_TOLERANCE, max_iter: int | None = None
) -> np.ndarray:
    """Solve ``min ½xᵀQx − bᵀx`` subject to ``x ≥ 0`` (``Q`` symmetric positive semi-definite).

    The fallback of :func:`nonnegative_qp` for the problems block pivoting does not settle. Active-set method of Lawson & Hanson on the normal equations (Bro & De Jong 1997): a variable
    enters the passive set when its gradient ``(b − Qx)ⱼ`` exceeds ``tol``; the unconstrained
    solution on the passive set is taken by least squares (so a singular ``Q`` is fine), stepping
    back to the feasible region when it leaves it. On a step back the variable that blocks the
    step leaves the passive set and is set to exactly 0 (not to the round-off of ``x − step·gap``,
    which can stay a positive 1e-65 and keep it passive forever). Returns a minimiser (one of them
    if not unique).
    """
    n = linear.shape[0]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    # The objective decreases strictly at every pass of the outer loop, so no passive set comes
    # back and the number of passes is finite; the bound only guards against round-off cycling.
    max_iter = max_iter if max_iter is not None else 5 * n + 10
    blocked = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        gradient = linear - quadratic @ x
        candidates = ~passive & ~blocked & (gradient > tol)
        if not candidates.any():
            break
        entering = int(np.argmax(np.where(candidates, gradient, -np.inf)))
        passive[entering] = True
        # Each pass removes one passive variable, so n + 1 passes always end the inner loop.
        for _inner in range(n + 1):
            z = _solve_on(quadratic, linear, passive)
            infeasible = np.flatnonzero(passive & (z <= 0.0))
            if infeasible.size == 0:
                x = z
                blocked[:] = False
                break
            # Move from x towards z until the first passive variable reaches zero (the ratio
            # test); that variable leaves, set to exactly zero.
            current, target = x[infeasible], z[infeasible]
            gap = current - target  # ≥ current ≥ 0 since target ≤ 0
            ratios = np.where(gap > 0.0, current / np.where(gap > 0.0, gap, 1.0), 0.0)
            first = int(np.argmin(ratios))
            step = float(np.clip(ratios[first], 0.0, 1.0))
            x = x + step * (z - x)
            leaving = int(infeasible[first])
            passive[leaving] = False
            passive &= x > 0.0
            x[~passive] = 0.0
            if leaving == entering and step == 0.0:
                # The entering variable could not move (its gradient is at the round-off level of
                # the least-squares solution): do not pick it again until the point has moved.
                blocked[entering] = True
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
    matrix = np.asarray(matrix, dtype=np.float64)
    size = matrix.shape[0]
    scale = matrix.diagonal().max() if size else 0.0
    if size == 1 or not 0.0 < scale < math.inf:
        return np.full(size, 1.0 / size)
    quadratic = matrix / scale
    quadratic += 1.0  # + 11ᵀ
    beta = nonnegative_qp_many(quadratic, np.ones((1, size)), tol)[0]
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
    ``λᵢ = argmin_{λ ≥ 0} ½λᵀMλ + λᵀMeᵢ`` and ``x = Gᵀ(eᵢ + λᵢ)`` (:func:`_projection_multipliers`).
    Rows that conflict with nobody keep ``λᵢ = 0``.
    """
    weights = np.eye(len(matrix))
    multipliers = _projection_multipliers(matrix, tol)
    return weights if multipliers is None else weights + multipliers


def mean_projection_weights(matrix: np.ndarray, tol: float = KKT_TOLERANCE) -> np.ndarray:
    """The mean of the rows of :func:`dual_cone_projection_weights` (UPGrad's ``α``), directly:
    ``(1 + Σᵢ λᵢ) / T``."""
    size = len(matrix)
    multipliers = _projection_multipliers(matrix, tol)
    if multipliers is None:
        return np.full(size, 1.0 / size)
    return (multipliers.sum(axis=0) + 1.0) / size


def _projection_multipliers(matrix: np.ndarray, tol: float) -> np.ndarray | None:
    """Row ``i``: the dual multipliers ``λᵢ`` of the projection of ``gᵢ`` onto the dual cone; None for
    an all-zero Gramian (every ``λᵢ = 0``).

    ``λᵢ`` is scale-free, so the problems are solved on ``M`` itself with the tolerance scaled by its
    largest diagonal entry: the problems on the normalised Gramian, without dividing it. Row i of
    ``−M`` is the linear term of problem i (``M`` is symmetric); a row that conflicts with nobody has
    no positive entry there, so its ``λᵢ`` starts, and stays, at 0.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = matrix.diagonal().max() if matrix.size else 0.0
    if not 0.0 < scale < math.inf:
        return None
    return nonnegative_qp_many(matrix, -matrix, tol * scale)


def symmetric_eigen(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Eigenvalues (ascending) and eigenvectors of a symmetric float64 matrix, from its lower
    triangle, by LAPACK's ``dsyevd`` called directly (``np.linalg.eigh``'s algorithm with less
    wrapping, see the module's docstring); None if it does not converge."""
    values, vectors, info = lapack.dsyevd(matrix, lower=1)
    return (values, vectors) if info == 0 else None
