"""Your data: upload a CSV file, choose its targets (one task each) and features, save it as a task
suite that every page can train on; list and remove your suites.

The upload is parsed once per file (the preview is kept in session state under its file id); the
bytes go to the engine only through ``services`` and are saved only by the import, under
``$MTL_LAB_HOME/suites``. Every problem the file or the choices cause is one ``st.error`` line that
names the column or setting; the choices stay as they were.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st
from services.data import (
    columns_table,
    default_suite_name,
    import_summary,
    import_upload,
    inspect_upload,
    remove_suite,
    user_suites,
)
from services.runs import MTLError, explain
from services.text import literal
from state import StateKeys, acting, data_kind_key, data_remove_key, init_state
from views._widgets import flash, show_flash

init_state()
st.title("Your data")
show_flash()
st.markdown(
    "Bring your own table: a **CSV file** with one row per example. Pick two or more **target columns** — "
    "each becomes a task (text or a few whole numbers: classification; other numbers: regression) — and the "
    "**feature columns** the network sees (text features are one-hot encoded). The saved suite appears on "
    "**Train** and **Relationships** next to the built-in ones."
)

KINDS = ["classification", "regression"]
MISSING = {
    "drop": "Drop every row with a missing value in a chosen column",
    "impute": "Keep them: missing numbers get the training mean, missing categories a “(missing)” category, "
              "missing targets leave the row unlabelled for that task",
}


def _preview(upload: Any) -> tuple[Any, str | None]:
    """The upload's preview (parsed once per file) and the problem that prevents one."""
    cached = st.session_state.get(StateKeys.DATA_PREVIEW)
    if cached is not None and cached[0] == upload.file_id:
        return cached[1], cached[2]
    try:
        preview, problem = inspect_upload(upload.getvalue(), upload.name), None
    except MTLError as exc:
        preview, problem = None, explain(exc)
    st.session_state[StateKeys.DATA_PREVIEW] = (upload.file_id, preview, problem)
    return preview, problem


def _start_over(upload: Any) -> None:
    """A new file: its own targets, features, kinds and name (the missing-value choice stays)."""
    for key in [k for k in st.session_state if str(k).startswith(data_kind_key(""))]:
        del st.session_state[key]
    st.session_state[StateKeys.DATA_TARGETS] = []
    st.session_state[StateKeys.DATA_FEATURES] = None
    st.session_state[StateKeys.DATA_TARGETS_OF] = None
    st.session_state[StateKeys.DATA_NAME] = default_suite_name(upload.name)
    st.session_state[StateKeys.DATA_REPORT] = None
    st.session_state[StateKeys.DATA_FILE] = upload.file_id


def _fit_features(columns: list[str], named: dict[str, bool], targets: list[str]) -> None:
    """Features default to every other named column; when the targets change, a new target leaves
    the features and a column that stops being a target joins them (other edits are kept)."""
    previous = st.session_state.get(StateKeys.DATA_TARGETS_OF)
    features = st.session_state.get(StateKeys.DATA_FEATURES)
    if features is None or previous is None:
        features = [c for c in columns if named[c] and c not in targets]
    elif previous != targets:
        freed = {c for c in previous if c not in targets and named[c]}
        features = [c for c in columns if (c in features or c in freed) and c not in targets]
    else:
        return
    st.session_state[StateKeys.DATA_FEATURES] = features
    st.session_state[StateKeys.DATA_TARGETS_OF] = list(targets)


def _default_kind(column: Any) -> str:
    if column.suggested_kind in KINDS:
        return column.suggested_kind
    return "regression" if column.dtype == "number" else "classification"


def _report(summary: dict[str, Any]) -> None:
    tasks = ", ".join(f"**{literal(t)}**" for t in summary["task_names"])
    st.success(f"Saved the suite **{literal(summary['name'])}**: {summary['rows_used']} rows, tasks {tasks}.",
               icon=":material/check_circle:")
    cols = st.columns(4)
    cols[0].metric("Rows read", summary["rows_read"])
    cols[1].metric("Rows kept", summary["rows_used"])
    cols[2].metric("Rows dropped", summary["rows_dropped"])
    cols[3].metric("Inputs", summary["inputs"], help=f"{summary['features']} feature columns after one-hot encoding")
    st.dataframe(summary["tasks"], hide_index=True)
    if len(summary["missing"]):
        st.caption("Missing values in the chosen columns, and what was done with them:")
        st.dataframe(summary["missing"], hide_index=True)
    for warning in summary["warnings"]:  # they quote the file's columns and values
        st.warning(literal(warning), icon=":material/info:")
    st.caption(literal(summary["description"]))
    if st.button("Train on it", key=StateKeys.DATA_TRAIN, icon=":material/rocket_launch:"):
        st.session_state[StateKeys.SUITE] = summary["name"]
        st.switch_page("views/train.py")


