"""Shared pieces of the figure functions: input validation, task colours, empty states, layout.

Everything here is pure: plain Python / numpy values in, numpy arrays or ``go.Figure`` out. Validation
errors are ``ValueError`` with a message that names the argument, what was expected and what came.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

__all__ = [
    "TASK_PALETTE",
    "SERIES_PALETTE",
    "DIVERGING_SCALE",
    "CONFLICT_FILL",
    "EMPTY_MESSAGE",
    "plot_text",
    "task_colors",
    "series_colors",
    "empty_figure",
    "finish_layout",
    "check_labels",
    "check_tasks",
    "check_order",
    "check_colors",
    "as_number",
    "as_vector",
    "as_matrix",
    "as_steps",
    "symmetric_limit",
    "is_empty",
    "cell_font_size",
    "matrix_heatmap",
    "history_series",
    "ema",
]

# Tableau-10 first (readable and colour-blind friendlier than most for up to 10 tasks), then a long
# tail so that more tasks still get distinct colours.
TASK_PALETTE: tuple[str, ...] = tuple(qualitative.D3) + tuple(qualitative.Alphabet)
# Methods, runs and task pairs use a different palette so that they are not mistaken for tasks.
SERIES_PALETTE: tuple[str, ...] = (
    tuple(qualitative.Dark2) + tuple(qualitative.Set1) + tuple(qualitative.Pastel)
)
DIVERGING_SCALE = "RdBu"
CONFLICT_FILL = "rgba(214, 39, 40, 0.08)"
EMPTY_MESSAGE = "No data yet"


# ------------------------------------------------------------------------------------------- text

# What plotly.js interprets in every text it draws (titles, ticks, legend, hover, annotations, bar
# and cell text): tags (<b>, <br>, <a href=…>, <span style=…>), entities (&lt;, &#60;), a $…$ span as
# TeX where MathJax is loaded, and %{…} as a placeholder in hover and text templates. Each such
# character becomes an entity, which plotly.js turns back into that one literal character.
_PLOT_TEXT_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;", "%": "&#37;"}
)


def plot_text(text: str) -> str:
    """``text`` (a task, column, suite, method or run name: anything a user typed or uploaded) made
    safe to put into plotly text, where plotly.js shows it literally instead of as markup.

    Figure functions call it on every name they draw; a caller that builds a ``title`` from a user
    string escapes that string with it (titles are plotly text, so our own ``<br>`` keeps working).
    """
    return str(text).translate(_PLOT_TEXT_ESCAPES)


# --------------------------------------------------------------------------------------------- colours


def _assign(names: Sequence[str], palette: Sequence[str]) -> dict[str, str]:
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


def task_colors(task_names: Sequence[str]) -> dict[str, str]:
    """A colour per task, by position in ``task_names``: the same task list gives the same colours in
    every figure (pass the run's full task list, then hand the result to figures as ``colors=``)."""
    return _assign(check_tasks(task_names, "task_names"), TASK_PALETTE)


def series_colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per method / run / task pair, from a palette distinct from the task palette."""
    return _assign(check_labels(labels, "labels"), SERIES_PALETTE)


def check_colors(
    colors: Mapping[str, str] | None, names: Sequence[str], name: str = "colors"
) -> dict[str, str]:
    """``colors`` completed for ``names`` (missing names get their :func:`task_colors` colour)."""
    defaults = task_colors(names)
    if colors is None:
        return defaults
    if not isinstance(colors, Mapping):
        raise ValueError(f"`{name}` must be a mapping task → colour, got {type(colors).__name__}")
    return {task: str(colors.get(task, defaults[task])) for task in names}


# ------------------------------------------------------------------------------------------ validation


def check_labels(labels: Any, name: str, *, length: int | None = None) -> list[str]:
    """``labels`` as a list of unique, non-empty strings (of ``length`` items when given)."""
    if isinstance(labels, str) or not isinstance(labels, Iterable):
        raise ValueError(f"`{name}` must be a list of names, got {type(labels).__name__}")
    labels = list(labels)
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(f"`{name}` must contain non-empty strings, got {label!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"`{name}` must contain unique names, got duplicates {duplicates}")
    if length is not None and len(labels) != length:
        raise ValueError(f"`{name}` must have {length} names, got {len(labels)}")
    return labels


def check_tasks(tasks: Any, name: str = "tasks", *, length: int | None = None) -> list[str]:
    return check_labels(tasks, name, length=length)


def check_order(order: Sequence[int] | None, size: int, name: str = "order") -> list[int]:
    """``order`` as a permutation of ``range(size)`` (the identity when ``None``)."""
    if order is None:
        return list(range(size))
    try:
        as_list = [int(k) for k in order]
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a list of task indices, got {order!r}") from None
    if sorted(as_list) != list(range(size)) or any(
        isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in order
    ):
        raise ValueError(f"`{name}` must be a permutation of 0..{size - 1}, got {list(order)!r}")
    return as_list


def as_number(value: Any, name: str, *, allow_missing: bool = False) -> float:
    """``value`` as a float; ``None`` / NaN become NaN when ``allow_missing``, infinities never pass."""
    if value is None:
        if allow_missing:
            return math.nan
        raise ValueError(f"`{name}` must be a number, got None")
    if isinstance(value, bool) or not isinstance(value, (Real, np.number)):
        raise ValueError(f"`{name}` must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) and not allow_missing:
        raise ValueError(f"`{name}` must be a finite number, got NaN")
    if math.isinf(number):
        raise ValueError(f"`{name}` must be a finite number, got {number}")
    return number


def _shape_of(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return str(value.shape)
    if isinstance(value, Sequence) and not isinstance(value, str):
        lengths = [
            len(row) if isinstance(row, Sequence) and not isinstance(row, str) else None for row in value
        ]
        if lengths and all(length is not None for length in lengths):
            if len(set(lengths)) == 1:
                return str((len(value), lengths[0]))
            return f"rows of lengths {lengths}"
        return f"({len(value)},)"
    return type(value).__name__


def as_vector(value: Any, name: str, *, length: int | None = None, allow_missing: bool = False) -> np.ndarray:
    """A 1-D float array from a list of numbers (``None`` → NaN when ``allow_missing``)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"`{name}` must be a list of numbers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"`{name}` must have {length} values, got {len(value)}")
    return np.array(
        [
            as_number(item, f"{name}[{index}]", allow_missing=allow_missing)
            for index, item in enumerate(value)
        ],
        dtype=float,
    )


def as_matrix(
    value: Any,
    name: str,
    *,
    size: int | None = None,
    allow_missing: bool = False,
    allow_missing_diagonal: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """A square T × T float array from nested lists; ``None`` / NaN become NaN where allowed
    (anywhere with ``allow_missing``, on the diagonal with ``allow_missing_diagonal``)."""
    expected = (
        "a square T × T list"
        if size is None
        else f"a square {size} × {size} list (one row and column per task)"
    )
    if isinstance(value, np.ndarray):
        if (
            value.ndim != 2
            or value.shape[0] != value.shape[1]
            or (size is not None and value.shape[0] != size)
        ):
            raise ValueError(f"`{name}` must be {expected}, got shape {value.shape}")
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"`{name}` must be {expected}, got {type(value).__name__}")
    rows = len(value)
    square = all(isinstance(row, Sequence) and not isinstance(row, str) and len(row) == rows for row in value)
    if not square or (size is not None and rows != size):
        raise ValueError(f"`{name}` must be {expected}, got shape {_shape_of(value)}")
    matrix = np.full((rows, rows), math.nan)
    for i, row in enumerate(value):
        for j, item in enumerate(row):
            missing_ok = allow_missing or (allow_missing_diagonal and i == j)
            matrix[i, j] = as_number(item, f"{name}[{i}][{j}]", allow_missing=missing_ok)
            number = matrix[i, j]
            if not math.isnan(number) and (
                (low is not None and number < low - 1e-6) or (high is not None and number > high + 1e-6)
            ):
                raise ValueError(f"`{name}[{i}][{j}]` must lie in [{low}, {high}], got {number}")
    return matrix


def as_steps(steps: Any, name: str = "steps") -> np.ndarray:
    """Integer step (or epoch) numbers."""
    if isinstance(steps, np.ndarray):
        steps = steps.tolist()
    if isinstance(steps, str) or not isinstance(steps, Sequence):
        raise ValueError(f"`{name}` must be a list of integers, got {type(steps).__name__}")
    for index, step in enumerate(steps):
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise ValueError(f"`{name}[{index}]` must be an integer, got {step!r}")
    return np.array(steps, dtype=int)


def is_empty(value: Any) -> bool:
    """Whether ``value`` is an empty list / array / mapping (a series with no data yet)."""
    if isinstance(value, np.ndarray):
        return value.size == 0
    return isinstance(value, (Sequence, Mapping)) and not isinstance(value, str) and len(value) == 0


def symmetric_limit(values: np.ndarray) -> float:
    """The largest finite ``|value|`` (1 when there is none), for a colour range centred on 0."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0 or float(finite.max()) == 0.0:
        return 1.0
    return float(finite.max())


def cell_font_size(size: int) -> int:
    """Cell text that stays legible from 2 to 10+ tasks."""
    return 14 if size <= 4 else 12 if size <= 7 else 10


# ----------------------------------------------------------------------------------------- histories


def history_series(
    history: Any, key: str, name: str = "history"
) -> tuple[list[int], dict[str, list[float | None]]]:
    """From per-epoch records, the sorted epochs and, per task (in order of first appearance), the
    values of ``record[key][task]`` aligned to them (``None`` where a record lacks the task or the key;
    NaN losses of a diverged run also become ``None`` so that they show as gaps)."""
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise ValueError(f"`{name}` must be a list of per-epoch records, got {type(history).__name__}")
    records = []
    for index, record in enumerate(history):
        if not isinstance(record, Mapping):
            raise ValueError(
                f"`{name}[{index}]` must be a dict with 'epoch' and '{key}', got {type(record).__name__}"
            )
        epoch = record.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise ValueError(f"`{name}[{index}]['epoch']` must be an integer, got {epoch!r}")
        values = record.get(key)
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(
                f"`{name}[{index}]['{key}']` must be a dict task → number, got {type(values).__name__}"
            )
        checked = {}
        for task, item in values.items():
            if not isinstance(task, str):
                raise ValueError(f"`{name}[{index}]['{key}']` must have task names as keys, got {task!r}")
            number = as_number(item, f"{name}[{index}]['{key}']['{task}']", allow_missing=True)
            checked[task] = None if math.isnan(number) else number
        records.append((int(epoch), checked))
    records.sort(key=lambda pair: pair[0])
    tasks: list[str] = []
    for _, values in records:
        tasks.extend(task for task in values if task not in tasks)
    epochs = [epoch for epoch, _ in records]
    series = {task: [values.get(task) for _, values in records] for task in tasks}
    return epochs, series


# -------------------------------------------------------------------------------------------- layout


def finish_layout(
    fig: go.Figure,
    *,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    hovermode: str | bool = "closest",
    legend_title: str | None = None,
) -> go.Figure:
    """The common look: white template, left-aligned title, axis titles, legend title."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left"},
        hovermode=hovermode,
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        legend={"title": {"text": legend_title or ""}},
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def empty_figure(title: str, message: str = EMPTY_MESSAGE) -> go.Figure:
    """A blank figure with ``message`` in the middle: what a page shows before data arrives."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": "#777777"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.0, "xanchor": "left"})
    return fig


def matrix_heatmap(
    z: np.ndarray,
    *,
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    text: list[list[str]],
    hover: list[list[str]],
    colorscale: str,
    zmin: float,
    zmax: float,
    zmid: float | None,
    colorbar_title: str,
    title: str,
    x_title: str,
    y_title: str,
    square_cells: bool = True,
) -> go.Figure:
    """A labelled matrix heatmap, row 0 at the top, values written in the cells and a prepared hover
    string per cell; missing values (NaN) are left blank. Square cells for task × task matrices.
    Labels, hover and titles are plotly text: callers escape the names in them with :func:`plot_text`."""
    z_cells = [[None if math.isnan(value) else float(value) for value in row] for row in z]
    heatmap = go.Heatmap(
        z=z_cells,
        x=list(x_labels),
        y=list(y_labels),
        text=text,
        texttemplate="%{text}",
        textfont={"size": cell_font_size(len(y_labels))},
        customdata=hover,
        hovertemplate="%{customdata}<extra></extra>",
        hoverongaps=False,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        zmid=zmid,
        colorbar={"title": {"text": colorbar_title}},
        xgap=1,
        ygap=1,
    )
    fig = go.Figure(heatmap)
    finish_layout(fig, title=title, x_title=x_title, y_title=y_title)
    fig.update_yaxes(autorange="reversed", showgrid=False, type="category")
    if square_cells:
        # Shrink the plot area rather than pad the category ranges, so labels stay next to the cells.
        fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
        fig.update_xaxes(constrain="domain")
    fig.update_xaxes(showgrid=False, type="category", tickangle=-30 if len(x_labels) > 5 else 0)
    return fig


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average ``s = smoothing·s + (1 − smoothing)·x``, carried over NaN gaps."""
    smoothed = np.full_like(values, math.nan)
    state = math.nan
    for index, value in enumerate(values):
        if math.isnan(value):
            smoothed[index] = state
            continue
        state = value if math.isnan(state) else smoothing * state + (1.0 - smoothing) * value
        smoothed[index] = state
    return smoothed
