"""AppTest checks of every dashboard page, on an empty store and on a store seeded with real runs.

Runs are trained in this process (tiny *planted* configs) into a template store once per session, and
each test gets a copy in its own ``MTL_LAB_HOME``. The pages run with ``MTL_LAB_APP_AUTOSTART=0`` so
that they queue runs without starting the worker pool, except in the test of the pool start itself.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from app_support import APP, MAIN, page_texts
from app_support import open_page as _open
from app_support import train_queued as _train_queued
from streamlit.testing.v1 import AppTest

from mtl_core.analysis import holm_adjust
from mtl_core.config import TrainConfig
from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home

PAGES = ["train", "run_view", "relationships", "groupings", "compare", "runs", "learn", "playground"]
TINY = {
    "suite": "planted",
    "suite_options": {"n_samples": 150, "dim": 6, "n_tasks": 4},
    "strategy": "hard",
    "strategy_options": {"hidden": 8},
    "epochs": 3,
    "batch_size": 32,
    "probe_interval": 1,
}

from services import pacing, studies  # noqa: E402
from services.catalog import AUTOSTART_ENV, catalog  # noqa: E402
from services.compare import mean_ci  # noqa: E402
from services.live import COSINE_WINDOWS, DEFAULT_COSINE_WINDOW, LiveRun  # noqa: E402
from services.pacing import (  # noqa: E402
    LIVE_REFRESH_ENV,
    LIVE_SECONDS_PER_VIEWER,
    live_refresh_for,
    live_refresh_seconds,
    live_viewers,
)
from services.results import delta_m  # noqa: E402
from services.runs import ConfigError, explain, parse_run_id  # noqa: E402
from services.studies import StudyForm, launch_study, list_studies, study_heatmaps, study_result, study_size  # noqa: E402

from mtl_core import figures  # noqa: E402

STUDY = StudyForm(suite="planted", tasks=["t1", "t2", "t3"], suite_options={"n_samples": 150, "dim": 6},
                          max_epochs=2, batch_size=32, seeds=2, include_all=True, tag=True)


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab home with finished runs — #1 EW (with TAG), #2 PCGrad, #3 the single-task baseline, #4 a
    failed run — and a finished transfer study of three tasks over two seeds (runs #5-#18)."""
    home = tmp_path_factory.mktemp("seeded_home")
    store = RunStore.at_home(home)
    ids = workers.submit(
        [dict(TINY, method="ew", tag=True), dict(TINY, method="pcgrad"), dict(TINY, strategy="single", method="ew")],
        home=home, start=False, group_id="seeded",
    )
    _train_queued(store)
    assert [store.get_run(i).status for i in ids] == ["done", "done", "done"]
    failed = store.create_run(dict(TINY, method="ew", seed=5))
    store.claim_run(failed)
    store.set_status(failed, "failed", error="ValueError: the loss became NaN at step 3",
                     traceback="Traceback (most recent call last):\n  File ...\nValueError: NaN")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_LAB_HOME", str(home))
        patch.setenv(AUTOSTART_ENV, "0")
        launch_study(STUDY)
        _train_queued(store)
    store.close()
    return home


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


@pytest.fixture
def seeded(app_env: Path, seeded_template: Path) -> RunStore:
    shutil.copytree(seeded_template, app_env, dirs_exist_ok=True)
    store = RunStore.at_home(app_env)
    yield store
    store.close()


def _chart_titles(at: AppTest) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        titles.append(spec["layout"].get("title", {}).get("text", ""))
    return titles


def _tiny_steps(seed: int = 0) -> int:
    """Steps of a TINY run: ⌈training rows / batch⌉ per epoch, from the data (the planted suite's
    row count depends on its options and the seed)."""
    from mtl_core.training.trainer import load_data

    rows = len(load_data(TrainConfig.from_dict(dict(TINY, seed=seed)).validated()).train)
    return math.ceil(rows / TINY["batch_size"]) * TINY["epochs"]


_texts = page_texts


