"""The dashboard with plugins: the example plugin's entries on the Train page, marked with their module,
a warning for a plugin that failed to load, and a run of the plugin queued from the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import MAIN, train_queued
from streamlit.testing.v1 import AppTest

from mtl_core.plugins import unload_plugins
from mtl_core.runs.store import RunStore, lab_home

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mtl_lab_example_plugin.py"


@pytest.fixture(autouse=True)
def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise ImportError('needs a missing library')\n", encoding="utf-8")
    monkeypatch.setenv("MTL_LAB_PLUGINS", f"{EXAMPLE},{broken}")
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "0")
    unload_plugins()
    yield
    unload_plugins()


def _train_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.switch_page("views/train.py")
    return at.run(timeout=120)  # the first run imports torch and builds the catalogue


def test_the_train_page_offers_plugin_entries_and_warns_about_a_broken_plugin() -> None:
    at = _train_page()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning if "broken_plugin" in w.value] == [
        "plugin broken_plugin (MTL_LAB_PLUGINS) was not loaded: ImportError: needs a missing library"]
    suites = at.selectbox(key="train_suite")
    assert "example_waves (plugin mtl_lab_example_plugin)" in suites.options
    assert "planted" in suites.options  # built-in entries keep their plain names
    assert "example_tiny (plugin mtl_lab_example_plugin)" in at.selectbox(key="train_strategy").options
    assert "example_inverse_loss (plugin mtl_lab_example_plugin) (loss)" in at.multiselect(key="train_methods").options

    at.selectbox(key="train_suite").set_value("example_waves").run()
    at.selectbox(key="train_strategy").set_value("example_tiny").run()
    at.multiselect(key="train_methods").set_value(["example_inverse_loss"]).run()
    assert not at.exception, at.exception
    assert any("From the plugin `mtl_lab_example_plugin` 0.1.0" in c.value for c in at.caption)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception

    store = RunStore.at_home(lab_home())
    try:
        [run] = store.list_runs()
        assert (run.config["suite"], run.config["strategy"], run.config["method"]) == (
            "example_waves", "example_tiny", "example_inverse_loss")
        train_queued(store)
        result = store.get_result(run.id)
    finally:
        store.close()
    assert result["status"] == "done"
    assert result["plugin_entries"]["suite"]["plugin"] == "mtl_lab_example_plugin"
