"""Relationships: the early forecast of transfer under the heatmaps — the curve of Spearman's ρ for each
cheap signal with one sentence, or, for a study without TAG and probes, one sentence saying what to tick."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from app_support import open_page, page_texts, train_queued
from services import studies
from services.catalog import AUTOSTART_ENV
from services.studies import TAG_CHECKBOX, StudyForm, launch_study, list_studies, study_result
from streamlit.testing.v1 import AppTest

from mtl_core.analysis import forecast_sentence
from mtl_core.runs.store import RunStore, lab_home

#: Four planted tasks (six pairs), one seed, a short protocol: the whole study trains in seconds.
FORM = dict(suite="planted", tasks=["t1", "t2", "t3", "t4"],
            suite_options={"n_tasks": 4, "n_groups": 2, "n_samples": 60, "dim": 6},
            seeds=1, max_epochs=10, patience=3, lr=0.05)
TITLE = "Early forecast: do the cheap signals rank the pairs as transfer does?"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    studies._study_cache.clear()
    return lab_home()


def _study(home: Path, **changes: object) -> RunStore:
    launch_study(StudyForm(**{**FORM, **changes}))
    store = RunStore.at_home(home)
    train_queued(store)
    return store


def _forecast_charts(at: AppTest) -> list[dict]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [spec for spec in specs if spec["layout"].get("title", {}).get("text") == TITLE]


def _texts(at: AppTest) -> str:
    return page_texts(at, ("info", "markdown", "caption", "subheader"))


def test_a_study_with_tag_and_probes_shows_the_forecast_under_the_heatmaps(home: Path) -> None:
    store = _study(home)
    at = open_page("relationships")
    assert not at.exception, at.exception
    assert [h.value for h in at.subheader] == ["Early forecast of transfer"]
    (chart,) = _forecast_charts(at)
    result = study_result(list_studies()[0])
    forecast = result["forecast"]
    lines = [trace for trace in chart["data"] if trace.get("showlegend") is not False]
    assert [trace["x"] for trace in lines] == [forecast["steps"]] * 2
    names = [trace["name"] for trace in lines]
    assert names[0].startswith("TAG affinity: ρ ≥ 0.8 ") and names[1].startswith("mean gradient cosine: ρ ≥ 0.8 ")
    for name, key in zip(names, ("affinity", "cosine"), strict=True):
        step = forecast["reached"][key]
        assert name.endswith("never reached") if step is None else f"first at step {step} (" in name
    assert chart["layout"]["shapes"][0]["y0"] == 0.8  # the dashed threshold
    assert forecast_sentence(forecast) in _texts(at)
    store.close()


def test_a_study_without_tag_says_what_to_tick(home: Path) -> None:
    store = _study(home, include_all=False, tag=False)
    at = open_page("relationships")
    assert not at.exception, at.exception
    assert not _forecast_charts(at)
    (info,) = [e.value for e in at.info if "forecast" in e.value]
    assert f"tick **{TAG_CHECKBOX}**" in info
    assert at.checkbox(key="study_tag").label.startswith(TAG_CHECKBOX)  # the sentence names the real box
    store.close()


def test_a_study_analysed_before_the_forecast_still_reads(home: Path) -> None:
    store = _study(home)
    info = list_studies()[0]
    result = copy.deepcopy(study_result(info))
    del result["forecast"]
    store.set_study_result(info.group_id, result)  # the analysis an older version kept
    studies._study_cache.clear()
    at = open_page("relationships")
    assert not at.exception, at.exception
    assert "Pairwise transfer" in [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert not _forecast_charts(at)
    assert "analysed before MTL Lab made the early forecast" in _texts(at)
    store.close()


def test_a_finished_study_offers_its_one_file_report(home: Path) -> None:
    _study(home)
    at = open_page("relationships")
    assert not at.exception, at.exception
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Report (HTML)"]
    assert not button.proto.disabled
    from services.downloads import study_report_html, study_report_problem

    info = list_studies()[0]
    result = study_result(info)
    assert study_report_problem(result) is None
    page = study_report_html(info.group_id, result)
    assert page.startswith("<!DOCTYPE html>") and "Early forecast of transfer" in page and "t4" in page
    assert study_report_problem({"format": "mtl-lab/run", "history": []}).startswith("this study is a run")