# --- every page renders ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_an_empty_store(app_env: Path, page: str) -> None:
    at = _open(page)
    assert not at.exception, at.exception
    if page in ("run_view", "runs", "compare"):
        assert "No runs yet" in _texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_a_seeded_store(seeded: RunStore, page: str) -> None:
    at = _open(page)
    assert not at.exception, at.exception
    if page == "runs":
        table = at.dataframe[0].value
        assert sorted(table["id"]) == list(range(1, 19))
        assert set(table["status"]) == {"done", "failed"}
    if page == "compare":
        assert "Test metric per task (mean ± 95 % CI)" in _chart_titles(at)
    if page == "relationships":
        assert _chart_titles(at) == ["Pairwise transfer", "Inter-task affinity (TAG)", "Mean gradient cosine",
                                     "Early forecast: do the cheap signals rank the pairs as transfer does?"]
    if page == "groupings":
        assert "Your grouping" in _chart_titles(at)


# --- Train --------------------------------------------------------------------------------------------------------
def _set_tiny(at: AppTest) -> None:
    at.number_input(key="opt_suite_planted_n_samples").set_value(150)
    at.number_input(key="opt_suite_planted_dim").set_value(6)
    at.number_input(key="opt_strategy_hard_hidden").set_value(8)


def test_train_queues_one_run_per_method_and_seed_with_the_chosen_settings(app_env: Path) -> None:
    at = _open("train")
    assert at.selectbox(key="train_suite").value == "planted"
    _set_tiny(at)
    at.multiselect(key="train_tasks").set_value(["t1", "t2", "t4"])
    at.multiselect(key="train_methods").set_value(["ew", "pcgrad"])
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_seeds").set_value(2)
    at.number_input(key="train_probe_interval").set_value(3)
    at.toggle(key="train_tag").set_value(True)
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert "4 runs" in _texts(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception

    runs = sorted(RunStore.at_home(app_env).list_runs(), key=lambda r: r.id)
    assert [(r.method, r.config["seed"]) for r in runs] == [("ew", 0), ("ew", 1), ("pcgrad", 0), ("pcgrad", 1)]
    for run in runs:
        assert run.status == "queued"
        assert run.config["tasks"] == ["t1", "t2", "t4"]
        assert run.config["suite_options"]["n_samples"] == 150 and run.config["suite_options"]["dim"] == 6
        assert run.config["strategy_options"]["hidden"] == 8
        assert (run.config["epochs"], run.config["probe_interval"], run.config["tag"]) == (2, 3, True)
    assert len({r.group_id for r in runs}) == 1
    # The app went on to the run view of the first run.
    assert at.query_params["run"] == [str(runs[0].id)] or at.query_params["run"] == str(runs[0].id)
    assert "Queued runs #1, #2, #3, #4" in _texts(at)


def test_train_runs_carry_the_session_owner_and_respect_presenter_limits(app_env: Path) -> None:
    (app_env / "limits.yaml").write_text("max_epochs: 2\nmax_concurrent_runs_per_session: 3\n", encoding="utf-8")
    at = _open("train")
    _set_tiny(at)
    at.multiselect(key="train_methods").set_value(["ew", "pcgrad"])
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_seeds").set_value(2)  # 4 runs > 3 allowed at a time
    at.run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Nothing was queued" in errors and "3" in errors, errors
    assert RunStore.at_home(app_env).count_runs() == 0

    at.number_input(key="train_seeds").set_value(1)
    at.run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    runs = RunStore.at_home(app_env).list_runs()
    assert len(runs) == 2
    assert {r.owner for r in runs} == {at.session_state["session_owner"]}
    assert at.session_state["session_owner"].startswith("p-")  # a hash of the browser's ?me= token


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"train_strategy": "mmoe", "train_tag": True}, "TAG affinity needs a hard-sharing run"),
        ({"train_strategy": "soft", "train_methods": ["graddrop"]}, "one shared representation"),
        ({"train_tasks": []}, "Tasks must be at least one task"),
        ({"train_methods": []}, "Balancing method must be at least one balancing method"),
        ({"opt_suite_planted_dim": 3}, "Suite option `dim` must be an integer ≥ 2 × n_groups (4)"),
    ],
)
def test_train_explains_bad_settings_and_queues_nothing(app_env: Path, change: dict, expected: str) -> None:
    at = _open("train")
    for key, value in change.items():
        if key in ("train_strategy",):
            at.selectbox(key=key).select(value)
        elif key in ("train_tasks", "train_methods"):
            at.multiselect(key=key).set_value(value)
        elif key == "train_tag":
            at.toggle(key=key).set_value(value)
        else:
            at.number_input(key=key).set_value(value)
    at.run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Can't start yet" in errors and expected.lower() in errors.lower(), errors
    assert at.button(key="train_start").disabled
    assert RunStore.at_home(app_env).count_runs() == 0


