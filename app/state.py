"""Every session-state key of the dashboard, in one place, with its default.

Widget keys double as the addresses that AppTest (``at.selectbox(key=...)``) and Playwright tests use,
so they are stable strings; a key that depends on a run or a suite is built by a helper here rather
than by string formatting scattered over the pages.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from mtl_core.settings import settings
from mtl_core.workshop.access import Actor, new_token, owner_of_token, passcode_matches, valid_token

__all__ = ["StateKeys", "DEFAULTS", "init_state", "ME_PARAM", "participant_token", "session_owner", "single_user",
           "is_presenter", "unlock_presenter", "acting", "option_key", "run_key", "group_edit_key",
           "data_kind_key", "data_remove_key", "figure_download_key"]


class StateKeys:
    """Names of the session-state entries (plain strings: ``st.session_state[StateKeys.SUITE]``)."""

    # Train page widgets
    SUITE = "train_suite"
    TASKS = "train_tasks"
    TASKS_OF = "train_tasks_of"  # the suite whose tasks TASKS holds (not a widget)
    STRATEGY = "train_strategy"
    METHODS = "train_methods"
    EPOCHS = "train_epochs"
    TRAIN_PRESET = "train_preset"
    EPOCHS_SUGGESTED = "train_epochs_suggested"
    LR = "train_lr"
    BATCH_SIZE = "train_batch_size"
    SEEDS = "train_seeds"
    PROBE_INTERVAL = "train_probe_interval"
    TAG = "train_tag"
    START = "train_start"
    # Run view widgets
    RUN_PICK = "run_pick"
    LOG_Y = "run_log_y"
    CANCEL = "run_cancel"
    COSINE_STEP = "run_cosine_step"
    COSINE_PLAY = "run_cosine_play"
    COSINE_FOLLOW = "run_cosine_follow"
    COSINE_WINDOW = "run_cosine_window"  # how many probes the cosine heatmap averages (0: all so far)
    QUEUE_BASELINE = "run_queue_baseline"
    RUN_DOWNLOAD_JSON = "run_download_json"  # per run (run_key): the run as JSON
    RUN_DOWNLOAD_CSV = "run_download_csv"  # per run (run_key): its metric series as CSV
    # Relationships page widgets
    STUDY_SUITE = "study_suite"
    STUDY_TASKS = "study_tasks"
    STUDY_SEEDS = "study_seeds"
    STUDY_MAX_EPOCHS = "study_max_epochs"
    STUDY_PATIENCE = "study_patience"
    STUDY_STRATEGY = "study_strategy"
    STUDY_METHOD = "study_method"
    STUDY_TAG = "study_tag"
    STUDY_START = "study_start"
    STUDY_PICK = "study_pick"
    STUDY_DOWNLOAD_JSON = "study_download_json"
    STUDY_DOWNLOAD_CSV = "study_download_csv"
    STUDY_DOWNLOAD_REPORT = "study_download_report"
    # Groupings page widgets
    GROUP_STUDY = "group_study"
    GROUP_SOURCE = "group_source"
    GROUP_K = "group_k"
    GROUP_ADD = "group_add"
    GROUP_TRAIN = "group_train"
    GROUP_EVALUATION = "group_evaluation"
    # Compare page widgets
    COMPARE_SUITES = "compare_suites"
    COMPARE_METHODS = "compare_methods"
    COMPARE_STRATEGIES = "compare_strategies"
    COMPARE_RUNS = "compare_runs"
    COMPARE_TASK = "compare_task"
    COMPARE_KEY = "compare_key"
    COMPARE_LOG_Y = "compare_log_y"
    # Runs page widgets
    RUNS_STATUS = "runs_status"
    RUNS_DELETE_PICK = "runs_delete_pick"
    RUNS_DELETE = "runs_delete"
    RUNS_CANCEL = "runs_cancel"
    # Your-data page widgets (per-target kinds: data_kind_key; remove buttons: data_remove_key)
    DATA_UPLOAD = "data_upload"
    DATA_TARGETS = "data_targets"
    DATA_FEATURES = "data_features"
    DATA_MISSING = "data_missing"
    DATA_NAME = "data_name"
    DATA_REPLACE = "data_replace"
    DATA_SAVE = "data_save"
    DATA_TRAIN = "data_train"  # "Train on it", after a save
    # Your-data page, not widgets
    DATA_FILE = "data_file"  # file id of the upload the choices above belong to
    DATA_PREVIEW = "data_preview"  # (file id, CsvPreview or None, problem or None): parsed once per upload
    DATA_TARGETS_OF = "data_targets_of"  # the targets DATA_FEATURES was last fitted to
    DATA_REPORT = "data_report"  # services.data.import_summary of the last save (or None)
    # Not widgets: caches and flags of the session
    LIVE_CACHE = "live_cache"  # run id → services.live.LiveRun (incremental reads of a run's series)
    POOL_CHECKED = "pool_checked"  # this session warmed up the catalogue (the pool is checked on every view)
    FLASH = "flash"  # a one-shot message shown on the next page (e.g. "queued 2 runs")
    GROUPS_EDIT = "groups_edit"  # the grouping being edited: list of task lists
    GROUPS_EDIT_FROM = "groups_edit_from"  # what the edited grouping was initialised from
    SESSION_OWNER = "session_owner"  # this participant's owner id (the store's ``owner`` of its runs; limits count per owner)
    PARTICIPANT_TOKEN = "participant_token"  # this browser's secret (also in the address as ?me=…); never shown to others
    PRESENTER = "presenter"  # True once this session unlocked the presenter with the passcode
    PRESENTER_PASSCODE = "presenter_passcode"  # sidebar widget (cleared after each try)
    PRESENTER_UNLOCK = "presenter_unlock"  # sidebar button
    PRESENTER_PROBLEM = "presenter_problem"  # why the last unlock failed (or None)
    DISPLAY_NAME = "display_name"  # sidebar widget: an optional name (also in the address as ?name=…)
    ACTIVE_LESSON = "active_lesson"  # the lesson shown beside the plots (a lesson id, or None)
    # Lesson sidebar widget
    CLOSE_LESSON = "lesson_close"
    PUSH_SEEN = "push_seen"  # when the pushed lesson this session last opened was pushed (not a widget)
    NAME_RECORDED = "name_recorded"  # (owner, name) last written for the Class page (not a widget)
    # Class page widgets (the presenter's)
    CLASS_LESSON = "class_lesson"
    CLASS_PUSH = "class_push"
    CLASS_CLEAR = "class_clear"


#: Defaults of the non-widget entries (widgets take their defaults from the page that draws them).
DEFAULTS: dict[str, Any] = {
    StateKeys.LIVE_CACHE: {},
    StateKeys.POOL_CHECKED: False,
    StateKeys.FLASH: None,
    StateKeys.GROUPS_EDIT: None,
    StateKeys.GROUPS_EDIT_FROM: None,
    StateKeys.DATA_REPORT: None,
}


def init_state() -> None:
    """Fill in the defaults that are missing (a fresh copy of each mutable default)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = type(value)() if isinstance(value, (dict, list)) else value


