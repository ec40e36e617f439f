"""The early forecast of transfer: pair scores, Spearman's ρ over pairs, the accumulation of probes, the
forecast's shape, and a small real planted study whose forecast ends where its final matrices are."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_core.analysis.forecast import (
    forecast_sentence,
    groups_ceiling,
    pair_scores,
    pair_spearman,
    running_mean,
    step_grid,
    transfer_forecast,
)
from mtl_core.config import TrainConfig
from mtl_core.runs.executors import SerialExecutor
from mtl_core.studies.study import StudySpec, run_study

#: transfer[i][j] = transfer(i ← j) over 4 tasks: pairs ranked (0,1) > (2,3) > (0,2) > (1,3) > (0,3) > (1,2).
TRANSFER = [
    [None, 0.30, 0.02, -0.10],
    [0.20, None, -0.30, -0.02],
    [0.00, -0.30, None, 0.10],
    [-0.10, -0.04, 0.20, None],
]


def test_a_pair_scores_the_mean_of_its_two_directions_and_missing_cells_drop_it() -> None:
    scores = pair_scores(TRANSFER)
    assert scores[(0, 1)] == pytest.approx(0.25) and scores[(1, 2)] == pytest.approx(-0.30)
    assert len(scores) == 6
    # the direction convention does not matter: a transposed matrix ranks the same pairs the same
    transposed = np.array([[math.nan if v is None else v for v in row] for row in TRANSFER]).T
    assert pair_scores(transposed) == pytest.approx(scores)
    holed = [row[:] for row in TRANSFER]
    holed[2][3] = None
    assert (2, 3) not in pair_scores(holed) and len(pair_scores(holed)) == 5


def test_spearman_over_pairs_is_one_for_the_same_order_and_none_below_three_pairs() -> None:
    same_order = np.array([[math.nan if v is None else 10 * v ** 3 for v in row] for row in TRANSFER])
    assert pair_spearman(same_order, TRANSFER) == pytest.approx(1.0)
    assert pair_spearman(-same_order, TRANSFER) == pytest.approx(-1.0)
    assert pair_spearman([[1.0, 0.5], [0.5, 1.0]], [[None, 0.1], [0.2, None]]) is None  # one pair
    assert pair_spearman(np.ones((4, 4)), TRANSFER) is None  # a constant ranking
    with pytest.raises(ValueError, match="same tasks"):
        pair_spearman(np.ones((3, 3)), TRANSFER)
    with pytest.raises(ValueError, match="square"):
        pair_spearman([[1.0, 2.0]], TRANSFER)


def test_running_mean_ignores_nan_cells_and_merges_records_of_one_step() -> None:
    records = [(5, [[1.0, math.nan], [2.0, 1.0]]), (5, [[3.0, math.nan], [4.0, 1.0]]), (9, [[5.0, 2.0], [6.0, 1.0]])]
    out = running_mean(records)
    assert [step for step, _ in out] == [5, 9]
    np.testing.assert_allclose(out[0][1], [[2.0, math.nan], [3.0, 1.0]])
    np.testing.assert_allclose(out[1][1], [[3.0, 2.0], [4.0, 1.0]])


def test_step_grid_thins_to_at_most_the_points_asked_and_keeps_both_ends() -> None:
    assert step_grid([3, 1, 2, 2]) == [1, 2, 3]
    grid = step_grid(list(range(1, 1001)), max_points=50)
    assert len(grid) <= 50 and grid[0] == 1 and grid[-1] == 1000 and grid == sorted(grid)


def test_forecast_follows_the_signal_and_marks_the_first_step_reaching_the_threshold() -> None:
    truth = np.array([[math.nan if v is None else v for v in row] for row in TRANSFER])
    noise = np.array([[0, -1, 1, 0], [1, 0, 1, -1], [-1, 1, 0, 1], [0, 1, -1, 0]], dtype=float)
    # one run whose accumulated affinity moves from the wrong order to the right one
    run = [(step, (1 - weight) * noise + weight * truth) for step, weight in ((10, 0.0), (20, 0.5), (30, 1.0))]
    # the cosine of two runs: the second starts later and stops earlier
    first = [(10, truth), (40, truth)]
    second = [(25, -truth)]
    result = transfer_forecast({"affinity": [run], "cosine": [first, second], "missing": [[]]}, TRANSFER, 40)
    assert set(result) == {"steps", "signals", "reached", "threshold", "total_steps"}
    assert result["steps"] == [10, 20, 25, 30, 40] and result["total_steps"] == 40 and result["threshold"] == 0.8
    assert set(result["signals"]) == set(result["reached"]) == {"affinity", "cosine"}  # a signal without data is absent
    affinity = result["signals"]["affinity"]
    assert affinity[0] < 0.8 and affinity[-1] == pytest.approx(1.0)
    assert result["reached"]["affinity"] == next(s for s, r in zip(result["steps"], affinity) if r >= 0.8)
    cosine = result["signals"]["cosine"]
    assert cosine[:2] == [pytest.approx(1.0)] * 2 and result["reached"]["cosine"] == 10
    # from step 25 the second run's opposite ranking averages the signal to nothing: ρ is undefined
    assert cosine[2] is None
    never = transfer_forecast({"cosine": [[(5, -truth)]]}, TRANSFER, 5)
    assert never["reached"] == {"cosine": None} and never["signals"]["cosine"] == [pytest.approx(-1.0)]
    for bad, match in ((-1, "total_steps"), (2.5, "total_steps")):
        with pytest.raises(ValueError, match=match):
            transfer_forecast({}, TRANSFER, bad)


#: Four planted tasks (6 pairs), two groups; small enough that the whole study takes seconds.
SMALL = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 4, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    batch_size=32,
    lr=0.05,
)


def test_a_study_with_tag_and_probes_forecasts_and_ends_at_its_final_matrices() -> None:
    study = run_study(StudySpec(SMALL, seeds=(0,), tag=True, probe_interval=1, max_epochs=12, patience=3),
                      SerialExecutor())
    assert study["n_failed"] == 0
    forecast = study["forecast"]
    assert set(forecast) == {"steps", "signals", "reached", "threshold", "total_steps", "planted_ceiling"}
    assert forecast["planted_ceiling"] == groups_ceiling(study["planted_groups"], study["tasks"], study["transfer"]["mean"])
    assert set(forecast["signals"]) == set(forecast["reached"]) == {"affinity", "cosine"}
    steps = forecast["steps"]
    assert steps == sorted(set(steps)) and 2 <= len(steps) <= 50
    (all_run,) = [row for row in study["runs"] if row["role"] == "all"]
    assert forecast["total_steps"] == steps[-1] > 0
    assert all_run["stopped_epoch"] >= 1
    for name, curve in forecast["signals"].items():
        assert len(curve) == len(steps)
        assert all(rho is None or -1.0 - 1e-9 <= rho <= 1.0 + 1e-9 for rho in curve)
        reached = forecast["reached"][name]
        assert reached is None or (reached in steps and curve[steps.index(reached)] >= 0.8)
        # the last point is the study's own final matrix against the final transfer
        final = pair_spearman(study[name], study["transfer"]["mean"])
        assert curve[-1] == pytest.approx(final, abs=1e-9) if final is not None else curve[-1] is None
    assert "forecast" in study["conventions"]


def test_a_study_without_tag_or_probes_has_no_forecast() -> None:
    study = run_study(StudySpec(SMALL.replace(suite_options={"n_tasks": 2, "n_groups": 1, "n_samples": 60, "dim": 6}),
                                seeds=(0,), max_epochs=2), SerialExecutor())
    assert study["forecast"] is None


def test_forecast_figure_draws_a_line_per_signal_the_threshold_and_where_it_is_reached() -> None:
    from mtl_core import figures

    forecast = {"steps": [30, 60, 90, 120], "signals": {"affinity": [0.1, 0.5, 0.85, 0.9],
                                                         "cosine": [None, 0.2, 0.4, 0.6]},
                "reached": {"affinity": 90, "cosine": None}, "threshold": 0.8, "total_steps": 120}
    fig = figures.forecast_figure(forecast)
    lines = [trace for trace in fig.data if trace.showlegend is not False]
    assert [trace.name for trace in lines] == ["TAG affinity: ρ ≥ 0.8 first at step 90 (75 % of training)",
                                               "mean gradient cosine: ρ ≥ 0.8 never reached"]
    assert list(lines[1].y) == [None, 0.2, 0.4, 0.6]  # an undefined ρ leaves a gap
    (star,) = [trace for trace in fig.data if trace.showlegend is False]
    assert list(star.x) == [90] and list(star.y) == [0.85]
    (threshold,) = fig.layout.shapes
    assert threshold.y0 == threshold.y1 == 0.8 and threshold.line.dash == "dash"
    assert "No forecast" in figures.forecast_figure(None).layout.annotations[0].text
    with pytest.raises(ValueError, match="one value per step"):
        figures.forecast_figure({**forecast, "signals": {"affinity": [0.1]}})
    with pytest.raises(ValueError, match="`forecast` must be a dict"):
        figures.forecast_figure([1, 2])  # type: ignore[arg-type]


def test_forecast_sentence_names_each_signal_s_first_step_or_never_and_its_last_rho() -> None:
    forecast = {"steps": [30, 60, 90, 120], "signals": {"affinity": [0.1, 0.5, 0.85, 0.7],
                                                         "cosine": [None, 0.2, 0.4, None]},
                "reached": {"affinity": 90, "cosine": None}, "threshold": 0.8, "total_steps": 120}
    assert forecast_sentence(forecast) == (
        "Ranking the task pairs as the final pairwise transfer does (Spearman ρ) over 120 training steps: "
        "TAG affinity first reaches ρ ≥ 0.8 at step 90 (75 % of training), ρ = +0.70 at the end; "
        "mean gradient cosine never reaches ρ ≥ 0.8, ρ = +0.40 at the end.")
    early = {**forecast, "signals": {"cosine": [None] * 4}, "reached": {"cosine": None}}
    assert "mean gradient cosine has too few task pairs measured for a ρ yet" in forecast_sentence(early)


def test_the_planted_groups_ceiling_is_the_rho_of_the_groups_themselves() -> None:
    """Two groups {a, b}, {c, d}; transfer ranks the pairs ab > cd > ac > ad > bc > bd. The groups score
    1, 1, 0, 0, 0, 0 (ranks 5.5, 5.5, 2.5 ×4) against ranks 6 … 1: ρ = 12 / √(12 · 17.5)."""
    score = {("a", "b"): 0.3, ("c", "d"): 0.2, ("a", "c"): -0.1, ("a", "d"): -0.2, ("b", "c"): -0.3, ("b", "d"): -0.4}
    tasks = ["a", "b", "c", "d"]
    transfer = [[None if x == y else score.get((x, y), score.get((y, x))) for y in tasks] for x in tasks]
    assert groups_ceiling([["a", "b"], ["c", "d"]], tasks, transfer) == pytest.approx(12 / math.sqrt(210))
    assert groups_ceiling([["a", "b", "c", "d"]], tasks, transfer) is None  # one group: a constant ranking
    with pytest.raises(ValueError, match="`groups` must place every task, got none for d"):
        groups_ceiling([["a", "b"], ["c"]], tasks, transfer)


def test_the_sentence_and_the_figure_show_the_planted_groups_ceiling() -> None:
    from mtl_core import figures

    forecast = {"steps": [30, 60], "signals": {"affinity": [0.5, 0.7]}, "reached": {"affinity": None},
                "threshold": 0.8, "total_steps": 60, "planted_ceiling": 0.75}
    assert forecast_sentence(forecast).endswith(
        "The planted groups themselves rank the pairs with ρ = +0.75: inside and across the groups the measured "
        "transfer orders its pairs by noise, so that is about the most a signal that finds the groups can reach "
        "— ρ ≥ 0.8 is out of its reach here.")
    assert forecast_sentence({**forecast, "planted_ceiling": 0.9}).endswith("can reach.")
    threshold, ceiling = figures.forecast_figure(forecast).layout.shapes
    assert ceiling.y0 == ceiling.y1 == 0.75 and ceiling.line.dash == "dot"
    # each label on its line's outer side, so that two close lines never cross each other's label
    for value, (threshold_side, ceiling_side) in ((0.75, ("bottom", "top")), (0.83, ("top", "bottom"))):
        labels = figures.forecast_figure({**forecast, "planted_ceiling": value}).layout.annotations
        assert [(a.text, a.yanchor) for a in labels] == [("ρ = 0.8", threshold_side),
                                                         (f"planted groups: ρ = {value:.2f}", ceiling_side)]
