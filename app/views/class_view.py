"""Class: the presenter's view of a workshop — every participant's runs of one lesson as small panels,
the class summary of what the lesson checks, and the lesson pushed to every participant's Learn page."""

from __future__ import annotations

import time

import streamlit as st
from services.classroom import class_view, clear_pushed_lesson, push_lesson, pushed_lesson
from services.lessons import LESSON_PARAM, lesson_catalog
from services.pacing import live_refresh_for
from services.runs import MTLError, explain
from services.text import literal
from state import StateKeys, init_state, is_presenter, session_owner, single_user
from views._reruns import rerun_page_from_fragment
from views._store import store_fragment

from mtl_core.figures import plot_text
from mtl_core.figures.classroom import class_panels, class_summary

init_state()
st.title("Class")

if single_user():
    st.info("The Class page is for workshops with a presenter: it shows every participant's runs of a lesson "
            "side by side, and pushes a lesson to everyone's Learn page. Start the server with a presenter "
            "passcode in `MTL_LAB_PRESENTER_PASSCODE` (README, *Workshops*), then unlock *Presenter* in the "
            "sidebar.", icon=":material/groups:")
    st.stop()
if not is_presenter():
    st.warning("The Class page is the presenter's: unlock *Presenter* in the sidebar with the passcode.",
               icon=":material/lock:")
    st.stop()

lessons, problems = lesson_catalog()
for problem in problems:
    st.warning(f"A lesson file cannot be used: {problem}", icon=":material/warning:")
if not lessons:
    st.info("No lessons found, so there is nothing to show the class.")
    st.stop()
titles = {lesson["id"]: f"{lesson['order']}. {lesson['title']}" for lesson in lessons}
pushed, pushed_at, pushed_problem = pushed_lesson()
if pushed_problem:
    st.warning(pushed_problem, icon=":material/warning:")

asked = st.query_params.get(LESSON_PARAM)
if asked and asked not in titles:
    st.error(f"`{LESSON_PARAM}` in the address must name a lesson of the Learn page, got {literal(repr(asked))}.")
if StateKeys.CLASS_LESSON not in st.session_state or st.session_state[StateKeys.CLASS_LESSON] not in titles:
    first = asked if asked in titles else pushed["id"] if pushed else lessons[0]["id"]
    st.session_state[StateKeys.CLASS_LESSON] = first
lesson_id = st.selectbox("Lesson", list(titles), format_func=titles.__getitem__, key=StateKeys.CLASS_LESSON,
                         help="Every participant who ran this lesson gets a panel below (their latest run of it).")

columns = st.columns([2, 2, 3])
if columns[0].button("Push this lesson to everyone", key=StateKeys.CLASS_PUSH, icon=":material/campaign:",
                     help="Every participant's Learn page opens this lesson, with a banner; they can still choose "
                          "another one."):
    try:
        push_lesson(lesson_id)
    except MTLError as exc:
        st.error(explain(exc))
    else:
        pushed, pushed_at, pushed_problem = pushed_lesson()
if columns[1].button("Clear the pushed lesson", key=StateKeys.CLASS_CLEAR, icon=":material/cancel:",
                     disabled=pushed is None and pushed_problem is None):
    clear_pushed_lesson()
    pushed, pushed_at, pushed_problem = None, 0.0, None
if pushed is not None:
    columns[2].caption(f"Pushed to every participant since {time.strftime('%H:%M', time.localtime(pushed_at))}: "
                       f"**{titles.get(pushed['id'], pushed['title'])}**.")
else:
    columns[2].caption("No lesson is pushed: each participant chooses their own on Learn.")

interval = live_refresh_for(session_owner(), fresh=True)


@store_fragment(run_every=interval, paced=True)
def class_area(chosen: str) -> None:
    """The panels and the summary, redrawn at the live views' pace (new participants appear by themselves)."""
    if live_refresh_for(session_owner()) != interval:
        rerun_page_from_fragment()  # more (or fewer) sessions watch live now: refresh at the new pace
    try:
        view = class_view(chosen)
    except MTLError as exc:
        st.error(explain(exc))
        return
    if not view.panels:
        st.info("No participant has run this lesson yet. When participants press *Run this lesson* on Learn, a "
                "panel per participant appears here, titled with their name, with their loss curves and whether "
                "the lesson's observation holds on their runs; below, each participant's measured value "
                "and the class mean.", icon=":material/hourglass_empty:")
        return
    count = len(view.panels)
    st.caption(f"{count} participant{'s' if count != 1 else ''} ran this lesson"
               + (f", {view.running} still running" if view.running else "")
               + ". Each panel shows a participant's latest run of it: the training loss (mean over tasks) of "
                 "each of its runs (first seed), and whether the lesson's observation holds on their runs.")
    st.plotly_chart(class_panels(view.panels), key="class_panels", config={"displaylogo": False})
    if view.quantity:
        summary = class_summary(view.points, view.quantity,
                                        title=f"{plot_text(view.quantity)}: each participant and the class")
        st.plotly_chart(summary, key="class_summary", config={"displaylogo": False})
        st.caption("One dot per participant whose runs have finished; the diamond is the class mean, its bar "
                   "the 95 % confidence interval (t-distribution over participants).")
    else:
        st.caption("This lesson's checks compare no single number to draw across the class; the panels say "
                   "whether its observation holds for each participant.")


class_area(lesson_id)
