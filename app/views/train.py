"""Train: pick a suite, tasks, a sharing strategy and balancing methods, and start runs."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st
from services.catalog import catalog, suite_tasks
from services.limits import current_limits
from services.runs import MTLError, TrainForm, build_configs, check_configs, explain, queue_runs, run_counts
from services.text import literal
from state import StateKeys, init_state, option_key, session_owner, set_widget_value
from views._widgets import flash, option_inputs, show_flash

from mtl_core.config import TrainConfig
from mtl_core.presets import PRESETS, TrainPreset
from mtl_core.training.length import (
    DEFAULT_STEPS,
    MIN_STEPS,
    epochs_for_steps,
    steps_per_epoch,
    training_rows,
)

#: Session keys: the "Start from" box, and the epochs last suggested from the data (the Epochs box
#: follows the data until the user sets it).
PRESET = StateKeys.TRAIN_PRESET
EPOCHS_SUGGESTED = StateKeys.EPOCHS_SUGGESTED
#: The Epochs box's largest value.
MAX_PAGE_EPOCHS = 1000

init_state()
st.title("Train a multi-task model")
show_flash()
st.markdown(
    "**Multi-task learning** trains one network on several tasks at once. Tasks *share* part of the "
    "network, so each task's gradient pushes the shared weights — sometimes in the same direction "
    "(the tasks help each other), sometimes in opposite directions (they *conflict*). Pick the tasks, "
    "how they share (**strategy**) and how their gradients are combined (**balancing method**), then "
    "watch it train."
)
with st.expander("New here? The one-minute tour", expanded=run_counts()["total"] == 0):
    st.markdown(
        "1. In **Start from** pick **Conflicting tasks — methods differ**: it fills in everything below — "
        "synthetic *planted* tasks, one of which fights the other three for a narrow shared network, and "
        "three balancing methods: **ew** (plain sum of losses), **pcgrad** (removes conflicting gradient "
        "components) and **mgda** (the smallest step that helps every task).\n"
        "2. Press **Start training**: the runs are queued, train in the background (seconds), and the run "
        "view shows their losses side by side and how the task gradients agree (blue) or conflict "
        "(red) — here red, and the methods end differently.\n"
        "3. Then change one thing at a time by hand (a wider network, another method, your own data "
        "from **Your data**); the epochs follow the data, about "
        f"{DEFAULT_STEPS} optimizer steps.\n"
        "4. Later, **Relationships** measures which tasks help which, and **Groupings** suggests which "
        "tasks to train together."
    )

with st.spinner("Loading the engine (the first time takes a few seconds)…"):
    entries = catalog()
suites, strategies, methods = entries["suites"], entries["strategies"], entries["methods"]


def entry_label(name: str, info: dict) -> str:
    """An option's label: its name, and the plugin module it came from (built-in entries: the name)."""
    plugin = info.get("plugin")
    return f"{name} (plugin {plugin['module']})" if plugin else name


def description(info: dict) -> str:
    """An entry's description as markdown: a suite imported from a CSV file describes its columns and
    file, which are the user's text (shown literally); built-in and plugin entries are trusted markdown."""
    return literal(info["description"]) if info.get("user") else info["description"]


def plugin_note(info: dict) -> str:
    plugin = info.get("plugin")
    if not plugin:
        return ""
    version = f" {plugin['version']}" if plugin.get("version") else ""
    return f" *From the plugin `{plugin['plugin']}`{version} (module `{plugin['module']}`).*"


