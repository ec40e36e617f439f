"""Plugins: the example plugin loaded from ``MTL_LAB_PLUGINS`` (a path or a module name), a broken
plugin reported once while the rest keeps working, and the example trained by the worker pool with
the plugin recorded in the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtl_core.balancing import METHODS
from mtl_core.config import TrainConfig
from mtl_core.plugins import (
    load_plugins,
    loaded_plugins,
    plugin_entries,
    resolve_plugin_paths,
    unload_plugins,
)
from mtl_core.registry import Origin
from mtl_core.runs.store import RunStore
from mtl_core.runs.workers import pool_status, stop_pool, submit, wait
from mtl_core.strategies import STRATEGIES
from mtl_core.suites import SUITES
from mtl_core.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXAMPLE = EXAMPLES / "mtl_lab_example_plugin.py"
ORIGIN = Origin("mtl_lab_example_plugin", "mtl_lab_example_plugin", "0.1.0")
TINY = {"suite": "example_waves", "strategy": "example_tiny", "method": "example_inverse_loss",
        "suite_options": {"n_samples": 60}, "strategy_options": {"hidden": 4}, "epochs": 2, "batch_size": 32}
BROKEN = '''
from mtl_core.suites import SUITES
from mtl_core.suites.scales import ScalesSuite

SUITES.register("half_registered")(type("Half", (ScalesSuite,), {"name": "half_registered"}))
with open({counter!r}, "a") as handle:
    handle.write("imported\\n")
raise RuntimeError("this plugin is broken")
'''


@pytest.fixture(autouse=True)
def _no_plugins_after() -> Iterator[None]:
    """Every test starts and ends without plugins, so no other test sees the example's entries."""
    unload_plugins()
    yield
    unload_plugins()


def _broken_plugin(folder: Path) -> Path:
    path = folder / "broken_plugin.py"
    path.write_text(BROKEN.replace("{counter!r}", repr(str(folder / "imports.txt"))), encoding="utf-8")
    return path


def _assert_example_registered() -> None:
    assert "example_waves" in SUITES.names()
    assert SUITES.origin("example_waves") == ORIGIN
    assert STRATEGIES.origin("example_tiny") == ORIGIN
    assert METHODS.origin("example_inverse_loss") == ORIGIN
    assert SUITES.origin("planted") is None and METHODS.origin("ew") is None


def test_the_example_loads_from_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_PLUGINS", str(EXAMPLE))
    report = load_plugins()
    assert report.failed == ()
    [plugin] = report.loaded
    assert (plugin.name, plugin.module, plugin.version, plugin.source) == (
        "mtl_lab_example_plugin", "mtl_lab_example_plugin", "0.1.0", "MTL_LAB_PLUGINS")
    assert plugin.entries == ("suite:example_waves", "strategy:example_tiny", "method:example_inverse_loss")
    _assert_example_registered()
    assert load_plugins() == report  # loaded once per process


def test_the_example_loads_from_a_module_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("MTL_LAB_PLUGINS", " mtl_lab_example_plugin , ")
    report = load_plugins()
    assert report.failed == () and [p.name for p in report.loaded] == ["mtl_lab_example_plugin"]
    _assert_example_registered()


def test_the_example_loads_from_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from mtl_core import plugins

    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delenv("MTL_LAB_PLUGINS", raising=False)
    entry_point = EntryPoint(name="example", value="mtl_lab_example_plugin", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "_entry_points", lambda: [entry_point])
    [plugin] = load_plugins().loaded
    assert (plugin.name, plugin.module, plugin.version, plugin.source) == (
        "example", "mtl_lab_example_plugin", "0.1.0", "entry point")
    assert SUITES.origin("example_waves") == Origin("example", "mtl_lab_example_plugin", "0.1.0")


def test_a_run_of_plugin_entries_records_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_PLUGINS", str(EXAMPLE))
    load_plugins()
    config = TrainConfig.from_dict(TINY).validated()
    result = train(config)
    assert result["status"] == "done"
    assert result["plugins"] == [{"name": "mtl_lab_example_plugin", "module": "mtl_lab_example_plugin",
                                  "version": "0.1.0"}]
    assert result["plugin_entries"]["suite"] == {"name": "example_waves", **ORIGIN.to_dict()}
    assert set(result["plugin_entries"]) == {"suite", "strategy", "method"}
    # a run of built-in entries names none of them, but still lists the plugins of its process
    assert plugin_entries(TrainConfig(suite="planted")) == {}


