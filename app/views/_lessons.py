"""Lesson helpers shared by the pages: the session's owner id and the lesson shown beside the plots.

``lesson_aside()`` draws, in the sidebar, the active lesson's title and question, with what to expect
folded away: it is the lesson named by the address (``?lesson=ID``, set by the Learn page when it
opens the run view) or, after navigating elsewhere, the one this session started last. Call it once
per script run (the entry script, before ``page.run()``, or any page).
"""

from __future__ import annotations

import streamlit as st
from services.classroom import pushed_lesson
from services.lessons import LESSON_PARAM, get_lesson
from services.text import literal
from state import StateKeys, is_presenter, session_owner

__all__ = ["SESSION_OWNER", "ACTIVE_LESSON", "CLOSE_LESSON", "session_owner", "lesson_aside", "pushed_banner"]

SESSION_OWNER = StateKeys.SESSION_OWNER
ACTIVE_LESSON = StateKeys.ACTIVE_LESSON
CLOSE_LESSON = StateKeys.CLOSE_LESSON


def _close() -> None:
    st.session_state[ACTIVE_LESSON] = None
    if LESSON_PARAM in st.query_params:
        del st.query_params[LESSON_PARAM]


def _follow_pushed_lesson() -> None:
    """Open the lesson the presenter pushed, once per push: after that the participant may close it or
    choose another."""
    if is_presenter():
        return
    lesson, pushed_at, _ = pushed_lesson()
    if lesson is None or st.session_state.get(StateKeys.PUSH_SEEN) == pushed_at:
        return
    st.session_state[StateKeys.PUSH_SEEN] = pushed_at
    if not st.query_params.get(LESSON_PARAM):  # a lesson named in the address stays
        st.session_state[ACTIVE_LESSON] = lesson["id"]


def pushed_banner() -> str | None:
    """On Learn: the banner naming the lesson the presenter pushed (or why the pushed one cannot be
    opened); returns the pushed lesson's id, or None."""
    lesson, _, problem = pushed_lesson()
    if problem:
        st.warning(problem, icon=":material/warning:")
    if lesson is None:
        return None
    if is_presenter():
        st.info(f"You pushed lesson **{lesson['order']}. {lesson['title']}** to every participant (withdraw it "
                "on the Class page).", icon=":material/campaign:")
        return lesson["id"]
    st.info(f"Your presenter opened lesson **{lesson['order']}. {lesson['title']}**: it is the first one below, "
            "with its question in the sidebar. You can still choose another lesson.", icon=":material/campaign:")
    return lesson["id"]


def lesson_aside() -> None:
    """The active lesson's question in the sidebar (nothing when no lesson is active); a lesson the
    presenter pushed becomes the active one, once per push."""
    _follow_pushed_lesson()
    lesson_id = st.query_params.get(LESSON_PARAM) or st.session_state.get(ACTIVE_LESSON)
    if not lesson_id:
        return
    lesson = get_lesson(lesson_id)
    with st.sidebar:
        if lesson is None:
            st.session_state[ACTIVE_LESSON] = None
            st.warning(f"`{LESSON_PARAM}` in the address must name a lesson of the Learn page, got "
                       f"{literal(repr(str(lesson_id)))}.")  # the address is anyone's text
            return
        st.session_state[ACTIVE_LESSON] = lesson["id"]
        st.markdown(f"#### :material/school: {lesson['title']}")
        st.info(f"**Question.** {lesson['question']}")
        if lesson.get("look_at"):
            st.caption(f"Where to look: {lesson['look_at']}")
        with st.expander("What you should see"):
            st.markdown(lesson["expect"])
        st.button("Close lesson", key=CLOSE_LESSON, on_click=_close, icon=":material/close:")
