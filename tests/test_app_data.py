"""AppTest checks of the Your-data page (CSV upload → user suite) and of the export downloads on the
Run view and Relationships pages, with real files in a temporary ``MTL_LAB_HOME``.

Uploads: streamlit 1.67's AppTest drives ``st.file_uploader`` itself
(``at.file_uploader(key=...).set_value((name, bytes, mime))``), so the tests go through the page exactly
as a browser upload does. Downloads: AppTest shows the download buttons (label, key) but not the bytes
a click would produce (the buttons build them lazily, in a callable), so the tests check that the
buttons are there and, separately, that the service functions the buttons call return content that
parses.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from app_support import APP, page_texts
from app_support import open_page as _open
from app_support import train_queued as _train_queued
from streamlit.testing.v1 import AppTest

from mtl_core.runs import workers
from mtl_core.runs.export import RUN_CSV_COLUMNS, STUDY_CSV_COLUMNS
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.suites.user_csv import refresh_user_suites
from mtl_core.userdata.csv_import import import_csv, user_suites_dir

PENGUINS = Path(__import__("palmerpenguins").__file__).parent / "data" / "penguins.csv"
TINY = {
    "suite": "planted",
    "suite_options": {"n_samples": 150, "dim": 6, "n_tasks": 4},
    "strategy": "hard",
    "strategy_options": {"hidden": 8},
    "epochs": 2,
    "batch_size": 32,
    "probe_interval": 1,
}

from services import downloads  # noqa: E402
from services.catalog import AUTOSTART_ENV  # noqa: E402
from services.downloads import figure_html, run_csv, run_json, study_csv, study_json  # noqa: E402
from services.studies import StudyForm, launch_study, list_studies, study_result  # noqa: E402

from mtl_core import figures  # noqa: E402


# --- fixtures and helpers --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_user_suites(_isolated_home: None, tmp_path_factory: pytest.TempPathFactory):
    """The suite registry follows this test's MTL_LAB_HOME, and holds no user suite after it."""
    refresh_user_suites()
    yield
    refresh_user_suites(tmp_path_factory.mktemp("no_suites"))


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


