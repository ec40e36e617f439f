"""Relationships: launch a transfer study and read its heatmaps (transfer, TAG affinity, gradient cosine)."""

from __future__ import annotations

import numpy as np
import streamlit as st
from services.catalog import catalog, suite_tasks
from services.downloads import (
    study_csv,
    study_exportable,
    study_json,
    study_report_html,
    study_report_problem,
)
from services.runs import MTLError, explain
from services.studies import (
    STUDY_RUN_WARNING,
    TAG_CHECKBOX,
    StudyForm,
    StudyInfo,
    get_study,
    launch_study,
    list_studies,
    study_forecast,
    study_heatmaps,
    study_protocol_defaults,
    study_result,
    study_settings,
    study_size,
)
from state import StateKeys, init_state, session_owner
from views._reruns import rerun_page_from_fragment
from views._store import store_fragment
from views._widgets import figure_downloads, flash, option_inputs, show_flash

from mtl_core import figures

init_state()
st.title("Task relationships")
show_flash()
st.markdown(
    "Which tasks help which? A **transfer study** trains every task alone and every pair of tasks "
    "together, over several seeds, and measures **transfer(i ← j)**: how much task i's validation "
    "metric changes when it is trained together with task j instead of alone — **positive (blue) = "
    "j helps i, negative (red) = j hurts i**."
)

studies = list_studies()


# --- launching ------------------------------------------------------------------------------------------
def _launch_form() -> None:
    with st.spinner("Loading the engine…"):
        entries = catalog()
    suites = list(entries["suites"])
    if st.session_state.get(StateKeys.STUDY_SUITE) not in suites:
        st.session_state[StateKeys.STUDY_SUITE] = "planted" if "planted" in suites else suites[0]
    cols = st.columns(2)
    suite = cols[0].selectbox("Task suite", suites, key=StateKeys.STUDY_SUITE)
    with cols[0].expander("Suite options"):
        suite_options = option_inputs("study_suite", suite, entries["suites"][suite]["options"])
    try:
        task_names = [t["name"] for t in suite_tasks(suite, suite_options)]
    except MTLError as exc:
        st.error(explain(exc))
        return
    chosen = st.session_state.get(StateKeys.STUDY_TASKS)
    if chosen is None or not set(chosen) <= set(task_names):
        st.session_state[StateKeys.STUDY_TASKS] = task_names[: min(4, len(task_names))]
    tasks = cols[1].multiselect("Tasks (2 or more)", task_names, key=StateKeys.STUDY_TASKS,
                                help="Every pair is trained, so the number of runs grows with the square of this.")
    seeds = cols[1].number_input("Seeds", min_value=1, max_value=10, value=2, step=1, key=StateKeys.STUDY_SEEDS,
                                 help="With 2 or more seeds each cell gets a confidence interval and a test.")
    protocol = study_protocol_defaults()
    stopping = cols[1].columns(2)
    max_epochs = stopping[0].number_input(
        "Max epochs per run", min_value=1, max_value=100_000, value=protocol["max_epochs"], step=10,
        key=StateKeys.STUDY_MAX_EPOCHS,
        help="Every run — alone, pair, all tasks — trains at most this many epochs.")
    patience = stopping[1].number_input(
        "Patience (epochs)", min_value=1, max_value=100_000, value=protocol["patience"], step=1,
        key=StateKeys.STUDY_PATIENCE,
        help="Every run stops once the sum of its validation losses has not improved for this many epochs, "
             "so single-task and joint runs are each trained to convergence by the same rule.")
    # Pairs need something shared: every strategy but the single-task baseline.
    strategies = [name for name in entries["strategies"] if name != "single"]
    if st.session_state.get(StateKeys.STUDY_STRATEGY) not in strategies:
        st.session_state[StateKeys.STUDY_STRATEGY] = "hard" if "hard" in strategies else strategies[0]
    methods = list(entries["methods"])
    if st.session_state.get(StateKeys.STUDY_METHOD) not in methods:
        st.session_state[StateKeys.STUDY_METHOD] = "ew" if "ew" in methods else methods[0]
    model = cols[0].columns(2)
    strategy = model[0].selectbox("Sharing strategy", strategies, key=StateKeys.STUDY_STRATEGY,
                                  help="How the tasks of a pair share the network; a task alone is trained with "
                                       "the same strategy and settings, on its own.")
    method = model[1].selectbox("Balancing method", methods, key=StateKeys.STUDY_METHOD,
                                help="How a pair's gradients are combined. Equal weights (ew) measures the "
                                     "plain transfer; another method shows whether it removes negative transfer.")
    tag = cols[1].checkbox(f"{TAG_CHECKBOX} (one all-tasks run per seed)",
                           value=True, key=StateKeys.STUDY_TAG,
                           help="TAG's look-ahead needs one shared trunk: for a strategy without one, each "
                                "seed gets an extra hard-sharing run of all tasks for it.")
    form = StudyForm(suite=suite, tasks=list(tasks), suite_options=suite_options, strategy=strategy,
                             method=method, seeds=int(seeds), max_epochs=int(max_epochs), patience=int(patience),
                             include_all=bool(tag), tag=bool(tag))
    try:
        size = study_size(form)
    except MTLError as exc:
        st.error(f"**Can't start yet.** {explain(exc)}", icon=":material/warning:")
        size = None
    if size is not None:
        note = " That is a lot for a laptop; fewer tasks or seeds go faster." if size > STUDY_RUN_WARNING else ""
        how = f"{study_settings(form)}, {method}"
        st.markdown(f"This study queues **{size} runs** ({how}).{note}")
    if st.button("Start the study", type="primary", key=StateKeys.STUDY_START, disabled=size is None):
        try:
            group_id = launch_study(form, owner=session_owner())
        except MTLError as exc:
            st.error(f"**Nothing was queued.** {explain(exc)}")
            return
        st.session_state[StateKeys.STUDY_PICK] = group_id
        flash(f"Queued the study's {size} runs; the heatmaps fill in as they finish.")
        st.rerun()


