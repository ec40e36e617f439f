"""Groupings: the best task partitions from a study's scores, editable, and trained to check them."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from services.runs import MTLError, explain
from services.studies import (
    best_groupings,
    get_study,
    grouping_result,
    grouping_sources,
    launch_grouping,
    list_studies,
    predicted_scores,
    study_result,
)
from services.text import literal
from state import StateKeys, group_edit_key, init_state, session_owner
from views._store import store_fragment
from views._widgets import figure_downloads, flash, show_flash

from mtl_core import figures

init_state()
st.title("Task groupings")
show_flash()
st.markdown(
    "Which tasks should share a network? From a study's scores, each task is predicted to gain the mean "
    "of what its group mates do for it (0 when alone, the single-task baseline); the best **partition** "
    "into at most k groups maximises the mean over tasks. Edit a grouping, then train it to see whether "
    "the prediction holds."
)

studies = [s for s in list_studies() if s.finished and s.done > 0]
if not studies:
    st.info("Groupings come from a finished transfer study. Launch one on **Relationships** (a small one takes "
            "a minute or two) and come back.")
    st.page_link("views/relationships.py", label="Go to Relationships", icon=":material/hub:")
    st.stop()

ids = [s.group_id for s in studies]
labels = {s.group_id: s.label for s in studies}
if st.session_state.get(StateKeys.GROUP_STUDY) not in ids:
    st.session_state[StateKeys.GROUP_STUDY] = ids[0]
picked = st.selectbox("Study", ids, format_func=lambda g: labels.get(g, g), key=StateKeys.GROUP_STUDY)
study = next(s for s in studies if s.group_id == picked)
result = study_result(study)
sources = grouping_sources(result)
if not sources:
    st.warning("This study has no usable scores (did all its runs fail?).")
    st.stop()
SOURCE_HELP = {
    "transfer": "pairwise transfer (measured: trained alone vs in pairs)",
    "affinity": "TAG affinity (a look-ahead step on one task, measured inside all-tasks runs)",
    "cosine": "mean gradient cosine (do the tasks' gradients agree?)",
}
if st.session_state.get(StateKeys.GROUP_SOURCE) not in sources:
    st.session_state[StateKeys.GROUP_SOURCE] = next(iter(sources))
source = st.radio("Scores from", list(sources), key=StateKeys.GROUP_SOURCE, horizontal=True,
                  format_func=lambda s: SOURCE_HELP.get(s, s))
tasks = list(result["tasks"])
best = best_groupings(result, source)

# --- the best partition for each k ------------------------------------------------------------------------
table = pd.DataFrame([
    {"k (at most)": g["k"], "groups": " · ".join("{" + ", ".join(group) + "}" for group in g["groups"]),
     "predicted score": g["score"]}
    for g in best
])
left, right = st.columns([2, 3])
with left:
    st.dataframe(table, hide_index=True)
    st.caption("Predicted score: the mean over tasks of their predicted gain in their group "
               + ("(a relative change of the validation metric; positive = better than alone)."
                  if source == "transfer" else "(in the units of the source matrix)."))
best_k = max(best, key=lambda g: g["score"])["k"]
if st.session_state.get(StateKeys.GROUP_K) is None or not 1 <= st.session_state[StateKeys.GROUP_K] <= len(best):
    st.session_state[StateKeys.GROUP_K] = best_k
with right:
    k = st.slider("Number of groups (at most)", 1, len(best), key=StateKeys.GROUP_K) if len(best) > 1 else 1
    chosen = best[k - 1]
    best_figure = figures.groupings_figure(chosen["groups"], chosen["task_scores"],
                                           title=f"Best grouping into at most {k} groups")
    st.plotly_chart(best_figure, key="grouping_best")
    figure_downloads(best_figure, f"mtl_best_grouping_k{k}", "grouping_best")

# --- editing ------------------------------------------------------------------------------------------------
st.subheader("Your grouping")
origin = (picked, source, k)
if st.session_state[StateKeys.GROUPS_EDIT_FROM] != origin:
    previous = st.session_state[StateKeys.GROUPS_EDIT] or []
    for index in range(len(previous) + 1):
        st.session_state.pop(group_edit_key(index), None)
    st.session_state[StateKeys.GROUPS_EDIT] = [list(g) for g in chosen["groups"]]
    for index, group in enumerate(chosen["groups"]):
        st.session_state[group_edit_key(index)] = list(group)
    st.session_state[StateKeys.GROUPS_EDIT_FROM] = origin


def _add_group() -> None:
    index = len(st.session_state[StateKeys.GROUPS_EDIT])
    st.session_state[StateKeys.GROUPS_EDIT].append([])
    st.session_state[group_edit_key(index)] = []


editing = st.session_state[StateKeys.GROUPS_EDIT]
columns = st.columns(max(len(editing), 1))
for index in range(len(editing)):
    editing[index] = columns[index].multiselect(f"Group {index + 1}", tasks, key=group_edit_key(index))
st.button("Add a group", key=StateKeys.GROUP_ADD, on_click=_add_group)
groups = [g for g in editing if g]
placed = [t for g in groups for t in g]
missing = [t for t in tasks if t not in placed]
repeated = sorted({t for t in placed if placed.count(t) > 1})
problem = None
if missing or repeated:
    parts = []
    if missing:
        parts.append(f"not in any group: {', '.join(literal(t) for t in missing)}")
    if repeated:
        parts.append(f"in several groups: {', '.join(literal(t) for t in repeated)}")
    problem = "Every task must be in exactly one group — " + "; ".join(parts) + "."
    st.error(problem, icon=":material/warning:")
else:
    scores = predicted_scores(result, source, groups)
    mean_score = sum(scores.values()) / len(scores)
    st.metric("Predicted score of your grouping", f"{mean_score:+.4g}",
              help="Mean over tasks of the predicted gain in their group.")
    st.plotly_chart(figures.groupings_figure(groups, scores, title="Your grouping"), key="grouping_edit")
runs_needed = sum(1 for g in groups if len(g) >= 2) * len(study.seeds)
if st.button(f"Train this grouping ({runs_needed} runs)", type="primary", key=StateKeys.GROUP_TRAIN,
             disabled=problem is not None or runs_needed == 0):
    try:
        evaluation = launch_grouping(study, groups, source, owner=session_owner())
    except MTLError as exc:
        st.error(f"**Nothing was queued.** {explain(exc)}")
    else:
        st.session_state[StateKeys.GROUP_EVALUATION] = evaluation
        flash(f"Queued {runs_needed} runs to train this grouping; measured vs predicted appears below as they finish.")
        st.rerun()

# --- measured vs predicted ------------------------------------------------------------------------------------
evaluations = [e for e in list_studies(kind="grouping") if e.manifest.get("study") == picked]
if not evaluations:
    st.stop()
st.subheader("Measured vs predicted")
eval_ids = [e.group_id for e in evaluations]
eval_labels = {e.group_id: f"{' · '.join('{' + ', '.join(g) + '}' for g in e.manifest['groups'])} "
                           f"({e.manifest.get('source')})" for e in evaluations}
if st.session_state.get(StateKeys.GROUP_EVALUATION) not in eval_ids:
    st.session_state[StateKeys.GROUP_EVALUATION] = eval_ids[0]
evaluation_id = st.selectbox("Trained grouping", eval_ids, format_func=lambda g: eval_labels.get(g, g),
                             key=StateKeys.GROUP_EVALUATION)
initial = next(e for e in evaluations if e.group_id == evaluation_id)


@store_fragment(run_every=2.0 if not initial.finished else None)
def evaluation_view() -> None:
    info = get_study(evaluation_id)
    if info is None:
        return
    if info.finished != initial.finished:
        st.rerun()
    st.progress((info.done + info.failed) / max(info.total, 1), text=f"{info.done} of {info.total} runs done")
    outcome = grouping_result(info)
    if outcome is None:
        st.warning("The study this grouping came from is gone.")
        return
    predicted = {t: v["predicted"] for t, v in outcome["tasks"].items() if v.get("predicted") is not None}
    measured = {t: v["mean"] for t, v in outcome["tasks"].items() if v.get("mean") is not None and t in predicted}
    measured_figure = figures.measured_vs_predicted(predicted, measured, label="relative change vs alone")
    st.plotly_chart(measured_figure, key="grouping_measured")
    figure_downloads(measured_figure, "mtl_grouping_measured_vs_predicted", "grouping_measured")
    score = outcome.get("measured_score") or {}
    if score.get("mean") is not None:
        st.markdown(f"Measured mean gain over tasks: **{100 * score['mean']:+.2f} %** against training each "
                    f"task alone (predicted {100 * outcome['predicted_score']:+.2f} %).")
    st.caption("Each point is a task: its predicted gain in its group (x) against the gain measured by training "
               "the grouping (y), both relative changes of the validation metric against training alone; "
               "points on the diagonal were predicted exactly."
               + ("" if initial.manifest.get("source") == "transfer" else
                  " The prediction came from a non-transfer score, so only its ranking is comparable."))


evaluation_view()