def apply_preset() -> None:
    """Fill the page's widgets from the preset chosen in "Start from" (a callback: it runs before the
    widgets are drawn). Options the preset does not set go back to their defaults (their keys are
    dropped), so that the preset's measured settings are what is queued."""
    name = st.session_state.get(PRESET)
    if name not in PRESETS:
        return
    preset: TrainPreset = PRESETS[name]
    state = st.session_state

    def set_options(family: str, owner: str, declared: list[dict[str, Any]], values: dict[str, Any]) -> None:
        for option in declared:
            key = option_key(family, owner, option["name"])
            if option["name"] in values:
                state[key] = values[option["name"]]
            elif key in state:
                del state[key]

    state[StateKeys.SUITE] = preset.suite
    set_options("suite", preset.suite, suites[preset.suite]["options"], dict(preset.suite_options))
    if preset.tasks is None:
        state.pop(StateKeys.TASKS, None)
    else:
        state[StateKeys.TASKS] = list(preset.tasks)
    state[StateKeys.TASKS_OF] = preset.suite
    state[StateKeys.STRATEGY] = preset.strategy
    set_options("strategy", preset.strategy, strategies[preset.strategy]["options"], dict(preset.strategy_options))
    state[StateKeys.METHODS] = list(preset.methods)
    for method in preset.methods:
        set_options("method", method, methods[method]["options"], {})
    state[StateKeys.EPOCHS] = preset.epochs
    state[StateKeys.BATCH_SIZE] = preset.batch_size
    state[StateKeys.LR] = preset.lr


def follows_preset(preset: TrainPreset) -> bool:
    """Whether the settings in the session are still the preset's (what it claims holds only for them)."""
    state = st.session_state

    def options_match(family: str, owner: str, declared: list[dict[str, Any]], values: dict[str, Any]) -> bool:
        for option in declared:
            want = values.get(option["name"], option["default"])
            got = state.get(option_key(family, owner, option["name"]), want)
            if got != want and not (want is None and got == ""):  # a blank text box is "none"
                return False
        return True

    tasks_now = state.get(StateKeys.TASKS)
    return (
        state.get(StateKeys.SUITE) == preset.suite
        and (preset.tasks is None or list(tasks_now or []) == list(preset.tasks))
        and state.get(StateKeys.STRATEGY) == preset.strategy
        and list(state.get(StateKeys.METHODS) or []) == list(preset.methods)
        and state.get(StateKeys.EPOCHS) == preset.epochs
        and state.get(StateKeys.BATCH_SIZE) == preset.batch_size
        and state.get(StateKeys.LR) == preset.lr
        and options_match("suite", preset.suite, suites[preset.suite]["options"], dict(preset.suite_options))
        and options_match("strategy", preset.strategy, strategies[preset.strategy]["options"],
                          dict(preset.strategy_options))
    )


available_presets = [
    name for name, preset in PRESETS.items()
    if preset.suite in suites and preset.strategy in strategies and all(m in methods for m in preset.methods)
]
if st.session_state.get(PRESET) and (st.session_state[PRESET] not in available_presets
                                     or not follows_preset(PRESETS[st.session_state[PRESET]])):
    # A setting was changed since the preset was chosen: its description no longer applies.
    st.session_state[PRESET] = ""
chosen_preset = st.selectbox(
    "Start from", [""] + available_presets, key=PRESET, on_change=apply_preset,
    format_func=lambda name: PRESETS[name].title if name else "Your own settings (below)",
    help="A preset fills in every setting below with values measured to show something; change any of "
    "them afterwards.",
)
if chosen_preset:
    st.info(PRESETS[chosen_preset].look_for, icon=":material/lightbulb:")

left, right = st.columns(2, gap="large")

# --- what to learn -------------------------------------------------------------------------------------
with left:
    st.subheader("1 · Tasks")
    suite_names = list(suites)
    if st.session_state.get(StateKeys.SUITE) not in suite_names:
        st.session_state[StateKeys.SUITE] = "planted" if "planted" in suite_names else suite_names[0]
    suite = st.selectbox("Task suite", suite_names, key=StateKeys.SUITE,
                         format_func=lambda name: entry_label(name, suites[name]),
                         help="A suite is a data set with several prediction tasks on the same inputs.")
    st.caption(description(suites[suite]) + plugin_note(suites[suite]))
    with st.expander("Suite options"):
        suite_options = option_inputs("suite", suite, suites[suite]["options"])
    task_problem = None
    try:
        task_specs = suite_tasks(suite, suite_options)
    except MTLError as exc:
        task_problem = explain(exc)
        task_specs = suites[suite]["tasks"]
    task_names = [t["name"] for t in task_specs]
    chosen = st.session_state.get(StateKeys.TASKS)
    if chosen is None or not set(chosen) <= set(task_names) or st.session_state.get(StateKeys.TASKS_OF) != suite:
        # A new suite (or options that changed its task list): start from all of its tasks.
        st.session_state[StateKeys.TASKS] = [t for t in (chosen or []) if t in task_names] or task_names
    st.session_state[StateKeys.TASKS_OF] = suite
    tasks = st.multiselect("Tasks", task_names, key=StateKeys.TASKS,
                           help="Train on all tasks or a subset; at least one.")
    described = {t["name"]: t for t in task_specs}
    st.caption(" · ".join(
        f"**{literal(name)}** ({described[name]['kind']}, {literal(described[name]['metric'])})"
        for name in tasks if name in described
    ))

