"""What a finished run measured: its stored result and test metrics, its single-task baseline and
Δm (the logic lives in :mod:`mtl_core.analysis.baselines`), and the per-epoch histories of runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mtl_core.analysis import baselines
from services.catalog import store, store_path
from services.live import LiveRun
from services.runs import RunSummary, list_runs, queue_runs

__all__ = [
    "stored_result",
    "final_metrics",
    "is_baseline",
    "find_baseline",
    "queued_baselines",
    "delta_m",
    "task_deltas",
    "queue_baseline",
    "run_histories",
]

_results: dict[tuple[str, int], dict[str, Any]] = {}
_RESULTS_KEPT = 512


def stored_result(run_id: int) -> dict[str, Any] | None:
    """A run's stored result. Results are written once, when the run ends, and run ids are never
    reused, so they are kept in memory (the newest few hundred) instead of parsed again."""
    key = (str(store_path()), int(run_id))
    if key in _results:
        return _results[key]
    result = store().get_result(run_id)
    if result is not None:
        if len(_results) >= _RESULTS_KEPT:
            _results.pop(next(iter(_results)))
        _results[key] = result
    return result


def final_metrics(run_id: int) -> dict[str, dict[str, Any]] | None:
    """Test metrics of a finished run: task → {metric, value, loss, higher_is_better}; None if none."""
    result = stored_result(run_id)
    if not result:
        return None
    return dict(result.get("final_metrics") or {}) or None


def _config(run: RunSummary) -> dict[str, Any]:
    """The run's config as :mod:`mtl_core.analysis.baselines` compares it (the tasks it trained named)."""
    return baselines.resolved_config(run.config, run.task_specs)


def is_baseline(run: RunSummary) -> bool:
    """Whether ``run`` is a single-task baseline (every task has its own network)."""
    return baselines.is_baseline(_config(run))


def find_baseline(run: RunSummary, candidates: Sequence[RunSummary] | None = None) -> RunSummary | None:
    """A finished single-task run (strategy ``single``) on the same suite, suite options, tasks and
    seed, preferring one with the same epochs, patience, learning rate and batch size; None if there is
    none (:func:`mtl_core.analysis.baselines.find_baseline`)."""
    if is_baseline(run):
        return None
    if candidates is None:
        candidates = list_runs(status="done", suite=run.suite, strategy=baselines.BASELINE_STRATEGY)
    finished = {c.id: c for c in candidates if c.status == "done"}
    found = baselines.find_baseline(_config(run), {run_id: _config(c) for run_id, c in finished.items()})
    return None if found is None else finished[found]


def delta_m(metrics: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Δm % of one run against its single-task baseline's metrics, **positive = better than
    single-task** (:func:`mtl_core.analysis.baselines.run_delta_m`); None when no task compares."""
    return baselines.run_delta_m(metrics, baseline)


def task_deltas(metrics: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Each comparable task's relative change in % against the baseline (positive = better)."""
    return baselines.task_deltas(metrics, baseline)


def queue_baseline(run: RunSummary, owner: str | None = None) -> list[int]:
    """Queue the single-task baseline of ``run`` (same suite, options, tasks, seed and budget)."""
    return queue_runs(baselines.baseline_configs(_config(run)), group_id=_baseline_group(run.id), owner=owner)


def queued_baselines(run: RunSummary) -> list[RunSummary]:
    """The baselines queued for ``run`` by :func:`queue_baseline` that have not finished yet."""
    return [r for r in list_runs(group_id=_baseline_group(run.id)) if not r.finished]


def _baseline_group(run_id: int) -> str:
    return f"baseline-of-{run_id}"


def run_histories(runs: Iterable[RunSummary]) -> dict[str, list[dict[str, Any]]]:
    """Per-epoch history of each run (label → records), from the stored result or, for a run still
    going, from its metric rows."""
    out = {}
    for run in runs:
        result = stored_result(run.id)
        if result and result.get("history"):
            out[run.label] = list(result["history"])
        else:
            live = LiveRun(run.id)
            live.refresh()
            out[run.label] = live.history
    return out
