"""Small drawing helpers shared by the pages (no engine access: data come from ``services``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st
from services.catalog import StoreError, keep_workers_ready, store_path
from services.downloads import figure_html, figure_png, png_export_available
from services.pacing import live_refresh_seconds, live_viewers
from services.runs import run_counts
from state import StateKeys, acting, figure_download_key, option_key
from views._reruns import rerun_page_from_fragment

__all__ = ["option_inputs", "show_flash", "flash", "status_badge", "first_steps", "figure_downloads",
           "SUMMARY_LIVE_SECONDS", "SUMMARY_IDLE_SECONDS", "summary_period", "summary_caption", "store_summary"]

#: Seconds between two refreshes of the sidebar's run counts while runs are queued or running (at least:
#: a slower live-view pace set by MTL_LAB_LIVE_REFRESH applies to it too), so that it keeps up with the
#: live run view; and while none is.
SUMMARY_LIVE_SECONDS = 1.5
SUMMARY_IDLE_SECONDS = 5.0
#: With many sessions watching live runs, each one's sidebar refreshes at most this often per session
#: (30 viewers: every 15 s): every refresh of every session is work for the one server process
#: (measured with benchmarks/load.py: at 1.5 s, 30 sessions' sidebars were ~20 requests a second).
SUMMARY_SECONDS_PER_VIEWER = 0.5

_STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/directions_run:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/stop_circle:",
}


def status_badge(status: str) -> str:
    return f"{_STATUS_ICONS.get(status, '')} {status}"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def option_inputs(family: str, owner: str, options: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One input per declared option (``Option.to_dict()`` records); returns name → value.

    Numbers get number inputs bounded by the option's range, booleans a checkbox, choices a select
    box; lists and "or none" values a text box (blank = none) that the engine parses and checks.
    """
    values: dict[str, Any] = {}
    for option in options:
        name, kind, default = option["name"], option["kind"], option["default"]
        key = option_key(family, owner, name)
        label, help_text = name, option.get("help") or None
        low, high = option.get("low"), option.get("high")
        if option.get("choices"):
            choices = list(option["choices"])
            values[name] = st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                                        key=key, help=help_text)
        elif kind == "bool":
            values[name] = st.checkbox(label, value=bool(default), key=key, help=help_text)
        elif kind == "int":
            values[name] = int(st.number_input(
                label, value=int(default), step=1,
                min_value=None if low is None else int(low), max_value=None if high is None else int(high),
                key=key, help=help_text,
            ))
        elif kind == "float":
            step = max(abs(float(default)) / 10, 1e-4) if default else 0.01
            values[name] = float(st.number_input(
                label, value=float(default), step=step, format="%g",
                min_value=None if low is None else float(low), max_value=None if high is None else float(high),
                key=key, help=help_text,
            ))
        else:
            hint = " Leave blank for none." if kind.endswith("_or_none") else ""
            if kind.startswith("floats"):
                hint = " Comma-separated numbers." + hint
            values[name] = st.text_input(label, value=_as_text(default), key=key, help=(help_text or "") + hint)
    return values


def flash(message: str) -> None:
    """Show ``message`` on the next page drawn (e.g. after a page switch)."""
    st.session_state[StateKeys.FLASH] = message


def show_flash() -> None:
    message = st.session_state.get(StateKeys.FLASH)
    if message:
        st.success(message)
        st.session_state[StateKeys.FLASH] = None


def first_steps() -> None:
    """What a newcomer should do first (shown on pages that have nothing to show yet)."""
    st.info(
        "**No runs yet.** Open **Train**, start from the preset *Conflicting tasks — methods differ* "
        "(synthetic tasks with a known group structure, one task against the others, three balancing "
        "methods) or keep the defaults and tick one or two methods, then press **Start training**. "
        "A run takes well under a minute; its charts fill in while it trains."
    )
    st.page_link("views/train.py", label="Go to Train", icon=":material/rocket_launch:")


def figure_downloads(fig: Any, name: str, key: str) -> None:
    """Download buttons for a chart: interactive HTML (works offline), and PNG when a static image
    exporter is installed. ``name`` is the file name without suffix; ``key`` the chart's key (the
    buttons' keys add ``_html`` / ``_png``).

    The files are built only when a button is clicked (``data`` is a callable), so a page that
    refreshes every second pays nothing for them; a click does not rerun the page."""
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            "HTML", data=lambda: figure_html(fig), file_name=f"{name}.html", mime="text/html",
            key=figure_download_key(key, "html"), on_click="ignore", type="tertiary", icon=":material/download:",
            help="This chart as an interactive web page (zoom, hover; opens offline in any browser).",
        )
        if png_export_available():
            st.download_button(
                "PNG", data=lambda: figure_png(fig), file_name=f"{name}.png", mime="image/png",
                key=figure_download_key(key, "png"), on_click="ignore", type="tertiary", icon=":material/image:",
                help="This chart as a PNG image.",
            )


def _live(counts: Mapping[str, int]) -> bool:
    return bool(counts["running"] or counts["queued"])


def summary_period(counts: Mapping[str, int]) -> float:
    """How often the sidebar's run counts refresh: faster while runs are queued or running, slower as
    more sessions watch live runs (:data:`SUMMARY_SECONDS_PER_VIEWER` each)."""
    if _live(counts):
        return max(SUMMARY_LIVE_SECONDS, live_refresh_seconds(), SUMMARY_SECONDS_PER_VIEWER * live_viewers())
    return max(SUMMARY_IDLE_SECONDS, SUMMARY_SECONDS_PER_VIEWER * live_viewers())


def summary_caption(counts: Mapping[str, int], where: str) -> str:
    """``1 run on this server · 1 running · 0 queued``: the sidebar's run counts (``where``: `` on
    this server`` or `` in `PATH` ``), the total after a colon so that it reads right for any count."""
    total = counts["total"]
    return f"{total} run{'' if total == 1 else 's'}{where} · {counts['running']} running · {counts['queued']} queued"


def _store_summary(live: bool) -> None:
    try:
        keep_workers_ready()  # this page is still open: the pool keeps a worker ready
        counts = run_counts()
    except (StoreError, OSError):
        return  # the page says why
    if _live(counts) != live:
        rerun_page_from_fragment()  # runs started, or the last one ended: the whole page again, to refresh at the other pace
    # Where the store lives on the server is the presenter's business (and a single user's), not a participant's.
    where = f" in `{store_path()}`" if acting().manages_all else " on this server"
    st.caption(summary_caption(counts, where))


def store_summary() -> None:
    """The sidebar's run counts, refreshed every :data:`SUMMARY_LIVE_SECONDS` while runs are live and
    every :data:`SUMMARY_IDLE_SECONDS` otherwise (a fragment: only it reruns); each refresh also tells
    the worker pool that this page is still open."""
    try:
        counts = run_counts()
    except StoreError:
        return  # the page says why
    st.fragment(_store_summary, run_every=summary_period(counts))(_live(counts))
