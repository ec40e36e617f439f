"""Exactness of the gradient methods on small, degenerate inputs (issue 14, item 0).

Random Gaussian matrices almost never have a degenerate active set, so the property tests in
``test_gradient_methods.py`` cannot see an active-set solver that stops early. Here every method is
run on small matrices with one-decimal entries, duplicate rows, colinear rows, zero rows and rows
of very different scale, in float32 and float64, and its output is checked

* against an exact reference written here, by enumeration of the active sets (T ≤ 6): for each
  candidate support the KKT system is solved directly, and only supports whose solution satisfies
  every KKT condition count (MGDA's min-norm value, UPGrad's projections, CAGrad's best worst-task
  improvement, Aligned-MTL from an SVD of ``G``, IMTL-G from the pseudo-inverse of the unit rows);
* and by each method's own optimality conditions on its own output (MGDA: no hull point has a
  smaller norm, ``gᵢ·d ≥ ‖d‖²``; UPGrad: ``gᵢ·d ≥ 0``; CAGrad: no point of the ball improves the
  worst task by more; Nash-MTL: ``αᵢ (G d)ᵢ`` all equal to 1).

The references only use the float64 values of the inputs; a float32 input is compared with the
exact answer for its own (float32-representable) entries, with a looser tolerance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from _asserts import assert_parallel, declaring
from torch.profiler import ProfilerActivity, profile

from mtl_core.balancing import METHODS, combine, make_method
from mtl_core.balancing._qp import gramian
from mtl_core.balancing.aligned_mtl import eigenvalue_tolerance
from mtl_core.balancing.pcgrad import partner_order

#: Tolerances relative to the largest squared row norm (conditions in units of g²) or to the
#: largest row norm (distances between directions).
TOLERANCE = {torch.float64: 1e-9, torch.float32: 5e-5}
DTYPES = [torch.float64, torch.float32]


# --- adversarial inputs ------------------------------------------------------------------------------


def adversarial_matrices(count: int, seed: int) -> Iterator[np.ndarray]:
    """``count`` small matrices (T in 2..6, P in 1..4) with one-decimal entries in [−2, 2], each with
    up to three of: a duplicate row, a colinear row (one-decimal factor, either sign), a zero row,
    a row rescaled by a power of ten up to 10³ either way."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n_tasks, n_params = int(rng.integers(2, 7)), int(rng.integers(1, 5))
        grads = rng.integers(-20, 21, size=(n_tasks, n_params)) / 10.0
        for _change in range(int(rng.integers(0, 4))):
            target, source = rng.integers(0, n_tasks, size=2)
            kind = int(rng.integers(0, 4))
            if kind == 0:
                grads[target] = grads[source]
            elif kind == 1:
                factor = float(rng.choice([-1, 1]) * rng.integers(1, 31) / 10.0)
                grads[target] = factor * grads[source]
            elif kind == 2:
                grads[target] = 0.0
            else:
                grads[target] = grads[target] * 10.0 ** int(rng.integers(-3, 4))
        yield grads


