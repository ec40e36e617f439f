"""``python -m mtl_core group --from FILE`` given a run's JSON instead of a study's says so, and what to pass
(issue 13, item 10): one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtl_core.cli import main
from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home

TINY = ["--suite", "planted", "--suite-opt", "n_samples=120", "--suite-opt", "dim=4", "--suite-opt", "n_tasks=2",
        "--strategy-opt", "hidden=4", "--epochs", "1", "--batch-size", "32", "--seed", "0"]


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_run_json_from_train_is_named_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json = tmp_path / "run.json"
    assert main(["train", *TINY, "--out", str(run_json)]) == 0
    capsys.readouterr()
    err = _error(["group", "--from", str(run_json), "--k", "2"], capsys)
    assert "got a run's record (`train --out run.json`): this is one run, not a study" in err
    assert "python -m mtl_core study --suite SUITE --out study.json" in err
    assert "must be one the study has" not in err


def test_a_stored_runs_export_is_named_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = RunStore.at_home(lab_home())
    workers.submit([{"suite": "planted", "suite_options": {"n_samples": 120, "dim": 4, "n_tasks": 2}, "epochs": 1}],
                   start=False)
    exported = tmp_path / "export.json"
    assert main(["runs", "export", "1", "--format", "json", "--out", str(exported)]) == 0
    store.close()
    assert json.loads(exported.read_text())["format"] == "mtl_lab.run_export/1"
    capsys.readouterr()
    err = _error(["group", "--from", str(exported), "--k", "2"], capsys)
    assert "got a run's export (`runs export ID`): this is one run, not a study" in err


@pytest.mark.parametrize(("content", "expected"), [
    ("[1, 2]", "got a JSON list, not an object"),
    ('{"format": "mtl_lab.csv_suite/1", "tasks": []}', "got a 'mtl_lab.csv_suite/1' file, not a study"),
    ('{"format": "mtl_lab.study/1"}', "with a `tasks` list"),
])
def test_other_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    assert expected in _error(["group", "--from", str(path), "--k", "2"], capsys)
