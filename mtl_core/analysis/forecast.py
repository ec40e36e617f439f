"""An early forecast of transfer: how soon the cheap signals of one run rank the task pairs as the
expensive pairwise study does. Pure numpy: no training, no torch.

Standley, T. et al. (2020). "Which Tasks Should Be Learned Together in Multi-task Learning?". ICML
2020 — observed that transfer measured early in training predicts the final ranking.
Fifty, C. et al. (2021). "Efficiently Identifying Task Groupings for Multi-Task Learning". NeurIPS
2021 — TAG inter-task affinity, measured inside one all-tasks run.

Conventions:

* **a pair's score** is the mean of its two directed cells, ``(M[i][j] + M[j][i]) / 2``: the order in
  which :mod:`mtl_core.analysis.grouping` ranks a group of two (its score is the sum of the two
  directions), and the same whatever a matrix's direction convention (transfer is [target][helper],
  TAG affinity [source][target], the cosine is symmetric). A pair with a missing (None / NaN) cell in
  either direction is left out of that ranking;
* **ρ** is Spearman's rank correlation (ties share their mean rank) over the pairs both rankings
  score (:func:`mtl_core.analysis.grouping.rank_agreement`); None with fewer than 3 such pairs or
  when either ranking is constant;
* **the signal at step s** is what each run had accumulated by s (its latest snapshot at or before
  s; a run that stopped earlier counts with its last one), averaged over the runs (NaN cells ignored),
  the way the study averages its seeds; a signal no run has measured by s has ρ = None there;
* **reached** is the first step of the grid at which ρ ≥ ``threshold`` (None when never);
* **the planted groups' ceiling** (a world with planted groups, :func:`groups_ceiling`): the ρ of the
  groups themselves, a pair scoring 1 inside a group and 0 across. A signal that finds the groups but
  ranks the pairs inside (and across) them no better than chance cannot do much better, since the
  measured transfer orders those pairs by noise; on the validity benchmark's plantings it is 0.61–0.86,
  often below the threshold of 0.8 (benchmarks/VALIDITY.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtl_core.analysis.grouping import rank_agreement

__all__ = [
    "FORECAST_THRESHOLD",
    "FORECAST_MAX_POINTS",
    "FORECAST_SIGNALS",
    "pair_scores",
    "pair_spearman",
    "running_mean",
    "step_grid",
    "transfer_forecast",
    "forecast_sentence",
    "groups_ceiling",
]

#: The ρ at which a cheap signal is said to forecast the transfer ranking.
FORECAST_THRESHOLD = 0.8
#: At most this many steps on a forecast's grid.
FORECAST_MAX_POINTS = 50
#: The cheap signals a forecast may hold, in the order they are shown, with their names in words.
FORECAST_SIGNALS = {"affinity": "TAG affinity", "cosine": "mean gradient cosine"}

Matrix = Any  # a T × T nested list or array; None / NaN for a missing cell
Snapshots = Sequence[tuple[int, Matrix]]


def _square(matrix: Matrix, name: str) -> np.ndarray:
    array = np.array([[math.nan if v is None else v for v in row] for row in matrix], dtype=float) \
        if not isinstance(matrix, np.ndarray) else matrix.astype(float)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"`{name}` must be a square T × T matrix, got shape {array.shape}")
    return array


def pair_scores(matrix: Matrix, name: str = "matrix") -> dict[tuple[int, int], float]:
    """Each unordered pair ``(i, j)``, ``i < j``, scored by the mean of its two directed cells; pairs
    with a missing cell in either direction are left out."""
    array = _square(matrix, name)
    scores = {}
    for i in range(array.shape[0]):
        for j in range(i + 1, array.shape[0]):
            if math.isfinite(array[i, j]) and math.isfinite(array[j, i]):
                scores[(i, j)] = float(array[i, j] + array[j, i]) / 2.0
    return scores


def pair_spearman(signal: Matrix, transfer: Matrix) -> float | None:
    """Spearman's ρ between the pair rankings of ``signal`` and ``transfer`` (same tasks, same
    order); None with fewer than 3 pairs scored by both or a constant ranking."""
    if _square(signal, "signal").shape != _square(transfer, "transfer").shape:
        raise ValueError("`signal` and `transfer` must have the same tasks (the same shape)")
    return rank_agreement(pair_scores(signal, "signal"), pair_scores(transfer, "transfer")).spearman


def running_mean(records: Snapshots) -> list[tuple[int, np.ndarray]]:
    """One run's probe records ``(step, matrix)`` (in step order) accumulated: after each step, the
    mean of every record so far, cell by cell over its finite values (NaN where none is finite yet).
    Records at the same step give one snapshot, after all of them."""
    out: list[tuple[int, np.ndarray]] = []
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    for step, matrix in records:
        array = _square(matrix, "records")
        finite = np.isfinite(array)
        if sums is None or counts is None:
            sums, counts = np.zeros_like(array), np.zeros_like(array)
        if array.shape != sums.shape:
            raise ValueError(f"`records` must all have one shape {sums.shape}, got {array.shape} at step {step}")
        sums += np.where(finite, array, 0.0)
        counts += finite
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
        if out and out[-1][0] == int(step):
            out[-1] = (int(step), mean)
        else:
            out.append((int(step), mean))
    return out


def step_grid(steps: Sequence[int], max_points: int = FORECAST_MAX_POINTS) -> list[int]:
    """The distinct ``steps`` in order, thinned evenly to at most ``max_points`` (the first and the
    last kept)."""
    distinct = sorted({int(step) for step in steps})
    if len(distinct) <= max_points:
        return distinct
    picks = np.unique(np.round(np.linspace(0, len(distinct) - 1, max_points)).astype(int))
    return [distinct[i] for i in picks]


def _at(snapshots: Snapshots, step: int) -> Matrix | None:
    """The latest snapshot at or before ``step`` (None before the first)."""
    latest = None
    for at, matrix in snapshots:
        if at > step:
            break
        latest = matrix
    return latest


def _mean_over_runs(matrices: Sequence[Matrix]) -> np.ndarray:
    stack = np.stack([_square(m, "snapshot") for m in matrices])
    finite = np.isfinite(stack)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, stack, 0.0).sum(axis=0) / np.maximum(counts, 1)
    return np.where(counts > 0, mean, math.nan)


def transfer_forecast(
    signals: Mapping[str, Sequence[Snapshots]],
    transfer: Matrix,
    total_steps: int,
    *,
    threshold: float = FORECAST_THRESHOLD,
    max_points: int = FORECAST_MAX_POINTS,
) -> dict[str, Any]:
    """How early each cheap signal ranks the task pairs as the final pairwise ``transfer`` does.

    ``signals[name]`` holds, per run, that run's snapshots ``(step, matrix accumulated up to step)``
    in step order (what the study would have computed from the run had it stopped there); a signal
    without any snapshot is left out. ``transfer`` is the study's final mean transfer matrix,
    ``total_steps`` the length of the runs' training (for the fraction of training).

    Returns ``{"steps", "signals": {name: [ρ or None per step]}, "reached": {name: step or None},
    "threshold", "total_steps"}``; the grid is every snapshot step of every signal, thinned to
    ``max_points`` (:func:`step_grid`)."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 0:
        raise ValueError(f"`total_steps` must be a non-negative integer, got {total_steps!r}")
    if not isinstance(threshold, (int, float)) or not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"`threshold` must be a number in [-1, 1], got {threshold!r}")
    final = _square(transfer, "transfer")
    present = {name: [list(run) for run in runs if len(run)] for name, runs in signals.items()}
    present = {name: runs for name, runs in present.items() if runs}
    steps = step_grid([step for runs in present.values() for run in runs for step, _ in run], max_points)
    curves: dict[str, list[float | None]] = {}
    reached: dict[str, int | None] = {}
    for name, runs in present.items():
        curve: list[float | None] = []
        for step in steps:
            known = [matrix for matrix in (_at(run, step) for run in runs) if matrix is not None]
            curve.append(pair_spearman(_mean_over_runs(known), final) if known else None)
        curves[name] = curve
        reached[name] = next((step for step, rho in zip(steps, curve, strict=True)
                              if rho is not None and rho >= threshold), None)
    return {"steps": steps, "signals": curves, "reached": reached, "threshold": float(threshold),
            "total_steps": int(total_steps)}


