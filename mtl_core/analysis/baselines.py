"""Single-task baselines and Δm of one run: which stored run is the baseline of which, the configs
that train a missing baseline, and Δm % against it (Maninis et al. 2019).

A run's baseline is a run of the ``single`` strategy (one network per task, no sharing) with the
plain sum of losses (``ew``) on the same suite, suite options, tasks and seed: what each task reaches
trained alone. Everything here works on plain run configs (``TrainConfig.to_dict()``) and test
metrics (a run result's ``final_metrics``), so the dashboard and the command line share it. No torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtl_core.analysis.transfer import relative_change

__all__ = [
    "BASELINE_STRATEGY",
    "BASELINE_METHOD",
    "resolved_config",
    "is_baseline",
    "baseline_key",
    "find_baseline",
    "baseline_configs",
    "task_deltas",
    "run_delta_m",
]

#: The strategy and method of a single-task baseline: every task trained alone, its loss unweighted.
BASELINE_STRATEGY = "single"
BASELINE_METHOD = "ew"
#: Strategy options a baseline keeps from the run it serves: the network's size, so that a task alone
#: gets the same capacity as each task's path in the multi-task model.
_KEPT_STRATEGY_OPTIONS = ("hidden", "depth")
#: Settings a baseline should share with its run (training budget); preferred, not required.
_BUDGET_KEYS = ("epochs", "patience", "lr", "batch_size")


def resolved_config(config: Mapping[str, Any], task_specs: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A run's config with ``tasks`` naming the tasks it trained (from the task specs its record holds,
    ``RunRecord.info["tasks"]``), so that ``tasks: null`` (all of the suite's tasks) compares equal
    to the same tasks listed by name."""
    out = dict(config)
    if task_specs:
        out["tasks"] = [spec["name"] for spec in task_specs]
    return out


def is_baseline(config: Mapping[str, Any]) -> bool:
    """Whether a run of ``config`` is a single-task baseline (and so has none of its own)."""
    return config.get("strategy") == BASELINE_STRATEGY


def baseline_key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a run and its baseline share: suite, suite options, tasks and seed (compare keys of
    :func:`resolved_config` dicts)."""
    return (
        config.get("suite"),
        json.dumps(config.get("suite_options") or {}, sort_keys=True),
        tuple(config.get("tasks") or ()),
        int(config.get("seed", 0) or 0),
    )


def find_baseline(config: Mapping[str, Any], candidates: Mapping[int, Mapping[str, Any]]) -> int | None:
    """The id of the baseline of a run of ``config`` among ``candidates`` (finished runs: id → resolved
    config): a ``single`` run with the same :func:`baseline_key`, preferring the most settings of the
    training budget (epochs, patience, learning rate, batch size) in common, then the newest (largest
    id). None for a baseline itself, or when no candidate matches."""
    if is_baseline(config):
        return None
    key = baseline_key(config)
    matches = [run_id for run_id, other in candidates.items() if is_baseline(other) and baseline_key(other) == key]
    if not matches:
        return None

    def shared_budget(run_id: int) -> int:
        return sum(candidates[run_id].get(k) == config.get(k) for k in _BUDGET_KEYS)

    return min(matches, key=lambda run_id: (-shared_budget(run_id), -run_id))


def baseline_configs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The configs to queue for the baseline of a run of ``config`` (a :func:`resolved_config`): the
    same suite, options, tasks, seed and budget, with the ``single`` strategy (keeping the network's
    ``hidden`` and ``depth``), the ``ew`` method, no TAG probe and no name. One config: the ``single``
    strategy trains every task alone within one run."""
    baseline = dict(config)
    width = {k: v for k, v in (config.get("strategy_options") or {}).items() if k in _KEPT_STRATEGY_OPTIONS}
    baseline.update({"strategy": BASELINE_STRATEGY, "strategy_options": width, "method": BASELINE_METHOD,
                     "method_options": {}, "tag": False, "name": None})
    if config.get("tasks"):
        baseline["tasks"] = list(config["tasks"])
    return [baseline]


def _relative_changes(metrics: Mapping[str, Mapping[str, Any]],
                      baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Per task with a usable value on both sides: the signed relative change of the test metric
    against the baseline (a fraction; positive = better)."""
    changes = {}
    for task, entry in metrics.items():
        base = baseline.get(task)
        if base is None or entry.get("value") is None or base.get("value") is None:
            continue
        change = float(relative_change(entry["value"], base["value"], bool(entry.get("higher_is_better"))))
        if math.isfinite(change):
            changes[task] = change
    return changes


def task_deltas(metrics: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Each task's signed relative change in % against its baseline (``metrics`` and ``baseline``:
    ``final_metrics``, task → {value, higher_is_better, …}); tasks that cannot be compared (no
    baseline value, a zero baseline) are left out."""
    return {task: 100.0 * change for task, change in _relative_changes(metrics, baseline).items()}


def run_delta_m(metrics: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Δm % of one run (Maninis et al. 2019): 100 · the mean over tasks of the signed relative change
    (M_run − M_base) / |M_base| of the test metric, negated where lower is better — **positive =
    better than single-task**. Tasks without a usable baseline value are left out; None when no task
    can be compared. :func:`mtl_core.analysis.delta_m` is the same over seeds, for studies."""
    changes = list(_relative_changes(metrics, baseline).values())
    if not changes:
        return None
    return 100.0 * float(np.mean(changes))
