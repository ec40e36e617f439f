"""Building blocks shared by the task suites.

* :class:`CorrelatedRegression`: the MMoE synthetic generator (Ma et al., "Modeling Task
  Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018, §3.2),
  generalised from two tasks to any task-correlation matrix. ``planted`` and ``mmoe`` both use it.
* :func:`label_correlation`: the measured Pearson correlation of scalar regression labels.
* Split helpers: stratified index splits, standardisation with training statistics, task specs.

Everything is computed in float64 on the CPU from a :class:`torch.Generator` seeded by the suite's
``build(seed)``, and handed out as float32 / int64, so a seed fixes every tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from mtl_core.suites.base import Split, SuiteData, TaskSpec

__all__ = [
    "CorrelatedRegression",
    "classification_task",
    "regression_task",
    "make_generator",
    "correlation_factor",
    "is_positive_definite",
    "orthonormal_rows",
    "label_correlation",
    "masked_standardise",
    "stratified_split",
    "make_split",
    "build_correlated_regression",
    "build_planted_regression",
    "PlantedFunctions",
    "symmetric_sqrt",
    "EVAL_ROWS",
    "load_digit_images",
]

_DTYPE = torch.float64


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (the one source of randomness of a ``build``)."""
    return torch.Generator().manual_seed(int(seed))


def classification_task(name: str, n_classes: int, description: str) -> TaskSpec:
    """A classification task scored by accuracy (higher is better)."""
    return TaskSpec(name, "classification", n_classes, "accuracy", True, description)


def regression_task(name: str, n_outputs: int, description: str) -> TaskSpec:
    """A regression task scored by mean squared error (lower is better)."""
    return TaskSpec(name, "regression", n_outputs, "mse", False, description)


# --- correlated regression (MMoE) -------------------------------------------------------------------


def is_positive_definite(matrix: torch.Tensor) -> bool:
    """Whether the symmetric ``matrix`` is (numerically) positive definite."""
    return bool(torch.linalg.eigvalsh(matrix.to(_DTYPE)).min() > 1e-10)


def correlation_factor(correlation: torch.Tensor) -> torch.Tensor:
    """Lower-triangular ``L`` with ``L Lᵀ = correlation``, also for positive *semi*-definite input.

    A plain Cholesky factorisation fails on a singular matrix such as ``[[1, 1], [1, 1]]`` (two
    identical tasks, MMoE's ``p = 1``); here a zero pivot gives a zero column instead, which is
    exactly MMoE's ``w₂ = c(p u₁ + √(1−p²) u₂)`` for two tasks.
    """
    matrix = correlation.to(_DTYPE)
    size = matrix.shape[0]
    factor = torch.zeros_like(matrix)
    tolerance = 1e-10
    for j in range(size):
        pivot = matrix[j, j] - (factor[j, :j] ** 2).sum()
        if pivot < -1e-8:
            raise ValueError("`correlation` must be positive semi-definite")
        diagonal = math.sqrt(max(float(pivot), 0.0))
        factor[j, j] = diagonal
        for i in range(j + 1, size):
            residual = matrix[i, j] - (factor[i, :j] * factor[j, :j]).sum()
            factor[i, j] = residual / diagonal if diagonal > tolerance else 0.0
    return factor


