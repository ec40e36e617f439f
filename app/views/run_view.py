"""Run view (``?run=ID``): status, progress and cancel; live curves and gradient probes; final results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st
from services.downloads import run_csv, run_json
from services.lessons import LESSON_PARAM
from services.live import (
    COSINE_WINDOWS,
    DEFAULT_COSINE_WINDOW,
    LiveRun,
    ProbeWindow,
    live_run,
    progress,
    shared_task_order,
)
from services.pacing import live_refresh_for
from services.results import (
    delta_m,
    final_metrics,
    find_baseline,
    is_baseline,
    queue_baseline,
    queued_baselines,
    task_deltas,
)
from services.runs import (
    MTLError,
    RunSummary,
    cancel_run,
    explain,
    get_run,
    group_runs,
    list_runs,
    panel_choices,
    parse_run_id,
    pending_baseline,
    picker_labels,
    run_labels,
)
from services.text import engine_message, literal
from state import StateKeys, acting, init_state, run_key, session_owner, set_widget_value
from views._lessons import ACTIVE_LESSON
from views._reruns import rerun_page_from_fragment
from views._store import store_fragment
from views._widgets import figure_downloads, first_steps, flash, show_flash, status_badge

from mtl_core import figures

init_state()
st.title("Run view")
show_flash()

actor = acting()
recent = list_runs(limit=200, owner=None if actor.manages_all else actor.owner)
if not recent:
    first_steps()
    st.stop()

# --- which run: the address (?run=ID) is the source of truth ----------------------------------------------
problem = None
run = None
raw = st.query_params.get("run")
if raw is not None:
    try:
        run = get_run(parse_run_id(raw))
        if run is None:
            problem = f"Run {parse_run_id(raw)} does not exist in the store (it may have been deleted)."
        elif not actor.may_manage(run.owner):
            problem, run = f"Run {run.id} belongs to another participant.", None
    except ValueError as exc:
        problem = str(exc)
if problem:
    st.error(f"{engine_message(problem)} Pick a run below.", icon=":material/search:")  # it quotes the address

options = [r.id for r in recent]
if run is not None and run.id not in options:
    options.insert(0, run.id)
labels = picker_labels(recent)  # suite, strategy, method, seed and what else differs within a launch
if run is not None:
    if run.id not in labels:
        labels.update(picker_labels([run]))
    set_widget_value(StateKeys.RUN_PICK, run.id)
elif st.session_state.get(StateKeys.RUN_PICK) not in options:
    st.session_state[StateKeys.RUN_PICK] = options[0]


def _pick() -> None:
    st.query_params["run"] = str(st.session_state[StateKeys.RUN_PICK])


picked = st.selectbox("Run", options, format_func=lambda i: labels.get(i, f"#{i}"), key=StateKeys.RUN_PICK,
                      on_change=_pick)
if problem:
    st.stop()
if run is None:
    run = get_run(picked)
    if run is None:
        st.stop()
    st.query_params["run"] = str(run.id)

group = group_runs(run)
cache: dict = st.session_state[StateKeys.LIVE_CACHE]
#: What tells the runs of this launch apart (``hard · p_in 0.9 · seed 1``), for links and panels.
group_labels = run_labels(group)
LINKS_SHOWN = 32
if len(group) > 1:
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.caption(f"Queued together ({len(group)}):")
        for member in group[:LINKS_SHOWN]:
            st.page_link("views/run_view.py", label=f"#{member.id} {literal(group_labels[member.id])}",
                         query_params={"run": str(member.id)}, disabled=member.id == run.id)
        if len(group) > LINKS_SHOWN:
            st.caption(f"and {len(group) - LINKS_SHOWN} more (the **Runs** page lists them all).")

play_key = run_key(StateKeys.COSINE_PLAY, run.id)
log_key = run_key(StateKeys.LOG_Y, run.id)


def _awaiting_baseline(current: RunSummary) -> bool:
    """The run is done without a single-task baseline, and one is queued or running: the Results
    tab keeps polling until Δm can be shown."""
    return (current.status == "done" and not is_baseline(current) and find_baseline(current) is None
            and pending_baseline(current) is not None)


def _keeps_polling(current: RunSummary, members: list[RunSummary]) -> bool:
    return any(not member.finished for member in members) or _awaiting_baseline(current)


watching = group if len(group) > 1 else [run]
live_runs = _keeps_polling(run, watching)
playing = bool(st.session_state.get(play_key))
interval = 0.7 if playing else live_refresh_for(session_owner(), fresh=True) if live_runs else None

EXPLAIN_COSINE = (
    "Each cell is the cosine between two tasks' gradients on the shared weights: **blue (> 0)** the "
    "tasks pull the same way and help each other, **red (< 0)** they conflict — a step that lowers one "
    "task's loss raises the other's."
)


def _tasks(current: RunSummary, live: LiveRun) -> list[str]:
    return list(current.tasks or live.tasks)


def _metrics_meta(current: RunSummary) -> dict[str, dict]:
    return {t["name"]: {"metric": t["metric"], "higher_is_better": t["higher_is_better"]}
            for t in current.task_specs or []}


def _smoothing(steps) -> float:
    """EMA factor for probe time series: each probe is one mini-batch, so long series are smoothed
    (drawn over the faint raw line); short ones are shown raw."""
    return 0.8 if len(steps) >= 40 else 0.0


def _chart(fig, key: str, download: str | None = None) -> None:
    """Draw a chart; with ``download`` (a file name), offer it as HTML (and PNG) below it."""
    st.plotly_chart(fig, key=key, config={"displaylogo": False})
    if download:
        figure_downloads(fig, download, key)


def _seconds_text(duration: float | None) -> str:
    """A run's training time: "—" unknown, "< 1 s", "4.2 s", "37 s", "3 min 05 s"."""
    if duration is None:
        return "—"
    if duration < 1:
        return "< 1 s"
    if duration < 10:
        return f"{duration:.1f} s"
    if duration < 60:
        return f"{duration:.0f} s"
    minutes, seconds = divmod(round(duration), 60)
    return f"{minutes} min {seconds:02d} s"


