"""Statistics of a transfer study: pairwise transfer, its uncertainty over seeds, and Δm %.

Pure functions of per-seed metric values (no training here). Conventions:

* **Relative change** of a metric ``m`` against a baseline ``b`` is signed so that positive means
  better: ``(m − b)/|b|`` when higher is better, ``(b − m)/|b|`` when lower is better (MSE). It is
  NaN when ``b`` is 0 or either value is missing/NaN.
* **transfer(i ← j)** (Standley et al., ICML 2020) is the relative change of task i's validation
  metric when trained with task j against task i alone, with the same seed; ``matrix[i][j]``
  holds it (row = the task measured, column = its partner); the diagonal is NaN.
* Each cell is summarised over seeds by the mean of the per-seed relative changes, a 95 %
  confidence interval from the t distribution (``mean ± t₀.₉₇₅,ₙ₋₁ · s/√n``) and the p-value of a
  two-sided **paired** t-test (one-sample t-test of the per-seed relative changes against 0, so the
  CI excludes 0 exactly when p < 0.05). Seeds where a value is NaN are dropped (pairwise-complete).
  Zero spread across seeds (e.g. identical runs) gives p = 1 (not significant) and a CI of
  width 0; fewer than two seeds give a NaN CI and p-value.
* **Multiple comparisons**: a study tests T(T−1) cells at once, so the cells' p-values are adjusted
  with Holm's step-down method (:func:`holm_adjust`, Holm 1979), which controls the family-wise
  error rate at α over the cells with a p-value; a cell is significant when its adjusted p < α.
* **Δm %** (Maninis et al., CVPR 2019) of a multi-task model against the single-task baselines with
  the same seeds is ``100 · (1/T) Σᵢ rel. change of task i`` per seed — positive = better than
  single-task — then summarised over seeds like a transfer cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SeedSummary",
    "TransferMatrix",
    "relative_change",
    "summarize_seeds",
    "transfer_matrix",
    "holm_adjust",
    "delta_m",
    "nan_to_none",
]

_ZERO_SPREAD = 1e-12


@dataclass(frozen=True)
class SeedSummary:
    """Mean, 95 % CI and paired-test p-value of per-seed values (NaN where undefined)."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    values: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none({
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "n": self.n,
            "per_seed": list(self.values),
        })


def nan_to_none(value: Any) -> Any:
    """Replace NaN/inf floats (also inside lists, tuples, dicts and arrays) by None, for JSON."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {key: nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def relative_change(value: Any, baseline: Any, higher_is_better: bool) -> np.ndarray:
    """Signed relative change of ``value`` against ``baseline`` (elementwise): positive = better.

    NaN where the baseline is 0 or a value is NaN.
    """
    value = np.asarray(value, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (value - baseline) / np.abs(baseline)
    if not higher_is_better:
        change = -change
    return np.where(np.isfinite(change), change, np.nan)


def summarize_seeds(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean, t-distribution CI and two-sided one-sample t-test p-value (against 0) of ``values``,
    ignoring NaNs. Zero spread gives p = 1; fewer than two values give NaN CI and p."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    array = np.asarray(values, dtype=float).ravel()
    kept = array[np.isfinite(array)]
    n = int(kept.size)
    if n == 0:
        return SeedSummary(math.nan, math.nan, math.nan, math.nan, 0, tuple(array.tolist()))
    mean = float(kept.mean())
    if n < 2:
        return SeedSummary(mean, math.nan, math.nan, math.nan, n, tuple(array.tolist()))
    spread = float(kept.std(ddof=1))
    if spread <= _ZERO_SPREAD * max(1.0, abs(mean)):
        return SeedSummary(mean, mean, mean, 1.0, n, tuple(array.tolist()))
    from scipy import stats  # imported here: scipy.stats costs ~1 s at start-up of every command

    half_width = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * spread / math.sqrt(n)
    p_value = float(stats.ttest_1samp(kept, 0.0).pvalue)
    return SeedSummary(mean, mean - half_width, mean + half_width, p_value, n, tuple(array.tolist()))


def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, S. (1979). "A Simple Sequentially Rejective
    Multiple Test Procedure". Scandinavian Journal of Statistics 6(2), 65–70).

    ``p_values`` is an array of any shape; NaN entries (the diagonal, cells not measured) are not
    tests: they stay NaN and do not count. With the m finite p-values sorted ascending,
    p₍₁₎ ≤ … ≤ p₍ₘ₎, the adjusted value of p₍ₖ₎ is ``min(1, max_{j ≤ k} (m − j + 1) · p₍ⱼ₎)``:
    monotone in p, never below p, capped at 1. Rejecting where the adjusted p < α controls the
    family-wise error rate at α. Returns a float array of the input's shape.
    """
    array = np.asarray(p_values, dtype=float)
    if np.any(array[np.isfinite(array)] < 0) or np.any(array[np.isfinite(array)] > 1):
        raise ValueError("`p_values` must lie in [0, 1] (or be NaN)")
    flat = array.ravel()
    adjusted = np.full(flat.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(flat))
    m = tested.size
    if m:
        order = tested[np.argsort(flat[tested], kind="stable")]
        scaled = (m - np.arange(m)) * flat[order]
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.reshape(array.shape)


