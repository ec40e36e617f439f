"""The run view of a launch (issue 13, items 3 and 4): panels and links labelled with the settings
that differ, side-by-side panels that cover every setting, heatmaps in one clustered order, and a
Results tab that keeps polling until the queued single-task baseline is done.

Runs are tiny *planted* configs trained in this process (``app_support.train_queued``); the pages run
with ``MTL_LAB_APP_AUTOSTART=0`` so that queueing a run starts no worker pool.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from app_support import open_page, page_texts, train_queued
from services.catalog import AUTOSTART_ENV  # noqa: E402  (app_support put app/ on the path)
from services.live import LiveRun, shared_task_order  # noqa: E402
from services.runs import get_run, panel_choices, pending_baseline  # noqa: E402
from services.text import literal  # noqa: E402
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from mtl_core import figures
from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home

TINY = {
    "suite": "planted",
    "suite_options": {"n_samples": 150, "dim": 6, "n_tasks": 4},
    "strategy": "hard",
    "strategy_options": {"hidden": 8},
    "epochs": 2,
    "batch_size": 32,
    "probe_interval": 1,
}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    opened = RunStore.at_home(lab_home())
    yield opened
    opened.close()


_texts = page_texts


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.fixture
def auto_reruns(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Which fragments each script run asks the browser to re-run on a timer (their ids), read from
    the messages Streamlit sends (``auto_rerun``); the sidebar's counter is one of them on every page."""
    seen: list[set[str]] = []
    original = LocalScriptRunner.forward_msgs

    def recording(self: LocalScriptRunner):
        messages = original(self)
        seen.append({m.auto_rerun.fragment_id for m in messages if m.HasField("auto_rerun")})
        return messages

    monkeypatch.setattr(LocalScriptRunner, "forward_msgs", recording)
    return seen


# --- Results: Δm appears when the queued baseline is done ---------------------------------------------------
def test_results_poll_until_the_queued_baseline_is_done(store: RunStore, auto_reruns: list) -> None:
    first, twin = workers.submit([dict(TINY, method="ew", seed=3), dict(TINY, method="pcgrad", seed=3)],
                                 home=lab_home(), start=False)
    train_queued(store)
    at = open_page("run_view", run=str(first))
    at.session_state[f"run_tab_{first}"] = "Results"
    at.run()
    idle = auto_reruns[-1]  # finished and no baseline queued: only the sidebar's own timer, if any
    assert "No single-task baseline with seed 3" in _texts(at)
    at.button(key=f"run_queue_baseline_{first}").click().run()
    assert not at.exception, at.exception
    baseline = pending_baseline(get_run(first))
    assert baseline is not None and baseline.status == "queued" and baseline.strategy == "single"
    assert f"(run #{baseline.id}) is queued" in _texts(at)
    assert not _has_button(at, first)  # no second click, no duplicate
    waiting = auto_reruns[-1]
    assert waiting - idle, "the live view must poll while the baseline is queued"

    # Another run with the same seed and data waits for the same baseline: no second button, no duplicate.
    other = open_page("run_view", run=str(twin))
    other.session_state[f"run_tab_{twin}"] = "Results"
    other.run()
    assert f"(run #{baseline.id}) is queued" in _texts(other) and not _has_button(other, twin)

    train_queued(store)
    at.run()  # what the fragment's timer does in a browser, seconds after the baseline finished
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Δm vs single-task"].endswith("%"), metrics
    assert "is queued" not in _texts(at) and not _has_button(at, first)
    assert pending_baseline(get_run(first)) is None
    assert not (auto_reruns[-1] - idle), "the polling stops once Δm is shown"


def test_a_lessons_own_queued_baseline_is_waited_for_not_queued_again(store: RunStore) -> None:
    # As in lesson 1: the hard run and its single-task twin are queued together, neither names its tasks.
    hard, single = workers.submit([dict(TINY, method="ew"), dict(TINY, strategy="single", probe_interval=0)],
                                  home=lab_home(), start=False, group_id="lesson-like")
    assert store.get_run(single).config.get("tasks") is None
    workers.execute_run(store, store.claim_run(hard))  # only the hard run has trained
    assert pending_baseline(get_run(hard)).id == single
    at = open_page("run_view", run=str(hard))
    at.session_state[f"run_tab_{hard}"] = "Results"
    at.run()
    assert f"(run #{single}) is queued" in _texts(at) and not _has_button(at, hard)


