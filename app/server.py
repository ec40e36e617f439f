"""MTL Lab's server: the dashboard (``main.py``) served with what must happen once, at server start.

Start it with ``streamlit run app/server.py`` (the README's command; ``streamlit run app/main.py``
serves the same pages, but then recovery and the worker pool wait for the first page view). Before the
first page is served, :func:`server_start`:

1. refuses to serve beyond loopback without a presenter passcode: the process exits with the pages'
   sentence instead (nothing is ever served; the socket Streamlit bound is closed as it exits);
2. opens the run store and marks ``failed`` the runs left ``running`` by a worker that is gone (a
   reboot, a killed pool), as ``python -m mtl_core runs`` does; a store that cannot be used is one
   sentence in the log, and the pages say theirs;
3. starts the worker pool when runs wait in the queue (the call a page view makes), unless
   ``$MTL_LAB_APP_AUTOSTART=0``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from services.catalog import StoreError, ensure_workers, recover_interrupted, store_problem
from state import single_user
from streamlit.logger import get_logger
from views._access import REFUSAL, loopback_only

from mtl_core.settings import SettingError

__all__ = ["EXIT_REFUSED", "app", "exposure_refusal", "server_start"]

#: The exit status of a server that refused to serve beyond loopback without a presenter passcode.
EXIT_REFUSED = 2

log = get_logger("mtl_lab.server")


def exposure_refusal(address: str | None) -> str | None:
    """The pages' refusal sentence when a server bound to ``address`` would serve other machines with
    no presenter passcode, else None."""
    try:
        unguarded = single_user()
    except SettingError:
        return None  # a bad setting: every page says which and how to fix it
    if unguarded and not loopback_only(address):
        return REFUSAL.format(where=f"`{address}`" if address else "unset: every interface")
    return None


def server_start() -> None:
    """Recover interrupted runs and start the pool for queued ones (blocking; logs what it did)."""
    try:
        recovered = recover_interrupted()
        started = ensure_workers()
    except StoreError as exc:  # the pages say it too, on every view
        log.error(store_problem(exc))
        return
    except OSError as exc:  # the pool could not be spawned: a page view tries again
        log.error("The worker pool could not be started: %s", exc)
        return
    if recovered:
        log.info("Marked failed (interrupted): run %s.", ", ".join(str(run_id) for run_id in recovered))
    if started:
        log.info("Started the worker pool for the queued runs.")


def _refuse(sentence: str) -> None:
    """Exit at once with ``sentence``: raising from the lifespan would let the server log a traceback,
    and nothing may be served in between."""
    print(sentence, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_REFUSED)


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    """Runs once when the server starts, before it serves a page."""
    refusal = exposure_refusal(st.get_option("server.address"))
    if refusal is not None:
        _refuse(refusal)
    await asyncio.to_thread(server_start)
    yield


app = st.App("main.py", lifespan=lifespan)