def groups_ceiling(groups: Sequence[Sequence[str]], tasks: Sequence[str], transfer: Matrix) -> float | None:
    """Spearman's ρ between the pair ranking of ``groups`` (1 for two tasks of one group, 0 otherwise)
    and that of the final ``transfer`` over ``tasks`` (its order); None as for :func:`pair_spearman`."""
    group_of = {task: index for index, group in enumerate(groups) for task in group}
    missing = [task for task in tasks if task not in group_of]
    if missing:
        raise ValueError(f"`groups` must place every task, got none for {', '.join(map(str, missing))}")
    same = [[1.0 if group_of[a] == group_of[b] else 0.0 for b in tasks] for a in tasks]
    return pair_spearman(same, transfer)


def forecast_sentence(forecast: Mapping[str, Any]) -> str:
    """A forecast (:func:`transfer_forecast`) in one sentence: for each signal, the first step (and
    share of training) at which it ranks the pairs as the final transfer does with ρ ≥ threshold, or
    that it never does, and its ρ at the last step that has one."""
    steps = list(forecast.get("steps") or [])
    signals = forecast.get("signals") or {}
    if not steps or not signals:
        return "No cheap signal was measured, so there is nothing to forecast with."
    threshold = float(forecast.get("threshold", FORECAST_THRESHOLD))
    total = int(forecast.get("total_steps") or 0)
    parts = []
    for key, curve in signals.items():
        name = FORECAST_SIGNALS.get(key, str(key))
        known = [rho for rho in curve if rho is not None]
        step = (forecast.get("reached") or {}).get(key)
        if not known:
            parts.append(f"{name} has too few task pairs measured for a ρ yet")
            continue
        if step is not None:
            share = f" ({100 * step / total:.0f} % of training)" if total > 0 else ""
            part = f"{name} first reaches ρ ≥ {threshold:g} at step {step}{share}"
        else:
            part = f"{name} never reaches ρ ≥ {threshold:g}"
        parts.append(f"{part}, ρ = {known[-1]:+.2f} at the end")
    of_steps = f" over {total} training steps" if total > 0 else ""
    sentence = f"Ranking the task pairs as the final pairwise transfer does (Spearman ρ){of_steps}: {'; '.join(parts)}."
    ceiling = forecast.get("planted_ceiling")
    if ceiling is not None:
        sentence += (f" The planted groups themselves rank the pairs with ρ = {float(ceiling):+.2f}: inside and "
                     "across the groups the measured transfer orders its pairs by noise, so that is about the most "
                     "a signal that finds the groups can reach")
        sentence += f" — ρ ≥ {threshold:g} is out of its reach here." if float(ceiling) < threshold else "."
    return sentence
