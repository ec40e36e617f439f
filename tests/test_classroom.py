"""The presenter's Class page (issue 16, part 1): the participants registry and the pushed lesson under
the lab home, the class figures, and the page itself — two participants run a tiny lesson (queued
from their Learn pages, trained here by the real worker code), the presenter sees one panel each, with
their names and checks, and the class summary; a pushed lesson opens on the participants' Learn page
with a banner; a participant never gets the page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from app_support import MAIN, page_texts, train_queued
from services.catalog import AUTOSTART_ENV  # noqa: E402  (app/ is on sys.path through app_support)
from services.classroom import class_view  # noqa: E402
from state import ME_PARAM  # noqa: E402
from streamlit.testing.v1 import AppTest

from mtl_core import figures
from mtl_core.errors import ConfigError
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.workshop import classroom
from mtl_core.workshop.access import owner_of_token
from mtl_core.workshop.lessons import LESSONS_ENV, LessonResults, RunResult, load_lesson

PASSCODE = "correct horse battery staple"
TOKEN_A = "a" * 8 + "A" * 8 + "-aaaaaaa"
TOKEN_B = "b" * 8 + "B" * 8 + "_bbbbbbb"
TOKEN_P = "p" * 8 + "P" * 8 + "-ppppppp"
OWNER_A, OWNER_B = owner_of_token(TOKEN_A), owner_of_token(TOKEN_B)
TINY_LESSON = """\
title: Tiny sharing
story: Two small tasks, trained together and alone.
question: Does sharing the trunk help here?
expect: Shared training is not far from training alone.
preset:
  base:
    suite: scales
    suite_options: {n_samples: 100, dim: 10, out_dim: 4}
    strategy_options: {hidden: 16}
    epochs: 3
    batch_size: 20
    probe_interval: 1
  runs:
    - label: shared
    - label: alone
      strategy: single
check:
  - delta_m_above: {label: shared, baseline: alone, above: -1000.0}
