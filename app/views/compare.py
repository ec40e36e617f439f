"""Compare: overlaid curves and a per-task table (mean ± CI over seeds, Δm %) of chosen runs."""

from __future__ import annotations

import streamlit as st
from services.compare import (
    Selection,
    aggregate_table,
    compare_table,
    default_selection,
    format_ci,
    keep_selection,
    run_list,
    runs_csv,
    settings_table,
    summary_csv,
)
from services.results import run_histories
from services.runs import list_runs, picker_labels, run_counts, run_labels
from state import StateKeys, acting, init_state
from views._widgets import figure_downloads, first_steps

from mtl_core import figures

#: Session keys of this page: why the runs were selected for the user, and which a filter left out.
REASON, NOTICE = "compare_reason", "compare_notice"


def _select(selection: Selection) -> None:
    st.session_state[StateKeys.COMPARE_RUNS] = selection.run_ids
    st.session_state[REASON] = selection.reason


def _curve_label(key: str, metric: tuple[str, bool] | None) -> str:
    """The y axis of the curves: ``validation loss``, or ``validation mse (↓ better)``."""
    if key != "val_metric":
        return "validation loss" if key == "val_loss" else "training loss"
    if metric is None:
        return "validation metric"
    return f"validation {metric[0]} ({'↑' if metric[1] else '↓'} better)"


def _picked() -> None:
    """The user edited the selection: it is theirs now, no longer the default nor a filter's."""
    st.session_state[REASON] = st.session_state[NOTICE] = None


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
labels = picker_labels(candidates)  # suite, strategy, method, seed and what else differs within a launch
if st.session_state.get(StateKeys.COMPARE_RUNS) is None:
    _select(default_selection(candidates))
else:
    kept, dropped = keep_selection(st.session_state[StateKeys.COMPARE_RUNS], candidates)
    if dropped:
        left_out = f"{run_list(dropped)} {'does' if len(dropped) == 1 else 'do'} not match the filters"
        if kept:
            st.session_state[StateKeys.COMPARE_RUNS] = kept
            st.session_state[NOTICE] = f"{left_out}: left out of the comparison."
            st.session_state[REASON] = None  # no longer the selection it described
        else:
            _select(default_selection(candidates))
            st.session_state[NOTICE] = f"{left_out}, so none of your runs was left."
chosen_ids = st.multiselect("Runs", list(labels), format_func=lambda i: labels.get(i, f"#{i}"),
                            key=StateKeys.COMPARE_RUNS, placeholder="Pick finished runs", on_change=_picked)
for note in (st.session_state.get(NOTICE), st.session_state.get(REASON)):
    if note:
        st.caption(note)
chosen = [r for r in candidates if r.id in chosen_ids]
if not chosen:
    st.info("Pick at least one run (the filters above narrow the list).")
    st.stop()
if len({(r.suite, tuple(r.tasks or ())) for r in chosen}) > 1:
    st.caption("The chosen runs do not all share one suite and set of tasks: tasks that only some runs have "
               "get fewer bars, and Δm compares each run with its own baseline.")

table = compare_table(chosen)
#: task → (metric, higher is better), from the runs' test metrics
metrics = {t: (m, bool(h)) for t, m, h in zip(table["task"], table["metric"], table["higher_is_better"], strict=True)}

# --- curves ---------------------------------------------------------------------------------------------
st.subheader("Curves")
# One line per run, named by what differs between the chosen runs (``#3 hard · ew · p_in 0.9 · seed 1``).
names = run_labels(chosen, always=("strategy", "method", "seed"))
by_label = run_histories(chosen)
histories = {f"#{run.id} {names[run.id]}": by_label[run.label] for run in chosen if run.label in by_label}
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
    what = _curve_label(key, metrics.get(task))
    curves = figures.overlay_curves(histories, task, key, log_y=log_y,
                                    title=f"{figures.plot_text(task)}: {what} per epoch, one line per run")
    curves.update_yaxes(title_text=figures.plot_text(what) + (" (log scale)" if log_y else ""))
    if max(run.epochs for run in chosen) <= 12:
        curves.update_xaxes(dtick=1)  # whole epochs, not 1.5
    st.plotly_chart(curves, key="compare_curves")
    figure_downloads(curves, f"mtl_compare_{task}_{key}", "compare_curves")
    st.caption("One line per run for the chosen task, per epoch.")

# --- the table --------------------------------------------------------------------------------------------
st.subheader("Test metrics per task")
if table.empty:
    st.info("The chosen runs stored no final metrics.")
    st.stop()
summary = aggregate_table(table)
bars = figures.compare_bars(summary, group_column="setting", title="Test metric per task (mean ± 95 % CI)",
                            per_task=True)
st.plotly_chart(bars, key="compare_bars")
figure_downloads(bars, "mtl_compare_metrics", "compare_bars")
st.caption("One panel per task, each with its own y axis in the task's metric (↓: lower is better, ↑: higher "
           "is better); compare heights within a panel, not across panels. Error bars: 95 % CI over seeds.")
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