def _header(current: RunSummary, live: LiveRun) -> None:
    fraction = progress(current, live)
    cols = st.columns([2, 2, 2, 2, 1])
    cols[0].metric("Status", current.status)
    steps = f"{live.last_step or 0} / {current.total_steps}" if current.total_steps else "—"
    cols[1].metric("Steps", steps)
    epochs_done = len(live.history)
    cols[2].metric("Epochs", f"{epochs_done} / {current.epochs}",
                   help="With early stopping (patience) the second number is the maximum.")
    duration = current.duration
    cols[3].metric("Time", _seconds_text(duration))
    if not current.finished:
        cols[4].button("Cancel", key=run_key(StateKeys.CANCEL, current.id), on_click=_cancel, args=(current.id,),
                       disabled=current.cancel_requested, help="Stop this run; its metrics so far are kept.")
    if fraction is not None:
        st.progress(fraction, text=f"{100 * fraction:.0f} %")
    if current.stopped_early:
        st.caption(f"Stopped early at epoch {current.stopped_epoch} of at most {current.epochs}: the sum of the "
                   f"validation losses had not improved for {current.config.get('patience')} epochs. The results "
                   "come from the best epoch.")
    if current.status == "queued":
        st.info("Waiting for a worker. The first run of a session waits a few seconds while a worker "
                "process loads PyTorch.", icon=":material/hourglass_empty:")
    elif current.status == "failed":
        st.error(f"This run failed: {literal(current.error or 'no reason recorded')}", icon=":material/error:")
    elif current.status == "cancelled":
        st.warning(f"This run was cancelled{': ' + literal(current.error) if current.error else ''}. "
                   "The charts show what it recorded until then.", icon=":material/stop_circle:")
    elif current.cancel_requested:
        st.info("Cancel requested: the run stops after its current step.")


