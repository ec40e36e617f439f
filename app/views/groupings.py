"""Groupings: the best task partitions from a study's scores, editable, and trained to check them."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from services.runs import MTLError, explain
from services.studies import (
    best_groupings,
    evaluation_summary,
    get_study,
    grouping_result,
    grouping_sources,
    grouping_suggestion,
    groupings_order,
    launch_grouping,
    list_studies,
    predicted_scores,
    score_unit,
    study_result,
)
from services.text import literal
from state import StateKeys, group_edit_key, init_state, session_owner
from views._reruns import rerun_page_from_fragment
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
SOURCE_NAMES = {"transfer": "pairwise transfer", "affinity": "TAG affinity", "cosine": "mean gradient cosine"}
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
unit = score_unit(source)
# Shown in % when the score is a relative change (as the measured gain is), else as it is, named.
scale = 100.0 if unit.percent else 1.0
score_label = f"predicted {unit.name}" + (" (%)" if unit.percent else "")
# The table's column is narrow: the unit in short, named in full in the caption under it.
column_label = "predicted (%)" if unit.percent else f"predicted ({unit.source})"


def _groups_text(groups: list[list[str]]) -> str:
    return " · ".join("{" + ", ".join(group) + "}" for group in groups)


def _grouping_chart(groups: list[list[str]], scores: dict[str, float], title: str, key: str, name: str) -> None:
    """The grouping's bar chart, or a sentence on why there is nothing to draw (every score 0)."""
    if all(value == 0 for value in scores.values()):
        why = ("every task is alone, so each is predicted to score 0 (its single-task baseline)"
               if all(len(group) < 2 for group in groups) else f"every task's {unit.name} in its group is 0")
        st.info(f"**{title}**: nothing to draw — {why}.", icon=":material/bar_chart_off:")
        return
    figure = figures.groupings_figure(groups, {t: scale * v for t, v in scores.items()}, title=title,
                                      score_label=score_label)
    st.plotly_chart(figure, key=key)
    figure_downloads(figure, name, key)


# --- the best partition for each k ------------------------------------------------------------------------
table = pd.DataFrame([
    {"k (at most)": g["k"], "groups": _groups_text(g["groups"]), column_label: scale * g["score"]} for g in best
])
suggestion = grouping_suggestion(best)
left, right = st.columns([2, 3])
with left:
    st.dataframe(table, hide_index=True, column_config={column_label: st.column_config.NumberColumn(
        format="%+.2f %%" if unit.percent else "%+.4f", help=score_label)})
    st.caption(f"Predicted score: the mean over tasks of their predicted gain in their group, as a {unit.name} "
               + ("of the validation metric, in % (0 = as good as alone; positive = better)."
                  if unit.percent else "(a unitless score, 0 when alone; higher = the group mates are predicted "
                  "to help more). It is not a change of the metric: trained, a grouping is compared with it "
                  "by rank only."))
if st.session_state[StateKeys.GROUPS_EDIT_FROM] is None or st.session_state[StateKeys.GROUPS_EDIT_FROM][:2] != (
        picked, source) or not 1 <= (st.session_state.get(StateKeys.GROUP_K) or 0) <= len(best):
    # a new study or source: start from its suggestion, the best grouping that trains tasks together
    st.session_state[StateKeys.GROUP_K] = suggestion.k or len(best)
with right:
    k = st.slider("Number of groups (at most)", 1, len(best), key=StateKeys.GROUP_K) if len(best) > 1 else 1
    chosen = best[k - 1]
    _grouping_chart(chosen["groups"], chosen["task_scores"], f"Best grouping into at most {k} groups",
                    "grouping_best", f"mtl_best_grouping_k{k}")
if suggestion.k is not None and suggestion.alone_is_best:
    st.info(f"By {SOURCE_NAMES.get(source, source)}, no grouping is predicted to beat training every task alone "
            f"(k = {len(best)}: each task in its own group, score 0). The best grouping that trains tasks together "
            f"is k = {suggestion.k}, {literal(_groups_text(best[suggestion.k - 1]['groups']))} "
            f"({unit.format(suggestion.score)}): it was preselected, train it to check the prediction.",
            icon=":material/info:")

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
    st.metric("Predicted score of your grouping", unit.format(mean_score),
              help=f"Mean over tasks of the predicted gain in their group, as a {unit.name}"
                   + (" (a relative change of the validation metric)." if unit.percent else " (unitless)."))
    _grouping_chart(groups, scores, "Your grouping", "grouping_edit", "mtl_your_grouping")
runs_needed = sum(1 for g in groups if len(g) >= 2) * len(study.seeds)
why_not = None
if problem is not None:
    why_not = "Fix the groups above first: every task must be in exactly one group."
elif runs_needed == 0:
    why_not = ("Every task is alone: nothing to train together (each task alone is the study's single-task "
               "baseline, already trained). Put two or more tasks in a group, or pick a grouping with fewer "
               "groups above.")