with st.expander("Launch a transfer study", expanded=not studies):
    _launch_form()

if not studies:
    st.info("No study yet. Launch one above: with the defaults (4 planted tasks, 2 seeds, every run trained until "
            "its validation loss stops improving) it takes a few minutes, and the planted groups should show up "
            "as blue blocks.")
    st.stop()

# --- reading a study ----------------------------------------------------------------------------------------
ids = [s.group_id for s in studies]
if st.session_state.get(StateKeys.STUDY_PICK) not in ids:
    st.session_state[StateKeys.STUDY_PICK] = ids[0]
labels = {s.group_id: s.label for s in studies}
picked = st.selectbox("Study", ids, format_func=lambda g: labels.get(g, g), key=StateKeys.STUDY_PICK)
initial = get_study(picked)
if initial is None:
    st.warning("This study's manifest is gone.")
    st.stop()


def _study_chart(info: StudyInfo, name: str, figure, empty_title: str = "") -> None:
    """One of the study's charts with its HTML download, or an empty chart titled ``empty_title`` while
    (or because) the study has nothing for it."""
    key = f"{name}_{info.group_id}"
    if figure is None:
        st.plotly_chart(figures.empty_figure(empty_title, "Not measured" if info.finished else "No data yet"), key=key)
        return
    st.plotly_chart(figure, key=key)
    figure_downloads(figure, f"{info.group_id}_{name}", key)


def _heatmaps(info: StudyInfo) -> None:
    result = study_result(info)
    data = study_heatmaps(result)
    tasks = data["tasks"]
    order = figures.cluster_order(data["order_basis"]) if data["order_basis"] is not None else None
    top, bottom = st.columns(2), st.columns(2)
    columns = [top[0], top[1], bottom[0]]
    with columns[0]:
        transfer = data["transfer"]
        figure = figures.transfer_heatmap(transfer["mean"], transfer["ci_low"], transfer["ci_high"],
                                          transfer["p_value"], tasks, order=order, p_adjusted=transfer["p_adjusted"])
        _study_chart(info, "transfer", figure)
        st.caption("Row i, column j: transfer(i ← j) in %, the change of task i's validation metric when "
                   "trained with j instead of alone; positive = j helps i. * = significant after Holm's "
                   "correction over all the cells tested (α = 0.05), so that testing many cells does not "
                   "star some by chance; hover for the 95 % interval, the raw p and the Holm-adjusted p.")
        _protocol(data["protocol"])
    with columns[1]:
        affinity = None if data["affinity"] is None else figures.affinity_heatmap(data["affinity"], tasks, order)
        _study_chart(info, "affinity", affinity, empty_title="Inter-task affinity (TAG)")
        st.caption("TAG affinity: row i, column j = how much one training step on task i alone lowers task j's "
                   "loss (positive = i helps j), measured inside the all-tasks runs.")
    with columns[2]:
        cosine = None
        if data["cosine"] is not None:
            permutation = order or list(range(len(tasks)))
            matrix = np.asarray(data["cosine"], dtype=float)[np.ix_(permutation, permutation)]
            cosine = figures.cosine_heatmap(matrix.tolist(), [tasks[i] for i in permutation],
                                            title="Mean gradient cosine")
        _study_chart(info, "cosine", cosine, empty_title="Mean gradient cosine")
        st.caption("Mean cosine between the task gradients on the shared weights during training: blue (> 0) "
                   "the tasks pull the same way, red (< 0) they conflict.")
    notes = []
    if data["planted_groups"]:
        notes.append("The planted suite hid these groups: " +
                     " · ".join("{" + ", ".join(g) + "}" for g in data["planted_groups"]) + ".")
    overall = (data["delta_m"] or {}).get("all")
    if overall and overall.get("mean") is not None:
        notes.append(f"All tasks together: Δm = {overall['mean']:+.2f} % against single-task "
                     "(positive = better than training each task alone).")
    with bottom[1]:
        if notes:
            st.markdown(" ".join(notes))
        st.caption("Tasks are ordered by a hierarchical clustering of the first available matrix, so that tasks "
                   "that help each other form blocks. Next: **Groupings** turns these scores into task groups.")
        _study_downloads(info, result)
    _forecast(info, result)


