"""AppTest checks of the Groupings page on a finished small study (three planted tasks, two seeds, two
epochs, trained in this process): it opens on a grouping that trains tasks together, a disabled button
says why, empty charts are replaced by a sentence, and every prediction is shown in its own unit."""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from app_support import open_page, page_texts, train_queued
from services import studies  # app_support puts app/ on the path
from services.catalog import AUTOSTART_ENV
from streamlit.testing.v1 import AppTest

from mtl_core.runs.store import RunStore, lab_home

STUDY = studies.StudyForm(suite="planted", tasks=["t1", "t2", "t3"], suite_options={"n_samples": 150, "dim": 6},
                          max_epochs=2, batch_size=32, seeds=2, include_all=True, tag=True)
SOURCES = ("transfer", "affinity", "cosine")


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab home holding one finished transfer study of three tasks (14 runs + TAG)."""
    home = tmp_path_factory.mktemp("groupings_home")
    store = RunStore.at_home(home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_LAB_HOME", str(home))
        patch.setenv(AUTOSTART_ENV, "0")
        studies.launch_study(STUDY)
        train_queued(store)
    store.close()
    return home


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, study_template: Path) -> RunStore:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    shutil.copytree(study_template, lab_home(), dirs_exist_ok=True)
    studies._study_cache.clear()
    opened = RunStore.at_home(lab_home())
    yield opened
    opened.close()


def _editors(at: AppTest) -> list[list[str]]:
    return [list(m.value) for m in at.multiselect if m.key.startswith("group_edit_")]


def _texts(at: AppTest) -> str:
    return page_texts(at, ("error", "warning", "info", "markdown", "caption"))


def _charts(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"].get("title", {}).get("text", ""): spec for spec in specs}


def _axis_title(chart: dict, axis: str) -> str:
    """An axis title as the browser shows it (figure text escapes characters such as % for plotly)."""
    return html.unescape(chart["layout"][axis]["title"]["text"])


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_opens_on_a_grouping_that_trains_tasks_together(store: RunStore, source: str) -> None:
    at = open_page("groupings")
    assert not at.exception, at.exception
    if at.radio(key="group_source").value != source:
        at.radio(key="group_source").set_value(source).run()
    groups = [g for g in _editors(at) if g]
    assert 1 <= len(groups) < 3 and any(len(g) >= 2 for g in groups)
    assert at.slider(key="group_k").value < 3
    button = at.button(key="group_train")
    assert not button.disabled
    runs = int(re.search(r"\((\d+) runs\)", button.label).group(1))
    assert runs >= 1
    table = at.dataframe[0].value
    column = [c for c in table.columns if c.startswith("predicted")]
    assert column == ["predicted (%)" if source == "transfer" else f"predicted ({source})"]
    caption = {"transfer": "relative change vs alone of the validation metric, in %",
               "affinity": "TAG affinity (a unitless score", "cosine": "mean gradient cosine (a unitless score"}
    assert caption[source] in _texts(at)


def test_a_grouping_of_lone_tasks_says_why_it_cannot_be_trained(store: RunStore) -> None:
    at = open_page("groupings")
    while len(_editors(at)) < 3:
        at.button(key="group_add").click().run()
    for index, key in enumerate(m.key for m in at.multiselect if m.key.startswith("group_edit_")):
        at.multiselect(key=key).set_value([["t1"], ["t2"], ["t3"]][index] if index < 3 else [])
    at.run()
    assert not at.exception, at.exception
    button = at.button(key="group_train")
    assert button.disabled and button.label == "Train this grouping (0 runs)"
    assert "Every task is alone: nothing to train together" in _texts(at)
    assert "Your grouping" not in _charts(at)  # all zero: a sentence instead of an empty chart
    assert "**Your grouping**: nothing to draw — every task is alone" in _texts(at)
    at.multiselect(key="group_edit_2").set_value(["t2"]).run()  # t3 in no group, t2 in two
    assert at.button(key="group_train").disabled
    assert "Fix the groups above first" in _texts(at)


def _rewrite_transfer(store: RunStore, value: float) -> None:
    """Make every pair hurt (``value`` < 0) in the study's kept analysis, as in a real study where
    every task does best alone, and drop its kept groupings (the page recomputes them)."""
    (info,) = studies.list_studies()
    result = copy.deepcopy(studies.study_result(info))
    size = len(result["tasks"])
    result["transfer"]["mean"] = [[None if i == j else value for j in range(size)] for i in range(size)]
    result.pop("groupings", None)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE studies SET result = ? WHERE id = ?", (json.dumps(result), info.group_id))
    studies._study_cache.clear()


def test_when_every_task_alone_is_best_the_best_real_grouping_is_still_offered(store: RunStore) -> None:
    _rewrite_transfer(store, -0.05)
    at = open_page("groupings")
    at.radio(key="group_source").set_value("transfer").run()
    assert not at.exception, at.exception
    assert "no grouping is predicted to beat training every task alone" in _texts(at)
    assert at.slider(key="group_k").value == 2
    assert not at.button(key="group_train").disabled
    at.slider(key="group_k").set_value(3).run()  # every task alone: a sentence, not an empty chart
    assert "Best grouping into at most 3 groups" not in _charts(at)
    assert "**Best grouping into at most 3 groups**: nothing to draw" in _texts(at)
    assert at.button(key="group_train").disabled


def test_a_cosine_prediction_is_compared_by_rank_not_as_a_percentage(store: RunStore) -> None:
    at = open_page("groupings")
    at.radio(key="group_source").set_value("cosine").run()
    assert "%" not in {m.label: m.value for m in at.metric}["Predicted score of your grouping"]
    at.button(key="group_train").click().run()
    assert not at.exception, at.exception
    train_queued(store)
    at.run()
    assert not at.exception, at.exception
    (title,) = [t for t in _charts(at) if t.startswith("Measured vs predicted")]
    chart = _charts(at)[title]
    assert "Pearson" not in title
    assert _axis_title(chart, "xaxis") == "predicted mean gradient cosine (unitless)"
    assert _axis_title(chart, "yaxis") == "measured relative change vs alone (%)"
    assert [trace.get("name") for trace in chart["data"]] == ["tasks"]  # no y = x across units
    (headline,) = [m.value for m in at.markdown if m.value.startswith("Measured mean gain over tasks")]
    measured, prediction = headline.split(". The prediction", 1)
    assert "%" in measured and "%" not in prediction
    assert "mean gradient cosine" in prediction and "order" in prediction
    # a second grouping from the same source: the two are compared by their order
    for key, group in (("group_edit_0", ["t1", "t2"]), ("group_edit_1", ["t3"])):
        at.multiselect(key=key).set_value(group)
    at.run()
    at.button(key="group_train").click().run()
    train_queued(store)
    at.run()
    assert not at.exception, at.exception
    assert "Across the 2 trained groupings of this study predicted from mean gradient cosine" in _texts(at)


def test_a_transfer_prediction_is_shown_next_to_the_measurement_in_percent(store: RunStore) -> None:
    at = open_page("groupings")
    at.radio(key="group_source").set_value("transfer").run()
    at.button(key="group_train").click().run()
    train_queued(store)
    at.run()
    assert not at.exception, at.exception
    (title,) = [t for t in _charts(at) if t.startswith("Measured vs predicted")]
    chart = _charts(at)[title]
    assert _axis_title(chart, "xaxis") == "predicted relative change vs alone (%)"
    assert "y = x (perfect prediction)" in [trace.get("name") for trace in chart["data"]]
    (headline,) = [m.value for m in at.markdown if m.value.startswith("Measured mean gain over tasks")]
    assert re.search(r"\(predicted [+-]\d+\.\d\d %\)\.$", headline), headline


def test_the_trained_grouping_shown_follows_the_source_picked(store: RunStore) -> None:
    at = open_page("groupings")
    trained = {}
    for source in ("cosine", "transfer"):
        at.radio(key="group_source").set_value(source).run()
        at.button(key="group_train").click().run()
        train_queued(store)
        at.run()
        assert not at.exception, at.exception
        trained[source] = at.selectbox(key="group_evaluation").value
    assert trained["cosine"] != trained["transfer"]
    at.radio(key="group_source").set_value("cosine").run()
    assert at.selectbox(key="group_evaluation").value == trained["cosine"]
    assert "predicted from mean gradient cosine" in at.selectbox(key="group_evaluation").format_func(
        trained["cosine"])
    # a grouping picked by hand stays while the source stays
    at.selectbox(key="group_evaluation").set_value(trained["transfer"]).run()
    assert at.selectbox(key="group_evaluation").value == trained["transfer"]
