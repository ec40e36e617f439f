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
from mtl_core.runs.executors import LocalProcessExecutor, SerialExecutor
from mtl_core.studies.grouping_runs import evaluate_grouping
from mtl_core.studies.study import (
    PLANTED_STUDY_CONFIG,
    RunOutcome,
    StudySpec,
    collect_study,
    plan_study,
    run_study,
)

#: A tiny study for the plumbing tests (studies of it pass ``max_epochs``: QUICK, or a real protocol).
TINY = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    epochs=2,
    batch_size=32,
    lr=0.01,
)
#: Two epochs per run: the plumbing tests do not need converged runs.
QUICK = {"max_epochs": 2}
#: A real protocol on TINY: runs stop after a few epochs (lr 0.05 on 60 rows overfits quickly).
CONVERGED = TINY.replace(lr=0.05)
PROTOCOL = {"max_epochs": 40, "patience": 2}


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
        # one protocol for every run: the spec's defaults replace the config's epochs
        assert (run.config.epochs, run.config.patience) == (200, 10)
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
    for field, value in (("patience", 0), ("patience", True), ("max_epochs", 0), ("max_epochs", 2.5)):
        with pytest.raises(ConfigError, match=rf"^`{field}` must be an integer in \[1, 100000\], got"):
            StudySpec(TINY, **{field: value}).validated()


def test_every_run_of_a_study_follows_its_protocol() -> None:
    spec = StudySpec(TINY, seeds=(0,), include_all=True, tag=True, patience=3, max_epochs=7)
    assert StudySpec(TINY).patience == 10 and StudySpec(TINY).max_epochs == 200
    runs = plan_study(spec)
    assert {r.role for r in runs} == {"alone", "pair", "all"}
    assert {(r.config.epochs, r.config.patience) for r in runs} == {(7, 3)}
    data = spec.validated().to_dict()
    assert data["patience"] == 3 and data["max_epochs"] == 7 and data["config"]["epochs"] == 7
    assert StudySpec.from_dict(data).validated() == spec.validated()
    # a spec written before the protocol: its runs trained the config's epochs without early stopping
    legacy = {key: value for key, value in data.items() if key not in ("patience", "max_epochs")}
    legacy["config"] = {**data["config"], "epochs": 5, "patience": None}
    old = StudySpec.from_dict(legacy).validated()
    assert (old.max_epochs, old.patience) == (5, 5)  # patience ≥ max_epochs: never stops early
    assert {(r.config.epochs, r.config.patience) for r in plan_study(old)} == {(5, 5)}


def test_study_json_records_the_protocol_and_each_run_s_stopping_epoch() -> None:
    study = run_study(StudySpec(CONVERGED, seeds=(0, 1), **PROTOCOL), SerialExecutor())
    assert study["n_failed"] == 0
    assert study["spec"]["patience"] == 2 and study["spec"]["max_epochs"] == 40
    protocol = study["conventions"]["protocol"]
    assert "max_epochs = 40" in protocol and "patience = 2" in protocol and "runs[*].stopped_epoch" in protocol
    assert "Holm" in study["conventions"]["transfer"]
    for row in study["runs"]:
        assert 1 <= row["best_epoch"] <= row["stopped_epoch"] <= 40
        assert row["stop_reason"] in ("patience", "max_epochs")
        if row["stop_reason"] == "patience":
            assert row["stopped_epoch"] == row["best_epoch"] + 2
    assert any(row["stop_reason"] == "patience" for row in study["runs"])
    stopping = study["stopping"]
    assert list(stopping) == ["alone", "pair", "overall"]
    alone = [row["stopped_epoch"] for row in study["runs"] if row["role"] == "alone"]
    assert stopping["alone"] == {"median": float(np.median(alone)), "min": min(alone), "max": max(alone),
                                 "n": 6, "at_max_epochs": sum(r["stop_reason"] == "max_epochs" for r in study["runs"]
                                                              if r["role"] == "alone")}
    assert stopping["overall"]["n"] == len(study["runs"]) == 12
    # the transfer cells carry Holm-adjusted p-values beside the raw ones
    transfer = study["transfer"]
    for i in range(3):
        assert transfer["p_adjusted"][i][i] is None
        for j in range(3):
            if i != j and transfer["p_value"][i][j] is not None:
                assert transfer["p_value"][i][j] <= transfer["p_adjusted"][i][j] <= 1.0