def _cancel(run_id: int) -> None:
    flash(cancel_run(run_id, acting()))


def _loss_view(current: RunSummary, live: LiveRun, colors: dict, log_y: bool, key: str,
               download: bool = False) -> None:
    def build():
        losses = {task: live.step_losses.get(task, []) for task in _tasks(current, live)}
        smoothing = 0.8 if len(live.steps) > 100 else 0.0
        return figures.step_loss_curves(live.steps, losses, log_y, smoothing=smoothing, colors=colors)

    # Built again only when new rows arrived (a finished or waiting run's figure is reused).
    _chart(live.memo(("step_loss", log_y, tuple(sorted((colors or {}).items()))), build), key,
           download=f"run{current.id}_step_losses" if download else None)


def _window_label(window: int) -> str:
    return {0: "all probes from the start", 1: "this probe only"}.get(window, f"last {window} probes")


def _cosine_window() -> int:
    window = st.session_state.get(StateKeys.COSINE_WINDOW, DEFAULT_COSINE_WINDOW)
    return window if window in COSINE_WINDOWS else DEFAULT_COSINE_WINDOW


def _cosine_heatmap(tasks: list[str], averaged: ProbeWindow, order: list[int] | None = None, narrow: bool = False):
    """The heatmap of a window's mean cosine, tasks in ``order`` (related tasks next to each other);
    ``narrow``: for a side-by-side panel (a two-line title, smaller cell numbers)."""
    order = list(range(len(tasks))) if order is None or len(order) != len(tasks) else order
    matrix = averaged.matrix[np.ix_(order, order)]
    tasks = [tasks[i] for i in order]
    if not narrow:
        return figures.cosine_heatmap(matrix, tasks, window=averaged.label)
    # The full title's words on two lines (a narrow panel cuts one long line).
    fig = figures.cosine_heatmap(matrix, tasks, title=f"Gradient cosine similarity — <br>{averaged.label}")
    if len(tasks) > 4:
        fig.update_traces(textfont_size=9)
    return fig


def _conflict_caption(averaged: ProbeWindow) -> str | None:
    if averaged.conflict is None:
        return None
    return f"In conflict (cosine < 0): **{100 * averaged.conflict:.0f} %** of the probed task pairs."


def _cosine_at_latest(current: RunSummary, live: LiveRun, key: str, download: bool = False,
                      order: list[int] | None = None, narrow: bool = False) -> None:
    window = _cosine_window()
    averaged = live.cosine_window(window)
    if averaged is None:
        _no_probe_message(current)
        return
    tasks = _tasks(current, live)
    if order is None:
        order = shared_task_order([live], tasks)
    fig = live.memo(("cosine", window, tuple(order), narrow), lambda: _cosine_heatmap(tasks, averaged, order, narrow))
    _chart(fig, key, download=f"run{current.id}_cosine_step{averaged.steps[-1]}" if download else None)
    if narrow and (note := _conflict_caption(averaged)):
        st.caption(note)


def _no_probe_message(current: RunSummary) -> None:
    if current.strategy == "single":
        st.info("A single-task baseline shares no weights between tasks, so there are no shared gradients "
                "to compare.")
    elif not current.config.get("probe_interval"):
        if st.query_params.get(LESSON_PARAM) or st.session_state.get(ACTIVE_LESSON):
            st.info("This lesson's runs measure no gradient probes (probe interval 0): its question is "
                    "answered by the losses and metrics. On **Train**, “Probe every (steps)” > 0 shows how "
                    "task gradients agree or conflict.")
        else:
            st.info("Gradient probes are off for this run (probe interval 0). Start a run with "
                    "“Probe every (steps)” > 0 to see how task gradients agree or conflict.")
    elif current.finished:
        st.info("This run recorded no gradient probe.")
    else:
        st.info("Waiting for the first gradient probe…")


