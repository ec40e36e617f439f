"""The gradient-geometry playground: every gradient method of :func:`mtl_core.balancing.combine`
applied to a few small task gradients (2-D or 3-D), with the pairwise cosines and one computed
sentence per method on what it did (its opening is the method class's ``playground_lead``).

Plain Python numbers in and out (lists of floats), so that the dashboard never handles tensors.
Equal weights (``ew``, the plain sum of the gradients) is always included as the reference.

The sentences compare each method's update ``d`` with the plain sum on the task the sum serves
worst: ``d·gᵢ`` is, to first order, how fast a step along ``d`` lowers task i's loss, so
``d·gᵢ < 0`` means the step *raises* it (a conflict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BASELINE",
    "MethodOutcome",
    "gradient_methods",
    "combine_all",
    "cosine_matrix",
    "describe",
    "gradient_names",
    "DEFAULT_METHODS",
    "default_methods",
    "common_descent_exists",
]

#: The reference every method is compared with: equal weights, i.e. the plain sum of the gradients.
BASELINE = "ew"
#: The methods the playground shows first (with ``ew``): few enough that their arrows stay apart, and
#: different enough to teach — a projection (PCGrad), the min-norm point of the hull (MGDA) and a ball
#: around the sum (CAGrad). The others are one click away.
DEFAULT_METHODS = ("pcgrad", "mgda", "cagrad")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_TOLERANCE = 1e-9
#: An update shorter than this (relative to the longest gradient) is zero: what a solver leaves.
_ZERO_UPDATE = 1e-5


@dataclass(frozen=True)
class MethodOutcome:
    """One method's update ``direction``, its dot products ``dots[i] = d·gᵢ`` with the task
    gradients, and the ``sentence`` on what it did; ``error`` (and no direction) if it failed."""

    method: str
    direction: list[float] | None
    dots: list[float] | None
    sentence: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "direction": self.direction, "dots": self.dots,
                "sentence": self.sentence, "error": self.error}


def gradient_names(count: int) -> list[str]:
    """``g₁ … gₙ``."""
    return [f"g{str(i + 1).translate(_SUBSCRIPTS)}" for i in range(count)]


def gradient_methods() -> list[dict[str, Any]]:
    """Every gradient method of the registry (name, description, paper, randomised), by name."""
    from mtl_core.balancing import METHODS

    return [
        {"name": name, "description": cls.description, "paper": cls.paper, "randomised": cls.randomised}
        for name, cls in sorted(METHODS.items())
        if cls.kind == "gradient"
    ]


def default_methods() -> list[str]:
    """:data:`DEFAULT_METHODS` that the registry has, in that order."""
    available = {m["name"] for m in gradient_methods()}
    return [name for name in DEFAULT_METHODS if name in available]


def common_descent_exists(gradients: Sequence[Sequence[float]]) -> bool:
    """Whether some direction d lowers every task's loss to first order (d·gᵢ > 0 for every non-zero
    gᵢ): the dual cone of the gradients has an interior. By Gordan's theorem there is none exactly
    when 0 lies in the convex hull of the gradients, e.g. three gradients that surround the origin."""
    from scipy.optimize import linprog

    matrix = _check_gradients(gradients)
    nonzero = matrix[np.linalg.norm(matrix, axis=1) > 0]
    if not len(nonzero):
        return True
    unit = nonzero / np.linalg.norm(nonzero, axis=1, keepdims=True)
    # Maximise t subject to uᵢ·d ≥ t, ‖d‖∞ ≤ 1: t > 0 iff a strict common descent direction exists.
    dimension = unit.shape[1]
    objective = np.zeros(dimension + 1)
    objective[-1] = -1.0
    bounds = [(-1.0, 1.0)] * dimension + [(None, 1.0)]
    solution = linprog(objective, A_ub=np.hstack([-unit, np.ones((len(unit), 1))]), b_ub=np.zeros(len(unit)),
                       bounds=bounds, method="highs")
    return bool(solution.success and -solution.fun > 1e-9)


def _check_gradients(gradients: Any) -> np.ndarray:
    try:
        matrix = np.asarray(gradients, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"`gradients` must be a list of 2-D or 3-D vectors, got {gradients!r}") from None
    if matrix.ndim != 2 or matrix.shape[1] not in (2, 3) or not 1 <= matrix.shape[0] <= 8:
        raise ValueError(f"`gradients` must be 1–8 vectors of 2 or 3 numbers, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("`gradients` must hold finite numbers")
    return matrix


def cosine_matrix(gradients: Sequence[Sequence[float]]) -> list[list[float | None]]:
    """T × T cosines of the gradients (None where a gradient is zero)."""
    matrix = _check_gradients(gradients)
    norms = np.linalg.norm(matrix, axis=1)
    out: list[list[float | None]] = []
    for i in range(len(matrix)):
        row: list[float | None] = []
        for j in range(len(matrix)):
            if norms[i] == 0 or norms[j] == 0:
                row.append(None)
            else:
                row.append(float(np.clip(matrix[i] @ matrix[j] / (norms[i] * norms[j]), -1.0, 1.0)))
        out.append(row)
    return out


def _lead(method: str) -> str:
    """The opening of ``method``'s sentence: its class's ``playground_lead``, else the first
    sentence of its description."""
    from mtl_core.balancing import METHODS

    if method not in METHODS:
        return method
    cls = METHODS.get(method)
    if cls.playground_lead:
        return cls.playground_lead
    first = cls.description.split(". ")[0].rstrip(".")
    return f"{method}: {first[0].lower() + first[1:]}" if first else method


def _number(value: float, tolerance: float) -> str:
    """A dot product as the sentences print it: ``0`` (no sign) within ``tolerance`` of zero,
    ``+0.35`` / ``-0.40``, and ``-4.3e-07`` for a value beyond the tolerance that two decimals would
    show as zero (so a "raises" is never printed next to ``0.00``)."""
    if abs(value) <= tolerance:
        return "0"
    return f"{value:+.2f}" if abs(value) >= 0.005 else f"{value:+.1e}"


def _magnitude(value: float) -> str:
    return f"{value:.2f}" if value >= 0.005 or value == 0 else f"{value:.1e}"


def _tasks(indices: Sequence[int]) -> str:
    labels = [str(i + 1) for i in indices]
    if len(labels) == 1:
        return f"the loss of task {labels[0]}"
    return f"the losses of tasks {', '.join(labels[:-1])} and {labels[-1]}"


@dataclass(frozen=True)
class _Effects:
    """What a step along one direction does to each task's loss, to first order: the tasks it
    raises (d·gᵢ < −tol), leaves unchanged (|d·gᵢ| ≤ tol) and lowers, and the printed values."""

    raised: list[int]
    flat: list[int]
    lowered: list[int]
    values: list[str]
    names: list[str]

    @classmethod
    def of(cls, dots: np.ndarray, tolerance: float, names: Sequence[str]) -> _Effects:
        raised = [i for i, dot in enumerate(dots) if dot < -tolerance]
        flat = [i for i, dot in enumerate(dots) if abs(dot) <= tolerance]
        lowered = [i for i, dot in enumerate(dots) if dot > tolerance]
        return cls(raised, flat, lowered, [_number(float(dot), tolerance) for dot in dots], list(names))

    def listed(self, indices: Sequence[int]) -> str:
        return ", ".join(f"d·{self.names[i]} = {self.values[i]}" for i in indices)

    def unchanged(self) -> str:
        """``" and leaves the loss of task 2 unchanged to first order (d·g₂ = 0)"`` (or nothing)."""
        if not self.flat:
            return ""
        return f" and leaves {_tasks(self.flat)} unchanged to first order ({self.listed(self.flat)})"

    def effect(self) -> str:
        """What the step does, in one clause: raises …, lowers every loss, leaves … unchanged."""
        if self.raised:
            return f"raises {_tasks(self.raised)} ({self.listed(self.raised)}){self.unchanged()}"
        if not self.lowered:
            return "leaves every loss unchanged to first order (every d·gᵢ = 0)"
        if self.flat:
            return f"raises no loss{self.unchanged()}"
        return "lowers every loss"


def _scale(matrix: np.ndarray) -> float:
    return max(float(np.linalg.norm(matrix, axis=1).max()), 1e-12)


def _tolerance(matrix: np.ndarray, direction: np.ndarray) -> float:
    """How close to zero a d·gᵢ counts as zero: ~1e-9 relative to the gradients' and d's sizes."""
    scale = _scale(matrix)
    return _TOLERANCE * scale * max(scale, float(np.linalg.norm(direction)))


def _describe_sum(lead: str, effects: _Effects, dots: np.ndarray) -> str:
    if effects.raised:
        return f"{lead}: {effects.listed(effects.raised)} < 0, so this step raises {_tasks(effects.raised)}" \
               f"{effects.unchanged()}."
    if effects.flat:
        return f"{lead}: every d·gᵢ ≥ 0, so this step raises no loss{effects.unchanged()}."
    smallest = int(np.argmin(dots))
    return (f"{lead}: every d·gᵢ > 0, so this step lowers every loss to first order (smallest: "
            f"{effects.listed([smallest])}).")


def describe(method: str, gradients: Sequence[Sequence[float]], direction: Sequence[float],
             names: Sequence[str] | None = None) -> str:
    """One sentence on what ``method``'s update ``direction`` did with ``gradients``, with the
    numbers: d·gᵢ on the task the plain sum serves worst, before (sum) and after (this update).
    Task i is the one of gradient ``names[i]`` (default g₁, g₂ …). A d·gᵢ within ~1e-9 (relative)
    of zero is ``0``: it neither raises nor lowers that loss (to first order)."""
    matrix = _check_gradients(gradients)
    names = list(names) if names is not None else gradient_names(len(matrix))
    d = np.asarray(direction, dtype=float)
    total = matrix.sum(axis=0)
    norms = np.linalg.norm(matrix, axis=1)
    scale = _scale(matrix)
    dots, sum_dots = matrix @ d, matrix @ total
    effects = _Effects.of(dots, _tolerance(matrix, d), names)
    lead = _lead(method)
    # Solvers (Nash-MTL) leave residues around 1e-6 where the exact update is zero.
    if float(np.linalg.norm(d)) <= _ZERO_UPDATE * scale:
        if method == BASELINE:
            return f"{lead}: they cancel out (d = 0), so this step changes nothing."
        return f"{lead}: the update is zero — with these gradients it takes no step at all."
    if method == BASELINE:
        return _describe_sum(lead, effects, dots)
    length = f"‖d‖ = {_magnitude(float(np.linalg.norm(d)))} (sum: {_magnitude(float(np.linalg.norm(total)))})"
    if float(np.linalg.norm(total)) <= _ZERO_UPDATE * scale:
        return f"{lead}; where the plain sum cancels out (d = 0), this update {effects.effect()}; {length}."
    sum_effects = _Effects.of(sum_dots, _tolerance(matrix, total), names)
    # The task the plain sum serves worst, per unit of its own gradient.
    worst = int(np.argmin(np.where(norms > 0, sum_dots / np.where(norms > 0, norms, 1.0), np.inf)))
    if worst in sum_effects.raised:
        change = f"d·{names[worst]} went from {sum_effects.values[worst]} (plain sum) to {effects.values[worst]}"
        return f"{lead}: {change}; {_after_fix(effects, sum_effects)}; {length}."
    if effects.raised:
        return f"{lead}; the plain sum raises no loss, but this update {effects.effect()}; {length}."
    if effects.flat:
        return f"{lead}; like the plain sum it raises no loss{effects.unchanged()}; {length}."
    smallest = int(np.argmin(dots))
    return (f"{lead}; like the plain sum it lowers every loss (smallest d·gᵢ: {effects.listed([smallest])}); "
            f"{length}.")


def _after_fix(effects: _Effects, sum_effects: _Effects) -> str:
    """The tail after "d·gᵢ went from … to …" where the plain sum raised task i's loss."""
    if not effects.raised:
        return f"no task's loss goes up{effects.unchanged()}"
    still = [i for i in effects.raised if i in sum_effects.raised]
    newly = [i for i in effects.raised if i not in sum_effects.raised]
    parts = []
    if still:
        parts.append(f"it still raises {_tasks(still)} ({effects.listed(still)})")
    if newly:
        parts.append(f"{'and now also' if still else 'it now'} raises {_tasks(newly)} ({effects.listed(newly)})")
    return " ".join(parts) + effects.unchanged()


