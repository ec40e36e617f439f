"""Properties of the gradient balancing methods (functions of the task-gradient matrix G → d).

The generic tests run on every registered method whose ``kind`` is "gradient" (methods added later
are picked up automatically); the method-specific tests check closed forms, optimality conditions
and comparisons with brute-force / scipy solutions of the same problems.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _asserts import assert_close, assert_parallel, assert_shape_and_finite, cosine, declaring, random_grads
from scipy.optimize import minimize, nnls

from mtl_core.balancing import METHODS, combine, make_method
from mtl_core.balancing._qp import (
    dual_cone_projection_weights,
    gramian,
    mean_projection_weights,
    min_norm_simplex,
    nonnegative_qp,
)
from mtl_core.balancing.aligned_mtl import alignment_matrix, alignment_weights
from mtl_core.errors import ConfigError

# Each property runs on every registered gradient method whose class declares it.
GRADIENT_METHODS = declaring(METHODS, kind="gradient")
RANDOMISED = declaring(METHODS, kind="gradient", randomised=True)
WEIGHTED_SUM = declaring(METHODS, kind="gradient", weighted_sum=True)
SCALE_INVARIANT = declaring(METHODS, kind="gradient", scale_invariant=True)
PERMUTATION_INVARIANT = declaring(METHODS, kind="gradient", permutation_invariant=True)


def run(name: str, grads: torch.Tensor, seed: int = 0, **options: object) -> torch.Tensor:
    return combine(name, grads, generator=torch.Generator().manual_seed(seed), **options)


def strongly_conflicting(seed: int = 0) -> torch.Tensor:
    """Four tasks: two nearly opposite pairs plus noise — plenty of negative dot products."""
    base = random_grads(2, 8, seed)
    noise = random_grads(4, 8, seed + 100, scale=0.1)
    return torch.cat([base, -1.5 * base]) + noise


def non_conflicting(seed: int = 0, n_tasks: int = 4, n_params: int = 10) -> torch.Tensor:
    """Non-negative rows: every pairwise dot product is ≥ 0."""
    return random_grads(n_tasks, n_params, seed).abs()


def test_gradient_methods_are_registered() -> None:
    expected = {
        "pcgrad",
        "mgda",
        "mgda_ub",
        "cagrad",
        "imtl_g",
        "gradvac",
        "aligned_mtl",
        "nash_mtl",
        "upgrad",
        "graddrop",
    }
    assert expected <= set(GRADIENT_METHODS)
    for name in expected:
        info = METHODS.get(name).describe()
        assert info["name"] == name and info["kind"] == "gradient"
        assert info["description"].endswith(".") and info["paper"]
    assert METHODS.get("mgda_ub").level == "representation"
    assert METHODS.get("graddrop").level == "representation"
    assert {"pcgrad", "gradvac", "graddrop"} <= set(RANDOMISED)
    # What the built-in methods declare: a flag dropped by mistake would silently drop its tests.
    assert expected - {"graddrop"} <= set(WEIGHTED_SUM)
    assert expected <= set(SCALE_INVARIANT)
    assert {"aligned_mtl", "cagrad", "imtl_g", "mgda", "nash_mtl", "upgrad"} <= set(PERMUTATION_INVARIANT)


# --- generic properties, every gradient method --------------------------------------------------


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize(("n_tasks", "n_params"), [(1, 5), (2, 3), (3, 20), (5, 4), (4, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_shape_and_finite(name: str, n_tasks: int, n_params: int, seed: int) -> None:
    grads = random_grads(n_tasks, n_params, seed)
    assert_shape_and_finite(run(name, grads, seed), grads)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_float32_in_float32_out(name: str) -> None:
    grads = random_grads(3, 7, 2, dtype=torch.float32)
    assert_shape_and_finite(run(name, grads), grads)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize("n_tasks", [2, 4])
def test_identical_gradients_give_a_parallel_direction(name: str, n_tasks: int) -> None:
    row = random_grads(1, 9, 3)
    grads = row.repeat(n_tasks, 1)
    direction = run(name, grads)
    assert_shape_and_finite(direction, grads)
    assert_parallel(direction, row[0])


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize("n_tasks", [1, 3])
def test_all_zero_gradients_give_zero(name: str, n_tasks: int) -> None:
    grads = torch.zeros(n_tasks, 6, dtype=torch.float64)
    direction = run(name, grads)
    assert_shape_and_finite(direction, grads)
    assert_close(direction, torch.zeros(6, dtype=torch.float64), atol=0.0)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_single_task_follows_its_gradient(name: str) -> None:
    grads = random_grads(1, 6, 4)
    direction = run(name, grads)
    assert_shape_and_finite(direction, grads)
    assert_parallel(direction, grads[0])


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_one_zero_row_stays_finite(name: str) -> None:
    grads = random_grads(3, 6, 5)
    grads[1] = 0.0
    assert_shape_and_finite(run(name, grads), grads)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(torch.float64, 1e-30), (torch.float64, 1e30), (torch.float32, 1e-12), (torch.float32, 1e12)],
)
def test_extreme_scales_stay_finite(name: str, dtype: torch.dtype, scale: float) -> None:
    grads = random_grads(3, 6, 6, dtype=dtype, scale=scale)
    assert_shape_and_finite(run(name, grads), grads)


@pytest.mark.parametrize("name", SCALE_INVARIANT)
@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_direction_does_not_depend_on_the_scale(name: str, scale: float) -> None:
    grads = random_grads(4, 6, 7)
    reference, scaled = run(name, grads), run(name, grads * scale)
    assert_parallel(scaled, reference, tol=1e-9)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (torch.ones(4), "2-D"),
        (torch.ones(2, 3, 4), "2-D"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "inf"),
        (torch.ones(2, 3, dtype=torch.int64), "floating-point"),
        (torch.ones(0, 3), "at least one task"),
        ([[1.0, 2.0]], "torch.Tensor"),
    ],
)
def test_invalid_input_raises(name: str, bad: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        combine(name, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_wrong_number_of_rows_raises(name: str) -> None:
    method = make_method(name, 3)
    with pytest.raises(ValueError, match="3 rows"):
        method(random_grads(2, 4))


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_unknown_option_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="not_an_option"):
        combine(name, random_grads(2, 3), not_an_option=1)


def test_unknown_or_loss_method_is_refused() -> None:
    with pytest.raises(ValueError, match="one of"):
        combine("no_such_method", random_grads(2, 3))
    loss_methods = [name for name, cls in METHODS.items() if cls.kind == "loss"]
    with pytest.raises(ValueError, match="gradient method"):
        combine(loss_methods[0], random_grads(2, 3))


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("cagrad", "c", -0.1),
        ("gradvac", "beta", 1.5),
        ("graddrop", "leak", 2.0),
        ("nash_mtl", "update_weights_every", 0),
    ],
)
def test_out_of_range_option_names_the_option(name: str, option: str, value: float) -> None:
    with pytest.raises(ConfigError, match=option):
        combine(name, random_grads(2, 3), **{option: value})


@pytest.mark.parametrize("name", RANDOMISED)
def test_generator_makes_randomised_methods_reproducible(name: str) -> None:
    grads = strongly_conflicting(8)
    first, second = run(name, grads, seed=11), run(name, grads, seed=11)
    assert torch.equal(first, second)
    others = [run(name, grads, seed=seed) for seed in range(12)]
    assert any(not torch.equal(others[0], other) for other in others[1:]), "the generator is ignored"


@pytest.mark.parametrize("name", WEIGHTED_SUM)
def test_weights_reproduce_the_direction(name: str) -> None:
    grads = random_grads(4, 9, 9)
    method = make_method(name, 4, generator=torch.Generator().manual_seed(0))
    direction = method(grads)
    assert method.weights is not None and method.weights.shape == (4,)
    assert_close(direction, method.weights @ grads, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
@pytest.mark.parametrize("seed", [0, 1])
def test_permuting_tasks_leaves_the_direction_unchanged(name: str, seed: int) -> None:
    grads = random_grads(4, 9, 20 + seed)
    permutation = torch.tensor([2, 0, 3, 1])
    method, permuted_method = make_method(name, 4), make_method(name, 4)
    direction, permuted = method(grads), permuted_method(grads[permutation])
    assert_close(permuted, direction, rtol=1e-8, atol=1e-10)
    assert_close(permuted_method.weights, method.weights[permutation], rtol=1e-7, atol=1e-10)


# --- PCGrad ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pcgrad_without_conflict_is_the_sum(seed: int) -> None:
    grads = non_conflicting(seed)
    assert_close(run("pcgrad", grads, seed), grads.sum(dim=0))


def test_pcgrad_two_task_closed_form() -> None:
    g1 = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    g2 = torch.tensor([-2.0, 1.0, -0.5], dtype=torch.float64)
    dot = g1 @ g2
    assert dot < 0
    expected = (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)
    direction = combine("pcgrad", torch.stack([g1, g2]))  # deterministic for two tasks: no generator
    assert_close(direction, expected)


def _pcgrad_reference(grads: torch.Tensor, orders: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """PCGrad in parameter space with given partner orders, written directly from the paper."""
    projected = []
    for i, order in enumerate(orders):
        current = grads[i].clone()
        for j in order:
            dot = current @ grads[j]
            if dot < 0:
                current = current - dot / (grads[j] @ grads[j]) * grads[j]
        projected.append(current)
    return torch.stack(projected).sum(dim=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pcgrad_three_tasks_matches_one_of_the_orders(seed: int) -> None:
    grads = strongly_conflicting(seed)[:3]
    direction = run("pcgrad", grads, seed)
    per_task = [list(itertools.permutations([j for j in range(3) if j != i])) for i in range(3)]
    candidates = [_pcgrad_reference(grads, orders) for orders in itertools.product(*per_task)]
    assert min(float((direction - c).abs().max()) for c in candidates) < 1e-10


# --- MGDA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mgda", "mgda_ub"])
@pytest.mark.parametrize("seed", range(4))
def test_mgda_is_a_common_descent_direction(name: str, seed: int) -> None:
    grads = random_grads(2 + seed, 6, seed)
    method = make_method(name, grads.shape[0])
    direction = method(grads)
    squared = float(direction @ direction)
    assert bool((grads @ direction >= squared - 1e-10 * float((grads**2).sum(1).max())).all())
    assert bool((method.weights >= 0).all()) and abs(float(method.weights.sum()) - 1.0) < 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_mgda_two_task_closed_form(seed: int) -> None:
    g1, g2 = random_grads(2, 5, seed)
    alpha = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    alpha = min(max(alpha, 0.0), 1.0)
    assert_close(combine("mgda", torch.stack([g1, g2])), alpha * g1 + (1 - alpha) * g2, rtol=1e-9, atol=1e-12)


def _simplex_qp_scipy(matrix: np.ndarray) -> np.ndarray:
    size = matrix.shape[0]
    result = minimize(
        lambda a: a @ matrix @ a,
        np.full(size, 1.0 / size),
        jac=lambda a: 2 * matrix @ a,
        bounds=[(0.0, 1.0)] * size,
        constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1.0, "jac": lambda a: np.ones_like(a)}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return result.x


@pytest.mark.parametrize("seed", range(4))
def test_mgda_matches_a_scipy_solution_of_the_simplex_qp(seed: int) -> None:
    grads = random_grads(5, 4, seed)  # more tasks than parameters: the hull's min-norm point is interior
    matrix = gramian(grads)
    reference = _simplex_qp_scipy(matrix)
    ours = min_norm_simplex(matrix)
    assert ours @ matrix @ ours <= reference @ matrix @ reference + 1e-12
    assert_close(combine("mgda", grads), torch.as_tensor(reference) @ grads, rtol=1e-5, atol=1e-5)


def test_mgda_ub_is_mgda_on_a_plain_matrix() -> None:
    grads = random_grads(4, 7, 3)
    assert torch.equal(combine("mgda_ub", grads), combine("mgda", grads))


def test_nonnegative_qp_matches_scipy_nnls() -> None:
    generator = torch.Generator().manual_seed(0)
    for rows, cols in [(8, 5), (3, 6)]:  # full column rank, then rank-deficient
        a = torch.randn(rows, cols, generator=generator, dtype=torch.float64).numpy()
        b = torch.randn(rows, generator=generator, dtype=torch.float64).numpy()
        ours = nonnegative_qp(a.T @ a, a.T @ b)
        reference, _ = nnls(a, b)
        assert np.all(ours >= 0)
        assert np.linalg.norm(a @ ours - b) <= np.linalg.norm(a @ reference - b) + 1e-10


# --- UPGrad ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grads",
    [
        random_grads(5, 7, 1),
        random_grads(3, 2, 2),
        strongly_conflicting(3),
        torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64),
    ],
)
def test_upgrad_never_increases_a_loss(grads: torch.Tensor) -> None:
    direction = combine("upgrad", grads)
    assert bool((grads @ direction >= -1e-10 * float((grads**2).sum(1).max())).all())


@pytest.mark.parametrize("seed", range(3))
def test_upgrad_without_conflict_is_the_mean(seed: int) -> None:
    grads = non_conflicting(seed)
    assert_close(combine("upgrad", grads), grads.mean(dim=0))


@pytest.mark.parametrize("seed", range(3))
def test_upgrad_is_the_mean_of_scipy_projections_onto_the_dual_cone(seed: int) -> None:
    grads = strongly_conflicting(seed)[:3, :6]
    g = grads.numpy()
    projections = []
    for row in g:
        result = minimize(
            lambda x, row=row: 0.5 * np.sum((x - row) ** 2),
            np.zeros_like(row),
            jac=lambda x, row=row: x - row,
            constraints=[{"type": "ineq", "fun": lambda x: g @ x, "jac": lambda x: g}],
            method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        projections.append(result.x)
    expected = torch.as_tensor(np.mean(projections, axis=0))
    assert_close(combine("upgrad", grads), expected, rtol=1e-5, atol=1e-6)


# --- IMTL-G ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_tasks", "seed"), [(2, 0), (3, 1), (5, 2)])
def test_imtl_g_has_equal_projections_on_the_unit_gradients(n_tasks: int, seed: int) -> None:
    grads = random_grads(n_tasks, 10, seed)
    method = make_method("imtl_g", n_tasks)
    direction = method(grads)
    projections = (grads / torch.linalg.vector_norm(grads, dim=1, keepdim=True)) @ direction
    assert_close(projections, projections[0].expand(n_tasks), rtol=1e-9, atol=1e-12)
    assert abs(float(method.weights.sum()) - 1.0) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_imtl_g_matches_the_papers_closed_form(seed: int) -> None:
    grads = random_grads(3, 10, seed)
    units = grads / torch.linalg.vector_norm(grads, dim=1, keepdim=True)
    differences, unit_differences = grads[0] - grads[1:], units[0] - units[1:]
    tail = grads[0] @ unit_differences.T @ torch.linalg.inv(differences @ unit_differences.T)
    alpha = torch.cat([1 - tail.sum().unsqueeze(0), tail])
    assert_close(combine("imtl_g", grads), alpha @ grads, rtol=1e-8, atol=1e-10)


# --- CAGrad ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_cagrad_with_c_zero_is_the_mean(seed: int) -> None:
    grads = random_grads(4, 6, seed)
    assert torch.allclose(combine("cagrad", grads, c=0.0), grads.mean(dim=0), rtol=1e-14, atol=1e-15)


def test_cagrad_single_task_closed_form() -> None:
    grads = random_grads(1, 5, 0)
    c = 0.5
    assert_close(combine("cagrad", grads, c=c), grads[0] * (1 + c) / (1 + c * c))


@pytest.mark.parametrize(("seed", "c"), [(0, 0.5), (1, 0.5), (2, 0.2), (3, 0.9), (4, 0.5)])
def test_cagrad_maximises_the_worst_improvement_in_the_ball(seed: int, c: float) -> None:
    grads = strongly_conflicting(seed)[:3, :5] if seed % 2 else random_grads(3, 5, seed)
    g = grads.numpy()
    mean = g.mean(axis=0)
    radius = c * np.linalg.norm(mean)
    unscaled = combine("cagrad", grads, c=c).numpy() * (1 + c * c)
    assert np.linalg.norm(unscaled - mean) <= radius * (1 + 1e-8)
    # Primal problem: max_{x, t} t  s.t.  g_i·x ≥ t,  ‖x − g₀‖² ≤ r²  (SLSQP from the mean).
    result = minimize(
        lambda z: -z[-1],
        np.append(mean, (g @ mean).min()),
        jac=lambda z: np.append(np.zeros(len(mean)), -1.0),
        constraints=[
            {"type": "ineq", "fun": lambda z: g @ z[:-1] - z[-1]},
            {"type": "ineq", "fun": lambda z: radius**2 - np.sum((z[:-1] - mean) ** 2)},
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert (g @ unscaled).min() >= -result.fun - 1e-7
    assert_close(torch.as_tensor(unscaled), torch.as_tensor(result.x[:-1]), rtol=1e-4, atol=1e-5)


def test_cagrad_large_c_with_the_origin_in_the_hull_is_finite() -> None:
    grads = torch.tensor([[1.0, 0.0], [-1.0, 0.1], [0.0, -1.0]], dtype=torch.float64)
    for c in (0.5, 1.0, 3.0):
        direction = combine("cagrad", grads, c=c)
        assert_shape_and_finite(direction, grads)


# --- Aligned-MTL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_aligned_mtl_makes_the_aligned_gramian_a_multiple_of_identity(seed: int) -> None:
    """Check: with B from the method's module, ``(BG)(BG)ᵀ = λ_min I``; the method's weights are
    ``α = B·1``; and, independently of B, ``G d = √λ_min (GGᵀ)^{1/2} 1`` (eigh in torch)."""
    grads = random_grads(4, 10, seed)
    matrix = gramian(grads)
    basis = alignment_matrix(matrix)
    lambda_min = float(np.linalg.eigvalsh(matrix).min())
    np.testing.assert_allclose(
        basis @ matrix @ basis, lambda_min * np.eye(4), rtol=1e-9, atol=1e-9 * lambda_min
    )
    method = make_method("aligned_mtl", 4)
    direction = method(grads)
    assert_close(method.weights, torch.as_tensor(basis.sum(axis=1)), rtol=1e-10, atol=1e-12)
    eigenvalues, vectors = torch.linalg.eigh(grads @ grads.T)
    root = vectors @ torch.diag(eigenvalues.sqrt()) @ vectors.T
    expected = math.sqrt(float(eigenvalues.min())) * root @ torch.ones(4, dtype=torch.float64)
    assert_close(grads @ direction, expected, rtol=1e-8, atol=1e-10)


def test_aligned_mtl_drops_null_directions_on_rank_deficient_gradients() -> None:
    g1, g2 = random_grads(2, 6, 4)
    grads = torch.stack([g1, g2, g1 + g2])
    matrix = gramian(grads)
    basis = alignment_matrix(matrix)
    eigenvalues, vectors = np.linalg.eigh(matrix)
    kept = vectors[:, eigenvalues > 1e-9 * eigenvalues.max()]
    lambda_min = eigenvalues[eigenvalues > 1e-9 * eigenvalues.max()].min()
    np.testing.assert_allclose(
        basis @ matrix @ basis, lambda_min * kept @ kept.T, atol=1e-9 * eigenvalues.max()
    )
    assert_shape_and_finite(combine("aligned_mtl", grads), grads)


@pytest.mark.parametrize("case", ["full rank", "rank deficient", "zero row", "all zero"])
def test_aligned_mtl_weights_are_the_alignment_matrix_times_ones(case: str) -> None:
    """The method's shortcut ``α = √λ_min V Λ^{-1/2} Vᵀ 1`` equals ``B·1`` with B formed."""
    grads = random_grads(4, 9, 7)
    if case == "rank deficient":
        grads[3] = grads[0] + 2.0 * grads[1]
    elif case == "zero row":
        grads[2] = 0.0
    elif case == "all zero":
        grads = torch.zeros(4, 9, dtype=torch.float64)
    matrix = gramian(grads)
    np.testing.assert_allclose(
        alignment_weights(matrix, 1e-12), alignment_matrix(matrix, 1e-12).sum(axis=1), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("seed", range(4))
def test_upgrad_mean_weights_are_the_mean_of_the_projection_weights(seed: int) -> None:
    grads = random_grads(6, 5, seed)  # more tasks than dimensions: conflicts and a degenerate cone
    matrix = gramian(grads)
    np.testing.assert_allclose(
        mean_projection_weights(matrix), dual_cone_projection_weights(matrix).mean(axis=0), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_array_equal(mean_projection_weights(np.zeros((3, 3))), np.full(3, 1.0 / 3.0))


# --- Nash-MTL --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_tasks", "seed"), [(2, 0), (3, 1), (5, 2), (4, 3)])
def test_nash_mtl_solves_the_bargaining_equation(n_tasks: int, seed: int) -> None:
    grads = random_grads(n_tasks, 8, seed) if seed != 3 else strongly_conflicting(seed)
    method = make_method("nash_mtl", n_tasks)
    direction = method(grads)
    alpha = method.weights
    assert bool((alpha > 0).all())
    assert_close(alpha * ((grads @ grads.T) @ alpha), torch.ones(n_tasks, dtype=torch.float64), rtol=1e-8)
    assert_close(grads @ direction, 1.0 / alpha, rtol=1e-8)
    assert abs(float(direction @ direction) - n_tasks) < 1e-8


def test_nash_mtl_ignores_the_scale_of_each_task() -> None:
    grads = random_grads(3, 8, 4)
    rescaled = grads * torch.tensor([[1e-6], [1.0], [1e4]], dtype=torch.float64)
    assert_close(combine("nash_mtl", rescaled), combine("nash_mtl", grads), rtol=1e-8, atol=1e-10)


def test_nash_mtl_without_a_common_descent_direction_gives_almost_zero() -> None:
    grads = random_grads(1, 5, 0).repeat(2, 1) * torch.tensor([[1.0], [-0.7]], dtype=torch.float64)
    direction = combine("nash_mtl", grads)
    assert_shape_and_finite(direction, grads)
    assert float(torch.linalg.vector_norm(direction)) < 1e-4


def test_nash_mtl_options() -> None:
    first, second = random_grads(3, 6, 0), random_grads(3, 6, 1)
    method = make_method("nash_mtl", 3, update_weights_every=2)
    method(first)
    reused = method.weights.clone()
    assert_close(method(second), reused @ second)  # second call reuses the first call's weights
    assert not torch.allclose(make_method("nash_mtl", 3)(second), reused @ second)
    clipped = combine("nash_mtl", first, max_norm=0.5)
    assert abs(float(torch.linalg.vector_norm(clipped)) - 0.5) < 1e-12
    assert_parallel(clipped, combine("nash_mtl", first))


# --- GradVac ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_tasks", [2, 4])
def test_gradvac_first_call_is_pcgrad(n_tasks: int) -> None:
    grads = strongly_conflicting(5)[:n_tasks]
    assert_close(run("gradvac", grads, seed=3), run("pcgrad", grads, seed=3), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_gradvac_with_non_negative_cosines_is_the_sum(seed: int) -> None:
    grads = non_conflicting(seed)
    assert_close(run("gradvac", grads, seed), grads.sum(dim=0))


def test_gradvac_reaches_its_target_cosine_and_updates_the_ema() -> None:
    beta = 0.5
    g1 = torch.tensor([1.0, 0.2, 0.0], dtype=torch.float64)
    g2 = torch.tensor([-0.5, 1.0, 0.3], dtype=torch.float64)
    rho = cosine(g1, g2)
    assert rho < 0
    method = make_method("gradvac", 2, beta=beta)
    method(torch.stack([g1, g2]))
    assert_close(method.targets, torch.tensor([[0.0, beta * rho], [beta * rho, 0.0]], dtype=torch.float64))
    # Second call on the same gradients: ρ < φ̂ = βρ, so g̃₁ = g₁ + w₁g₂ with cos(g̃₁, g₂) = βρ.
    method(torch.stack([g1, g2]))
    w2, w1 = float(method.weights[0]) - 1.0, float(method.weights[1]) - 1.0
    assert abs(cosine(g1 + w1 * g2, g2) - beta * rho) < 1e-12
    assert abs(cosine(g2 + w2 * g1, g1) - beta * rho) < 1e-12
    assert abs(float(method.targets[0, 1]) - ((1 - beta) * beta * rho + beta * rho)) < 1e-12


# --- GradDrop --------------------------------------------------------------------------------------


@pytest.mark.parametrize("leak", [0.0, 0.4, 1.0])
def test_graddrop_with_agreeing_signs_is_the_sum(leak: float) -> None:
    grads = non_conflicting(1, 3, 50)
    grads[:, ::2] *= -1  # every coordinate has one sign across tasks, both signs occur
    assert_close(run("graddrop", grads, 2, leak=leak), grads.sum(dim=0))


def test_graddrop_full_leak_is_the_sum() -> None:
    grads = strongly_conflicting(2)
    assert_close(run("graddrop", grads, 0, leak=1.0), grads.sum(dim=0))


def test_graddrop_keeps_one_sign_per_coordinate() -> None:
    grads = strongly_conflicting(4)
    direction = run("graddrop", grads, 5)
    positive, negative = grads.clamp(min=0).sum(dim=0), grads.clamp(max=0).sum(dim=0)
    assert bool((torch.isclose(direction, positive) | torch.isclose(direction, negative)).all())


def test_graddrop_keeps_the_positive_sign_with_probability_purity() -> None:
    n = 20000
    grads = torch.stack([torch.full((n,), 3.0), torch.full((n,), -1.0)]).double()  # P = ½(1 + 2/4) = 0.75
    direction = run("graddrop", grads, 1)
    assert abs(float((direction > 0).double().mean()) - 0.75) < 0.02
