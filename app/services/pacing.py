"""The dashboard's pace: how often live views refresh (stretched when many sessions watch at once)
and, when asked, how long each page took to render."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

from mtl_core.settings import SettingError, settings

__all__ = [
    "LIVE_REFRESH_ENV",
    "DEFAULT_LIVE_REFRESH",
    "LIVE_SECONDS_PER_VIEWER",
    "LIVE_SERVER_SHARE",
    "PERIOD_STEPS",
    "note_live_refresh",
    "live_refresh_cost",
    "live_refresh_seconds",
    "live_refresh_for",
    "live_viewers",
    "TIMINGS_ENV",
    "record_render",
]

#: Seconds between two refreshes of a live run view (default 1). On a small server shared by a whole
#: class, 2-5 s keeps the server responsive: every open live view redraws its charts at this pace.
LIVE_REFRESH_ENV = "MTL_LAB_LIVE_REFRESH"
DEFAULT_LIVE_REFRESH = 1.0
_refresh_warned: set[str] = set()


def live_refresh_seconds() -> float:
    """The live view's refresh period: ``$MTL_LAB_LIVE_REFRESH`` clamped to [0.5, 60] s
    (:attr:`mtl_core.settings.Settings.live_refresh`); the default (1 s) when unset or not a number
    (the server log says so once)."""
    try:
        return settings().live_refresh
    except SettingError as exc:
        if str(exc.got) not in _refresh_warned:
            _refresh_warned.add(str(exc.got))
            logging.getLogger(__name__).warning(
                "%s must be a number of seconds, got %r; using %g", LIVE_REFRESH_ENV, exc.got, DEFAULT_LIVE_REFRESH)
        return DEFAULT_LIVE_REFRESH


#: Server CPU seconds one live-view refresh is assumed to cost before any has been measured (an
#: incremental read + two figures: about 0.12 s; a side-by-side group up to 0.5 s). Once live views
#: refresh, :func:`note_live_refresh` replaces it with a running mean of what they really cost.
LIVE_SECONDS_PER_VIEWER = 0.25
#: The share of one core that all live refreshes together may take: the Streamlit server is one Python
#: process, and it must still open pages and answer clicks while a class watches live runs.
LIVE_SERVER_SHARE = 0.6
#: The periods a live view may take (seconds, beyond the configured one). Changing the period of a view
#: that is already polling costs that viewer one full page rerun, so such a view only slows down, and
#: only when the wanted period is more than 1.5× its current one (it then takes 1.25× the wanted one,
#: rounded up to a step, leaving room for more viewers). It speeds up again at its next full page run
#: (``fresh``), which happens anyway: a reload, another run, a click.
PERIOD_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0)
_SLOW_DOWN_BEYOND = 1.5
_SLOW_DOWN_HEADROOM = 1.25
#: A viewer counts as live until it has missed about three refreshes (and at least 15 s): under load a
#: refresh can come later than its period, and a viewer that dropped out of the count and came back
#: would move everyone's period each time.
_LIVE_VIEWER_TTL = 15.0
_MISSED_REFRESHES = 3.0
_COST_WEIGHT = 0.2  # weight of the newest refresh in the running mean of the cost
_live_viewers: dict[str, float] = {}
_live_periods: dict[str, float] = {}
_live_cost: list[float] = []  # [running mean of CPU seconds per live refresh], empty until measured
_live_viewers_lock = threading.Lock()


def _expired(viewer: str, seen: float, now: float) -> bool:
    period = _live_periods.get(viewer, 0.0)
    return now - seen > max(_LIVE_VIEWER_TTL, _MISSED_REFRESHES * period)


def live_viewers(viewer: str | None = None) -> int:
    """How many sessions watched a live run lately (in the last 15 s, or three of their refresh
    periods when these are longer), noting ``viewer`` as one now."""
    now = time.monotonic()
    with _live_viewers_lock:
        if viewer is not None:
            _live_viewers[viewer] = now
        for key in [k for k, seen in _live_viewers.items() if _expired(k, seen, now)]:
            del _live_viewers[key]
            _live_periods.pop(key, None)
        return len(_live_viewers)


def note_live_refresh(cpu_seconds: float) -> None:
    """Note what one refresh of a live view cost the server (CPU seconds of the thread that ran it):
    the pace of every live view follows the running mean."""
    if not math.isfinite(cpu_seconds) or cpu_seconds < 0:
        return
    with _live_viewers_lock:
        if _live_cost:
            _live_cost[0] += _COST_WEIGHT * (cpu_seconds - _live_cost[0])
        else:
            _live_cost.append(cpu_seconds)


def live_refresh_cost() -> float:
    """Server CPU seconds one live refresh costs: the running mean of the measured refreshes, or
    :data:`LIVE_SECONDS_PER_VIEWER` before any was measured."""
    with _live_viewers_lock:
        return _live_cost[0] if _live_cost else LIVE_SECONDS_PER_VIEWER


def _step_up(seconds: float) -> float:
    return next((step for step in PERIOD_STEPS if step >= seconds - 1e-9), PERIOD_STEPS[-1])


def live_refresh_for(viewer: str, fresh: bool = False) -> float:
    """The refresh period of ``viewer``'s live view: ``$MTL_LAB_LIVE_REFRESH`` (default 1 s), stretched
    when many sessions watch at once so that all live refreshes together take at most
    :data:`LIVE_SERVER_SHARE` of a core (viewers × cost of a refresh ÷ share; 30 viewers at 0.25 s:
    12.5 s, taken as 20 s), with room for more viewers, rounded up to one of :data:`PERIOD_STEPS`. A
    view that polls keeps its period until the wanted one exceeds 1.5× it; ``fresh`` (a full page run)
    starts from the wanted period, faster or slower."""
    base = live_refresh_seconds()
    viewers = live_viewers(viewer)
    wanted = viewers * live_refresh_cost() / LIVE_SERVER_SHARE
    with _live_viewers_lock:
        current = None if fresh else _live_periods.get(viewer)
        if current is not None and wanted <= _SLOW_DOWN_BEYOND * current:
            period = max(base, current)  # keep it: a change would cost this viewer a full rerun
        elif wanted <= base:
            period = base
        else:
            period = max(base, min(_step_up(wanted * _SLOW_DOWN_HEADROOM), 60.0))
        if viewer in _live_viewers:
            _live_periods[viewer] = period
    return round(period, 1)


#: Set to a file path to append one JSON line per page render (page, seconds of the script run):
#: what ``benchmarks/app_render.py`` reads. Off by default.
TIMINGS_ENV = "MTL_LAB_APP_TIMINGS"


def record_render(page: str, seconds: float) -> None:
    """Note how long a page's script took (only when ``$MTL_LAB_APP_TIMINGS`` names a file)."""
    target = settings().app_timings
    if target is None:
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"page": page, "seconds": round(seconds, 4), "at": time.time()}) + "\n")
    except OSError:
        pass
