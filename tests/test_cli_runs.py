"""`python -m mtl_core runs …` and `worker --status/--stop`, on a store filled through its API."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtl_core.cli import main
from mtl_core.runs.store import RunStore, default_store_path, process_alive
from mtl_core.runs.workers import pool_running, pool_status, stop_pool

CONFIG = {"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 2}


@pytest.fixture
def filled() -> dict[str, int]:
    """done (metrics + result), failed (error + traceback), running (this pid), queued."""
    store = RunStore()
    done, failed, running, queued = store.create_runs(
        [CONFIG, {**CONFIG, "method": "pcgrad"}, CONFIG, {**CONFIG, "suite": "digits"}], group_id="g1")
    store.create_run(CONFIG, name="other", owner="bob")
    for run_id in (done, failed, running):
        store.claim_run(run_id, pid=os.getpid())
    store.append_metrics(done, [(step, 1, task, "train_loss", 1.0 / step) for step in (1, 2, 3) for task in ("t1", "t2")])
    store.set_result(done, {"status": "done", "final_metrics": {"t1": {"metric": "mse", "value": 0.5}}})
    store.finish_run(done, "done", pid=os.getpid())
    store.finish_run(failed, "failed", error="TrainingError: the loss became NaN",
                     traceback="Traceback (most recent call last):\n  ...\nTrainingError: the loss became NaN\n",
                     pid=os.getpid())
    store.close()
    return {"done": done, "failed": failed, "running": running, "queued": queued}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_without_a_store_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "runs", "list") == (0, "no runs\n", "")
    assert run_cli(capsys, "runs", "list", "--json")[1] == "[]\n"
    assert not default_store_path().exists()
    code, _, err = run_cli(capsys, "runs", "show", "1")
    assert code == 2 and "run 1 does not exist" in err


def test_list_json_and_filters(capsys: pytest.CaptureFixture[str], filled: dict[str, int]) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    by_id = {r["id"]: r for r in rows}
    failed = by_id[filled["failed"]]
    assert failed["status"] == "failed" and failed["error"] == "TrainingError: the loss became NaN"
    assert failed["group"] == "g1" and failed["pid"] == os.getpid()
    assert by_id[filled["running"]]["status"] == "running" and by_id[filled["queued"]]["pid"] is None
    assert {"id", "status", "error", "group", "pid", "owner", "method"} <= set(failed)
    _, out, _ = run_cli(capsys, "runs", "list", "--json", "--status", "failed", "--status", "done")
    assert sorted(r["id"] for r in json.loads(out)) == [filled["done"], filled["failed"]]
    _, out, _ = run_cli(capsys, "runs", "list", "--json", "--owner", "bob")
    assert [r["name"] for r in json.loads(out)] == ["other"]
    _, out, _ = run_cli(capsys, "runs", "list", "--json", "--group", "g1", "--method", "pcgrad")
    assert [r["id"] for r in json.loads(out)] == [filled["failed"]]
    _, out, _ = run_cli(capsys, "runs", "list", "--json", "--limit", "2")
    assert len(json.loads(out)) == 2
    code, out, _ = run_cli(capsys, "runs", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["ID", "STATUS"] and len(lines) == 6
    assert "TrainingError: the loss became NaN" in out


def test_show_prints_details_and_the_traceback_on_request(capsys: pytest.CaptureFixture[str], filled: dict[str, int]) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", str(filled["done"]), "--json")
    details = json.loads(out)
    assert code == 0 and details["status"] == "done" and details["last_step"] == 3
    assert details["config"]["method"] == "ew" and details["final_metrics"]["t1"]["value"] == 0.5
    _, out, _ = run_cli(capsys, "runs", "show", str(filled["failed"]))
    assert "error      TrainingError: the loss became NaN" in out and "--traceback prints it" in out
    assert "Traceback" not in out
    _, out, _ = run_cli(capsys, "runs", "show", str(filled["failed"]), "--traceback")
    assert "Traceback (most recent call last)" in out
    assert json.loads(run_cli(capsys, "runs", "show", str(filled["failed"]), "--json")[1])["traceback"].startswith(
        "Traceback")


def test_cancel_and_delete_respect_the_run_state(capsys: pytest.CaptureFixture[str], filled: dict[str, int]) -> None:
    code, out, _ = run_cli(capsys, "runs", "cancel", str(filled["queued"]))
    assert code == 0 and "cancelled (it was queued)" in out
    code, out, _ = run_cli(capsys, "runs", "cancel", str(filled["running"]))
    assert code == 0 and "cancel requested" in out
    assert RunStore().cancel_requested(filled["running"])
    code, _, err = run_cli(capsys, "runs", "cancel", str(filled["done"]))
    assert code == 2 and err.count("\n") == 1 and "already done" in err
    code, _, err = run_cli(capsys, "runs", "delete", str(filled["running"]))
    assert code == 2 and "cancel it first" in err
    assert run_cli(capsys, "runs", "delete", str(filled["done"]))[0] == 0
    code, _, err = run_cli(capsys, "runs", "show", str(filled["done"]))
    assert code == 2 and f"run {filled['done']} does not exist" in err


def test_export_json_and_csv(capsys: pytest.CaptureFixture[str], filled: dict[str, int], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "runs", "export", str(filled["done"]), "--format", "json")
    exported = json.loads(out)
    assert code == 0 and exported["run"]["id"] == filled["done"] and len(exported["metrics"]) == 6
    assert exported["result"]["status"] == "done"
    target = tmp_path / "metrics.csv"
    code, _, err = run_cli(capsys, "runs", "export", str(filled["done"]), "--format", "csv", "--out", str(target))
    assert code == 0 and "wrote" in err
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["step"], r["task"]) for r in rows[:2]] == [("1", "t1"), ("1", "t2")]
    assert float(rows[-1]["value"]) == pytest.approx(1 / 3)
    code, _, err = run_cli(capsys, "runs", "export", str(filled["done"]), "--out", str(tmp_path / "no" / "dir" / "x"))
    assert code == 2 and "`--out` must be" in err


def test_a_foreign_database_is_a_one_line_error_and_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    path = default_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 this is a zip file, not a database")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 2 and out == "" and err.count("\n") == 1 and "not an SQLite database" in err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_cli_in_a_subprocess_and_worker_status(capsys: pytest.CaptureFixture[str], filled: dict[str, int]) -> None:
    result = subprocess.run([sys.executable, "-m", "mtl_core", "runs", "list", "--json", "--status", "running"],
                            capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    assert [(r["id"], r["pid"]) for r in json.loads(result.stdout)] == [(filled["running"], os.getpid())]
    code, out, _ = run_cli(capsys, "worker", "--status", "--json")
    assert code == 0 and json.loads(out) is None
    assert "no worker pool is running" in run_cli(capsys, "worker", "--status")[1]
    code, _, err = run_cli(capsys, "worker", "--workers", "0")
    assert code == 2 and "`--workers` must be at least 1" in err


def test_train_background_queues_and_starts_a_pool_that_stops_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    home = default_store_path().parent
    code, out, err = run_cli(capsys, "train", "--suite", "planted", "--suite-opt", "n_samples=100", "--suite-opt",
                             "dim=4", "--suite-opt", "n_tasks=2", "--suite-opt", "n_groups=1", "--epochs", "5000",
                             "--background")
    assert code == 0, err
    run_id = int(out.strip())
    assert RunStore().get_run(run_id).status in ("queued", "running")
    deadline = time.monotonic() + 30
    while (pool_status(home) or {}).get("pid") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    info = pool_status(home)
    assert info is not None and info["home"] == str(home.absolute())
    supervisor = info["pid"]
    try:
        code, out, _ = run_cli(capsys, "worker", "--status")
        assert code == 0 and f"pool {supervisor} serving" in out
        run_cli(capsys, "runs", "cancel", str(run_id))
        code, out, _ = run_cli(capsys, "worker", "--stop")
        assert code == 0 and "stopped" in out
        assert not pool_running(home)
        assert RunStore().get_run(run_id).status in ("cancelled", "failed")
    finally:
        if pool_running(home):
            stop_pool(home, timeout=20)
        if process_alive(supervisor):
            os.kill(supervisor, signal.SIGKILL)
            pytest.fail(f"pool supervisor {supervisor} still running after --stop")