def _overview(current: RunSummary, live: LiveRun, colors: dict, log_y: bool) -> None:
    left, right = st.columns(2)
    with left:
        _loss_view(current, live, colors, log_y, f"overview_loss_{current.id}", download=True)
        st.caption("Training loss of each task at every step (faint: raw; solid: smoothed). Lower is better.")
    with right:
        _cosine_at_latest(current, live, f"overview_cosine_{current.id}", download=True)
        st.caption(EXPLAIN_COSINE)


def _losses_and_metrics(current: RunSummary, live: LiveRun, colors: dict, log_y: bool) -> None:
    left, right = st.columns(2)
    with left:
        _chart(figures.loss_curves(live.history, log_y, colors=colors), f"epoch_loss_{current.id}",
               download=f"run{current.id}_epoch_losses")
        st.caption("Mean training loss (solid) and validation loss (dashed) per epoch. A validation curve "
                   "that turns up while training keeps falling means the task over-fits.")
    with right:
        meta = _metrics_meta(current)
        if meta and live.history:
            _chart(figures.metric_curves(live.history, meta, colors=colors), f"metric_{current.id}")
        else:
            _chart(figures.empty_figure("Validation metric per task"), f"metric_{current.id}")
        st.caption("Validation metric of each task per epoch; each axis says whether higher or lower is better.")
    _loss_view(current, live, colors, log_y, f"step_loss_{current.id}")


def _gradients(current: RunSummary, live: LiveRun, colors: dict) -> None:
    steps, matrices = live.probe("cosine")
    if not steps:
        _no_probe_message(current)
        return
    tasks = _tasks(current, live)
    step_key = run_key(StateKeys.COSINE_STEP, current.id)
    follow_key = run_key(StateKeys.COSINE_FOLLOW, current.id)
    controls = st.columns([1, 1, 2, 2])
    follow = controls[0].toggle("Follow latest", value=not current.finished, key=follow_key,
                                help="End the heatmap's window at the newest probe as it arrives.")
    play = controls[1].toggle("Play", key=play_key,
                              help="Move the window's end through the probes: with “all probes”, watch the "
                                   "mean build up; with “this probe only”, see each probe alone.")
    chosen = st.session_state.get(step_key)
    if play:
        position = steps.index(chosen) + 1 if chosen in steps else 0
        st.session_state[step_key] = steps[position % len(steps)]
    elif follow or chosen not in steps:
        set_widget_value(step_key, steps[-1])
    if len(steps) > 1:
        step = controls[3].select_slider("Window ends at step", options=steps, key=step_key,
                                         on_change=_stop_following, args=(follow_key, play_key),
                                         help="The heatmap averages the probes of its window up to this step.")
    else:
        step = steps[0]
    if StateKeys.COSINE_WINDOW not in st.session_state:
        st.session_state[StateKeys.COSINE_WINDOW] = DEFAULT_COSINE_WINDOW
    window = controls[2].selectbox(
        "Heatmap averages", COSINE_WINDOWS, format_func=_window_label, key=StateKeys.COSINE_WINDOW,
        help="Each probe measures the cosines on one mini-batch, so one probe is noisy. The heatmap "
             "averages the probes of a window that ends at the chosen step; by default every probe from "
             "the start, which shows related tasks on short and long runs alike. A short window shows one "
             "moment: near the start the tasks' heads are still random and late in training the "
             "gradients are mostly mini-batch noise, so both can hide a relationship the run measured.")
    averaged = live.cosine_window(window, step)
    order = shared_task_order([live], tasks)  # from the whole run: the order stays put while the window moves
    left, right = st.columns(2)
    with left:
        _chart(_cosine_heatmap(tasks, averaged, order), f"cosine_{current.id}",
               download=f"run{current.id}_cosine_step{step}")
        st.caption(EXPLAIN_COSINE + " Tasks are ordered so that those whose gradients agree sit together.")
    with right:
        _chart(figures.cosine_timeseries(steps, matrices, tasks, smoothing=_smoothing(steps)), f"cosine_series_{current.id}")
        st.caption("The same cosines over time, one line per task pair; the shaded band below 0 is conflict.")
    norm_steps, norms = live.probe("norms")
    if norm_steps:
        _chart(figures.norm_ratio_timeseries(norm_steps, norms, tasks, smoothing=_smoothing(norm_steps), colors=colors), f"norms_{current.id}")
        st.caption("Each task's gradient norm divided by the mean over tasks (log scale): a task far above 1 "
                   "dominates the shared update, one far below 1 is barely heard.")