@pytest.fixture(scope="session")
def finished_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab home with one finished run (#1) and a finished two-task transfer study over two seeds."""
    home = tmp_path_factory.mktemp("export_home")
    store = RunStore.at_home(home)
    workers.submit([dict(TINY, method="ew")], home=home, start=False, group_id="one")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_LAB_HOME", str(home))
        patch.setenv(AUTOSTART_ENV, "0")
        launch_study(StudyForm(
            suite="planted", tasks=["t1", "t2"], suite_options={"n_samples": 150, "dim": 6}, max_epochs=1,
            batch_size=32, seeds=2, include_all=True, tag=False))
    _train_queued(store)
    assert {r.status for r in store.list_runs()} == {"done"}
    store.close()
    return home


@pytest.fixture
def finished(app_env: Path, finished_template: Path) -> RunStore:
    shutil.copytree(finished_template, app_env, dirs_exist_ok=True)
    store = RunStore.at_home(app_env)
    yield store
    store.close()


def _upload(at: AppTest, content: bytes, name: str = "data.csv") -> AppTest:
    at.file_uploader(key="data_upload").set_value((name, content, "text/csv"))
    return at.run()


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


_texts = page_texts


def _saved_suites() -> list[str]:
    folder = user_suites_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _keys(at: AppTest, kind: str) -> list[str]:
    return [w.key for w in at.get(kind)]


def _small_csv(rows: int = 30) -> bytes:
    """A hand-made table: a text column and a number column with one missing cell each, a text
    classification target and a regression target, plus a column with one value only."""
    lines = ["colour,size,label,score,constant"]
    for i in range(rows):
        size = "" if i == 3 else f"{1 + i % 7}"
        colour = "NA" if i == 5 else ["red", "green", "blue"][i % 3]
        lines.append(f"{colour},{size},{'yes' if i % 2 else 'no'},{i * 0.37:.2f},x")
    return ("\n".join(lines) + "\n").encode()


# --- the page renders ----------------------------------------------------------------------------------------------
def test_data_page_renders_on_an_empty_store(app_env: Path) -> None:
    at = _open("data")
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Your data"]
    assert "Upload a CSV file to start" in _texts(at)
    assert "No suites of your own yet" in _texts(at)
    assert not at.button and _saved_suites() == []


# --- uploading and saving ------------------------------------------------------------------------------------------
def test_uploading_and_saving_a_csv_creates_a_suite_that_train_offers(app_env: Path) -> None:
    at = _upload(_open("data"), PENGUINS.read_bytes(), "penguins.csv")
    assert not at.exception, at.exception
    assert not _errors(at)
    preview = at.dataframe[0].value.set_index("column")
    assert list(preview.index) == ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                   "body_mass_g", "sex", "year"]
    assert preview.loc["species", "type"] == "text" and preview.loc["species", "as a target"] == "classification"
    assert preview.loc["body_mass_g", "as a target"] == "regression"
    assert preview.loc["sex", "missing"] == 11 and preview.loc["bill_length_mm", "missing"] == 2
    # "penguins" is a built-in suite: the proposed name steers clear of it.
    assert at.text_input(key="data_name").value == "penguins_2"
    assert at.button(key="data_save").disabled  # no targets yet

    at.multiselect(key="data_targets").set_value(["species", "body_mass_g"]).run()
    assert at.radio(key="data_kind_species").value == "classification"
    assert at.radio(key="data_kind_body_mass_g").value == "regression"
    assert at.multiselect(key="data_features").value == [
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex", "year"]
    at.text_input(key="data_name").set_value("birds")
    at.button(key="data_save").click().run()
    assert not at.exception, at.exception
    assert not _errors(at), _errors(at)
    assert "Saved the suite **birds**" in _texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows read"], metrics["Rows kept"], metrics["Rows dropped"]) == ("344", "333", "11")
    tasks = at.dataframe[-2].value.set_index("task")
    assert tasks.loc["species", "classes"] == "3" and tasks.loc["species", "class names"] == "Adelie, Chinstrap, Gentoo"
    assert tasks.loc["body_mass_g", "kind"] == "regression"
    missing = at.dataframe[-1].value.set_index("column")
    assert missing.loc["sex", "missing cells"] == 11 and missing.loc["sex", "handled"] == "rows dropped"

    spec = json.loads((user_suites_dir() / "birds" / "spec.json").read_text())
    assert [(t["name"], t["kind"]) for t in spec["targets"]] == [("species", "classification"), ("body_mass_g", "regression")]
    assert spec["source_file"] == "penguins.csv" and spec["n_rows"] == 333
    assert "birds" in _keys(at, "button")[-1]  # listed under "Your suites" with its Remove button

    # The Train page offers it at once, with its two tasks; "Train on it" opens it there.
    at.button(key="data_train").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Train a multi-task model"]
    assert at.selectbox(key="train_suite").value == "birds"
    assert at.multiselect(key="train_tasks").value == ["species", "body_mass_g"]
    train = _open("train")
    assert "birds" in train.selectbox(key="train_suite").options


def test_kind_override_and_imputation_reach_the_saved_suite(app_env: Path) -> None:
    at = _upload(_open("data"), _small_csv(), "small table.csv")
    assert at.text_input(key="data_name").value == "small_table"
    at.multiselect(key="data_targets").set_value(["label", "size"]).run()
    assert at.radio(key="data_kind_size").value == "classification"  # 7 whole numbers: detected as classes
    at.radio(key="data_kind_size").set_value("regression")
    at.multiselect(key="data_features").set_value(["colour", "score"])
    at.radio(key="data_missing").set_value("impute")
    at.run()
    at.button(key="data_save").click().run()
    assert not at.exception, at.exception
    assert not _errors(at), _errors(at)
    metrics = {m.label: m.value for m in at.metric}
    # colour: red, green, blue and a "(missing)" category; score: one input.
    assert (metrics["Rows kept"], metrics["Rows dropped"], metrics["Inputs"]) == ("30", "0", "5")
    tasks = at.dataframe[-2].value.set_index("task")
    assert tasks.loc["size", "kind"] == "regression" and tasks.loc["size", "unlabelled rows"] == 1
    missing = at.dataframe[-1].value.set_index("column")
    assert missing.loc["colour", "handled"] == "1 imputed"
    assert missing.loc["size", "handled"] == "rows unlabelled for this task"
    spec = json.loads((user_suites_dir() / "small_table" / "spec.json").read_text())
    assert spec["missing"] == "impute" and spec["features"] == ["colour", "score"]
    assert [(t["name"], t["kind"]) for t in spec["targets"]] == [("label", "classification"), ("size", "regression")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"a,a,b\n1,2,3\n4,5,6\n", "column names must be unique; `a` appears twice"),
        (b"PK\x03\x04binary", "save it as CSV first"),
        (b"x,y\n", "has a header but no data rows"),
    ],
)
def test_a_file_that_cannot_be_read_is_explained_and_nothing_is_saved(app_env: Path, content: bytes,
                                                                       message: str) -> None:
    at = _upload(_open("data"), content)
    assert not at.exception, at.exception
    errors = _errors(at)
    assert len(errors) == 1 and "This file cannot be used" in errors[0] and message in errors[0], errors
    assert "Traceback" not in _texts(at)
    assert "data_save" not in _keys(at, "button")
    assert _saved_suites() == []