def combine_all(
    gradients: Sequence[Sequence[float]],
    methods: Sequence[str] | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> dict[str, MethodOutcome]:
    """The plain sum (``ew``) and every gradient method in ``methods`` (default: all of them)
    applied to ``gradients`` (T vectors of 2 or 3 numbers), in that order. Randomised methods draw
    from a generator seeded with ``seed``. A method that fails gets an ``error`` instead of raising."""
    import torch

    from mtl_core.balancing import METHODS, combine

    matrix = _check_gradients(gradients)
    names = list(names) if names is not None else gradient_names(len(matrix))
    available = [m["name"] for m in gradient_methods()]
    chosen = available if methods is None else [m for m in methods if m != BASELINE]
    for method in chosen:
        if method not in available:
            raise ValueError(f"`methods` must be gradient methods ({', '.join(available)}), got {method!r}")
    tensor = torch.tensor(matrix, dtype=torch.float64)
    out: dict[str, MethodOutcome] = {}
    for method in [BASELINE, *chosen]:
        try:
            if method == BASELINE:
                direction = tensor.sum(dim=0)
            else:
                generator = torch.Generator().manual_seed(int(seed)) if METHODS.get(method).randomised else None
                direction = combine(method, tensor, generator=generator)
            values = direction.detach().cpu().double().numpy()
            if not np.isfinite(values).all():
                raise ValueError("the update has NaN or infinite values")
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out[method] = MethodOutcome(method, None, None, f"{method} failed on these gradients: {message}", message)
            continue
        dots = [float(v) for v in matrix @ values]
        out[method] = MethodOutcome(method, [float(v) for v in values], dots,
                                    describe(method, matrix, values, names))
    return out

