"""Learn: workshop lessons — a story, a question, and one button that queues the experiment and opens
the run view with the question beside the plots."""

from __future__ import annotations

import time

import streamlit as st
from services.lessons import LESSON_PARAM, launch_lesson, lesson_catalog, lesson_launches, lesson_verdict
from services.limits import limits_summary
from services.runs import MTLError, explain
from state import StateKeys, acting, init_state
from views._lessons import ACTIVE_LESSON, pushed_banner, session_owner
from views._reruns import rerun_page_from_fragment
from views._store import store_fragment
from views._widgets import flash, show_flash

init_state()
st.title("Learn")
show_flash()
pushed_id = pushed_banner()  # the lesson the presenter pushed to everyone, if any: shown first below
st.markdown(
    "Each lesson is a small experiment with a question. **Run this lesson** queues its runs (they take "
    "well under a minute of computer time) and opens the run view with the question in the sidebar. Look "
    "at the plots, answer the question, then open *What you should see* to compare. When all the runs "
    "have finished, the lesson checks the expected observation on **your** runs."
)

limits, limits_problem = limits_summary()
if limits_problem:
    st.error(f"The presenter's limits file cannot be read, so nothing can be queued: {limits_problem}",
             icon=":material/error:")
elif limits:
    st.caption("Limits set by the presenter: " + "; ".join(limits) + ".")

with st.spinner("Loading the lessons…"):
    lessons, problems = lesson_catalog()
for problem in problems:
    st.warning(f"A lesson file cannot be used: {problem}", icon=":material/warning:")
if not lessons:
    st.info("No lessons found. Lessons are YAML files in `mtl_core/assets/lessons/` (or in the folder named by "
            "`$MTL_LAB_LESSONS`).")
    st.stop()

owner = session_owner()


def run_button_key(lesson_id: str) -> str:
    """Widget key of a lesson's "Run this lesson" button."""
    return f"learn_run_{lesson_id}"


def _open(launch: dict) -> None:
    """Go to the run view of the launch's first run (or the Relationships page for a study-only
    lesson), with the lesson's question beside the plots."""
    params = {LESSON_PARAM: launch["lesson"]}
    if launch.get("study_id"):
        st.session_state[StateKeys.STUDY_PICK] = launch["study_id"]
    if launch.get("first_run") is not None:
        st.switch_page("views/run_view.py", query_params={"run": str(launch["first_run"]), **params})
    st.switch_page("views/relationships.py", query_params=params)


def _describe_size(lesson: dict) -> str:
    runs = len(lesson["runs"])
    study = lesson["n_runs"] - runs
    parts = []
    if runs:
        parts.append(f"{runs} run{'s' if runs != 1 else ''}")
    if study:
        parts.append(f"a transfer study of {study} runs")
    return "Queues " + " and ".join(parts) + "."


def _latest(lesson_id: str) -> tuple[dict, bool] | None:
    """The latest launch of a lesson by this participant (mine = True), else, for whoever manages
    everything (the presenter, a single user), the latest by anyone; or None. A participant never
    sees another's launch."""
    launches = lesson_launches(lesson_id, owner=owner)
    if launches:
        return launches[0], True
    if not acting().manages_all:
        return None
    launches = lesson_launches(lesson_id)
    return (launches[0], False) if launches else None


def _launch_status(lesson: dict, launch: dict, mine: bool) -> None:
    when = time.strftime("%H:%M", time.localtime(launch.get("created_at", 0)))
    whose = "Your run of this lesson" if mine else "The latest run of this lesson (another participant's)"
    text = f"{whose} ({when}): {launch['done']} of {launch['total']} runs done"
    if launch["failed"]:
        text += f", {launch['failed']} failed or cancelled"
    columns = st.columns([3, 1])
    columns[0].caption(text + ".")
    if launch.get("first_run") is not None:
        columns[1].page_link("views/run_view.py", label="Open", icon=":material/monitoring:",
                             query_params={"run": str(launch["first_run"]), LESSON_PARAM: lesson["id"]})
    if not launch["finished"]:
        st.progress(launch["done"] / max(launch["total"], 1))
        return
    try:
        verdict = lesson_verdict(launch)
    except MTLError as exc:
        st.warning(f"The lesson's check could not run: {explain(exc)}")
        return
    if verdict is None:
        return
    whose_runs = "your runs" if mine else "these runs"
    if verdict["passed"]:
        st.success(f"On {whose_runs}, the expected observation holds.", icon=":material/check_circle:")
    else:
        st.warning(f"On {whose_runs}, the expected observation does not (fully) hold — compare with "
                   "*What you should see* and the numbers below.", icon=":material/help:")
    with st.expander("The lesson's check, with " + ("your numbers" if mine else "their numbers")):
        st.text(verdict["explanation"])


@store_fragment(run_every=3.0)
def _polling_status(lesson: dict) -> None:
    """The latest unfinished launch, refreshed every few seconds until it finishes."""
    latest = _latest(lesson["id"])
    if latest is None or latest[0]["finished"]:
        rerun_page_from_fragment()  # stop polling: the full page shows the finished launch and its check
        if latest is None:  # in a full page run (no rerun there): nothing to show
            return
    _launch_status(lesson, *latest)


def lesson_status(lesson: dict) -> None:
    """The latest launch of ``lesson``: progress, then the check on its runs."""
    latest = _latest(lesson["id"])
    if latest is None:
        return
    if latest[0]["finished"]:
        _launch_status(lesson, *latest)
    else:
        _polling_status(lesson)


def _lesson_card(lesson: dict) -> None:
    with st.container(border=True):
        st.subheader(f"{lesson['order']}. {lesson['title']}")
        st.markdown(lesson["story"])
        st.markdown(f"**Question.** {lesson['question']}")
        with st.expander("What you should see (open it after you have looked)"):
            st.markdown(lesson["expect"])
            if lesson.get("look_at"):
                st.caption(f"Where to look: {lesson['look_at']}")
        columns = st.columns([1, 3])
        clicked = columns[0].button("Run this lesson", key=run_button_key(lesson["id"]), type="primary",
                                    icon=":material/play_arrow:", disabled=bool(limits_problem))
        columns[1].caption(_describe_size(lesson))
        if clicked:
            try:
                launch = launch_lesson(lesson["id"], owner=owner)
            except MTLError as exc:
                st.error(f"**Nothing was queued.** {explain(exc)}", icon=":material/block:")
            else:
                st.session_state[ACTIVE_LESSON] = lesson["id"]
                flash(f"Queued lesson “{lesson['title']}”: {len(launch['run_ids'])} runs"
                      + (" and its transfer study (see Relationships)" if launch.get("study_id") else "") + ".")
                _open(launch)
        lesson_status(lesson)


for item in sorted(lessons, key=lambda lesson: lesson["id"] != pushed_id):  # stable: the pushed one first
    _lesson_card(item)
