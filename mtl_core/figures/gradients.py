"""Gradient probes: cosine similarity of task gradients, gradient norms and task weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from mtl_core.figures._common import (
    CONFLICT_FILL,
    DIVERGING_SCALE,
    as_matrix,
    as_number,
    as_steps,
    as_vector,
    check_colors,
    check_tasks,
    ema,
    empty_figure,
    finish_layout,
    is_empty,
    matrix_heatmap,
    plot_text,
    series_colors,
)

__all__ = ["cosine_heatmap", "cosine_timeseries", "norm_ratio_timeseries", "weights_timeseries"]

Matrix = Sequence[Sequence[float | None]]


def cosine_heatmap(
    matrix: Matrix,
    tasks: Sequence[str],
    title: str = "Gradient cosine similarity",
    window: str | None = None,
) -> go.Figure:
    """T × T cosine similarity of the task gradients on the shared parameters, coloured on a fixed
    [-1, 1] red-blue scale centred on 0 (red = conflicting gradients), values written in the cells.
    ``window`` says in the title which probes ``matrix`` comes from ("mean of all 48 probes (steps
    5–240)"): one probe is one mini-batch, and which part of training is averaged changes the picture."""
    if window is not None:
        if not isinstance(window, str) or not window.strip():
            raise ValueError(f"`window` must be a non-empty string or None, got {window!r}")
        title = f"{title} — {plot_text(window)}"
    if is_empty(matrix):
        return empty_figure(title)
    tasks = check_tasks(tasks)
    cosines = as_matrix(matrix, "matrix", size=len(tasks), allow_missing_diagonal=True, low=-1.0, high=1.0)
    cosines = np.clip(cosines, -1.0, 1.0)
    size = len(tasks)
    tasks = [plot_text(task) for task in tasks]
    text = [
        ["" if np.isnan(cosines[i, j]) else f"{cosines[i, j]:.2f}" for j in range(size)] for i in range(size)
    ]
    hover = [
        [
            f"cos(g<sub>{tasks[i]}</sub>, g<sub>{tasks[j]}</sub>) = "
            + ("n/a" if np.isnan(cosines[i, j]) else f"{cosines[i, j]:.3f}")
            + (" (conflict)" if cosines[i, j] < 0 else "")
            for j in range(size)
        ]
        for i in range(size)
    ]
    return matrix_heatmap(
        cosines,
        x_labels=tasks,
        y_labels=tasks,
        text=text,
        hover=hover,
        colorscale=DIVERGING_SCALE,
        zmin=-1.0,
        zmax=1.0,
        zmid=0.0,
        colorbar_title="cosine",
        title=title,
        x_title="task j",
        y_title="task i",
    )


def _check_series(steps: Sequence[int], series: Sequence[object], name: str) -> np.ndarray:
    step_array = as_steps(steps)
    if isinstance(series, str) or not isinstance(series, Sequence):
        raise ValueError(f"`{name}` must be a list with one entry per step, got {type(series).__name__}")
    if len(series) != len(step_array):
        raise ValueError(
            f"`{name}` must have one entry per step (len(steps) = {len(step_array)}), got {len(series)}"
        )
    return step_array


def _check_smoothing(smoothing: Any) -> float:
    smoothing = as_number(smoothing, "smoothing")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"`smoothing` must lie in [0, 1), got {smoothing}")
    return smoothing


def _smoothed(values: np.ndarray, smoothing: float, log: bool = False) -> np.ndarray:
    """The EMA of ``values`` (NaN gaps carried over); on a log axis the EMA of the logarithms, so a
    ratio of 10 and one of 0.1 average to 1 rather than to 5."""
    if smoothing <= 0:
        return values
    if not log:
        return ema(values, smoothing)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
    return np.exp(ema(logs, smoothing))


