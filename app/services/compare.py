"""Comparing runs over seeds: one row per (run, task) with the change against single-task, then
mean ± 95 % CI per setting and task, and Δm per setting (the Compare page)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mtl_core.analysis import summarize_seeds
from mtl_core.analysis.baselines import BASELINE_STRATEGY
from mtl_core.runs.export import frame_to_csv
from services.results import delta_m, final_metrics, find_baseline, task_deltas
from services.runs import RunSummary, list_runs, run_labels, setting_labels
from services.text import literal

__all__ = ["mean_ci", "format_ci", "compare_table", "aggregate_table", "settings_table", "summary_csv", "runs_csv",
           "Selection", "default_selection", "keep_selection", "run_list"]

#: At most this many runs of one submission are selected by default (3 methods × 3 seeds fit, plus some);
#: without a submission, the newest comparable runs up to :data:`DEFAULT_RUNS`.
DEFAULT_GROUP_RUNS = 12
DEFAULT_RUNS = 6


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and Student-t confidence interval over seeds (:func:`mtl_core.analysis.summarize_seeds`);
    no interval (None) for fewer than two values."""
    summary = summarize_seeds([math.nan if v is None else float(v) for v in values], confidence)
    if not math.isfinite(summary.ci_low) or not math.isfinite(summary.ci_high):
        return summary.mean, None, None
    return summary.mean, summary.ci_low, summary.ci_high


def format_ci(mean: float, low: float | None, high: float | None, signed: bool = False) -> str:
    """``"0.512 ± 0.031"`` (or just the mean without an interval; "—" for no value)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{mean:+.4g}" if signed else f"{mean:.4g}"
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return text
    return f"{text} ± {(high - low) / 2:.2g}"


@dataclass(frozen=True)
class Selection:
    """Runs chosen for the Compare page (ids, newest first) and why, in a sentence (markdown, the
    user's names escaped)."""

    run_ids: list[int]
    reason: str


def run_list(ids: Sequence[int]) -> str:
    """``#3``, ``#3 and #5``, ``#3, #5 and #8``."""
    names = [f"#{i}" for i in ids]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _comparable(run: RunSummary) -> tuple[str, tuple[str, ...]]:
    """What runs must share for their metrics to line up task by task: the suite and the tasks."""
    return run.suite, tuple(run.tasks or ())


def _what(run: RunSummary) -> str:
    """``suite planted, tasks t1, t2`` as markdown text (the names are the user's: shown literally)."""
    tasks = ", ".join(literal(task) for task in run.tasks) if run.tasks else "all its tasks"
    return f"suite {literal(run.suite)}, tasks {tasks}"


def default_selection(runs: Sequence[RunSummary]) -> Selection:
    """The runs to compare before the user picks any, from ``runs`` (newest first): the newest run
    and the runs queued together with it (one submission, lesson or study: the same ``group_id``)
    that share its suite and tasks; when it was queued alone, the newest runs comparable with it."""
    if not runs:
        return Selection([], "")
    newest = max(runs, key=lambda run: (run.created_at, run.id))
    ordered = sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)
    comparable = [run for run in ordered if _comparable(run) == _comparable(newest)]
    together = [run for run in comparable if newest.group_id and run.group_id == newest.group_id]
    if len(together) > 1:
        chosen = together[:DEFAULT_GROUP_RUNS]
        size = (f"the {len(chosen)} newest of the {len(together)} runs" if len(together) > len(chosen)
                else f"the {len(chosen)} runs")
        return Selection([run.id for run in chosen],
                         f"Selected for you: {size} queued together with the newest finished run, "
                         f"#{newest.id} ({_what(newest)}).")
    chosen = comparable[:DEFAULT_RUNS]
    if len(chosen) == 1:
        return Selection([newest.id], f"Selected for you: the newest finished run, #{newest.id} ({_what(newest)}); "
                                      "no other finished run has its suite and tasks.")
    return Selection([run.id for run in chosen],
                     f"Selected for you: the newest finished run, #{newest.id}, and the {len(chosen) - 1} newest "
                     f"runs comparable with it (same {_what(newest)}).")


def keep_selection(selected: Sequence[int], runs: Sequence[RunSummary]) -> tuple[list[int], list[int]]:
    """The ``selected`` run ids that are among ``runs`` (the runs the filters let through), in the
    order selected, and those that are not (dropped)."""
    available = {run.id for run in runs}
    return [i for i in selected if i in available], [i for i in selected if i not in available]


