"""Training curves: per-task losses and metrics over epochs and steps, and comparisons across runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mtl_core.figures._common import (
    as_number,
    as_steps,
    as_vector,
    check_colors,
    check_labels,
    ema,
    empty_figure,
    finish_layout,
    history_series,
    is_empty,
    plot_text,
    series_colors,
)

__all__ = ["loss_curves", "step_loss_curves", "metric_curves", "overlay_curves", "compare_bars"]

_LOSS_KINDS = ("train", "val")
_KIND_DASH = {"train": "solid", "val": "dash"}
_KIND_LABEL = {"train": "train", "val": "validation"}
_HISTORY_KEYS = ("train_loss", "val_loss", "val_metric")


def _check_which(which: Any) -> list[str]:
    kinds = [which] if isinstance(which, str) else list(which) if isinstance(which, Sequence) else None
    if not kinds or any(kind not in _LOSS_KINDS for kind in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"`which` must be a non-empty subset of {_LOSS_KINDS}, got {which!r}")
    return kinds


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r}")
    return value


def loss_curves(
    history: Sequence[Mapping[str, Any]],
    log_y: bool = False,
    which: Sequence[str] = ("train", "val"),
    *,
    colors: Mapping[str, str] | None = None,
    title: str = "Loss per task",
) -> go.Figure:
    """Per-task training and validation loss over epochs: one colour per task, train solid, val dashed.

    ``history`` holds per-epoch records ``{"epoch": int, "train_loss": {task: float}, "val_loss":
    {task: float}, ...}``; ``which`` picks the kinds shown; ``log_y`` puts the loss on a log axis.
    """
    kinds = _check_which(which)
    log_y = _check_flag(log_y, "log_y")
    series = {kind: history_series(history, f"{kind}_loss") for kind in kinds}
    tasks: list[str] = []
    for _, values in series.values():
        tasks.extend(task for task in values if task not in tasks)
    if not tasks:
        return empty_figure(title)
    palette = check_colors(colors, tasks)
    fig = go.Figure()
    for task in tasks:
        name = plot_text(task)
        for kind in kinds:
            epochs, values = series[kind]
            if task not in values:
                continue
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values[task],
                    mode="lines+markers",
                    name=f"{name} · {kind}",
                    legendgroup=name,
                    line={"color": palette[task], "dash": _KIND_DASH[kind]},
                    marker={"size": 5},
                    hovertemplate=f"{name} {_KIND_LABEL[kind]} loss: %{{y:.4g}}<extra></extra>",
                )
            )
    finish_layout(
        fig,
        title=title,
        x_title="epoch",
        y_title="loss (log scale)" if log_y else "loss",
        hovermode="x unified",
        legend_title="task · split (train solid, val dashed)",
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _thin(length: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points, first and last kept."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, max_points).round().astype(int))


def step_loss_curves(
    steps: Sequence[int],
    losses: Mapping[str, Sequence[float]],
    log_y: bool = False,
    *,
    smoothing: float = 0.0,
    max_points: int = 2000,
    colors: Mapping[str, str] | None = None,
    title: str = "Training loss per step",
) -> go.Figure:
    """Per-step training loss per task (the live view).

    ``smoothing`` in [0, 1) is an exponential moving average factor (0 = raw; 0.9 ≈ a 10-step
    window): the smoothed line is drawn over a faint raw line. Long series are thinned to at most
    ``max_points`` evenly spaced points after smoothing, so the smoothed curve stays faithful.
    """
    log_y = _check_flag(log_y, "log_y")
    smoothing = as_number(smoothing, "smoothing")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"`smoothing` must lie in [0, 1), got {smoothing}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"`max_points` must be an integer ≥ 2, got {max_points!r}")
    step_array = as_steps(steps)
    if not isinstance(losses, Mapping):
        raise ValueError(f"`losses` must be a dict task → list of losses, got {type(losses).__name__}")
    all_tasks = check_labels(list(losses), "losses")
    # A task with no losses yet is left out rather than being an error; any other length must match.
    tasks = [task for task in all_tasks if not is_empty(losses[task])]
    series = {
        task: as_vector(losses[task], f"losses['{task}']", length=len(step_array), allow_missing=True)
        for task in tasks
    }
    if not tasks or len(step_array) == 0:
        return empty_figure(title)
    palette = check_colors(colors, all_tasks)
    keep = _thin(len(step_array), max_points)
    # numpy arrays (NaN = gap), not lists: plotly validates lists element by element, which made this
    # live chart cost ~0.1 s per refresh at 1 000+ steps.
    x = step_array[keep]
    fig = go.Figure()
    for task in tasks:
        raw, name = series[task], plot_text(task)
        if smoothing > 0:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=raw[keep].astype(float),
                    mode="lines",
                    name=f"{name} (raw)",
                    legendgroup=name,
                    showlegend=False,
                    opacity=0.3,
                    line={"color": palette[task], "width": 1},
                    hovertemplate=f"{name} raw: %{{y:.4g}}<extra></extra>",
                )
            )
        shown = ema(raw, smoothing) if smoothing > 0 else raw
        fig.add_trace(
            go.Scatter(
                x=x,
                y=shown[keep].astype(float),
                mode="lines",
                name=name,
                legendgroup=name,
                line={"color": palette[task], "width": 2},
                hovertemplate=f"{name}{' (EMA)' if smoothing > 0 else ''}: %{{y:.4g}}<extra></extra>",
            )
        )
    y_title = (
        "training loss"
        + (f" (EMA {smoothing:g})" if smoothing > 0 else "")
        + (" (log scale)" if log_y else "")
    )
    finish_layout(
        fig, title=title, x_title="step", y_title=y_title, hovermode="x unified", legend_title="task"
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _check_metrics_meta(metrics_meta: Any, tasks: Sequence[str]) -> dict[str, tuple[str, bool]]:
    if not isinstance(metrics_meta, Mapping):
        raise ValueError(
            f"`metrics_meta` must be a dict task → {{'metric': str, 'higher_is_better': bool}}, "
            f"got {type(metrics_meta).__name__}"
        )
    missing = [task for task in tasks if task not in metrics_meta]
    if missing:
        raise ValueError(f"`metrics_meta` must have an entry for every task in `history`, missing {missing}")
    checked = {}
    for task in tasks:
        meta = metrics_meta[task]
        metric = meta.get("metric") if isinstance(meta, Mapping) else None
        higher = meta.get("higher_is_better") if isinstance(meta, Mapping) else None
        if not isinstance(metric, str) or not metric or not isinstance(higher, bool):
            raise ValueError(
                f"`metrics_meta['{task}']` must be {{'metric': str, 'higher_is_better': bool}}, got {meta!r}"
            )
        checked[task] = (plot_text(metric), higher)
    return checked


def _direction(higher_is_better: bool) -> str:
    return "↑ higher is better" if higher_is_better else "↓ lower is better"


def metric_curves(
    history: Sequence[Mapping[str, Any]],
    metrics_meta: Mapping[str, Mapping[str, Any]],
    *,
    colors: Mapping[str, str] | None = None,
    title: str = "Validation metric per task",
) -> go.Figure:
    """Validation metric per task over epochs: one subplot per metric kind (e.g. accuracy, MSE),
    stacked with a shared epoch axis; each y-axis says whether higher or lower is better."""
    epochs, series = history_series(history, "val_metric")
    tasks = list(series)
    meta = _check_metrics_meta(metrics_meta, tasks)
    if not tasks:
        return empty_figure(title)
    palette = check_colors(colors, tasks)
    kinds: list[tuple[str, bool]] = []
    for task in tasks:
        if meta[task] not in kinds:
            kinds.append(meta[task])
    fig = make_subplots(rows=len(kinds), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for task in tasks:
        row = kinds.index(meta[task]) + 1
        metric, higher = meta[task]
        name = plot_text(task)
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=series[task],
                mode="lines+markers",
                name=f"{name} ({metric})",
                legendgroup=name,
                line={"color": palette[task]},
                marker={"size": 5},
                hovertemplate=f"{name} {metric}: %{{y:.4g}} ({_direction(higher)})<extra></extra>",
            ),
            row=row,
            col=1,
        )
    for row, (metric, higher) in enumerate(kinds, start=1):
        fig.update_yaxes(title_text=f"{metric}<br>{_direction(higher)}", row=row, col=1)
    fig.update_xaxes(title_text="epoch", row=len(kinds), col=1)
    finish_layout(fig, title=title, hovermode="x unified", legend_title="task (metric)")
    fig.update_layout(height=max(350, 260 * len(kinds)))
    return fig


def overlay_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    task: str,
    key: str = "val_loss",
    *,
    log_y: bool = False,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """One task's curve (``key`` = ``train_loss``, ``val_loss`` or ``val_metric``) for several runs
    on one axis, one colour per run label."""
    if key not in _HISTORY_KEYS:
        raise ValueError(f"`key` must be one of {_HISTORY_KEYS}, got {key!r}")
    if not isinstance(task, str) or not task:
        raise ValueError(f"`task` must be a task name, got {task!r}")
    log_y = _check_flag(log_y, "log_y")
    if not isinstance(runs, Mapping):
        raise ValueError(f"`runs` must be a dict run label → history, got {type(runs).__name__}")
    labels = check_labels(list(runs), "runs")
    title = title or f"{plot_text(task)}: {key.replace('_', ' ')} across runs"
    curves = {label: history_series(runs[label], key, f"runs['{label}']") for label in labels}
    with_data = [label for label in labels if curves[label][1]]
    if not with_data:
        return empty_figure(title)
    if not any(task in curves[label][1] for label in with_data):
        known = sorted({name for label in with_data for name in curves[label][1]})
        raise ValueError(f"`task` must be a task of the runs {known}, got {task!r}")
    palette = (
        series_colors(labels) if colors is None else {label: colors.get(label, "#444444") for label in labels}
    )
    fig = go.Figure()
    for label in with_data:
        epochs, values = curves[label]
        if task not in values:
            continue
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values[task],
                mode="lines+markers",
                name=plot_text(label),
                line={"color": palette[label]},
                marker={"size": 5},
                hovertemplate=f"{plot_text(label)}: %{{y:.4g}}<extra></extra>",
            )
        )
    y_title = key.replace("_", " ") + (" (log scale)" if log_y else "")
    finish_layout(
        fig, title=title, x_title="epoch", y_title=y_title, hovermode="x unified", legend_title="run"
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _group_column(table: pd.DataFrame, group_column: str | None) -> str:
    if group_column is not None:
        if group_column not in table.columns:
            raise ValueError(
                f"`group_column` must be a column of `table` {list(table.columns)}, got {group_column!r}"
            )
        return group_column
    for candidate in ("run", "method"):
        if candidate in table.columns:
            return candidate
    raise ValueError(f"`table` must have a 'run' or 'method' column, got columns {list(table.columns)}")


def compare_bars(
    table: pd.DataFrame,
    *,
    group_column: str | None = None,
    value_label: str = "mean",
    title: str = "Comparison per task",
    per_task: bool = False,
) -> go.Figure:
    """Grouped bars: one group per task, one bar per run/method, error bars from ``ci_low`` to
    ``ci_high`` (a missing CI, e.g. from a single seed, draws no error bar).

    ``table`` has the columns ``run`` (or ``method``, or ``group_column``), ``task``, ``mean``,
    ``ci_low``, ``ci_high``, one row per (run, task).

    ``per_task``: one panel per task, each with its own y axis (an MSE of 0.2 and one of 40 stay
    readable side by side), titled with the task's ``metric`` and ``higher_is_better`` when the table
    has those columns.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"`table` must be a pandas DataFrame, got {type(table).__name__}")
    group = _group_column(table, group_column)
    missing = [column for column in ("task", "mean", "ci_low", "ci_high") if column not in table.columns]
    if missing:
        raise ValueError(f"`table` must have the columns task, mean, ci_low, ci_high, missing {missing}")
    if table.empty:
        return empty_figure(title)
    duplicated = table.duplicated(subset=[group, "task"])
    if duplicated.any():
        first = table.loc[duplicated, [group, "task"]].iloc[0].tolist()
        raise ValueError(f"`table` must have one row per ({group}, task), got duplicates such as {first}")
    rows = []
    for index, record in enumerate(table.to_dict("records")):
        mean = as_number(record["mean"], f"table['mean'][{index}]")
        low = as_number(record["ci_low"], f"table['ci_low'][{index}]", allow_missing=True)
        high = as_number(record["ci_high"], f"table['ci_high'][{index}]", allow_missing=True)
        if (not math.isnan(low) and low > mean + 1e-12) or (not math.isnan(high) and high < mean - 1e-12):
            raise ValueError(
                f"`table` row {index} must have ci_low ≤ mean ≤ ci_high, got {low} ≤ {mean} ≤ {high}"
            )
        # Names escaped once here: they are the bars' categories, legend entries and hover text.
        rows.append((plot_text(record[group]), plot_text(record["task"]), mean, low, high))
    groups = list(dict.fromkeys(row[0] for row in rows))
    tasks = list(dict.fromkeys(row[1] for row in rows))
    palette = series_colors(groups)
    if per_task:
        return _task_panels(rows, groups, tasks, palette, _task_metrics(table), title, group)
    fig = go.Figure()
    for name in groups:
        mine = sorted((row for row in rows if row[0] == name), key=lambda row: tasks.index(row[1]))
        fig.add_trace(_bar(name, mine, palette[name]))
    finish_layout(
        fig, title=title, x_title="task", y_title=plot_text(value_label), legend_title=plot_text(group)
    )
    fig.update_layout(barmode="group")
    return fig


