"""Runs: the participant's runs (every run for the presenter or a single user), their status, and cancel / delete."""

from __future__ import annotations

import streamlit as st
from services.runs import cancel_run, delete_run, list_runs, picker_labels, runs_table
from state import ME_PARAM, StateKeys, acting, init_state, participant_token
from views._widgets import first_steps, show_flash

init_state()
st.title("Runs")
show_flash()
actor = acting()
runs = list_runs(owner=None if actor.manages_all else actor.owner)
if not runs:
    first_steps()
    st.stop()

statuses = ["queued", "running", "done", "failed", "cancelled"]
shown = st.multiselect("Status", statuses, default=statuses, key=StateKeys.RUNS_STATUS)
visible = [run for run in runs if run.status in shown]
st.caption(f"{len(visible)} of {len(runs)} runs. Everything is read from the run store, so this page "
           "survives reloads; open a run for its live charts.")
table = runs_table(visible)
table["open"] = table["open"] + f"&{ME_PARAM}={participant_token()}"  # a new tab keeps this identity
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "id": st.column_config.NumberColumn("run", format="#%d", width="small"),
        "open": st.column_config.LinkColumn("view", display_text="open", width="small"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100, format="%d%%"),
        "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
    },
)

st.subheader("Manage")
names = picker_labels(visible)
labels = {run.id: f"{names[run.id]} ({run.status})" for run in visible}
picked = st.multiselect("Runs", list(labels), format_func=lambda i: labels.get(i, f"#{i}"),
                        key=StateKeys.RUNS_DELETE_PICK, placeholder="Pick runs to cancel or delete")


def _cancel() -> None:
    messages = [cancel_run(run_id, acting()) for run_id in st.session_state[StateKeys.RUNS_DELETE_PICK]]
    st.session_state[StateKeys.FLASH] = " ".join(messages)


def _delete() -> None:
    picked_ids = list(st.session_state[StateKeys.RUNS_DELETE_PICK])
    problems = [p for p in (delete_run(run_id, acting()) for run_id in picked_ids) if p]
    deleted = len(picked_ids) - len(problems)
    st.session_state[StateKeys.FLASH] = " ".join(
        [f"Deleted {deleted} run{'s' if deleted != 1 else ''}."] + problems
    )
    st.session_state[StateKeys.RUNS_DELETE_PICK] = []


left, right, _ = st.columns([1, 1, 4])
left.button("Cancel selected", key=StateKeys.RUNS_CANCEL, disabled=not picked, on_click=_cancel,
            help="Queued runs are dropped; running runs stop within a second or two.")
right.button("Delete selected", key=StateKeys.RUNS_DELETE, disabled=not picked, type="primary", on_click=_delete,
             help="Removes the runs with their metrics and probes. Cancel running runs first.")
