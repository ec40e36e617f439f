"""``store_fragment``: ``st.fragment`` for parts of a page that read the run store while they poll.

A fragment's rerun does not pass through the entry script, whose guard turns a store failure (a
damaged file, a store that cannot be read) into one sentence; an exception in a fragment would show
a traceback in its place. The guard here does the same inside the fragment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import streamlit as st
from services.catalog import StoreError, store_problem

__all__ = ["store_fragment"]


def store_fragment(run_every: float | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@st.fragment(run_every=…)`` whose body, when the run store fails, shows one sentence that
    names the file and what to do instead of a traceback."""

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return body(*args, **kwargs)
            except StoreError as exc:
                st.error(store_problem(exc))
                return None

        return st.fragment(run_every=run_every)(guarded)

    return decorate
