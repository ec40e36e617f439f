"""``store_fragment``: ``st.fragment`` for parts of a page that read the run store while they poll.

A fragment's rerun does not pass through the entry script, whose guard turns a store failure (a
damaged file, a store that cannot be read) into one sentence; an exception in a fragment would show
a traceback in its place. The guard here does the same inside the fragment.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import streamlit as st
from services.catalog import StoreError, store_problem
from services.pacing import note_live_refresh

__all__ = ["store_fragment"]


def store_fragment(run_every: float | None = None,
                   paced: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@st.fragment(run_every=…)`` whose body, when the run store fails, shows one sentence that
    names the file and what to do instead of a traceback. ``paced``: the body is a live view whose
    refresh period follows its cost (each polled run's CPU time goes to
    :func:`services.pacing.note_live_refresh`)."""

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                result = body(*args, **kwargs)
            except StoreError as exc:
                st.error(store_problem(exc))
                return None
            if paced and run_every is not None:
                note_live_refresh(time.thread_time() - started)
            return result

        return st.fragment(run_every=run_every)(guarded)

    return decorate