def as_input(grads: np.ndarray, dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """The tensor handed to the method, and the exact float64 values of its entries."""
    tensor = torch.as_tensor(grads).to(dtype)
    return tensor, tensor.double().numpy()


def _supports(n: int, empty: bool = False) -> Iterator[np.ndarray]:
    for size in range(0 if empty else 1, n + 1):
        for subset in itertools.combinations(range(n), size):
            yield np.array(subset, dtype=int)


def _independent(rows: np.ndarray, tolerance: float) -> bool:
    """Whether the rows are linearly independent: no singular value below ``tolerance`` (a length,
    set from the longest row of the whole matrix, so differences of near-equal rows do not count
    as directions)."""
    return rows.shape[0] == 0 or int(np.linalg.matrix_rank(rows, tol=tolerance)) == rows.shape[0]


def _scale(grads: np.ndarray) -> float:
    """The largest squared row norm (1 for an all-zero matrix, so tolerances stay absolute)."""
    largest = float((grads**2).sum(axis=1).max())
    return largest if largest > 0.0 else 1.0


# --- exact references -------------------------------------------------------------------------------


def min_norm_in_hull(grads: np.ndarray) -> float:
    """``min_{α ∈ Δ} ‖αᵀG‖²`` by enumeration: some optimal ``α`` has affinely independent support
    (Carathéodory), on which the equality-constrained KKT system is non-singular."""
    matrix = grads @ grads.T
    length = math.sqrt(_scale(grads))
    best = math.inf
    for support in _supports(grads.shape[0]):
        rows = grads[support]
        if not _independent(rows[1:] - rows[0], 1e-9 * length):
            continue
        size = support.size
        system = np.zeros((size + 1, size + 1))
        system[:size, :size] = matrix[np.ix_(support, support)]
        system[:size, size] = system[size, :size] = 1.0
        alpha = np.linalg.lstsq(system, np.append(np.zeros(size), 1.0), rcond=None)[0][:size]
        if alpha.min() >= -1e-12:
            point = alpha @ rows
            best = min(best, float(point @ point))
    return best


def project_onto_polyhedron(
    grads: np.ndarray, point: np.ndarray, level: float, tolerance: float = 1e-10
) -> np.ndarray | None:
    """The projection of ``point`` onto ``{x : Gx ≥ level·1}``, or None when that set is empty.

    ``x = point + G_Sᵀλ`` with ``λ ≥ 0`` and ``G_S x = level`` on a linearly independent support
    ``S`` of active rows (a conic Carathéodory argument); every support satisfying all KKT
    conditions gives the (unique) projection, so the nearest feasible candidate is returned.
    ``tolerance`` is relative: rows count as dependent below ``tolerance · maxᵢ‖gᵢ‖``, and
    ``gⱼ·x ≥ level − tolerance · ‖gⱼ‖(‖x‖ + ‖point‖)`` counts as feasible.
    """
    length = math.sqrt(_scale(grads))
    norms = np.linalg.norm(grads, axis=1)
    best: np.ndarray | None = None
    for support in _supports(grads.shape[0], empty=True):
        rows = grads[support]
        if not _independent(rows, tolerance * length):
            continue
        if support.size:
            # With A = G_S (full row rank): Aᵀλ = A⁺r and λ = (AAᵀ)⁻¹r = (A⁺)ᵀA⁺r, without
            # squaring the condition number of A.
            pseudo = np.linalg.pinv(rows)
            step = pseudo @ (level - rows @ point)
            multipliers = pseudo.T @ step
            if multipliers.min() < -1e-12 * max(1.0, float(np.abs(multipliers).max())):
                continue
            candidate = point + step
        else:
            candidate = point.copy()
        reach = np.linalg.norm(candidate) + np.linalg.norm(point)
        if np.any(grads @ candidate - level < -tolerance * norms * reach):
            continue
        if best is None or np.linalg.norm(candidate - point) < np.linalg.norm(best - point):
            best = candidate
    return best


def upgrad_reference(grads: np.ndarray, tolerance: float = 1e-10) -> np.ndarray:
    """The mean of the projections of the rows onto the dual cone ``{x : Gx ≥ 0}``.

    With ``tolerance = 1e-7`` rows dependent in float64 but not quite after rounding to float32
    (a relative 1e-8) count as dependent: nearly opposite rows leave a sliver of a cone whose side
    a 1e-8 perturbation decides, so a float32 input is compared with both answers.
    """
    projections = []
    for row in grads:
        projection = project_onto_polyhedron(grads, row, 0.0, tolerance)
        if projection is None:
            projection = project_onto_polyhedron(grads, row, 0.0, max(tolerance, 1e-7))
        assert projection is not None, "no projection found"  # the cone contains 0
        projections.append(projection)
    return np.mean(projections, axis=0)


def ball_reaches(grads: np.ndarray, c: float, level: float) -> bool:
    """Whether some ``x`` with ``‖x − g₀‖ ≤ c‖g₀‖`` has ``minᵢ gᵢ·x ≥ level`` (exact, by projection)."""
    mean = grads.mean(axis=0)
    radius = c * float(np.linalg.norm(mean))
    nearest = project_onto_polyhedron(grads, mean, level)
    return nearest is not None and float(np.linalg.norm(nearest - mean)) <= radius


def aligned_mtl_reference(grads: np.ndarray, dtype: torch.dtype) -> tuple[np.ndarray, bool]:
    """Aligned-MTL's direction from the SVD of ``G`` (not its Gramian): with ``G = UΣVᵀ`` and the
    kept singular values, ``d = σ_min Σₖ (1ᵀuₖ) vₖ``; and whether the kept set is unambiguous (no
    squared singular value within a factor 100 of the drop threshold, or at the float32 Gramian's
    round-off level for float32)."""
    left, singular, right_t = np.linalg.svd(grads, full_matrices=False)
    squared = singular**2
    largest = float(squared.max()) if squared.size else 0.0
    if largest <= 0.0:
        return np.zeros(grads.shape[1]), True
    threshold = eigenvalue_tolerance(grads.shape[0], dtype)
    ratio = squared / largest
    keep = ratio > threshold
    low, high = (1e-13, 1e-4) if dtype == torch.float32 else (threshold / 100.0, threshold * 100.0)
    clear = not bool(np.any((ratio > low) & (ratio < high)))
    weights = left[:, keep].sum(axis=0)
    direction = math.sqrt(float(squared[keep].min())) * (weights @ right_t[keep])
    return direction, clear


def imtl_g_reference(grads: np.ndarray) -> tuple[np.ndarray, bool]:
    """IMTL-G from the unit rows ``U`` directly: ``β = (UUᵀ)⁺1 = (U⁺)ᵀU⁺1`` (minimum norm),
    ``γᵢ = βᵢ/‖gᵢ‖``, ``α = γ/Σγ``; and whether equal projections exist and are well determined
    (``1`` in the range of ``UUᵀ``, which is well conditioned, and ``Σγ`` far from 0)."""
    norms = np.linalg.norm(grads, axis=1)
    if norms.max() <= 0.0:
        return np.zeros(grads.shape[1]), True
    index = np.flatnonzero(norms > 1e-12 * norms.max())
    units = grads[index] / norms[index, None]
    pseudo = np.linalg.pinv(units)
    beta = pseudo.T @ (pseudo @ np.ones(index.size))
    cosines = units @ units.T
    consistent = np.linalg.norm(cosines @ beta - 1.0) <= 1e-9 * max(1.0, float(np.abs(beta).max()))
    singular = np.linalg.svd(cosines, compute_uv=False)
    gamma = beta / norms[index]
    total = float(gamma.sum())
    well = consistent and singular.min() > 1e-3 * singular.max() and abs(total) > 1e-3 * np.abs(gamma).sum()
    alpha = np.zeros(grads.shape[0])
    alpha[index] = gamma / total if total != 0.0 else 0.0
    return alpha @ grads, bool(well)


# --- the conditions, as checks that raise AssertionError ---------------------------------------------
#
# ``slack`` is how far (a length, in units of g) the returned direction may be from the exact one:
# ``tol · max(maxᵢ‖gᵢ‖, Σᵢ|αᵢ|‖gᵢ‖)``, since ``d = αᵀG`` is formed in the input's dtype and
# rounding each term costs ``eps·|αᵢ|‖gᵢ‖`` (large weights that cancel, as near a Pareto-stationary
# point, lose digits in float32 whatever the solver does). Conditions on ``gᵢ·d`` get
# ``slack · maxᵢ‖gᵢ‖``.


def slack_of(grads: np.ndarray, weights: np.ndarray, tol: float) -> float:
    norms = np.linalg.norm(grads, axis=1)
    return tol * max(math.sqrt(_scale(grads)), float(np.abs(weights) @ norms))


def check_mgda(grads: np.ndarray, direction: np.ndarray, weights: np.ndarray, slack: float) -> None:
    length = math.sqrt(_scale(grads))
    squared = float(direction @ direction)
    assert weights.min() >= -1e-9 and abs(weights.sum() - 1.0) <= 1e-6, f"weights {weights} not on the simplex"
    exact = min_norm_in_hull(grads)
    assert squared <= exact + slack * length, f"‖d‖² = {squared}, the hull's min-norm value is {exact}"
    # The min-norm point d of the hull satisfies (gᵢ − d)·d ≥ 0 for every row.
    assert (grads @ direction).min() >= squared - slack * length, f"some gᵢ·d < ‖d‖²: {grads @ direction}"


def check_upgrad(
    grads: np.ndarray, direction: np.ndarray, slack: float, tolerances: tuple[float, ...] = (1e-10,)
) -> None:
    length = math.sqrt(_scale(grads))
    assert (grads @ direction).min() >= -slack * length, f"some gᵢ·d < 0: {grads @ direction}"
    expected = [upgrad_reference(grads, tolerance) for tolerance in tolerances]
    assert min(np.linalg.norm(direction - e) for e in expected) <= slack, f"d = {direction}, exact {expected}"


def check_cagrad(grads: np.ndarray, direction: np.ndarray, c: float, slack: float) -> None:
    length = math.sqrt(_scale(grads))
    unscaled = direction * (1.0 + c * c)
    mean = grads.mean(axis=0)
    radius = c * float(np.linalg.norm(mean))
    assert np.linalg.norm(unscaled - mean) <= radius * (1.0 + 1e-6) + 2.0 * slack, "outside the ball"
    worst = float((grads @ unscaled).min())
    # CAGrad's root search reads hull norms as square roots of Gramian quadratic forms, which are
    # accurate to ~√eps of the largest norm: its worst-task value is exact to ~1e-8·maxᵢ‖gᵢ‖².
    margin = max(10.0 * slack * length, 1e-7 * length**2)
    assert not ball_reaches(grads, c, worst + margin), (
        f"worst-task improvement {worst}: the ball reaches more"
    )


def check_nash(grads: np.ndarray, direction: np.ndarray, weights: np.ndarray, tol: float) -> None:
    norms = np.linalg.norm(grads, axis=1)
    index = np.flatnonzero(norms > 1e-12 * norms.max())
    assert np.all(weights[index] > 0.0), f"weights {weights} not positive"
    products = weights[index] * (grads[index] @ direction)
    assert np.abs(products - 1.0).max() <= tol, f"αᵢ (G d)ᵢ = {products}, not all 1"


# --- the regression cases of issue 14 ----------------------------------------------------------------

MGDA_CASE = [[0.8, -1.2, -0.9], [0.4, -0.3, -0.1], [0.9, -0.1, 0.5]]
UPGRAD_CASE = [[-1.6, -0.7, -0.4], [-0.3, -0.5, 0.3], [1.0, 0.3, 1.0], [1.0, -0.6, 0.3], [-0.4, 0.7, -0.3]]
CAGRAD_CASE = [[1.5, -1.2, -2.3], [-0.1, -0.7, -0.9], [-0.9, -1.4, 1.4]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_mgda_case_is_the_vertex(dtype: torch.dtype) -> None:
    grads, exact = as_input(np.array(MGDA_CASE), dtype)
    direction = combine("mgda", grads).double().numpy()
    np.testing.assert_allclose(direction, exact[1], rtol=0, atol=TOLERANCE[dtype])
    assert abs(float(direction @ direction) - 0.26) <= 10 * TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_upgrad_case_is_zero(dtype: torch.dtype) -> None:
    grads, exact = as_input(np.array(UPGRAD_CASE), dtype)
    direction = combine("upgrad", grads).double().numpy()
    np.testing.assert_allclose(direction, np.zeros(3), rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(upgrad_reference(exact), np.zeros(3), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_cagrad_case_reaches_the_optimum(dtype: torch.dtype) -> None:
    grads, exact = as_input(np.array(CAGRAD_CASE), dtype)
    direction = combine("cagrad", grads, c=0.5).double().numpy()
    worst = float((exact @ direction).min()) * 1.25
    assert worst > 1.6679
    np.testing.assert_allclose(direction, [-0.0719, -1.3397, -0.4327], atol=1e-4)
    check_cagrad(exact, direction, 0.5, TOLERANCE[dtype])


def test_the_checks_reject_the_wrong_answers_of_issue_14() -> None:
    """The references can fail: the answers the old solver gave are refused."""
    with pytest.raises(AssertionError):
        check_mgda(np.array(MGDA_CASE), np.array([0.5937, -0.2225, 0.1324]), np.array([0.3, 0.3, 0.4]), 1e-9)
    with pytest.raises(AssertionError):
        check_upgrad(np.array(UPGRAD_CASE), np.array([-0.0235, -0.0030, 0.0244]), 1e-9)
    with pytest.raises(AssertionError):
        check_cagrad(np.array(CAGRAD_CASE), np.array([-0.0665, -1.6040, -0.5113]) / 1.25, 0.5, 1e-9)
    grads = np.array([[1.0, 0.2], [0.3, 1.0]])
    with pytest.raises(AssertionError):
        check_nash(grads, grads.sum(axis=0), np.ones(2), 1e-9)


# --- the sweep ---------------------------------------------------------------------------------------


def sweep(count: int, seed: int, dtype: torch.dtype) -> None:
    tol = TOLERANCE[dtype]
    failures: list[str] = []
    for number, matrix in enumerate(adversarial_matrices(count, seed)):
        grads, exact = as_input(matrix, dtype)
        n_tasks = exact.shape[0]
        scale = _scale(exact)
        try:
            mgda = make_method("mgda", n_tasks)
            direction = mgda(grads).double().numpy()
            weights = mgda.weights.double().numpy()
            check_mgda(exact, direction, weights, slack_of(exact, weights, tol))
            upgrad = make_method("upgrad", n_tasks)
            direction = upgrad(grads).double().numpy()
            tolerances = (1e-10,) if dtype == torch.float64 else (1e-10, 1e-7)
            check_upgrad(exact, direction, slack_of(exact, upgrad.weights.double().numpy(), tol), tolerances)
            for c in (0.5, 0.9):
                cagrad = make_method("cagrad", n_tasks, c=c)
                direction = cagrad(grads).double().numpy()
                check_cagrad(exact, direction, c, slack_of(exact, cagrad.weights.double().numpy(), tol))
            nash = make_method("nash_mtl", n_tasks)
            nash_direction = nash(grads).double().numpy()
            # Nash-MTL's equation has a solution only when a direction improves every task: the
            # hull of the unit rows must keep away from the origin.
            norms = np.linalg.norm(exact, axis=1)
            nonzero = exact[norms > 1e-12 * norms.max()] if norms.max() > 0 else exact[:0]
            if nonzero.shape[0] and min_norm_in_hull(nonzero / np.linalg.norm(nonzero, axis=1)[:, None]) > 1e-2:
                check_nash(exact, nash_direction, nash.weights.double().numpy(), 1e-8 if dtype == torch.float64 else 1e-3)
            aligned, clear = aligned_mtl_reference(exact, dtype)
            if clear:
                ours = combine("aligned_mtl", grads).double().numpy()
                assert np.linalg.norm(ours - aligned) <= 1e3 * tol * math.sqrt(scale), f"Aligned-MTL {ours} vs {aligned}"
            imtl, well = imtl_g_reference(exact)
            if well:
                ours = combine("imtl_g", grads).double().numpy()
                assert np.linalg.norm(ours - imtl) <= 1e3 * tol * max(1.0, float(np.linalg.norm(imtl))), (
                    f"IMTL-G {ours} vs {imtl}"
                )
        except AssertionError as error:
            failures.append(f"#{number} G = {matrix.tolist()}: {str(error).splitlines()[0]}")
    assert not failures, f"{len(failures)} of {count} matrices failed:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("dtype", DTYPES)
def test_methods_are_exact_on_adversarial_matrices(dtype: torch.dtype) -> None:
    sweep(400, 14, dtype)  # the solver before issue 14 fails on one of these (float64)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_methods_are_exact_on_many_adversarial_matrices(dtype: torch.dtype) -> None:
    sweep(2500, 1400, dtype)


# --- one pass over G (issue 14, item 1) --------------------------------------------------------------

GRAMIAN_METHODS = declaring(METHODS, kind="gradient", reads_gramian=True)


def peak_allocation(call: Callable[[], object]) -> int:
    """Peak bytes held by torch's CPU allocations made during ``call`` (torch's profiler, which
    records every allocation and free of the tensors' memory)."""
    call()  # warm-up: first-call caches are not the method's memory
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        call()
    held = peak = 0
    for event in sorted(profiler.events(), key=lambda event: event.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_gramian_methods_hold_no_copy_of_g(name: str) -> None:
    """Extra memory of a call: the direction (one P-vector) and O(T²), no T × P temporary (a
    float64 copy of this G would be 8 × 4 × 20 000 = 640 kB)."""
    n_tasks, n_params = 4, 20_000
    grads = torch.randn(n_tasks, n_params, generator=torch.Generator().manual_seed(0))
    peak = peak_allocation(lambda: combine(name, grads, generator=torch.Generator().manual_seed(0)))
    assert peak <= 4 * n_params + 16_384, f"{name} held {peak} bytes at its peak"


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
@pytest.mark.parametrize("scale", [1e20, 1e-20, 1e-25])
def test_float32_gramian_falls_back_at_the_edges_of_float32(name: str, scale: float) -> None:
    """Entries whose squares overflow float32 (1e20), underflow to subnormals (1e-20) or to 0: the
    Gramian is taken in float64, and the direction matches the float64 input's."""
    grads = torch.tensor([[1.0, -2.0, 0.5], [-1.5, 0.5, 1.0], [0.3, 0.2, -0.4]], dtype=torch.float64)
    wide = combine(name, grads * scale, generator=torch.Generator().manual_seed(0))
    narrow = combine(name, (grads * scale).float(), generator=torch.Generator().manual_seed(0))
    assert narrow.dtype == torch.float32 and bool(torch.isfinite(narrow).all())
    assert_parallel(narrow.double() / scale, wide / scale, tol=1e-6)  # (a float32 norm would underflow)


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_entries_are_found_through_the_gramian(name: str, bad: float) -> None:
    grads = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    grads[2, 17] = bad
    with pytest.raises(ValueError, match="`grads` contains NaN or inf values"):
        combine(name, grads)


def test_nash_mtl_reusing_its_weights_still_refuses_nan() -> None:
    method = make_method("nash_mtl", 2, update_weights_every=5)
    method(torch.tensor([[1.0, 0.2], [0.1, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        method(torch.tensor([[1.0, float("nan")], [0.1, 1.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gramian_in_the_inputs_dtype_is_close_to_the_exact_one(dtype: torch.dtype) -> None:
    """The float32 Gramian (half precision is multiplied in float32) is symmetric, positive
    semi-definite, and within ~√P·eps of the float64 Gramian of the same entries."""
    grads = torch.randn(6, 5000, generator=torch.Generator().manual_seed(2)).to(dtype)
    exact = grads.double() @ grads.double().T
    matrix = gramian(grads)
    assert matrix.dtype == np.float64 and np.array_equal(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix).min() >= -1e-12 * np.abs(matrix).max()
    norms = np.sqrt(np.diag(exact.numpy()))
    relative = np.abs(matrix - exact.numpy()) / np.outer(norms, norms)
    assert relative.max() <= math.sqrt(5000) * float(torch.finfo(torch.float32).eps)


# --- Gramian forms equal the direct forms (issue 14, item 2) -----------------------------------------
#
# PCGrad and GradVac run on the T × T Gramian (weights on the rows, then one GEMV) and GradDrop on
# column reductions (no T × P temporary); each is compared here with its direct form in parameter
# space, written from the paper, with the same random draws.


def pcgrad_direct(grads: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    projected = []
    for i in range(grads.shape[0]):
        current = grads[i].clone()
        for j in partner_order(grads.shape[0], i, generator):
            dot = current @ grads[j]
            if dot < 0 and grads[j] @ grads[j] > 0:
                current = current - dot / (grads[j] @ grads[j]) * grads[j]
        projected.append(current)
    return torch.stack(projected).sum(dim=0)


def gradvac_direct(
    grads: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, beta: float
) -> torch.Tensor:
    """One call of GradVac in parameter space; updates ``targets`` in place."""
    vaccinated = []
    for i in range(grads.shape[0]):
        current = grads[i].clone()
        for j in partner_order(grads.shape[0], i, generator):
            norm_i, norm_j = torch.linalg.vector_norm(current), torch.linalg.vector_norm(grads[j])
            if norm_i <= 0 or norm_j <= 0:
                continue
            rho = float((current @ grads[j] / (norm_i * norm_j)).clamp(-1.0, 1.0))
            target = float(targets[i, j].clamp(-1.0 + 1e-6, 1.0 - 1e-6))
            if rho < target:
                sin_target, sin_rho = math.sqrt(1 - target**2), math.sqrt(1 - rho**2)
                current = current + grads[j] * norm_i * (target * sin_rho - rho * sin_target) / (norm_j * sin_target)
            targets[i, j] = (1 - beta) * targets[i, j] + beta * rho
        vaccinated.append(current)
    return torch.stack(vaccinated).sum(dim=0)


def graddrop_direct(grads: torch.Tensor, generator: torch.Generator, leak: float) -> torch.Tensor:
    total, mass = grads.sum(dim=0), grads.abs().sum(dim=0)
    purity = torch.where(mass > 0, 0.5 * (1 + total / torch.where(mass > 0, mass, 1.0)), 0.5)
    uniform = torch.rand(grads.shape[1], generator=generator, dtype=grads.dtype)
    keep_positive = uniform < purity
    mask = torch.where(grads > 0, keep_positive, ~keep_positive)
    return (leak * grads + (1 - leak) * grads * mask).sum(dim=0)


def conflicting(n_tasks: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(2, 12, generator=generator, dtype=torch.float64)
    mixing = torch.randn(n_tasks, 2, generator=generator, dtype=torch.float64)
    return mixing @ base + 0.3 * torch.randn(n_tasks, 12, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("n_tasks", [2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_pcgrad_gramian_form_is_the_direct_form(n_tasks: int, seed: int) -> None:
    grads = conflicting(n_tasks, seed)
    ours = combine("pcgrad", grads, generator=torch.Generator().manual_seed(seed))
    direct = pcgrad_direct(grads, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ours, direct, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_tasks", [2, 4])
@pytest.mark.parametrize("seed", range(3))
def test_gradvac_gramian_form_is_the_direct_form(n_tasks: int, seed: int) -> None:
    method = make_method("gradvac", n_tasks, generator=torch.Generator().manual_seed(seed), beta=0.5)
    generator, targets = torch.Generator().manual_seed(seed), torch.zeros(n_tasks, n_tasks, dtype=torch.float64)
    for step in range(3):  # later calls have non-zero targets
        grads = conflicting(n_tasks, 10 * seed + step)
        torch.testing.assert_close(method(grads), gradvac_direct(grads, targets, generator, 0.5), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(method.targets, targets, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_graddrop_reduction_form_is_the_direct_form(dtype: torch.dtype, leak: float) -> None:
    grads = conflicting(4, 3).repeat(1, 50).to(dtype)
    grads[1, ::3] = 0.0
    grads[:, ::7] = grads[:, ::7].abs()
    ours = combine("graddrop", grads, generator=torch.Generator().manual_seed(1), leak=leak)
    direct = graddrop_direct(grads, torch.Generator().manual_seed(1), leak)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, direct, rtol=tolerance, atol=tolerance)
