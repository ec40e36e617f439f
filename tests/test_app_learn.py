"""AppTest checks of the Learn and Playground pages.

The pages run inside small entry scripts (a copy of ``app/`` plus one ``_harness_<page>.py`` per
first page) that register them next to the Run view and Relationships pages and call
``lesson_aside()`` before the page, as ``app/main.py`` should. Every test has its own ``MTL_LAB_HOME``; runs are queued with the worker pool
switched off (``MTL_LAB_APP_AUTOSTART=0``) and, where a test needs results, trained in this process.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path

import pytest
from app_support import TEXT_KINDS, page_texts
from streamlit.testing.v1 import AppTest

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.workshop.lessons import LESSONS_ENV, get_lesson

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
#: The entry script of the tests: ``{default}`` is the page the first run lands on.
HARNESS = """\
import streamlit as st
from views._lessons import lesson_aside
from state import init_state

init_state()
page = st.navigation([
    st.Page("views/learn.py", title="Learn", url_path="learn", default={default!r} == "learn"),
    st.Page("views/playground.py", title="Playground", url_path="playground", default={default!r} == "playground"),
    st.Page("views/run_view.py", title="Run view", url_path="run", default={default!r} == "run_view"),
    st.Page("views/relationships.py", title="Relationships", url_path="relationships"),
])
lesson_aside()
page.run()
"""
PAGES = ("learn", "playground", "run_view")
TINY_LESSON = """\
title: Tiny scale imbalance
story: Two tasks of very different scales.
question: Which task dominates the gradient?
expect: The large one, less so under GradNorm.
preset:
  base:
    suite: scales
    suite_options: {n_samples: 100, dim: 10, out_dim: 4}
    strategy_options: {hidden: 16}
    epochs: 2
    batch_size: 20
    probe_interval: 1
  runs:
    - label: ew
    - label: gradnorm
      method: gradnorm
      method_options: {lr: 0.3}
check:
  - grad_share_larger: {task: s2, under: ew, than: gradnorm}
"""

sys.path.insert(0, str(APP))
from services.catalog import AUTOSTART_ENV  # noqa: E402
from services.lessons import lesson_catalog, lesson_launches  # noqa: E402
from services.playground import PLAYGROUND_DEFAULTS, gradient_methods, playground_query, playground_state  # noqa: E402
from services.runs import list_runs  # noqa: E402
from services.studies import list_studies  # noqa: E402


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``app/`` with one entry script per page (``_harness_<page>.py``)."""
    copy = tmp_path_factory.mktemp("app") / "app"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for page in PAGES:
        (copy / f"_harness_{page}.py").write_text(HARNESS.format(default=page), encoding="utf-8")
    return copy


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


