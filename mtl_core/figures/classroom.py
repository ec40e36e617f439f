"""Figures of the presenter's Class page: one small panel per participant, and the class at a glance.

Pure functions: plain data in, ``go.Figure`` out. Participant names are anyone's text and go through
:func:`plot_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mtl_core.figures._common import (
    as_number,
    as_vector,
    empty_figure,
    finish_layout,
    plot_text,
    series_colors,
)

__all__ = ["PANEL_STATUSES", "class_panels", "class_summary"]

#: What a panel's title says of the participant's lesson check.
PANEL_STATUSES: dict[str, str] = {
    "passed": "✓ holds",
    "failed": "✗ does not hold",
    "running": "running",
    "unchecked": "check not possible",
}


def _panel_title(panel: Mapping[str, Any], index: int) -> str:
    participant = panel.get("participant")
    if not isinstance(participant, str) or not participant.strip():
        raise ValueError(f"`panels[{index}]['participant']` must be a non-empty text, got {participant!r}")
    status = panel.get("status")
    if status not in PANEL_STATUSES:
        raise ValueError(f"`panels[{index}]['status']` must be one of {', '.join(PANEL_STATUSES)}, got {status!r}")
    note = panel.get("note")
    words = PANEL_STATUSES[status] + (f" ({plot_text(note)})" if note else "")
    return f"<b>{plot_text(participant)}</b> · {words}"


def class_panels(
    panels: Sequence[Mapping[str, Any]],
    *,
    columns: int = 3,
    title: str = "Every participant's runs",
    y_title: str = "training loss (mean over tasks)",
) -> go.Figure:
    """A grid of small panels, one per participant, each with one training-loss curve per run label
    (the label's colour the same in every panel) and the participant's check in its title.

    ``panels``: ``{"participant": name or id, "status": one of PANEL_STATUSES, "note": optional text
    (e.g. "3 of 8 runs done"), "curves": {label: {"epochs": [...], "loss": [...]}}}``.
    """
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"`columns` must be an integer ≥ 1, got {columns!r}")
    if isinstance(panels, (str, bytes)) or not isinstance(panels, Sequence):
        raise ValueError(f"`panels` must be a list of participant panels, got {type(panels).__name__}")
    if not panels:
        return empty_figure(title, "No participant has run this lesson yet")
    titles = [_panel_title(panel, index) for index, panel in enumerate(panels)]
    labels: list[str] = []
    for index, panel in enumerate(panels):
        curves = panel.get("curves") or {}
        if not isinstance(curves, Mapping):
            raise ValueError(f"`panels[{index}]['curves']` must be a mapping label → curve, got {type(curves).__name__}")
        labels.extend(str(label) for label in curves if str(label) not in labels)
    colors = series_colors(labels) if labels else {}
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.09,
                        vertical_spacing=min(0.12, 0.5 / rows))
    shown: set[str] = set()
    for index, panel in enumerate(panels):
        row, col = index // columns + 1, index % columns + 1
        for label, curve in (panel.get("curves") or {}).items():
            label = str(label)
            where = f"panels[{index}]['curves'][{label!r}]"
            if not isinstance(curve, Mapping):
                raise ValueError(f"`{where}` must be a mapping with 'epochs' and 'loss', got {type(curve).__name__}")
            epochs = as_vector(curve.get("epochs", []), f"{where}['epochs']")
            loss = as_vector(curve.get("loss", []), f"{where}['loss']", length=len(epochs), allow_missing=True)
            fig.add_trace(go.Scatter(
                x=epochs.tolist(), y=loss.tolist(), mode="lines", name=plot_text(label), legendgroup=plot_text(label),
                showlegend=label not in shown, line={"color": colors[label], "width": 1.6},
                hovertemplate=f"{plot_text(label)}<br>epoch %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
            ), row=row, col=col)
            shown.add(label)
        if not (panel.get("curves") or {}):
            fig.add_annotation(text="no epoch finished yet", showarrow=False, font={"color": "#777777"},
                               xref=f"x{index + 1 if index else ''} domain", yref=f"y{index + 1 if index else ''} domain",
                               x=0.5, y=0.5)
    finish_layout(fig, title=title, legend_title="run")
    fig.update_xaxes(title_text="epoch", title_standoff=2, title_font={"size": 11})
    fig.update_yaxes(title_text=y_title, title_font={"size": 11}, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=max(320, 240 * rows + 90))
    return fig


def class_summary(
    points: Sequence[Mapping[str, Any]],
    quantity: str,
    *,
    title: str = "The class at a glance",
    confidence: float = 0.95,
) -> go.Figure:
    """Each participant's value of the lesson's checked ``quantity`` as a point, per series (e.g.
    "related vs related-single"), beside the class mean with its ``confidence`` t-interval.

    ``points``: ``{"participant": name or id, "values": {series: number or None}}``; missing and NaN
    values are left out.
    """
    from mtl_core.analysis.transfer import summarize_seeds

    if not isinstance(quantity, str) or not quantity.strip():
        raise ValueError(f"`quantity` must be a non-empty text (what the values measure), got {quantity!r}")
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise ValueError(f"`points` must be a list of participants' values, got {type(points).__name__}")
    series: list[str] = []
    values: dict[str, list[tuple[str, float]]] = {}
    for index, point in enumerate(points):
        if not isinstance(point, Mapping) or not isinstance(point.get("values"), Mapping):
            raise ValueError(f"`points[{index}]` must be a mapping with 'participant' and 'values', got {point!r}")
        participant = str(point.get("participant") or "")
        if not participant.strip():
            raise ValueError(f"`points[{index}]['participant']` must be a non-empty text, got {participant!r}")
        for name, value in point["values"].items():
            number = as_number(value, f"points[{index}]['values'][{name!r}]", allow_missing=True)
            if not math.isfinite(number):
                continue
            if str(name) not in series:
                series.append(str(name))
            values.setdefault(str(name), []).append((participant, number))
    if not series:
        return empty_figure(title, "No participant's runs have finished yet")
    colors = series_colors(series)
    fig = go.Figure()
    for position, name in enumerate(series):
        entries = values[name]
        count = len(entries)
        # spread the points sideways so that equal values stay visible, the mean just to their right
        offsets = [position - 0.15 + (0.3 * i / (count - 1) if count > 1 else 0.15) for i in range(count)]
        fig.add_trace(go.Scatter(
            x=offsets, y=[v for _, v in entries], mode="markers", name=plot_text(name),
            marker={"color": colors[name], "size": 10, "opacity": 0.8, "line": {"width": 1, "color": "white"}},
            customdata=[plot_text(p) for p, _ in entries],
            hovertemplate=f"%{{customdata}}<br>{plot_text(name)}: %{{y:.4g}}<extra></extra>",
        ))
        summary = summarize_seeds([v for _, v in entries], confidence)
        has_ci = math.isfinite(summary.ci_low)
        error = {"type": "data", "symmetric": False, "array": [summary.ci_high - summary.mean],
                 "arrayminus": [summary.mean - summary.ci_low], "thickness": 2, "width": 8} if has_ci else None
        ci_text = (f"{100 * confidence:.0f} % CI {summary.ci_low:.4g} … {summary.ci_high:.4g}" if has_ci
                   else "one participant: no CI")
        fig.add_trace(go.Scatter(
            x=[position + 0.3], y=[summary.mean], mode="markers", showlegend=False,
            marker={"color": "black", "symbol": "diamond", "size": 12}, error_y=error,
            hovertemplate=f"class mean of {plot_text(name)} ({count} participants): %{{y:.4g}}<br>{ci_text}"
                          "<extra></extra>",
        ))
    fig.add_hline(y=0, line={"color": "#999999", "width": 1, "dash": "dot"})
    finish_layout(fig, title=title, y_title=plot_text(quantity), legend_title="series")
    fig.update_xaxes(tickvals=list(range(len(series))), ticktext=[plot_text(s) for s in series],
                     range=[-0.6, len(series) - 0.4])
    fig.add_annotation(text=f"dots: participants · ◆ and bar: class mean, {100 * confidence:.0f} % CI",
                       xref="paper", yref="paper", x=1.0, y=1.06, xanchor="right", showarrow=False,
                       font={"size": 11, "color": "#555555"})
    return fig
