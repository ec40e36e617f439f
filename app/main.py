"""MTL Lab — the Streamlit entry point: page setup, navigation, the worker pool; nothing else.

Served by ``streamlit run app/server.py`` (``mtl_core`` must be importable: ``pip install -e .``), which
also recovers interrupted runs and starts the pool at server start; ``streamlit run app/main.py``
serves the same pages (and AppTest runs this file directly), then the first page view does both.
"""

from __future__ import annotations

import time

import streamlit as st
from services.catalog import (
    StoreError,
    check_store,
    ensure_workers,
    plugin_problems,
    store_path,
    store_problem,
    warm_up,
)
from services.pacing import record_render
from services.runs import run_counts
from state import StateKeys, acting, init_state, participant_token
from views._access import identity_sidebar, refuse_unsafe_exposure
from views._lessons import lesson_aside

st.set_page_config(page_title="MTL Lab", page_icon=":material/science:", layout="wide")
init_state()

PAGES = {
    "train": st.Page("views/train.py", title="Train", icon=":material/rocket_launch:", url_path="train", default=True),
    "run": st.Page("views/run_view.py", title="Run view", icon=":material/monitoring:", url_path="run"),
    "relationships": st.Page("views/relationships.py", title="Relationships", icon=":material/hub:", url_path="relationships"),
    "groupings": st.Page("views/groupings.py", title="Groupings", icon=":material/workspaces:", url_path="groupings"),
    "compare": st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    "runs": st.Page("views/runs.py", title="Runs", icon=":material/list:", url_path="runs"),
    "learn": st.Page("views/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
    "playground": st.Page("views/playground.py", title="Playground", icon=":material/explore:", url_path="playground"),
    "data": st.Page("views/data.py", title="Your data", icon=":material/upload_file:", url_path="data"),
}
page = st.navigation({
    "Experiment": [PAGES[k] for k in ("train", "run", "relationships", "groupings", "compare", "runs")],
    "Data": [PAGES["data"]],
    "Workshop": [PAGES["learn"], PAGES["playground"]],
})

participant_token()  # this browser's identity, kept in the address (?me=…) on every page
refuse_unsafe_exposure()  # beyond loopback only with a presenter passcode

problem = check_store()
if problem is not None:
    st.error(problem)
    st.stop()
for plugin_problem in plugin_problems():  # a broken plugin: everything else works without it
    st.warning(plugin_problem, icon=":material/extension_off:")

# The pool is started once per session (it exits by itself when idle), and again whenever queued
# runs wait with no pool to take them (e.g. after a reboot).
try:
    if not st.session_state[StateKeys.POOL_CHECKED]:
        ensure_workers(always=True)
        warm_up()
        st.session_state[StateKeys.POOL_CHECKED] = True
    else:
        ensure_workers()
except StoreError as exc:  # a store that opens but fails on reading (damaged pages): one sentence
    st.error(store_problem(exc))
    st.stop()

# A deep link to the home address (``/?run=7``) opens the run view.
if page is PAGES["train"] and "run" in st.query_params:
    st.switch_page(PAGES["run"], query_params={"run": st.query_params["run"]})


@st.fragment(run_every=5.0)
def store_summary() -> None:
    try:
        counts = run_counts()
    except StoreError:
        return  # the page says why
    # Where the store lives on the server is the presenter's business (and a single user's), not a participant's.
    where = f" in `{store_path()}`" if acting().manages_all else " on this server"
    st.caption(f"{counts['running']} running · {counts['queued']} queued · {counts['total']} runs{where}")


with st.sidebar:
    identity_sidebar()
    store_summary()
lesson_aside()  # the active lesson's question beside the plots (nothing when none is active)

started = time.perf_counter()
try:
    page.run()
except StoreError as exc:  # the store failed while the page read it: one sentence, not a traceback
    st.error(store_problem(exc))
finally:
    record_render(page.title, time.perf_counter() - started)
