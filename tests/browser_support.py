"""What the Chromium tests share: where Chromium is and its flags, the skip (or failure, under CI)
when it is missing, and the app served from this checkout on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from mtl_core.runs import workers

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip the test without Chromium; fail it when ``MTL_LAB_REQUIRE_BROWSER=1`` (CI)."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("MTL_LAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and MTL_LAB_REQUIRE_BROWSER=1 (install Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_app(home: Path, log_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``streamlit run app/server.py`` for the store in ``home`` on a free loopback port, with ``env``
    added to this process's environment and its output in ``log_path``; yields the address once it
    answers its health check, and stops it (then the worker pool of ``home``) afterwards."""
    port = free_port()
    environment = dict(os.environ, MTL_LAB_HOME=str(home), MTL_LAB_POOL_IDLE_EXIT="30", PYTHONUNBUFFERED="1",
                       **(env or {}))
    command = [sys.executable, "-m", "streamlit", "run", "app/server.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        workers.stop_pool(home)
