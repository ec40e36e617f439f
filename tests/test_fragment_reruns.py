"""A polling fragment that asks for a full page run must not swallow a click (issue 12).

In a full page run a fragment's body runs inline. If what it polls changed between the page's read
and the fragment's (another participant's runs started or ended), its ``st.rerun()`` used to restart
the page before the page reached the clicked button: a new run has no trigger values, so the click
was lost (seen under load: "Run this lesson" clicks that queued nothing). The state flip is forced
here by making the sidebar's second read of the run counts see one more running run, once.
"""

from __future__ import annotations

import pytest
from app_support import open_page  # puts app/ on sys.path: the pages' modules import below

from mtl_core.runs.store import RunStore, lab_home

LESSON = "scale-imbalance"


@pytest.fixture
def flip_once(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """After ``armed["on"] = 1``, the second call of the sidebar's ``run_counts`` sees one more run
    running than the first (runs started between the two reads); every other call is the store's."""
    import views._widgets as widgets

    real = widgets.run_counts
    armed = {"on": 0, "calls": 0, "flips": 0}

    def counts() -> dict[str, int]:
        value = dict(real())
        if armed["on"]:
            armed["calls"] += 1
            if armed["calls"] == 2:
                armed["flips"] += 1
                value["running"] += 1
                value["total"] += 1
        return value

    monkeypatch.setattr(widgets, "run_counts", counts)
    return armed


def test_a_lesson_click_registers_while_the_sidebar_sees_runs_start(
        monkeypatch: pytest.MonkeyPatch, flip_once: dict[str, int]) -> None:
    from services.catalog import AUTOSTART_ENV

    monkeypatch.setenv(AUTOSTART_ENV, "0")
    at = open_page("learn")
    assert not at.exception
    flip_once["on"] = 1
    at.button(key=f"learn_run_{LESSON}").click().run()
    assert flip_once["flips"] == 1  # the sidebar did see the counts change during the click's run
    assert not at.exception
    with RunStore.at_home(lab_home()) as store:
        queued = store.list_runs()
    assert queued, "the click queued nothing: the sidebar's rerun dropped it"
    assert at.query_params.get("run"), "the click did not open the run view"