def _stop_following(follow_key: str, play_key_: str) -> None:
    """The user picked a step: stop jumping to the newest probe (and stop playing)."""
    st.session_state[follow_key] = False
    st.session_state[play_key_] = False


def _weights(current: RunSummary, live: LiveRun, colors: dict) -> None:
    steps, weights = live.task_weights()
    if not steps:
        st.info("No task weights recorded yet." if not current.finished else
                "This method records no task weights.")
        return
    _chart(figures.weights_timeseries(steps, weights, _tasks(current, live), smoothing=_smoothing(steps), colors=colors), f"weights_{current.id}")
    st.caption(f"The weight **{current.method}** gives each task's loss (or gradient) at every step: equal "
               "weights mean no task is favoured; a growing weight means the method is boosting that task.")


def _affinity(current: RunSummary, live: LiveRun) -> None:
    steps, matrices = live.probe("affinity")
    if not current.config.get("tag"):
        st.info("TAG affinity is off for this run. Tick **TAG affinity** on the Train page (hard sharing) to "
                "measure how much a step on one task lowers the others' losses.")
        return
    if not steps:
        st.info("Waiting for the first epoch's affinity…" if not current.finished else "No affinity recorded.")
        return
    tasks = _tasks(current, live)
    summary = live.affinity_summary()
    if summary is None:
        st.info("No affinity recorded.")
        return
    matrix, window = summary
    mean = matrix.tolist()
    order = figures.cluster_order(mean)
    left, right = st.columns(2)
    with left:
        _chart(figures.affinity_heatmap(mean, tasks, order, title=f"Inter-task affinity (TAG), {window}"),
               f"affinity_mean_{current.id}")
    with right:
        _chart(figures.affinity_heatmap(matrices[-1], tasks, order,
                                        title=f"Inter-task affinity (TAG), epoch {len(steps)}"),
               f"affinity_last_{current.id}")
    st.caption("Row i, column j: how much one look-ahead step on task i alone lowers task j's loss "
               "(positive, blue = i helps j; negative, red = i hurts j). Tasks are ordered so that groups "
               "that help each other form blocks. Left: the median of the epochs' affinities up to the best "
               "epoch so far, as a transfer study reads it (after it, a step on one task mostly fits that "
               "task's own rows, and affinities turn noisy). Right: the latest epoch alone, on its own colour "
               "scale.")


def _downloads(current: RunSummary) -> None:
    """The run as JSON (everything stored) and its metric series as CSV, built when clicked."""
    run_id = current.id
    partial = "" if current.finished else " (so far)"
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            f"Run as JSON{partial}", data=lambda: run_json(run_id), file_name=f"mtl_run_{run_id}.json",
            mime="application/json", key=run_key(StateKeys.RUN_DOWNLOAD_JSON, run_id), on_click="ignore",
            icon=":material/download:", help="Everything stored about this run: its settings, status, metric "
            "series, gradient probes and final result (what `python -m mtl_core export run` writes).",
        )
        st.download_button(
            f"Metrics as CSV{partial}", data=lambda: run_csv(run_id), file_name=f"mtl_run_{run_id}.csv",
            mime="text/csv", key=run_key(StateKeys.RUN_DOWNLOAD_CSV, run_id), on_click="ignore",
            icon=":material/download:", help="The metric series, one row per value: run_id, step, epoch, task, "
            "key, value.",
        )