# --- how to learn ----------------------------------------------------------------------------------------
with right:
    st.subheader("2 · Model and balancing")
    strategy_names = list(strategies)
    if st.session_state.get(StateKeys.STRATEGY) not in strategy_names:
        st.session_state[StateKeys.STRATEGY] = "hard" if "hard" in strategy_names else strategy_names[0]
    strategy = st.selectbox(
        "Sharing strategy", strategy_names, key=StateKeys.STRATEGY,
        format_func=lambda name: entry_label(name, strategies[name]),
        help="How the tasks share the network: `hard` = one shared trunk and a head per task; "
        "`single` = no sharing (the single-task baseline).",
    )
    st.caption(strategies[strategy]["description"] + plugin_note(strategies[strategy]))
    with st.expander("Strategy options"):
        strategy_options = option_inputs("strategy", strategy, strategies[strategy]["options"])

    method_names = list(methods)
    if StateKeys.METHODS not in st.session_state:
        st.session_state[StateKeys.METHODS] = ["ew"] if "ew" in method_names else method_names[:1]
    chosen_methods = st.multiselect(
        "Balancing methods (one run each, shown side by side)", method_names, key=StateKeys.METHODS,
        format_func=lambda name: f"{entry_label(name, methods[name])} ({methods[name]['kind']})",
        help="How the task losses or gradients are combined into one update. Pick several to compare.",
    )
    method_options: dict[str, dict] = {}
    for name in chosen_methods:
        info = methods[name]
        paper = f" — {info['paper']}" if info.get("paper") else ""
        st.caption(f"**{name}**: {info['description']}{paper}{plugin_note(info)}")
        if info["options"]:
            with st.expander(f"{name} options"):
                method_options[name] = option_inputs("method", name, info["options"])

# --- how long, and what to measure --------------------------------------------------------------------------
st.subheader("3 · Training and probes")


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def _training_rows(suite_name: str, options_json: str, task_list: tuple[str, ...]) -> int | None:
    """The rows of the training split the runs would train on (None when the settings are invalid:
    the page explains that below). Cached briefly: it builds the suite's data."""
    try:
        return training_rows(suite_name, json.loads(options_json), list(task_list))
    except (MTLError, TypeError, ValueError):
        return None


rows = None
if task_problem is None and tasks:
    rows = _training_rows(suite, json.dumps(suite_options, sort_keys=True, default=str), tuple(tasks))
batch_now = st.session_state.get(StateKeys.BATCH_SIZE, 32)
epochs_cap = min(MAX_PAGE_EPOCHS, current_limits().get("max_epochs") or MAX_PAGE_EPOCHS)
suggested = epochs_for_steps(rows, int(batch_now), DEFAULT_STEPS, epochs_cap) if rows else None
if StateKeys.EPOCHS not in st.session_state:
    st.session_state[StateKeys.EPOCHS] = suggested or TrainConfig.epochs
elif suggested is not None and st.session_state[StateKeys.EPOCHS] == st.session_state.get(EPOCHS_SUGGESTED):
    # The user has not set the epochs since they were last suggested: follow the data.
    set_widget_value(StateKeys.EPOCHS, suggested)