def _forecast(info: StudyInfo, result: dict) -> None:
    """How early the cheap signals (TAG affinity, gradient cosine) rank the task pairs as the expensive
    pairwise transfer finally does: the curve of Spearman's ρ over the steps, or why there is none."""
    st.subheader("Early forecast of transfer")
    data = study_forecast(result, finished=info.finished)
    if data["forecast"] is None:
        st.info(data["sentence"])
        return
    _study_chart(info, "forecast", figures.forecast_figure(data["forecast"]))
    st.markdown(data["sentence"])
    st.caption("Standley et al. (2020) saw early-training transfer predict the final ranking; TAG (Fifty et al., "
               "2021) measures affinity in one run. Each point: the task pairs ranked by the signal as the study "
               "computes it from the runs' records up to that step (a pair scores the mean of its two directions) "
               "against the pairs ranked by the final transfer; ★ = the first step with ρ ≥ 0.8.")


def _protocol(protocol: dict) -> None:
    """How every run of the study was trained (studies written before the protocol was recorded
    have no rule, and show nothing)."""
    if protocol["rule"]:
        text = protocol["rule"][0].upper() + protocol["rule"][1:]
        st.caption(f"**Protocol.** {text}" + (f" {protocol['stopping']}" if protocol["stopping"] else ""))


def _study_downloads(info: StudyInfo, result: dict) -> None:
    """The study's analysis as JSON and its transfer cells as CSV, built when clicked."""
    if not study_exportable(result):
        return
    partial = "" if info.finished else " (so far)"
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            f"Study as JSON{partial}", data=lambda: study_json(result), file_name=f"{info.group_id}.json",
            mime="application/json", key=StateKeys.STUDY_DOWNLOAD_JSON, on_click="ignore", icon=":material/download:",
            help="The whole analysis (study.json): transfer statistics, affinity, cosines, Δm, groupings.",
        )
        st.download_button(
            f"Transfer cells as CSV{partial}", data=lambda: study_csv(result),
            file_name=f"{info.group_id}.csv", mime="text/csv", key=StateKeys.STUDY_DOWNLOAD_CSV, on_click="ignore",
            icon=":material/download:", help="One row per ordered task pair: target, partner, mean transfer, "
            "confidence interval, p-value (raw and Holm-adjusted), seeds, metric, cosine, affinity.",
        )
        problem = study_report_problem(result) if info.finished else "the study is still running"
        st.download_button(
            "Report (HTML)", data=lambda: study_report_html(info.group_id, result),
            file_name=f"{info.group_id}_report.html", mime="text/html", key=StateKeys.STUDY_DOWNLOAD_REPORT,
            on_click="ignore", icon=":material/description:", disabled=problem is not None,
            help=(f"Not available: {problem}." if problem else "One self-contained web page (works offline) with "
                  "the protocol, the suite, every heatmap, the best groupings, the trained groupings, the forecast, "
                  "the runs and the command that reproduces the study."),
        )


@store_fragment(run_every=2.0 if not initial.finished else None)
def study_view() -> None:
    info = get_study(picked)
    if info is None:
        return
    if info.finished != initial.finished:
        rerun_page_from_fragment()  # only from its own refresh: see views._reruns
    done = info.done + info.failed
    st.progress(done / max(info.total, 1),
                text=f"{info.done} of {info.total} runs done" + (f", {info.failed} failed" if info.failed else ""))
    if info.done == 0:
        st.info("The study's runs are queued; the first results arrive when the first pair has finished.")
    _heatmaps(info)


study_view()
