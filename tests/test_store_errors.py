"""Clear errors where a user can cause them: run ids out of range, a damaged store, an empty store file,
and the end time of an interrupted run — in the store, the CLI (one line, exit 2) and the pages (one
sentence, no traceback)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mtl_core.runs.store import MAX_RUN_ID, RunStore, StoreDamagedError, StoreError, as_run_id

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 1}
PAGE = 4096
HUGE = "99999999999999999999"


def _store_with_data(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    with RunStore(home / "runs.db") as store:
        ids = store.create_runs([CONFIG] * 30)
        for run_id in ids[:3]:
            store.append_metric_tuples(run_id, [(step, 0, "t", "loss", 1.0) for step in range(2000)])
        store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home / "runs.db"


def _damage(path: Path, pages: range) -> None:
    """Overwrite ``pages`` (0 = the header page) of a real store with garbage."""
    data = bytearray(path.read_bytes())
    for page in pages:
        data[page * PAGE:(page + 1) * PAGE] = bytes((page * 37 + i * 11) % 251 for i in range(PAGE))
    path.write_bytes(bytes(data))


def _page_count(path: Path) -> int:
    return path.stat().st_size // PAGE


@pytest.fixture
def damaged_home(tmp_path: Path) -> Path:
    """A store whose pages after the header are garbage: it opens, and every read fails."""
    path = _store_with_data(tmp_path / "lab")
    _damage(path, range(1, _page_count(path)))
    return tmp_path / "lab"


@pytest.fixture
def damaged_metrics_home(tmp_path: Path) -> Path:
    """A store whose runs read well but whose metric pages are garbage (the first pages of the table
    and of its index: the rows of run 1)."""
    path = _store_with_data(tmp_path / "metrics_lab")
    _damage_metrics(path)
    return path.parent


def _damage_metrics(path: Path) -> None:
    """Garbage over the first pages of the metrics table and of its index (run 1's rows)."""
    conn = sqlite3.connect(path)
    roots = [root for (root,) in conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name IN ('metrics', 'metrics_run_step')")]
    conn.close()
    for root in roots:  # page numbers count from 1
        _damage(path, range(root - 1, root + 2))


# --- the store ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("3", 3), (" #12 ", 12), ("007", 7), (str(MAX_RUN_ID), MAX_RUN_ID), (str(MAX_RUN_ID + 1), None),
    (HUGE, None), ("9" * 5000, None), ("0", None), ("-1", None), ("1e3", None), ("", None), ("٣", None),
])
def test_as_run_id_accepts_only_ids_a_store_can_hold(text: str, expected: int | None) -> None:
    assert as_run_id(text) == expected


def test_a_damaged_store_says_which_file_and_what_to_do(damaged_home: Path) -> None:
    with RunStore(damaged_home / "runs.db") as store:
        with pytest.raises(StoreDamagedError) as caught:
            store.list_runs()
    message = str(caught.value)
    assert str(damaged_home / "runs.db") in message and "move the file aside" in message and "backup" in message


def test_export_of_a_damaged_store_raises_the_reads_error_not_a_commit_error(damaged_metrics_home: Path) -> None:
    with RunStore(damaged_metrics_home / "runs.db") as store:
        assert store.get_run(1).status == "queued"  # the runs table is intact
        with pytest.raises(StoreDamagedError):
            store.export_run(1)
        assert store.get_run(2).id == 2  # the connection is usable again afterwards


def test_an_empty_file_is_not_taken_for_a_store_and_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        RunStore(path)
    assert path.read_bytes() == b"" and sorted(os.listdir(tmp_path)) == ["runs.db"]


def test_stores_created_at_once_by_many_threads_are_one_store(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "runs.db"
    errors: list[BaseException] = []
    ids: list[int] = []

    def create() -> None:
        try:
            with RunStore(path) as store:
                ids.append(store.create_run(CONFIG))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(ids) == list(range(1, 9))
    assert sorted(os.listdir(path.parent))[0] == "runs.db"  # no staging file left behind
    assert not [name for name in os.listdir(path.parent) if name.endswith(".new")]


def test_an_interrupted_run_ends_at_its_last_heartbeat(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        run_id = store.create_run(CONFIG)
        store.claim_run(run_id, pid=999_999_999)  # no such process
        store._connection().execute("UPDATE runs SET started_at = 1000, heartbeat_at = 1022 WHERE id = ?", (run_id,))
        assert store.recover_interrupted(stale_after=10, now=1047) == [run_id]
        record = store.get_run(run_id)
        assert record.status == "failed" and record.finished_at == 1022 and record.duration == 22


# --- the command line ----------------------------------------------------------------------------------
def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MTL_LAB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("command", [["runs", "show"], ["runs", "cancel"], ["runs", "delete"], ["runs", "export"],
                                     ["export", "run"]])
def test_cli_refuses_an_out_of_range_id_in_one_line(tmp_path: Path, command: list[str]) -> None:
    _store_with_data(tmp_path)
    done = _cli(tmp_path, *command, HUGE)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "run number from 1 to" in done.stderr and "Traceback" not in done.stderr


def test_cli_names_a_damaged_store_and_what_to_do_on_every_command(damaged_home: Path,
                                                                   damaged_metrics_home: Path) -> None:
    for home, commands in (
        (damaged_home, [["runs", "list"], ["runs", "show", "1"], ["runs", "cancel", "1"], ["runs", "delete", "1"],
                        ["runs", "export", "1"], ["export", "run", "1"]]),
        (damaged_metrics_home, [["runs", "export", "1"], ["runs", "export", "1", "--format", "csv"]]),
    ):
        for command in commands:
            done = _cli(home, *command)
            assert done.returncode == 2, (command, done.stderr)
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (command, done.stderr)
            assert f"{home / 'runs.db'} is damaged" in done.stderr and "move the file aside" in done.stderr


def test_cli_refuses_an_empty_store_file_and_leaves_it(tmp_path: Path) -> None:
    (tmp_path / "runs.db").write_bytes(b"")
    done = _cli(tmp_path, "runs", "list")
    assert done.returncode == 2 and "is an empty file" in done.stderr and done.stderr.count("\n") == 1
    assert (tmp_path / "runs.db").read_bytes() == b""