def _has_button(at: AppTest, run_id: int) -> bool:
    return any(button.key == f"run_queue_baseline_{run_id}" for button in at.button)


# --- a launch with more runs than panels -------------------------------------------------------------------
@pytest.fixture
def launch(store: RunStore) -> list[int]:
    """Two settings (p_in 0.9 and 0) × four seeds, queued together as a lesson would."""
    configs = [dict(TINY, suite_options={**TINY["suite_options"], "p_in": p_in}, seed=seed)
               for p_in in (0.9, 0.0) for seed in range(4)]
    ids = workers.submit(configs, home=lab_home(), start=False, group_id="lesson-like")
    train_queued(store)
    return ids


def test_side_by_side_covers_every_setting_and_labels_what_differs(launch: list[int]) -> None:
    at = open_page("run_view", run=str(launch[0]))
    assert not at.exception, at.exception
    picker = at.selectbox(key=f"run_side_pick_{launch[0]}")
    assert picker.value == "seed 0 of each setting"
    assert "every seed of p_in 0.9" in picker.options and "seed 3 of each setting" in picker.options
    headers = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**#")]  # shown literally
    assert headers == [f"#{launch[0]} {literal('p_in 0.9 · seed 0')}", f"#{launch[4]} {literal('p_in 0 · seed 0')}"]
    assert "Showing 2 of the 8 runs" in _texts(at)
    picker.set_value("every seed of p_in 0").run()
    headers = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**#")]
    assert headers == [f"#{launch[4 + s]} {literal(f'p_in 0 · seed {s}')}" for s in range(4)]
    # The links to the launch's runs carry the whole label (no fixed-width column cuts it).
    links = [link.proto.label for link in at.get("page_link")]
    assert f"#{launch[5]} {literal('p_in 0 · seed 1')}" in links and sum(k.startswith("#") for k in links) == 8


def test_side_by_side_heatmaps_share_one_clustered_order(launch: list[int]) -> None:
    at = open_page("run_view", run=str(launch[0]))
    at.selectbox(key=f"run_side_pick_{launch[0]}").set_value("every seed of p_in 0.9").run()
    heatmaps = [spec for spec in _charts(at) if spec["data"] and spec["data"][0].get("type") == "heatmap"]
    assert len(heatmaps) == 4
    orders = {tuple(spec["data"][0]["x"]) for spec in heatmaps}
    assert len(orders) == 1, orders  # one order in every panel: the panels compare cell by cell
    lives = []
    for run_id in launch[:4]:
        live = LiveRun(run_id)
        live.refresh()
        lives.append(live)
    expected = [lives[0].tasks[i] for i in shared_task_order(lives, lives[0].tasks)]
    assert list(orders.pop()) == expected
    assert all(spec["layout"]["title"]["text"].startswith("Gradient cosine similarity — <br>mean of all ")
               for spec in heatmaps)
    assert "In conflict (cosine < 0):" in _texts(at)


def test_panel_choices_put_one_seed_of_every_setting_first(launch: list[int]) -> None:
    runs = sorted((get_run(i) for i in launch), key=lambda r: r.id)
    choices = panel_choices(runs, 6)
    assert [c.label for c in choices] == ["seed 0 of each setting", "seed 1 of each setting", "seed 2 of each setting",
                                          "seed 3 of each setting", "every seed of p_in 0.9", "every seed of p_in 0"]
    assert choices[0].run_ids == (launch[0], launch[4])
    assert panel_choices(runs[:4], 6)[0].run_ids == tuple(launch[:4])  # they fit: all of them
    assert [c.label for c in panel_choices(runs[:4], 3)] == ["every seed (1/2)", "every seed (2/2)"]
    with pytest.raises(ValueError, match="`limit` must be a number of panels ≥ 1, got 0"):
        panel_choices(runs, 0)


