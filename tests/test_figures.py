"""Tests of the pure figure functions (mtl_core/figures, used by the pages and the CLI): what lands in ``fig.data`` and
``fig.layout``, empty states, and the errors that name the offending argument."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from mtl_core import figures

TASKS = ["alpha", "beta", "gamma"]
RDBU = go.Heatmap(colorscale="RdBu").colorscale


def _history(tasks: list[str] = TASKS, epochs: int = 4) -> list[dict]:
    return [
        {
            "epoch": epoch,
            "train_loss": {task: (index + 1) / (epoch + 1) for index, task in enumerate(tasks)},
            "val_loss": {task: (index + 1.5) / (epoch + 1) for index, task in enumerate(tasks)},
            "val_metric": {task: 0.5 + 0.1 * epoch + 0.01 * index for index, task in enumerate(tasks)},
        }
        for epoch in range(epochs)
    ]


def _assert_empty(fig: go.Figure, message: str = "No data yet") -> None:
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    assert [annotation.text for annotation in fig.layout.annotations] == [message]


def _z(trace) -> np.ndarray:
    return np.array([[math.nan if value is None else value for value in row] for row in trace.z], dtype=float)


# ------------------------------------------------------------------------------------------- module


def test_module_does_not_import_torch() -> None:
    code = "import sys; from mtl_core import figures; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------ colours


def test_task_colors_distinct_and_deterministic() -> None:
    names = [f"t{i}" for i in range(10)]
    colors = figures.task_colors(names)
    assert list(colors) == names
    assert len(set(colors.values())) == 10
    assert figures.task_colors(names) == colors
    with pytest.raises(ValueError, match="`task_names`.*unique"):
        figures.task_colors(["a", "a"])


def test_task_colours_consistent_across_figures() -> None:
    colors = figures.task_colors(TASKS)
    steps = [0, 1, 2]
    rows = [[1.0, 2.0, 3.0]] * 3
    per_figure = [
        {trace.name.split(" · ")[0]: trace.line.color for trace in figures.loss_curves(_history()).data},
        {trace.name: trace.line.color for trace in figures.weights_timeseries(steps, rows, TASKS).data},
        {trace.name: trace.line.color for trace in figures.norm_ratio_timeseries(steps, rows, TASKS).data},
        {
            trace.name: trace.line.color
            for trace in figures.step_loss_curves(steps, dict(zip(TASKS, np.array(rows).T.tolist()))).data
        },
        {trace.legendgroup: trace.line.color for trace in figures.metric_curves(_history(), _meta()).data},
    ]
    for mapping in per_figure:
        assert mapping == colors
    # An explicit palette from the page wins, so a subset of tasks keeps the run's colours.
    subset = figures.weights_timeseries(steps, [[1.0]] * 3, ["gamma"], colors=colors)
    assert subset.data[0].line.color == colors["gamma"]


# -------------------------------------------------------------------------------------- loss curves


def test_loss_curves_traces_styles_and_values() -> None:
    history = _history()
    fig = figures.loss_curves(history)
    assert [trace.name for trace in fig.data] == [
        f"{task} · {kind}" for task in TASKS for kind in ("train", "val")
    ]
    assert all(trace.type == "scatter" for trace in fig.data)
    assert [trace.line.dash for trace in fig.data[:2]] == ["solid", "dash"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert list(fig.data[2].y) == [record["train_loss"]["beta"] for record in history]
    assert list(fig.data[0].x) == [0, 1, 2, 3]
    assert fig.layout.yaxis.type != "log"
    assert fig.layout.xaxis.title.text == "epoch"


def test_loss_curves_log_axis_which_and_sorting() -> None:
    history = list(reversed(_history()))
    fig = figures.loss_curves(history, log_y=True, which=("val",))
    assert fig.layout.yaxis.type == "log"
    assert "log" in fig.layout.yaxis.title.text
    assert len(fig.data) == 3 and all(trace.line.dash == "dash" for trace in fig.data)
    assert list(fig.data[0].x) == [0, 1, 2, 3]


def test_loss_curves_nan_is_a_gap_and_empty_state() -> None:
    history = _history(epochs=2)
    history[1]["train_loss"]["alpha"] = float("nan")
    fig = figures.loss_curves(history)
    assert fig.data[0].y[1] is None
    _assert_empty(figures.loss_curves([]))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"history": [{"epoch": "one", "train_loss": {}}]}, "history[0]['epoch']"),
        ({"history": [{"epoch": 0, "train_loss": [1.0]}]}, "history[0]['train_loss']"),
        ({"history": [{"epoch": 0, "train_loss": {"a": "x"}}]}, "history[0]['train_loss']['a']"),
        ({"history": _history(), "which": ("test",)}, "which"),
        ({"history": _history(), "log_y": "yes"}, "log_y"),
    ],
)
def test_loss_curves_invalid(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"^`{re.escape(name)}`"):
        figures.loss_curves(**kwargs)


# -------------------------------------------------------------------------------- step loss curves


def test_step_loss_curves_downsamples_and_keeps_ends() -> None:
    steps = list(range(5000))
    fig = figures.step_loss_curves(steps, {"a": [1.0 / (s + 1) for s in steps]}, max_points=500, log_y=True)
    assert len(fig.data) == 1
    xs = list(fig.data[0].x)
    assert len(xs) <= 500 and xs[0] == 0 and xs[-1] == 4999
    assert fig.data[0].y[-1] == pytest.approx(1 / 5000)
    assert fig.layout.yaxis.type == "log"


def test_step_loss_curves_ema_smoothing() -> None:
    values = [4.0, 0.0, 2.0, float("nan"), 1.0]
    fig = figures.step_loss_curves([0, 1, 2, 3, 4], {"a": values}, smoothing=0.5)
    raw, smoothed = fig.data
    assert raw.showlegend is False and raw.opacity < 1
    # a gap is NaN in a numpy array (plotly draws it as a gap; lists would be validated per element)
    assert np.array_equal(raw.y, [4.0, 0.0, 2.0, np.nan, 1.0], equal_nan=True)
    # EMA 0.5: 4 → 2 → 2 → (gap keeps 2) → 1.5
    assert list(smoothed.y) == pytest.approx([4.0, 2.0, 2.0, 2.0, 1.5])
    assert "EMA" in fig.layout.yaxis.title.text


def test_step_loss_curves_invalid_and_empty() -> None:
    with pytest.raises(ValueError, match=r"^`losses\['a'\]` must have 3 values, got 2"):
        figures.step_loss_curves([0, 1, 2], {"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="^`smoothing`"):
        figures.step_loss_curves([0], {"a": [1.0]}, smoothing=1.0)
    with pytest.raises(ValueError, match=r"^`steps\[1\]`"):
        figures.step_loss_curves([0, 0.5], {"a": [1.0, 2.0]})
    _assert_empty(figures.step_loss_curves([], {"a": []}))
    _assert_empty(figures.step_loss_curves([0, 1], {"a": []}))
    partial = figures.step_loss_curves([0, 1], {"a": [], "b": [1.0, 0.5]})
    assert [trace.name for trace in partial.data] == ["b"]
    assert partial.data[0].line.color == figures.task_colors(["a", "b"])["b"]
    _assert_empty(figures.step_loss_curves([], {}))


# ----------------------------------------------------------------------------------- metric curves


def _meta() -> dict:
    return {
        "alpha": {"metric": "accuracy", "higher_is_better": True},
        "beta": {"metric": "mse", "higher_is_better": False},
        "gamma": {"metric": "accuracy", "higher_is_better": True},
    }


def test_metric_curves_one_axis_per_metric_kind() -> None:
    fig = figures.metric_curves(_history(), _meta())
    assert len(fig.data) == 3
    axes = {trace.legendgroup: trace.yaxis for trace in fig.data}
    assert axes["alpha"] == axes["gamma"] != axes["beta"]
    assert "accuracy" in fig.layout.yaxis.title.text and "higher is better" in fig.layout.yaxis.title.text
    assert "mse" in fig.layout.yaxis2.title.text and "lower is better" in fig.layout.yaxis2.title.text
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.6, 0.7, 0.8])


def test_metric_curves_invalid_and_empty() -> None:
    meta = _meta()
    del meta["beta"]
    with pytest.raises(ValueError, match=r"^`metrics_meta` must have an entry.*\['beta'\]"):
        figures.metric_curves(_history(), meta)
    with pytest.raises(ValueError, match=r"^`metrics_meta\['alpha'\]`"):
        figures.metric_curves(_history(), {**_meta(), "alpha": {"metric": "acc"}})
    _assert_empty(figures.metric_curves([], {}))


# ------------------------------------------------------------------------------------ comparisons


def test_overlay_curves_one_line_per_run() -> None:
    runs = {"EW": _history(), "PCGrad": _history(epochs=2), "pending": []}
    fig = figures.overlay_curves(runs, "beta", key="val_metric")
    assert [trace.name for trace in fig.data] == ["EW", "PCGrad"]
    assert list(fig.data[1].y) == pytest.approx([0.51, 0.61])
    assert fig.data[0].line.color != fig.data[1].line.color
    assert "val metric" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="^`task`"):
        figures.overlay_curves(runs, "delta")
    with pytest.raises(ValueError, match="^`key`"):
        figures.overlay_curves(runs, "beta", key="loss")
    _assert_empty(figures.overlay_curves({"pending": []}, "beta"))


def _table(group: str = "run") -> pd.DataFrame:
    return pd.DataFrame(
        {
            group: ["EW", "EW", "UPGrad", "UPGrad"],
            "task": ["alpha", "beta", "alpha", "beta"],
            "mean": [1.0, 2.0, 3.0, 4.0],
            "ci_low": [0.5, 1.0, float("nan"), 3.5],
            "ci_high": [1.5, 2.25, float("nan"), 5.0],
        }
    )


@pytest.mark.parametrize("group", ["run", "method"])
def test_compare_bars_grouped_with_error_bars(group: str) -> None:
    fig = figures.compare_bars(_table(group))
    assert fig.layout.barmode == "group"
    assert [trace.type for trace in fig.data] == ["bar", "bar"]
    assert [trace.name for trace in fig.data] == ["EW", "UPGrad"]
    assert list(fig.data[0].x) == ["alpha", "beta"] and list(fig.data[0].y) == [1.0, 2.0]
    assert list(fig.data[0].error_y.array) == [0.5, 0.25]
    assert list(fig.data[0].error_y.arrayminus) == [0.5, 1.0]
    assert list(fig.data[1].error_y.array) == [0.0, 1.0]  # no CI (single seed): no bar
    assert fig.layout.legend.title.text == group


def test_compare_bars_invalid_and_empty() -> None:
    with pytest.raises(ValueError, match="^`table` must have the columns.*ci_high"):
        figures.compare_bars(_table().drop(columns=["ci_high"]))
    with pytest.raises(ValueError, match="^`table` must have a 'run' or 'method'"):
        figures.compare_bars(_table().drop(columns=["run"]))
    bad = _table()
    bad.loc[0, "ci_low"] = 1.2
    with pytest.raises(ValueError, match="^`table` row 0 must have ci_low ≤ mean"):
        figures.compare_bars(bad)
    _assert_empty(figures.compare_bars(_table().iloc[0:0]))


# ----------------------------------------------------------------------------------------- cosines


COSINES = [[1.0, -0.4, 0.2], [-0.4, 1.0, 0.7], [0.2, 0.7, 1.0]]


def test_cosine_heatmap_values_scale_and_hover() -> None:
    fig = figures.cosine_heatmap(COSINES, TASKS, window="probe at step 40")
    (heatmap,) = fig.data
    assert heatmap.type == "heatmap"
    np.testing.assert_allclose(_z(heatmap), COSINES)
    assert (heatmap.zmin, heatmap.zmax, heatmap.zmid) == (-1.0, 1.0, 0.0)
    assert heatmap.colorscale == RDBU
    assert list(heatmap.x) == TASKS and list(heatmap.y) == TASKS
    assert heatmap.text[0][1] == "-0.40"
    assert heatmap.customdata[0][1].startswith("cos(g<sub>alpha</sub>, g<sub>beta</sub>) = -0.400")
    assert fig.layout.title.text == "Gradient cosine similarity — probe at step 40"
    assert fig.layout.yaxis.autorange == "reversed"


@pytest.mark.parametrize(
    ("matrix", "tasks", "message"),
    [
        (
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            ["a", "b"],
            r"^`matrix` must be a square 2 × 2 list.*got shape \(2, 3\)",
        ),
        ([[1.0, 0.0], [0.0, 1.0]], TASKS, r"^`matrix` must be a square 3 × 3 list.*got shape \(2, 2\)"),
        (
            [[1.0, float("nan")], [0.0, 1.0]],
            ["a", "b"],
            r"^`matrix\[0\]\[1\]` must be a finite number, got NaN",
        ),
        ([[1.0, 1.5], [1.5, 1.0]], ["a", "b"], r"^`matrix\[0\]\[1\]` must lie in \[-1.0, 1.0\]"),
        ([[1.0, 0.0], [0.0, 1.0]], ["a", "a"], r"^`tasks` must contain unique names"),
    ],
)
def test_cosine_heatmap_invalid(matrix, tasks, message) -> None:
    with pytest.raises(ValueError, match=message):
        figures.cosine_heatmap(matrix, tasks)


def test_cosine_heatmap_title_names_the_window_of_probes_it_averages() -> None:
    assert figures.cosine_heatmap(COSINES, TASKS).layout.title.text == "Gradient cosine similarity"
    averaged = figures.cosine_heatmap(COSINES, TASKS, window="mean of all 48 probes (steps 5–240)")
    assert averaged.layout.title.text == "Gradient cosine similarity — mean of all 48 probes (steps 5–240)"
    assert figures.cosine_heatmap([], [], window="probe at step 5").layout.title.text.endswith("probe at step 5")
    for bad in ("", "  ", 10, True):
        with pytest.raises(ValueError, match="`window` must be a non-empty string or None"):
            figures.cosine_heatmap(COSINES, TASKS, window=bad)


def test_cosine_heatmap_empty() -> None:
    _assert_empty(figures.cosine_heatmap([], []))


def test_cosine_timeseries_pairs_zero_line_and_conflict_region() -> None:
    second = [[1.0, 0.1, -0.3], [0.1, 1.0, -0.9], [-0.3, -0.9, 1.0]]
    fig = figures.cosine_timeseries([10, 20], [COSINES, second], TASKS)
    assert [trace.name for trace in fig.data] == ["alpha · beta", "alpha · gamma", "beta · gamma"]
    assert list(fig.data[0].x) == [10, 20]
    assert list(fig.data[0].y) == [-0.4, 0.1]
    assert list(fig.data[2].y) == [0.7, -0.9]
    shapes = {shape.type: shape for shape in fig.layout.shapes}
    assert shapes["rect"].y1 == 0 and shapes["rect"].y0 < -1 + 1e-9 and shapes["rect"].fillcolor
    assert shapes["line"].y0 == shapes["line"].y1 == 0
    assert any("conflict" in annotation.text for annotation in fig.layout.annotations)


def test_cosine_timeseries_invalid_and_empty() -> None:
    with pytest.raises(
        ValueError, match=r"^`cosines` must have one entry per step \(len\(steps\) = 2\), got 1"
    ):
        figures.cosine_timeseries([0, 1], [COSINES], TASKS)
    with pytest.raises(ValueError, match=r"^`cosines\[0\]` must be a square 2 × 2"):
        figures.cosine_timeseries([0], [COSINES], ["a", "b"])
    _assert_empty(figures.cosine_timeseries([], [], TASKS))
    _assert_empty(figures.cosine_timeseries([0], [[[1.0]]], ["a"]), "Needs at least two tasks")


def test_probe_series_smoothing_draws_the_ema_over_a_faint_raw_line() -> None:
    steps = list(range(0, 50, 5))
    raw = [0.5, -0.5] * 5
    matrices = [[[1.0, v, 0.0], [v, 1.0, 0.0], [0.0, 0.0, 1.0]] for v in raw]
    fig = figures.cosine_timeseries(steps, matrices, TASKS, smoothing=0.5)
    first_raw, first = fig.data[0], fig.data[1]
    assert first_raw.showlegend is False and first_raw.opacity < 1 and list(first_raw.y) == raw
    expected, state = [], None
    for value in raw:  # s = 0.5·s + 0.5·x, starting at the first value
        state = value if state is None else 0.5 * state + 0.5 * value
        expected.append(state)
    assert first.name == "alpha · beta" and np.allclose(first.y, expected)
    assert "EMA 0.5" in fig.layout.yaxis.title.text
    # task weights: linear EMA; norm ratios: EMA of the logarithms (a geometric mean, symmetric on a log axis)
    weights = figures.weights_timeseries(steps, [[1.0, 2.0, 3.0]] * 10, TASKS, smoothing=0.9)
    assert [t.name for t in weights.data if t.showlegend is not False] == TASKS
    assert np.allclose(weights.data[1].y, 1.0)
    norms = [[10.0, 1.0, 1.0] if i % 2 else [0.1, 1.0, 1.0] for i in range(10)]
    ratio = figures.norm_ratio_timeseries(steps, norms, TASKS, mode="raw", smoothing=0.5)
    smoothed = np.array(ratio.data[1].y, dtype=float)
    assert np.all(smoothed > 0.1) and np.all(smoothed < 10) and abs(np.log10(smoothed[-1])) < 0.5
    for bad in (1.0, -0.1, "x"):
        with pytest.raises(ValueError, match="smoothing"):
            figures.cosine_timeseries(steps, matrices, TASKS, smoothing=bad)


# ------------------------------------------------------------------------------- norms and weights


def test_norm_ratio_timeseries_ratio_to_mean_on_log_axis() -> None:
    norms = [[1.0, 2.0, 3.0], [4.0, 0.0, 2.0]]
    fig = figures.norm_ratio_timeseries([0, 5], norms, TASKS)
    assert fig.layout.yaxis.type == "log"
    assert "mean" in fig.layout.yaxis.title.text
    assert list(fig.data[0].y) == pytest.approx([0.5, 2.0])
    assert np.isnan(fig.data[1].y[1])  # a zero norm cannot sit on a log axis: a gap
    raw = figures.norm_ratio_timeseries([0, 5], norms, TASKS, mode="raw")
    assert list(raw.data[2].y) == [3.0, 2.0]
    assert "mean" not in raw.layout.yaxis.title.text


def test_norm_ratio_timeseries_invalid_and_empty() -> None:
    with pytest.raises(ValueError, match=r"^`norms\[0\]\[1\]` must be ≥ 0"):
        figures.norm_ratio_timeseries([0], [[1.0, -1.0, 1.0]], TASKS)
    with pytest.raises(ValueError, match="^`mode`"):
        figures.norm_ratio_timeseries([0], [[1.0, 1.0, 1.0]], TASKS, mode="max")
    _assert_empty(figures.norm_ratio_timeseries([], [], TASKS))


def test_weights_timeseries() -> None:
    weights = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]
    fig = figures.weights_timeseries([1, 2], weights, TASKS)
    assert [trace.name for trace in fig.data] == TASKS
    assert list(fig.data[2].y) == [0.5, 0.8]
    assert fig.layout.yaxis.title.text == "task weight"
    with pytest.raises(ValueError, match=r"^`weights\[1\]` must have 3 values, got 2"):
        figures.weights_timeseries([1, 2], [[0.2, 0.3, 0.5], [0.5, 0.5]], TASKS)
    with pytest.raises(ValueError, match=r"^`weights\[0\]\[0\]` must be a finite number, got inf"):
        figures.weights_timeseries([1], [[float("inf"), 0.0, 0.0]], TASKS)
    _assert_empty(figures.weights_timeseries([], [], TASKS))


# ---------------------------------------------------------------------------------------- transfer


MEAN = [[None, 0.10, -0.05], [0.02, None, 0.30], [-0.20, 0.01, None]]
LOW = [[None, 0.05, -0.10], [-0.01, None, 0.20], [-0.30, -0.02, None]]
HIGH = [[None, 0.15, 0.00], [0.05, None, 0.40], [-0.10, 0.04, None]]
P = [[None, 0.01, 0.04], [0.50, None, 0.001], [0.049, 0.9, None]]


def test_transfer_heatmap_percent_scale_and_hover() -> None:
    fig = figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS)
    (heatmap,) = fig.data
    z = _z(heatmap)
    assert np.isnan(np.diag(z)).all()
    np.testing.assert_allclose(z[~np.eye(3, dtype=bool)], [10, -5, 2, 30, -20, 1])
    assert heatmap.zmid == 0 and heatmap.zmin == -30 and heatmap.zmax == 30
    assert heatmap.colorscale == RDBU
    assert list(heatmap.y) == TASKS and list(heatmap.x) == TASKS
    hover = heatmap.customdata[0][1]
    assert "transfer(alpha ← beta) = +10.0%" in hover
    assert "95% CI [+5.0%, +15.0%]" in hover and "p = 0.01" in hover
    assert "positive = j helps i" in fig.layout.xaxis.title.text
    assert fig.layout.yaxis.title.text == "target task i"


def _starred(fig: go.Figure) -> set[tuple[int, int]]:
    text = fig.data[0].text
    return {(i, j) for i in range(len(text)) for j in range(len(text)) if text[i][j].endswith("*")}


def _boxed(fig: go.Figure) -> set[tuple[int, int]]:
    return {(round(shape.y0 + 0.5), round(shape.x0 + 0.5)) for shape in fig.layout.shapes if shape.type == "rect"}


def test_transfer_heatmap_marks_exactly_the_significant_cells() -> None:
    # Holm over P's six cells: 0.001 → 0.006, 0.01 → 0.05, 0.04 and 0.049 → 0.16, the rest → 1
    fig = figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS, alpha=0.05)
    assert _starred(fig) == _boxed(fig) == {(1, 2)}
    assert "* = significant after Holm correction over the 6 cells, α = 0.05" in fig.layout.xaxis.title.text
    loose = figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS, alpha=0.1)
    assert _starred(loose) == _boxed(loose) == {(1, 2), (0, 1)}
    strict = figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS, alpha=0.005)
    assert _starred(strict) == set() and len(strict.layout.shapes) == 0
    # given adjusted p-values are used as they are
    given = [[None, 0.01, 0.04], [0.5, None, 0.001], [0.049, 0.9, None]]
    assert _starred(figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS, p_adjusted=given)) == {
        (0, 1), (0, 2), (1, 2), (2, 0)}


def test_transfer_heatmap_stars_by_the_holm_adjusted_p() -> None:
    # Four tasks, twelve cells: a raw p of 0.01 is the smallest of 12 tests, Holm-adjusted 0.12 ≥ 0.05.
    tasks = ["a", "b", "c", "d"]
    mean = [[None if i == j else 0.05 for j in range(4)] for i in range(4)]
    p = [[None if i == j else 0.5 for j in range(4)] for i in range(4)]
    p[0][1] = 0.01
    fig = figures.transfer_heatmap(mean, None, None, p, tasks)
    assert _starred(fig) == set() and len(fig.layout.shapes) == 0
    hover = fig.data[0].customdata[0][1]
    assert "p = 0.01" in hover and "Holm-adjusted p = 0.12 (not significant at α = 0.05 over 12 cells)" in hover
    assert "over the 12 cells" in fig.layout.xaxis.title.text
    p[0][1] = 0.001  # adjusted 0.012: starred, and only that cell
    fig = figures.transfer_heatmap(mean, None, None, p, tasks)
    assert _starred(fig) == _boxed(fig) == {(0, 1)}
    assert "Holm-adjusted p = 0.012 (significant" in fig.data[0].customdata[0][1]
    # one seed: no p-value anywhere, no test, no star
    single = figures.transfer_heatmap(mean, None, None, None, tasks)
    assert _starred(single) == set() and "no significance test" in single.layout.xaxis.title.text


def test_transfer_heatmap_order_and_missing_cells() -> None:
    order = [2, 0, 1]
    fig = figures.transfer_heatmap(MEAN, LOW, HIGH, P, TASKS, order=order)
    heatmap = fig.data[0]
    assert list(heatmap.x) == ["gamma", "alpha", "beta"] == list(heatmap.y)
    expected = np.array([[math.nan if v is None else v * 100 for v in row] for row in MEAN])[
        np.ix_(order, order)
    ]
    np.testing.assert_allclose(_z(heatmap), expected)
    assert "transfer(gamma ← alpha)" in heatmap.customdata[0][1]
    # A pair not measured yet, without CI / p, is a blank cell and not an error.
    partial = figures.transfer_heatmap([[None, None], [0.1, None]], None, None, None, ["a", "b"], scale=1.0)
    assert partial.data[0].text[0][1] == "" and partial.data[0].text[1][0] == "+0.1%"
    assert len(partial.layout.shapes) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"p_value": [[None, 1.5, 0], [0, None, 0], [0, 0, None]]},
            r"^`p_value\[0\]\[1\]` must lie in \[0.0, 1.0\]",
        ),
        (
            {"p_adjusted": [[None, -0.1, 0], [0, None, 0], [0, 0, None]]},
            r"^`p_adjusted\[0\]\[1\]` must lie in \[0.0, 1.0\]",
        ),
        ({"mean": [[None, 0.1], [0.1, None]]}, r"^`mean` must be a square 3 × 3 list"),
        (
            {"ci_low": [[None, float("inf"), 0], [0, None, 0], [0, 0, None]]},
            r"^`ci_low\[0\]\[1\]` must be a finite",
        ),
        ({"alpha": 1.5}, "^`alpha` must lie in"),
        ({"order": [0, 0, 1]}, r"^`order` must be a permutation of 0..2"),
        ({"tasks": ["a", "b"]}, r"^`mean` must be a square 2 × 2 list"),
    ],
)
def test_transfer_heatmap_invalid(kwargs: dict, message: str) -> None:
    arguments = {"mean": MEAN, "ci_low": LOW, "ci_high": HIGH, "p_value": P, "tasks": TASKS, **kwargs}
    with pytest.raises(ValueError, match=message):
        figures.transfer_heatmap(**arguments)


def test_transfer_heatmap_empty() -> None:
    _assert_empty(figures.transfer_heatmap([], [], [], [], []))


# ------------------------------------------------------------------------------- affinity and order


AFFINITY = [[0.9, 0.02, -0.01], [0.03, 0.8, -0.04], [0.00, -0.02, 0.7]]


def test_affinity_heatmap_diverging_without_diagonal() -> None:
    fig = figures.affinity_heatmap(AFFINITY, TASKS)
    (heatmap,) = fig.data
    z = _z(heatmap)
    assert np.isnan(np.diag(z)).all()
    assert z[1, 2] == -0.04
    assert heatmap.zmid == 0 and heatmap.zmin == -0.04 and heatmap.zmax == 0.04
    assert heatmap.colorscale == RDBU
    assert heatmap.customdata[0][1].startswith("Z(alpha → beta) = 0.02")
    shown = figures.affinity_heatmap(AFFINITY, TASKS, order=[1, 2, 0], show_diagonal=True)
    assert list(shown.data[0].y) == ["beta", "gamma", "alpha"]
    assert _z(shown.data[0])[0, 0] == 0.8
    assert shown.data[0].zmax == 0.04  # the colour range ignores the self-affinity diagonal


def test_affinity_heatmap_invalid_and_empty() -> None:
    with pytest.raises(ValueError, match=r"^`matrix\[0\]\[1\]` must be a finite number, got inf"):
        figures.affinity_heatmap([[None, float("inf")], [0.1, None]], ["a", "b"])
    with pytest.raises(ValueError, match=r"^`matrix` must be a square 2 × 2 list"):
        figures.affinity_heatmap(AFFINITY, ["a", "b"])
    blank = figures.affinity_heatmap([[None, float("nan")], [0.1, None]], ["a", "b"])
    assert blank.data[0].text[0][1] == "" and blank.data[0].customdata[0][1] == "Z(a → b) = n/a"
    _assert_empty(figures.affinity_heatmap([], []))


def _planted_blocks(size: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    groups = np.arange(size) % 2  # tasks 0, 2, 4 vs 1, 3, 5: interleaved on purpose
    scores = np.where(groups[:, None] == groups[None, :], 0.3, -0.2) + rng.normal(0, 0.03, (size, size))
    return scores


def _contiguous_blocks(order: list[int], size: int) -> bool:
    labels = [index % 2 for index in order]
    return labels == sorted(labels) or labels == sorted(labels, reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_order_recovers_planted_blocks(seed: int) -> None:
    scores = _planted_blocks(seed=seed)
    order = figures.cluster_order(scores.tolist())
    assert sorted(order) == list(range(6))
    assert _contiguous_blocks(order, 6)


def test_cluster_order_handles_none_asymmetry_and_small_inputs() -> None:
    scores = _planted_blocks(size=8, seed=3).astype(object)
    for index in range(8):
        scores[index, index] = None
    scores[0, 2] = None  # one direction missing: the other one is used
    scores[3, 5] = scores[5, 3] = None  # both missing: the average score fills in
    scores[1] = [value if value is None else value * 2 for value in scores[1]]  # asymmetric rows
    order = figures.cluster_order(scores.tolist())
    assert sorted(order) == list(range(8)) and _contiguous_blocks(order, 8)
    assert figures.cluster_order([]) == []
    assert figures.cluster_order([[None]]) == [0]
    assert figures.cluster_order([[None, 0.3], [-0.1, None]]) == [0, 1]
    assert figures.cluster_order([[None] * 3] * 3) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"^`matrix` must be a square T × T list, got shape \(2, 3\)"):
        figures.cluster_order([[0, 1, 2], [1, 0, 2]])


def test_cluster_order_feeds_the_heatmaps() -> None:
    scores = _planted_blocks(seed=4)
    names = [f"t{i}" for i in range(6)]
    order = figures.cluster_order(scores.tolist())
    fig = figures.affinity_heatmap(scores.tolist(), names, order=order)
    assert list(fig.data[0].x) == [names[index] for index in order]


# --------------------------------------------------------------------------------------- groupings


def test_groupings_figure_bars_per_group_with_scores() -> None:
    groups = [["alpha", "gamma"], ["beta", "gamma"]]
    scores = {"alpha": 0.4, "beta": 0.7, "gamma": 0.9}
    fig = figures.groupings_figure(groups, scores)
    assert [trace.type for trace in fig.data] == ["bar", "bar"]
    assert fig.data[0].name == "group 1: alpha, gamma"
    assert [list(level) for level in fig.data[1].x] == [["group 2", "group 2"], ["beta", "gamma"]]
    assert list(fig.data[1].y) == [0.7, 0.9]
    assert fig.data[0].marker.color != fig.data[1].marker.color
    assert fig.layout.yaxis.title.text == "predicted score"
    plain = figures.groupings_figure(groups)
    assert list(plain.data[0].y) == [1.0, 1.0] and plain.layout.yaxis.visible is False


def test_groupings_figure_invalid_and_empty() -> None:
    with pytest.raises(
        ValueError, match=r"^`scores` must have a score for every grouped task, missing \['beta'\]"
    ):
        figures.groupings_figure([["alpha"], ["beta"]], {"alpha": 1.0})
    with pytest.raises(ValueError, match=r"^`groups\[1\]` must name at least one task"):
        figures.groupings_figure([["alpha"], []])
    with pytest.raises(ValueError, match=r"^`groups\[0\]` must contain unique names"):
        figures.groupings_figure([["alpha", "alpha"]])
    _assert_empty(figures.groupings_figure([]), "No grouping yet")


def test_measured_vs_predicted_scatter_with_identity_line() -> None:
    predicted = {"alpha": 0.2, "beta": 0.5, "gamma": 0.8}
    measured = {"alpha": 0.25, "gamma": 0.7}
    fig = figures.measured_vs_predicted(predicted, measured)
    line, points = fig.data
    assert line.mode == "lines" and list(line.x) == list(line.y)
    assert line.x[0] <= 0.2 and line.x[1] >= 0.8
    assert list(points.text) == ["alpha", "gamma"]
    assert list(points.x) == [0.2, 0.8] and list(points.y) == [0.25, 0.7]
    colors = figures.task_colors(list(predicted))
    assert list(points.marker.color) == [colors["alpha"], colors["gamma"]]
    assert fig.layout.yaxis.scaleanchor == "x"
    full = figures.measured_vs_predicted(predicted, {"alpha": 0.2, "beta": 0.6, "gamma": 0.9})
    assert "Pearson r = " in full.layout.title.text


def test_measured_vs_predicted_invalid_and_empty() -> None:
    with pytest.raises(
        ValueError, match=r"^`measured` must only have tasks that are in `predicted`, got extra \['x'\]"
    ):
        figures.measured_vs_predicted({"a": 1.0}, {"x": 1.0})
    with pytest.raises(ValueError, match=r"^`predicted\['a'\]` must be a finite number, got NaN"):
        figures.measured_vs_predicted({"a": float("nan")}, {"a": 1.0})
    _assert_empty(figures.measured_vs_predicted({"a": 1.0}, {}), "No measurements yet")


# ------------------------------------------------------------------------------------- playground


def test_gradient_arrows_2d_arrows_conflict_region_and_hover() -> None:
    gradients = [[1.0, 0.0], [-0.5, 1.0]]
    outputs = {"mean": [0.25, 0.5], "UPGrad": [0.3, 0.9]}
    fig = figures.gradient_arrows(gradients, outputs)
    regions = [trace for trace in fig.data if trace.fill == "toself"]
    arrows = [trace for trace in fig.data if trace.fill != "toself"]
    assert len(regions) == 2 and sum(bool(trace.showlegend) for trace in regions) == 1
    # the legend lists the gradients first; they are drawn last, on top of the thick method arrows
    assert [t.name for t in sorted(arrows, key=lambda t: t.legendrank)] == ["g₁", "g₂", "mean", "UPGrad"]
    assert [trace.name for trace in arrows] == ["mean", "UPGrad", "g₁", "g₂"]
    arrows = sorted(arrows, key=lambda t: t.legendrank)
    assert list(arrows[0].x) == [0.0, 1.0] and list(arrows[0].y) == [0.0, 0.0]
    assert list(arrows[3].x) == [0.0, 0.3] and list(arrows[3].y) == [0.0, 0.9]
    assert arrows[0].marker.symbol == "arrow" and arrows[0].marker.angleref == "previous"
    assert len({trace.line.color for trace in arrows}) == 4
    assert arrows[2].line.width > arrows[0].line.width
    # Each shaded polygon is the half-plane that conflicts with its gradient.
    for region, gradient in zip(regions, gradients):
        vertices = np.column_stack([region.x, region.y])
        assert (vertices @ np.array(gradient) <= 1e-9).all()
        assert np.ptp(vertices[:, 0]) > 0 and np.ptp(vertices[:, 1]) > 0
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert list(fig.layout.xaxis.range) == list(fig.layout.yaxis.range)
    hover = arrows[2].customdata[1]
    assert "cos(d, g₁) = +0.447" in hover and "angle 63.4°" in hover
    assert "conflict" in arrows[1].customdata[1]  # g₂ · g₁ < 0


def test_gradient_arrows_3d_uses_lines_and_cones() -> None:
    fig = figures.gradient_arrows(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], {"mean": [1 / 3] * 3}, names=["a", "b", "c"]
    )
    types = [trace.type for trace in fig.data]
    assert types.count("scatter3d") == 4 and types.count("cone") == 4 and types.count("mesh3d") == 3
    lines = [trace for trace in fig.data if trace.type == "scatter3d"]
    assert [trace.name for trace in lines] == ["a", "b", "c", "mean"]
    assert list(lines[3].z) == pytest.approx([0.0, 1 / 3])
    assert fig.layout.scene.aspectmode == "cube"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ([[1.0, 0.0], [1.0, 0.0, 0.0]], {}),
            r"^`gradients\[1\]` must be a 2-D vector like gradients\[0\], got 3 values",
        ),
        (([[1.0, 0.0, 0.0, 0.0]], {}), r"^`gradients\[0\]` must be a 2-D or 3-D vector, got 4 values"),
        (([[1.0, 0.0]], {"mean": [1.0, 0.0, 0.0]}), r"^`outputs\['mean'\]` must have 2 values, got 3"),
        (([[1.0, float("nan")]], {}), r"^`gradients\[0\]\[1\]` must be a finite number, got NaN"),
        (([[1.0, 0.0]], {}, ["a", "b"]), r"^`names` must have 1 names, got 2"),
    ],
)
def test_gradient_arrows_invalid(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        figures.gradient_arrows(*args)


def test_gradient_arrows_empty() -> None:
    _assert_empty(figures.gradient_arrows([], {}))


# ----------------------------------------------------------------------------------- architectures


def test_gate_heatmap() -> None:
    weights = {"alpha": [0.7, 0.2, 0.1], "beta": [0.1, 0.1, 0.8]}
    fig = figures.gate_heatmap(weights, ["shared 1", "shared 2", "alpha 1"])
    (heatmap,) = fig.data
    np.testing.assert_allclose(_z(heatmap), [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert list(heatmap.y) == ["alpha", "beta"] and list(heatmap.x) == ["shared 1", "shared 2", "alpha 1"]
    assert heatmap.zmin == 0 and heatmap.zmax == 1
    assert heatmap.customdata[1][2] == "gate(beta → alpha 1) = 0.800"
    with pytest.raises(ValueError, match=r"^`weights\['beta'\]` must have 3 values, got 2"):
        figures.gate_heatmap({"alpha": [0.5, 0.3, 0.2], "beta": [0.5, 0.5]}, ["e1", "e2", "e3"])
    with pytest.raises(ValueError, match=r"^`weights\['alpha'\]\[1\]` must be ≥ 0"):
        figures.gate_heatmap({"alpha": [1.5, -0.5]}, ["e1", "e2"])
    _assert_empty(figures.gate_heatmap({}, []))


def test_small_affinities_read_in_the_colour_bars_unit() -> None:
    matrix = [[0.0, -2.26e-5, 1e-5], [3e-5, 0.0, -1e-6], [2e-6, 4e-6, 0.0]]
    trace = figures.affinity_heatmap(matrix, ["a", "b", "c"]).data[0]
    assert trace.colorbar.title.text == "affinity Z (×10⁻⁵)"
    assert trace.text[0][1] == "-2.26" and trace.zmax == pytest.approx(3.0)
    assert "-2.26e-05" in str(trace.customdata[0][1] if trace.customdata is not None else trace.hovertemplate)
    plain = figures.affinity_heatmap([[0.0, 0.2], [-0.1, 0.0]], ["a", "b"]).data[0]
    assert plain.colorbar.title.text == "affinity Z" and plain.text[0][1] == "0.2"
