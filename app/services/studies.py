"""Transfer studies and grouping evaluations: the Relationships and Groupings pages' side of the engine.

A study (or grouping evaluation) is a record of the run store (:mod:`mtl_core.studies.records`): its runs
(``group_id`` = the study's id) and a row holding its spec and run ids in plan order, from which
:func:`mtl_core.studies.records.collect` rebuilds the analysis at any time (partially while it runs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtl_core import analysis
from mtl_core.analysis.grouping import Suggestion as GroupingSuggestion
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.runs.store import StudyNotFoundError
from mtl_core.studies import records as engine_studies
from mtl_core.studies import study as engine_study
from mtl_core.studies.grouping_runs import evaluation_summary
from mtl_core.studies.records import StudyInfo
from mtl_core.studies.study import ScoreUnit, StudySpec, score_unit
from services.catalog import autostart, catalog, store

__all__ = [
    "STUDY_RUN_WARNING",
    "StudyForm",
    "StudyInfo",
    "study_size",
    "study_settings",
    "launch_study",
    "list_studies",
    "get_study",
    "study_result",
    "study_heatmaps",
    "study_protocol",
    "study_protocol_defaults",
    "study_forecast",
    "TAG_CHECKBOX",
    "grouping_sources",
    "best_groupings",
    "predicted_scores",
    "GroupingSuggestion",
    "grouping_suggestion",
    "ScoreUnit",
    "score_unit",
    "launch_grouping",
    "grouping_result",
    "evaluation_summary",
    "groupings_order",
]

STUDY_RUN_WARNING = 60


def study_protocol_defaults() -> dict[str, int]:
    """The study protocol's defaults (:class:`mtl_core.studies.study.StudySpec`): ``patience``, ``max_epochs``."""
    return {"patience": engine_study.DEFAULT_PATIENCE, "max_epochs": engine_study.DEFAULT_MAX_EPOCHS}


@dataclass
class StudyForm:
    """What the Relationships page collects to launch a transfer study. Every run trains up to
    ``max_epochs`` epochs and stops once its validation loss has not improved for ``patience``
    (None: the engine's defaults, :func:`study_protocol_defaults`)."""

    suite: str
    tasks: list[str]
    suite_options: dict[str, Any] = field(default_factory=dict)
    strategy: str = "hard"
    method: str = "ew"
    max_epochs: int | None = None
    patience: int | None = None
    #: None: the suite's study defaults (``Suite.study_defaults``), else the trainer's.
    lr: float | None = None
    batch_size: int | None = None
    seeds: int = 2
    include_all: bool = True
    tag: bool = True


def _study_spec(form: StudyForm) -> StudySpec:
    catalog()
    if len(form.tasks) < 2:
        raise ConfigError("tasks", "at least two tasks for a transfer study", list(form.tasks))
    base = TrainConfig.from_dict(engine_study.apply_study_defaults({
        "suite": form.suite, "tasks": list(form.tasks), "suite_options": dict(form.suite_options),
        "strategy": form.strategy, "method": form.method, "lr": form.lr, "batch_size": form.batch_size,
    }))
    seeds = StudySpec.seeds_from(0, form.seeds)
    protocol = {key: value for key, value in (("patience", form.patience), ("max_epochs", form.max_epochs))
                if value is not None}
    return StudySpec(base, seeds=seeds, include_all=form.include_all, tag=form.tag, **protocol).validated()


def study_settings(form: StudyForm) -> str:
    """One line on the model and optimiser settings a study from ``form`` would use, e.g.
    "hard sharing (width 32, depth 2), Adam lr 0.003, batch 32"."""
    base = _study_spec(form).base
    options = dict(base.strategy_options)
    shape = f" (width {options['hidden']}, depth {options['depth']})" if {"depth", "hidden"} <= set(options) else ""
    return f"{base.strategy} sharing{shape}, {base.optimizer.capitalize()} lr {base.lr:g}, batch {base.batch_size}"


def study_size(form: StudyForm) -> int:
    """How many runs the study would queue (raises :class:`ConfigError` for a bad form)."""
    return len(engine_study.plan_study(_study_spec(form)))


