"""Transfer studies end to end: the plan, the planted-groups correctness check, the worker pool,
collecting results, training a chosen grouping, and the `study` / `group` commands."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtl_core.cli import main
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.study import (
    PLANTED_STUDY_CONFIG,
    LocalSerialExecutor,
    PoolExecutor,
    RunOutcome,
    StudySpec,
    collect_study,
    evaluate_grouping,
    plan_study,
    run_study,
)

#: A tiny study for the plumbing tests.
TINY = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    epochs=2,
    batch_size=32,
    lr=0.01,
)


def test_plan_has_every_task_alone_and_every_pair_for_each_seed() -> None:
    spec = StudySpec(TINY, seeds=(4, 5))
    runs = plan_study(spec)
    assert len(runs) == 2 * (3 + 3)
    assert {(r.role, r.tasks) for r in runs if r.seed == 4} == {
        ("alone", ("t1",)), ("alone", ("t2",)), ("alone", ("t3",)),
        ("pair", ("t1", "t2")), ("pair", ("t1", "t3")), ("pair", ("t2", "t3")),
    }
    for run in runs:
        assert run.config.seed == run.seed and run.config.tasks == run.tasks
        assert not run.config.tag
        # without all-tasks runs, the cosine comes from the pair runs' gradient probes
        assert run.config.probe_interval == (5 if run.role == "pair" else 0)
    with_all = plan_study(StudySpec(TINY, seeds=(0,), include_all=True, tag=True))
    assert [r.role for r in with_all].count("all") == 1
    (all_run,) = [r for r in with_all if r.role == "all"]
    assert all_run.config.tag and all_run.config.probe_interval == 5 and all_run.tasks == ("t1", "t2", "t3")
    assert all(r.config.probe_interval == 0 for r in with_all if r.role == "pair")
    # a strategy without one shared representation gets separate hard-sharing TAG runs
    soft = plan_study(StudySpec(TINY.replace(strategy="mmoe", strategy_options={}), seeds=(0,), tag=True))
    (affinity_run,) = [r for r in soft if r.role == "affinity"]
    assert affinity_run.config.strategy == "hard" and affinity_run.config.tag


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="`tasks` must be at least two"):
        StudySpec(TINY.replace(tasks=("t1",))).validated()
    with pytest.raises(ConfigError, match="`seeds` must be distinct"):
        StudySpec(TINY, seeds=(1, 1)).validated()
    with pytest.raises(ConfigError, match="`metric` must be best or final"):
        StudySpec(TINY, metric="last").validated()
    with pytest.raises(ConfigError, match="`suite` must be one of"):
        StudySpec(TINY.replace(suite="nope")).validated()


def test_planted_study_recovers_the_planted_groups() -> None:
    progress: list[tuple[int, int]] = []
    study = run_study(StudySpec(PLANTED_STUDY_CONFIG, seeds=(0, 1, 2)), LocalSerialExecutor(),
                      progress=lambda done, total: progress.append((done, total)))
    tasks = study["tasks"]
    assert tasks == ["t1", "t2", "t3", "t4", "t5", "t6"]
    assert study["n_runs"] == 63 and study["n_failed"] == 0
    assert progress[0] == (0, 63) and progress[-1] == (63, 63)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    planted = study["planted_groups"]
    assert planted == [["t1", "t3", "t5"], ["t2", "t4", "t6"]]

    mean = np.array([[math.nan if v is None else v for v in row] for row in study["transfer"]["mean"]])
    group = {task: g for g, members in enumerate(planted) for task in members}
    inside = [mean[i, j] for i, a in enumerate(tasks) for j, b in enumerate(tasks) if a != b and group[a] == group[b]]
    across = [mean[i, j] for i, a in enumerate(tasks) for j, b in enumerate(tasks) if group[a] != group[b]]
    assert np.mean(inside) > 0.0  # related tasks help each other on average …
    assert np.mean(inside) > np.mean(across) + 0.03  # … and more than unrelated ones

    (two,) = [g for g in study["groupings"]["transfer"] if g["k"] == 2]
    assert sorted(sorted(g) for g in two["groups"]) == planted
    # the cosine of the pair runs' gradients sees the same structure
    (two_cos,) = [g for g in study["groupings"]["cosine"] if g["k"] == 2]
    assert sorted(sorted(g) for g in two_cos["groups"]) == planted


def _outcome(run_id: int, tasks: tuple[str, ...], values: dict[str, float]) -> RunOutcome:
    result = {"best_val_metric": {t: values[t] for t in tasks}, "history": [{"val_metric": {t: values[t] for t in tasks}}]}
    return RunOutcome(run_id, "done", result)


def test_collect_marks_identical_runs_not_significant_and_failed_runs_missing() -> None:
    spec = StudySpec(TINY, seeds=(0, 1, 2)).validated()
    runs = plan_study(spec)
    alone = {0: {"t1": 1.0, "t2": 0.5, "t3": 0.8}, 1: {"t1": 1.2, "t2": 0.4, "t3": 0.9}, 2: {"t1": 0.9, "t2": 0.6, "t3": 0.7}}
    outcomes = []
    for index, run in enumerate(runs):
        values = dict(alone[run.seed])
        if run.tasks == ("t1", "t3"):
            values["t1"] *= 0.8  # t3 helps t1 by 20 % in every seed … but with zero spread
        if run.tasks == ("t2", "t3") and run.seed == 1:
            outcomes.append(RunOutcome(index, "failed", None, "boom"))
            continue
        outcomes.append(_outcome(index, run.tasks, values))
    study = collect_study(spec, runs, outcomes, "g1")
    json.dumps(study, allow_nan=False)
    transfer = study["transfer"]
    # t1 ← t2: the joint runs reproduce the alone runs exactly in every seed
    assert transfer["mean"][0][1] == 0.0 and transfer["p_value"][0][1] == 1.0
    assert transfer["mean"][0][2] == pytest.approx(0.2) and transfer["p_value"][0][2] == 1.0
    assert all(transfer["mean"][i][i] is None for i in range(3))
    assert transfer["n"][1][2] == 2 and study["n_failed"] == 1
    failed = [r for r in study["runs"] if r["status"] == "failed"]
    assert failed[0]["error"] == "boom" and failed[0]["metrics"]["t2"] is None
    pair_13 = [d for d in study["delta_m"]["pairs"] if d["tasks"] == ["t1", "t3"]][0]
    assert pair_13["mean"] == pytest.approx(10.0)  # (20 % + 0 %) / 2
    assert study["delta_m"]["all"] is None and study["cosine"] is None


@pytest.mark.slow
def test_pool_runs_the_study_as_one_group_with_the_same_results(tmp_path: Path) -> None:
    from mtl_core.store import RunStore
    from mtl_core.workers import stop_pool

    spec = StudySpec(TINY.replace(tasks=("t1", "t2")), seeds=(0, 1), include_all=True)
    progress: list[tuple[int, int]] = []
    try:
        pooled = run_study(spec, PoolExecutor(max_workers=2, timeout=240), group_id="study-pool-test",
                           progress=lambda done, total: progress.append((done, total)))
    finally:
        stop_pool(timeout=20)
    serial = run_study(spec, LocalSerialExecutor())
    assert progress[-1] == (8, 8)
    ids = [row["run_id"] for row in pooled["runs"]]
    assert all(isinstance(i, int) for i in ids)
    store = RunStore.at_home()
    assert sorted(r.id for r in store.list_runs(group_id="study-pool-test")) == sorted(ids)
    # training is deterministic on the CPU: the pool and this process give the same study
    assert pooled["transfer"] == serial["transfer"]
    assert pooled["delta_m"] == serial["delta_m"]
    assert pooled["cosine"] == pytest.approx(serial["cosine"])


def test_evaluate_grouping_reports_measured_next_to_predicted() -> None:
    study = run_study(StudySpec(TINY, seeds=(0, 1)), LocalSerialExecutor())
    groups = [["t1", "t3"], ["t2"]]
    evaluation = evaluate_grouping(study, groups, "transfer", LocalSerialExecutor())
    # a pair group is exactly a pair run of the study: measured = the study's transfer cells
    transfer = study["transfer"]["mean"]
    assert evaluation["tasks"]["t1"]["mean"] == pytest.approx(transfer[0][2])
    assert evaluation["tasks"]["t3"]["mean"] == pytest.approx(transfer[2][0])
    assert evaluation["tasks"]["t1"]["predicted"] == pytest.approx(transfer[0][2])
    assert evaluation["tasks"]["t2"]["mean"] == 0.0 and evaluation["tasks"]["t2"]["predicted"] == 0.0
    assert len(evaluation["runs"]) == 2
    with pytest.raises(ConfigError, match="`groups` must be a partition"):
        evaluate_grouping(study, [["t1", "t2"]], "transfer", LocalSerialExecutor())
    with pytest.raises(ConfigError, match="`source` must be one of"):
        evaluate_grouping(study, groups, "affinity", LocalSerialExecutor())


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_study_and_group_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study.json"
    result = cli("study", "--suite", "planted", "--tasks", "t1,t2,t3", "--suite-opt", "n_samples=60",
                 "--suite-opt", "dim=6", "--strategy-opt", "hidden=8", "--strategy-opt", "depth=1",
                 "--strategy", "hard", "--method", "ew", "--seeds", "2", "--epochs", "2", "--batch-size", "10", "--tag",
                 "--executor", "serial", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = json.loads(out.read_text())
    tasks = study["tasks"]
    assert tasks == ["t1", "t2", "t3"] and study["seeds"] == [0, 1]
    for key in ("mean", "ci_low", "ci_high", "p_value"):
        matrix = study["transfer"][key]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
        assert all(matrix[i][i] is None for i in range(3))
    assert np.asarray(study["affinity"], dtype=float).shape == (3, 3)
    assert np.asarray(study["cosine"], dtype=float).shape == (3, 3)
    assert set(study["groupings"]) == {"transfer", "affinity", "cosine"}
    for groupings in study["groupings"].values():
        assert [g["k"] for g in groupings] == [1, 2, 3]
        assert all({"k", "groups", "score"} <= set(g) for g in groupings)
    assert len(study["delta_m"]["pairs"]) == 3 and study["delta_m"]["all"]["tasks"] == tasks
    assert study["planted_groups"] == [["t1", "t3"], ["t2"]]
    assert "transfer(row ← column)" in result.stdout

    assert main(["group", "--from", str(out), "--k", "2", "--source", "affinity", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    (stored,) = [g for g in study["groupings"]["affinity"] if g["k"] == 2]
    assert best["groups"] == stored["groups"] and best["score"] == pytest.approx(stored["score"])
    assert main(["group", "--from", str(out), "--k", "2"]) == 0
    assert "group 1:" in capsys.readouterr().out

    for args, message in (
        (["group", "--from", str(tmp_path / "missing.json"), "--k", "2"], "--from"),
        (["group", "--from", str(out), "--k", "4"], "--k"),
        (["study", "--suite", "planted", "--tasks", "t1", "--executor", "serial"], "tasks"),
        (["study", "--suite", "planted", "--seeds", "0"], "--seeds"),
    ):
        assert main(args) == 2
        assert message in capsys.readouterr().err


def test_grouping_sources_read_affinity_as_source_to_target() -> None:
    from mtl_core.study import grouping_sources

    # TAG's affinity[i][j] = Z_{i→j}: a step on t1 helps t2 a lot; nothing else
    study = {
        "tasks": ["t1", "t2", "t3"],
        "transfer": {"mean": [[None, 0.1, None], [0.2, None, 0.0], [0.0, 0.0, None]]},
        "affinity": [[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    }
    sources = grouping_sources(study)
    assert set(sources) == {"transfer", "affinity"}  # no cosine in this study
    assert sources["affinity"][1, 0] == 0.5 and sources["affinity"][0, 1] == 0.0  # score of t1 for t2
    assert sources["transfer"][0, 2] == 0.0  # a missing cell counts as no transfer
    assert sources["transfer"][1, 0] == pytest.approx(0.2)
