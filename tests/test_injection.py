"""No injection (issue 12, part 5): hostile names — a CSV column named like a spreadsheet formula, like a
markdown image, like an HTML tag; a suite name with emphasis; a run name and a file name like an image —
go through a CSV import, real (tiny) training and a transfer study, then through every page (AppTest)
and every CSV export (the CLI's and the pages' download services).

* Pages: no markdown-rendering text (markdown, captions, alerts, headings, widget labels and help
  tooltips) holds an unescaped ``![``, ``](`` or ``<img``; the hostile names are shown, escaped.
* CSV: no cell starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return unless it is a
  number; the hostile task names are there, with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from app_support import open_page, train_queued
from services.catalog import AUTOSTART_ENV  # noqa: E402  (app_support put app/ on the path)
from services.compare import compare_table, runs_csv, summary_csv  # noqa: E402
from services.downloads import run_csv, study_csv, study_json  # noqa: E402
from services.runs import list_runs  # noqa: E402
from services.studies import StudyForm, launch_study, list_studies, study_result  # noqa: E402
from services.text import engine_message, literal  # noqa: E402
from streamlit.testing.v1 import AppTest

from mtl_core.cli import main
from mtl_core.runs import workers
from mtl_core.runs.export import csv_cell, csv_text, frame_to_csv
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.suites.user_csv import refresh_user_suites
from mtl_core.userdata.csv_import import import_csv

FORMULA = "=cmd|' /C calc'!A0"
IMAGE = "![pix](http://127.0.0.1:8765/md.png)"
TAG = "<img src=http://127.0.0.1:8765/tag.png>"
TASKS = [FORMULA, IMAGE, TAG]
SUITE = "s__bold__"  # suite names allow only letters, digits, _ and -: emphasis is what is left
RUN_NAME = "![run](http://127.0.0.1:8765/run.png)"
FILE_NAME = "![file](f.png) <b>x.csv"  # no "/" in a file name
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# an image or link opener, a link target not escaped by a backslash, an HTML tag, the suite name's emphasis
UNESCAPED = re.compile(r"!\[|(?<!\\)\]\(|<img|<b>|" + re.escape(SUITE))


def hostile_csv(rows: int = 48) -> bytes:
    """Two numeric features and the three hostile targets, whose classes are hostile too."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["x1", "+x2", *TASKS])
    for i in range(rows):
        writer.writerow([f"{(i * 7) % 11 / 3:.3f}", f"{(i * 5) % 13 / 4:.3f}",
                         ["=1+1", "@SUM(A1)"][i % 2], f"{(i % 9) / 2 - 1:.2f}", ["-yes", "<b>no</b>"][i % 3 == 0]])
    return buffer.getvalue().encode()


TINY = {"suite": SUITE, "tasks": TASKS, "strategy": "hard", "strategy_options": {"hidden": 8}, "epochs": 2,
        "batch_size": 16, "probe_interval": 1}


