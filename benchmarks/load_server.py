"""The server side of the load test: start the app on loopback with its own MTL_LAB_HOME, watch the
CPU and memory of the Streamlit process and of the worker pool, and stop everything at the end."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mtl_core.runs import workers

__all__ = ["AppServer", "ProcessSampler", "free_port", "cpu_seconds", "loadavg"]

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg", encoding="ascii") as handle:
        one, five, fifteen = handle.read().split()[:3]
    return float(one), float(five), float(fifteen)


@dataclass
class ProcessSampler:
    """Samples, once a second, CPU seconds and resident memory of the server and of the pool
    (supervisor and workers, found through the pool's info file); a process that ends between two
    samples loses at most its last second of CPU."""

    server_pid: int
    home: Path
    period: float = 1.0
    started: float = field(default_factory=time.monotonic)
    server_cpu0: float = 0.0
    server_peak_kib: int = 0
    pool_cpu: dict[int, tuple[float, float]] = field(default_factory=dict)  # pid → (first, last) seen
    pool_peak_kib: int = 0  # largest sum of the pool's resident memory at one sample
    pool_pids: set[int] = field(default_factory=set)
    load_peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.server_cpu0 = cpu_seconds(self.server_pid) or 0.0
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="load-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def sample(self) -> None:
        self.server_peak_kib = max(self.server_peak_kib, _status_kib(self.server_pid, "VmRSS") or 0)
        self.load_peak = max(self.load_peak, loadavg()[0])
        info = workers.pool_status(self.home) or {}
        pids = [info.get("pid")] + [w.get("pid") for w in info.get("workers", [])]
        resident = 0
        for pid in (p for p in pids if p):
            used = cpu_seconds(pid)
            if used is None:
                continue
            first = self.pool_cpu.get(pid, (used, used))[0]
            self.pool_cpu[pid] = (first, used)
            self.pool_pids.add(pid)
            resident += _status_kib(pid, "VmRSS") or 0
        self.pool_peak_kib = max(self.pool_peak_kib, resident)

    def stop(self) -> dict[str, float]:
        """Stop sampling; the server's and the pool's CPU (% of one core) and peak memory (MiB)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()
        wall = max(time.monotonic() - self.started, 1e-9)
        server_cpu = (cpu_seconds(self.server_pid) or self.server_cpu0) - self.server_cpu0
        hwm = _status_kib(self.server_pid, "VmHWM") or 0
        pool_cpu = sum(last - first for first, last in self.pool_cpu.values())
        return {
            "wall_s": wall,
            "server_cpu_pct": 100 * server_cpu / wall,
            "server_peak_mib": max(hwm, self.server_peak_kib) / 1024,
            "pool_cpu_pct": 100 * pool_cpu / wall,
            "pool_peak_mib": self.pool_peak_kib / 1024,
            "pool_processes": len(self.pool_pids),
            "load_peak": self.load_peak,
        }


@dataclass
class AppServer:
    """``streamlit run app/main.py`` on ``host:port`` with ``home`` as MTL_LAB_HOME and ``workers`` pool
    workers; a random presenter passcode makes it a workshop server (each participant sees their own
    runs). Its output goes to ``<home>/streamlit.log``; :meth:`stop` ends it and the pool."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 2
    live_refresh: float | None = None
    entry: str = "app/main.py"  # the script ``streamlit run`` serves, relative to the repository root
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.home / "streamlit.log"

    @property
    def timings_path(self) -> Path:
        return self.home / "render_times.jsonl"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MTL_LAB_")}
        env.update(MTL_LAB_HOME=str(self.home), MTL_LAB_WORKERS=str(self.workers),
                   MTL_LAB_POOL_IDLE_EXIT="600", MTL_LAB_PRESENTER_PASSCODE=secrets.token_urlsafe(16),
                   MTL_LAB_APP_TIMINGS=str(self.timings_path), PYTHONUNBUFFERED="1")
        if self.live_refresh is not None:
            env["MTL_LAB_LIVE_REFRESH"] = str(self.live_refresh)
        paths = [str(ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def start(self, timeout: float = 120.0) -> str:
        """Start the server and wait until ``/_stcore/health`` answers; returns its base URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        command = [sys.executable, "-m", "streamlit", "run", self.entry, "--server.headless", "true",
                   "--server.fileWatcherType", "none", "--server.address", self.host,
                   "--server.port", str(self.port), "--browser.gatherUsageStats", "false"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self._env(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{self.host}:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        return url
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {self.log_path}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the worker pool (its running runs become interrupted: cancel them first) and the server."""
        try:
            workers.stop_pool(self.home, timeout=20)
        except Exception as exc:  # the server must still go; say why the pool may linger
            print(f"warning: stopping the worker pool failed: {exc}", file=sys.stderr)
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tracebacks(self) -> list[str]:
        """The first line after each ``Traceback`` in the server's log and the pool's logs."""
        found: list[str] = []
        logs = [self.log_path, *sorted((self.home / "logs").glob("*.log*"))]
        for path in logs:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for index, line in enumerate(lines):
                if "Traceback (most recent call last)" in line:
                    tail = next((text for text in lines[index + 1:] if not text.startswith(" ")), "")
                    found.append(f"{path.name}: {tail.strip()[:200]}")
        return found
