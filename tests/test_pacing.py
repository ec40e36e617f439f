"""The live views' pace (app/services/pacing.py): it follows the number of viewers and what a refresh
really costs, changes only when the wanted period moves well away, and keeps slow viewers counted."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from services import pacing  # noqa: E402
from services.pacing import (  # noqa: E402
    LIVE_REFRESH_ENV,
    LIVE_SECONDS_PER_VIEWER,
    LIVE_SERVER_SHARE,
    PERIOD_STEPS,
    live_refresh_cost,
    live_refresh_for,
    live_viewers,
    note_live_refresh,
)


@pytest.fixture(autouse=True)
def fresh_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIVE_REFRESH_ENV, raising=False)
    monkeypatch.setattr(pacing, "_live_viewers", {})
    monkeypatch.setattr(pacing, "_live_periods", {})
    monkeypatch.setattr(pacing, "_live_cost", [])


def _watch(count: int) -> None:
    for index in range(count):
        live_refresh_for(f"student-{index}")


def test_one_viewer_refreshes_at_the_configured_period() -> None:
    assert live_refresh_for("student-0") == 1.0
    note_live_refresh(0.4)
    assert live_refresh_for("student-0") == 1.0


def test_many_viewers_share_a_part_of_one_core() -> None:
    _watch(40)
    assert live_viewers() == 40
    wanted = 40 * LIVE_SECONDS_PER_VIEWER / LIVE_SERVER_SHARE
    period = live_refresh_for("student-0")
    # room for more viewers: a step at or above 1.25 × the wanted period
    assert period in PERIOD_STEPS and 1.25 * wanted <= period < 2 * wanted
    # a period of p seconds for n viewers at c seconds each uses n·c/p of a core: at most the share
    assert 40 * LIVE_SECONDS_PER_VIEWER / period <= LIVE_SERVER_SHARE + 1e-9


def test_the_pace_follows_what_refreshes_really_cost() -> None:
    assert live_refresh_cost() == LIVE_SECONDS_PER_VIEWER
    for _ in range(40):
        note_live_refresh(0.45)
    assert live_refresh_cost() == pytest.approx(0.45, abs=0.01)
    _watch(30)
    period = live_refresh_for("student-29")
    assert 30 * 0.45 / LIVE_SERVER_SHARE <= period <= 30.0
    # cheaper refreshes later: a polling view keeps its period (a change would rerun its page) …
    for _ in range(60):
        note_live_refresh(0.05)
    assert live_refresh_for("student-29") == period
    # … and takes the faster one at its next full page run
    assert live_refresh_for("student-29", fresh=True) < period


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_a_meaningless_cost_is_ignored(bad: float) -> None:
    note_live_refresh(0.3)
    note_live_refresh(bad)
    assert live_refresh_cost() == pytest.approx(0.3)


def test_small_changes_in_the_viewer_count_keep_the_period() -> None:
    _watch(40)
    first = {f"student-{i}": live_refresh_for(f"student-{i}") for i in range(40)}
    live_refresh_for("student-40")  # one more viewer: 2.5 % more load
    assert {name: live_refresh_for(name) for name in first} == first
    # twice the viewers: still within 1.5 × the period taken with room to spare
    _watch(80)
    assert live_refresh_for("student-0") == first["student-0"]
    # three times: the period moves
    _watch(120)
    assert live_refresh_for("student-0") > first["student-0"]


def test_viewers_on_a_long_period_stay_counted_and_leavers_stop_counting() -> None:
    for _ in range(20):
        note_live_refresh(0.5)
    _watch(30)
    _watch(30)  # each viewer's period once all 30 watch
    period = live_refresh_for("student-0")
    assert period >= 20.0
    # 20 s after their last refresh, viewers on a 20+ s period are still watching
    pacing._live_viewers.update({key: seen - 20 for key, seen in pacing._live_viewers.items()
                                 if key != "student-0"})
    assert live_viewers() == 30
    # after three missed refreshes they count no more
    pacing._live_viewers.update({key: seen - 3 * period for key, seen in pacing._live_viewers.items()
                                 if key != "student-0"})
    assert live_viewers("student-0") == 1
    assert live_refresh_for("student-0") == period  # polling: it does not speed up by itself
    assert live_refresh_for("student-0", fresh=True) == 1.0


def test_the_sidebar_counts_refresh_slower_as_more_sessions_watch() -> None:
    from views._widgets import SUMMARY_LIVE_SECONDS, SUMMARY_SECONDS_PER_VIEWER, summary_period

    live = {"running": 1, "queued": 0, "total": 1}
    assert summary_period(live) == SUMMARY_LIVE_SECONDS
    _watch(30)
    assert summary_period(live) == 30 * SUMMARY_SECONDS_PER_VIEWER