def _open(harness: Path, page: str, **query: str) -> AppTest:
    """A fresh session whose first run shows ``page`` with the address parameters ``query`` (the
    entry script runs in full on a first run only: AppTest runs later ones on the page alone)."""
    at = AppTest.from_file(str(harness / f"_harness_{page}.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _texts(at: AppTest, kinds: tuple[str, ...] = TEXT_KINDS) -> str:
    return page_texts(at, kinds)


def _sidebar(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "warning", "caption")
                     for e in getattr(at.sidebar, kind))


# --- Learn ---------------------------------------------------------------------------------------------------
def test_learn_lists_every_lesson_with_its_story_and_question(app_env: Path, harness: Path) -> None:
    at = _open(harness, "learn")
    assert not at.exception, at.exception
    lessons, problems = lesson_catalog()
    assert problems == [] and len(lessons) >= 6
    headers = [h.value for h in at.subheader]
    text = _texts(at)
    for lesson in lessons:
        assert f"{lesson['order']}. {lesson['title']}" in headers
        assert lesson["question"] in text and lesson["story"] in text
        assert at.button(key=f"learn_run_{lesson['id']}").label == "Run this lesson"
    assert "Queues 1 run and a transfer study of 30 runs." in text  # choosing-groups


def test_run_this_lesson_queues_the_preset_and_opens_the_run_view_with_the_question(app_env: Path,
                                                                                    harness: Path) -> None:
    at = _open(harness, "learn")
    at.button(key="learn_run_scarce-task").click().run()
    assert not at.exception, at.exception
    lesson = get_lesson("scarce-task")
    store = RunStore.at_home(app_env)
    try:
        runs = sorted(store.list_runs(), key=lambda r: r.id)
        assert len(runs) == len(lesson.runs) == 25
        assert {r.status for r in runs} == {"queued"}
        assert len({r.group_id for r in runs}) == 1 and runs[0].group_id.startswith("lesson-scarce-task-")
        assert {r.owner for r in runs} == {at.session_state["session_owner"]}
        queued = [(r.config["strategy"], r.config["seed"], r.config["suite_options"]["p_in"]) for r in runs]
        assert queued == [(x.config.strategy, x.seed, x.config.suite_options["p_in"]) for x in lesson.runs]
    finally:
        store.close()
    # the run view of the first run, with the lesson named in the address …
    assert at.query_params == {"run": str(runs[0].id), "lesson": "scarce-task", "me": at.session_state["participant_token"]}
    assert at.title[0].value == "Run view"
    assert at.selectbox(key="run_pick").value == runs[0].id
    assert "Queued lesson “A data-scarce task and a data-rich helper”: 25 runs." in _texts(at, ("success",))
    assert at.session_state["active_lesson"] == "scarce-task"
    # … so that the entry script shows its question beside the plots (also when the link is opened anew)
    view = _open(harness, "run_view", **at.query_params)
    assert not view.exception, view.exception
    assert view.title[0].value == "Run view" and lesson.question in _sidebar(view) and lesson.title in _sidebar(view)
    assert lesson.expect in "\n".join(e.value for e in view.sidebar.markdown)
    view.button(key="lesson_close").click().run()
    assert "lesson" not in view.query_params and view.session_state["active_lesson"] is None
    # back on Learn, the launch is listed with its progress
    at.switch_page("views/learn.py").run()
    assert "Your run of this lesson" in _texts(at) and "0 of 25 runs done" in _texts(at)


def test_a_lesson_with_a_study_queues_the_study_for_the_relationships_page(app_env: Path, harness: Path) -> None:
    at = _open(harness, "learn")
    at.button(key="learn_run_choosing-groups").click().run()
    assert not at.exception, at.exception
    studies = list_studies()
    assert len(studies) == 1 and studies[0].total == 30 and studies[0].tasks == ["t1", "t2", "t3", "t4"]
    assert at.session_state["study_pick"] == studies[0].group_id
    (launch,) = lesson_launches("choosing-groups")
    assert launch["study_id"] == studies[0].group_id and launch["total"] == 31 and not launch["finished"]


def test_presenter_limits_stop_a_lesson_with_a_clear_message(app_env: Path, harness: Path) -> None:
    app_env.mkdir(parents=True, exist_ok=True)
    (app_env / "limits.yaml").write_text("max_epochs: 5\n", encoding="utf-8")
    at = _open(harness, "learn")
    assert "Limits set by the presenter: at most 5 epochs per run." in _texts(at)
    at.button(key="learn_run_scarce-task").click().run()
    assert not at.exception, at.exception
    errors = _texts(at, ("error",))
    assert "Nothing was queued" in errors and "at most 5 epochs per run" in errors and "asks for 100" in errors
    assert list_runs() == []
    assert at.title[0].value == "Learn"


def test_an_invalid_limits_file_is_reported_and_disables_the_buttons(app_env: Path, harness: Path) -> None:
    app_env.mkdir(parents=True, exist_ok=True)
    (app_env / "limits.yaml").write_text("max_epochs: lots\n", encoding="utf-8")
    at = _open(harness, "learn")
    assert "`max_epochs` must be a positive integer or null" in _texts(at, ("error",))
    assert at.button(key="learn_run_scarce-task").disabled


def test_finished_lesson_runs_are_checked_against_the_expected_observation(
    app_env: Path, harness: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01-tiny-scales.yaml").write_text(TINY_LESSON, encoding="utf-8")
    monkeypatch.setenv(LESSONS_ENV, str(folder))
    at = _open(harness, "learn")
    at.button(key="learn_run_tiny-scales").click().run()
    store = RunStore.at_home(app_env)
    try:
        while (run := store.claim_next()) is not None:
            workers.execute_run(store, run)
        assert {r.status for r in store.list_runs()} == {"done"}
    finally:
        store.close()
    at.switch_page("views/learn.py").run()
    assert not at.exception, at.exception
    assert "On your runs, the expected observation holds." in _texts(at, ("success",))
    explanation = at.text[0].value
    assert explanation.startswith("✓ s2's share of the weighted gradient norm: ew 0.9")


def test_the_lesson_aside_warns_about_an_unknown_lesson(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground", lesson="no-such-lesson")
    assert not at.exception, at.exception
    # The value the user typed is escaped in the markdown source; the reader sees it as typed.
    shown = re.sub(r"\\(.)", r"\1", _sidebar(at))
    assert "`lesson` in the address must name a lesson of the Learn page, got 'no-such-lesson'" in shown


# --- Playground ------------------------------------------------------------------------------------------------
def _figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_playground_renders_every_method_with_cosines_and_sentences(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground", m="all")
    assert not at.exception, at.exception
    assert at.query_params == {"d": "2", "n": "2", "a1": "10", "l1": "1", "a2": "135", "l2": "2", "m": "all"}
    methods = [m["name"] for m in gradient_methods()]
    bullets = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert [b.split("**")[1] for b in bullets] == ["ew", *methods]
    assert "raises the loss of task 1" in bullets[0]
    figure = _figure(at)
    names = {trace.get("name") for trace in figure["data"]}
    assert {"g₁", "g₂", "ew", "mgda", "mgda_ub (= mgda)"} <= names  # coinciding arrows say so in the legend
    assert "every task improves (d·gᵢ > 0 for all i)" in names
    cosines = at.dataframe[0].value
    assert list(cosines["pair"]) == ["g₁, g₂"]
    assert cosines["cosine"].iloc[0] == pytest.approx(math.cos(math.radians(125)))
    assert cosines["relation"].iloc[0] == "conflict (cos < 0)"


def test_a_shared_link_restores_the_configuration_and_edits_update_the_link(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground", a1="30", l1="1", a2="150", l2="2.5", m="pcgrad,mgda")
    assert not at.exception, at.exception
    assert at.slider(key="pg_a1").value == 30 and at.slider(key="pg_a2").value == 150
    assert at.slider(key="pg_l2").value == pytest.approx(2.5)
    assert at.multiselect(key="pg_methods").value == ["pcgrad", "mgda"]
    assert not at.warning
    g2 = next(t for t in _figure(at)["data"] if t.get("name") == "g₂")
    assert g2["x"][1] == pytest.approx(2.5 * math.cos(math.radians(150)))
    assert g2["y"][1] == pytest.approx(2.5 * math.sin(math.radians(150)))
    # moving a slider writes the new configuration to the address …
    at.slider(key="pg_a1").set_value(45).run()
    assert at.query_params["a1"] == "45" and at.query_params["m"] == "pcgrad,mgda"
    # … and opening that address in a new session shows the same configuration
    again = _open(harness, "playground", **at.query_params)
    assert again.slider(key="pg_a1").value == 45 and again.slider(key="pg_l2").value == pytest.approx(2.5)
    assert [m.value for m in again.markdown if m.value.startswith("- **")] == \
           [m.value for m in at.markdown if m.value.startswith("- **")]


def test_three_gradients_in_three_dimensions(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground", d="3", n="3", e1="20")
    assert not at.exception, at.exception
    assert at.slider(key="pg_e1").value == 20 and at.slider(key="pg_a3").value == -100
    assert {t["type"] for t in _figure(at)["data"]} >= {"scatter3d", "cone"}
    assert at.query_params["e3"] == "30" and at.query_params["n"] == "3"
    assert list(at.dataframe[0].value["pair"]) == ["g₁, g₂", "g₁, g₃", "g₂, g₃"]


def test_bad_address_values_warn_and_fall_back_to_defaults(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground", a1="abc", l2="99", n="7", m="pcgrad,nope", a2="-40")
    assert not at.exception, at.exception
    warnings = _texts(at, ("warning",))
    assert "`a1` in the address must be an angle in degrees from -180 to 180, got 'abc'; using 10." in warnings
    assert "`l2` in the address must be a length from 0 to 3, got '99'; using 2.0." in warnings
    assert "`n` in the address must be 2 or 3 (the number of gradients), got '7'; using 2." in warnings
    assert "ignoring 'nope'" in warnings
    assert at.slider(key="pg_a1").value == 10 and at.slider(key="pg_l2").value == pytest.approx(2.0)
    assert at.slider(key="pg_a2").value == -40  # the good values of the link are kept
    assert at.multiselect(key="pg_methods").value == ["pcgrad"]
    assert at.query_params["a1"] == "10" and at.query_params["l2"] == "2"


@pytest.mark.parametrize("state", [
    {"d": 2, "n": 2, "a1": -180, "l1": 0.0, "a2": 180, "l2": 3.0},
    {"d": 3, "n": 3, "a1": 5, "l1": 0.3, "e1": -90, "a2": 6, "l2": 1.7, "e2": 90, "a3": 7, "l3": 2.2, "e3": 0},
])
def test_playground_state_round_trips_through_the_address(state: dict) -> None:
    full = {**PLAYGROUND_DEFAULTS, **state, "methods": ["mgda", "upgrad"]}
    query = playground_query(full)
    restored, warnings = playground_state(query)
    assert warnings == []
    for key, value in state.items():
        assert restored[key] == value
    assert restored["methods"] == ["mgda", "upgrad"]
    assert playground_query(restored) == query


def test_coming_back_to_the_playground_keeps_the_configuration(app_env: Path, harness: Path) -> None:
    at = _open(harness, "playground")
    at.slider(key="pg_a2").set_value(-60).run()
    at.switch_page("views/learn.py").run()
    at.query_params.clear()  # page navigation clears the address
    at.switch_page("views/playground.py").run()
    assert not at.exception, at.exception
    assert at.slider(key="pg_a2").value == -60 and at.query_params["a2"] == "-60"


def test_a_single_user_sees_the_latest_launch_of_another_participant(app_env: Path, harness: Path) -> None:
    first = _open(harness, "learn")
    first.button(key="learn_run_scarce-task").click().run()
    again = _open(harness, "learn")  # another browser (no ?me= token of the first): another participant
    assert again.session_state["session_owner"] != first.session_state["session_owner"]
    assert "The latest run of this lesson (another participant's)" in _texts(again)
    assert "0 of 25 runs done" in _texts(again)


def test_in_a_workshop_a_participant_sees_only_their_own_launch(
    app_env: Path, harness: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", "a long workshop phrase")
    first = _open(harness, "learn")
    token = first.query_params["me"]
    token = token[0] if isinstance(token, list) else token
    first.button(key="learn_run_scarce-task").click().run()
    stranger = _open(harness, "learn")  # another participant's browser
    assert "The latest run of this lesson" not in _texts(stranger) and "runs done" not in _texts(stranger)
    reloaded = _open(harness, "learn", me=token)  # the first participant again, after a reload
    assert reloaded.session_state["session_owner"] == first.session_state["session_owner"]
    assert "Your run of this lesson" in _texts(reloaded)