#: The address parameter holding this browser's participant token (``/train?me=…``).
ME_PARAM = "me"


def participant_token() -> str:
    """This browser's participant token: the address's ``?me=`` when it holds one, else the one this
    session already has, else a new one. It is put back in the address on every page, so a reload, a
    bookmark or a new tab opened from a link keeps the identity (and the limits that count per owner)."""
    given = st.query_params.get(ME_PARAM)
    token = given if valid_token(given) else st.session_state.get(StateKeys.PARTICIPANT_TOKEN) or new_token()
    if st.session_state.get(StateKeys.PARTICIPANT_TOKEN) != token:
        st.session_state[StateKeys.PARTICIPANT_TOKEN] = token
        st.session_state[StateKeys.SESSION_OWNER] = owner_of_token(token)
        st.session_state[StateKeys.PRESENTER] = False  # another identity: the presenter unlocks again
    if given != token:
        st.query_params[ME_PARAM] = token
    return token


def session_owner() -> str:
    """This participant's owner id (a hash of :func:`participant_token`): runs, studies and suites
    they create carry it, and the presenter limits count per it."""
    participant_token()
    return st.session_state[StateKeys.SESSION_OWNER]


def single_user() -> bool:
    """Whether the server is single-user (no presenter passcode configured): everyone manages everything."""
    return settings().presenter_passcode is None


def is_presenter() -> bool:
    """Whether this session unlocked the presenter (only possible when a passcode is configured)."""
    return bool(st.session_state.get(StateKeys.PRESENTER)) and not single_user()


def unlock_presenter(given: str | None) -> bool:
    """Unlock the presenter for this session when ``given`` is the configured passcode (constant-time
    comparison; the passcode is never logged or shown); returns whether it did."""
    unlocked = passcode_matches(given, settings().presenter_passcode)
    st.session_state[StateKeys.PRESENTER] = unlocked
    return unlocked


def acting() -> Actor:
    """Who acts in this session: the participant, managing all when presenter or single-user."""
    return Actor(session_owner(), manages_all=is_presenter() or single_user())


def set_widget_value(key: str, value: Any) -> None:
    """Give the widget ``key`` the value ``value`` from the page's code, only if it holds another one.

    An assignment re-sends the value to the browser even when it is the same. A page run that started
    before the user changed that widget would then overwrite the user's value with the old one. The
    next click would send the old value too: a run trained 43 epochs where 60 had been typed."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value


def option_key(family: str, owner: str, option: str) -> str:
    """Widget key of a declared option, e.g. ``opt_suite_planted_n_tasks``."""
    return f"opt_{family}_{owner}_{option}"


def run_key(base: str, run_id: int) -> str:
    """A per-run widget key, e.g. ``run_cosine_step_7``."""
    return f"{base}_{run_id}"


def group_edit_key(index: int) -> str:
    """Widget key of the multiselect of group ``index`` (0-based) on the Groupings page."""
    return f"group_edit_{index}"


def data_kind_key(target: str) -> str:
    """Widget key of the classification/regression choice of target column ``target`` (Your data)."""
    return f"data_kind_{target}"


def data_remove_key(suite: str) -> str:
    """Widget key of the Remove button of user suite ``suite`` (Your data)."""
    return f"data_remove_{suite}"


def figure_download_key(chart_key: str, fmt: str) -> str:
    """Widget key of a figure's download button, e.g. ``transfer_study-1_html``."""
    return f"{chart_key}_{fmt}"
