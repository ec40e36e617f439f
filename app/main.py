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
    executor_warning,
    keep_workers_ready,
    plugin_problems,
    store_problem,
    warm_up,
)
from services.pacing import record_render
from state import StateKeys, acting, init_state, is_presenter, participant_token, single_user
from views._access import identity_sidebar, refuse_unsafe_exposure
from views._lessons import lesson_aside
from views._widgets import store_summary

# An emoji favicon is drawn in the browser; a ":material/…:" one is fetched from fonts.gstatic.com (an error offline).
st.set_page_config(page_title="MTL Lab", page_icon="🧪", layout="wide")
init_state()


def _home() -> None:
    """The root address (``/``): never drawn, main.py sends it on to Train (or a deep link's run view)."""


# Train has its own address (``/train``), so the home page is a hidden one that forwards there: a default
# page is served only at ``/``, and its ``url_path`` would answer "Page not found".
PAGES = {
    "home": st.Page(_home, title="MTL Lab", url_path="home", default=True, visibility="hidden"),
    "train": st.Page("views/train.py", title="Train", icon=":material/rocket_launch:", url_path="train"),
    "run": st.Page("views/run_view.py", title="Run view", icon=":material/monitoring:", url_path="run"),
    "relationships": st.Page("views/relationships.py", title="Relationships", icon=":material/hub:", url_path="relationships"),
    "groupings": st.Page("views/groupings.py", title="Groupings", icon=":material/workspaces:", url_path="groupings"),
    "compare": st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    "runs": st.Page("views/runs.py", title="Runs", icon=":material/list:", url_path="runs"),
    "learn": st.Page("views/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
    "playground": st.Page("views/playground.py", title="Playground", icon=":material/explore:", url_path="playground"),
    "data": st.Page("views/data.py", title="Your data", icon=":material/upload_file:", url_path="data"),
    "class": st.Page("views/class_view.py", title="Class", icon=":material/groups:", url_path="class"),
}
# The Class page shows every participant's name and runs: only the presenter gets it (single-user, it
# says how to set up a workshop).
workshop = ["learn", "playground"] + (["class"] if is_presenter() or single_user() else [])
page = st.navigation({
    "Experiment": [PAGES[k] for k in ("home", "train", "run", "relationships", "groupings", "compare", "runs")],
    "Data": [PAGES["data"]],
    "Workshop": [PAGES[k] for k in workshop],
})
if page is PAGES["home"]:  # ``/`` opens Train at ``/train``; a deep link to it (``/?run=7``) the run view
    st.switch_page(PAGES["run"] if "run" in st.query_params else PAGES["train"],
                   query_params=st.query_params.to_dict())

participant_token()  # this browser's identity, kept in the address (?me=…) on every page
refuse_unsafe_exposure()  # beyond loopback only with a presenter passcode

problem = check_store()
if problem is not None:
    st.error(problem)
    st.stop()
for plugin_problem in plugin_problems():  # a broken plugin: everything else works without it
    st.warning(plugin_problem, icon=":material/extension_off:")

# While a page is open the pool runs with a worker ready (PyTorch loaded), so a run queued here starts at
# once; it is started when none runs (it exits by itself once no page has been open for a while).
try:
    keep_workers_ready()
    if not st.session_state[StateKeys.POOL_CHECKED]:
        warm_up()
        st.session_state[StateKeys.POOL_CHECKED] = True
except StoreError as exc:  # a store that opens but fails on reading (damaged pages): one sentence
    st.error(store_problem(exc))
    st.stop()
executor_trouble = executor_warning()
if executor_trouble is not None:
    # The settings and the cluster's address are the presenter's business (and a single user's).
    st.warning(executor_trouble if acting().manages_all else
               "Queued runs cannot start yet: the server's executor settings need the presenter's attention. "
               "Your runs stay queued.", icon=":material/cloud_off:")


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