@pytest.fixture(scope="module")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab home with the hostile suite, two finished runs on it (one named like an image) and a
    finished transfer study of two of its tasks."""
    home = tmp_path_factory.mktemp("hostile_home")
    source = tmp_path_factory.mktemp("hostile_csv") / FILE_NAME
    source.write_bytes(hostile_csv())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_LAB_HOME", str(home))
        patch.setenv(AUTOSTART_ENV, "0")
        import_csv(source, SUITE, targets=TASKS, features=["x1", "+x2"])
        refresh_user_suites()
        workers.submit([dict(TINY, method="ew", seed=0), dict(TINY, method="ew", seed=1)], names=[RUN_NAME, None],
                       home=home, start=False, group_id="hostile")
        launch_study(StudyForm(suite=SUITE, tasks=[FORMULA, IMAGE], max_epochs=1, lr=3e-3, batch_size=16, seeds=1,
                               include_all=False, tag=False))
        store = RunStore.at_home(home)
        train_queued(store)
        assert {r.status for r in store.list_runs()} == {"done"}, [r.error for r in store.list_runs()]
        store.close()
    return home


@pytest.fixture
def hostile_home(hostile_template: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    shutil.copytree(hostile_template, lab_home(), dirs_exist_ok=True)
    refresh_user_suites()
    yield lab_home()
    refresh_user_suites(lab_home() / "no_suites")


# --- what the pages show ------------------------------------------------------------------------------------
_MARKDOWN_ELEMENTS = {"markdown", "caption", "error", "warning", "info", "success", "title", "header", "subheader",
                      "toast"}


def markdown_texts(at: AppTest) -> list[str]:
    """Every text of the page that Streamlit renders as markdown: markdown, captions, alerts, headings,
    and the labels and help tooltips of widgets, metrics and expanders (not select options, plain text)."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if getattr(node, "type", None) in _MARKDOWN_ELEMENTS and isinstance(getattr(node, "value", None), str):
            texts.append(node.value)
        for attr in ("label", "help"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                texts.append(value)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return texts


def assert_literal(at: AppTest, page: str) -> str:
    assert not at.exception, (page, at.exception)
    texts = markdown_texts(at)
    for text in texts:
        assert not UNESCAPED.search(text), (page, text)
    return "\n".join(texts)


def test_the_escaping_helpers() -> None:
    assert literal(IMAGE) == r"\!\[pix\]\(http\://127\.0\.0\.1\:8765/md\.png\)"
    assert literal(TAG).startswith("&lt;img") and literal("a\nb & c") == "a b &amp; c"
    assert literal(SUITE) == r"s\_\_bold\_\_"
    message = engine_message(f"column `{IMAGE}` is {TAG}")
    assert not UNESCAPED.search(message) and message.startswith("column `")


def test_every_page_shows_the_hostile_names_as_literal_text(hostile_home: Path) -> None:
    train = open_page("train")
    train.selectbox(key="train_suite").set_value(SUITE).run()
    shown = assert_literal(train, "train")
    assert literal(IMAGE) in shown and literal(TAG) in shown and literal(FORMULA) in shown  # escaped, not dropped
    assert literal(FILE_NAME) in shown  # the suite's description names its file

    data = open_page("data")
    shown = assert_literal(data, "data")
    assert literal(SUITE) in shown and literal(IMAGE) in shown

    runs = list_runs()
    named = next(r for r in runs if r.name == RUN_NAME)
    assert_literal(open_page("run_view", run=str(named.id)), "run_view")
    assert_literal(open_page("run_view", run=IMAGE), "run_view with a hostile address")
    assert_literal(open_page("compare"), "compare")
    assert_literal(open_page("runs"), "runs")
    assert_literal(open_page("relationships"), "relationships")
    assert_literal(open_page("groupings"), "groupings")
    # addresses are anyone's text too: a shared link must not inject either
    assert_literal(open_page("learn", lesson=IMAGE), "learn with a hostile lesson address")
    assert_literal(open_page("playground", m=IMAGE, d=TAG), "playground with a hostile address")


def test_uploading_a_hostile_csv_on_your_data(hostile_home: Path) -> None:
    at = open_page("data")
    at.file_uploader(key="data_upload").set_value((FILE_NAME, hostile_csv(), "text/csv"))
    at.run()
    assert_literal(at, "data: preview")
    at.multiselect(key="data_targets").set_value(TASKS).run()
    shown = assert_literal(at, "data: targets chosen")
    assert literal(IMAGE) in shown  # the radio label of its kind
    at.text_input(key="data_name").set_value("again").run()
    at.button(key="data_save").click().run()
    shown = assert_literal(at, "data: saved")
    assert "Saved the suite **again**" in shown and literal(TAG) in shown


# --- what the CSV files hold ---------------------------------------------------------------------------------
def assert_no_formula(text: str, what: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows, what
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_START):
                float(cell)  # a number such as -0.25 stays a number; anything else must have been escaped
    return rows


def cells(rows: list[list[str]]) -> set[str]:
    return {cell for row in rows for cell in row}


def test_the_one_csv_writer() -> None:
    assert [csv_cell(v) for v in (FORMULA, "+1+1", "-1+2", "@x", "\tx", "\rx", "plain", -0.25, "-0.25", 3, None,
                                  True)] == ["'" + FORMULA, "'+1+1", "'-1+2", "'@x", "'\tx", "'\rx", "plain", "-0.25",
                                             "-0.25", "3", "", "true"]
    text = csv_text(["=h", "n"], [[FORMULA, -1.5]])
    assert list(csv.reader(io.StringIO(text))) == [["'=h", "n"], ["'" + FORMULA, "-1.5"]]
    import pandas as pd

    frame = pd.DataFrame({"task": [FORMULA, "ok"], "value": [-0.5, float("nan")], "n": [1, 2]})
    assert list(csv.reader(io.StringIO(frame_to_csv(frame)))) == [["task", "value", "n"], ["'" + FORMULA, "-0.5", "1"],
                                                                  ["ok", "", "2"]]


def test_every_csv_export_neutralises_formulas(hostile_home: Path, capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    escaped = "'" + FORMULA
    run_id = next(r.id for r in list_runs() if r.name == RUN_NAME)

    assert main(["runs", "export", str(run_id), "--format", "csv"]) == 0
    cli_run = capsys.readouterr().out
    assert escaped in cells(assert_no_formula(cli_run, "runs export"))
    assert main(["export", "run", str(run_id), "--format", "csv"]) == 0
    assert capsys.readouterr().out == cli_run
    assert run_csv(run_id) == cli_run  # the run view's download

    record = tmp_path / "run.json"
    store = RunStore.at_home(lab_home())
    record.write_text(json.dumps(store.export_run(run_id)["result"]))
    store.close()
    assert main(["export", "run", str(record), "--format", "csv"]) == 0
    assert escaped in cells(assert_no_formula(capsys.readouterr().out, "export run FILE"))

    study = next(s for s in list_studies(kind="study"))
    result = study_result(study)
    page_study = study_csv(result)
    assert escaped in cells(assert_no_formula(page_study, "the Relationships download"))
    study_file = tmp_path / "study.json"
    study_file.write_text(study_json(result))
    assert main(["export", "study", str(study_file), "--format", "csv"]) == 0
    assert capsys.readouterr().out == page_study

    table = compare_table([r for r in list_runs(status="done") if r.group_id == "hostile"])
    from services.compare import aggregate_table, settings_table

    summary = summary_csv(aggregate_table(table), settings_table(table))
    assert escaped in cells(assert_no_formula(summary, "the Compare summary download"))
    assert escaped in cells(assert_no_formula(runs_csv(table), "the Compare per-run download"))