def launch_study(form: StudyForm, owner: str | None = None) -> str:
    """Queue every run of a transfer study for ``owner`` (the session's id), after checking the
    presenter limits (:class:`~mtl_core.workshop.limits.LimitError`), and return its id (the runs' ``group_id``)."""
    return engine_studies.launch_study(_study_spec(form), store(), owner, start=autostart())


def list_studies(kind: str = "study") -> list[StudyInfo]:
    """Studies (or grouping evaluations, ``kind="grouping"``) of the lab home, newest first."""
    return engine_studies.list_studies(store(), kind)


def get_study(group_id: str) -> StudyInfo | None:
    """One study or grouping evaluation with its progress, None when there is none."""
    try:
        return engine_studies.get_study(str(group_id), store())
    except StudyNotFoundError:
        return None


_study_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def study_result(info: StudyInfo) -> dict[str, Any]:
    """The study's analysis (``study.json`` content), partial while runs are missing; the engine
    keeps a finished study's analysis, and the last partial one is kept here until a run finishes."""
    key = (info.group_id, info.done, info.failed)
    if key not in _study_cache:
        catalog()
        result = engine_studies.collect(info.group_id, store())
        _study_cache.clear()
        _study_cache[key] = result
    return _study_cache[key]


def _matrix(values: Any) -> list[list[float]] | None:
    if values is None:
        return None
    return [[math.nan if v is None else float(v) for v in row] for row in values]


