"""Transfer studies: every task alone, every pair together (and optionally all tasks together),
over S seeds, run as one group of runs; then pairwise transfer, Δm %, gradient cosines, TAG
affinities and the best task groupings, in one JSON-ready dict (``study.json``).

Standley, T., Zamir, A., Chen, D., Guibas, L., Malik, J., Savarese, S. (2020). "Which Tasks Should
Be Learned Together in Multi-task Learning?". ICML 2020 — pairwise transfer and grouping from it.
Fifty, C. et al. (2021). "Efficiently Identifying Task Groupings for Multi-Task Learning".
NeurIPS 2021 — TAG inter-task affinity (:mod:`mtl_core.training.tag`).

Conventions (also written into ``study.json`` under ``conventions``):

* **protocol**: every run — alone, pair, all tasks, TAG — trains by one rule, up to ``max_epochs``
  epochs with early stopping once the sum of its validation losses has not improved for
  ``patience`` epochs (:class:`StudySpec`; the trainer's ``patience``), so that a transfer number
  is not an artefact of a step budget that suits one run size better than another. Each run's
  stopping epoch is under ``runs[*].stopped_epoch`` and summarised by role under ``stopping``;
* a task's metric is its **best validation metric over the epochs** (``best_val_metric`` of the
  run record; ``metric="final"`` uses the last epoch's instead), the same for alone and joint runs;
* ``transfer[i][j]`` = transfer(i ← j), the signed relative change of task i's metric when trained
  with j against alone, same seed (positive = j helps i); statistics in
  :mod:`mtl_core.analysis.transfer`; ``transfer.p_adjusted`` is the p-value Holm-adjusted over the
  T(T−1) cells (significance stars use it);
* ``affinity[i][j]`` = Z_{i→j} as TAG defines it (row = source, column = target): per run, each
  epoch's mean over its lookahead steps, then the median over the epochs up to the run's best
  epoch (:func:`run_affinity`), then the mean over the seeds' all-tasks hard-sharing runs;
* ``cosine[i][j]`` = mean cosine of the task gradients on the shared parameters, over the probe
  steps and seeds of the all-tasks runs (when the study has them) or of the pair {i, j} runs;
* groupings are partitions (see :mod:`mtl_core.analysis.grouping`): a task alone in its group
  scores 0. For ``affinity`` the score of b for a is Z_{b→a}.
* ``forecast`` = the early forecast of transfer (:mod:`mtl_core.analysis.forecast`): per step of the
  all-tasks / TAG runs, Spearman's ρ between the task pairs ranked by affinity and by cosine as
  computed from the records up to that step and ranked by the final transfer; None without either
  signal (a study analysed before it existed has no ``forecast`` key).

Execution: the runs are trained by an :class:`~mtl_core.runs.executors.Executor` (the background
worker pool, or this process) and read back from the run store. :func:`run_study` and
:func:`~mtl_core.studies.grouping_runs.evaluate_grouping` do it in the foreground (the CLI, lessons, benchmarks); a study launched
to train in the background (the pages) is a record of the run store, :mod:`mtl_core.studies.records`.
Both record the study and collect it from the store the same way.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtl_core.analysis.affinity import run_affinity
from mtl_core.analysis.forecast import groups_ceiling, running_mean, transfer_forecast
from mtl_core.analysis.grouping import best_groupings
from mtl_core.analysis.transfer import delta_m, nan_to_none, transfer_matrix
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.runs.executors import (
    PROBE_KINDS,
    Executor,
    ProgressCallback,
    RunOutcome,
    make_executor,
    stored_probes,
)

__all__ = [
    "StudySpec",
    "PlannedRun",
    "RunOutcome",
    "plan_study",
    "run_study",
    "collect_study",
    "new_study_id",
    "grouping_sources",
    "ScoreUnit",
    "SCORE_UNITS",
    "score_unit",
    "ProgressCallback",
    "STUDY_FORMAT",
    "DEFAULT_SEEDS",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_PATIENCE",
    "DEFAULT_MAX_EPOCHS",
    "protocol_text",
    "stopping_summary",
    "ROLES",
    "PROBE_KINDS",
    "PLANTED_STUDY_CONFIG",  # noqa: F822 — built on first use by the module's __getattr__
    "run_affinity",
    "apply_study_defaults",
    "stored_probes",
]

STUDY_FORMAT = "mtl_lab.study/1"
DEFAULT_SEEDS = 3
#: Gradient-probe interval (steps) of the runs the cosine matrix comes from, unless the base config sets one.
DEFAULT_PROBE_INTERVAL = TrainConfig.probe_interval
#: The study protocol's early stopping: each run stops once the sum of its validation losses has not
#: improved for this many epochs …
DEFAULT_PATIENCE = 10
#: … or after this many epochs.
DEFAULT_MAX_EPOCHS = 200
#: Significance level of the transfer cells (after Holm's correction over the cells).
ALPHA = 0.05
#: Run roles: one task alone, a pair, all the study's tasks, and TAG runs (hard sharing) for a
#: strategy without a shared representation.
ROLES = ("alone", "pair", "all", "affinity")

def apply_study_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (config fields, as a dict) with the suite's :attr:`~mtl_core.suites.base.Suite.study_defaults`
    filled in where ``data`` leaves them unset (None or absent); ``strategy_options`` only for the
    ``hard`` strategy and only when none are given."""
    from mtl_core.suites import SUITES

    out = dict(data)
    suite = out.get("suite") or TrainConfig.suite
    if not isinstance(suite, str) or suite not in SUITES.names():
        return out  # validation names the problem later
    for key, value in SUITES.get(suite, "suite").study_defaults.items():
        if key == "strategy_options":
            if (out.get("strategy") or TrainConfig.strategy) == "hard" and not out.get("strategy_options"):
                out[key] = dict(value)
        elif out.get(key) is None:
            out[key] = value
    # What neither the user nor the suite set takes the config's own default (a suite without study
    # defaults, e.g. a CSV suite, must not leave ``lr: None``); None stays where it means something.
    return {key: value for key, value in out.items() if value is not None or key in _NONE_MEANS_SOMETHING}


