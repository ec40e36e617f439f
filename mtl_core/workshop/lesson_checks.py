"""Lesson checks: what a lesson claims, tested on the real results of its runs.

:class:`RunResult` and :class:`LessonResults` are what a check reads; each function registered in
:data:`CHECKS` (with :func:`register_check`, plugins too) takes them and the parameters of a lesson's
``check`` entry and returns a :class:`CheckOutcome`: a verdict and a sentence with the measured numbers.
:mod:`mtl_core.workshop.lessons` validates the check entries of a lesson file against this registry and
evaluates them (:func:`~mtl_core.workshop.lessons.evaluate_check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtl_core.errors import MTLError

# --- results ------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a check reads of one trained run: its label and seed, the trainer's run record
    (``final_metrics``, ``best_epoch``, ``history`` …), its probe records, kind → values in step
    order, and optionally their epochs, kind → one epoch per value (see :meth:`epochs_of`)."""

    label: str
    seed: int
    result: Mapping[str, Any]
    probes: dict[str, list[Any]] = field(default_factory=dict)
    run_id: int | str | None = None
    probe_epochs: dict[str, list[int]] = field(default_factory=dict)

    def epochs_of(self, kind: str) -> list[int]:
        """The epoch of each ``kind`` record: from :attr:`probe_epochs` when they were kept, else
        1, 2, … — right for the per-epoch records (``affinity``: one at the end of every epoch that
        had a lookahead step, i.e. every epoch when ``tag_interval`` ≤ the steps of an epoch)."""
        values = self.probes.get(kind) or []
        epochs = self.probe_epochs.get(kind)
        if epochs is not None and len(epochs) == len(values):
            return list(epochs)
        return list(range(1, len(values) + 1))

    def test_metric(self, task: str) -> tuple[float, bool]:
        """The task's test metric and whether higher is better."""
        metrics = self.result.get("final_metrics") or {}
        if task not in metrics:
            raise MTLError(f"run {self.label!r} (seed {self.seed}) has no test metric for task {task!r}; "
                           f"it has {', '.join(metrics) or 'none'}")
        entry = metrics[task]
        value = entry.get("value")
        return (math.nan if value is None else float(value)), bool(entry.get("higher_is_better"))


@dataclass
class LessonResults:
    """The results of a lesson's preset: one :class:`RunResult` per run and the study's analysis
    (``study.json`` content) when the preset has a study."""

    lesson_id: str
    runs: list[RunResult]
    study: Mapping[str, Any] | None = None
    cpu_seconds: float | None = None
    wall_seconds: float | None = None

    def of(self, label: str) -> list[RunResult]:
        """The runs of ``label``, by seed (raises :class:`MTLError` when there are none)."""
        found = sorted((run for run in self.runs if run.label == label), key=lambda run: run.seed)
        if not found:
            known = ", ".join(dict.fromkeys(run.label for run in self.runs)) or "none"
            raise MTLError(f"no finished run labelled {label!r} in the results of lesson {self.lesson_id!r} "
                           f"(labels: {known})")
        return found


@dataclass(frozen=True)
class CheckOutcome:
    """A check's verdict and a sentence with the measured numbers."""

    passed: bool
    explanation: str


# --- checks -------------------------------------------------------------------------------------------
CheckFunction = Callable[..., CheckOutcome]


@dataclass(frozen=True)
class _RegisteredCheck:
    function: CheckFunction
    #: parameters whose values are run labels (a string, or a list of strings for list-valued ones)
    label_params: tuple[str, ...]
    #: parameters whose value is a task name of the runs named by ``label_params``
    task_params: tuple[str, ...]
    #: whether the check reads the preset's study (a lesson without one is refused)
    needs_study: bool = False


#: Check functions keyed by the name a lesson file uses.
CHECKS: dict[str, _RegisteredCheck] = {}