"""


@pytest.fixture
def lessons_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "01-tiny-sharing.yaml").write_text(TINY_LESSON, encoding="utf-8")
    (folder / "02-other-tiny.yaml").write_text(TINY_LESSON.replace("Tiny sharing", "Another tiny one"),
                                               encoding="utf-8")
    monkeypatch.setenv(LESSONS_ENV, str(folder))
    return folder


@pytest.fixture
def workshop(lessons_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", PASSCODE)
    return lab_home()


def _open(page: str, token: str, **query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params[ME_PARAM] = token
    if page == "class_view":
        at.run()  # its url_path ("class") is not its file name: the pages must be registered first
    at.switch_page(f"views/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


_texts = page_texts


def _unlock(at: AppTest, passcode: str = PASSCODE) -> AppTest:
    at.text_input(key="presenter_passcode").input(passcode).run()
    at.button(key="presenter_unlock").click().run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


# --- engine: the registry and the pushed lesson ------------------------------------------------------
def test_names_are_kept_per_owner_cleaned_and_forgotten_when_cleared(tmp_path: Path) -> None:
    assert classroom.participant_names(tmp_path) == {}
    assert classroom.record_participant("p-1", "  Ada\n <b>L</b>  ", tmp_path)
    assert not classroom.record_participant("p-1", "Ada <b>L</b>", tmp_path)  # unchanged: not rewritten
    classroom.record_participant("p-2", "x" * 100, tmp_path)
    assert classroom.participant_names(tmp_path) == {"p-1": "Ada <b>L</b>", "p-2": "x" * classroom.MAX_NAME_LENGTH}
    classroom.record_participant("p-1", "", tmp_path)
    assert classroom.participant_names(tmp_path) == {"p-2": "x" * classroom.MAX_NAME_LENGTH}
    (classroom.classroom_dir(tmp_path) / "participants.json").write_text("{not json", encoding="utf-8")
    assert classroom.participant_names(tmp_path) == {}  # a damaged file counts as empty
    with pytest.raises(ConfigError, match="`owner` must be"):
        classroom.record_participant("", "Ada", tmp_path)


def test_a_pushed_lesson_is_kept_until_cleared_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    assert classroom.pushed_lesson(tmp_path) is None
    pushed = classroom.push_lesson("related-tasks", ["related-tasks", "scale-imbalance"], tmp_path)
    assert classroom.pushed_lesson(tmp_path) == pushed and pushed["lesson"] == "related-tasks"
    with pytest.raises(ConfigError) as refused:
        classroom.push_lesson("no-such", ["related-tasks", "scale-imbalance"], tmp_path)
    assert str(refused.value) == "`lesson` must be one of related-tasks, scale-imbalance, got 'no-such'"
    assert classroom.pushed_lesson(tmp_path) == pushed  # nothing changed
    classroom.clear_pushed_lesson(tmp_path)
    classroom.clear_pushed_lesson(tmp_path)  # twice is fine
    assert classroom.pushed_lesson(tmp_path) is None


def _result(label: str, seed: int, metric: float) -> RunResult:
    return RunResult(label, seed, {"final_metrics": {"t1": {"value": metric, "higher_is_better": True},
                                                     "t2": {"value": metric, "higher_is_better": True}}})


def test_the_checked_quantity_is_the_delta_m_the_checks_compare(lessons_dir: Path) -> None:
    lesson = load_lesson(lessons_dir / "01-tiny-sharing.yaml")
    results = LessonResults(lesson.id, [_result("shared", 0, 0.9), _result("alone", 0, 0.75),
                                        _result("shared", 1, 0.6), _result("alone", 1, 0.8)])
    quantity, values = classroom.checked_quantity(lesson, results)
    assert quantity == "Δm (%)"
    assert values == {"shared vs alone": pytest.approx((20.0 - 25.0) / 2)}
    quantity, values = classroom.checked_quantity(lesson, LessonResults(lesson.id, [_result("shared", 0, 0.9)]))
    assert math.isnan(values["shared vs alone"])  # no baseline run: not a number


# --- figures ---------------------------------------------------------------------------------------------
def test_class_panels_draw_one_panel_per_participant_with_the_check_in_its_title() -> None:
    curve = {"epochs": [1, 2, 3], "loss": [1.0, 0.7, 0.5]}
    fig = figures.class_panels([
        {"participant": "Ada <i>", "status": "passed", "curves": {"shared": curve, "alone": curve}},
        {"participant": "p-0123", "status": "running", "note": "1 of 2 runs done", "curves": {"shared": curve}},
        {"participant": "Bo", "status": "failed", "curves": {}},
    ], columns=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == ["<b>Ada &lt;i&gt;</b> · ✓ holds", "<b>p-0123</b> · running (1 of 2 runs done)",
                          "<b>Bo</b> · ✗ does not hold"]
    assert "no epoch finished yet" in titles
    assert [t.name for t in fig.data] == ["shared", "alone", "shared"]
    assert fig.data[0].line.color == fig.data[2].line.color  # a label keeps its colour across panels
    assert [t.showlegend for t in fig.data] == [True, True, False]
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "training loss (mean over tasks)"
    with pytest.raises(ValueError, match=r"`panels\[0\]\['status'\]` must be one of passed"):
        figures.class_panels([{"participant": "Ada", "status": "great", "curves": {}}])
    empty = figures.class_panels([])
    assert empty.layout.annotations[0].text == "No participant has run this lesson yet"


def test_class_summary_shows_every_participant_and_the_class_mean_with_its_ci() -> None:
    points = [{"participant": f"P{i}", "values": {"related": v, "unrelated": -v}} for i, v in enumerate([2.0, 4.0, 6.0])]
    points.append({"participant": "late", "values": {"related": None, "unrelated": math.nan}})
    fig = figures.class_summary(points, "Δm (%)")
    related, related_mean, unrelated, unrelated_mean = fig.data
    assert list(related.y) == [2.0, 4.0, 6.0] and list(related.customdata) == ["P0", "P1", "P2"]
    assert related_mean.y[0] == pytest.approx(4.0) and unrelated_mean.y[0] == pytest.approx(-4.0)
    half_width = 4.302652729911275 * 2.0 / math.sqrt(3)  # t(0.975, 2) · s / √n
    assert related_mean.error_y.array[0] == pytest.approx(half_width)
    assert fig.layout.yaxis.title.text == "Δm (&#37;)" and list(fig.layout.xaxis.ticktext) == ["related", "unrelated"]
    single = figures.class_summary(points[:1], "Δm (%)")
    assert single.data[1].error_y.array is None  # one participant: no interval
    assert figures.class_summary(points[3:], "Δm (%)").layout.annotations[0].text == \
        "No participant's runs have finished yet"
    with pytest.raises(ValueError, match="`quantity` must be a non-empty text"):
        figures.class_summary(points, "")


# Participant names drawn as literal text: tests/test_figure_text.py builds both class figures with hostile names.


# --- the page --------------------------------------------------------------------------------------------
def _run_lesson_as(token: str, name: str) -> None:
    at = _open("learn", token, name=name)
    at.button(key="learn_run_tiny-sharing").click().run()
    assert not at.exception, at.exception


def test_the_presenter_sees_every_participants_panel_and_the_class_summary(workshop: Path) -> None:
    presenter = _unlock(_open("learn", TOKEN_P))
    presenter.switch_page("views/class_view.py").run()
    assert not presenter.exception, presenter.exception
    assert "No participant has run this lesson yet." in _texts(presenter)

    _run_lesson_as(TOKEN_A, "Ada")
    _run_lesson_as(TOKEN_B, "Bo <script>")
    presenter.run()
    (panels,) = _charts(presenter)
    titles = [a["text"] for a in panels["layout"]["annotations"]]
    assert "<b>Ada</b> · running (0 of 2 runs done)" in titles
    assert "<b>Bo &lt;script&gt;</b> · running (0 of 2 runs done)" in titles
    assert "2 participants ran this lesson, 2 still running" in _texts(presenter)

    store = RunStore.at_home(workshop)
    try:
        train_queued(store)
        assert {run.owner for run in store.list_runs()} == {OWNER_A, OWNER_B}
    finally:
        store.close()
    presenter.run()  # AppTest does not fire the fragment's timer: a rerun stands for a refresh
    assert not presenter.exception, presenter.exception
    panels, summary = _charts(presenter)
    titles = [a["text"] for a in panels["layout"]["annotations"]]
    assert titles[:2] == ["<b>Ada</b> · ✓ holds", "<b>Bo &lt;script&gt;</b> · ✓ holds"]
    assert {trace["name"] for trace in panels["data"]} == {"shared", "alone"} and len(panels["data"]) == 4
    assert all(len(trace["x"]) == 3 for trace in panels["data"])  # three epochs each
    dots = summary["data"][0]
    assert dots["name"] == "shared vs alone" and sorted(dots["customdata"]) == ["Ada", "Bo &lt;script&gt;"]
    assert summary["layout"]["yaxis"]["title"]["text"] == "Δm (&#37;)"
    view = class_view("tiny-sharing")
    assert [p["participant"] for p in view.panels] == ["Ada", "Bo <script>"] and view.running == 0

    # a participant's new session without ?name= starts with their name, and never shows another's
    again = _open("learn", TOKEN_A)
    assert again.text_input(key="display_name").value == "Ada"
    assert "Bo <script>" not in _texts(again) and OWNER_B not in _texts(again)

    # another lesson nobody ran: its empty state
    presenter.selectbox(key="class_lesson").select("other-tiny").run()
    assert "No participant has run this lesson yet." in _texts(presenter)


def _nav_titles(at: AppTest) -> list[str]:
    """The pages st.navigation registered in the last run (AppTest keeps them, as the browser's menu)."""
    return [page["page_name"] for page in at._registered_pages.values()]


def test_a_participant_gets_no_class_page_and_single_user_says_how_to_set_a_workshop_up(
    workshop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    participant = _open("learn", TOKEN_A)
    assert "Learn" in _nav_titles(participant) and "Class" not in _nav_titles(participant)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        participant.switch_page("views/class_view.py")  # not one of their pages: it cannot be opened
    wrong = _unlock(_open("learn", TOKEN_P), "not it")
    assert "That is not the presenter passcode." in "\n".join(e.value for e in wrong.sidebar.error)
    assert "Class" not in _nav_titles(wrong)
    assert "not it" not in _texts(wrong) and wrong.session_state["presenter_passcode"] == ""
    presenter = _unlock(_open("learn", TOKEN_P))
    assert "Class" in _nav_titles(presenter)
    assert PASSCODE not in _texts(presenter) and presenter.session_state["presenter_passcode"] == ""
    presenter.switch_page("views/class_view.py").run()
    assert presenter.title[0].value == "Class"

    monkeypatch.delenv("MTL_LAB_PRESENTER_PASSCODE")
    alone = _open("class_view", TOKEN_A)
    assert alone.title[0].value == "Class" and "Class" in _nav_titles(alone)
    assert "`MTL_LAB_PRESENTER_PASSCODE`" in _texts(alone) and "for workshops with a presenter" in _texts(alone)
    assert not alone.get("plotly_chart")


def test_a_pushed_lesson_opens_on_the_participants_learn_page_with_a_banner(workshop: Path) -> None:
    presenter = _unlock(_open("learn", TOKEN_P))
    presenter.switch_page("views/class_view.py").run()
    presenter.selectbox(key="class_lesson").select("other-tiny").run()
    presenter.button(key="class_push").click().run()
    assert not presenter.exception, presenter.exception
    assert "Pushed to every participant since" in _texts(presenter)

    participant = _open("learn", TOKEN_A)
    banner = "\n".join(e.value for e in participant.info)
    assert "Your presenter opened lesson **2. Another tiny one**" in banner
    assert [h.value for h in participant.subheader][0] == "2. Another tiny one"  # first on the page
    assert participant.session_state["active_lesson"] == "other-tiny"  # its question beside the plots
    # the participant may choose another: closing it does not bring it back on the next page
    participant.button(key="lesson_close").click().run()
    participant.run()
    assert participant.session_state["active_lesson"] is None

    presenter.button(key="class_clear").click().run()
    assert "No lesson is pushed" in _texts(presenter)
    again = _open("learn", TOKEN_B)
    assert "Your presenter opened lesson" not in "\n".join(e.value for e in again.info)


def test_an_unknown_lesson_pushed_or_in_the_address_is_one_sentence(workshop: Path) -> None:
    classroom.push_lesson("gone", ["gone"])  # a lesson that has since been removed from the folder
    participant = _open("learn", TOKEN_A)
    assert not participant.exception
    assert "The lesson the presenter pushed must be one of the lessons (tiny-sharing, other-tiny), got" in \
        _texts(participant)
    presenter = _unlock(_open("learn", TOKEN_P))
    presenter.switch_page("views/class_view.py")
    presenter.query_params["lesson"] = "nope"
    presenter.run()
    assert not presenter.exception, presenter.exception
    assert "`lesson` in the address must name a lesson of the Learn page, got" in _texts(presenter)
    assert presenter.selectbox(key="class_lesson").value == "tiny-sharing"