def test_planted_study_recovers_the_planted_groups() -> None:
    """A small planting (2 groups × 2 tasks, 2 seeds, the default protocol): related tasks help,
    unrelated ones hurt, and transfer, TAG affinity and cosine each find the planted groups."""
    progress: list[tuple[int, int]] = []
    base = PLANTED_STUDY_CONFIG.replace(suite_options={"n_tasks": 4, "n_groups": 2})
    study = run_study(StudySpec(base, seeds=(0, 1), tag=True), SerialExecutor(),
                      progress=lambda done, total: progress.append((done, total)))
    tasks = study["tasks"]
    assert tasks == ["t1", "t2", "t3", "t4"]
    assert study["n_runs"] == 22 and study["n_failed"] == 0
    assert progress[0] == (0, 22) and progress[-1] == (22, 22)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    planted = study["planted_groups"]
    assert planted == [["t1", "t3"], ["t2", "t4"]]

    mean = np.array([[math.nan if v is None else v for v in row] for row in study["transfer"]["mean"]])
    group = {task: g for g, members in enumerate(planted) for task in members}
    inside = [mean[i, j] for i, a in enumerate(tasks) for j, b in enumerate(tasks) if a != b and group[a] == group[b]]
    across = [mean[i, j] for i, a in enumerate(tasks) for j, b in enumerate(tasks) if group[a] != group[b]]
    assert np.mean(inside) > 0.02  # related tasks help each other …
    assert np.mean(across) < 0.0  # … unrelated ones hurt
    for source in ("transfer", "affinity", "cosine"):
        (two,) = [g for g in study["groupings"][source] if g["k"] == 2]
        assert sorted(sorted(g) for g in two["groups"]) == planted, source


def _outcome(run_id: int, tasks: tuple[str, ...], values: dict[str, float]) -> RunOutcome:
    result = {"best_val_metric": {t: values[t] for t in tasks}, "history": [{"val_metric": {t: values[t] for t in tasks}}]}
    return RunOutcome(run_id, "done", result)


def test_collect_marks_identical_runs_not_significant_and_failed_runs_missing() -> None:
    spec = StudySpec(TINY, seeds=(0, 1, 2), **QUICK).validated()
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
    from mtl_core.runs.store import RunStore
    from mtl_core.runs.workers import stop_pool

    spec = StudySpec(TINY.replace(tasks=("t1", "t2")), seeds=(0, 1), include_all=True, **QUICK)
    progress: list[tuple[int, int]] = []
    try:
        pooled = run_study(spec, LocalProcessExecutor(max_workers=2, timeout=240), group_id="study-pool-test",
                           progress=lambda done, total: progress.append((done, total)))
    finally:
        stop_pool(timeout=20)
    serial = run_study(spec, SerialExecutor())
    assert progress[-1] == (8, 8)
    ids = [row["run_id"] for row in pooled["runs"]]
    assert all(isinstance(i, int) for i in ids)
    store = RunStore.at_home()
    assert sorted(r.id for r in store.list_runs(group_id="study-pool-test")) == sorted(ids)
    # training is deterministic on the CPU: the pool and this process give the same study
    assert pooled["transfer"] == serial["transfer"]
    assert pooled["delta_m"] == serial["delta_m"]
    np.testing.assert_allclose(np.asarray(pooled["cosine"], dtype=float), np.asarray(serial["cosine"], dtype=float))