def study_heatmaps(result: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data for the Relationships heatmaps: tasks, a clustering order (from transfer, else
    affinity, else cosine), the transfer statistics (``p_adjusted``: Holm-adjusted, computed here for a
    study written before it was stored), the affinity and cosine matrices, and the protocol."""
    tasks = list(result["tasks"])
    transfer = result.get("transfer") or {}
    statistics = {key: _matrix(transfer.get(key)) for key in ("mean", "ci_low", "ci_high", "p_value", "p_adjusted")}
    if statistics["p_adjusted"] is None and statistics["p_value"] is not None:
        statistics["p_adjusted"] = analysis.holm_adjust(statistics["p_value"]).tolist()
    data = {
        "tasks": tasks,
        "transfer": statistics,
        "protocol": study_protocol(result),
        "affinity": _matrix(result.get("affinity")),
        "cosine": _matrix(result.get("cosine")),
        "planted_groups": result.get("planted_groups"),
        "delta_m": result.get("delta_m") or {},
        "n_failed": result.get("n_failed", 0),
    }
    basis = None
    for candidate in (data["transfer"]["mean"], data["affinity"], data["cosine"]):
        if candidate is not None and np.isfinite(np.asarray(candidate, dtype=float)[~np.eye(len(tasks), dtype=bool)]).any():
            basis = candidate
            break
    data["order_basis"] = basis
    return data


_ROLE_WORDS = {"alone": "alone", "pair": "pairs", "all": "all tasks", "affinity": "TAG runs"}


def study_protocol(result: Mapping[str, Any]) -> dict[str, str | None]:
    """How the study's runs were trained, in words: ``rule`` (``conventions.protocol``, None for a
    study written before it was recorded) and ``stopping`` ("Runs stopped after a median of 34
    epochs (alone 30, pairs 36)", None while no run has finished or for such an older study)."""
    rule = (result.get("conventions") or {}).get("protocol")
    spec = result.get("spec") or {}
    if rule and {"patience", "max_epochs"} <= set(spec):  # the same rule, without the file's field names
        rule = engine_study.protocol_text(spec["patience"], spec["max_epochs"], spec.get("metric", "best"),
                                          for_json=False)
    stopping = result.get("stopping") or {}
    overall = stopping.get("overall")
    sentence = None
    if overall:
        parts = [f"{_ROLE_WORDS.get(role, role)} {summary['median']:g}" for role, summary in stopping.items()
                 if role != "overall"]
        sentence = f"Runs stopped after a median of {overall['median']:g} epochs ({', '.join(parts)})"
        sentence += f", between {overall['min']} and {overall['max']}."
        if overall.get("at_max_epochs"):
            sentence += (f" {overall['at_max_epochs']} of {overall['n']} runs reached the maximum number of "
                         "epochs before their validation loss stopped improving.")
    return {"rule": rule, "stopping": sentence}


#: The launch form's checkbox that gives a study its TAG and probe runs (the forecast's signals).
TAG_CHECKBOX = "Also measure TAG affinity and gradient cosines"


def study_forecast(result: Mapping[str, Any], finished: bool = True) -> dict[str, Any]:
    """The early forecast of transfer for the Relationships page: ``forecast`` (``study.json``'s,
    None when the study has none) and one ``sentence`` — what the forecast shows, or why there is
    none and what to tick to get one."""
    forecast = result.get("forecast")
    if isinstance(forecast, Mapping) and forecast.get("signals"):
        return {"forecast": dict(forecast), "sentence": analysis.forecast_sentence(forecast)}
    measured = bool((result.get("spec") or {}).get("tag"))
    if not measured:
        sentence = (f"This study measured no TAG affinity or gradient probes in an all-tasks run, so there is no "
                    f"early forecast of transfer: tick **{TAG_CHECKBOX}** when launching a study to see how early "
                    "in training they rank the task pairs as the final transfer does.")
    elif "forecast" not in result:
        sentence = ("This study was analysed before MTL Lab made the early forecast of transfer; launch it again "
                    "(same settings) to see how early TAG affinity and the gradient cosine rank the pairs.")
    elif not finished:
        sentence = "The early forecast appears once an all-tasks run with TAG and gradient probes has finished."
    else:
        sentence = ("No early forecast: the all-tasks runs left no TAG affinity or gradient probe record "
                    "(see the notes of the study's JSON).")
    return {"forecast": None, "sentence": sentence}


def grouping_sources(result: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """Score matrices a grouping can come from (``scores[a][b]`` = benefit of b to a)."""
    return {name: matrix.tolist() for name, matrix in engine_study.grouping_sources(result).items()}


def best_groupings(result: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """The best partition for each k = 1 … T from ``source`` (the study's own, else computed)."""
    stored = (result.get("groupings") or {}).get(source)
    if stored:
        return list(stored)
    scores = grouping_sources(result)[source]
    return [g.to_dict() for g in analysis.best_groupings(scores, result["tasks"])]


def predicted_scores(result: Mapping[str, Any], source: str, groups: Sequence[Sequence[str]]) -> dict[str, float]:
    """Each task's predicted score in ``groups`` (raises ``ValueError`` if not a partition)."""
    return analysis.task_scores(grouping_sources(result)[source], [list(g) for g in groups], result["tasks"])


def grouping_suggestion(groupings: Sequence[Mapping[str, Any]]) -> GroupingSuggestion:
    """Which of ``groupings`` (:func:`best_groupings`) to offer first: the best one that trains tasks
    together, and whether every task alone is predicted to do better still."""
    return analysis.suggest_grouping(groupings)


def launch_grouping(study: StudyInfo, groups: Sequence[Sequence[str]], source: str, owner: str | None = None) -> str:
    """Queue the runs that train ``groups`` (each group of 2+ tasks, per seed) for ``owner``, after
    checking the presenter limits; returns the evaluation's id."""
    catalog()
    return engine_studies.launch_grouping(study.group_id, [list(g) for g in groups], source, store(), owner,
                                          start=autostart())


def grouping_result(info: StudyInfo) -> dict[str, Any] | None:
    """Measured vs predicted of a grouping evaluation (None until its study can be read)."""
    catalog()
    try:
        return engine_studies.collect(info.group_id, store())
    except StudyNotFoundError:
        return None


def groupings_order(evaluations: Sequence[StudyInfo]) -> dict[str, Any] | None:
    """How the predicted order of several trained groupings (finished, same study and source) matches
    their measured order (:func:`mtl_core.analysis.grouping.rank_agreement` of their predicted scores
    and measured mean gains); None below two such groupings with a measurement."""
    predicted, measured = {}, {}
    for info in evaluations:
        outcome = grouping_result(info) if info.finished else None
        gain = ((outcome or {}).get("measured_score") or {}).get("mean")
        if outcome is not None and gain is not None:
            predicted[info.group_id], measured[info.group_id] = outcome["predicted_score"], gain
    if len(measured) < 2:
        return None
    return analysis.rank_agreement(predicted, measured).to_dict()
