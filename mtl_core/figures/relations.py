"""Task relationships: pairwise transfer (Standley et al. 2020), TAG inter-task affinity (Fifty et al.
2021), block ordering, task groupings and how well groupings were predicted."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from mtl_core.analysis.forecast import FORECAST_SIGNALS
from mtl_core.analysis.grouping import rank_agreement
from mtl_core.analysis.transfer import holm_adjust
from mtl_core.figures._common import (
    DIVERGING_SCALE,
    as_matrix,
    as_number,
    check_colors,
    check_labels,
    check_order,
    check_tasks,
    empty_figure,
    finish_layout,
    is_empty,
    matrix_heatmap,
    plot_text,
    series_colors,
    symmetric_limit,
)

__all__ = [
    "transfer_heatmap",
    "affinity_heatmap",
    "cluster_order",
    "groupings_figure",
    "measured_vs_predicted",
    "forecast_figure",
]

Matrix = Sequence[Sequence[float | None]]


def _reorder(matrix: np.ndarray, order: list[int]) -> np.ndarray:
    return matrix[np.ix_(order, order)]


def _optional_matrix(value: Matrix | None, name: str, size: int, **bounds: float) -> np.ndarray:
    if value is None:
        return np.full((size, size), math.nan)
    return as_matrix(value, name, size=size, allow_missing=True, **bounds)


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}%"


def transfer_heatmap(
    mean: Matrix,
    ci_low: Matrix | None,
    ci_high: Matrix | None,
    p_value: Matrix | None,
    tasks: Sequence[str],
    alpha: float = 0.05,
    order: Sequence[int] | None = None,
    *,
    p_adjusted: Matrix | None = None,
    scale: float = 100.0,
    title: str = "Pairwise transfer",
) -> go.Figure:
    """Pairwise transfer (Standley et al. 2020) as a T × T heatmap: row i = target task, column j =
    partner, cell = transfer(i ← j), the relative change of i's validation metric when trained with j
    instead of alone (positive = j helps i), shown in percent.

    The colour scale is red-blue centred on 0 with a symmetric range ±max|value|. A study tests every
    off-diagonal cell, so significance is corrected for their number: cells whose Holm-adjusted p
    (``p_adjusted``; computed from ``p_value`` with Holm's step-down method over the cells with a
    p-value when not given) is below ``alpha`` get a ``*`` and a black border, and the x-axis title
    says so. The hover shows the 95 % CI, the raw p and the Holm-adjusted p. The diagonal and pairs
    not measured yet (``None`` / NaN) stay blank. ``order`` (a permutation, e.g. from
    :func:`cluster_order`) reorders rows and columns together. ``scale`` converts the inputs to
    percent: 100 for fractions (default), 1 when they already are percentages.
    """
    if is_empty(mean):
        return empty_figure(title)
    alpha = as_number(alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie in (0, 1), got {alpha}")
    scale = as_number(scale, "scale")
    if scale <= 0:
        raise ValueError(f"`scale` must be > 0, got {scale}")
    tasks = check_tasks(tasks)
    order = check_order(order, len(tasks))
    cells = _TransferCells.checked(mean, ci_low, ci_high, p_value, p_adjusted, size=len(tasks), scale=scale)
    n_tests = int(np.isfinite(cells.adjusted).sum())
    cells = cells.reordered(order)
    labels = [plot_text(tasks[k]) for k in order]
    significant = np.isfinite(cells.values) & np.isfinite(cells.adjusted) & (cells.adjusted < alpha)
    text = [
        [
            "" if math.isnan(value) else _percent(value) + ("*" if star else "")
            for value, star in zip(row, stars)
        ]
        for row, stars in zip(cells.values, significant)
    ]
    test = f"at α = {alpha:g} over {n_tests} cells"
    hover = [
        [_transfer_hover(cells, labels, i, j, bool(significant[i, j]), test) for j in range(len(labels))]
        for i in range(len(labels))
    ]
    limit = symmetric_limit(cells.values)
    fig = matrix_heatmap(
        cells.values,
        x_labels=labels,
        y_labels=labels,
        text=text,
        hover=hover,
        colorscale=DIVERGING_SCALE,
        zmin=-limit,
        zmax=limit,
        zmid=0.0,
        colorbar_title="transfer %",
        title=title,
        x_title="partner task j (positive = j helps i)<br>" + _significance_note(n_tests, alpha),
        y_title="target task i",
    )
    _outline_cells(fig, significant, labels)
    return fig


class _TransferCells(NamedTuple):
    """The matrices behind a transfer heatmap: transfer and its 95 % CI in percent, raw and
    Holm-adjusted p-values; NaN where unknown and on the diagonal (except the CI's)."""

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p: np.ndarray
    adjusted: np.ndarray

    @classmethod
    def checked(
        cls,
        mean: Matrix,
        ci_low: Matrix | None,
        ci_high: Matrix | None,
        p_value: Matrix | None,
        p_adjusted: Matrix | None,
        *,
        size: int,
        scale: float,
    ) -> _TransferCells:
        """Validated ``size`` × ``size`` matrices; ``adjusted`` is Holm's over ``p`` when not given."""
        values = as_matrix(mean, "mean", size=size, allow_missing=True) * scale
        low = _optional_matrix(ci_low, "ci_low", size) * scale
        high = _optional_matrix(ci_high, "ci_high", size) * scale
        p = _optional_matrix(p_value, "p_value", size, low=0.0, high=1.0)
        np.fill_diagonal(p, math.nan)
        if p_adjusted is None:
            adjusted = holm_adjust(p)
        else:
            adjusted = _optional_matrix(p_adjusted, "p_adjusted", size, low=0.0, high=1.0)
            np.fill_diagonal(adjusted, math.nan)
        np.fill_diagonal(values, math.nan)
        return cls(values, low, high, p, adjusted)

    def reordered(self, order: list[int]) -> _TransferCells:
        """Rows and columns of every matrix permuted together by ``order``."""
        return _TransferCells(*(_reorder(matrix, order) for matrix in self))


def _transfer_hover(
    cells: _TransferCells, labels: list[str], i: int, j: int, significant: bool, test: str
) -> str:
    """Cell (i, j)'s hover: transfer, CI, raw and Holm-adjusted p (``test`` names α and the cell count)."""
    target, partner = labels[i], labels[j]
    if i == j:
        return f"{target}: no transfer with itself"
    lines = [f"transfer({target} ← {partner}) = {_percent(cells.values[i, j])}"]
    if not (math.isnan(cells.low[i, j]) or math.isnan(cells.high[i, j])):
        lines.append(f"95% CI [{_percent(cells.low[i, j])}, {_percent(cells.high[i, j])}]")
    if not math.isnan(cells.p[i, j]):
        lines.append(f"p = {cells.p[i, j]:.3g}")
    if not math.isnan(cells.adjusted[i, j]):
        verdict = "significant" if significant else "not significant"
        lines.append(f"Holm-adjusted p = {cells.adjusted[i, j]:.3g} ({verdict} {test})")
    lines.append(f"positive = {partner} helps {target}")
    return "<br>".join(lines)


def _outline_cells(fig: go.Figure, significant: np.ndarray, labels: list[str]) -> None:
    """A black border around every significant cell (row i, column j)."""
    for i, j in zip(*np.nonzero(significant)):
        fig.add_shape(
            type="rect",
            x0=j - 0.5,
            x1=j + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            xref="x",
            yref="y",
            line={"color": "black", "width": 2},
            name=f"significant {labels[i]} ← {labels[j]}",
        )


def _significance_note(n_cells: int, alpha: float = 0.05) -> str:
    """What a star on the transfer heatmap means, for its axis title and the page's caption."""
    if n_cells == 0:
        return "no significance test yet (it needs two or more seeds per cell)"
    return f"* = significant after Holm correction over the {n_cells} cells, α = {alpha:g}"


def affinity_heatmap(
    matrix: Matrix,
    tasks: Sequence[str],
    order: Sequence[int] | None = None,
    *,
    show_diagonal: bool = False,
    title: str = "Inter-task affinity (TAG)",
) -> go.Figure:
    """TAG inter-task affinity (Fifty et al. 2021): row i, column j = Z_{i→j} = 1 − Lⱼ(θ'ₛ)/Lⱼ(θₛ) after a
    lookahead step on task i alone; positive = a step on i lowers j's loss. Red-blue centred on 0,
    symmetric range from the off-diagonal cells. The self-affinity diagonal is hidden unless
    ``show_diagonal`` (it would dominate the colour range); cells with no value (``None`` / NaN, e.g.
    a zero loss) stay blank."""
    if is_empty(matrix):
        return empty_figure(title)
    tasks = check_tasks(tasks)
    size = len(tasks)
    order = check_order(order, size)
    values = as_matrix(matrix, "matrix", size=size, allow_missing=True)
    off_diagonal = values.copy()
    np.fill_diagonal(off_diagonal, math.nan)
    limit = symmetric_limit(off_diagonal)
    if not show_diagonal:
        values = off_diagonal
    values = _reorder(values, order)
    labels = [plot_text(tasks[k]) for k in order]
    # Small affinities (one step of a small learning rate) are shown as multiples of a power of ten named
    # in the colour bar's title, so the cells read "−2.26", not "−2.26e-05", in the colour bar's unit.
    exponent = math.floor(math.log10(limit)) if math.isfinite(limit) and 0 < limit < 1e-2 else 0
    shown_scale = 10.0 ** -exponent
    text = [["" if math.isnan(value) else f"{value * shown_scale:.3g}" for value in row] for row in values]
    hover = [
        [
            f"Z({labels[i]} → {labels[j]}) = "
            + (
                "n/a"
                if math.isnan(values[i, j])
                else f"{values[i, j]:.4g}<br>a step on {labels[i]} "
                + ("lowers" if values[i, j] >= 0 else "raises")
                + f" {labels[j]}'s loss by {abs(values[i, j]) * 100:.2g}%"
            )
            for j in range(size)
        ]
        for i in range(size)
    ]
    return matrix_heatmap(
        values * shown_scale,
        x_labels=labels,
        y_labels=labels,
        text=text,
        hover=hover,
        colorscale=DIVERGING_SCALE,
        zmin=-limit * shown_scale,
        zmax=limit * shown_scale,
        zmid=0.0,
        colorbar_title="affinity Z" + (f" (×10{_superscript(exponent)})" if exponent else ""),
        title=title,
        x_title="affected task j (positive = a step on i helps j)",
        y_title="stepped task i",
    )


def _superscript(exponent: int) -> str:
    """``-5`` → ``⁻⁵``."""
    return str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def cluster_order(matrix: Matrix) -> list[int]:
    """An ordering of the tasks that puts related tasks next to each other, so that blocks show.

    ``matrix`` is a T × T score where higher means more related (transfer, affinity, cosine); it is
    symmetrised (the mean of both directions, or the one that exists), pairs with no score get the
    average score, and similarity is turned into a distance ``max − score``. Average-linkage
    hierarchical clustering with optimal leaf ordering (``scipy.cluster.hierarchy``) gives the order.
    T ≤ 2, or a matrix without structure, keeps the given order.
    """
    if is_empty(matrix):
        return []
    scores = as_matrix(matrix, "matrix", allow_missing=True)
    size = len(scores)
    if size <= 2:
        return list(range(size))
    transposed = scores.T
    symmetric = np.where(
        np.isnan(scores), transposed, np.where(np.isnan(transposed), scores, (scores + transposed) / 2)
    )
    off_diagonal = ~np.eye(size, dtype=bool)
    known = symmetric[off_diagonal & np.isfinite(symmetric)]
    if known.size == 0:
        return list(range(size))
    symmetric = np.where(np.isfinite(symmetric), symmetric, known.mean())
    distance = symmetric[off_diagonal].max() - symmetric
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(np.clip(distance, 0.0, None), checks=False)
    if np.allclose(condensed, condensed[0]):
        return list(range(size))
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return [int(index) for index in leaves_list(tree)]


def _check_groups(groups: object) -> list[list[str]]:
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise ValueError(f"`groups` must be a list of task lists, got {type(groups).__name__}")
    checked = []
    for index, group in enumerate(groups):
        members = check_labels(group, f"groups[{index}]")
        if not members:
            raise ValueError(f"`groups[{index}]` must name at least one task, got an empty group")
        checked.append(members)
    return checked


def groupings_figure(
    groups: Sequence[Sequence[str]],
    scores: Mapping[str, float] | None = None,
    *,
    score_label: str = "predicted score",
    title: str = "Task groups",
) -> go.Figure:
    """A partition (or cover) of the tasks into groups: one bar per task, bars gathered and coloured by
    group; the bar height is the task's (predicted) score when ``scores`` is given. A task in several
    groups (TAG groupings may overlap) gets a bar in each."""
    groups = _check_groups(groups)
    if not groups:
        return empty_figure(title, "No grouping yet")
    members = list(dict.fromkeys(task for group in groups for task in group))
    values: dict[str, float] = {}
    if scores is not None:
        if not isinstance(scores, Mapping):
            raise ValueError(f"`scores` must be a dict task → number, got {type(scores).__name__}")
        missing = [task for task in members if task not in scores]
        if missing:
            raise ValueError(f"`scores` must have a score for every grouped task, missing {missing}")
        values = {task: as_number(scores[task], f"scores['{task}']") for task in members}
    labels = [f"group {index + 1}" for index in range(len(groups))]
    palette = series_colors(labels)
    score_label = plot_text(score_label)
    fig = go.Figure()
    for label, group in zip(labels, groups):
        heights = [values[task] for task in group] if values else [1.0] * len(group)
        shown = [plot_text(task) for task in group]
        fig.add_trace(
            go.Bar(
                x=[[label] * len(group), shown],
                y=heights,
                name=f"{label}: {', '.join(shown)}",
                marker={"color": palette[label]},
                text=[f"{values[task]:.3g}" for task in group] if values else shown,
                textposition="auto",
                hovertemplate=(
                    f"{label}<br>%{{x}}<br>{score_label}: %{{y:.4g}}<extra></extra>"
                    if values
                    else f"{label}<br>%{{x}}<extra></extra>"
                ),
            )
        )
    finish_layout(
        fig,
        title=title,
        x_title="group / task",
        y_title=score_label if values else None,
        legend_title="group",
    )
    if not values:
        fig.update_yaxes(visible=False)
    return fig


def measured_vs_predicted(
    predicted: Mapping[str, float],
    measured: Mapping[str, float],
    *,
    label: str = "score",
    predicted_label: str | None = None,
    colors: Mapping[str, str] | None = None,
    title: str = "Measured vs predicted",
) -> go.Figure:
    """Scatter of measured against predicted values per task, with the y = x line of a perfect
    prediction. Tasks predicted but not measured yet are left out; a measured task must have a
    prediction. The title reports Pearson's r when there are ≥ 3 points.

    ``predicted_label``: the predictions are in another unit than the measurements (``label``), e.g.
    a gradient cosine against a relative change: each axis is scaled and named on its own, there is
    no y = x line and the title reports Spearman's rank correlation (only orders are comparable)."""
    for name, mapping in (("predicted", predicted), ("measured", measured)):
        if not isinstance(mapping, Mapping):
            raise ValueError(f"`{name}` must be a dict task → number, got {type(mapping).__name__}")
    unknown = [task for task in measured if task not in predicted]
    if unknown:
        raise ValueError(f"`measured` must only have tasks that are in `predicted`, got extra {unknown}")
    tasks = [task for task in predicted if task in measured]
    x = [as_number(predicted[task], f"predicted['{task}']") for task in tasks]
    y = [as_number(measured[task], f"measured['{task}']") for task in tasks]
    if not tasks:
        return empty_figure(title, "No measurements yet")
    palette = check_colors(colors, list(predicted))
    if len(tasks) >= 3 and np.std(x) > 0 and np.std(y) > 0 and predicted_label is None:
        title = f"{title} (Pearson r = {np.corrcoef(x, y)[0, 1]:.2f})"
    elif len(tasks) >= 3 and np.std(x) > 0 and np.std(y) > 0:
        title = f"{title} (Spearman ρ = {rank_agreement(dict(zip(tasks, x)), dict(zip(tasks, y))).spearman:.2f})"
    low, high = min(x + y), max(x + y)
    pad = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.1
    bounds = [low - pad, high + pad]
    fig = go.Figure()
    if predicted_label is None:
        fig.add_trace(
            go.Scatter(
                x=bounds,
                y=bounds,
                mode="lines",
                name="y = x (perfect prediction)",
                line={"color": "#888888", "dash": "dash"},
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            name="tasks",
            showlegend=False,
            text=[plot_text(task) for task in tasks],
            textposition="top center",
            marker={
                "size": 11,
                "color": [palette[task] for task in tasks],
                "line": {"color": "white", "width": 1},
            },
            customdata=[measured_value - predicted_value for predicted_value, measured_value in zip(x, y)],
            hovertemplate="%{text}<br>predicted %{x:.4g}<br>measured %{y:.4g}"
            + ("<br>error %{customdata:+.3g}" if predicted_label is None else "") + "<extra></extra>",
        )
    )
    x_label = plot_text(label if predicted_label is None else predicted_label)
    label = plot_text(label)
    finish_layout(fig, title=title, x_title=f"predicted {x_label}", y_title=f"measured {label}")
    if predicted_label is None:  # one unit: equal scales, so that the diagonal is y = x
        fig.update_xaxes(range=bounds, constrain="domain")
        fig.update_yaxes(range=bounds, scaleanchor="x", scaleratio=1, constrain="domain")
    else:  # two units: each axis on its own, with room for the points' labels
        fig.update_xaxes(range=_padded(x, 0.08))
        fig.update_yaxes(range=_padded(y, 0.15))
    return fig


def _padded(values: list[float], share: float) -> list[float]:
    low, high = min(values), max(values)
    pad = share * (high - low) if high > low else max(abs(high), 1.0) * 0.1
    return [low - pad, high + pad]


def _reached_text(name: str, step: int | None, threshold: float, total_steps: int) -> str:
    """A forecast curve's legend entry: "TAG affinity: ρ ≥ 0.8 first at step 120 (25 % of training)"."""
    if step is None:
        return f"{name}: ρ ≥ {threshold:g} never reached"
    share = f" ({100 * step / total_steps:.0f} % of training)" if total_steps > 0 else ""
    return f"{name}: ρ ≥ {threshold:g} first at step {step}{share}"


def forecast_figure(
    forecast: Mapping[str, object] | None,
    *,
    title: str = "Early forecast: do the cheap signals rank the pairs as transfer does?",
) -> go.Figure:
    """The early forecast of transfer (:func:`mtl_core.analysis.forecast.transfer_forecast`, a study's
    ``forecast``): per cheap signal, Spearman's ρ between its pair ranking accumulated up to each step
    and the final pairwise transfer ranking, over the training steps; a dashed line at the threshold, and
    each signal's first step reaching it marked and named in the legend ("never reached" when it does
    not); on a world with planted groups a dotted line at the groups' own ρ (``planted_ceiling``).
    Undefined ρ (fewer than 3 pairs, a constant ranking) leaves a gap."""
    if forecast is not None and not isinstance(forecast, Mapping):
        raise ValueError(f"`forecast` must be a dict, got {type(forecast).__name__}")
    if not forecast or not forecast.get("steps") or not forecast.get("signals"):
        return empty_figure(title, "No forecast: the study has no TAG affinity or gradient probes")
    steps = [int(as_number(step, "forecast['steps']")) for step in forecast["steps"]]
    signals = forecast["signals"]
    reached = forecast.get("reached") or {}
    if not isinstance(signals, Mapping) or not isinstance(reached, Mapping):
        raise ValueError("`forecast['signals']` and `forecast['reached']` must be dicts signal → values")
    threshold = as_number(forecast.get("threshold", 0.8), "forecast['threshold']")
    total = forecast.get("total_steps") or 0
    total_steps = int(as_number(total, "forecast['total_steps']"))
    names = {key: FORECAST_SIGNALS.get(str(key), plot_text(str(key))) for key in signals}
    colors = series_colors(list(names.values()))
    fig = go.Figure()
    ceiling = forecast.get("planted_ceiling")
    ceiling = None if ceiling is None else as_number(ceiling, "forecast['planted_ceiling']")
    # Each line's label on its outer side (the upper line's above it, the lower one's below), so that two
    # close lines never cross each other's label.
    ceiling_above = ceiling is not None and ceiling > threshold
    fig.add_hline(y=threshold, line={"color": "#888888", "dash": "dash"}, annotation_text=f"ρ = {threshold:g}",
                  annotation_position="bottom right" if ceiling_above else "top right")
    if ceiling is not None:
        fig.add_hline(y=ceiling, line={"color": "#555555", "dash": "dot"},
                      annotation_text=f"planted groups: ρ = {ceiling:.2f}",
                      annotation_position="top left" if ceiling_above else "bottom left")
    for key, values in signals.items():
        if not isinstance(values, Sequence) or len(values) != len(steps):
            raise ValueError(f"`forecast['signals']['{key}']` must have one value per step ({len(steps)}), "
                             f"got {values!r}")
        rho = [as_number(value, f"forecast['signals']['{key}']", allow_missing=True) for value in values]
        step = reached.get(key)
        step = None if step is None else int(as_number(step, f"forecast['reached']['{key}']"))
        color = colors[names[key]]
        share = [100 * s / total_steps if total_steps > 0 else None for s in steps]
        fig.add_trace(go.Scatter(
            x=steps, y=[None if math.isnan(r) else r for r in rho], mode="lines+markers",
            name=_reached_text(names[key], step, threshold, total_steps),
            line={"color": color, "width": 2}, marker={"size": 5, "color": color}, customdata=share,
            hovertemplate=f"{names[key]}<br>step %{{x}}"
                          + (" (%{customdata:.0f} % of training)" if total_steps > 0 else "")
                          + "<br>ρ = %{y:.2f}<extra></extra>",
        ))
        if step is not None and step in steps:
            fig.add_trace(go.Scatter(
                x=[step], y=[rho[steps.index(step)]], mode="markers", showlegend=False,
                marker={"size": 14, "symbol": "star", "color": color, "line": {"color": "white", "width": 1}},
                hovertemplate=f"{names[key]} first reaches ρ ≥ {threshold:g} at step %{{x}}<extra></extra>",
            ))
    finish_layout(fig, title=title, x_title="training step of the all-tasks run(s)",
                  y_title="Spearman ρ with the final transfer ranking", hovermode="closest")
    fig.update_yaxes(range=[-1.05, 1.05])
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0.0})
    return fig
