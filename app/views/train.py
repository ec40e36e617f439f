"""Train: pick a suite, tasks, a sharing strategy and balancing methods, and start runs."""

from __future__ import annotations

import streamlit as st
from services.catalog import catalog, suite_tasks
from services.runs import MTLError, TrainForm, build_configs, check_configs, explain, queue_runs, run_counts
from services.text import literal
from state import StateKeys, init_state, session_owner
from views._widgets import flash, option_inputs, show_flash

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
        "1. Keep the **planted** suite: synthetic tasks in two hidden groups — tasks in the same group "
        "help each other, tasks in different groups do not.\n"
        "2. Tick two balancing methods, e.g. **ew** (plain sum of losses) and **pcgrad** (removes "
        "conflicting gradient components).\n"
        "3. Press **Start training**: the runs are queued, train in the background, and the run view "
        "shows their losses and how their task gradients agree (blue) or conflict (red).\n"
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
cols = st.columns(6)
epochs = cols[0].number_input("Epochs", min_value=1, max_value=1000, value=10, step=1, key=StateKeys.EPOCHS)
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