def orthonormal_rows(n_rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``n_rows`` random orthonormal vectors of ℝ^dim, as the rows of an (n_rows × dim) matrix."""
    if n_rows > dim:
        raise ValueError(f"`dim` must be at least the number of vectors ({n_rows}), got {dim}")
    gaussian = torch.randn(dim, n_rows, generator=generator, dtype=_DTYPE)
    q, r = torch.linalg.qr(gaussian)
    # Fix the signs so that the basis is a deterministic function of the draw.
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    q = q * signs
    return q.T.contiguous()


@dataclass(frozen=True)
class CorrelatedRegression:
    """MMoE's correlated regression tasks (Ma et al. 2018, §3.2), for any number of tasks.

    ``weights`` (T × D) has rows ``w = c · L · U`` with ``U`` orthonormal rows and ``L`` a factor
    of the target correlation matrix ``C`` (``L Lᵀ = C``), so ``cos(wᵢ, wⱼ) = Cᵢⱼ``. Each label is
    ``yₖ = wₖᵀx + Σᵢ sin(αᵢ wₖᵀx + βᵢ) + ε`` with ``x ~ N(0, I)``, ``ε ~ N(0, noise²)`` and
    ``αᵢ, βᵢ ~ N(0, 1)`` (i = 1..m) drawn once per dataset, shared by every task.
    The sines make the *label* correlation lower than ``Cᵢⱼ`` by an amount that depends on the
    draw of α, β; :func:`label_correlation` measures it.
    """

    weights: torch.Tensor
    alphas: torch.Tensor
    betas: torch.Tensor
    noise: float

    @classmethod
    def draw(
        cls,
        correlation: torch.Tensor,
        dim: int,
        noise: float,
        generator: torch.Generator,
        scale: float = 1.0,
        n_sines: int = 10,
    ) -> CorrelatedRegression:
        """Draw the weights and the sine parameters for the T × T ``correlation`` matrix."""
        basis = orthonormal_rows(correlation.shape[0], dim, generator)
        weights = scale * correlation_factor(correlation) @ basis
        alphas = torch.randn(n_sines, generator=generator, dtype=_DTYPE)
        betas = torch.randn(n_sines, generator=generator, dtype=_DTYPE)
        return cls(weights=weights, alphas=alphas, betas=betas, noise=float(noise))

    @property
    def n_tasks(self) -> int:
        return int(self.weights.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rows: inputs (n × D) and labels (n × T), both float64."""
        x = torch.randn(n, self.weights.shape[1], generator=generator, dtype=_DTYPE)
        projections = x @ self.weights.T  # n × T
        sines = torch.sin(projections.unsqueeze(-1) * self.alphas + self.betas).sum(-1)
        noise = self.noise * torch.randn(n, self.n_tasks, generator=generator, dtype=_DTYPE)
        return x, projections + sines + noise


def label_correlation(split: Split, tasks: Sequence[str] | None = None) -> torch.Tensor:
    """Pearson correlation (T × T, float64) between the scalar labels of ``tasks`` in ``split``.

    Each pair uses the rows labelled for both tasks (pairwise-complete), so a data-scarce task is
    measured on its own labelled rows only. A pair with fewer than two common rows, or a constant
    label, gives NaN.
    """
    names = list(split.y) if tasks is None else list(tasks)
    columns = []
    for name in names:
        values = split.y[name]
        if values.dim() == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.dim() != 1 or not values.is_floating_point():
            raise ValueError(f"`{name}` must be a scalar regression target, got shape {tuple(split.y[name].shape)}")
        columns.append(values.to(_DTYPE))
    out = torch.eye(len(names), dtype=_DTYPE)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = split.masks[names[i]] & split.masks[names[j]]
            a, b = columns[i][both], columns[j][both]
            if a.numel() < 2:
                value = torch.tensor(float("nan"), dtype=_DTYPE)
            else:
                a, b = a - a.mean(), b - b.mean()
                denominator = a.norm() * b.norm()
                value = (a @ b) / denominator if denominator > 0 else torch.tensor(float("nan"), dtype=_DTYPE)
            out[i, j] = out[j, i] = value
    return out


# --- scikit-learn digits --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    return bunch.data, bunch.target


def load_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8×8 handwritten digits: pixels (N × 64, float64, scaled to [0, 1]) and
    digit labels (N,, int64). A fresh copy on every call."""
    pixels, labels = _digits_arrays()
    return torch.tensor(pixels, dtype=_DTYPE) / 16.0, torch.tensor(labels, dtype=torch.int64)


# --- splits -----------------------------------------------------------------------------------------


def masked_standardise(
    train: torch.Tensor, train_mask: torch.Tensor | None, *others: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Centre and scale the columns of ``train`` and ``others`` with the statistics of the
    training rows where ``train_mask`` (N,) is True (all rows when None).

    Returns the standardised train tensor, the standardised others, the means and the stds.
    A constant column keeps a scale of 1.
    """
    rows = train if train_mask is None else train[train_mask]
    mean = rows.mean(0)
    std = rows.std(0) if rows.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, [(other - mean) / std for other in others], mean, std


def stratified_split(
    labels: torch.Tensor,
    generator: torch.Generator,
    fractions: tuple[float, float] = (0.6, 0.2),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint train / val / test row indices, stratified by ``labels``.

    Inside each class, rows are shuffled and the first ``round(fractions[0]·n)`` go to train, the
    next ``round(fractions[1]·n)`` to validation and the rest to test. Each split is then shuffled.
    """
    parts: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
    for value in torch.unique(labels):
        members = torch.nonzero(labels == value).flatten()
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_train = round(fractions[0] * members.numel())
        n_val = round(fractions[1] * members.numel())
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    out = []
    for part in parts:
        indices = torch.cat(part)
        out.append(indices[torch.randperm(indices.numel(), generator=generator)])
    return out[0], out[1], out[2]


def make_split(
    x: torch.Tensor, y: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None
) -> Split:
    """A :class:`Split` with float32 inputs, float32 regression / int64 class targets, and masks
    (all True where not given)."""
    n = int(x.shape[0])
    targets = {name: (value.float() if value.is_floating_point() else value.long()) for name, value in y.items()}
    given = masks or {}
    full = {name: given.get(name, torch.ones(n, dtype=torch.bool)) for name in y}
    return Split(x=x.float().contiguous(), y=targets, masks=full)


EVAL_ROWS = 500
"""Validation and test rows of the synthetic suites (each; every task labelled)."""


def build_correlated_regression(
    tasks: list[TaskSpec],
    correlation: torch.Tensor,
    n_train: int,
    dim: int,
    noise: float,
    seed: int,
    labelled_train: dict[str, int] | None = None,
) -> SuiteData:
    """A :class:`SuiteData` of MMoE correlated regression tasks (one per row of ``correlation``).

    The test and validation rows (:data:`EVAL_ROWS` each) are drawn before the ``n_train`` training
    rows, so they do not change with ``n_train``. ``labelled_train`` maps a task to the number of
    leading training rows that keep a label (a data-scarce task). Targets are standardised with the
    statistics of their labelled training rows. ``info`` holds the target ``correlation`` and the
    measured ``label_correlation`` of the training labels (nested lists).
    """
    generator = make_generator(seed)
    source = CorrelatedRegression.draw(correlation, dim, noise, generator)
    x_test, y_test = source.sample(EVAL_ROWS, generator)
    x_val, y_val = source.sample(EVAL_ROWS, generator)
    x_train, y_train = source.sample(n_train, generator)

    names = [t.name for t in tasks]
    train_masks = {name: torch.ones(n_train, dtype=torch.bool) for name in names}
    for name, count in (labelled_train or {}).items():
        train_masks[name] = torch.arange(n_train) < count
    data = _standardised_regression(tasks, (x_train, y_train), (x_val, y_val), (x_test, y_test), train_masks)
    data.info = {
        "correlation": correlation.to(_DTYPE).tolist(),
        "label_correlation": label_correlation(data.train, names).tolist(),
    }
    return data


def _standardised_regression(
    tasks: list[TaskSpec],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    train_masks: dict[str, torch.Tensor],
) -> SuiteData:
    """A :class:`SuiteData` from inputs and label columns (one per task, in order) of the three
    splits: each task's targets standardised with the statistics of its labelled training rows,
    unlabelled training rows holding 0 (so that nothing downstream can learn from a hidden label)."""
    names = [t.name for t in tasks]
    targets: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for k, name in enumerate(names):
        column = slice(k, k + 1)
        y_train, (y_val, y_test), _, _ = masked_standardise(
            train[1][:, column], train_masks[name], val[1][:, column], test[1][:, column]
        )
        targets[name] = (y_train.masked_fill(~train_masks[name].unsqueeze(1), 0.0), y_val, y_test)
    return SuiteData(
        tasks=list(tasks),
        train=make_split(train[0], {n: targets[n][0] for n in names}, train_masks),
        val=make_split(val[0], {n: targets[n][1] for n in names}),
        test=make_split(test[0], {n: targets[n][2] for n in names}),
    )


# --- planted groups of nonlinear functions ------------------------------------------------------------


def symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root ``S`` (``S S = matrix``) of a positive semi-definite matrix (float64).

    Unlike a Cholesky factor it treats every row alike: task k's mixing row does not depend on the
    order of the tasks."""
    values, vectors = torch.linalg.eigh(matrix.to(_DTYPE))
    return (vectors * values.clamp(min=0.0).sqrt()) @ vectors.T


@dataclass(frozen=True)
class PlantedFunctions:
    """The latent functions of the ``planted`` suite (see :class:`mtl_core.suites.planted.PlantedSuite`).

    Task k owns a latent function ``φₖ(x) = (Σₘ aₖₘ sin(vₖₘᵀ Qₖᵀ x + bₖₘ) − μₖ) / sₖ`` (m = 1..M
    sine ridges) of the inputs' projection on its group's subspace (the columns ``Qₖ`` of a random
    rotation, ``r = ⌊D / G⌋`` of them per group, disjoint between groups); ``μₖ, sₖ`` make ``φₖ``
    zero-mean and unit-variance. The labels mix them: ``y = S φ(x) + ε`` with ``S`` the symmetric
    square root of the planted correlation ``C``, so ``corr(yᵢ, yⱼ) = Cᵢⱼ / (1 + σ²)``.
    """

    projections: torch.Tensor  # T × M × D: rows vₖₘᵀ Qₖᵀ
    amplitudes: torch.Tensor  # T × M
    phases: torch.Tensor  # T × M
    mixing: torch.Tensor  # T × T
    centre: torch.Tensor  # T
    scale: torch.Tensor  # T
    noise: float

    @classmethod
    def draw(
        cls,
        correlation: torch.Tensor,
        groups: Sequence[int],
        dim: int,
        ridges: int,
        noise: float,
        generator: torch.Generator,
    ) -> PlantedFunctions:
        n_tasks = correlation.shape[0]
        n_groups = max(groups) + 1
        width = dim // n_groups
        rotation = orthonormal_rows(dim, dim, generator).T  # D × D, orthonormal columns
        local = torch.randn(n_tasks, ridges, width, generator=generator, dtype=_DTYPE) / math.sqrt(width)
        projections = torch.stack([
            local[k] @ rotation[:, groups[k] * width : (groups[k] + 1) * width].T for k in range(n_tasks)
        ])
        amplitudes = torch.randn(n_tasks, ridges, generator=generator, dtype=_DTYPE)
        phases = 2 * math.pi * torch.rand(n_tasks, ridges, generator=generator, dtype=_DTYPE)
        raw = cls(projections, amplitudes, phases, symmetric_sqrt(correlation),
                  torch.zeros(n_tasks, dtype=_DTYPE), torch.ones(n_tasks, dtype=_DTYPE), float(noise))
        # Centre and scale each φₖ with a large sample of the same input distribution.
        reference = raw.latent(torch.randn(8192, dim, generator=generator, dtype=_DTYPE))
        return cls(projections, amplitudes, phases, raw.mixing, reference.mean(0), reference.std(0).clamp(min=1e-12),
                   float(noise))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): n × T."""
        waves = torch.sin(torch.einsum("nd,tmd->ntm", x, self.projections) + self.phases)
        return ((waves * self.amplitudes).sum(-1) - self.centre) / self.scale

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rows: inputs (n × D, standard normal) and labels (n × T), both float64."""
        x = torch.randn(n, self.projections.shape[2], generator=generator, dtype=_DTYPE)
        noise = self.noise * torch.randn(n, self.mixing.shape[0], generator=generator, dtype=_DTYPE)
        return x, self.latent(x) @ self.mixing.T + noise


def build_planted_regression(
    tasks: list[TaskSpec],
    correlation: torch.Tensor,
    groups: Sequence[int],
    rows_per_task: Sequence[int],
    pool: int,
    dim: int,
    ridges: int,
    noise: float,
    seed: int,
) -> SuiteData:
    """The ``planted`` suite's data: ``pool`` training rows, task k labelled on
    ``rows_per_task[k]`` of them drawn at random (independently per task, so two tasks share about
    ``nᵢ nⱼ / pool`` rows; rows that no task labels are dropped); validation and test rows
    (:data:`EVAL_ROWS` each, drawn first) are labelled for every task. Targets are standardised with
    their labelled training rows' statistics."""
    generator = make_generator(seed)
    source = PlantedFunctions.draw(correlation, groups, dim, ridges, noise, generator)
    x_test, y_test = source.sample(EVAL_ROWS, generator)
    x_val, y_val = source.sample(EVAL_ROWS, generator)
    n_tasks = len(tasks)
    x_train, y_train = source.sample(pool, generator)  # rows no task labels are dropped below
    names = [t.name for t in tasks]
    masks: dict[str, torch.Tensor] = {}
    for k, name in enumerate(names):
        masks[name] = torch.zeros(pool, dtype=torch.bool)
        masks[name][torch.randperm(pool, generator=generator)[: rows_per_task[k]]] = True
    # A row that no task labels teaches nothing: drop it.
    used = torch.stack(list(masks.values())).any(0)
    x_train, y_train = x_train[used], y_train[used]
    masks = {name: mask[used] for name, mask in masks.items()}
    data = _standardised_regression(tasks, (x_train, y_train), (x_val, y_val), (x_test, y_test), masks)
    y_val_std = torch.cat([data.val.y[n] for n in names], dim=1)
    data.info = {
        "correlation": correlation.to(_DTYPE).tolist(),
        # Every task is labelled on every validation row: measure the label correlation there.
        "label_correlation": torch.corrcoef(y_val_std.T.to(_DTYPE)).reshape(n_tasks, n_tasks).tolist(),
    }
    return data