def test_train_offers_every_registered_suite_strategy_and_method(app_env: Path) -> None:
    at = _open("train")
    entries = catalog()
    assert at.selectbox(key="train_suite").options == list(entries["suites"])
    assert at.selectbox(key="train_strategy").options == list(entries["strategies"])
    assert len(at.multiselect(key="train_methods").options) == len(entries["methods"])
    at.selectbox(key="train_suite").select("penguins").run()
    assert at.multiselect(key="train_tasks").value == [t["name"] for t in entries["suites"]["penguins"]["tasks"]]


# --- Run view ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "message"), [("abc", "must be a run number"), ("999", "Run 999 does not exist")])
def test_run_view_explains_a_bad_address(seeded: RunStore, value: str, message: str) -> None:
    at = _open("run_view", run=value)
    assert not at.exception, at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_run_view_shows_curves_probes_and_results_of_a_finished_run(seeded: RunStore) -> None:
    at = _open("run_view", run="1")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    steps = _tiny_steps()
    assert metrics["Status"].endswith("done") and metrics["Steps"] == f"{steps} / {steps}"
    # Side by side (the run was queued with two others): one loss chart and one heatmap per run.
    titles = _chart_titles(at)
    assert titles.count("Training loss per step") == 3
    # The default window: every probe of the run (TINY probes every step), named in the title.
    latest = f"Gradient cosine similarity — mean of all {steps} probes (steps 1–{steps})"
    # A narrow panel's title says the same on two lines, so that it is not cut.
    assert latest.replace(" — ", " — <br>") in titles
    best = seeded.get_result(1)["best_epoch"]
    expected = {
        "Overview": ["Training loss per step", latest],
        "Gradients": [latest, "Gradient cosine per task pair", "Gradient norms per task"],
        "TAG affinity": [f"Inter-task affinity (TAG), median of epochs 1–{best}",
                         "Inter-task affinity (TAG), epoch 3"],
        "Task weights": ["Task weights"],
        "Losses & metrics": ["Loss per task", "Validation metric per task", "Training loss per step"],
    }
    for tab, charts in expected.items():
        at.session_state["run_tab_1"] = tab
        at.run()
        assert not at.exception, at.exception
        assert _chart_titles(at) == charts, tab
    at.session_state["run_tab_1"] = "Results"
    at.run()
    table = at.dataframe[0].value
    assert list(table["task"]) == ["t1", "t2", "t3", "t4"]
    delta = {m.label: m.value for m in at.metric}["Δm vs single-task"]
    result = seeded.get_result(1)["final_metrics"]
    baseline = seeded.get_result(3)["final_metrics"]
    expected_dm = 100 * sum(-(result[t]["value"] - baseline[t]["value"]) / baseline[t]["value"] for t in result) / 4
    assert delta == f"{expected_dm:+.2f} %"


def test_run_view_cosine_slider_and_play_step_through_the_probes(seeded: RunStore) -> None:
    at = _open("run_view", run="2")
    at.session_state["run_tab_2"] = "Gradients"
    at.run()
    steps = _tiny_steps()
    slider = at.select_slider(key="run_cosine_step_2")
    assert slider.options == [str(s) for s in range(1, steps + 1)] and slider.value == steps
    slider.set_value(12).run()  # the default window ends at the chosen step: every probe up to it
    assert "Gradient cosine similarity — mean of all 12 probes up to step 12 (steps 1–12)" in _chart_titles(at)
    at.selectbox(key="run_cosine_window").set_value(10).run()
    assert "Gradient cosine similarity — mean of the 10 probes up to step 12 (steps 3–12)" in _chart_titles(at)
    at.select_slider(key="run_cosine_step_2").set_value(4).run()
    assert "Gradient cosine similarity — mean of all 4 probes up to step 4 (steps 1–4)" in _chart_titles(at)
    at.selectbox(key="run_cosine_window").set_value(1).run()
    assert "Gradient cosine similarity — probe at step 4" in _chart_titles(at)
    at.toggle(key="run_cosine_play_2").set_value(True).run()
    assert "Gradient cosine similarity — probe at step 5" in _chart_titles(at)
    at.run()  # the fragment's timer would do this in a browser
    assert "Gradient cosine similarity — probe at step 6" in _chart_titles(at)