#: Config fields for which None is a value: all tasks, no early stopping, no name.
_NONE_MEANS_SOMETHING = frozenset({"tasks", "patience", "name"})


def __getattr__(name: str) -> Any:
    """``PLANTED_STUDY_CONFIG``, the default transfer study on ``planted`` (the Relationships page,
    lessons, benchmarks): the suite's own world (100 labelled rows per task, half of a shared pool)
    with its study defaults — a hard-sharing trunk of width 32 (narrow enough that unrelated tasks
    compete for it), Adam with lr 3e-3, batch 32, TAG lookahead at every step of the all-tasks run —
    under the study's protocol (early stopping). ``benchmarks/validity.py`` measures it: positive
    transfer inside planted groups, negative across.

    Built on first use (PEP 562): reading the suite's defaults imports the suites, and with them
    torch, which ``import mtl_core.studies.study`` (the CLI's ``--help``, the pages) must not pay for.
    """
    if name == "PLANTED_STUDY_CONFIG":
        config = TrainConfig.from_dict(apply_study_defaults({"suite": "planted", "strategy": "hard", "method": "ew"}))
        globals()[name] = config
        return config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySpec:
    """What to study. ``base`` is the config every run derives from (its ``tasks``: the study's
    tasks, None = all of the suite's; its ``seed`` is ignored in favour of ``seeds``).

    ``include_all`` adds an all-tasks run per seed (Δm % of the full set); ``tag`` records TAG
    affinity in all-tasks runs (hard sharing, or the study's strategy when it has a shared
    representation); ``metric`` is ``best`` (best validation epoch) or ``final`` (last epoch).
    ``probe_interval`` is the gradient-probe interval of the runs the cosine matrix comes from.

    The protocol: every run trains up to ``max_epochs`` epochs and stops once the sum of its
    validation losses has not improved for ``patience`` epochs; they replace the base config's
    ``epochs`` and ``patience`` (``patience ≥ max_epochs`` means no early stopping).
    """

    base: TrainConfig
    seeds: tuple[int, ...] = (0, 1, 2)
    include_all: bool = False
    tag: bool = False
    metric: str = "best"
    probe_interval: int = DEFAULT_PROBE_INTERVAL
    patience: int = DEFAULT_PATIENCE
    max_epochs: int = DEFAULT_MAX_EPOCHS

    def validated(self) -> StudySpec:
        """A copy with the base config validated, the study's tasks made explicit and the
        protocol (``max_epochs``, ``patience``) written into the base config."""
        for name, value in (("patience", self.patience), ("max_epochs", self.max_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ConfigError(name, "an integer in [1, 100000]", value)
        base = self.base.replace(epochs=self.max_epochs, patience=self.patience).validated()
        from mtl_core.suites import make_suite

        suite = make_suite(base.suite, **dict(base.suite_options))
        tasks = tuple(base.tasks) if base.tasks is not None else tuple(t.name for t in suite.task_specs())
        if len(tasks) < 2:
            raise ConfigError("tasks", "at least two task names for a transfer study", list(tasks))
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ConfigError("seeds", "a non-empty list of non-negative integers", list(seeds))
        if len(set(seeds)) != len(seeds):
            raise ConfigError("seeds", "distinct seeds", list(seeds))
        if self.metric not in ("best", "final"):
            raise ConfigError("metric", "best or final", self.metric)
        if isinstance(self.probe_interval, bool) or not isinstance(self.probe_interval, int) or self.probe_interval < 1:
            raise ConfigError("probe_interval", "an integer ≥ 1", self.probe_interval)
        # Every run of the study uses the same probe interval for the cosine; TAG is per run below.
        base = base.replace(tasks=tasks, tag=False, probe_interval=0)
        return StudySpec(base, seeds, bool(self.include_all), bool(self.tag), self.metric, self.probe_interval,
                         self.patience, self.max_epochs)

    @property
    def tasks(self) -> tuple[str, ...]:
        if self.base.tasks is None:
            raise ValueError("call `validated()` first: the study's tasks are not resolved")
        return tuple(self.base.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.base.to_dict(),
            "seeds": list(self.seeds),
            "include_all": self.include_all,
            "tag": self.tag,
            "metric": self.metric,
            "probe_interval": self.probe_interval,
            "patience": self.patience,
            "max_epochs": self.max_epochs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudySpec:
        """The spec that :meth:`to_dict` wrote (``study["spec"]``, a study manifest), not yet
        validated. A spec written before the protocol existed has no ``max_epochs``: its runs
        trained the config's ``epochs`` without early stopping, which is ``max_epochs = epochs``
        with ``patience = max_epochs`` (an early stop needs more epochs than there are)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("config"), Mapping):
            raise ConfigError("spec", "a study spec with a `config` mapping", data)
        base = TrainConfig.from_dict(data["config"])
        if "max_epochs" in data:
            max_epochs = data["max_epochs"]
            patience = data.get("patience", DEFAULT_PATIENCE)
        else:
            max_epochs = base.epochs
            patience = base.patience if base.patience is not None else max_epochs
        seeds = data.get("seeds", (0, 1, 2))
        if not isinstance(seeds, (list, tuple)):
            raise ConfigError("seeds", "a list of seeds", seeds)
        return cls(
            base,
            seeds=tuple(seeds),
            include_all=bool(data.get("include_all", False)),
            tag=bool(data.get("tag", False)),
            metric=data.get("metric", "best"),
            probe_interval=data.get("probe_interval", DEFAULT_PROBE_INTERVAL),
            patience=patience,
            max_epochs=max_epochs,
        )

    @classmethod
    def seeds_from(cls, first: int, count: int) -> tuple[int, ...]:
        """``count`` consecutive seeds from ``first``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError("seeds", "an integer ≥ 1", count)
        return tuple(range(first, first + count))


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its ``role`` (:data:`ROLES`), tasks, seed and full config."""

    role: str
    tasks: tuple[str, ...]
    seed: int
    config: TrainConfig


def _strategy_has_shared_representation(name: str) -> bool:
    from mtl_core.strategies import STRATEGIES

    return bool(STRATEGIES.get(name, "strategy").has_shared_representation)


def plan_study(spec: StudySpec) -> list[PlannedRun]:
    """Every run of the study, seed by seed: tasks alone, pairs, then all-tasks / TAG runs.

    Every run has ``epochs = spec.max_epochs`` and ``patience = spec.patience`` (the protocol).
    Gradient probes are on (``spec.probe_interval``) in the runs the cosine matrix comes from —
    the all-tasks runs when there are any, else the pair runs; TAG is on in the all-tasks runs.
    """
    spec = spec.validated()
    tasks = spec.tasks
    tag_in_all = spec.tag and _strategy_has_shared_representation(spec.base.strategy)
    with_all = spec.include_all or tag_in_all
    probe_pairs = 0 if with_all else spec.probe_interval
    runs: list[PlannedRun] = []
    for seed in spec.seeds:
        seeded = spec.base.replace(seed=seed)
        for task in tasks:
            runs.append(PlannedRun("alone", (task,), seed, seeded.replace(tasks=(task,))))
        for pair in itertools.combinations(tasks, 2):
            runs.append(PlannedRun("pair", pair, seed, seeded.replace(tasks=pair, probe_interval=probe_pairs)))
        if with_all:
            runs.append(PlannedRun("all", tasks, seed, seeded.replace(probe_interval=spec.probe_interval, tag=tag_in_all)))
        if spec.tag and not tag_in_all:
            # TAG needs one shared representation: measure it in a hard-sharing run of all tasks.
            hard = seeded.replace(strategy="hard", strategy_options={}, tag=True, probe_interval=0)
            runs.append(PlannedRun("affinity", tasks, seed, hard))
    for index, run in enumerate(runs):
        name = f"study {run.role} {'+'.join(run.tasks)} seed {run.seed}"
        runs[index] = PlannedRun(run.role, run.tasks, run.seed, run.config.replace(name=name).validated())
    return runs


# --- collecting the results -------------------------------------------------------------------------------


def protocol_text(patience: int, max_epochs: int, metric: str = "best", *, for_json: bool = True) -> str:
    """The study protocol in one sentence, for ``study.json``'s ``conventions`` (``for_json``: with
    where the stopping epochs are in the file) and the Relationships page (without)."""
    if patience >= max_epochs:  # an early stop needs more epochs than there are
        rule = (f"every run — alone, pair, all — trains all max_epochs = {max_epochs} epochs "
                f"(patience = {patience} ≥ max_epochs: no early stopping)")
    else:
        rule = (f"every run — alone, pair, all — trains up to max_epochs = {max_epochs} epochs and stops when "
                f"the sum of its validation losses has not improved for patience = {patience} epochs")
    taken = ("its best validation metric over the epochs trained" if metric == "best"
             else "its validation metric at the last epoch trained")
    where = "; stopping epochs are under runs[*].stopped_epoch" if for_json else ""
    return f"{rule}; each task's metric is {taken}{where}."


def stopping_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """When the finished runs stopped, by role and ``overall``: ``median``, ``min``, ``max`` of
    ``stopped_epoch``, ``n`` runs and ``at_max_epochs`` (how many ran out of epochs instead of
    stopping). ``rows`` are ``study["runs"]``; rows without a ``stopped_epoch`` are left out."""
    epochs: dict[str, list[int]] = {}
    at_max: dict[str, int] = {}
    for row in rows:
        stopped = row.get("stopped_epoch")
        if row.get("status") != "done" or not isinstance(stopped, int) or isinstance(stopped, bool):
            continue
        for key in (str(row.get("role")), "overall"):
            epochs.setdefault(key, []).append(stopped)
            at_max[key] = at_max.get(key, 0) + (row.get("stop_reason") == "max_epochs")
    order = [*ROLES, "overall"]
    return {
        key: {"median": float(np.median(values)), "min": int(min(values)), "max": int(max(values)),
              "n": len(values), "at_max_epochs": at_max[key]}
        for key, values in sorted(epochs.items(), key=lambda item: order.index(item[0]) if item[0] in order else 0)
    }


def _run_metrics(result: Mapping[str, Any] | None, tasks: Sequence[str], metric: str) -> dict[str, float]:
    """Each task's validation metric in a run record (NaN when missing)."""
    out = {task: math.nan for task in tasks}
    if not result:
        return out
    if metric == "best":
        values = result.get("best_val_metric") or {}
    else:
        history = result.get("history") or []
        values = history[-1].get("val_metric", {}) if history else {}
    for task in tasks:
        value = values.get(task)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[task] = float(value)
    return out


def _mean_matrix(matrices: Sequence[tuple[Any, float]], size: int) -> np.ndarray | None:
    """Weighted mean of (matrix, weight) pairs, ignoring NaN entries; None when there are none."""
    if not matrices:
        return None
    stack = np.asarray([np.asarray(m, dtype=float) for m, _ in matrices])
    if stack.shape[1:] != (size, size):
        return None
    weights = np.asarray([w for _, w in matrices], dtype=float)[:, None, None] * np.isfinite(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(np.nan_to_num(stack) * weights, axis=0) / weights.sum(axis=0)
    return np.where(weights.sum(axis=0) > 0, mean, np.nan)


def _cosine_study(runs: Sequence[PlannedRun], outcomes: Sequence[RunOutcome], tasks: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
    size = len(tasks)
    position = {task: i for i, task in enumerate(tasks)}
    all_runs = [(run, out) for run, out in zip(runs, outcomes, strict=True) if run.role == "all"]
    if all_runs:
        per_run = []
        for _, outcome in all_runs:
            matrices = [(value, 1.0) for kind, value, _ in outcome.probes if kind == "cosine"]
            mean = _mean_matrix(matrices, size)
            if mean is not None:
                per_run.append((mean, 1.0))
        return _mean_matrix(per_run, size), "all"
    cells: dict[tuple[int, int], list[float]] = {}
    for run, outcome in zip(runs, outcomes, strict=True):
        if run.role != "pair":
            continue
        values = [np.asarray(value, dtype=float)[0, 1] for kind, value, _ in outcome.probes
                  if kind == "cosine" and np.asarray(value).shape == (2, 2)]
        values = [v for v in values if math.isfinite(v)]
        if values:
            i, j = position[run.tasks[0]], position[run.tasks[1]]
            cells.setdefault((i, j), []).append(float(np.mean(values)))
    if not cells:
        return None, None
    matrix = np.full((size, size), math.nan)
    np.fill_diagonal(matrix, 1.0)
    for (i, j), values in cells.items():
        matrix[i, j] = matrix[j, i] = float(np.mean(values))
    return matrix, "pair"


def _affinity_study(runs: Sequence[PlannedRun], outcomes: Sequence[RunOutcome], tasks: Sequence[str]) -> np.ndarray | None:
    size = len(tasks)
    per_run = []
    for run, outcome in zip(runs, outcomes, strict=True):
        if not run.config.tag:
            continue
        # Each ``affinity`` record is one epoch's mean over its lookahead steps.
        records = [(value, extra) for kind, value, extra in outcome.probes if kind == "affinity"]
        matrix = run_affinity(records, (outcome.result or {}).get("best_epoch"), size)
        if matrix is not None:
            per_run.append((matrix, 1.0))
    return _mean_matrix(per_run, size)


def _probe_steps(outcome: RunOutcome, kind: str) -> list[tuple[int, Any, dict[str, Any]]]:
    """A run's ``kind`` probe records as ``(step, value, extra)``: the record's own step when the
    outcome carries it, else the last step of its epoch (the run record's history)."""
    epoch_steps = {entry.get("epoch"): entry.get("step") for entry in (outcome.result or {}).get("history") or []}
    out = []
    for record_kind, value, extra in outcome.probes:
        if record_kind != kind:
            continue
        step = extra.get("step", epoch_steps.get(extra.get("epoch")))
        if isinstance(step, int) and not isinstance(step, bool):
            out.append((step, value, extra))
    return out


def _affinity_snapshots(outcome: RunOutcome, size: int) -> list[tuple[int, np.ndarray]]:
    """One TAG run's affinity as :func:`run_affinity` makes it from its first epochs, after each epoch:
    the median over the epochs so far (up to the run's best epoch once past it, so the last snapshot is
    the run's own affinity)."""
    records = _probe_steps(outcome, "affinity")
    best_epoch = (outcome.result or {}).get("best_epoch")
    snapshots = []
    for index, (step, _, _) in enumerate(records):
        matrix = run_affinity([(value, extra) for _, value, extra in records[:index + 1]], best_epoch, size)
        if matrix is not None:
            snapshots.append((step, matrix))
    return snapshots


def _forecast_study(runs: Sequence[PlannedRun], outcomes: Sequence[RunOutcome], tasks: Sequence[str],
                    transfer_mean: Any, cosine_source: str | None, tag: bool) -> dict[str, Any] | None:
    """``study["forecast"]`` (:func:`mtl_core.analysis.forecast.transfer_forecast`): per step of the
    runs that measure the cheap signals, Spearman's ρ between the pair ranking of each signal as the
    study would have computed it from the runs stopped at that step and the final transfer ranking.
    TAG affinity per run as :func:`run_affinity` makes it from the epochs so far (the median over them,
    up to the run's best epoch once past it); the cosine as the mean of the all-tasks runs' probes so
    far. None when the study measures neither."""
    size = len(tasks)
    signals: dict[str, list[list[tuple[int, Any]]]] = {}
    used: list[RunOutcome] = []
    for run, outcome in zip(runs, outcomes, strict=True):
        if outcome.status != "done":
            continue
        if tag and run.config.tag:
            signals.setdefault("affinity", []).append(_affinity_snapshots(outcome, size))
            used.append(outcome)
        if cosine_source == "all" and run.role == "all":
            records = [(step, value) for step, value, _ in _probe_steps(outcome, "cosine")
                       if np.asarray(value).shape == (size, size)]
            signals.setdefault("cosine", []).append(running_mean(records))
            used.append(outcome)
    signals = {name: per_run for name, per_run in signals.items() if any(per_run)}
    if not signals or transfer_mean is None:
        return None
    total = max(int((outcome.result or {}).get("steps") or 0) for outcome in used)
    return transfer_forecast(signals, transfer_mean, total)


def grouping_sources(study: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The score matrices of a study a grouping can come from, as ``scores[a][b]`` = benefit of b
    to a: ``transfer`` (mean), ``affinity`` (transposed: Z_{b→a}) and ``cosine``, where present.
    Missing off-diagonal cells (failed runs) count as 0 (no evidence either way)."""
    sources: dict[str, np.ndarray] = {}
    transfer = study.get("transfer") or {}
    candidates = {
        "transfer": transfer.get("mean") if isinstance(transfer, Mapping) else None,
        "affinity": study.get("affinity"),
        "cosine": study.get("cosine"),
    }
    for name, matrix in candidates.items():
        if matrix is None:
            continue
        array = np.array([[math.nan if v is None else float(v) for v in row] for row in matrix], dtype=float)
        if name == "affinity":
            array = array.T
        off_diagonal = ~np.eye(array.shape[0], dtype=bool)
        if not np.isfinite(array[off_diagonal]).any():
            continue
        array[off_diagonal & ~np.isfinite(array)] = 0.0
        sources[name] = array
    return sources


@dataclass(frozen=True)
class ScoreUnit:
    """What a grouping source's predicted score is: ``name`` in words ("relative change vs alone",
    "mean gradient cosine") and ``percent``: a relative change of the validation metric, the unit of
    the measured gain (shown in %), else a unitless score comparable to the measurement only by rank."""

    source: str
    name: str
    percent: bool

    def format(self, value: float | None) -> str:
        """``value`` in this unit: "+2.54 %" for a relative change, "+0.202" for a unitless score."""
        if value is None or not math.isfinite(value):
            return "—"
        return f"{100 * value:+.2f} %" if self.percent else f"{value:+.3g}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name, "percent": self.percent}


SCORE_UNITS: dict[str, ScoreUnit] = {
    "transfer": ScoreUnit("transfer", "relative change vs alone", percent=True),
    "affinity": ScoreUnit("affinity", "TAG affinity", percent=False),
    "cosine": ScoreUnit("cosine", "mean gradient cosine", percent=False),
}
"""The unit of each source of :func:`grouping_sources`; a grouping's measured gain is always a relative change."""


def score_unit(source: str) -> ScoreUnit:
    """The :class:`ScoreUnit` of a grouping source (an unknown one: a unitless score under its own name)."""
    return SCORE_UNITS.get(source, ScoreUnit(source, f"{source} score", percent=False))


def _conventions(spec: StudySpec) -> dict[str, str]:
    """``study.json``'s ``conventions``: how each of its numbers was made, in words."""
    return {
        "protocol": protocol_text(spec.patience, spec.max_epochs, spec.metric),
        "transfer": "transfer[i][j] = transfer(i ← j): relative change of task i's validation metric when "
                    "trained with task j vs alone, same seed; positive = j helps i. Mean, 95 % t CI and "
                    "paired t-test p-value over seeds; diagonal null. p_adjusted: the p-values Holm-adjusted "
                    "(Holm's step-down correction) over the T(T−1) off-diagonal cells with a p-value; a "
                    f"cell is significant when p_adjusted < α = {ALPHA:g}.",
        "delta_m": "Δm % = 100 · mean over the tasks of the signed relative change vs single-task, same "
                   "seeds; positive = better than single-task.",
        "affinity": "affinity[i][j] = TAG Z_{i→j} = 1 − L_j(after a step θ − η∇L_i on task i) / L_j(before), "
                    "on the same batch; positive = a step for task i helps task j. Per run: each epoch's mean "
                    "over its lookahead steps, then the median over the epochs up to the run's best epoch; "
                    "then the mean over seeds.",
        "cosine": "cosine[i][j] = mean cosine of the gradients of tasks i and j on the shared parameters.",
        "forecast": "forecast.signals[name][k] = Spearman ρ between the task pairs ranked by the cheap signal "
                    "(TAG affinity, mean gradient cosine) as computed from the runs' records up to step "
                    "forecast.steps[k] and ranked by the final transfer; a pair's score is the mean of its two "
                    "directed cells; pairs with a missing cell are left out; None below 3 pairs. "
                    "forecast.reached[name] = the first step with ρ ≥ forecast.threshold (None: never). "
                    "forecast.planted_ceiling (a suite with planted groups) = the ρ of the planted groups "
                    "themselves (1 inside a group, 0 across): about the most a signal that finds the groups "
                    "can reach, since transfer ranks the pairs inside and across the groups by noise.",
        "groupings": "partitions into at most k groups; a task's predicted score is the mean of its "
                     "group mates' scores for it (0 when alone); score = mean over tasks.",
    }


def _per_seed_metrics(
    spec: StudySpec, runs: Sequence[PlannedRun], outcomes: Sequence[RunOutcome]
) -> tuple[dict[str, dict[int, float]], dict[tuple[str, str], dict[int, float]], dict[str, dict[int, float]], list[dict[str, Any]]]:
    """Each task's metric per seed alone, in each pair (``pairs[(a, b)]``: a's metric trained with
    b) and with all tasks, and ``study["runs"]``'s rows."""
    alone: dict[str, dict[int, float]] = {task: {} for task in spec.tasks}
    pairs: dict[tuple[str, str], dict[int, float]] = {}
    joint_all: dict[str, dict[int, float]] = {task: {} for task in spec.tasks}
    rows = []
    for run, outcome in zip(runs, outcomes, strict=True):
        values = _run_metrics(outcome.result if outcome.status == "done" else None, run.tasks, spec.metric)
        if run.role == "alone":
            alone[run.tasks[0]][run.seed] = values[run.tasks[0]]
        elif run.role == "pair":
            a, b = run.tasks
            pairs.setdefault((a, b), {})[run.seed] = values[a]
            pairs.setdefault((b, a), {})[run.seed] = values[b]
        elif run.role == "all":
            for task in spec.tasks:
                joint_all[task][run.seed] = values[task]
        record = outcome.result or {}
        rows.append({
            "run_id": outcome.run_id, "role": run.role, "tasks": list(run.tasks), "seed": run.seed,
            "status": outcome.status, "error": outcome.error, "metrics": values,
            "stopped_epoch": record.get("stopped_epoch"), "best_epoch": record.get("best_epoch"),
            "stop_reason": record.get("stop_reason"),
        })
    return alone, pairs, joint_all, rows


def _planted_groups(outcomes: Sequence[RunOutcome], tasks: Sequence[str]) -> list[list[str]] | None:
    """The suite's planted groups (from the first run record that has them), restricted to ``tasks``."""
    for outcome in outcomes:
        if outcome.result and "planted_groups" in outcome.result:
            groups = [[t for t in group if t in tasks] for group in outcome.result["planted_groups"]]
            return [group for group in groups if group]
    return None


def _study_notes(spec: StudySpec, runs: Sequence[PlannedRun], outcomes: Sequence[RunOutcome],
                 cosine: np.ndarray | None, affinity: np.ndarray | None) -> list[str]:
    """Why a matrix the finished runs should have given is missing."""
    notes = []
    finished = [run for run, outcome in zip(runs, outcomes, strict=True) if outcome.status == "done"]
    if cosine is None and any(run.config.probe_interval > 0 for run in finished):
        notes.append("no gradient-cosine probe record: the runs had no shared parameters or fewer steps "
                     f"than the probe interval ({spec.probe_interval})")
    if spec.tag and affinity is None and any(run.config.tag for run in finished):
        notes.append("no TAG affinity record: the all-tasks runs had fewer steps than TAG's lookahead interval")
    return notes


def collect_study(
    spec: StudySpec,
    runs: Sequence[PlannedRun],
    outcomes: Sequence[RunOutcome],
    group_id: str,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Assemble ``study.json`` from the planned runs and their outcomes (same order)."""
    spec = spec.validated()
    if len(runs) != len(outcomes):
        raise ValueError(f"`outcomes` must have one entry per run ({len(runs)}), got {len(outcomes)}")
    tasks, seeds = spec.tasks, spec.seeds
    from mtl_core.suites import make_suite

    specs = {t.name: t for t in make_suite(spec.base.suite, **dict(spec.base.suite_options)).task_specs()}
    higher = {task: specs[task].higher_is_better for task in tasks}
    alone, pairs, joint_all, run_rows = _per_seed_metrics(spec, runs, outcomes)
    delta_pairs = []
    for a, b in itertools.combinations(tasks, 2):
        summary = delta_m({a: pairs[(a, b)], b: pairs[(b, a)]}, {a: alone[a], b: alone[b]}, higher, seeds=seeds)
        delta_pairs.append({"tasks": [a, b], **summary.to_dict()})
    delta_all = None
    if any(run.role == "all" for run in runs):
        delta_all = {"tasks": list(tasks), **delta_m(joint_all, alone, higher, seeds=seeds).to_dict()}
    cosine, cosine_source = _cosine_study(runs, outcomes, tasks)
    affinity = _affinity_study(runs, outcomes, tasks) if spec.tag else None
    study: dict[str, Any] = {
        "format": STUDY_FORMAT,
        "group_id": group_id,
        "tasks": list(tasks),
        "seeds": list(seeds),
        "spec": spec.to_dict(),
        "config": spec.base.to_dict(),
        "metric": {
            "source": "best_val_metric" if spec.metric == "best" else "final_val_metric",
            "tasks": {task: {"name": specs[task].metric, "higher_is_better": higher[task]} for task in tasks},
        },
        "conventions": _conventions(spec),
        "transfer": transfer_matrix(tasks, alone, pairs, higher, seeds=seeds).to_dict(),
        "cosine": nan_to_none(cosine) if cosine is not None else None,
        "cosine_source": cosine_source,
        "delta_m": {"pairs": delta_pairs, "all": delta_all},
        "n_runs": len(runs),
        "n_failed": sum(1 for outcome in outcomes if outcome.status != "done"),
        "runs": run_rows,
        "stopping": stopping_summary(run_rows),
    }
    if spec.tag:
        study["affinity"] = nan_to_none(affinity) if affinity is not None else None
    study["forecast"] = _forecast_study(runs, outcomes, tasks, study["transfer"].get("mean"), cosine_source, spec.tag)
    study["notes"] = _study_notes(spec, runs, outcomes, cosine, affinity)
    planted = _planted_groups(outcomes, tasks)
    if planted is not None:
        study["planted_groups"] = planted
        if study["forecast"] is not None:  # how far a signal that finds the groups can get (forecast.py)
            study["forecast"]["planted_ceiling"] = groups_ceiling(planted, tasks, study["transfer"].get("mean"))
    study["groupings"] = {
        source: [grouping.to_dict() for grouping in best_groupings(scores, tasks)]
        for source, scores in grouping_sources(study).items()
    }
    if seconds is not None:
        study["timings"] = {"seconds": round(seconds, 3), "runs": len(runs)}
    return nan_to_none(study)


def new_study_id(kind: str = "study") -> str:
    """A fresh id for a study or grouping evaluation (its runs' ``group_id``)."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_study(
    spec: StudySpec,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
    group_id: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """A study in the foreground: record it in the run store of ``executor`` (default:
    :func:`~mtl_core.runs.executors.make_executor`) with :func:`mtl_core.studies.records.launch_study`, train
    its runs there and collect it (:func:`mtl_core.studies.records.collect`); returns ``study.json``'s
    content. ``progress(done, total)`` reports runs finished; ``group_id`` is the study's id."""
    from mtl_core.studies.records import collect, launch_study

    executor = executor or make_executor()
    store = executor.store
    started = time.perf_counter()
    study_id = launch_study(spec, store, owner, study_id=group_id, start=False)
    executor.train(store.get_study(study_id).run_ids, progress)
    study = collect(study_id, store)
    study["timings"] = {"seconds": round(time.perf_counter() - started, 3), "runs": study["n_runs"]}
    return study
