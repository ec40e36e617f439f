"""The Compare and Playground pages as a new user meets them (issue 13, items 8 and 9): which runs
Compare selects by default and why, filters that keep the selection, one panel per task; the
playground's few default methods, the rest one click away, and the shading that teaches.

Runs are written straight into the store (finished, with results) rather than trained: the pages
only read them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from app_support import open_page
from services.catalog import AUTOSTART_ENV
from services.compare import DEFAULT_GROUP_RUNS, default_selection, keep_selection, run_list
from services.playground import default_methods, gradient_methods, playground_query, playground_state
from services.runs import RunSummary
from streamlit.testing.v1 import AppTest

from mtl_core.runs.store import RunStore, lab_home


# --- helpers ------------------------------------------------------------------------------------------------
def _summary(run_id: int, suite: str = "planted", tasks: tuple[str, ...] = ("t1", "t2"), group: str | None = None,
             method: str = "ew", seed: int = 0) -> RunSummary:
    return RunSummary(id=run_id, name=None, status="done", suite=suite, strategy="hard", method=method, seed=seed,
                      tasks=list(tasks), epochs=2, group_id=group, created_at=float(run_id), started_at=None,
                      finished_at=None, error=None, cancel_requested=False, total_steps=None,
                      config={"suite": suite, "method": method, "seed": seed}, task_specs=None)


def _finished(store: RunStore, suite: str, method: str, seed: int, tasks: list[str], group: str,
              scale: float = 1.0) -> int:
    """A finished run with test metrics (MSE, ``scale`` × task index) and a two-epoch history."""
    config = {"suite": suite, "strategy": "hard", "method": method, "seed": seed, "tasks": tasks, "epochs": 2}
    (run_id,) = store.create_runs([config], group_id=group)
    store.claim_run(run_id)
    store.set_status(run_id, "done")
    final = {task: {"metric": "mse", "value": scale * (i + 1) * (1 + seed / 10), "higher_is_better": False,
                    "loss": 0.1} for i, task in enumerate(tasks)}
    history = [{"epoch": epoch, **{key: {task: 1 / epoch for task in tasks}
                                   for key in ("train_loss", "val_loss", "val_metric")}} for epoch in (1, 2)]
    store.set_result(run_id, {"final_metrics": final, "history": history})
    time.sleep(0.01)  # distinct creation times, newest last
    return run_id


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


@pytest.fixture
def two_suites(app_env: Path) -> RunStore:
    """#1-#2 planted EW (one submission), #3-#4 scales PCGrad, #5-#6 scales MGDA (a later submission),
    the scales MSEs 20 × the planted ones."""
    store = RunStore.at_home(app_env)
    for seed in (0, 1):
        _finished(store, "planted", "ew", seed, ["t1", "t2"], "first")
    for method in ("pcgrad", "mgda"):
        for seed in (0, 1):
            _finished(store, "scales", method, seed, ["s1", "s2"], "second", scale=20.0)
    yield store
    store.close()


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _chart(at: AppTest, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(key)
                or key in c.proto.id)


# --- Compare: the service --------------------------------------------------------------------------------------
def test_the_default_selection_is_the_newest_submission_that_shares_suite_and_tasks() -> None:
    runs = [_summary(i, group="a") for i in (1, 2)] + [_summary(3, suite="scales", tasks=("s1",), group="b"),
                                                        _summary(4, group="b"), _summary(5, group="b")]
    selection = default_selection(list(reversed(runs)))
    assert selection.run_ids == [5, 4]  # #3 was queued with them, but on another suite
    assert "the 2 runs queued together with the newest finished run, #5 (suite planted, tasks t1, t2)" \
        in selection.reason


def test_a_run_queued_alone_brings_the_newest_runs_comparable_with_it() -> None:
    runs = [_summary(i, group="a") for i in (1, 2, 3)] + [_summary(4, suite="scales"), _summary(5)]
    selection = default_selection(runs)
    assert selection.run_ids == [5, 3, 2, 1]
    assert "the newest finished run, #5, and the 3 newest runs comparable with it" in selection.reason
    alone = default_selection([_summary(1), _summary(2, suite="scales")])
    assert alone.run_ids == [2] and "no other finished run has its suite and tasks" in alone.reason
    assert default_selection([]).run_ids == []


def test_a_large_submission_is_capped() -> None:
    runs = [_summary(i, group="big") for i in range(1, DEFAULT_GROUP_RUNS + 5)]
    selection = default_selection(runs)
    assert len(selection.run_ids) == DEFAULT_GROUP_RUNS and selection.run_ids[0] == DEFAULT_GROUP_RUNS + 4
    assert f"the {DEFAULT_GROUP_RUNS} newest of the {DEFAULT_GROUP_RUNS + 4} runs" in selection.reason


def test_keep_selection_keeps_what_matches_and_names_what_it_drops() -> None:
    runs = [_summary(i) for i in (1, 2, 3)]
    assert keep_selection([3, 7, 1, 9], runs) == ([3, 1], [7, 9])
    assert run_list([7]) == "#7" and run_list([7, 9]) == "#7 and #9" and run_list([1, 2, 3]) == "#1, #2 and #3"


# --- Compare: the page --------------------------------------------------------------------------------------------
def test_compare_selects_the_newest_submission_and_says_why(two_suites: RunStore) -> None:
    at = open_page("compare")
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_runs").value == [6, 5, 4, 3]
    assert "Selected for you: the 4 runs queued together with the newest finished run, #6" in _captions(at)


def test_a_filter_keeps_the_runs_that_match_and_says_which_it_dropped(two_suites: RunStore) -> None:
    at = open_page("compare")
    at.multiselect(key="compare_methods").set_value(["mgda"]).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_runs").value == [6, 5]
    assert "#4 and #3 do not match the filters: left out of the comparison." in _captions(at)
    assert "Selected for you" not in _captions(at)  # it described the 4 runs, no longer shown
    # a filter that matches none of them picks the default among what it lets through, and says so
    at.multiselect(key="compare_methods").set_value([]).run()
    at.multiselect(key="compare_suites").set_value(["planted"]).run()
    assert at.multiselect(key="compare_runs").value == [2, 1]
    captions = _captions(at)
    assert "#6 and #5 do not match the filters, so none of your runs was left." in captions
    assert "queued together with the newest finished run, #2" in captions
    # picking runs by hand makes the selection the user's: the notes go
    at.multiselect(key="compare_runs").set_value([1]).run()
    assert "Selected for you" not in _captions(at) and "do not match" not in _captions(at)


def test_compare_bars_have_one_panel_and_y_axis_per_task(two_suites: RunStore) -> None:
    at = open_page("compare")
    at.multiselect(key="compare_runs").set_value([1, 3]).run()
    assert not at.exception, at.exception
    bars = _chart(at, "compare_bars")
    titles = [a["text"] for a in bars["layout"]["annotations"]]
    assert sorted(titles) == ["s1: mse ↓", "s2: mse ↓", "t1: mse ↓", "t2: mse ↓"]
    assert {"yaxis", "yaxis2", "yaxis3", "yaxis4"} <= set(bars["layout"])
    assert bars["layout"]["yaxis"]["title"]["text"] == "mse"
    assert not any(bars["layout"][f"yaxis{i}"].get("matches") for i in (2, 3, 4))
    assert "do not all share one suite and set of tasks" in _captions(at)
    at.selectbox(key="compare_key").select("val_metric").run()
    curves = _chart(at, "compare_curves")
    assert curves["layout"]["yaxis"]["title"]["text"] == "validation mse (↓ better)"


# --- Playground --------------------------------------------------------------------------------------------------
def _bullets(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("- **")]


def test_the_playground_opens_with_a_few_methods_and_shows_all_in_one_click(app_env: Path) -> None:
    at = open_page("playground")
    assert not at.exception, at.exception
    assert at.multiselect(key="pg_methods").value == default_methods()
    assert [b.split("**")[1] for b in _bullets(at)] == ["ew", *default_methods()]
    assert "m" not in at.query_params
    names = [t.get("name") for t in _chart(at, "pg_figure")["data"]]
    assert "every task improves (d·gᵢ > 0 for all i)" in names and "conflict region (d·gᵢ < 0)" not in names
    everything = [m["name"] for m in gradient_methods()]
    at.button(key="pg_all_methods").click().run()
    assert at.multiselect(key="pg_methods").value == everything and at.query_params["m"] == "all"
    assert len(_bullets(at)) == 1 + len(everything)
    at.button(key="pg_default_methods").click().run()
    assert at.multiselect(key="pg_methods").value == default_methods() and "m" not in at.query_params


def test_three_gradients_around_the_origin_shade_nothing_and_say_why(app_env: Path) -> None:
    at = open_page("playground", n="3", m="all")
    assert not at.exception, at.exception
    figure = _chart(at, "pg_figure")
    assert not [t for t in figure["data"] if t.get("fill") == "toself"]
    assert "No direction lowers every loss here" in _captions(at)
    legend = {t.get("name") for t in figure["data"]}
    assert {"mgda (zero)", "upgrad (zero)", "nash_mtl (zero)"} <= legend
    sentences = "\n".join(_bullets(at))
    assert "+0.00" not in sentences and "-0.00" not in sentences


def test_the_address_round_trips_default_all_and_chosen_methods() -> None:
    state, warnings = playground_state({})
    assert state["methods"] == default_methods() and warnings == []
    assert "m" not in playground_query(state)
    everything = [m["name"] for m in gradient_methods()]
    assert playground_state({"m": "all"})[0]["methods"] == everything
    assert playground_query({**state, "methods": everything})["m"] == "all"
    assert playground_state({"m": "upgrad"})[0]["methods"] == ["upgrad"]


def test_the_selection_sentence_shows_the_users_names_literally(app_env: Path) -> None:
    from services.text import literal

    store = RunStore.at_home(app_env)
    suite, task = "s__bold__", "![pix](http://127.0.0.1:8765/md.png)"
    for seed in (0, 1):
        _finished(store, suite, "ew", seed, [task, "<img src=x>"], "hostile")
    store.close()
    at = open_page("compare")
    assert not at.exception, at.exception
    reason = next(c.value for c in at.caption if c.value.startswith("Selected for you"))
    assert f"suite {literal(suite)}, tasks {literal(task)}, {literal('<img src=x>')})" in reason
