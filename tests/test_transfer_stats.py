"""Transfer statistics: signs, CI and p-values against closed forms and scipy, zero spread, NaNs, Δm %."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from mtl_core.analysis import (
    delta_m,
    holm_adjust,
    nan_to_none,
    relative_change,
    summarize_seeds,
    transfer_matrix,
)


def test_relative_change_is_positive_when_better() -> None:
    # lower is better (MSE): 0.8 instead of 1.0 is a 20 % improvement
    assert relative_change(0.8, 1.0, higher_is_better=False) == pytest.approx(0.2)
    assert relative_change(1.2, 1.0, higher_is_better=False) == pytest.approx(-0.2)
    # higher is better (accuracy)
    assert relative_change(0.9, 0.75, higher_is_better=True) == pytest.approx(0.2)
    assert relative_change(0.6, 0.75, higher_is_better=True) == pytest.approx(-0.2)
    # a zero or missing baseline gives NaN, not inf
    out = relative_change([1.0, 1.0, math.nan], [0.0, math.nan, 1.0], higher_is_better=False)
    assert np.isnan(out).all()


def test_summary_matches_t_distribution_and_scipy() -> None:
    values = [0.10, 0.04, 0.13, 0.07]
    summary = summarize_seeds(values)
    n, mean, sd = len(values), float(np.mean(values)), float(np.std(values, ddof=1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert summary.mean == pytest.approx(mean)
    assert summary.ci_low == pytest.approx(mean - half)
    assert summary.ci_high == pytest.approx(mean + half)
    assert summary.p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue)
    assert summary.n == 4
    # the CI excludes 0 exactly when p < 0.05
    assert (summary.ci_low > 0) == (summary.p_value < 0.05)


def test_paired_test_equals_scipy_ttest_rel_for_a_fixed_baseline() -> None:
    alone = np.array([2.0, 2.0, 2.0, 2.0, 2.0])
    pair = np.array([1.7, 1.9, 1.6, 1.8, 1.75])
    matrix = transfer_matrix(["a", "b"], {"a": alone, "b": alone}, {("a", "b"): pair, ("b", "a"): alone},
                             {"a": False, "b": False})
    assert matrix.p_value[0, 1] == pytest.approx(stats.ttest_rel(pair, alone).pvalue)
    assert matrix.mean[0, 1] == pytest.approx(float(np.mean((alone - pair) / alone)))


def test_identical_runs_are_not_significant() -> None:
    alone = {"a": [1.0, 0.8, 1.3], "b": [0.5, 0.6, 0.4]}
    # the pair runs reproduce the alone runs exactly in every seed: zero change, zero spread
    pairs = {("a", "b"): [1.0, 0.8, 1.3], ("b", "a"): [0.5, 0.6, 0.4]}
    matrix = transfer_matrix(["a", "b"], alone, pairs, {"a": False, "b": False})
    assert matrix.mean[0, 1] == 0.0 and matrix.mean[1, 0] == 0.0
    assert matrix.p_value[0, 1] == 1.0 and matrix.p_value[1, 0] == 1.0
    assert not matrix.significant().any()
    assert matrix.ci_low[0, 1] == matrix.ci_high[0, 1] == 0.0


def test_zero_spread_is_not_significant_even_when_nonzero() -> None:
    # every seed gives exactly the same result: no estimate of the spread, so no evidence
    summary = summarize_seeds([0.25, 0.25, 0.25])
    assert summary.mean == pytest.approx(0.25)
    assert summary.p_value == 1.0
    assert summary.ci_low == summary.ci_high == pytest.approx(0.25)


def test_consistent_transfer_is_significant_and_oriented_row_from_column() -> None:
    rng = np.random.default_rng(0)
    alone_a = 1.0 + 0.1 * rng.random(5)
    alone_b = 1.0 + 0.1 * rng.random(5)
    # b helps a by ~30 %; a does nothing for b (noise only)
    pairs = {("a", "b"): alone_a * (0.7 + 0.01 * rng.standard_normal(5)),
             ("b", "a"): alone_b * (1.0 + 0.05 * rng.standard_normal(5))}
    matrix = transfer_matrix(["a", "b"], {"a": alone_a, "b": alone_b}, pairs, {"a": False, "b": False})
    assert matrix.mean[0, 1] == pytest.approx(0.3, abs=0.02)
    assert matrix.p_value[0, 1] < 1e-4
    assert matrix.significant()[0, 1] and not matrix.significant()[1, 0]
    assert np.isnan(matrix.mean[0, 0]) and np.isnan(matrix.p_value[1, 1])
    assert matrix.n[0, 1] == 5 and matrix.n[0, 0] == 0


def test_nan_seeds_are_dropped() -> None:
    alone = {"a": [1.0, 1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0, 1.0]}
    pairs = {("a", "b"): [0.9, math.nan, 0.8, 0.85], ("b", "a"): [math.nan, math.nan, math.nan, 1.1]}
    matrix = transfer_matrix(["a", "b"], alone, pairs, {"a": False, "b": False})
    assert matrix.n[0, 1] == 3
    assert matrix.mean[0, 1] == pytest.approx(np.mean([0.1, 0.2, 0.15]))
    # one usable seed: a mean but no CI and no p-value
    assert matrix.n[1, 0] == 1 and matrix.mean[1, 0] == pytest.approx(-0.1)
    assert np.isnan(matrix.ci_low[1, 0]) and np.isnan(matrix.p_value[1, 0])
    # everything NaN
    empty = summarize_seeds([math.nan, math.nan])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_values_keyed_by_seed() -> None:
    alone = {"a": {3: 1.0, 4: 2.0}, "b": {3: 1.0, 4: 1.0}}
    pairs = {("a", "b"): {4: 1.0, 3: 0.5}}  # order of the keys does not matter
    matrix = transfer_matrix(["a", "b"], alone, pairs, {"a": False, "b": False}, seeds=[3, 4])
    assert matrix.mean[0, 1] == pytest.approx(0.5)
    assert np.isnan(matrix.mean[1, 0])  # no pair record for b ← a
    with pytest.raises(ValueError, match="seeds"):
        transfer_matrix(["a", "b"], alone, pairs, {"a": False, "b": False})


def test_delta_m_closed_form_with_mixed_directions() -> None:
    # task "acc": higher is better, +10 % and +20 %; task "mse": lower is better, −10 % (worse) and +30 %
    multi = {"acc": [0.55, 0.6], "mse": [1.1, 0.7]}
    single = {"acc": [0.5, 0.5], "mse": [1.0, 1.0]}
    result = delta_m(multi, single, {"acc": True, "mse": False})
    per_seed = [100 * (0.1 - 0.1) / 2, 100 * (0.2 + 0.3) / 2]
    assert result.values == pytest.approx(tuple(per_seed))
    assert result.mean == pytest.approx(np.mean(per_seed))
    assert result.n == 2
    with pytest.raises(ValueError, match="baseline"):
        delta_m({"x": [1.0]}, {}, {"x": True})


def test_json_round_trip_has_no_nan() -> None:
    matrix = transfer_matrix(["a", "b"], {"a": [1.0, 1.1], "b": [1.0, 0.9]},
                             {("a", "b"): [0.9, 1.0], ("b", "a"): [1.0, 0.95]}, {"a": False, "b": False})
    text = json.dumps(matrix.to_dict(), allow_nan=False)
    loaded = json.loads(text)
    assert loaded["mean"][0][0] is None and loaded["p_value"][1][1] is None
    assert loaded["p_adjusted"][0][0] is None and loaded["p_adjusted"][0][1] >= loaded["p_value"][0][1]
    assert isinstance(loaded["mean"][0][1], float)
    assert nan_to_none({"x": [math.inf, 1.0, np.float64("nan")]}) == {"x": [None, 1.0, None]}
    with pytest.raises(ValueError, match="confidence"):
        summarize_seeds([1.0, 2.0], confidence=1.5)


# --- Holm's correction over the cells ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, max(1·0.04, 0.06)
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.02], [0.02]),  # one test: nothing to correct
        ([0.5, 0.6, 0.01], [1.0, 1.0, 0.03]),  # capped at 1
        ([0.01, 0.01], [0.02, 0.02]),  # ties get the same value
        ([0.01, math.nan, 0.04], [0.02, math.nan, 0.04]),  # NaN is not a test: m = 2
    ],
)
def test_holm_adjust_closed_forms(p: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(holm_adjust(p), expected, equal_nan=True)


def test_holm_adjust_is_monotone_bounded_and_keeps_the_shape() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=(5, 5))
    np.fill_diagonal(p, math.nan)
    adjusted = holm_adjust(p)
    assert adjusted.shape == (5, 5) and np.isnan(np.diag(adjusted)).all()
    off = ~np.eye(5, dtype=bool)
    assert (adjusted[off] >= p[off]).all() and (adjusted[off] <= 1.0).all()
    order = np.argsort(p[off])
    assert (np.diff(adjusted[off][order]) >= 0).all()  # a smaller p never gets a larger adjusted p
    assert holm_adjust([]).shape == (0,) and np.isnan(holm_adjust([math.nan])).all()
    with pytest.raises(ValueError, match="`p_values` must lie in"):
        holm_adjust([0.5, 1.5])


def test_significance_is_holm_corrected_over_the_cells() -> None:
    # three tasks, six cells; transfer +10/12/14 % in cell (0, 1): t = 10.4, two-sided p ≈ 0.009
    alone = {t: [1.0, 1.0, 1.0] for t in "abc"}
    pairs = {(i, j): [1.0, 1.0, 1.0] for i in "abc" for j in "abc" if i != j}
    pairs[("a", "b")] = [1.10, 1.12, 1.14]
    higher = dict.fromkeys("abc", True)
    matrix = transfer_matrix("abc", alone, pairs, higher)
    raw = matrix.p_value[0, 1]
    assert raw == pytest.approx(stats.ttest_1samp([0.10, 0.12, 0.14], 0.0).pvalue)
    assert matrix.p_adjusted[0, 1] == pytest.approx(6 * raw)  # the smallest of 6 tests: × 6
    assert matrix.p_adjusted[1, 0] == 1.0 and np.isnan(matrix.p_adjusted[0, 0])
    assert matrix.significant(adjusted=False)[0, 1]  # raw p ≈ 0.009 < 0.05 …
    assert not matrix.significant().any()  # … but 6 × 0.009 ≈ 0.055 is not, after Holm
    assert matrix.significant(alpha=0.1)[0, 1]
