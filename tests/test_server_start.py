"""What ``streamlit run app/server.py`` (the README's command) does at server start, before any page
is opened: it marks failed the runs a dead worker left ``running``, starts the worker pool for queued
runs, serves with a damaged store (one sentence in the log), and refuses to serve beyond loopback
without a presenter passcode. Every server here is a real process; no browser and no page view."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, default_store_path, lab_home

pytestmark = pytest.mark.slow  # real server processes (no browser)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 1,
          "suite_options": {"n_samples": 200}}
#: Generous: on a busy machine a fresh worker needs tens of seconds to import PyTorch.
TRAINED_WITHIN = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int, address: str) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", "app/server.py", "--server.headless", "true",
            "--server.port", str(port), "--server.address", address, "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false"]


def _stop(process: subprocess.Popen) -> None:
    """End the server's whole process group (it never outlives its test)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _server(log_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """The app served on a free port of 127.0.0.1 for this test's home; stopped with its worker pool."""
    port = _free_port()
    environment = dict(os.environ, MTL_LAB_POOL_IDLE_EXIT="30", PYTHONUNBUFFERED="1", **env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(_command(port, "127.0.0.1"), cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
        workers.stop_pool(lab_home())


def _healthy(url: str, process: subprocess.Popen, log_path: Path, within: float = 90.0) -> None:
    """Wait for the server's health check (which runs no page script)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text(errors="replace")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server did not start: {log_path.read_text(errors='replace')}")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_interrupted_runs_fail_and_queued_runs_train_without_any_page_view(tmp_path: Path) -> None:
    with RunStore(default_store_path()) as store:
        interrupted, queued = store.create_runs([CONFIG, CONFIG])
        store.claim_run(interrupted, pid=_dead_pid())  # a worker that died with the last server
    log_path = tmp_path / "server.log"
    with _server(log_path) as (process, _url), RunStore(default_store_path()) as store:
        deadline = time.monotonic() + TRAINED_WITHIN
        while store.get_run(queued).status != "done" and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert store.get_run(queued).status in ("queued", "running"), store.get_run(queued).error
            time.sleep(0.5)
        assert store.get_run(queued).status == "done", log_path.read_text(errors="replace")
        record = store.get_run(interrupted)
        assert record.status == "failed" and record.error.startswith("interrupted: its worker process")
    assert f"Marked failed (interrupted): run {interrupted}." in log_path.read_text(errors="replace")


def test_a_damaged_store_is_one_sentence_in_the_log_and_the_server_still_serves(tmp_path: Path) -> None:
    store_file = default_store_path()
    store_file.parent.mkdir(parents=True, exist_ok=True)
    store_file.write_bytes(b"this is not a run store" * 100)
    log_path = tmp_path / "server.log"
    with _server(log_path, MTL_LAB_APP_AUTOSTART="0") as (process, url):
        _healthy(url, process, log_path)
    log = log_path.read_text(errors="replace")
    assert str(store_file.absolute()) in log and "Traceback" not in log, log


def test_the_server_refuses_to_serve_beyond_loopback_without_a_passcode(tmp_path: Path) -> None:
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if k != "MTL_LAB_PRESENTER_PASSCODE"}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(_command(port, "0.0.0.0"), cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:  # never left serving every interface: stopped at once if it ever answers, and at the end anyway
        deadline = time.monotonic() + 90
        while process.poll() is None and time.monotonic() < deadline:
            with pytest.raises(OSError):  # nothing is served, not even the health check
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).close()
            time.sleep(0.3)
    finally:
        _stop(process)
    text = log_path.read_text(errors="replace")
    assert process.returncode == 2, text
    assert ("This server is reachable from other machines (`server.address` is `0.0.0.0`) but no presenter "
            "passcode is set") in text
    assert "Traceback" not in text
    with socket.socket() as probe:  # nothing listens on that port any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
