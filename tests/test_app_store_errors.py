"""The pages with a run id out of range, a damaged store and an empty store file: one sentence on the
page, never a traceback (see ``test_store_errors`` for the store and the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mtl_core.runs.store import RunStore, lab_home
from tests.app_support import MAIN
from tests.test_store_errors import HUGE, _damage, _damage_metrics, _page_count, _store_with_data

AUTOSTART_ENV = "MTL_LAB_APP_AUTOSTART"  # services.catalog.AUTOSTART_ENV: the pages start no pool
PAGES = ["train", "run_view", "relationships", "groupings", "compare", "runs", "learn", "playground", "data"]


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


def _open(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    if page == "run_view":
        at.run()  # the run view's url_path is not its file name: known once st.navigation ran
    at.switch_page(f"views/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def test_run_view_explains_an_id_too_large_for_a_store(home: Path) -> None:
    with RunStore.at_home(home) as store:
        store.create_run({"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 1})
    at = _open("run_view", run=HUGE)
    assert not at.exception, at.exception
    assert any("must be a run number" in e for e in _errors(at)), _errors(at)


def test_every_page_names_a_damaged_store_and_what_to_do(home: Path) -> None:
    path = _store_with_data(home)
    _damage(path, range(1, _page_count(path)))
    for page in PAGES:
        at = _open(page)
        assert not at.exception, (page, at.exception)
        assert any(f"{path} is damaged" in e and "move the file aside" in e for e in _errors(at)), (page, _errors(at))


def test_an_empty_store_file_is_refused_on_the_page_and_left_untouched(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "runs.db").write_bytes(b"")
    at = _open("train")
    assert not at.exception, at.exception
    assert any("is an empty file" in e for e in _errors(at)), _errors(at)
    assert (home / "runs.db").read_bytes() == b""


def test_a_page_that_reads_damaged_metrics_names_the_store(home: Path) -> None:
    path = _store_with_data(home)
    _damage_metrics(path)
    at = _open("run_view", run="1")
    assert not at.exception, at.exception
    assert any(f"{path} is damaged" in e for e in _errors(at)), _errors(at)