def register_check(
    name: str, labels: Sequence[str] = (), tasks: Sequence[str] = (), needs_study: bool = False
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function(results, **params) -> CheckOutcome`` under ``name``; ``labels`` and
    ``tasks`` name the parameters validated against the preset's labels and their runs' tasks;
    ``needs_study``: the check reads the preset's study."""

    def decorator(function: CheckFunction) -> CheckFunction:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is already registered")
        CHECKS[name] = _RegisteredCheck(function, tuple(labels), tuple(tasks), needs_study)
        return function

    return decorator


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _seed_mean(values: Iterable[float]) -> float:
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else math.nan


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    return "[" + ", ".join("—" if not math.isfinite(v) else f"{v:.{digits}g}" for v in values) + "]"


def mean_pairwise_cosine(run: RunResult, first_probes: int | None = None) -> float:
    """The mean, over probe steps and task pairs, of the gradient cosines of ``run`` (NaN without
    probes); with ``first_probes``, over the run's first that many probes only."""
    records = run.probes.get("cosine") or []
    if first_probes is not None:
        records = records[:first_probes]
    values = []
    for record in records:
        matrix = np.asarray(record, dtype=float)
        if matrix.ndim != 2 or matrix.shape[0] < 2:
            continue
        upper = matrix[np.triu_indices(matrix.shape[0], 1)]
        values.append(float(np.nanmean(upper)))
    return _seed_mean(values)


def _delta_m(run: RunResult, baseline: RunResult, task: str | None = None) -> float:
    """Δm % of ``run`` against ``baseline`` (mean signed relative change of the test metrics, positive
    = better); with ``task``, that task's relative change alone (its baseline may be a run of it alone)."""
    from mtl_core.analysis.transfer import relative_change

    changes = []
    for name in [task] if task is not None else list(run.result.get("final_metrics") or {}):
        value, higher = run.test_metric(name)
        reference, _ = baseline.test_metric(name)
        changes.append(float(relative_change(value, reference, higher)))
    return 100.0 * _seed_mean(changes)


def _paired(results: LessonResults, label: str, other: str) -> list[tuple[RunResult, RunResult]]:
    mine = {run.seed: run for run in results.of(label)}
    theirs = {run.seed: run for run in results.of(other)}
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        raise MTLError(f"runs {label!r} and {other!r} share no seed, so they cannot be compared")
    return [(mine[s], theirs[s]) for s in seeds]


def _delta_m_by_seed(results: LessonResults, label: str, baseline: str, task: str | None = None) -> dict[int, float]:
    return {run.seed: _delta_m(run, base, task) for run, base in _paired(results, label, baseline)}


def _delta_m_values(results: LessonResults, label: str, baseline: str, task: str | None = None) -> list[float]:
    return list(_delta_m_by_seed(results, label, baseline, task).values())


def _holds(values: Sequence[float], condition: Callable[[float], bool], every_seed: bool) -> bool:
    """``condition`` holds for the mean of ``values`` (finite) or, with ``every_seed``, for each value."""
    if every_seed:
        return bool(values) and all(math.isfinite(v) and condition(v) for v in values)
    mean = _seed_mean(values)
    return math.isfinite(mean) and condition(mean)


def _delta_m_name(task: str | None) -> str:
    return f"{task}'s relative change" if task is not None else "Δm"


def _on(every_seed: bool) -> str:
    return "on every seed" if every_seed else "on average over seeds"


@register_check("mean_cosine_higher", labels=("label", "than"))
def mean_cosine_higher(
    results: LessonResults, label: str, than: str, margin: float = 0.0, first_probes: int | None = None
) -> CheckOutcome:
    """The mean gradient cosine of the ``label`` runs exceeds that of the ``than`` runs by more
    than ``margin`` (each averaged over probe steps, task pairs and seeds); with ``first_probes``,
    over each run's first that many probes only (the run view's heatmap window ended early)."""
    if first_probes is not None and (isinstance(first_probes, bool) or not isinstance(first_probes, int)
                                     or first_probes < 1):
        raise MTLError(f"`first_probes` must be null or an integer ≥ 1, got {first_probes!r}")
    mine = [mean_pairwise_cosine(run, first_probes) for run in results.of(label)]
    theirs = [mean_pairwise_cosine(run, first_probes) for run in results.of(than)]
    a, b = _seed_mean(mine), _seed_mean(theirs)
    passed = math.isfinite(a) and math.isfinite(b) and a > b + margin
    window = f" over the first {first_probes} probes" if first_probes is not None else ""
    return CheckOutcome(passed, f"mean gradient cosine{window}: {label} {a:+.3f} (per seed {_fmt(mine)}) vs {than} "
                                f"{b:+.3f} (per seed {_fmt(theirs)}); expected the first higher"
                                + (f" by more than {margin}" if margin else ""))


@register_check("delta_m_higher", labels=("label", "baseline", "than", "than_baseline"), tasks=("task",))
def delta_m_higher(
    results: LessonResults, label: str, baseline: str, than: str, than_baseline: str | None = None,
    margin: float = 0.0, task: str | None = None, every_seed: bool = False,
) -> CheckOutcome:
    """Δm % of ``label`` against its single-task ``baseline`` (same seed) exceeds Δm % of ``than``
    against ``than_baseline`` (default: ``baseline``) by more than ``margin`` points, on average
    over seeds (``every_seed``: on each seed). With ``task``, the relative change of that task only."""
    mine_by_seed = _delta_m_by_seed(results, label, baseline, task)
    theirs_by_seed = _delta_m_by_seed(results, than, than_baseline or baseline, task)
    mine, theirs = list(mine_by_seed.values()), list(theirs_by_seed.values())
    a, b = _seed_mean(mine), _seed_mean(theirs)
    if every_seed:
        if set(mine_by_seed) != set(theirs_by_seed):
            raise MTLError(f"`every_seed` compares {label} and {than} seed by seed, but they have different seeds")
        differences = [mine_by_seed[seed] - theirs_by_seed[seed] for seed in mine_by_seed]
        passed = _holds(differences, lambda d: d > margin, True)
    else:
        passed = math.isfinite(a) and math.isfinite(b) and a > b + margin
    reference = f"{baseline}" if than_baseline in (None, baseline) else f"{baseline} / {than_baseline}"
    return CheckOutcome(passed, f"{_delta_m_name(task)} vs {reference}: {label} {a:+.1f} % (per seed {_fmt(mine)}) "
                                f"vs {than} {b:+.1f} % (per seed {_fmt(theirs)}); expected the first higher"
                                + (f" by more than {margin:g} points" if margin else "") + f" {_on(every_seed)}")


@register_check("delta_m_below", labels=("label", "baseline"), tasks=("task",))
def delta_m_below(
    results: LessonResults, label: str, baseline: str, below: float = 0.0, task: str | None = None,
    every_seed: bool = False,
) -> CheckOutcome:
    """Δm % of ``label`` against ``baseline`` is below ``below`` on average over seeds (``every_seed``:
    on each seed; 0: the multi-task model is worse than single-task — negative transfer). With
    ``task``, the relative change of that task only."""
    values = _delta_m_values(results, label, baseline, task)
    passed = _holds(values, lambda v: v < below, every_seed)
    return CheckOutcome(passed, f"{_delta_m_name(task)} of {label} vs {baseline}: {_seed_mean(values):+.1f} % "
                                f"(per seed {_fmt(values)}); expected below {below:+g} % {_on(every_seed)}")


@register_check("delta_m_above", labels=("label", "baseline"), tasks=("task",))
def delta_m_above(
    results: LessonResults, label: str, baseline: str, above: float = 0.0, task: str | None = None,
    every_seed: bool = False,
) -> CheckOutcome:
    """Δm % of ``label`` against ``baseline`` is above ``above`` on average over seeds (``every_seed``:
    on each seed; 0: the multi-task model beats single-task — positive transfer). With ``task``,
    the relative change of that task only."""
    values = _delta_m_values(results, label, baseline, task)
    passed = _holds(values, lambda v: v > above, every_seed)
    return CheckOutcome(passed, f"{_delta_m_name(task)} of {label} vs {baseline}: {_seed_mean(values):+.1f} % "
                                f"(per seed {_fmt(values)}); expected above {above:+g} % {_on(every_seed)}")


def _gradient_shares(run: RunResult, task_index: int) -> list[float]:
    """Per probe step: task ``task_index``'s share of Σᵢ wᵢ‖gᵢ‖ (weights from the ``weights``
    probe, 1 when the method records none)."""
    norms = [np.asarray(n, dtype=float) for n in run.probes.get("norms") or []]
    weights = [np.asarray(w, dtype=float) for w in run.probes.get("weights") or []]
    shares = []
    for index, norm in enumerate(norms):
        weight = weights[index] if index < len(weights) and weights[index].shape == norm.shape else np.ones_like(norm)
        weighted = np.abs(weight) * norm
        total = weighted.sum()
        if total > 0:
            shares.append(float(weighted[task_index] / total))
    return shares


def _task_index(run: RunResult, task: str) -> int:
    names = [t["name"] for t in run.result.get("tasks") or []]
    if task not in names:
        raise MTLError(f"run {run.label!r} has no task {task!r} (tasks: {', '.join(names)})")
    return names.index(task)


@register_check("grad_share_larger", labels=("under", "than"), tasks=("task",))
def grad_share_larger(results: LessonResults, task: str, under: str, than: str | Sequence[str]) -> CheckOutcome:
    """``task``'s share of the weighted gradient norm on the shared parameters, wₜ‖gₜ‖ / Σᵢ wᵢ‖gᵢ‖
    averaged over probe steps and seeds, is larger under ``under`` than under each of ``than``."""

    def share(label: str) -> tuple[float, list[float]]:
        per_seed = [_seed_mean(_gradient_shares(run, _task_index(run, task))) for run in results.of(label)]
        return _seed_mean(per_seed), per_seed

    reference, reference_seeds = share(under)
    parts = [f"{task}'s share of the weighted gradient norm: {under} {reference:.3f} (per seed "
             f"{_fmt(reference_seeds)})"]
    passed = math.isfinite(reference)
    for other in _as_list(than):
        value, per_seed = share(other)
        passed = passed and math.isfinite(value) and reference > value
        parts.append(f"{other} {value:.3f} (per seed {_fmt(per_seed)})")
    return CheckOutcome(passed, ", ".join(parts) + f"; expected {under} larger than the others")


@register_check("final_weight_ratio_below", labels=("label",), tasks=("task", "reference"))
def final_weight_ratio_below(
    results: LessonResults, label: str, task: str, reference: str, below: float
) -> CheckOutcome:
    """At the last probe step, the method's weight of ``task`` divided by that of ``reference`` is
    below ``below`` (mean over seeds): the method has down-weighted ``task``."""
    ratios = []
    for run in results.of(label):
        weights = run.probes.get("weights") or []
        if not weights:
            raise MTLError(f"run {label!r} (seed {run.seed}) recorded no task weights")
        last = np.asarray(weights[-1], dtype=float)
        ratios.append(float(last[_task_index(run, task)] / last[_task_index(run, reference)]))
    mean = _seed_mean(ratios)
    passed = math.isfinite(mean) and mean < below
    return CheckOutcome(passed, f"final weight ratio {task}/{reference} under {label}: {mean:.3g} (per seed "
                                f"{_fmt(ratios)}); expected below {below:g}")


@register_check("metric_better", labels=("labels", "than"), tasks=("task",))
def metric_better(
    results: LessonResults, task: str, labels: str | Sequence[str], than: str, margin: float = 0.0
) -> CheckOutcome:
    """``task``'s test metric is better in each of ``labels`` than in ``than``: the signed relative
    change in % (positive = better, paired by seed) averages above ``margin`` (in %)."""
    from mtl_core.analysis.transfer import relative_change

    passed = True
    parts = []
    for label in _as_list(labels):
        changes = []
        for run, other in _paired(results, label, than):
            value, higher = run.test_metric(task)
            reference, _ = other.test_metric(task)
            changes.append(100.0 * float(relative_change(value, reference, higher)))
        mean = _seed_mean(changes)
        passed = passed and math.isfinite(mean) and mean > margin
        parts.append(f"{label} {mean:+.1f} % (per seed {_fmt(changes)})")
    return CheckOutcome(passed, f"{task}'s test metric against {than} (positive = better): " + ", ".join(parts)
                                + "; expected each better")


@register_check("metric_gain_significant", labels=("label", "than"), tasks=("task",))
def metric_gain_significant(
    results: LessonResults, task: str, label: str, than: str, alpha: float = 0.05
) -> CheckOutcome:
    """``task``'s test metric is significantly better in ``label`` than in ``than``: the signed
    relative changes in % (positive = better, paired by seed) have a positive mean and a two-sided
    one-sample t-test against 0 gives p < ``alpha`` — the (1 − ``alpha``) confidence interval of
    the mean gain excludes 0 (:func:`mtl_core.analysis.transfer.summarize_seeds`, as the transfer
    heatmap's cells). Needs at least two shared seeds."""
    from mtl_core.analysis.transfer import summarize_seeds

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise MTLError(f"`alpha` must be a number in (0, 1), got {alpha!r}")
    changes = _delta_m_values(results, label, than, task)  # the task's relative change in %, per seed
    summary = summarize_seeds(changes, confidence=1.0 - alpha)
    passed = summary.n >= 2 and math.isfinite(summary.p_value) and summary.mean > 0 and summary.p_value < alpha
    return CheckOutcome(passed, f"{task}'s test metric, {label} against {than} (positive = better): "
                                f"{summary.mean:+.1f} % ({100 * (1 - alpha):g} % CI {summary.ci_low:+.1f} … "
                                f"{summary.ci_high:+.1f}, paired t-test p = {summary.p_value:.2g}, per seed "
                                f"{_fmt(changes)}); expected a gain with p < {alpha:g}")


@register_check("conflict_fraction_at_least", labels=("label",))
def conflict_fraction_at_least(results: LessonResults, label: str, at_least: float) -> CheckOutcome:
    """The fraction of task pairs whose gradients conflict (cosine < 0), averaged over the probe
    steps and seeds of ``label``, is at least ``at_least``."""
    per_seed = [_seed_mean(float(np.asarray(v, dtype=float).ravel()[0]) for v in run.probes.get("conflict") or [])
                for run in results.of(label)]
    mean = _seed_mean(per_seed)
    passed = math.isfinite(mean) and mean >= at_least
    return CheckOutcome(passed, f"gradient conflict under {label}: {100 * mean:.0f} % of probed pairs have a "
                                f"negative cosine (per seed {_fmt([100 * v for v in per_seed], 2)} %); expected at "
                                f"least {100 * at_least:.0f} %")


def _gram_embedding(cosine: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """T vectors in ℝᵀ with the Gram matrix of the recorded gradients (cosᵢⱼ‖gᵢ‖‖gⱼ‖)."""
    gram = cosine * np.outer(norms, norms)
    gram = (gram + gram.T) / 2
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def update_conflicts(run: RunResult, method: str, tolerance: float = 1e-6) -> list[bool]:
    """For each probe step of ``run``: whether ``method``'s update d conflicts with some task,
    i.e. d·gᵢ < 0 (to first order the step raises task i's loss).

    The recorded cosines and norms fix the Gram matrix of the task gradients, and every gradient
    method of :func:`mtl_core.balancing.combine` (and the plain sum of ``ew``) depends on the
    gradients only through it (they are rotation-equivariant), so d·gᵢ is computed exactly on T
    vectors with the same Gram matrix. ``tolerance`` is relative to ‖d‖‖gᵢ‖.
    """
    import torch

    from mtl_core.balancing import METHODS, combine

    if method != "ew" and (method not in METHODS or METHODS.get(method).kind != "gradient"):
        raise MTLError(f"the update direction of {method!r} cannot be rebuilt from the probes: it weights "
                       "the losses with changing weights (use ew or a gradient method)")
    cosines = run.probes.get("cosine") or []
    norms = run.probes.get("norms") or []
    flags = []
    for index, (cosine, norm) in enumerate(zip(cosines, norms)):
        norm = np.asarray(norm, dtype=float)
        vectors = torch.tensor(_gram_embedding(np.asarray(cosine, dtype=float), norm), dtype=torch.float64)
        if method == "ew":
            direction = vectors.sum(0)  # equal weights: the plain sum of the task gradients
        else:
            direction = combine(method, vectors, generator=torch.Generator().manual_seed(index))
        dots = (vectors @ direction).numpy()
        scale = float(direction.norm()) * norm
        flags.append(bool(np.any(dots < -tolerance * np.maximum(scale, 1e-300))))
    return flags


@register_check("update_conflict_fraction", labels=("labels",))
def update_conflict_fraction(
    results: LessonResults, labels: str | Sequence[str], at_least: float | None = None,
    at_most: float | None = None,
) -> CheckOutcome:
    """The fraction of probe steps where the run's own update direction conflicts with some task
    (d·gᵢ < 0, see :func:`update_conflicts`; the method is the run's), averaged over seeds, is at
    least ``at_least`` and/or at most ``at_most``, for each of ``labels``."""
    if at_least is None and at_most is None:
        raise MTLError("update_conflict_fraction needs `at_least` or `at_most`")
    passed = True
    parts = []
    for label in _as_list(labels):
        per_seed = []
        for run in results.of(label):
            method = str((run.result.get("config") or {}).get("method", "ew"))
            flags = update_conflicts(run, method)
            per_seed.append(float(np.mean(flags)) if flags else math.nan)
        mean = _seed_mean(per_seed)
        ok = math.isfinite(mean)
        if at_least is not None:
            ok = ok and mean >= at_least
        if at_most is not None:
            ok = ok and mean <= at_most
        passed = passed and ok
        parts.append(f"{label} {100 * mean:.0f} % (per seed {_fmt([100 * v for v in per_seed], 2)} %)")
    bounds = " and ".join(
        text for text in (
            f"at least {100 * at_least:.0f} %" if at_least is not None else "",
            f"at most {100 * at_most:.0f} %" if at_most is not None else "",
        ) if text
    )
    return CheckOutcome(passed, "steps whose update raises some task's loss (d·gᵢ < 0): " + ", ".join(parts)
                                + f"; expected {bounds}")


def _normalise_groups(groups: Iterable[Iterable[str]]) -> list[list[str]]:
    return sorted(sorted(group) for group in groups)


def _tag_grouping(runs: Sequence[RunResult], k: int) -> list[list[str]]:
    from mtl_core.analysis.affinity import run_affinity
    from mtl_core.analysis.grouping import best_groupings

    tasks = [t["name"] for t in runs[0].result.get("tasks") or []]
    # Each run's affinity as the transfer study computes it (median over the epochs up to its best
    # epoch), then the mean over the runs.
    matrices = []
    for run in runs:
        records = [(value, {"epoch": epoch})
                   for value, epoch in zip(run.probes.get("affinity") or [], run.epochs_of("affinity"))]
        matrix = run_affinity(records, run.result.get("best_epoch"), len(tasks))
        if matrix is not None:
            matrices.append(matrix)
    if not matrices:
        raise MTLError("the TAG run recorded no affinity (is `tag: true` set and is the run long enough?)")
    mean = np.nanmean(np.stack(matrices), axis=0)
    # Affinity is indexed [source][target]; a grouping score is [served][helper].
    (best,) = [g for g in best_groupings(mean.T, tasks) if g.k == k]
    return _normalise_groups(best.groups)


@register_check("groupings_agree", labels=("tag_label",), needs_study=True)
def groupings_agree(
    results: LessonResults, tag_label: str, k: int = 2, study_source: str = "transfer", planted: bool = True
) -> CheckOutcome:
    """The best grouping into at most ``k`` groups from TAG affinity (the ``tag_label`` runs'
    ``affinity`` records, each run's reduced as the study does — :func:`mtl_core.analysis.affinity.run_affinity`,
    the median over the epochs up to its best epoch — then averaged over the runs) equals the
    study's best grouping from ``study_source`` and, with ``planted``, the suite's planted groups."""
    if results.study is None:
        raise MTLError("groupings_agree needs the preset's study in the results")
    tag_groups = _tag_grouping(results.of(tag_label), k)
    stored = (results.study.get("groupings") or {}).get(study_source) or []
    chosen = [g for g in stored if g.get("k") == k]
    if not chosen:
        raise MTLError(f"the study has no {study_source} grouping for k = {k}")
    study_groups = _normalise_groups(chosen[0]["groups"])
    passed = tag_groups == study_groups
    text = f"TAG from one run: {tag_groups}; {study_source} study ({results.study.get('n_runs')} runs): {study_groups}"
    if planted:
        planted_groups = _normalise_groups(results.study.get("planted_groups") or [])
        passed = passed and tag_groups == planted_groups
        text += f"; planted: {planted_groups}"
    return CheckOutcome(passed, text + "; expected them equal")


def _none_as_nan(value: Any) -> Any:
    """``value`` (nested lists) with None (JSON's NaN) as NaN."""
    if isinstance(value, (list, tuple)):
        return [_none_as_nan(item) for item in value]
    return math.nan if value is None else value


@register_check("planted_transfer_signs", needs_study=True)
def planted_transfer_signs(
    results: LessonResults, in_group_above: float = 0.0, cross_group_below: float = 0.0
) -> CheckOutcome:
    """In the preset's study, the mean pairwise transfer (in %) over the cells of two tasks of the
    same planted group is above ``in_group_above`` and over the cells of two tasks of different
    groups below ``cross_group_below`` (0, 0: positive transfer inside the groups, negative across)."""
    if results.study is None:
        raise MTLError("planted_transfer_signs needs the preset's study in the results")
    tasks = list(results.study.get("tasks") or [])
    planted = results.study.get("planted_groups") or []
    if not planted:
        raise MTLError("the study's suite has no planted groups")
    group_of = {task: index for index, group in enumerate(planted) for task in group}
    matrix = np.asarray(_none_as_nan((results.study.get("transfer") or {}).get("mean")), dtype=float)
    if matrix.shape != (len(tasks), len(tasks)):
        raise MTLError("the study has no transfer matrix for its tasks")
    cells: dict[bool, list[float]] = {True: [], False: []}
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            if i != j and a in group_of and b in group_of and math.isfinite(matrix[i, j]):
                cells[group_of[a] == group_of[b]].append(100.0 * float(matrix[i, j]))
    inside, across = _seed_mean(cells[True]), _seed_mean(cells[False])
    passed = math.isfinite(inside) and math.isfinite(across) and inside > in_group_above and across < cross_group_below

    def spread(values: list[float]) -> str:
        return f"{min(values):+.1f} … {max(values):+.1f}" if values else "none"

    return CheckOutcome(passed, f"mean transfer in the study: inside the planted groups {inside:+.1f} % ("
                                f"{len(cells[True])} cells, {spread(cells[True])}), across groups {across:+.1f} % ("
                                f"{len(cells[False])} cells, {spread(cells[False])}); expected above "
                                f"{in_group_above:+g} % inside and below {cross_group_below:+g} % across")
