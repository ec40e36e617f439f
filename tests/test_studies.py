"""Studies and grouping evaluations as records of the run store (:mod:`mtl_core.studies.records`), the one
executor interface (:mod:`mtl_core.runs.executors`), and the upgrade of a run store written before
studies were records (schema 1, with the app's manifest files)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.runs.executors import (
    EXECUTORS,
    LocalProcessExecutor,
    SerialExecutor,
    make_executor,
    run_outcomes,
)
from mtl_core.runs.store import SCHEMA_VERSION, RunStore, StoreError, StudyNotFoundError
from mtl_core.studies import records as studies
from mtl_core.studies.study import StudySpec, collect_study, plan_study, run_study
from mtl_core.workshop.lessons import get_lesson, launch_lesson
from mtl_core.workshop.limits import LimitError

#: A run store written by MTL Lab before studies were records (schema 1), with the manifest files
#: the app wrote then: a finished 3-task study (7 runs, with its cached analysis), a finished grouping
#: evaluation of it, a study still queued, a lesson launch with its study (queued), and two plain
#: runs; ``expected.json`` holds what that version read from it; ``make_fixture.py`` made it.
STORE_V1 = Path(__file__).parent / "data" / "store_v1.zip"

TINY = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    batch_size=32,
    lr=0.01,
    tasks=("t1", "t2"),
)


def _spec(**options: object) -> StudySpec:
    return StudySpec(TINY, seeds=(0,), max_epochs=2, **options)  # type: ignore[arg-type]


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    home = tmp_path / "old_home"
    with zipfile.ZipFile(STORE_V1) as archive:
        archive.extractall(home)
    return home


def test_a_store_of_the_previous_version_opens_with_nothing_lost(old_home: Path) -> None:
    expected = json.loads((old_home / "expected.json").read_text())
    manifests = sorted(p.name for p in (old_home / "studies").iterdir())
    store = RunStore.at_home(old_home)
    assert store.schema_version == SCHEMA_VERSION
    assert len(store.list_runs()) == expected["n_runs"]
    assert sorted(p.name for p in (old_home / "studies").iterdir()) == manifests  # the files stay

    listed = {info.group_id: info for info in studies.list_studies(store)}
    assert set(listed) == {expected["study"], expected["pending_study"], expected["lesson_study"]}
    finished = listed[expected["study"]]
    assert (finished.finished, finished.done, finished.total, finished.owner) == (True, 7, 7, "session-a")
    assert finished.tasks == ["t1", "t2", "t3"] and finished.suite == "planted"
    assert listed[expected["lesson_study"]].manifest["lesson"] == "choosing-groups"
    assert listed[expected["lesson_study"]].owner == "session-b"
    assert not listed[expected["pending_study"]].finished

    # the analysis kept by the old app comes along, and the stored outcomes still give the same one
    kept = studies.collect(expected["study"], store)
    cached = json.loads((old_home / "studies" / f"{expected['study']}.result.json").read_text())
    assert kept == cached
    record = store.get_study(expected["study"])
    spec = studies.study_spec(record).validated()
    again = collect_study(spec, plan_study(spec), run_outcomes(store, record.run_ids), record.id)
    assert again["transfer"]["mean"] == expected["study_transfer_mean"]
    assert [row["run_id"] for row in again["runs"]] == record.run_ids

    (grouping,) = studies.list_studies(store, kind="grouping")
    assert grouping.group_id == expected["grouping"] and grouping.manifest["study"] == expected["study"]
    assert grouping.finished and grouping.tasks == ["t1", "t3", "t2"]
    measured = studies.collect(expected["grouping"], store)["measured_score"]
    assert measured["mean"] == pytest.approx(expected["grouping_measured"]["mean"])

    partial = studies.collect(expected["pending_study"], store)  # nothing trained yet: all missing
    assert partial["n_runs"] == 3 and partial["n_failed"] == 3
    store.close()
    reopened = RunStore.at_home(old_home)  # upgraded once: nothing imported twice
    assert len(reopened.list_studies()) == 4


def test_migration_skips_files_that_are_not_manifests(old_home: Path) -> None:
    folder = old_home / "studies"
    (folder / "broken.json").write_text("{not json")
    (folder / "other.json").write_text(json.dumps({"group_id": "elsewhere", "run_ids": [1]}))  # id ≠ file name
    (folder / "odd.json").write_text(json.dumps({"group_id": "odd", "kind": "mystery", "run_ids": []}))
    store = RunStore.at_home(old_home)
    assert {record.id for record in store.list_studies()} >= {json.loads((old_home / "expected.json").read_text())["study"]}
    assert not {"broken", "elsewhere", "odd"} & {record.id for record in store.list_studies()}


def test_launch_queues_records_and_collects_a_study(tmp_path: Path) -> None:
    store = RunStore.at_home(tmp_path)
    study_id = studies.launch_study(_spec(), store, owner="s1", start=False)
    info = studies.get_study(study_id, store)
    assert (info.kind, info.owner, info.total, info.done, info.finished) == ("study", "s1", 3, 0, False)
    ids = store.get_study(study_id).run_ids
    assert [run.id for run in store.list_runs(group_id=study_id, newest_first=False)] == ids
    assert all(run.owner == "s1" and run.status == "queued" for run in store.list_runs(group_id=study_id))
    partial = studies.collect(study_id, store)
    assert partial["n_failed"] == 3 and store.get_study_result(study_id) is None

    SerialExecutor(tmp_path).train(ids)
    study = studies.collect(study_id, store)
    assert study["n_failed"] == 0 and study["group_id"] == study_id
    assert store.get_study_result(study_id) == study  # kept once finished
    assert studies.get_study(study_id, store).finished

    grouping_id = studies.launch_grouping(study_id, [["t1", "t2"]], "transfer", store, owner="s1", start=False)
    (evaluation,) = studies.list_studies(store, kind="grouping")
    assert evaluation.group_id == grouping_id and evaluation.manifest["groups"] == [["t1", "t2"]]
    assert studies.collect(grouping_id, store)["runs"][0]["status"] == "queued"
    SerialExecutor(tmp_path).train(store.get_study(grouping_id).run_ids)
    measured = studies.collect(grouping_id, store)
    # the grouping's one pair group is the study's pair run again, same protocol: the same transfer
    assert measured["tasks"]["t1"]["mean"] == pytest.approx(study["transfer"]["mean"][0][1])
    with pytest.raises(StudyNotFoundError):
        studies.collect("study-unknown", store)


def test_run_study_in_the_foreground_is_a_record_too(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    study = run_study(_spec(), SerialExecutor(tmp_path), progress=lambda done, total: progress.append((done, total)),
                      group_id="study-foreground")
    assert progress[0] == (0, 3) and progress[-1] == (3, 3)
    store = RunStore.at_home(tmp_path)
    assert [info.group_id for info in studies.list_studies(store)] == ["study-foreground"]
    assert all(isinstance(row["run_id"], int) for row in study["runs"]) and "timings" in study
    assert studies.collect("study-foreground", store)["transfer"] == study["transfer"]
    with pytest.raises(StoreError, match="already exists"):
        studies.launch_study(_spec(), store, study_id="study-foreground", start=False)
    assert len(store.list_runs()) == 3  # all or nothing


def test_every_launch_checks_the_presenter_limits(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text("max_concurrent_runs_per_session: 2\n")
    store = RunStore.at_home(tmp_path)
    with pytest.raises(LimitError, match="2 queued or running runs per session"):
        studies.launch_study(_spec(), store, owner="s1", start=False)
    lesson = get_lesson("choosing-groups")
    with pytest.raises(LimitError):
        launch_lesson(lesson, store, owner="s1", start=False)
    assert store.list_runs() == [] and store.list_studies() == []
    (tmp_path / "limits.yaml").write_text("max_concurrent_runs_per_session: 100\n")
    launch = launch_lesson(lesson, store, owner="s1", start=False)
    assert len(launch["run_ids"]) == len(lesson.runs)
    study = studies.get_study(launch["study_id"], store)
    assert study.manifest["lesson"] == lesson.id and study.owner == "s1" and study.total == lesson.study_size()


def test_one_executor_interface() -> None:
    assert {"local", "serial"} <= set(EXECUTORS.names())
    assert isinstance(make_executor(), LocalProcessExecutor)
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert make_executor("local", max_workers=2).max_workers == 2
    with pytest.raises(ConfigError):
        make_executor("nowhere")


def test_the_environment_names_the_default_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_EXECUTOR", "serial")
    assert isinstance(make_executor(), SerialExecutor)


def test_serial_executor_trains_runs_and_reports_failures(tmp_path: Path) -> None:
    executor = SerialExecutor(tmp_path)
    diverging = {"suite": "planted", "suite_options": {"n_samples": 200, "dim": 8, "n_tasks": 2, "n_groups": 1},
                 "strategy_options": {"hidden": 8, "depth": 1}, "optimizer": "sgd", "lr": 10.0, "epochs": 3}
    outcomes = executor.execute([diverging, TINY.replace(epochs=1)], group_id="g")
    assert outcomes[0].status == "failed" and "NaN" in outcomes[0].error  # it fails alone …
    assert outcomes[1].status == "done" and outcomes[1].result is not None  # … the next one trains
    assert all(run.group_id == "g" for run in RunStore.at_home(tmp_path).list_runs())


def test_the_old_store_fixture_stays_small() -> None:
    assert STORE_V1.stat().st_size < 200_000