def _live_with_cosines(count: int) -> LiveRun:
    """A LiveRun holding ``count`` cosine probes at steps 5, 10, …: in-group pairs (t1·t3) agree
    early (+0.5) and turn to noise (−0.1) in the second half, as on a long planted run."""
    steps = [5 * (i + 1) for i in range(count)]
    values = [[[1.0, 0.0, 0.5 if i < count // 2 else -0.1], [0.0, 1.0, 0.0], [0.5 if i < count // 2 else -0.1, 0.0, 1.0]]
              for i in range(count)]
    return LiveRun(run_id=1, tasks=["t1", "t2", "t3"], probes={"cosine": (steps, values)})


def test_cosine_window_defaults_to_every_probe_and_names_it() -> None:
    live = _live_with_cosines(48)
    averaged = live.cosine_window()  # the default: every probe so far, not the noisy last few
    assert DEFAULT_COSINE_WINDOW == 0 and DEFAULT_COSINE_WINDOW in COSINE_WINDOWS
    assert averaged.steps == tuple(range(5, 241, 5)) and averaged.from_start and averaged.latest
    assert averaged.matrix[0, 2] == pytest.approx((24 * 0.5 - 24 * 0.1) / 48)
    assert averaged.label == "mean of all 48 probes (steps 5–240)"
    fig = figures.cosine_heatmap(averaged.matrix, live.tasks, window=averaged.label)
    assert fig.layout.title.text == "Gradient cosine similarity — mean of all 48 probes (steps 5–240)"
    last = live.cosine_window(10)
    assert last.label == "mean of the last 10 probes (steps 195–240)" and last.matrix[0, 2] == pytest.approx(-0.1)
    assert live.cosine_window(10, step=100).label == "mean of the 10 probes up to step 100 (steps 55–100)"
    assert live.cosine_window(0, step=100).label == "mean of all 20 probes up to step 100 (steps 5–100)"
    assert live.cosine_window(1, step=100).label == "probe at step 100"
    # While the run trains the default window grows with each probe that arrives.
    assert _live_with_cosines(3).cosine_window().label == "mean of all 3 probes (steps 5–15)"
    assert LiveRun(run_id=2).cosine_window() is None
    with pytest.raises(ValueError, match="`step` must be a step with a cosine probe"):
        live.cosine_window(step=7)
    with pytest.raises(ValueError, match="`window` must be a number of probes"):
        live.cosine_window(-1)


def test_failed_run_shows_its_error_message_not_a_traceback(seeded: RunStore) -> None:
    at = _open("run_view", run="4")
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("the loss became NaN at step 3" in e for e in errors), errors
    assert "Traceback" not in _texts(at)


def test_run_view_reads_a_live_run_incrementally(seeded: RunStore) -> None:
    run_id = seeded.create_run(dict(TINY, method="ew", seed=7))
    at = _open("run_view", run=str(run_id))
    assert "Waiting for a worker" in _texts(at)
    live = at.session_state["live_cache"][run_id]
    assert live.steps == []
    _train_queued(seeded)
    at.run()  # what the fragment's timer does in a browser
    assert not at.exception, at.exception
    live = at.session_state["live_cache"][run_id]
    steps = _tiny_steps(seed=7)
    assert live.steps == list(range(1, steps + 1)) and live.last_metric_step == steps
    assert f"Gradient cosine similarity — mean of all {steps} probes (steps 1–{steps})" in _chart_titles(at)
    assert live.refresh(seeded) == 0  # nothing new: the next read asks only for rows after the last step


def test_results_offer_to_queue_the_missing_single_task_baseline(seeded: RunStore) -> None:
    other = seeded.create_run(dict(TINY, method="ew", seed=3))
    _train_queued(seeded)
    at = _open("run_view", run=str(other))
    at.session_state[f"run_tab_{other}"] = "Results"
    at.run()
    assert "No single-task baseline with seed 3" in _texts(at)
    at.button(key=f"run_queue_baseline_{other}").click().run()
    assert not at.exception, at.exception
    queued = seeded.list_runs(status="queued")
    assert len(queued) == 1
    baseline = queued[0].config
    assert (baseline["strategy"], baseline["seed"], baseline["suite_options"]["n_samples"]) == ("single", 3, 150)
    assert "is queued" in _texts(at)


def test_cancel_button_cancels_a_queued_run(seeded: RunStore) -> None:
    run_id = seeded.create_run(dict(TINY, method="ew", seed=8))
    at = _open("run_view", run=str(run_id))
    at.button(key=f"run_cancel_{run_id}").click().run()
    assert not at.exception, at.exception
    assert seeded.get_run(run_id).status == "cancelled"


# --- Runs --------------------------------------------------------------------------------------------------------
def test_runs_page_deletes_the_selected_runs(seeded: RunStore) -> None:
    at = _open("runs")
    at.multiselect(key="runs_delete_pick").set_value([2, 4]).run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert sorted(r.id for r in seeded.list_runs())[:3] == [1, 3, 5]
    assert "Deleted 2 runs" in _texts(at)
    assert 2 not in set(at.dataframe[0].value["id"]) and 4 not in set(at.dataframe[0].value["id"])


# --- Compare ------------------------------------------------------------------------------------------------------
def test_compare_table_has_mean_ci_and_delta_m(seeded: RunStore) -> None:
    at = _open("compare")
    at.multiselect(key="compare_runs").set_value([1, 2, 3]).run()
    per_task, settings = at.dataframe[0].value, at.dataframe[1].value
    # Settings are named by what differs between the chosen runs (the suite is shared: not named).
    assert set(per_task["setting"]) == {"hard · ew", "hard · pcgrad", "single · ew"}
    row = settings.set_index("setting").loc["hard · ew"]
    assert re.fullmatch(r"[+-]\d+(\.\d+)?", row["Δm % ± CI"])
    assert row["Δm % ± CI"] == f"{delta_m(seeded.get_result(1)['final_metrics'], seeded.get_result(3)['final_metrics']):+.4g}"
    keys = {button.key for button in at.get("download_button")}
    assert {"compare_download_summary", "compare_download_runs", "compare_curves_html", "compare_bars_html"} <= keys, keys


# --- the service layer -----------------------------------------------------------------------------------------------
def test_delta_m_is_positive_when_better_than_single_task() -> None:
    base = {"a": {"value": 0.5, "higher_is_better": True}, "b": {"value": 2.0, "higher_is_better": False}}
    better = {"a": {"value": 0.6, "higher_is_better": True}, "b": {"value": 1.0, "higher_is_better": False}}
    assert delta_m(better, base) == pytest.approx(100 * (0.2 + 0.5) / 2)
    assert delta_m(base, better) == pytest.approx(100 * ((0.5 - 0.6) / 0.6 + (1.0 - 2.0) / 1.0) / 2)
    assert delta_m(better, {}) is None


def test_mean_ci_matches_the_t_interval() -> None:
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert mean_ci([4.0]) == (4.0, None, None)


@pytest.mark.parametrize("text", ["abc", "", "-3", "0", "1.5"])
def test_parse_run_id_rejects_what_is_not_a_run_number(text: str) -> None:
    with pytest.raises(ValueError, match="must be a run number"):
        parse_run_id(text)


def test_the_app_starts_the_worker_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    home = lab_home()
    monkeypatch.setenv("MTL_LAB_POOL_IDLE_EXIT", "5")
    try:
        at = AppTest.from_file(MAIN, default_timeout=120).run()
        assert not at.exception, at.exception
        deadline = time.monotonic() + 60
        while not workers.pool_running(home) and time.monotonic() < deadline:
            time.sleep(0.2)  # the supervisor takes its lock once its interpreter has started
        assert workers.pool_running(home)
    finally:
        workers.stop_pool(home)


def test_app_modules_do_not_import_torch() -> None:
    sources = sorted(APP.rglob("*.py"))
    assert sources
    for path in sources:
        assert not re.search(r"^\s*(import|from)\s+torch\b", path.read_text(), re.MULTILINE), path
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import state, views._widgets; from mtl_core import figures; "
        "import services.catalog, services.compare, services.data, services.downloads, services.lessons, "
        "services.limits, services.live, services.pacing, services.playground, services.results, services.runs, "
        "services.studies; services.runs.list_runs(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(APP)], check=True, timeout=120)


# --- Relationships and Groupings ------------------------------------------------------------------------------
def test_relationships_launches_a_study_with_the_chosen_settings(app_env: Path) -> None:
    at = _open("relationships")
    assert "No study yet" in _texts(at)
    at.number_input(key="opt_study_suite_planted_n_samples").set_value(150)
    at.number_input(key="opt_study_suite_planted_dim").set_value(6)
    at.multiselect(key="study_tasks").set_value(["t1", "t2", "t4"])
    at.number_input(key="study_seeds").set_value(3)
    assert at.number_input(key="study_max_epochs").value == 200 and at.number_input(key="study_patience").value == 10
    at.number_input(key="study_max_epochs").set_value(2)
    at.number_input(key="study_patience").set_value(1)
    at.run()
    # 3 seeds × (3 alone + 3 pairs + 1 all), with the planted suite's study defaults
    assert ("This study queues **21 runs** (hard sharing (width 32, depth 2), Adam lr 0.003, batch 32, ew)"
            in _texts(at))
    at.button(key="study_start").click().run()
    assert not at.exception, at.exception
    runs = RunStore.at_home(app_env).list_runs()
    assert len(runs) == 21 and len({r.group_id for r in runs}) == 1
    assert sorted({tuple(r.config["tasks"]) for r in runs}) == [
        ("t1",), ("t1", "t2"), ("t1", "t2", "t4"), ("t1", "t4"), ("t2",), ("t2", "t4"), ("t4",)]
    assert {r.config["seed"] for r in runs} == {0, 1, 2}
    assert {(r.config["epochs"], r.config["patience"]) for r in runs} == {(2, 1)}  # one protocol for every run
    assert {(r.config["lr"], r.config["batch_size"], r.config["strategy_options"]["hidden"]) for r in runs} == {
        (3e-3, 32, 32)}
    assert "Pairwise transfer" in _chart_titles(at)


def test_a_bad_study_protocol_is_refused_before_anything_is_queued(app_env: Path) -> None:
    for field, label in (("patience", "Patience"), ("max_epochs", "Max epochs")):
        form = StudyForm(suite="planted", tasks=["t1", "t2"], **{field: 0})
        with pytest.raises(ConfigError) as info:
            study_size(form)
        assert explain(info.value) == f"{label} must be an integer in [1, 100000] (got 0)."
        with pytest.raises(ConfigError):
            launch_study(form)
    assert RunStore.at_home(app_env).list_runs() == []


def test_relationships_studies_other_strategies_and_methods(app_env: Path) -> None:
    at = _open("relationships")
    assert "single" not in at.selectbox(key="study_strategy").options  # pairs must share something
    at.selectbox(key="study_strategy").select("soft")
    at.selectbox(key="study_method").select("pcgrad")
    at.multiselect(key="study_tasks").set_value(["t1", "t2", "t3"])
    at.number_input(key="study_seeds").set_value(1)
    at.run()
    assert not at.error, [e.value for e in at.error]
    # 3 alone + 3 pairs + 1 all-tasks, + 1 hard-sharing run for TAG (soft sharing has no single trunk)
    assert "This study queues **8 runs** (soft sharing (width 64, depth 2), Adam lr 0.003, batch 32, pcgrad)" in _texts(at)
    at.button(key="study_start").click().run()
    assert not at.exception, at.exception
    runs = RunStore.at_home(app_env).list_runs()
    tag_runs = [r for r in runs if r.config.get("tag")]
    assert [(r.config["strategy"], len(r.config["tasks"])) for r in tag_runs] == [("hard", 3)]
    studied = [r for r in runs if not r.config.get("tag")]
    assert len(studied) == 7 and {(r.config["strategy"], r.config["method"]) for r in studied} == {("soft", "pcgrad")}


def test_relationships_heatmaps_are_ordered_by_clustering_and_mark_significance(seeded: RunStore) -> None:
    at = _open("relationships")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    transfer, affinity, cosine = (chart["data"][0] for chart in charts[:3])
    assert sorted(transfer["x"]) == ["t1", "t2", "t3"]
    assert transfer["x"] == affinity["x"] == cosine["x"]  # one clustering order for the three
    assert transfer["zmid"] == 0 and cosine["zmin"] == -1 and cosine["zmax"] == 1
    study = list_studies()[0]
    result = study_result(study)
    order = study_heatmaps(result)["tasks"]
    positions = [order.index(t) for t in transfer["x"]]
    expected = [[100 * v if v is not None else None for v in result["transfer"]["mean"][i]] for i in positions]
    got = [[cell for cell in row] for row in transfer["z"]]
    for row_expected, row_got in zip(expected, got, strict=True):
        for a, b in zip([row_expected[p] for p in positions], row_got, strict=True):
            assert (a is None and b is None) or a == pytest.approx(b)
    assert "The planted suite hid these groups" in _texts(at)


def test_relationships_shows_the_protocol_under_the_transfer_heatmap(seeded: RunStore) -> None:
    at = _open("relationships")
    assert not at.exception, at.exception
    texts = _texts(at)
    assert "**Protocol.** Every run — alone, pair, all — trains all max_epochs = 2 epochs" in texts
    assert "Runs stopped after a median of 2 epochs (alone 2, pairs 2, all tasks 2), between 2 and 2." in texts
    assert "Holm" in texts
    (transfer,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][:1]
    assert "after Holm correction over the 6 cells" in transfer["layout"]["xaxis"]["title"]["text"]


def _rewrite_study(store: RunStore, study_id: str, manifest: dict, result: dict | None) -> None:
    """Replace a study record's manifest and kept analysis, as an older version left them."""
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE studies SET manifest = ?, result = ? WHERE id = ?",
                     (json.dumps(manifest), None if result is None else json.dumps(result), study_id))
    studies._study_cache.clear()


def test_relationships_reads_a_study_written_before_the_protocol(seeded: RunStore) -> None:
    """A study of an older version (its manifest file imported into the run store): its spec has no
    patience / max_epochs and its kept analysis no p_adjusted, protocol or stopping summary. The page
    still draws it, with Holm-adjusted stars."""
    info = list_studies()[0]
    result = copy.deepcopy(study_result(info))  # the engine keeps a finished study's analysis
    manifest = copy.deepcopy(seeded.get_study(info.group_id).manifest)
    for key in ("patience", "max_epochs"):
        del manifest["spec"][key]
    manifest["spec"]["config"].pop("patience")
    del result["transfer"]["p_adjusted"], result["conventions"]["protocol"], result["stopping"]
    for row in result["runs"]:
        for key in ("stopped_epoch", "best_epoch", "stop_reason"):
            del row[key]
    _rewrite_study(seeded, info.group_id, manifest, result)
    at = _open("relationships")
    assert not at.exception, at.exception
    assert "Pairwise transfer" in _chart_titles(at) and "**Protocol.**" not in _texts(at)
    old = study_result(list_studies()[0])
    assert "p_adjusted" not in old["transfer"]
    data = study_heatmaps(old)
    raw = np.array(data["transfer"]["p_value"], dtype=float)
    np.testing.assert_allclose(data["transfer"]["p_adjusted"], holm_adjust(raw), equal_nan=True)
    # recomputed from the runs (the kept analysis gone), the old spec reads as its own protocol
    _rewrite_study(seeded, info.group_id, manifest, None)
    again = study_result(list_studies()[0])
    assert again["spec"]["max_epochs"] == 2 and "p_adjusted" in again["transfer"]


def test_groupings_edits_and_trains_a_grouping(seeded: RunStore) -> None:
    at = _open("groupings")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["k (at most)"]) == [1, 2, 3]
    # Edit it into the partition {t1, t3} · {t2}.
    if len([m for m in at.multiselect if m.key.startswith("group_edit_")]) < 2:
        at.button(key="group_add").click().run()
    editors = [m.key for m in at.multiselect if m.key.startswith("group_edit_")]
    for key in editors:
        at.multiselect(key=key).set_value({"group_edit_0": ["t1", "t3"], "group_edit_1": ["t2"]}.get(key, []))
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Predicted score of your grouping"]
    at.multiselect(key="group_edit_1").set_value(["t2", "t3"]).run()
    assert any("in several groups: t3" in e.value for e in at.error)
    at.multiselect(key="group_edit_1").set_value(["t2"]).run()
    before = {r.id for r in seeded.list_runs()}
    at.button(key="group_train").click().run()
    assert not at.exception, at.exception
    queued = [r for r in seeded.list_runs() if r.id not in before]
    assert sorted((tuple(r.config["tasks"]), r.config["seed"]) for r in queued) == [
        (("t1", "t3"), 0), (("t1", "t3"), 1)]
    _train_queued(seeded)
    at.run()
    assert any(t.startswith("Measured vs predicted") for t in _chart_titles(at))
    assert "Measured mean gain over tasks" in _texts(at)


