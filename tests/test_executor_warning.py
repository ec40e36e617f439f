"""The page's warning when queued runs cannot start because of the executor (issue 15): an unknown
``MTL_LAB_EXECUTOR``, a malformed ``MTL_LAB_RAY_ADDRESS``, a Ray cluster that does not answer. Each is one
warning naming the setting, no traceback, and what was queued stays queued; a participant of a workshop
is told to wait without the server's settings."""

from __future__ import annotations

import time

import pytest
from app_support import open_page, page_texts

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home


@pytest.fixture
def autostart(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "1")
    yield
    workers.stop_pool(lab_home())


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"MTL_LAB_EXECUTOR": "bogus"}, "`MTL_LAB_EXECUTOR` must be one of local, ray, serial, got 'bogus'"),
        ({"MTL_LAB_EXECUTOR": "ray", "MTL_LAB_RAY_ADDRESS": "ray://nohost"},
         "`MTL_LAB_RAY_ADDRESS` must be empty (a local Ray), `auto`, `HOST:PORT` or `ray://HOST:PORT`"),
    ],
)
def test_settings_that_cannot_work_are_one_warning_naming_the_setting(
    settings: dict[str, str], expected: str, autostart: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    at = open_page("train")
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Queued runs cannot start:") and expected in w for w in warnings), warnings
    assert not workers.pool_running(lab_home())  # nothing started that would fail the queue


def test_without_a_problem_there_is_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "0")
    at = open_page("train")
    assert not at.exception, at.exception
    assert "Queued runs" not in page_texts(at, ("warning",))


def test_an_unreachable_cluster_is_a_warning_and_queued_runs_wait(autostart: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")
    monkeypatch.setenv("MTL_LAB_EXECUTOR", "ray")
    monkeypatch.setenv("MTL_LAB_RAY_ADDRESS", "ray://127.0.0.1:1")  # nothing listens on port 1
    store = RunStore.at_home(lab_home())
    run_id = workers.submit({"suite": "planted", "epochs": 1}, home=lab_home())[0]
    at = open_page("train")  # starts the pool: a bridge to a cluster that does not answer
    deadline = time.monotonic() + 60
    while not (workers.pool_status(lab_home()) or {}).get("error") and time.monotonic() < deadline:
        time.sleep(0.5)
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Queued runs wait: the worker pool cannot reach the Ray cluster at ray://127.0.0.1:1")
               and "MTL_LAB_RAY_ADDRESS" in w for w in warnings), warnings
    assert store.get_run(run_id).status == "queued"

    # A participant of a workshop learns that their runs wait, not the server's settings.
    monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", "correct horse battery staple")
    participant = open_page("train", me="p-0123456789abcdef")
    assert not participant.exception, participant.exception
    shown = page_texts(participant, ("warning",))
    assert "Queued runs cannot start yet" in shown and "Your runs stay queued" in shown, shown
    assert "127.0.0.1" not in shown and "MTL_LAB" not in shown, shown