def test_a_broken_plugin_is_reported_once_and_the_rest_keeps_working(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _broken_plugin(tmp_path)
    monkeypatch.setenv("MTL_LAB_PLUGINS", f"{broken},no_such_plugin_module,{EXAMPLE}")
    report = load_plugins()
    assert [p.name for p in report.loaded] == ["mtl_lab_example_plugin"]
    assert [(f.name, f.error) for f in report.failed] == [
        ("broken_plugin", "RuntimeError: this plugin is broken"),
        ("no_such_plugin_module", "ModuleNotFoundError: No module named 'no_such_plugin_module'"),
    ]
    assert report.failed[0].message() == ("plugin broken_plugin (MTL_LAB_PLUGINS) was not loaded: "
                                          "RuntimeError: this plugin is broken")
    assert "half_registered" not in SUITES  # what it registered before failing is taken back
    assert "broken_plugin" not in sys.modules
    assert load_plugins() == report
    assert (tmp_path / "imports.txt").read_text().count("imported") == 1  # not retried
    _assert_example_registered()
    assert train(TrainConfig.from_dict(TINY).validated())["status"] == "done"


def test_the_cli_warns_once_per_broken_plugin_and_lists_the_others(tmp_path: Path) -> None:
    broken = _broken_plugin(tmp_path)
    env = {**os.environ, "MTL_LAB_PLUGINS": f"{broken},{EXAMPLE}"}
    listed = subprocess.run([sys.executable, "-m", "mtl_core", "suites", "--json"], capture_output=True, text=True,
                            timeout=300, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if "broken_plugin" in line]
    assert warnings == ["warning: plugin broken_plugin (MTL_LAB_PLUGINS) was not loaded: "
                        "RuntimeError: this plugin is broken"]
    suites = {suite["name"]: suite for suite in json.loads(listed.stdout)}
    assert suites["example_waves"]["plugin"] == ORIGIN.to_dict() and suites["planted"]["plugin"] is None


def test_plugin_paths_are_made_absolute_for_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert resolve_plugin_paths("examples/mtl_lab_example_plugin.py, some.module,") == f"{EXAMPLE},some.module"


def _stop(home: Path) -> None:
    info = pool_status(home) or {}
    stop_pool(home, timeout=20)
    for pid in [info.get("pid"), *(w.get("pid") for w in info.get("workers", []))]:
        if pid:
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}/cmdline").exists() and b"mtl_core" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_the_worker_pool_trains_a_plugin_run_and_records_the_plugin(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "pool_home"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MTL_LAB_PLUGINS", "examples/mtl_lab_example_plugin.py")  # relative: the pool runs elsewhere
    monkeypatch.setenv("MTL_LAB_WORKERS", "1")
    monkeypatch.setenv("MTL_LAB_POOL_IDLE_EXIT", "20")
    load_plugins()  # the submitting process validates the config, so it needs the plugin too
    assert [p.name for p in loaded_plugins()] == ["mtl_lab_example_plugin"]
    try:
        [run_id] = submit([TINY], home=home)
        assert wait([run_id], timeout=240, home=home) == {run_id: "done"}
    finally:
        _stop(home)
    store = RunStore.at_home(home)
    try:
        result = store.get_result(run_id)
        info = store.get_run(run_id).info
    finally:
        store.close()
    assert result is not None and result["status"] == "done"
    expected = [{"name": "mtl_lab_example_plugin", "module": "mtl_lab_example_plugin", "version": "0.1.0"}]
    assert result["plugins"] == expected and info["plugins"] == expected  # recorded when it started, too
    assert result["plugin_entries"]["strategy"]["plugin"] == "mtl_lab_example_plugin"
    shown = subprocess.run([sys.executable, "-m", "mtl_core", "runs", "show", str(run_id), "--home", str(home)],
                           capture_output=True, text=True, timeout=120)
    assert "  plugins    mtl_lab_example_plugin 0.1.0\n" in shown.stdout, shown.stdout + shown.stderr
