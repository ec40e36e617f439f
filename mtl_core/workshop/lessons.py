"""Workshop lessons: small, curated experiments with a question for the students and a checked answer.

A lesson is one YAML file of ``mtl_core/assets/lessons/`` (package data: an installed copy has them
too) or of the folder named by ``$MTL_LAB_LESSONS``, named ``NN-some-name.yaml``: ``NN`` orders the
lessons and ``some-name`` is the lesson's id. Fields:

``title``, ``story``, ``question``, ``expect`` (the observation students should make), optional
``look_at`` (where in the dashboard to look), and

``preset`` — what "Run this lesson" queues:

* ``base``: settings shared by every run (a :class:`~mtl_core.config.TrainConfig` mapping; the
  ``*_options`` mappings are merged key by key with the runs' own);
* ``seeds``: the seeds every run is repeated for (default ``[0]``);
* ``runs``: a list of run settings, each with a ``label`` (letters, digits, ``_ . -``) that the
  checks refer to, optionally its own ``seeds``;
* ``study`` (optional): a transfer study (:mod:`mtl_core.studies.study`) — ``config`` (merged over
  ``base``), ``seeds``, ``include_all``, ``tag``, ``metric``, ``probe_interval``, and the
  protocol's ``patience`` and ``max_epochs`` (they replace the config's ``epochs``).

``check`` — what the lesson claims, machine-checkable on the real results: a list of
``{check_name: {parameters}}`` (or one mapping of them), each naming a function registered in
:data:`CHECKS`; every check must hold. :func:`run_lesson_headless` trains the preset in this
process and :func:`evaluate_check` says whether the expected observation holds, and why.

:func:`load_lesson` / :func:`load_lessons` validate a file completely (every run config against the
registries, every check's name, parameters, labels and tasks) and raise :class:`LessonError` with
the file and the field at fault.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mtl_core.config import TrainConfig, parse_yaml
from mtl_core.errors import ConfigError, MTLError
from mtl_core.settings import settings
from mtl_core.training.events import Callback, ProbeEvent

__all__ = [
    "LESSONS_ENV",
    "LessonError",
    "Lesson",
    "LessonRun",
    "CheckSpec",
    "RunResult",
    "LessonResults",
    "CheckOutcome",
    "CHECKS",
    "register_check",
    "lessons_dir",
    "packaged_lessons_dir",
    "lesson_files",
    "load_lesson",
    "load_lessons",
    "get_lesson",
    "run_lesson_headless",
    "launch_lesson",
    "evaluate_check",
    "mean_pairwise_cosine",
    "update_conflicts",
]

#: Environment variable naming another lessons folder (default: the lessons shipped in the package).
LESSONS_ENV = "MTL_LAB_LESSONS"
_FILE_NAME = re.compile(r"^(?:(\d+)[-_])?([A-Za-z0-9][A-Za-z0-9_-]*)\.ya?ml$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEXT_FIELDS = ("title", "story", "question", "expect")
_KNOWN_FIELDS = (*_TEXT_FIELDS, "look_at", "preset", "check", "order")
_PRESET_FIELDS = ("base", "seeds", "runs", "study")
_STUDY_FIELDS = ("config", "seeds", "include_all", "tag", "metric", "probe_interval", "patience", "max_epochs")
_OPTION_KEYS = ("suite_options", "strategy_options", "method_options")


class LessonError(MTLError, ValueError):
    """A lesson file is invalid: names the file (``source``) and the ``field`` at fault."""

    def __init__(self, source: str, field: str, expected: str, got: object) -> None:
        self.source = source
        self.field = field
        self.expected = expected
        self.got = got
        where = f"{source}: " if source else ""
        super().__init__(f"{where}`{field}` must be {expected}, got {got!r}")


# --- the lesson model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LessonRun:
    """One run of a lesson's preset: its ``label`` (what checks refer to), seed and validated config."""

    label: str
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class CheckSpec:
    """One check of a lesson: the registered function's ``name`` and its parameters."""

    name: str
    params: Mapping[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Lesson:
    """A validated lesson (see the module docstring for the file format)."""

    id: str
    order: int
    title: str
    story: str
    question: str
    expect: str
    look_at: str
    runs: tuple[LessonRun, ...]
    study: Any  # mtl_core.studies.study.StudySpec (validated) or None
    checks: tuple[CheckSpec, ...]
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        """The run labels in preset order (each once)."""
        return list(dict.fromkeys(run.label for run in self.runs))

    def configs(self) -> list[TrainConfig]:
        """The preset's run configs (the study's runs are planned separately)."""
        return [run.config for run in self.runs]

    def study_size(self) -> int:
        """How many runs the preset's study trains (0 without a study); planned once per lesson."""
        return self._study_size

    @functools.cached_property
    def _study_size(self) -> int:
        if self.study is None:
            return 0
        from mtl_core.studies.study import plan_study

        return len(plan_study(self.study))

    def n_runs(self) -> int:
        """Every run "Run this lesson" queues: the preset's runs and the study's."""
        return len(self.runs) + self.study_size()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the dashboard and the CLI."""
        return {
            "id": self.id,
            "order": self.order,
            "title": self.title,
            "story": self.story,
            "question": self.question,
            "expect": self.expect,
            "look_at": self.look_at,
            "labels": self.labels,
            "runs": [{"label": r.label, "seed": r.seed, "config": r.config.to_dict()} for r in self.runs],
            "study": self.study.to_dict() if self.study is not None else None,
            "checks": [{"name": c.name, "params": dict(c.params)} for c in self.checks],
            "n_runs": self.n_runs(),
            "path": str(self.path) if self.path is not None else None,
        }


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


# --- loading and validation -----------------------------------------------------------------------------


def lessons_dir() -> Path:
    """The lessons folder: ``$MTL_LAB_LESSONS`` if set, else the lessons shipped in the package."""
    return settings().lessons_dir or packaged_lessons_dir()


def packaged_lessons_dir() -> Path:
    """The workshop lessons shipped with :mod:`mtl_core` (package data: ``mtl_core/assets/lessons``)."""
    # pip installs a package unpacked, so its data folder is a real directory (a Path, not a zip entry).
    return Path(str(resources.files("mtl_core") / "assets" / "lessons"))


def lesson_files(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The lesson files of ``folder`` (default :func:`lessons_dir`), in name order."""
    folder = Path(folder) if folder is not None else lessons_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
                  and not p.name.startswith("."))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key in _OPTION_KEYS and isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _require_mapping(value: Any, source: str, field_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LessonError(source, field_name, "a mapping", type(value).__name__ if value is not None else None)
    return value


def _check_keys(value: Mapping[str, Any], allowed: Sequence[str], source: str, prefix: str) -> None:
    for key in value:
        if key not in allowed:
            field_name = f"{prefix}.{key}" if prefix else str(key)
            raise LessonError(source, field_name, f"a known field ({', '.join(allowed)})", key)


def _seeds(value: Any, source: str, field_name: str) -> tuple[int, ...]:
    if isinstance(value, bool) or not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise LessonError(source, field_name, "a non-empty list of non-negative integers", value)
    if len(set(value)) != len(value):
        raise LessonError(source, field_name, "distinct seeds", value)
    return tuple(value)


def _config(data: Mapping[str, Any], source: str, field_name: str) -> TrainConfig:
    try:
        return TrainConfig.from_dict(data).validated()
    except ConfigError as exc:
        raise LessonError(source, f"{field_name}.{exc.field}", exc.expected, exc.got) from None


def _runs(preset: Mapping[str, Any], lesson_id: str, source: str) -> tuple[LessonRun, ...]:
    base = _require_mapping(preset.get("base", {}) or {}, source, "preset.base")
    default_seeds = _seeds(preset.get("seeds", [0]), source, "preset.seeds")
    entries = preset.get("runs", []) or []
    if not isinstance(entries, list):
        raise LessonError(source, "preset.runs", "a list of run settings", type(entries).__name__)
    runs = []
    labels_seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"preset.runs[{index}]"
        entry = dict(_require_mapping(entry, source, where))
        label = entry.pop("label", None)
        if not isinstance(label, str) or not _LABEL.match(label):
            raise LessonError(source, f"{where}.label", "a label of letters, digits, _ . - (e.g. related)", label)
        if label in labels_seen:
            raise LessonError(source, f"{where}.label", "a label not used by another run", label)
        labels_seen.add(label)
        seeds = _seeds(entry.pop("seeds"), source, f"{where}.seeds") if "seeds" in entry else default_seeds
        if "seed" in entry or "seed" in base:
            raise LessonError(source, f"{where}.seed", "absent (use `seeds`)", entry.get("seed", base.get("seed")))
        merged = _merge(base, entry)
        for seed in seeds:
            merged_seed = {**merged, "seed": seed, "name": f"lesson {lesson_id}: {label} · seed {seed}"}
            runs.append(LessonRun(label, seed, _config(merged_seed, source, where)))
    return tuple(runs)


def _study(preset: Mapping[str, Any], source: str) -> Any:
    if preset.get("study") is None:
        return None
    from mtl_core.studies.study import StudySpec

    data = _require_mapping(preset["study"], source, "preset.study")
    _check_keys(data, _STUDY_FIELDS, source, "preset.study")
    base = _require_mapping(preset.get("base", {}) or {}, source, "preset.base")
    config_data = _merge(base, _require_mapping(data.get("config", {}) or {}, source, "preset.study.config"))
    config = _config(config_data, source, "preset.study.config")
    seeds = _seeds(data.get("seeds", [0, 1, 2]), source, "preset.study.seeds")
    options: dict[str, Any] = {}
    for key in ("include_all", "tag"):
        if key in data:
            if not isinstance(data[key], bool):
                raise LessonError(source, f"preset.study.{key}", "true or false", data[key])
            options[key] = data[key]
    if "metric" in data:
        options["metric"] = data["metric"]
    for key in ("probe_interval", "patience", "max_epochs"):
        if key in data:
            options[key] = data[key]
    try:
        return StudySpec(config, seeds=seeds, **options).validated()
    except ConfigError as exc:
        raise LessonError(source, f"preset.study.{exc.field}", exc.expected, exc.got) from None


def _check_specs(value: Any, source: str) -> tuple[CheckSpec, ...]:
    if isinstance(value, Mapping):
        items = [(str(name), params, f"check.{name}") for name, params in value.items()]
    elif isinstance(value, list):
        items = []
        for index, entry in enumerate(value):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise LessonError(source, f"check[{index}]", "a mapping with one check name, e.g. "
                                  "{metric_better: {task: t1, labels: [mtl], than: single}}", entry)
            ((name, params),) = entry.items()
            items.append((str(name), params, f"check[{index}]"))
    else:
        raise LessonError(source, "check", "a list of {check_name: {parameters}}", value)
    if not items:
        raise LessonError(source, "check", "at least one check", value)
    specs = []
    for name, params, where in items:
        if name not in CHECKS:
            raise LessonError(source, where, f"a known check ({', '.join(sorted(CHECKS))})", name)
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise LessonError(source, f"{where}.{name}", "a mapping of parameters", params)
        signature = inspect.signature(CHECKS[name].function)
        allowed = [p for p in list(signature.parameters)[1:]]
        for key in params:
            if key not in allowed:
                raise LessonError(source, f"{where}.{name}.{key}", f"a parameter of {name} ({', '.join(allowed)})", key)
        for key in allowed:
            if signature.parameters[key].default is inspect.Parameter.empty and key not in params:
                raise LessonError(source, f"{where}.{name}.{key}", "given (a required parameter)", None)
        specs.append(CheckSpec(name, dict(params)))
    return tuple(specs)


def _run_tasks(runs: Sequence[LessonRun]) -> dict[str, set[str]]:
    """label → the task names its runs train (from the suites' task specs; no data is built)."""
    from mtl_core.suites import make_suite

    out: dict[str, set[str]] = {}
    for run in runs:
        config = run.config
        if config.tasks is not None:
            names = set(config.tasks)
        else:
            names = {t.name for t in make_suite(config.suite, **dict(config.suite_options)).task_specs()}
        out.setdefault(run.label, set()).update(names)
    return out


def _validate_check_references(checks: Sequence[CheckSpec], runs: Sequence[LessonRun], study: Any,
                               source: str) -> None:
    labels = list(dict.fromkeys(run.label for run in runs))
    tasks = _run_tasks(runs)
    for index, spec in enumerate(checks):
        registered = CHECKS[spec.name]
        where = f"check[{index}].{spec.name}"
        referenced: list[str] = []
        for key in registered.label_params:
            if key not in spec.params or spec.params[key] is None:
                continue
            value = spec.params[key]
            values = _as_list(value) if isinstance(value, (str, list, tuple)) else [value]
            for label in values:
                if label not in labels:
                    raise LessonError(source, f"{where}.{key}", f"a run label of the preset ({', '.join(labels)})", label)
            referenced.extend(values)
        for key in registered.task_params:
            if spec.params.get(key) is None:
                continue  # an optional task parameter left out (a required one was checked before)
            task = spec.params.get(key)
            for label in referenced:
                if task not in tasks[label]:
                    raise LessonError(source, f"{where}.{key}",
                                      f"a task of the runs labelled {label} ({', '.join(sorted(tasks[label]))})", task)
        if registered.needs_study and study is None:
            raise LessonError(source, where, "used with a preset that has a `study`", None)


def load_lesson(path: str | os.PathLike[str]) -> Lesson:
    """Read and fully validate one lesson file; raises :class:`LessonError` naming the file and field."""
    path = Path(path)
    source = path.name
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise LessonError(source, "file name", "NN-lesson-id.yaml (letters, digits, - and _)", path.name)
    lesson_id = match.group(2)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(source, "file", "a readable UTF-8 text file", exc.__class__.__name__) from None
    data, problem = parse_yaml(text)
    if problem is not None:
        raise LessonError(source, "file", "valid YAML", problem)
    data = _require_mapping(data, source, "(top level)")
    _check_keys(data, _KNOWN_FIELDS, source, "")
    texts = {}
    for key in _TEXT_FIELDS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise LessonError(source, key, "a non-empty text", value)
        texts[key] = value.strip()
    look_at = data.get("look_at", "") or ""
    if not isinstance(look_at, str):
        raise LessonError(source, "look_at", "a text", look_at)
    order = data.get("order", int(match.group(1)) if match.group(1) else 1000)
    if isinstance(order, bool) or not isinstance(order, int):
        raise LessonError(source, "order", "an integer", order)
    preset = _require_mapping(data.get("preset"), source, "preset")
    _check_keys(preset, _PRESET_FIELDS, source, "preset")
    runs = _runs(preset, lesson_id, source)
    study = _study(preset, source)
    if not runs and study is None:
        raise LessonError(source, "preset", "at least one run or a study", dict(preset))
    checks = _check_specs(data.get("check"), source)
    _validate_check_references(checks, runs, study, source)
    return Lesson(
        id=lesson_id, order=order, title=texts["title"], story=texts["story"], question=texts["question"],
        expect=texts["expect"], look_at=look_at.strip(), runs=runs, study=study, checks=checks, path=path,
    )


def load_lessons(folder: str | os.PathLike[str] | None = None) -> list[Lesson]:
    """Every lesson of ``folder`` (default :func:`lessons_dir`), in order; the first invalid file
    raises :class:`LessonError`, as do two files with the same id."""
    lessons = [load_lesson(path) for path in lesson_files(folder)]
    seen: dict[str, Path | None] = {}
    for lesson in lessons:
        if lesson.id in seen:
            raise LessonError(lesson.path.name if lesson.path else lesson.id, "file name",
                              f"a lesson id not used by {seen[lesson.id].name if seen[lesson.id] else 'another file'}",
                              lesson.id)
        seen[lesson.id] = lesson.path
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))