def upload_section() -> None:
    upload = st.file_uploader(
        "CSV file", key=StateKeys.DATA_UPLOAD,
        help="Comma, semicolon, tab or | separated, UTF-8, with a header line. Limits: MTL_LAB_MAX_CSV_MB "
        "(default 50 MB), MTL_LAB_MAX_CSV_ROWS, MTL_LAB_MAX_CSV_COLUMNS.",
    )
    if upload is None:
        st.info("Upload a CSV file to start. Nothing is saved until you press **Save as suite**.",
                icon=":material/upload_file:")
        return
    preview, problem = _preview(upload)
    if problem is not None:
        st.error(f"**This file cannot be used.** {problem}", icon=":material/warning:")
        return
    if st.session_state.get(StateKeys.DATA_FILE) != upload.file_id:
        with st.spinner("Loading the engine…"):  # the default name avoids the suites' names
            _start_over(upload)

    st.subheader("1 · The columns")
    st.caption(f"{literal(upload.name)}: {preview.n_rows} rows, {len(preview.columns)} columns "
               f"(separated by {preview.delimiter!r}).")
    st.dataframe(columns_table(preview), hide_index=True)
    with st.expander("First rows"):
        st.dataframe([dict(zip(preview.column_names, row)) for row in preview.head], hide_index=True)
    for warning in preview.warnings:
        st.caption(f":material/info: {literal(warning)}")

    st.subheader("2 · Tasks and inputs")
    columns = preview.column_names
    by_name = {c.name: c for c in preview.columns}
    named = {c.name: c.named for c in preview.columns}
    targets = st.multiselect(
        "Target columns (each one is a task; at least two)", columns, key=StateKeys.DATA_TARGETS,
        help="The columns to predict. The table above suggests what kind of task each column would make.",
    )
    for target in targets:
        key = data_kind_key(target)
        if st.session_state.get(key) not in KINDS:
            st.session_state[key] = _default_kind(by_name[target])
        detected = by_name[target].suggested_kind
        kind = st.radio(f"{literal(target)} is a", KINDS, key=key, horizontal=True,
                        help=f"Detected: {detected or 'neither (fewer than two values)'}. Whole numbers can be either.")
        if kind == "classification" and by_name[target].class_warning:  # classes too rare to learn or score
            st.warning(literal(by_name[target].class_warning), icon=":material/warning:")
    _fit_features(columns, named, list(targets))
    features = st.multiselect(
        "Feature columns (the network's inputs)", [c for c in columns if c not in targets],
        key=StateKeys.DATA_FEATURES, help="By default every column that is not a target.",
    )
    missing = st.radio("Missing values", list(MISSING), format_func=MISSING.get, key=StateKeys.DATA_MISSING)
    cols = st.columns([2, 1])
    name = cols[0].text_input("Suite name", key=StateKeys.DATA_NAME, max_chars=40,
                              help="Letters, digits, _ or -, at most 40; not a built-in suite's name.")
    replace = cols[1].checkbox("Replace a suite of the same name", key=StateKeys.DATA_REPLACE)

    waiting = None
    if len(targets) < 2:
        waiting = "Choose at least two target columns (each one is a task)."
    elif not features:
        waiting = "Choose at least one feature column."
    if waiting:
        st.caption(waiting)
    if st.button("Save as suite", type="primary", key=StateKeys.DATA_SAVE, disabled=waiting is not None):
        try:
            report = import_upload(
                upload.getvalue(), upload.name, name, targets=list(targets), features=list(features),
                kinds={t: st.session_state[data_kind_key(t)] for t in targets}, missing=missing, replace=replace,
                actor=acting(),
            )
        except MTLError as exc:
            st.session_state[StateKeys.DATA_REPORT] = None
            st.error(f"**The suite was not saved.** {explain(exc)}", icon=":material/warning:")
        else:
            st.session_state[StateKeys.DATA_REPORT] = import_summary(report)
    if st.session_state.get(StateKeys.DATA_REPORT):
        _report(st.session_state[StateKeys.DATA_REPORT])


def suites_section() -> None:
    st.subheader("Your suites")
    suites = user_suites()
    if not suites:
        st.caption("No suites of your own yet.")
        return
    for suite in suites:
        with st.container(border=True):
            text, button = st.columns([6, 1], vertical_alignment="center")
            tasks = ", ".join(f"{literal(t['name'])} ({t['kind']})" for t in suite["tasks"])
            text.markdown(f"**{literal(suite['name'])}** · {suite['n_rows']} rows · {suite['n_inputs']} inputs · tasks: {tasks}")
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(suite["created_at"])) if suite["created_at"] else "?"
            text.caption(f"From {literal(suite['source_file'] or 'an uploaded file')}, saved {created}.")
            if not acting().may_manage(suite["owner"]):
                button.caption("another participant's")
                continue
            if button.button("Remove", key=data_remove_key(suite["name"]), icon=":material/delete:",
                             help="Delete this suite. Runs already trained on it stay in the run store."):
                try:
                    remove_suite(suite["name"], acting())
                except MTLError as exc:
                    st.error(f"**The suite was not removed.** {explain(exc)}", icon=":material/warning:")
                else:
                    report = st.session_state.get(StateKeys.DATA_REPORT)
                    if report and report["name"] == suite["name"]:
                        st.session_state[StateKeys.DATA_REPORT] = None
                    flash(f"Removed the suite {literal(suite['name'])}.")
                    st.rerun()


upload_section()
suites_section()