# --- the engine side of the heatmaps -----------------------------------------------------------------------
def test_shared_order_puts_agreeing_tasks_together_and_conflict_is_counted() -> None:
    # a and c agree, b and d agree, across groups they conflict: given in a checkerboard order a, b, c, d.
    matrix = np.array([[1.0, -0.4, 0.6, -0.3], [-0.4, 1.0, -0.2, 0.5], [0.6, -0.2, 1.0, -0.4],
                       [-0.3, 0.5, -0.4, 1.0]])
    live = LiveRun(run_id=1, tasks=["a", "b", "c", "d"], probes={"cosine": ([5, 10], [matrix.tolist()] * 2)})
    order = shared_task_order([live], live.tasks)
    positions = {live.tasks[i]: place for place, i in enumerate(order)}
    assert abs(positions["a"] - positions["c"]) == 1 and abs(positions["b"] - positions["d"]) == 1
    assert order == figures.cluster_order(matrix)
    assert live.cosine_window(0).conflict == pytest.approx(8 / 12)  # 4 of the 6 pairs conflict, in both probes
    # Two probes that cancel: the mean is 0 (a white cell), but every other probe is a conflict.
    pair = LiveRun(run_id=2, tasks=["s1", "s2"],
                   probes={"cosine": ([5, 10], [[[1, 0.3], [0.3, 1]], [[1, -0.3], [-0.3, 1]]])})
    window = pair.cosine_window(0)
    assert window.matrix[0, 1] == pytest.approx(0.0) and window.conflict == pytest.approx(0.5)
    assert LiveRun(run_id=3, tasks=["x"]).cosine_window(0) is None


def test_conflict_share_matches_the_lessons_conflict_probe(store: RunStore) -> None:
    """The share the side-by-side states is what lesson 3's check averages (the trainer's "conflict" probe)."""
    (run_id,) = workers.submit([{"suite": "scales", "suite_options": {"sigmas": [1, 10]}, "strategy": "hard",
                                 "method": "ew", "epochs": 3, "lr": 0.01, "probe_interval": 1}],
                               home=lab_home(), start=False)
    train_queued(store)
    live = LiveRun(run_id)
    live.refresh(store)
    _, conflicts = live.probe("conflict")
    window = live.cosine_window(0)
    assert window.conflict == pytest.approx(float(np.mean([c[0] for c in conflicts])))


def test_a_finished_run_is_read_once_and_its_figures_reused(launch: list[int], store: RunStore) -> None:
    from services.live import live_run

    cache: dict = {}
    live = live_run(cache, launch[0], finished=True)
    assert live.complete and live.steps
    built = live.memo("figure", lambda: object())
    assert live_run(cache, launch[0], finished=True) is live and live.memo("figure", lambda: None) is built
    running = live_run(cache, launch[1])  # not known to be finished: read again on every call
    assert not running.complete and running.refresh(store) == 0


def test_labels_on_every_page_say_what_differs(launch: list[int], store: RunStore) -> None:
    at = open_page("runs")
    options = at.multiselect(key="runs_delete_pick").options
    assert any(option.startswith(f"#{launch[4]} planted · hard · ew · p_in 0 · seed 0") for option in options), options
    at = open_page("compare")
    at.multiselect(key="compare_runs").set_value(launch).run()
    settings = at.dataframe[1].value
    assert set(settings["setting"]) == {"hard · ew · p_in 0.9", "hard · ew · p_in 0"}
    assert set(settings["seeds"]) == {4}
    curves = next(spec for spec in _charts(at) if spec["data"] and spec["data"][0].get("type") == "scatter")
    assert f"#{launch[4]} hard · ew · p_in 0 · seed 0" in {trace.get("name") for trace in curves["data"]}


def test_a_queued_run_is_labelled_like_its_started_twins(store: RunStore) -> None:
    """A run that has not started yet (no task specs in its record) and asks for all of its suite's
    tasks reads like the started runs of the same suite: no "tasks …" on some links and not others."""
    from services.runs import queue_runs, run_labels

    from mtl_core.config import TrainConfig

    configs = [TrainConfig.from_dict({**TINY, "strategy": strategy, "seed": seed, "epochs": 1})
               for strategy in ("hard", "single") for seed in (0, 1)]
    ids = queue_runs(configs, owner=None)
    started = store.claim_run(ids[0])
    workers.execute_run(store, started)  # one run trained: its record names the tasks it trained
    runs = [get_run(i) for i in ids]
    assert runs[0].task_specs and not runs[1].task_specs
    labels = run_labels(runs)
    assert not any("tasks" in label for label in labels.values()), labels
    assert labels[ids[0]] == "hard · seed 0" and labels[ids[3]] == "single · seed 1", labels
