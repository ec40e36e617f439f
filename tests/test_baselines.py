"""Single-task baselines and Δm of one run (:mod:`mtl_core.analysis.baselines`): closed cases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtl_core.analysis import delta_m
from mtl_core.analysis.baselines import (
    BASELINE_METHOD,
    BASELINE_STRATEGY,
    baseline_configs,
    baseline_key,
    find_baseline,
    is_baseline,
    resolved_config,
    run_delta_m,
    task_deltas,
)
from mtl_core.config import TrainConfig

RUN = {
    "suite": "planted", "tasks": ["t1", "t2"], "suite_options": {"n_samples": 150, "dim": 6},
    "strategy": "hard", "strategy_options": {"hidden": 32, "depth": 2, "dropout": 0.1},
    "method": "pcgrad", "method_options": {"seed_projection": True}, "epochs": 10, "patience": None,
    "lr": 3e-3, "batch_size": 32, "seed": 1, "probe_interval": 5, "tag": True, "name": "mine",
}


def _single(**changes: object) -> dict[str, object]:
    return {**RUN, "strategy": "single", "strategy_options": {}, "method": "ew", "method_options": {},
            "tag": False, **changes}


def _metric(value: float | None, higher_is_better: bool) -> dict[str, object]:
    return {"metric": "accuracy" if higher_is_better else "mse", "value": value, "higher_is_better": higher_is_better}


# --- Δm (METHODS.md: (1/T) Σᵢ (−1)^{lᵢ} (M_{m,i} − M_{b,i}) / M_{b,i} × 100, positive = better) --------------
def test_delta_m_is_the_mean_signed_relative_change_in_percent() -> None:
    run = {"acc": _metric(0.6, True), "mse": _metric(1.0, False)}
    base = {"acc": _metric(0.5, True), "mse": _metric(2.0, False)}
    # acc: (0.6 − 0.5) / 0.5 = +20 %; mse, lower is better: −(1 − 2) / 2 = +50 %.
    assert task_deltas(run, base) == pytest.approx({"acc": 20.0, "mse": 50.0})
    assert run_delta_m(run, base) == pytest.approx(35.0)
    # The other way round both tasks are worse: acc (0.5 − 0.6) / 0.6, mse −(2 − 1) / 1.
    assert run_delta_m(base, run) == pytest.approx(100 * ((0.5 - 0.6) / 0.6 - 1.0) / 2)


def test_delta_m_leaves_out_tasks_without_a_usable_baseline() -> None:
    run = {"a": _metric(0.6, True), "b": _metric(3.0, False), "c": _metric(1.0, True), "d": _metric(None, True)}
    base = {"a": _metric(0.5, True), "c": _metric(0.0, True), "d": _metric(0.4, True)}  # b: none; c: zero
    assert task_deltas(run, base) == pytest.approx({"a": 20.0})
    assert run_delta_m(run, base) == pytest.approx(20.0)
    assert run_delta_m(run, {}) is None
    assert task_deltas(run, {}) == {}


def test_delta_m_of_one_run_matches_the_study_delta_m_on_one_seed() -> None:
    run = {"acc": _metric(0.7, True), "mse": _metric(0.8, False)}
    base = {"acc": _metric(0.5, True), "mse": _metric(1.0, False)}
    study = delta_m({"acc": [0.7], "mse": [0.8]}, {"acc": [0.5], "mse": [1.0]}, {"acc": True, "mse": False})
    assert run_delta_m(run, base) == pytest.approx(study.mean)


# --- which run is the baseline of which -------------------------------------------------------------------
def test_a_baseline_shares_suite_options_tasks_and_seed() -> None:
    assert baseline_key(RUN) == baseline_key(_single())
    assert baseline_key(RUN) != baseline_key(_single(seed=2))
    assert baseline_key(RUN) != baseline_key(_single(suite_options={"n_samples": 300, "dim": 6}))
    assert baseline_key(RUN) != baseline_key(_single(tasks=["t1"]))
    # Option order does not matter; a missing seed is seed 0.
    assert baseline_key(_single(suite_options={"dim": 6, "n_samples": 150})) == baseline_key(RUN)
    assert baseline_key({**RUN, "seed": None}) == baseline_key({**RUN, "seed": 0})


def test_all_tasks_match_the_same_tasks_named() -> None:
    specs = [{"name": "t1", "kind": "regression"}, {"name": "t2", "kind": "regression"}]
    everything = resolved_config({**RUN, "tasks": None}, specs)
    assert everything["tasks"] == ["t1", "t2"]
    assert baseline_key(everything) == baseline_key(_single())
    assert resolved_config(RUN)["tasks"] == ["t1", "t2"]


def test_find_baseline_prefers_the_same_budget_then_the_newest() -> None:
    candidates = {
        1: _single(epochs=20),                      # same key, other budget
        2: _single(),                               # same key and budget
        3: _single(),                               # same again, newer: chosen
        4: _single(seed=2),                         # another seed
        5: {**RUN, "method": "ew"},                 # not single-task
    }
    assert find_baseline(RUN, candidates) == 3
    assert find_baseline(RUN, {k: candidates[k] for k in (1, 2)}) == 2
    assert find_baseline(RUN, {k: candidates[k] for k in (1, 4, 5)}) == 1
    assert find_baseline(RUN, {k: candidates[k] for k in (4, 5)}) is None
    assert find_baseline(RUN, {}) is None


def test_a_baseline_has_no_baseline() -> None:
    assert is_baseline(_single()) and not is_baseline(RUN)
    assert find_baseline(_single(), {1: _single()}) is None


# --- the configs queued for a missing baseline ---------------------------------------------------------------
def test_baseline_configs_train_every_task_alone_with_the_same_budget() -> None:
    (config,) = baseline_configs(RUN)
    assert config["strategy"] == BASELINE_STRATEGY == "single"
    assert config["method"] == BASELINE_METHOD == "ew"
    assert config["strategy_options"] == {"hidden": 32, "depth": 2}  # the network's size, nothing else
    assert config["method_options"] == {} and config["tag"] is False and config["name"] is None
    for key in ("suite", "tasks", "suite_options", "epochs", "patience", "lr", "batch_size", "seed", "probe_interval"):
        assert config[key] == RUN[key], key
    assert RUN["strategy"] == "hard" and RUN["method"] == "pcgrad"  # the run's config is left alone
    assert baseline_key(config) == baseline_key(RUN)
    assert find_baseline(RUN, {7: config}) == 7
    TrainConfig.from_dict(config)  # a config the engine reads


def test_baseline_configs_keep_all_tasks_when_the_run_names_none() -> None:
    (config,) = baseline_configs({**RUN, "tasks": None, "strategy_options": {}})
    assert config["tasks"] is None and config["strategy_options"] == {}


def test_baselines_module_imports_no_torch() -> None:
    code = "import sys, mtl_core.analysis.baselines; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