def get_lesson(lesson_id: str, folder: str | os.PathLike[str] | None = None) -> Lesson:
    """The lesson ``lesson_id`` of ``folder``; raises :class:`LessonError` when there is none."""
    for path in lesson_files(folder):
        match = _FILE_NAME.match(path.name)
        if match is not None and match.group(2) == lesson_id:
            return load_lesson(path)
    known = [m.group(2) for p in lesson_files(folder) if (m := _FILE_NAME.match(p.name))]
    raise LessonError("", "lesson", f"one of {', '.join(known) or 'no lessons'}", lesson_id)


# --- running and checking ---------------------------------------------------------------------------------


class _ProbeRecorder(Callback):
    def __init__(self) -> None:
        self.probes: dict[str, list[Any]] = {}
        self.epochs: dict[str, list[int]] = {}

    def on_probe(self, event: ProbeEvent) -> None:
        self.probes.setdefault(event.kind, []).append(event.value)
        self.epochs.setdefault(event.kind, []).append(event.epoch)


def run_lesson_headless(
    lesson: Lesson, progress: Callable[[int, int], None] | None = None
) -> LessonResults:
    """Train the lesson's preset in this process, one run after the other, then its study (if
    any, with :class:`~mtl_core.runs.executors.SerialExecutor`: recorded in the run store of
    ``$MTL_LAB_HOME``); returns every run's record and probes.

    ``progress(done, total)`` counts the preset's runs and the study's. ``cpu_seconds`` is the
    process CPU time spent (the measure of a lesson's cost on a shared machine).
    """
    from mtl_core.training.trainer import train

    study_runs = lesson.study_size()
    total = len(lesson.runs) + study_runs
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    if progress is not None:
        progress(0, total)
    results = []
    for index, run in enumerate(lesson.runs):
        recorder = _ProbeRecorder()
        record = train(run.config, [recorder])
        results.append(RunResult(run.label, run.seed, record, recorder.probes, probe_epochs=recorder.epochs))
        if progress is not None:
            progress(index + 1, total)
    study = None
    if lesson.study is not None:
        from mtl_core.runs.executors import SerialExecutor
        from mtl_core.studies.study import new_study_id, run_study

        offset = len(lesson.runs)

        def study_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(offset + done, total)

        study = run_study(lesson.study, SerialExecutor(), progress=study_progress,
                          group_id=new_study_id(f"lesson-{lesson.id}"))
    return LessonResults(lesson.id, results, study, cpu_seconds=time.process_time() - cpu_start,
                         wall_seconds=time.perf_counter() - wall_start)