def test_groupings_without_a_study_points_to_relationships(app_env: Path) -> None:
    at = _open("groupings")
    assert "Groupings come from a finished transfer study" in _texts(at)


def test_the_home_address_opens_train_keeping_the_address_parameters(app_env: Path) -> None:
    # Train has its own address (/train, a visible page), and / is a hidden page that forwards to it.
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["name"] = "Ada"
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Train a multi-task model"]
    assert at.query_params["name"] == "Ada" and at.query_params["me"]


def test_the_sidebar_counts_runs_and_refreshes_faster_while_runs_are_live(app_env: Path) -> None:
    from views._widgets import SUMMARY_IDLE_SECONDS, SUMMARY_LIVE_SECONDS, summary_caption, summary_period

    workers.submit([TINY], home=app_env, start=False)
    at = _open("runs")
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("1 run in ") and c.endswith(" · 0 running · 1 queued") for c in captions), captions
    assert summary_caption({"running": 0, "queued": 0, "total": 1}, " on this server") == (
        "1 run on this server · 0 running · 0 queued")  # not "1 runs"
    assert summary_caption({"running": 2, "queued": 7, "total": 20}, " on this server") == (
        "20 runs on this server · 2 running · 7 queued")
    assert summary_period({"running": 1, "queued": 0, "total": 1}) == SUMMARY_LIVE_SECONDS < SUMMARY_IDLE_SECONDS
    assert summary_period({"running": 0, "queued": 0, "total": 1}) == SUMMARY_IDLE_SECONDS


