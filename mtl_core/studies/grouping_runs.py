"""Training a chosen grouping: after a transfer study (:mod:`mtl_core.studies.study`), the groups a
person picked (or the best grouping) are trained as one multi-task run per group over the study's
seeds, and each task's metric in its group is compared with the task alone from the study.

:func:`plan_grouping` makes the runs (:class:`GroupingPlan`), :func:`collect_grouping` reads their
results back, :func:`evaluate_grouping` does both in the foreground (the CLI, reports), and
:func:`evaluation_summary` says what came out in one sentence. A grouping launched from the pages is
a record of the run store (:mod:`mtl_core.studies.records`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtl_core.analysis.grouping import rank_agreement
from mtl_core.analysis.transfer import nan_to_none, relative_change, summarize_seeds
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.runs.executors import (
    Executor,
    ProgressCallback,
    RunOutcome,
    make_executor,
    run_outcomes,
)
from mtl_core.studies.study import StudySpec, _run_metrics, grouping_sources, score_unit

__all__ = ["GroupingPlan", "plan_grouping", "collect_grouping", "evaluate_grouping", "evaluation_summary"]


@dataclass(frozen=True)
class GroupingPlan:
    """How to evaluate ``groups`` of a study: the runs to train (``configs``: each group of two or
    more tasks, per seed, with the study's config and protocol; ``keys[i]`` = (group, seed) of
    ``configs[i]``), the prediction from ``source`` and what the measurement compares against
    (the study's own alone runs, same seeds)."""

    groups: tuple[tuple[str, ...], ...]
    source: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    metric: str
    higher: Mapping[str, bool]
    alone: Mapping[str, Mapping[int, float]]
    predicted: Mapping[str, float]
    keys: tuple[tuple[tuple[str, ...], int], ...]
    configs: tuple[TrainConfig, ...]


def _alone_metrics(study: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[int, float]]:
    alone: dict[str, dict[int, float]] = {task: {} for task in tasks}
    for row in study["runs"]:
        if row["role"] == "alone":
            value = row["metrics"].get(row["tasks"][0])
            alone[row["tasks"][0]][int(row["seed"])] = math.nan if value is None else float(value)
    return alone


def plan_grouping(study: Mapping[str, Any], groups: Sequence[Sequence[str]], source: str = "transfer") -> GroupingPlan:
    """The runs that evaluate ``groups`` (a partition of the study's tasks) and what they are
    compared with; raises :class:`ConfigError` for groups that are not a partition or a source
    the study lacks."""
    tasks = list(study["tasks"])
    flat = [task for group in groups for task in group]
    if sorted(flat) != sorted(tasks):
        raise ConfigError("groups", f"a partition of the study's tasks ({', '.join(tasks)})", [list(g) for g in groups])
    sources = grouping_sources(study)
    if source not in sources:
        raise ConfigError("source", f"one of {', '.join(sources) or 'no available source'}", source)
    from mtl_core.analysis.grouping import task_scores

    # The study's own protocol (max_epochs, patience), also for a study written before it had one.
    spec = StudySpec.from_dict(study["spec"])
    base = spec.base.replace(epochs=spec.max_epochs, patience=spec.patience)
    seeds = tuple(int(s) for s in study["seeds"])
    trained = [tuple(group) for group in groups if len(group) >= 2]
    keys = tuple((group, seed) for seed in seeds for group in trained)
    configs = tuple(
        base.replace(tasks=group, seed=seed, probe_interval=0, tag=False,
                     name=f"grouping {'+'.join(group)} seed {seed}").validated()
        for group, seed in keys
    )
    return GroupingPlan(
        groups=tuple(tuple(group) for group in groups), source=source, tasks=tuple(tasks), seeds=seeds,
        metric=spec.metric,
        higher={task: bool(info["higher_is_better"]) for task, info in study["metric"]["tasks"].items()},
        alone=_alone_metrics(study, tasks), predicted=task_scores(sources[source], groups, tasks),
        keys=keys, configs=configs,
    )


def collect_grouping(plan: GroupingPlan, outcomes: Sequence[RunOutcome]) -> dict[str, Any]:
    """Each task's measured relative change against alone next to its predicted score, from the
    outcomes of ``plan.configs`` (same order; unfinished runs count as missing).

    Predicted and measured are in the same units only for ``source="transfer"`` (``unit``:
    :func:`score_unit`); ``rank_agreement`` (:func:`mtl_core.analysis.grouping.rank_agreement`) compares
    their orders over the tasks (one alone is predicted and measured 0, its baseline), the comparison
    that holds for every source."""
    if len(outcomes) != len(plan.configs):
        raise ValueError(f"`outcomes` must have one entry per run ({len(plan.configs)}), got {len(outcomes)}")
    joint: dict[str, dict[int, float]] = {task: {} for task in plan.tasks}
    for (group, seed), outcome in zip(plan.keys, outcomes, strict=True):
        values = _run_metrics(outcome.result if outcome.status == "done" else None, group, plan.metric)
        for task in group:
            joint[task][seed] = values[task]
    trained = {task for group, _ in plan.keys for task in group}
    per_task = {}
    per_seed_changes = []
    for task in plan.tasks:
        if task in trained:
            changes = relative_change([joint[task].get(s, math.nan) for s in plan.seeds],
                                      [plan.alone[task].get(s, math.nan) for s in plan.seeds], plan.higher[task])
        else:
            changes = np.zeros(len(plan.seeds))  # alone: the baseline itself
        per_seed_changes.append(changes)
        per_task[task] = {"predicted": plan.predicted[task], **summarize_seeds(changes).to_dict()}
    overall = summarize_seeds(np.mean(np.vstack(per_seed_changes), axis=0))
    return nan_to_none({
        "groups": [list(group) for group in plan.groups],
        "source": plan.source,
        "unit": score_unit(plan.source).to_dict(),
        "rank_agreement": rank_agreement(plan.predicted, {task: per_task[task]["mean"] for task in plan.tasks}).to_dict(),
        "seeds": list(plan.seeds),
        "predicted_score": float(np.mean(list(plan.predicted.values()))),
        "measured_score": overall.to_dict(),
        "tasks": per_task,
        "runs": [{"run_id": o.run_id, "tasks": list(g), "seed": s, "status": o.status, "error": o.error,
                  "stopped_epoch": (o.result or {}).get("stopped_epoch")}
                 for (g, s), o in zip(plan.keys, outcomes, strict=True)],
    })


def _order_sentence(agreement: Mapping[str, Any] | None) -> str:
    agreement = agreement or {}
    if not agreement.get("pairs"):
        return "Too few tasks measured (or all tied) to compare the predicted order with the measured one."
    sentence = (f"Over the {agreement['n']} tasks measured, the prediction orders "
                f"{agreement['concordant']} of {agreement['pairs']} pairs of tasks as measured")
    if agreement.get("spearman") is not None:
        sentence += f" (Spearman rank correlation ρ = {agreement['spearman']:+.2f})"
    return sentence + "."


def evaluation_summary(evaluation: Mapping[str, Any], *, bold: bool = False) -> str:
    """The measured vs predicted outcome of a grouping (:func:`collect_grouping`) in words, each number
    in its own unit: the measured mean gain is a relative change (%); a transfer prediction is one too,
    any other source's is a unitless score, compared with the measurement by order only. ``bold``: the
    measured gain in Markdown bold."""
    unit = score_unit(str(evaluation.get("source", "transfer")))
    measured = (evaluation.get("measured_score") or {}).get("mean")
    predicted = evaluation.get("predicted_score")
    gain = score_unit("transfer").format(measured)
    gain = f"**{gain}**" if bold and measured is not None else gain
    sentence = f"Measured mean gain over tasks: {gain} against training each task alone"
    if unit.percent:
        return sentence + f" (predicted {unit.format(predicted)})."
    return (sentence + f". The prediction is a {unit.name} (mean over tasks {unit.format(predicted)}, unitless), "
            "not a change of the metric, so only its order is compared. "
            + _order_sentence(evaluation.get("rank_agreement")))


def evaluate_grouping(
    study: Mapping[str, Any],
    groups: Sequence[Sequence[str]],
    source: str = "transfer",
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
    group_id: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Train ``groups`` in the foreground (:func:`plan_grouping`: every group of two or more tasks,
    for each of the study's seeds, by the study's protocol) with ``executor`` and compare each
    task's measured relative change against alone with the predicted score from ``source``'s
    matrix (:func:`collect_grouping`). The runs are queued as :func:`mtl_core.studies.records.launch_grouping`
    queues them: recorded as a grouping evaluation when the study is a record of the same store."""
    from mtl_core.studies.records import queue_grouping

    plan = plan_grouping(study, groups, source)
    executor = executor or make_executor()
    store = executor.store
    ids = queue_grouping(plan, study.get("group_id"), store, owner, grouping_id=group_id, start=False)
    executor.train(ids, progress)
    return collect_grouping(plan, run_outcomes(store, ids))