def _settings(runs: Sequence[RunSummary]) -> dict[int, str]:
    """Run id → setting label: runs that differ only by seed share one, runs that differ in any other
    setting never do. The label is ``strategy · method`` and the other settings that differ between
    ``runs`` (``hard · ew · p_in 0.9``; :func:`mtl_core.runs.labels.setting_labels`)."""
    return setting_labels(runs, always=("strategy", "method"))


def compare_table(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """One row per (run, task): the test metric, the task's relative change against the single-task
    baseline of the same seed (``delta``, %, positive = better) and the run's Δm % (NaN without one)."""
    baselines = list_runs(status="done", strategy=BASELINE_STRATEGY)
    settings = _settings(runs)
    names = run_labels(runs, always=("strategy", "method", "seed"))
    rows = []
    for run in runs:
        metrics = final_metrics(run.id)
        if not metrics:
            continue
        baseline = find_baseline(run, baselines)
        base_metrics = final_metrics(baseline.id) if baseline is not None else None
        dm = delta_m(metrics, base_metrics) if base_metrics else None
        deltas = task_deltas(metrics, base_metrics) if base_metrics else {}
        for task, entry in metrics.items():
            one = deltas.get(task)
            rows.append({
                "setting": settings[run.id],
                "run": f"#{run.id} {names[run.id]}",
                "run_id": run.id,
                "seed": run.seed,
                "task": task,
                "metric": entry.get("metric"),
                "higher_is_better": bool(entry.get("higher_is_better")),
                "value": entry.get("value"),
                "delta": math.nan if one is None else one,
                "delta_m": math.nan if dm is None else dm,
                "baseline_run": None if baseline is None else baseline.id,
            })
    columns = ["setting", "run", "run_id", "seed", "task", "metric", "higher_is_better", "value", "delta",
               "delta_m", "baseline_run"]
    return pd.DataFrame(rows, columns=columns)


def aggregate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, task): mean ± 95 % CI over seeds of the test metric and of its change against
    single-task (``delta``, %)."""
    rows = []
    for (setting, task), part in table.groupby(["setting", "task"], sort=False):
        mean, low, high = mean_ci(part["value"].tolist())
        delta, delta_low, delta_high = mean_ci(part["delta"].dropna().tolist())
        rows.append({
            "setting": setting, "task": task, "metric": part["metric"].iloc[0],
            "higher_is_better": bool(part["higher_is_better"].iloc[0]), "seeds": int(part["seed"].nunique()),
            "mean": mean, "ci_low": low, "ci_high": high,
            "delta": delta, "delta_ci_low": delta_low, "delta_ci_high": delta_high,
        })
    columns = ["setting", "task", "metric", "higher_is_better", "seeds", "mean", "ci_low", "ci_high", "delta",
               "delta_ci_low", "delta_ci_high"]
    return pd.DataFrame(rows, columns=columns)


def settings_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the number of seeds and Δm % (mean ± 95 % CI over the seeds that have a baseline)."""
    rows = []
    for setting, part in table.groupby("setting", sort=False):
        per_run = part.drop_duplicates("run_id")
        mean, low, high = mean_ci(per_run["delta_m"].dropna().tolist())
        rows.append({"setting": setting, "runs": len(per_run), "seeds": int(per_run["seed"].nunique()),
                     "delta_m": mean, "delta_m_ci_low": low, "delta_m_ci_high": high})
    return pd.DataFrame(rows, columns=["setting", "runs", "seeds", "delta_m", "delta_m_ci_low", "delta_m_ci_high"])


def summary_csv(summary: pd.DataFrame, settings: pd.DataFrame) -> str:
    """The Compare page's summary download: :func:`aggregate_table` with each setting's Δm % and its CI
    (:func:`settings_table`), written by the one CSV writer (formula-looking task names neutralised)."""
    columns = ["setting", "delta_m", "delta_m_ci_low", "delta_m_ci_high"]
    return frame_to_csv(summary.merge(settings[columns], on="setting", how="left"))


def runs_csv(table: pd.DataFrame) -> str:
    """The Compare page's per-run download: :func:`compare_table` as CSV, by the one CSV writer."""
    return frame_to_csv(table)