if suggested is not None:
    st.session_state[EPOCHS_SUGGESTED] = suggested

cols = st.columns(6)
epochs = cols[0].number_input(
    "Epochs", min_value=1, max_value=MAX_PAGE_EPOCHS, step=1, key=StateKeys.EPOCHS,
    help=f"Passes over the training rows. The default gives about {DEFAULT_STEPS} optimizer steps (one "
    "per mini-batch) for the chosen suite, tasks and batch size, so small data sets get more epochs.",
)
lr = cols[1].number_input("Learning rate", min_value=1e-6, max_value=10.0, value=3e-3, step=1e-4, format="%g",
                          key=StateKeys.LR)
batch_size = cols[2].number_input("Batch size", min_value=1, max_value=100_000, value=32, step=8,
                                  key=StateKeys.BATCH_SIZE)
seeds = cols[3].number_input("Seeds", min_value=1, max_value=20, value=1, step=1, key=StateKeys.SEEDS,
                             help="Repeats with seeds 0, 1, …: more seeds give confidence intervals.")
probe_interval = cols[4].number_input(
    "Probe every (steps)", min_value=0, max_value=100_000, value=TrainForm.probe_interval, step=1, key=StateKeys.PROBE_INTERVAL,
    help="Every k steps, measure the cosine similarity and norms of the task gradients (0 = off).",
)
tag = cols[5].toggle(
    "TAG affinity", value=False, key=StateKeys.TAG,
    help="Measure inter-task affinity (Fifty et al. 2021) with a look-ahead step per task, once per "
    "probe; slower, and needs the `hard` strategy.",
)
if rows:
    per_epoch = steps_per_epoch(rows, int(batch_size))
    steps = per_epoch * int(epochs)
    st.caption(f"≈ **{steps:,} optimizer steps** per run ({rows:,} training rows / batch {int(batch_size)} = "
               f"{per_epoch:,} step{'s' if per_epoch != 1 else ''} per epoch × {int(epochs)} epochs).")
    if steps < MIN_STEPS:
        needed = -(-MIN_STEPS // per_epoch)
        limit = (" (the presenter's limit on epochs allows no more)"
                 if needed > epochs_cap and epochs_cap < MAX_PAGE_EPOCHS else "")
        st.warning(
            f"**Under-trained:** only {steps} optimizer steps — fewer than {MIN_STEPS}, so the tasks are "
            f"barely learned and the results say little about them. Use at least {needed} epochs or a "
            f"smaller batch size{limit}.",
            icon=":material/warning:",
        )

form = TrainForm(
    suite=suite, tasks=list(tasks), strategy=strategy, methods=list(chosen_methods),
    suite_options=suite_options, strategy_options=strategy_options, method_options=method_options,
    epochs=int(epochs), lr=float(lr), batch_size=int(batch_size), seeds=int(seeds),
    probe_interval=int(probe_interval), tag=bool(tag),
)
configs: list = []  # validated run configs
problem = task_problem
if problem is None:
    try:
        configs = check_configs(build_configs(form))
    except MTLError as exc:
        problem = explain(exc)

if problem is not None:
    st.error(f"**Can't start yet.** {problem}", icon=":material/warning:")
else:
    runs = len(configs)
    st.markdown(
        f"Ready: **{runs} run{'s' if runs != 1 else ''}** — {', '.join(chosen_methods)} × {int(seeds)} "
        f"seed{'s' if seeds != 1 else ''} on {len(tasks)} tasks of *{literal(suite)}* with *{strategy}* sharing."
    )

if st.button("Start training", type="primary", key=StateKeys.START, disabled=problem is not None):
    try:
        ids = queue_runs(configs, owner=session_owner())
    except MTLError as exc:
        st.error(f"**Nothing was queued.** {explain(exc)}", icon=":material/warning:")
    else:
        flash(f"Queued run{'s' if len(ids) > 1 else ''} {', '.join(f'#{i}' for i in ids)}. "
              "The first run of a session waits a few seconds for a worker to load PyTorch.")
        st.switch_page("views/run_view.py", query_params={"run": str(ids[0])})