def _results(current: RunSummary) -> None:
    _downloads(current)
    if not current.finished:
        st.info("Final test metrics appear here when the run has finished.")
        return
    final = final_metrics(current.id)
    if not final:
        st.info("This run stored no final metrics." if current.status != "failed" else
                "A failed run has no final metrics.")
        return
    baseline = find_baseline(current)
    base_metrics = final_metrics(baseline.id) if baseline is not None else None
    deltas = task_deltas(final, base_metrics) if base_metrics else {}
    rows = []
    for task, entry in final.items():
        row = {
            "task": task,
            "metric": f"{entry.get('metric')} {'↑' if entry.get('higher_is_better') else '↓'}",
            "test value": entry.get("value"),
            "test loss": entry.get("loss"),
        }
        if base_metrics and task in base_metrics:
            reference = base_metrics[task].get("value")
            row["single-task"] = reference
            row["Δ vs single-task %"] = deltas.get(task, math.nan)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if is_baseline(current):
        st.caption("This run is a single-task baseline: every task has its own network.")
        return
    if base_metrics:
        value = delta_m(final, base_metrics)
        st.metric("Δm vs single-task", "n/a" if value is None else f"{value:+.2f} %",
                  help=f"Against single-task run #{baseline.id} (seed {baseline.seed}).")
        st.caption("Δm is the mean over tasks of the relative change of the test metric against training each "
                   "task alone; **positive = multi-task training is better than single-task**.")
        return
    pending = queued_baselines(current)
    waiting = pending[0] if pending else pending_baseline(current)
    if waiting is not None:  # no second button: the page polls until the baseline is done
        st.info(f"Its single-task baseline (run #{waiting.id}) is {waiting.status}; Δm appears here within "
                "seconds of it finishing.", icon=":material/hourglass_empty:")
        return
    st.info(f"No single-task baseline with seed {current.seed} on the same tasks exists yet, so Δm "
            "(multi-task vs single-task, positive = better) cannot be computed.")
    st.button("Queue the single-task baseline", key=run_key(StateKeys.QUEUE_BASELINE, current.id),
              on_click=_queue_baseline, args=(current.id,))


def _queue_baseline(run_id: int) -> None:
    current = get_run(run_id)
    if current is None:
        return
    try:
        ids = queue_baseline(current, owner=session_owner())
    except MTLError as exc:
        flash(f"Could not queue the baseline: {explain(exc)}")
    else:
        flash(f"Queued the single-task baseline as run #{ids[0]}.")


SIDE_BY_SIDE_LIMIT = 6


def _panels(members: list[RunSummary]) -> list[RunSummary]:
    """The runs to draw side by side: all when they fit, else the choice picked (by default one seed
    of every setting, so that the first view shows what the launch compares)."""
    choices = panel_choices(members, SIDE_BY_SIDE_LIMIT)
    if len(choices) == 1:
        return members
    by_label = {choice.label: choice for choice in choices}
    pick_key = run_key("run_side_pick", run.id)
    if st.session_state.get(pick_key) not in by_label:
        st.session_state[pick_key] = choices[0].label
    picked = st.selectbox("Show side by side", list(by_label), key=pick_key,
                          help=f"At most {SIDE_BY_SIDE_LIMIT} runs fit side by side: one seed of every setting, "
                               "or every seed of one setting.")
    ids = by_label[picked].run_ids
    st.caption(f"Showing {len(ids)} of the {len(members)} runs queued together; the others are one click away "
               "in the links above, and the **Compare** page puts any runs side by side.")
    by_id = {member.id: member for member in members}
    return [by_id[i] for i in ids]