def test_evaluate_grouping_reports_measured_next_to_predicted() -> None:
    study = run_study(StudySpec(CONVERGED, seeds=(0, 1), **PROTOCOL), SerialExecutor())
    groups = [["t1", "t3"], ["t2"]]
    evaluation = evaluate_grouping(study, groups, "transfer", SerialExecutor())
    # a pair group is exactly a pair run of the study, trained by the study's protocol (the same
    # early stop): measured = the study's transfer cells
    pair_stops = sorted(r["stopped_epoch"] for r in study["runs"] if r["tasks"] == ["t1", "t3"])
    assert sorted(r["stopped_epoch"] for r in evaluation["runs"]) == pair_stops
    transfer = study["transfer"]["mean"]
    assert evaluation["tasks"]["t1"]["mean"] == pytest.approx(transfer[0][2])
    assert evaluation["tasks"]["t3"]["mean"] == pytest.approx(transfer[2][0])
    assert evaluation["tasks"]["t1"]["predicted"] == pytest.approx(transfer[0][2])
    assert evaluation["tasks"]["t2"]["mean"] == 0.0 and evaluation["tasks"]["t2"]["predicted"] == 0.0
    assert len(evaluation["runs"]) == 2
    with pytest.raises(ConfigError, match="`groups` must be a partition"):
        evaluate_grouping(study, [["t1", "t2"]], "transfer", SerialExecutor())
    with pytest.raises(ConfigError, match="`source` must be one of"):
        evaluate_grouping(study, groups, "affinity", SerialExecutor())
    # a study written before the protocol: its config's epochs, all of them, no early stop
    legacy = {**study, "spec": {key: value for key, value in study["spec"].items()
                                if key not in ("patience", "max_epochs")}}
    legacy["spec"]["config"] = {**study["spec"]["config"], "epochs": 3, "patience": None}
    del legacy["conventions"]["protocol"]
    old = evaluate_grouping(legacy, groups, "transfer", SerialExecutor())
    assert [r["stopped_epoch"] for r in old["runs"]] == [3, 3]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_study_and_group_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study.json"
    result = cli("study", "--suite", "planted", "--tasks", "t1,t2,t3", "--suite-opt", "n_samples=60",
                 "--suite-opt", "dim=6", "--strategy-opt", "hidden=8", "--strategy-opt", "depth=1",
                 "--strategy", "hard", "--method", "ew", "--seeds", "2", "--max-epochs", "2", "--batch-size", "10", "--tag",
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
    assert study["spec"]["max_epochs"] == 2 and study["spec"]["patience"] == 10
    assert {row["stopped_epoch"] for row in study["runs"]} == {2}
    assert "protocol: every run" in result.stdout and "stopping epochs: median 2" in result.stdout
    # the flags win over the suite's study defaults; what they leave unset comes from them
    config = study["config"]
    assert config["strategy_options"] == {"hidden": 8, "depth": 1} and config["batch_size"] == 10
    assert config["lr"] == 3e-3 and config["tag_interval"] == 1

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
        (["study", "--suite", "planted", "--patience", "0"], "error: `--patience` must be an integer in [1, 100000], got 0"),
        (["study", "--suite", "planted", "--max-epochs", "0"], "`--max-epochs` must be an integer in [1, 100000]"),
        (["study", "--suite", "planted", "--epochs", "3"], "`--epochs` does not apply to a study"),
    ):
        assert main(args) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error


def test_grouping_sources_read_affinity_as_source_to_target() -> None:
    from mtl_core.studies.study import grouping_sources

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


def test_run_affinity_is_the_median_of_the_epochs_up_to_the_best() -> None:
    from mtl_core.studies.study import run_affinity

    good = [[0.0, 1.0], [1.0, 0.0]]
    spike = [[0.0, -50.0], [-50.0, 0.0]]
    records = [(good, {"epoch": 1}), (good, {"epoch": 2}), (spike, {"epoch": 3}), (spike, {"epoch": 4}),
               (spike, {"epoch": 5})]
    # epochs after the best one (here 3) are left out; the median ignores the one spike left
    assert run_affinity(records, 3, 2).tolist() == good
    assert run_affinity(records, None, 2).tolist() == spike  # unknown best epoch: all five epochs
    assert run_affinity([], 3, 2) is None
    assert np.isnan(run_affinity([([[0.0, math.nan], [1.0, 0.0]], {"epoch": 1})], 1, 2)[0, 1])


def test_suite_study_defaults_fill_only_what_is_not_set() -> None:
    from mtl_core.studies.study import apply_study_defaults

    planted = apply_study_defaults({"suite": "planted"})
    assert planted["strategy_options"] == {"hidden": 32} and planted["lr"] == 3e-3 and planted["batch_size"] == 32
    assert planted["tag_interval"] == 1
    assert TrainConfig.from_dict(planted).validated() == PLANTED_STUDY_CONFIG.validated()
    mine = apply_study_defaults({"suite": "planted", "lr": 0.01, "strategy_options": {"hidden": 8}})
    assert mine["lr"] == 0.01 and mine["strategy_options"] == {"hidden": 8} and mine["batch_size"] == 32
    # the width is a hard-sharing setting: another strategy keeps its own defaults
    assert "strategy_options" not in apply_study_defaults({"suite": "planted", "strategy": "mmoe"})
    assert apply_study_defaults({"suite": "digits"}) == {"suite": "digits"}  # no study defaults
    # unset and not set by the suite: the config's default (a CSV suite's study failed on lr None)
    unset = apply_study_defaults({"suite": "digits", "lr": None, "batch_size": None, "patience": None})
    assert unset == {"suite": "digits", "patience": None}
    assert TrainConfig.from_dict(unset).validated().lr == TrainConfig.lr
    assert apply_study_defaults({"suite": "nope"}) == {"suite": "nope"}  # validation reports it later
