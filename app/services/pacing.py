"""The dashboard's pace: how often live views refresh (stretched when many sessions watch at once)
and, when asked, how long each page took to render."""

from __future__ import annotations

import json
import logging
import threading
import time

from mtl_core.settings import SettingError, settings

__all__ = [
    "LIVE_REFRESH_ENV",
    "DEFAULT_LIVE_REFRESH",
    "LIVE_SECONDS_PER_VIEWER",
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


#: Server seconds one live-view refresh may cost on average (incremental read + two figures: about
#: 0.12 s measured, more for side-by-side groups). The refresh period grows with the number of live
#: viewers so that all of them together cost at most about one refresh at a time: the Streamlit server
#: is one Python process, and a class of 40 watching live runs at 1 s each would swamp it.
LIVE_SECONDS_PER_VIEWER = 0.15
_LIVE_VIEWER_TTL = 15.0
_live_viewers: dict[str, float] = {}
_live_viewers_lock = threading.Lock()


def live_viewers(viewer: str | None = None) -> int:
    """How many sessions watched a live run in the last 15 s (noting ``viewer`` as one now)."""
    now = time.monotonic()
    with _live_viewers_lock:
        if viewer is not None:
            _live_viewers[viewer] = now
        for key in [k for k, seen in _live_viewers.items() if now - seen > _LIVE_VIEWER_TTL]:
            del _live_viewers[key]
        return len(_live_viewers)


def live_refresh_for(viewer: str) -> float:
    """The refresh period of ``viewer``'s live view: ``$MTL_LAB_LIVE_REFRESH`` (default 1 s), stretched
    to ``LIVE_SECONDS_PER_VIEWER`` × the number of live viewers when more sessions watch at once
    (40 viewers: 6 s), so a class on one small server stays responsive."""
    return round(max(live_refresh_seconds(), LIVE_SECONDS_PER_VIEWER * live_viewers(viewer)), 1)


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
