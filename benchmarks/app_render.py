"""Dashboard responsiveness: page render times with 200 runs, live-view lag, renders while training.

1. **First render of each page with 200 runs in the store.** Three tiny runs are trained for real;
   their records (config, metric rows, probes, result) are copied until the store holds 200 runs.
   The app is served (``streamlit run``) and each page is opened in a new Chromium tab: the time
   from ``goto`` to the page title drawn and no "running" indicator (a new session each time:
   websocket, script run, figures, drawing). "first" is each page's first visit in the fresh server
   process (the first page pays the server's imports; the Train page the torch import of the
   registries, which starts in the background when a session opens); then the median of 5 visits.
   Without Chromium (or with ``--apptest``) it times ``AppTest`` runs instead, which add about a
   second of AppTest's own start-up per run.
2. **Live-view lag.** A run trains in a thread with the worker's :class:`StoreRecorder`; a reader
   does what the run view's fragment does once per second (incremental read + the overview's two
   figures). Lag = time since the trainer emitted the newest step the reader can show, at the moment
   the figures are ready; the worst case adds the fragment period (1 s) for a step that lands just
   after a read.
3. **Interactivity while 2 runs train.** Two runs train in the worker pool (separate processes) while
   the Train, Runs and Run-view pages are rendered again and again.

    python benchmarks/app_render.py            # ~2-4 minutes on 2 busy cores
    python benchmarks/app_render.py --quick    # fewer repeats, shorter runs
    python benchmarks/app_render.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mtl_core.training.events import Callback

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
PAGES = ["train", "run_view", "runs", "compare", "relationships", "groupings"]
TINY = {
    "suite": "planted",
    "suite_options": {"n_samples": 300, "dim": 8, "n_tasks": 4},
    "strategy": "hard",
    "strategy_options": {"hidden": 16},
    "epochs": 5,
    "batch_size": 32,
    "probe_interval": 2,
}


def seed_store(home: Path, n_runs: int) -> list[int]:
    """Train 3 real runs, then copy their records until the store holds ``n_runs`` runs."""
    from mtl_core.runs import workers
    from mtl_core.runs.store import RunStore

    store = RunStore.at_home(home)
    ids = workers.submit([dict(TINY, method="ew", tag=True), dict(TINY, method="pcgrad"),
                          dict(TINY, strategy="single", method="ew")], home=home, start=False, group_id="bench")
    while (run := store.claim_next()) is not None:
        workers.execute_run(store, run)
    sources = [store.export_run(i) for i in ids]
    copies = []
    for index in range(n_runs - len(ids)):
        source = sources[index % len(sources)]
        config = dict(source["run"]["config"], seed=1 + index // len(sources))
        new = store.create_run(config, group_id=f"bench-{index // len(sources)}")
        store.claim_run(new)
        store.set_info(new, source["run"]["info"])
        store.append_metrics(new, [tuple(m.values()) for m in source["metrics"]])
        store.append_probes(new, [(p["step"], p["epoch"], p["kind"], p["value"], p["extra"]) for p in source["probes"]])
        store.set_result(new, source["result"])
        store.set_status(new, "done")
        copies.append(new)
    store.close()
    return ids + copies


URL_PATHS = {"train": "train", "run_view": "run", "runs": "runs", "compare": "compare",
             "relationships": "relationships", "groupings": "groupings"}
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Served:
    """``streamlit run app/main.py`` on a free port of 127.0.0.1 for ``home`` (a context manager)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __enter__(self) -> str:
        import socket
        import subprocess
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = dict(os.environ, MTL_LAB_HOME=str(self.home), MTL_LAB_APP_TIMINGS=str(self.home / "timings.jsonl"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return url
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("streamlit did not start")

    def __exit__(self, *exc: object) -> None:
        import signal

        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=20)


def _wait_idle(page: Any, quiet_ms: int = 250, timeout: float = 60.0) -> None:
    """Until the app has drawn its page title and shown no "running" indicator for ``quiet_ms``; a page
    with charts also waits for its first chart. A live page (a fragment re-running every second on a
    busy machine) may never be quiet: then it counts as drawn once its first chart is."""
    page.locator("h1").first.wait_for(timeout=timeout * 1000)
    chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator("[data-testid='stStatusWidget']").count() > 0
        now = time.monotonic()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif (now - quiet_since) * 1000 >= quiet_ms:
            return
        if now - deadline + timeout > 1.0 and chart.count() and chart.is_visible():
            return  # live: drawn, and refreshing
        page.wait_for_timeout(25)


def browser_render_times(url: str, pages: list[str], repeats: int, run_id: int) -> dict[str, list[float]]:
    """Seconds from opening each page's address in a new tab to the page being drawn and idle (the idle
    check adds up to 0.25 s, subtracted)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {page: [] for page in pages}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for _ in range(repeats):
                for name in pages:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    address = f"{url}/{URL_PATHS[name]}" + (f"?run={run_id}" if name == "run_view" else "")
                    start = time.perf_counter()
                    page.goto(address)
                    _wait_idle(page)
                    out[name].append(time.perf_counter() - start - 0.25)
                    page.close()
        finally:
            browser.close()
    return out


LINKS = {"train": ("Train", "Train a multi-task model"), "run_view": ("Run view", "Run view"),
         "runs": ("Runs", "Runs"), "compare": ("Compare", "Compare runs"),
         "relationships": ("Relationships", "Task relationships"), "groupings": ("Groupings", "Task groupings")}


def browser_navigation_times(url: str, pages: list[str], repeats: int) -> dict[str, list[float]]:
    """Seconds from clicking a page's link in the sidebar (one tab, one session) to the page drawn
    and idle (the idle check's 0.25 s subtracted)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {page: [] for page in pages}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/runs")
            _wait_idle(page)
            for _ in range(repeats):
                for name in pages:
                    link, title = LINKS[name]
                    start = time.perf_counter()
                    page.get_by_role("link", name=link, exact=True).click()
                    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
                    _wait_idle(page)
                    out[name].append(time.perf_counter() - start - 0.25)
        finally:
            browser.close()
    return out


def render_times(pages: list[str], repeats: int, query: dict[str, str] | None = None) -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    out: dict[str, Any] = {}
    for page in pages:
        times = []
        for _ in range(repeats):
            at = AppTest.from_file(str(APP / "main.py"), default_timeout=300)
            if page == "run_view":
                at.run()  # AppTest maps a file to a page with another url_path only after a first run
            at.switch_page(f"views/{page}.py")
            if page == "run_view" and query:
                for key, value in query.items():
                    at.query_params[key] = value
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception}")
        out[page] = times
    return out


class _StepClock(Callback):
    """A trainer callback noting when each step was emitted."""

    def __init__(self) -> None:
        self.emitted: dict[int, float] = {}

    def on_step(self, event: Any) -> None:
        self.emitted[event.step] = time.monotonic()


def live_lag(home: Path, epochs: int) -> dict[str, Any]:
    from services.live import LiveRun

    from mtl_core import figures
    from mtl_core.runs.store import RunStore
    from mtl_core.runs.workers import StoreRecorder, validate_config
    from mtl_core.training.trainer import train

    store = RunStore.at_home(home)
    config = validate_config(dict(TINY, method="ew", epochs=epochs, suite_options={"n_samples": 2000, "dim": 16}))
    run_id = store.create_run(config.to_dict())
    store.claim_run(run_id)
    clock = _StepClock()
    done = threading.Event()

    def work() -> None:
        with StoreRecorder(RunStore.at_home(home), run_id) as recorder:
            train(config, [recorder, clock])
        done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    live = LiveRun(run_id)
    lags, reads, renders = [], [], []
    while not done.is_set():
        time.sleep(1.0)
        start = time.perf_counter()
        live.refresh(store)
        reads.append(time.perf_counter() - start)
        tasks = live.tasks
        if not live.steps:
            continue
        figures.step_loss_curves(live.steps, {t: live.step_losses[t] for t in tasks}, smoothing=0.8).to_json()
        averaged = live.cosine_window()  # the run view's default window
        if averaged is not None:
            figures.cosine_heatmap(averaged.matrix, tasks, window=averaged.label).to_json()
        renders.append(time.perf_counter() - start)
        lags.append(time.monotonic() - clock.emitted[live.last_step])
    thread.join()
    store.close()
    return {"polls": len(lags), "steps": max(clock.emitted), "lag_median_s": statistics.median(lags),
            "lag_max_s": max(lags), "read_median_s": statistics.median(reads),
            "read_plus_figures_median_s": statistics.median(renders),
            "worst_case_s": max(lags) + 1.0}


def while_training(home: Path, repeats: int, epochs: int, url: str | None) -> dict[str, Any]:
    from mtl_core.runs import workers

    os.environ["MTL_LAB_APP_AUTOSTART"] = "1"
    ids = workers.submit([dict(TINY, method=m, epochs=epochs, suite_options={"n_samples": 3000, "dim": 16})
                          for m in ("ew", "pcgrad")], home=home)
    try:
        deadline = time.monotonic() + 300
        store_runs = lambda: [workers.get_run(i, home).status for i in ids]  # noqa: E731
        while "running" not in store_runs() and time.monotonic() < deadline:
            time.sleep(0.5)
        statuses_before = store_runs()
        if url is not None:
            times = browser_navigation_times(url, ["train", "runs", "run_view", "compare"], repeats)
        else:
            times = render_times(["train", "runs", "run_view"], repeats, query={"run": str(ids[0])})
        statuses_after = store_runs()
    finally:
        os.environ["MTL_LAB_APP_AUTOSTART"] = "0"
        for run_id in ids:
            try:
                workers.cancel(run_id, home)
            except Exception:  # noqa: BLE001 — already finished
                pass
        workers.stop_pool(home)
    return {"statuses_before": statuses_before, "statuses_after": statuses_after, "times": times}


def _script_times(home: Path) -> dict[str, float]:
    """Median seconds of the page scripts themselves (server side), from the app's timing log."""
    path = home / "timings.jsonl"
    if not path.exists():
        return {}
    by_page: dict[str, list[float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_page.setdefault(record["page"], []).append(record["seconds"])
    return {page: round(statistics.median(times), 3) for page, times in by_page.items()}


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--apptest", action="store_true", help="time AppTest script runs instead of Chromium")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    sys.path.insert(0, str(APP))
    os.environ["MTL_LAB_APP_AUTOSTART"] = "0"
    results: dict[str, Any] = {"runs_in_store": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["MTL_LAB_HOME"] = str(home)
        start = time.perf_counter()
        ids = seed_store(home, args.runs)
        results["seed_seconds"] = round(time.perf_counter() - start, 1)
        browser = Path(CHROMIUM).exists() and not args.apptest
        results["measured_with"] = "chromium" if browser else "AppTest"
        results["load_average_at_start"] = os.getloadavg()
        if browser:
            with Served(home) as url:
                first = browser_render_times(url, PAGES, 1, ids[0])
                warm = browser_render_times(url, PAGES, repeats, ids[0])
                navigation = browser_navigation_times(url, PAGES, repeats)
                results["render"] = {
                    "new_tab_first_s": {page: round(t[0], 3) for page, t in first.items()},
                    "new_tab_median_s": {page: round(statistics.median(t), 3) for page, t in warm.items()},
                    "new_tab_max_s": {page: round(max(t), 3) for page, t in warm.items()},
                    "navigation_median_s": {page: round(statistics.median(t), 3) for page, t in navigation.items()},
                    "navigation_max_s": {page: round(max(t), 3) for page, t in navigation.items()},
                }
                results["render"]["script_median_s"] = _script_times(home)
                print(json.dumps(results["render"], indent=2), flush=True)
                results["live_lag"] = _rounded(live_lag(home, 8 if args.quick else 20))
                print(json.dumps(results["live_lag"], indent=2), flush=True)
                (home / "timings.jsonl").unlink(missing_ok=True)
                training = while_training(home, repeats, 30 if args.quick else 80, url)
                training["script_median_s"] = _script_times(home)
        else:
            first = render_times(PAGES, 1, query={"run": str(ids[0])})
            warm = render_times(PAGES, repeats, query={"run": str(ids[0])})
            results["render"] = {
                "first_s": {page: round(t[0], 3) for page, t in first.items()},
                "median_s": {page: round(statistics.median(t), 3) for page, t in warm.items()},
                "max_s": {page: round(max(t), 3) for page, t in warm.items()},
            }
            print(json.dumps(results["render"], indent=2), flush=True)
            results["live_lag"] = _rounded(live_lag(home, 8 if args.quick else 20))
            print(json.dumps(results["live_lag"], indent=2), flush=True)
            training = while_training(home, repeats, 30 if args.quick else 80, None)
        results["while_training"] = {
            "statuses_before": training["statuses_before"],
            "statuses_after": training["statuses_after"],
            "median_s": {page: round(statistics.median(t), 3) for page, t in training["times"].items()},
            "max_s": {page: round(max(t), 3) for page, t in training["times"].items()},
            "script_median_s": training.get("script_median_s"),
        }
        print(json.dumps(results["while_training"], indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