def _bar(name: str, rows: Sequence[tuple[str, str, float, float, float]], color: str, **options: Any) -> go.Bar:
    """One group's bars (``rows``: group, task, mean, ci_low, ci_high), error bars from the CI."""
    upper = [0.0 if math.isnan(row[4]) else row[4] - row[2] for row in rows]
    lower = [0.0 if math.isnan(row[3]) else row[2] - row[3] for row in rows]
    ci_text = [
        "no CI" if math.isnan(row[3]) or math.isnan(row[4]) else f"95% CI [{row[3]:.4g}, {row[4]:.4g}]"
        for row in rows
    ]
    return go.Bar(
        x=[row[1] for row in rows],
        y=[row[2] for row in rows],
        name=name,
        marker={"color": color},
        error_y={"type": "data", "symmetric": False, "array": upper, "arrayminus": lower, "visible": True},
        customdata=ci_text,
        hovertemplate=f"{name}<br>%{{x}}: %{{y:.4g}}<br>%{{customdata}}<extra></extra>",
        **options,
    )


def _task_metrics(table: pd.DataFrame) -> dict[str, tuple[str, bool | None]]:
    """Per (escaped) task: its metric's (escaped) name and whether higher is better, if the table says."""
    if "metric" not in table.columns:
        return {}
    out: dict[str, tuple[str, bool | None]] = {}
    for record in table.to_dict("records"):
        higher = record.get("higher_is_better")
        out.setdefault(
            plot_text(record["task"]),
            (plot_text(record["metric"]), None if higher is None or pd.isna(higher) else bool(higher)),
        )
    return out


