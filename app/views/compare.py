"""Compare: overlaid curves and a per-task table (mean ± CI over seeds, Δm %) of chosen runs."""

from __future__ import annotations

import streamlit as st
from services.compare import aggregate_table, compare_table, format_ci, runs_csv, settings_table, summary_csv
from services.results import run_histories
from services.runs import is_study_run, list_runs, run_counts
from state import StateKeys, acting, init_state
from views._widgets import figure_downloads, first_steps

from mtl_core import figures

init_state()
st.title("Compare runs")
st.caption("Runs that differ only by their seed form one *setting*; the table averages them with a 95 % "
           "confidence interval. Δm % compares each run with the single-task baseline of the same seed: "
           "**positive = better than training each task alone**.")

actor = acting()  # a participant compares their own runs; the presenter (or a single user) every run
finished = list_runs(status="done", owner=None if actor.manages_all else actor.owner)
if not finished:
    if run_counts()["total"] == 0:
        first_steps()
    else:
        st.info("Nothing to compare yet: this page uses finished runs. Come back when a run is done.")
    st.stop()

filters = st.columns(3)
suites = filters[0].multiselect("Suite", sorted({r.suite for r in finished}), key=StateKeys.COMPARE_SUITES,
                                placeholder="all suites")
strategies = filters[1].multiselect("Strategy", sorted({r.strategy for r in finished}),
                                    key=StateKeys.COMPARE_STRATEGIES, placeholder="all strategies")
methods = filters[2].multiselect("Method", sorted({r.method for r in finished}), key=StateKeys.COMPARE_METHODS,
                                 placeholder="all methods")
candidates = [
    r for r in finished
    if (not suites or r.suite in suites) and (not strategies or r.strategy in strategies)
    and (not methods or r.method in methods)
]
labels = {r.id: r.label for r in candidates}
if st.session_state.get(StateKeys.COMPARE_RUNS) is None:
    # Start from the newest runs started from the Train page (not the many runs of studies).
    own = [r for r in candidates if not is_study_run(r)] or candidates
    st.session_state[StateKeys.COMPARE_RUNS] = [r.id for r in own[:6]]
else:
    st.session_state[StateKeys.COMPARE_RUNS] = [i for i in st.session_state[StateKeys.COMPARE_RUNS] if i in labels]
chosen_ids = st.multiselect("Runs", list(labels), format_func=lambda i: labels.get(i, f"#{i}"),
                            key=StateKeys.COMPARE_RUNS, placeholder="Pick finished runs")
chosen = [r for r in candidates if r.id in chosen_ids]
if not chosen:
    st.info("Pick at least one run (the filters above narrow the list).")
    st.stop()

# --- curves ---------------------------------------------------------------------------------------------
st.subheader("Curves")
histories = run_histories(chosen)
tasks = []
for run in chosen:
    tasks.extend(t for t in run.tasks or [] if t not in tasks)
controls = st.columns([2, 2, 1])
task = controls[0].selectbox("Task", tasks, key=StateKeys.COMPARE_TASK)
key = controls[1].selectbox(
    "Curve", ["val_loss", "train_loss", "val_metric"], key=StateKeys.COMPARE_KEY,
    format_func={"val_loss": "validation loss", "train_loss": "training loss",
                 "val_metric": "validation metric"}.get,
)
log_y = controls[2].toggle("Log scale", key=StateKeys.COMPARE_LOG_Y)
if task is not None:
    curves = figures.overlay_curves(histories, task, key, log_y=log_y)
    st.plotly_chart(curves, key="compare_curves")
    figure_downloads(curves, f"mtl_compare_{task}_{key}", "compare_curves")
    st.caption("One line per run for the chosen task, per epoch.")

# --- the table --------------------------------------------------------------------------------------------
st.subheader("Test metrics per task")
table = compare_table(chosen)
if table.empty:
    st.info("The chosen runs stored no final metrics.")
    st.stop()
summary = aggregate_table(table)
bars = figures.compare_bars(summary, group_column="setting", title="Test metric per task (mean ± 95 % CI)")
st.plotly_chart(bars, key="compare_bars")
figure_downloads(bars, "mtl_compare_metrics", "compare_bars")
per_task = summary.assign(
    **{
        "metric": [f"{m} {'↑' if h else '↓'}" for m, h in zip(summary["metric"], summary["higher_is_better"], strict=True)],
        "mean ± CI": [format_ci(m, lo, hi) for m, lo, hi in
                      zip(summary["mean"], summary["ci_low"], summary["ci_high"], strict=True)],
        "Δ vs single-task % ± CI": [format_ci(m, lo, hi, signed=True) for m, lo, hi in
                                    zip(summary["delta"], summary["delta_ci_low"], summary["delta_ci_high"], strict=True)],
    }
)[["setting", "task", "metric", "seeds", "mean ± CI", "Δ vs single-task % ± CI"]]
st.dataframe(per_task, hide_index=True)
settings = settings_table(table)
st.markdown("**Δm per setting** — the mean over tasks of the change against single-task, averaged over seeds.")
st.dataframe(
    settings.assign(**{"Δm % ± CI": [format_ci(m, lo, hi, signed=True) for m, lo, hi in
                                    zip(settings["delta_m"], settings["delta_m_ci_low"], settings["delta_m_ci_high"],
                                        strict=True)]})[["setting", "runs", "seeds", "Δm % ± CI"]],
    hide_index=True,
)
if table["delta_m"].isna().all():
    st.caption("Δm needs a finished single-task run (strategy *single*) with the same suite, tasks and seed; "
               "queue one from a run's **Results** tab.")
downloads = st.columns(2)
downloads[0].download_button("Download the summary (CSV)", summary_csv(summary, settings), "mtl_compare_summary.csv",
                             mime="text/csv", key="compare_download_summary")
downloads[1].download_button("Download per-run values (CSV)", runs_csv(table), "mtl_compare_runs.csv",
                             mime="text/csv", key="compare_download_runs")
