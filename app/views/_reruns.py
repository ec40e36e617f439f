"""Full page reruns asked for by a polling fragment, only from the fragment's own refresh.

A fragment's body runs in two kinds of runs: inline, in a full run of its page, and alone, when its
timer fires. It reruns the page when what it polls has changed since the page was drawn (runs
started or ended, a launch finished: the page's polling pace or layout follows). In a full page run
that check compares two reads of the store a few milliseconds apart; if another participant's runs
started in between, ``st.rerun()`` restarted the page before it reached a button the user had just
clicked, and the new run had no trigger values: the click was lost ("Run this lesson" queued
nothing, issue 12). In a full run the page is being drawn from fresh data anyway, so the rerun is
skipped there; the fragment's next timed refresh sees the change and reruns the page then.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

__all__ = ["in_fragment_refresh", "rerun_page_from_fragment"]


def in_fragment_refresh() -> bool:
    """True while only fragments run (a timed refresh or a widget inside a fragment), False in a
    full page run (and outside Streamlit)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def rerun_page_from_fragment() -> None:
    """``st.rerun()`` of the whole page, when called from a fragment's own refresh; nothing in a full
    page run (see the module's note: a rerun there would drop a click the page has not reached)."""
    if in_fragment_refresh():
        st.rerun()