def _add_series(
    fig: go.Figure,
    x: np.ndarray,
    values: np.ndarray,
    *,
    name: str,
    color: str,
    hover: str,
    smoothing: float,
    log: bool = False,
    customdata: list[float] | None = None,
) -> None:
    """One line per series: with ``smoothing`` > 0 the EMA drawn over a faint raw line (single probe
    steps are noisy: one mini-batch each), otherwise the raw values."""

    def clean(array: np.ndarray) -> np.ndarray:
        # numpy with NaN gaps rather than lists with None: plotly validates lists element by element
        array = np.asarray(array, dtype=float)
        with np.errstate(invalid="ignore"):
            keep = np.isfinite(array) & (array > 0) if log else np.isfinite(array)
        return np.where(keep, array, np.nan)

    if smoothing > 0:
        fig.add_trace(
            go.Scatter(
                x=x, y=clean(values), mode="lines", name=f"{name} (raw)", legendgroup=name, showlegend=False,
                opacity=0.3, line={"color": color, "width": 1}, hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=clean(_smoothed(values, smoothing, log)),
            mode="lines+markers" if len(x) < 60 and smoothing <= 0 else "lines",
            name=name,
            legendgroup=name,
            line={"color": color, "width": 2 if smoothing > 0 else 1.5},
            marker={"size": 4},
            customdata=customdata,
            hovertemplate=hover,
        )
    )


def cosine_timeseries(
    steps: Sequence[int],
    cosines: Sequence[Matrix],
    tasks: Sequence[str],
    *,
    smoothing: float = 0.0,
    title: str = "Gradient cosine per task pair",
) -> go.Figure:
    """One line per task pair (i < j) of cos(gᵢ, gⱼ) over steps, with the conflict region (cos < 0)
    shaded and a zero line. ``smoothing`` in [0, 1): EMA factor (0 = raw), drawn over the raw line."""
    smoothing = _check_smoothing(smoothing)
    step_array = _check_series(steps, cosines, "cosines")
    if len(step_array) == 0:
        return empty_figure(title)
    tasks = check_tasks(tasks)
    if len(tasks) < 2:
        return empty_figure(title, "Needs at least two tasks")
    matrices = np.stack(
        [
            as_matrix(matrix, f"cosines[{index}]", size=len(tasks), allow_missing=True, low=-1.0, high=1.0)
            for index, matrix in enumerate(cosines)
        ]
    )
    pairs = list(combinations(range(len(tasks)), 2))
    labels = [f"{tasks[i]} · {tasks[j]}" for i, j in pairs]
    palette = series_colors(labels)
    shown = [plot_text(task) for task in tasks]
    fig = go.Figure()
    x = step_array
    for (i, j), label in zip(pairs, labels):
        _add_series(
            fig, x, np.clip(matrices[:, i, j], -1.0, 1.0), name=plot_text(label), color=palette[label],
            smoothing=smoothing,
            hover=(f"cos(g<sub>{shown[i]}</sub>, g<sub>{shown[j]}</sub>)"
                   f"{' (EMA)' if smoothing > 0 else ''} = %{{y:.3f}}<extra></extra>"),
        )
    fig.add_hrect(
        y0=-1.05,
        y1=0.0,
        fillcolor=CONFLICT_FILL,
        line_width=0,
        layer="below",
        annotation_text="conflict (cos < 0)",
        annotation_position="bottom left",
    )
    fig.add_hline(y=0.0, line={"color": "#555555", "width": 1, "dash": "dot"})
    finish_layout(
        fig,
        title=title,
        x_title="step",
        y_title="cos(gᵢ, gⱼ)" + (f" (EMA {smoothing:g})" if smoothing > 0 else ""),
        hovermode="x unified",
        legend_title="task pair",
    )
    fig.update_yaxes(range=[-1.05, 1.05])
    return fig


def _vectors_over_time(values: Sequence[Sequence[float]], name: str, size: int) -> np.ndarray:
    return np.stack(
        [
            as_vector(row, f"{name}[{index}]", length=size, allow_missing=True)
            for index, row in enumerate(values)
        ]
    )