def _task_panels(
    rows: Sequence[tuple[str, str, float, float, float]],
    groups: Sequence[str],
    tasks: Sequence[str],
    palette: Mapping[str, str],
    metrics: Mapping[str, tuple[str, bool | None]],
    title: str,
    group: str,
) -> go.Figure:
    """:func:`compare_bars` with one panel per task, each with its own y axis (up to 4 per row)."""
    columns = min(len(tasks), 4)
    panel_rows = math.ceil(len(tasks) / columns)

    def heading(task: str) -> str:
        metric, higher = metrics.get(task, ("", None))
        direction = "" if higher is None else f" {'↑' if higher else '↓'}"
        return f"{task}: {metric}{direction}" if metric else task

    fig = make_subplots(
        rows=panel_rows,
        cols=columns,
        subplot_titles=[heading(task) for task in tasks],
        horizontal_spacing=0.25 / columns,
        vertical_spacing=0.3 / panel_rows,
    )
    in_legend: set[str] = set()
    for index, task in enumerate(tasks):
        row, col = index // columns + 1, index % columns + 1
        for name in groups:
            mine = [entry for entry in rows if entry[0] == name and entry[1] == task]
            if mine:
                bar = _bar(name, mine, palette[name], legendgroup=name, showlegend=name not in in_legend)
                fig.add_trace(bar, row=row, col=col)
                in_legend.add(name)
        fig.update_yaxes(title_text=metrics.get(task, ("",))[0] or None, row=row, col=col)
        fig.update_xaxes(showticklabels=False, row=row, col=col)
    finish_layout(fig, title=title, legend_title=plot_text(group))
    fig.update_layout(barmode="group", height=120 + 300 * panel_rows)
    fig.update_annotations(font={"size": 13})
    return fig
