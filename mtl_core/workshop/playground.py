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
]

#: The reference every method is compared with: equal weights, i.e. the plain sum of the gradients.
BASELINE = "ew"
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_TOLERANCE = 1e-9


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


def _signed(value: float) -> str:
    """``+0.35`` / ``-0.40``, and ``+0.00`` rather than ``-0.00`` for values that round to zero."""
    return f"{0.0 if abs(value) < 0.005 else value:+.2f}"


def _tasks(indices: Sequence[int]) -> str:
    labels = [str(i + 1) for i in indices]
    if len(labels) == 1:
        return f"the loss of task {labels[0]}"
    return f"the losses of tasks {', '.join(labels[:-1])} and {labels[-1]}"


def describe(method: str, gradients: Sequence[Sequence[float]], direction: Sequence[float],
             names: Sequence[str] | None = None) -> str:
    """One sentence on what ``method``'s update ``direction`` did with ``gradients``, with the
    numbers: d·gᵢ on the task the plain sum serves worst, before (sum) and after (this update).
    Task i is the one of gradient ``names[i]`` (default g₁, g₂ …)."""
    matrix = _check_gradients(gradients)
    names = list(names) if names is not None else gradient_names(len(matrix))
    d = np.asarray(direction, dtype=float)
    total = matrix.sum(axis=0)
    norms = np.linalg.norm(matrix, axis=1)
    scale = max(float(norms.max()), 1e-12)
    tolerance = _TOLERANCE * scale * scale
    dots = matrix @ d
    sum_dots = matrix @ total
    # The task the plain sum serves worst, per unit of its own gradient.
    relative = np.where(norms > 0, sum_dots / np.where(norms > 0, norms, 1.0), np.inf)
    worst = int(np.argmin(relative))
    harmed = [i for i in range(len(matrix)) if norms[i] > 0 and dots[i] < -tolerance]
    lead = _lead(method)
    if float(np.linalg.norm(d)) <= 1e-6 * scale:
        if method == BASELINE:
            return f"{lead}: they cancel out (d = 0), so this step changes nothing."
        return f"{lead}: the update is zero — with these gradients it takes no step at all."
    values = ", ".join(f"d·{names[i]} = {_signed(dots[i])}" for i in harmed)
    if method == BASELINE:
        if harmed:
            return f"{lead}: {values} < 0, so this step raises {_tasks(harmed)}."
        return (f"{lead}: every d·gᵢ ≥ 0, so this step lowers every loss to first order (smallest: "
                f"d·{names[worst]} = {_signed(dots[worst])}).")
    length = f"‖d‖ = {np.linalg.norm(d):.2f} (sum: {np.linalg.norm(total):.2f})"
    if float(np.linalg.norm(total)) <= 1e-6 * scale:
        effect = f"raises {_tasks(harmed)} ({values})" if harmed else "lowers every loss"
        return f"{lead}; where the plain sum cancels out (d = 0), this update {effect}; {length}."
    if sum_dots[worst] < -tolerance:
        change = f"d·{names[worst]} went from {_signed(sum_dots[worst])} (plain sum) to {_signed(dots[worst])}"
        tail = f"; it still raises {_tasks(harmed)} ({values})" if harmed else "; no task's loss goes up"
        return f"{lead}: {change}{tail}; {length}."
    if harmed:
        return f"{lead}; the plain sum lowers every loss, but this update raises {_tasks(harmed)} ({values}); {length}."
    smallest = int(np.argmin(np.where(norms > 0, dots, np.inf)))
    return (f"{lead}; like the plain sum it lowers every loss (smallest d·gᵢ: d·{names[smallest]} = "
            f"{_signed(dots[smallest])}); {length}.")


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