def norm_ratio_timeseries(
    steps: Sequence[int],
    norms: Sequence[Sequence[float]],
    tasks: Sequence[str],
    *,
    mode: Literal["ratio", "raw"] = "ratio",
    smoothing: float = 0.0,
    colors: Mapping[str, str] | None = None,
    title: str = "Gradient norms per task",
) -> go.Figure:
    """Per-task gradient norms over steps on a log axis.

    ``mode="ratio"`` (default) plots ‖gᵢ‖ / meanⱼ ‖gⱼ‖ — 1 means the task pulls with average strength,
    10 means it dominates the update; ``mode="raw"`` plots ‖gᵢ‖ itself. The y-axis title says which.
    Zero norms cannot sit on a log axis and show as gaps. ``smoothing`` in [0, 1): EMA factor of the
    logarithms (0 = raw), drawn over the raw line.
    """
    smoothing = _check_smoothing(smoothing)
    if mode not in ("ratio", "raw"):
        raise ValueError(f"`mode` must be 'ratio' or 'raw', got {mode!r}")
    step_array = _check_series(steps, norms, "norms")
    if len(step_array) == 0:
        return empty_figure(title)
    tasks = check_tasks(tasks)
    raw = _vectors_over_time(norms, "norms", len(tasks))
    if np.any(raw < 0):
        step_index, task_index = np.argwhere(raw < 0)[0]
        raise ValueError(
            f"`norms[{step_index}][{task_index}]` must be ≥ 0, got {raw[step_index, task_index]}"
        )
    if mode == "ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = raw / np.nanmean(raw, axis=1, keepdims=True)
        y_title = "‖gᵢ‖ / meanⱼ ‖gⱼ‖ (log scale)"
    else:
        shown = raw
        y_title = "‖gᵢ‖ (log scale)"
    if smoothing > 0:
        y_title = y_title.replace(" (log scale)", f" (EMA {smoothing:g}, log scale)")
    palette = check_colors(colors, tasks)
    fig = go.Figure()
    x = step_array
    ema_note = " (EMA)" if smoothing > 0 else ""
    for index, task in enumerate(tasks):
        name = plot_text(task)
        _add_series(
            fig, x, shown[:, index], name=name, color=palette[task], smoothing=smoothing, log=True,
            customdata=raw[:, index].tolist(),
            hover=(
                f"{name}: ratio{ema_note} %{{y:.3g}} (‖g‖ = %{{customdata:.3g}})<extra></extra>"
                if mode == "ratio"
                else f"{name}: ‖g‖{ema_note} = %{{y:.3g}}<extra></extra>"
            ),
        )
    if mode == "ratio":
        fig.add_hline(y=1.0, line={"color": "#555555", "width": 1, "dash": "dot"})
        # Annotations on a log axis take log10 coordinates: y=0 is a ratio of 1.
        fig.add_annotation(
            text="mean",
            x=1.0,
            xref="paper",
            y=0.0,
            yref="y",
            showarrow=False,
            xanchor="right",
            yanchor="bottom",
        )
    finish_layout(
        fig, title=title, x_title="step", y_title=y_title, hovermode="x unified", legend_title="task"
    )
    fig.update_yaxes(type="log")
    return fig


def weights_timeseries(
    steps: Sequence[int],
    weights: Sequence[Sequence[float]],
    tasks: Sequence[str],
    *,
    smoothing: float = 0.0,
    colors: Mapping[str, str] | None = None,
    title: str = "Task weights",
) -> go.Figure:
    """The balancing method's task weights (or αᵢ) over steps, one line per task. ``smoothing`` in
    [0, 1): EMA factor (0 = raw), drawn over the raw line."""
    smoothing = _check_smoothing(smoothing)
    step_array = _check_series(steps, weights, "weights")
    if len(step_array) == 0:
        return empty_figure(title)
    tasks = check_tasks(tasks)
    values = _vectors_over_time(weights, "weights", len(tasks))
    palette = check_colors(colors, tasks)
    fig = go.Figure()
    x = step_array
    for index, task in enumerate(tasks):
        name = plot_text(task)
        _add_series(
            fig, x, values[:, index], name=name, color=palette[task], smoothing=smoothing,
            hover=f"{name}: weight{' (EMA)' if smoothing > 0 else ''} %{{y:.4g}}<extra></extra>",
        )
    y_title = "task weight" + (f" (EMA {smoothing:g})" if smoothing > 0 else "")
    finish_layout(
        fig, title=title, x_title="step", y_title=y_title, hovermode="x unified", legend_title="task"
    )
    return fig