def _side_by_side(members: list[RunSummary], log_y: bool) -> None:
    members = _panels(members)
    lives = {member.id: live_run(cache, member.id, finished=member.finished) for member in members}
    # One task order for every panel with the same tasks, so that the heatmaps compare cell by cell.
    orders: dict[tuple[str, ...], list[int]] = {}
    for member in members:
        tasks = tuple(_tasks(member, lives[member.id]))
        if tasks not in orders:
            orders[tasks] = shared_task_order(list(lives.values()), list(tasks))
    per_row = 2 if len(members) in (2, 4) else min(len(members), 3)  # four panels: 2 × 2, wider heatmaps
    for start in range(0, len(members), per_row):
        columns = st.columns(per_row)
        for column, member in zip(columns, members[start:start + per_row]):
            with column:
                live = lives[member.id]
                fraction = progress(member, live)
                st.markdown(f"**#{member.id} {literal(group_labels.get(member.id, member.method))}** · "
                            f"{status_badge(member.status)}")
                st.progress(fraction or 0.0)
                if member.status == "failed":
                    st.error(literal(member.error or "failed"))
                tasks = _tasks(member, live)
                colors = figures.task_colors(tasks) if tasks else None
                _loss_view(member, live, colors, log_y, f"side_loss_{member.id}")
                _cosine_at_latest(member, live, f"side_cosine_{member.id}", order=orders[tuple(tasks)], narrow=True)


@store_fragment(run_every=interval, paced=True)
def live_area() -> None:
    current = get_run(run.id)
    if current is None:
        st.warning(f"Run {run.id} was deleted.")
        return
    # One query for the whole launch, not one per member.
    members = group_runs(current) if len(watching) > 1 else [current]
    still_live = _keeps_polling(current, members)
    now_playing = bool(st.session_state.get(play_key))
    if still_live != live_runs or now_playing != playing:
        rerun_page_from_fragment()  # switch the polling on or off
    if interval is not None and not playing:
        wanted = live_refresh_for(session_owner())  # also keeps this viewer counted
        if wanted != interval:  # services.pacing changes a period only when the load moved well away
            rerun_page_from_fragment()  # more (or fewer) sessions watch live runs now: refresh at the new pace
    live = live_run(cache, current.id, finished=current.finished)
    _header(current, live)
    tasks = _tasks(current, live)
    colors = figures.task_colors(tasks) if tasks else None
    log_y = st.session_state.get(log_key, False)
    names = ["Overview", "Side by side", "Losses & metrics", "Gradients", "Task weights", "TAG affinity", "Results"]
    if len(group) < 2:
        names.remove("Side by side")
    tabs = dict(zip(names, st.tabs(names, key=run_key("run_tab", run.id), on_change="rerun",
                                   default="Side by side" if len(group) > 1 else "Overview"), strict=True))
    with tabs["Overview"]:
        if tabs["Overview"].open is not False:
            _overview(current, live, colors, log_y)
    if "Side by side" in tabs:
        with tabs["Side by side"]:
            if tabs["Side by side"].open is not False:
                _side_by_side(members, log_y)
                st.caption("One column per run queued together, labelled with the settings that differ between "
                           "them. " + EXPLAIN_COSINE + " Every panel orders the tasks the same way, those whose "
                           "gradients agree next to each other. The heatmap shows the mean over its window; "
                           "the share of probes in conflict below it says how often the tasks pulled apart, "
                           "which a mean near 0 can hide.")
    with tabs["Losses & metrics"]:
        if tabs["Losses & metrics"].open is not False:
            _losses_and_metrics(current, live, colors, log_y)
    with tabs["Gradients"]:
        if tabs["Gradients"].open is not False:
            _gradients(current, live, colors)
    with tabs["Task weights"]:
        if tabs["Task weights"].open is not False:
            _weights(current, live, colors)
    with tabs["TAG affinity"]:
        if tabs["TAG affinity"].open is not False:
            _affinity(current, live)
    with tabs["Results"]:
        if tabs["Results"].open is not False:
            _results(current)


st.toggle("Log-scale losses", key=log_key, help="Show losses on a logarithmic axis (useful when they span "
          "orders of magnitude).")
live_area()