@dataclass(frozen=True)
class TransferMatrix:
    """T × T arrays (NaN on the diagonal and where undefined): ``mean``, ``ci_low``, ``ci_high``,
    ``p_value`` and ``n`` (seeds used) of transfer(i ← j) = ``[i][j]``; ``p_adjusted`` is
    ``p_value`` Holm-adjusted over the cells that have one (:func:`holm_adjust`)."""

    tasks: tuple[str, ...]
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    n: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": nan_to_none(self.mean),
            "ci_low": nan_to_none(self.ci_low),
            "ci_high": nan_to_none(self.ci_high),
            "p_value": nan_to_none(self.p_value),
            "p_adjusted": nan_to_none(self.p_adjusted),
            "n": self.n.astype(int).tolist(),
        }

    @property
    def p_adjusted(self) -> np.ndarray:
        return holm_adjust(self.p_value)

    def significant(self, alpha: float = 0.05, adjusted: bool = True) -> np.ndarray:
        """Boolean T × T: cells with Holm-adjusted p < ``alpha`` (raw p with ``adjusted=False``);
        False where p is NaN."""
        p = self.p_adjusted if adjusted else self.p_value
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(p, nan=1.0) < alpha


def _seed_values(values: Sequence[float] | Mapping[int, float], seeds: Sequence[int] | None) -> np.ndarray:
    if isinstance(values, Mapping):
        if seeds is None:
            raise ValueError("`seeds` must be given when metric values are keyed by seed")
        return np.asarray([values.get(seed, math.nan) for seed in seeds], dtype=float)
    return np.asarray(values, dtype=float)


def transfer_matrix(
    tasks: Sequence[str],
    alone: Mapping[str, Sequence[float] | Mapping[int, float]],
    pairs: Mapping[tuple[str, str], Sequence[float] | Mapping[int, float]],
    higher_is_better: Mapping[str, bool],
    seeds: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> TransferMatrix:
    """transfer(i ← j) for every ordered pair of ``tasks``.

    ``alone[i]``: task i's metric per seed when trained alone; ``pairs[(i, j)]``: task i's metric
    per seed when trained together with j (a missing key leaves the cell NaN). Values are either
    sequences aligned by position or mappings seed → value (then ``seeds`` gives the order).
    """
    names = tuple(tasks)
    size = len(names)
    arrays = {name: np.full((size, size), math.nan) for name in ("mean", "ci_low", "ci_high", "p_value")}
    counts = np.zeros((size, size), dtype=int)
    for i, target in enumerate(names):
        if target not in alone:
            continue
        base = _seed_values(alone[target], seeds)
        for j, partner in enumerate(names):
            if i == j or (target, partner) not in pairs:
                continue
            joint = _seed_values(pairs[(target, partner)], seeds)
            if joint.shape != base.shape:
                raise ValueError(
                    f"`pairs[({target!r}, {partner!r})]` must have one value per seed ({base.size}), got {joint.size}"
                )
            summary = summarize_seeds(relative_change(joint, base, higher_is_better[target]), confidence)
            arrays["mean"][i, j] = summary.mean
            arrays["ci_low"][i, j] = summary.ci_low
            arrays["ci_high"][i, j] = summary.ci_high
            arrays["p_value"][i, j] = summary.p_value
            counts[i, j] = summary.n
    return TransferMatrix(names, arrays["mean"], arrays["ci_low"], arrays["ci_high"], arrays["p_value"], counts)


def delta_m(
    multi: Mapping[str, Sequence[float] | Mapping[int, float]],
    single: Mapping[str, Sequence[float] | Mapping[int, float]],
    higher_is_better: Mapping[str, bool],
    seeds: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> SeedSummary:
    """Δm % of a multi-task model over the tasks in ``multi`` (Maninis et al. 2019).

    ``multi[i]`` / ``single[i]``: task i's metric per seed in the multi-task model / trained
    alone. Per seed, Δm = 100 · mean over tasks of the signed relative change (positive = better
    than single-task); a seed where any task's value is NaN is dropped. Summarised over seeds with
    :func:`summarize_seeds`.
    """
    if not multi:
        raise ValueError("`multi` must hold at least one task, got none")
    changes = []
    for task, values in multi.items():
        if task not in single:
            raise ValueError(f"`single` must hold the baseline of every task, missing {task!r}")
        changes.append(relative_change(_seed_values(values, seeds), _seed_values(single[task], seeds), higher_is_better[task]))
    lengths = {change.size for change in changes}
    if len(lengths) != 1:
        raise ValueError(f"every task must have one value per seed, got lengths {sorted(lengths)}")
    per_seed = 100.0 * np.mean(np.vstack(changes), axis=0)  # NaN in any task ⇒ NaN for the seed
    return summarize_seeds(per_seed, confidence)