def test_a_deep_link_to_the_home_address_opens_the_run_view(seeded: RunStore) -> None:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["run"] = "2"
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Run view"]
    assert at.selectbox(key="run_pick").value == 2


@pytest.mark.parametrize(("value", "seconds"), [(None, 1.0), ("3", 3.0), ("0.1", 0.5), ("600", 60.0), ("abc", 1.0),
                                                ("nan", 1.0)])
def test_live_refresh_period_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                                        seconds: float) -> None:
    if value is None:
        monkeypatch.delenv(LIVE_REFRESH_ENV, raising=False)
    else:
        monkeypatch.setenv(LIVE_REFRESH_ENV, value)
    assert live_refresh_seconds() == seconds


def test_the_live_refresh_slows_down_as_more_sessions_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIVE_REFRESH_ENV, raising=False)
    monkeypatch.setattr(pacing, "_live_viewers", {})
    monkeypatch.setattr(pacing, "_live_periods", {})
    monkeypatch.setattr(pacing, "_live_cost", [])
    assert live_refresh_for("student-0") == 1.0
    for index in range(1, 40):
        live_refresh_for(f"student-{index}")
    assert live_viewers() == 40
    assert live_refresh_for("student-0") >= 40 * LIVE_SECONDS_PER_VIEWER  # tests/test_pacing.py: the details
    # viewers who left (no refresh for 15 s and three of their periods) stop counting
    stale = {key: seen - 600 for key, seen in pacing._live_viewers.items() if key != "student-0"}
    pacing._live_viewers.update(stale)
    assert live_refresh_for("student-0", fresh=True) == 1.0  # at its next full page run