if st.button(f"Train this grouping ({runs_needed} run{'' if runs_needed == 1 else 's'})", type="primary", key=StateKeys.GROUP_TRAIN,
             disabled=why_not is not None, help=why_not):
    try:
        evaluation = launch_grouping(study, groups, source, owner=session_owner())
    except MTLError as exc:
        st.error(f"**Nothing was queued.** {explain(exc)}")
    else:
        st.session_state[StateKeys.GROUP_EVALUATION] = evaluation
        flash(f"Queued {runs_needed} run{'' if runs_needed == 1 else 's'} to train this grouping; measured vs predicted appears below as they finish.")
        st.rerun()
if why_not is not None:
    st.caption(why_not)

# --- measured vs predicted ------------------------------------------------------------------------------------
evaluations = [e for e in list_studies(kind="grouping") if e.manifest.get("study") == picked]
_EVALUATION_SOURCE_SEEN = "groupings_evaluation_source_seen"  # the source the trained grouping was picked for
if not evaluations:
    st.stop()
st.subheader("Measured vs predicted")
eval_ids = [e.group_id for e in evaluations]
eval_labels = {e.group_id: f"{' · '.join('{' + ', '.join(g) + '}' for g in e.manifest['groups'])} "
                           f"(predicted from {SOURCE_NAMES.get(e.manifest.get('source'), e.manifest.get('source'))})"
               for e in evaluations}
same_source = [e.group_id for e in evaluations if e.manifest.get("source") == source]
if st.session_state.get(StateKeys.GROUP_EVALUATION) not in eval_ids or (
        st.session_state.get(_EVALUATION_SOURCE_SEEN) != source and same_source):
    # first visit, or the source above changed: show a grouping predicted from that source when there is one
    st.session_state[StateKeys.GROUP_EVALUATION] = (same_source or eval_ids)[0]
st.session_state[_EVALUATION_SOURCE_SEEN] = source
evaluation_id = st.selectbox("Trained grouping", eval_ids, format_func=lambda g: eval_labels.get(g, g),
                             key=StateKeys.GROUP_EVALUATION)
initial = next(e for e in evaluations if e.group_id == evaluation_id)


@store_fragment(run_every=2.0 if not initial.finished else None)
def evaluation_view() -> None:
    info = get_study(evaluation_id)
    if info is None:
        return
    if info.finished != initial.finished:
        rerun_page_from_fragment()  # only from its own refresh: see views._reruns
    st.progress((info.done + info.failed) / max(info.total, 1), text=f"{info.done} of {info.total} runs done")
    outcome = grouping_result(info)
    if outcome is None:
        st.warning("The study this grouping came from is gone.")
        return
    measured_view(outcome)


def measured_view(outcome: dict) -> None:
    """The scatter of measured against predicted gains and the sentence under it, each in its unit."""
    made_by = score_unit(str(outcome.get("source", "transfer")))
    factor = 100.0 if made_by.percent else 1.0
    predicted = {t: factor * v["predicted"] for t, v in outcome["tasks"].items() if v.get("predicted") is not None}
    measured = {t: 100.0 * v["mean"] for t, v in outcome["tasks"].items()
                if v.get("mean") is not None and t in predicted}
    measured_figure = figures.measured_vs_predicted(
        predicted, measured, label="relative change vs alone (%)",
        predicted_label=None if made_by.percent else f"{made_by.name} (unitless)")
    st.plotly_chart(measured_figure, key="grouping_measured")
    figure_downloads(measured_figure, "mtl_grouping_measured_vs_predicted", "grouping_measured")
    if (outcome.get("measured_score") or {}).get("mean") is not None:
        st.markdown(evaluation_summary(outcome, bold=True))
    if made_by.percent:
        st.caption("Each point is a task: its predicted gain in its group (x) against the gain measured by "
                   "training the grouping (y), both relative changes of the validation metric against training "
                   "alone, in %; points on the diagonal were predicted exactly.")
        if all(len(group) <= 2 for group in outcome.get("groups", [])):
            st.caption("Every group here is a pair (or a lone task): a pair is trained as the study trained it "
                       "(same seeds, same protocol), so its measurement repeats the study's pairwise transfer, "
                       "which is the prediction. Groups of three or more are where the prediction is tested.")
    else:
        st.caption(f"Each point is a task: its predicted {made_by.name} in its group (x, a unitless score) against "
                   "the gain measured by training the grouping (y, a relative change of the validation metric "
                   "against training alone, in %). The two have no common scale, so there is no diagonal: a good "
                   "prediction puts the points in the same order along both axes.")


evaluation_view()
initial_source = str(initial.manifest.get("source", "transfer"))
order = groupings_order([e for e in evaluations if e.manifest.get("source") == initial_source])
if order is not None and order["pairs"]:
    st.markdown(f"Across the {order['n']} trained groupings of this study predicted from "
                f"{SOURCE_NAMES.get(initial_source, initial_source)}, "
                f"the predicted order of the groupings matches the measured one for {order['concordant']} of "
                f"{order['pairs']} pairs" + (f" (Spearman ρ = {order['spearman']:+.2f})."
                                             if order["spearman"] is not None else "."))