def launch_lesson(
    lesson: Lesson,
    store: Any,
    owner: str | None = None,
    *,
    executor: Any = None,
    start: bool = True,
) -> dict[str, Any]:
    """Queue a lesson's preset for ``owner`` in ``store`` (a :class:`~mtl_core.runs.store.RunStore`) to
    train in the background: its runs as one group (:func:`mtl_core.studies.records.submit_runs`) and its
    study, if it has one, as a study record (:func:`mtl_core.studies.records.launch_study`). The presenter
    limits are checked over all of them before anything is queued (:class:`~mtl_core.workshop.limits.LimitError`).

    Returns ``group_id`` (of the runs), ``run_ids`` (in the order of ``lesson.runs``) and
    ``study_id`` (None without a study)."""
    from mtl_core.studies.records import launch_study, submit_runs
    from mtl_core.studies.study import plan_study
    from mtl_core.workshop.limits import check_limits

    configs = [run.config for run in lesson.runs]
    planned = plan_study(lesson.study) if lesson.study is not None else []
    check_limits(configs + [run.config for run in planned], owner, store=store, home=store.home)
    stamp, token = time.strftime("%Y%m%d-%H%M%S"), uuid.uuid4().hex[:6]
    group_id = f"lesson-{lesson.id}-{stamp}-{token}"
    run_ids = submit_runs(configs, store, owner=owner, group_id=group_id, executor=executor, start=start) if configs else []
    study_id = None
    if lesson.study is not None:
        study_id = launch_study(lesson.study, store, owner, study_id=f"study-{stamp}-{token}", lesson=lesson.id,
                                executor=executor, start=start)
    return {"group_id": group_id, "run_ids": run_ids, "study_id": study_id}


def evaluate_check(lesson: Lesson, results: LessonResults) -> tuple[bool, str]:
    """Whether every check of ``lesson`` holds on ``results``, and one line per check with the
    measured numbers (``✓`` / ``✗``). A check that cannot be computed (missing runs or probes)
    counts as failed, with the reason."""
    lines = []
    passed_all = True
    for spec in lesson.checks:
        try:
            outcome = CHECKS[spec.name].function(results, **dict(spec.params))
        except MTLError as exc:
            outcome = CheckOutcome(False, f"cannot be checked: {exc}")
        passed_all = passed_all and outcome.passed
        # The sentence names what it measured; the check's identifier is for lesson files, not readers.
        lines.append(f"{'✓' if outcome.passed else '✗'} {outcome.explanation}")
    return passed_all, "\n".join(lines)