@pytest.mark.parametrize(
    ("targets", "kinds", "name", "message"),
    [
        (["constant", "score"], {"constant": "classification"}, "ok_name", "target `constant` has one class ('x')"),
        (["label", "colour"], {"colour": "regression"}, "ok_name", "regression target `colour` must be numeric"),
        (["label", "score"], {}, "bad name!", "`name` must be 1–40 letters"),
        (["label", "score"], {}, "digits", "must not be a built-in suite's name"),
    ],
)
def test_bad_choices_are_explained_keep_the_choices_and_save_nothing(app_env: Path, targets: list[str],
                                                                     kinds: dict, name: str, message: str) -> None:
    at = _upload(_open("data"), _small_csv())
    at.multiselect(key="data_targets").set_value(targets).run()
    for target, kind in kinds.items():
        at.radio(key=f"data_kind_{target}").set_value(kind)
    at.text_input(key="data_name").set_value(name)
    at.run()
    at.button(key="data_save").click().run()
    assert not at.exception, at.exception
    errors = _errors(at)
    assert len(errors) == 1 and "The suite was not saved" in errors[0] and message in errors[0], errors
    assert "Traceback" not in _texts(at)
    assert _saved_suites() == []
    # Nothing the person chose is lost.
    assert at.multiselect(key="data_targets").value == targets
    assert at.text_input(key="data_name").value == name
    for target, kind in kinds.items():
        assert at.radio(key=f"data_kind_{target}").value == kind


def test_saving_over_an_existing_suite_needs_the_replace_box(app_env: Path) -> None:
    at = _upload(_open("data"), _small_csv())
    at.multiselect(key="data_targets").set_value(["label", "score"]).run()
    at.button(key="data_save").click().run()
    assert _saved_suites() == ["data"]
    at.button(key="data_save").click().run()
    errors = _errors(at)
    assert len(errors) == 1 and "a suite named `data` already exists" in errors[0], errors
    assert "Replace a suite of the same name" in errors[0] and "--replace" not in errors[0]
    at.checkbox(key="data_replace").check().run()
    at.button(key="data_save").click().run()
    assert not _errors(at), _errors(at)
    assert _saved_suites() == ["data"]


def test_the_remove_button_removes_a_suite(app_env: Path) -> None:
    import_csv(PENGUINS, "birds", targets=["species", "body_mass_g"])
    import_csv(_small_csv(), "small", targets=["label", "score"])
    at = _open("data")
    assert "birds" in _texts(at) and "small" in _texts(at)
    at.button(key="data_remove_birds").click().run()
    assert not at.exception, at.exception
    assert _saved_suites() == ["small"]
    assert "Removed the suite birds" in _texts(at)
    assert "data_remove_birds" not in _keys(at, "button") and "data_remove_small" in _keys(at, "button")
    options = _open("train").selectbox(key="train_suite").options
    assert "small" in options and "birds" not in options


def test_train_sees_a_suite_saved_outside_the_dashboard(app_env: Path) -> None:
    assert "outside" not in _open("train").selectbox(key="train_suite").options
    import_csv(_small_csv(), "outside", targets=["label", "score"])  # e.g. `python -m mtl_core suites add-csv`
    assert "outside" in _open("train").selectbox(key="train_suite").options


def test_service_reads_uploads_without_importing_torch() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import views._widgets; from services import data, downloads; "
        "p = data.inspect_upload(b'a,b,c\\n1,x,2\\n3,y,4\\n', 'f.csv'); data.columns_table(p); "
        "data.user_suites(); downloads.png_export_available(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(APP)], check=True, timeout=120)


# --- exports ---------------------------------------------------------------------------------------------------------
def test_run_view_offers_the_run_as_json_and_csv(finished: RunStore) -> None:
    at = _open("run_view", run="1")
    assert not at.exception, at.exception
    # Figure downloads under the overview charts (HTML; PNG only with kaleido).
    assert {"overview_loss_1_html", "overview_cosine_1_html"} <= set(_keys(at, "download_button"))
    at.session_state["run_tab_1"] = "Results"
    at.run()
    assert not at.exception, at.exception
    buttons = {b.key: b.label for b in at.get("download_button")}
    assert buttons["run_download_json_1"] == "Run as JSON" and buttons["run_download_csv_1"] == "Metrics as CSV"

    exported = json.loads(run_json(1))
    assert exported["format"] == "mtl_lab.run_export/1" and exported["run"]["id"] == 1
    assert exported["result"]["final_metrics"].keys() == {"t1", "t2", "t3", "t4"}
    rows = list(csv.reader(io.StringIO(run_csv(1))))
    assert tuple(rows[0]) == RUN_CSV_COLUMNS
    assert len(rows) - 1 == len(exported["metrics"]) > 0
    assert {row[0] for row in rows[1:]} == {"1"}
    assert {row[4] for row in rows[1:]} >= {"train_loss", "val_loss", "val_metric"}


def test_relationships_offers_the_study_as_json_and_csv(finished: RunStore) -> None:
    at = _open("relationships")
    assert not at.exception, at.exception
    study = list_studies()[0]
    buttons = {b.key: b.label for b in at.get("download_button")}
    assert buttons["study_download_json"] == "Study as JSON"
    assert buttons["study_download_csv"] == "Transfer cells as CSV"
    assert f"transfer_{study.group_id}_html" in buttons and f"cosine_{study.group_id}_html" in buttons

    result = study_result(study)
    assert json.loads(study_json(result))["tasks"] == ["t1", "t2"]
    rows = list(csv.DictReader(io.StringIO(study_csv(result))))
    assert tuple(rows[0].keys()) == STUDY_CSV_COLUMNS
    assert sorted((r["target"], r["partner"]) for r in rows) == [("t1", "t2"), ("t2", "t1")]
    assert all(r["n"] == "2" for r in rows)


def test_a_study_without_results_offers_no_download(app_env: Path) -> None:
    launch_study(StudyForm(suite="planted", tasks=["t1", "t2"], suite_options={"n_samples": 150},
                                           max_epochs=1, seeds=1, include_all=False, tag=False))
    at = _open("relationships")
    assert not at.exception, at.exception
    assert "study_download_json" not in _keys(at, "download_button")


def test_figure_downloads_offer_png_only_with_a_static_exporter(finished: RunStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "_png_available", False)
    keys = _keys(_open("run_view", run="1"), "download_button")
    assert "overview_loss_1_html" in keys and "overview_loss_1_png" not in keys
    monkeypatch.setattr(downloads, "_png_available", True)
    keys = _keys(_open("run_view", run="1"), "download_button")
    assert {"overview_loss_1_html", "overview_loss_1_png"} <= set(keys)

    html = figure_html(figures.cosine_heatmap([[1.0, -0.5], [-0.5, 1.0]], ["a", "b"]))
    assert "<html" in html[:200].lower() and "Plotly.newPlot" in html
