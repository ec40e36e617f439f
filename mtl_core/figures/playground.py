"""The teaching playground: a few 2-D (or 3-D) task gradients and what each balancing method makes of
them, drawn as arrows from the origin."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from mtl_core.figures._common import (
    CONFLICT_FILL,
    as_vector,
    check_labels,
    empty_figure,
    finish_layout,
    is_empty,
    plot_text,
    series_colors,
)

__all__ = ["gradient_arrows"]

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_CONFLICT_NAME = "conflict region (d·gᵢ < 0)"
_AGREEMENT_NAME = "every task improves (d·gᵢ > 0 for all i)"
_AGREEMENT_FILL = "rgba(44, 160, 44, 0.12)"
# Two updates closer than this (relative to the longest gradient) are drawn as one: the legend says so.
_SAME_ARROW = 1e-5
# Input gradients are drawn in greys so that the coloured method outputs stand out against them.
_GRADIENT_GREYS = ("#222222", "#6b6b6b", "#a0a0a0", "#444444", "#858585")


def _default_names(count: int) -> list[str]:
    return [f"g{str(index + 1).translate(_SUBSCRIPTS)}" for index in range(count)]


def _check_vectors(value: object, name: str, dimension: int | None = None) -> np.ndarray:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"`{name}` must be a list of 2-D or 3-D vectors, got {type(value).__name__}")
    vectors = [as_vector(vector, f"{name}[{index}]") for index, vector in enumerate(value)]
    dimension = dimension or len(vectors[0])
    for index, vector in enumerate(vectors):
        if len(vector) != dimension or dimension not in (2, 3):
            expected = (
                f"{dimension}-D vector like {name}[0]"
                if index and dimension in (2, 3)
                else "2-D or 3-D vector"
            )
            raise ValueError(f"`{name}[{index}]` must be a {expected}, got {len(vector)} values")
    return np.stack(vectors)


def _angle(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return None
    cosine = float(np.clip(a @ b / norms, -1.0, 1.0))
    return cosine, math.degrees(math.acos(cosine))


def _describe(
    label: str, vector: np.ndarray, gradients: np.ndarray, names: Sequence[str], symbol: str
) -> str:
    lines = [f"<b>{label}</b>", f"{symbol} = ({', '.join(f'{value:.3g}' for value in vector)})"]
    lines.append(f"‖{symbol}‖ = {np.linalg.norm(vector):.3g}")
    if len(vector) == 2 and np.any(vector):
        lines.append(f"direction = {math.degrees(math.atan2(vector[1], vector[0])):.1f}°")
    for gradient, name in zip(gradients, names):
        if name == label:
            continue
        relation = _angle(vector, gradient)
        if relation is None:
            continue
        cosine, degrees = relation
        lines.append(
            f"cos({symbol}, {name}) = {cosine:+.3f}, angle {degrees:.1f}°"
            + (" — conflict" if cosine < 0 else "")
        )
    return "<br>".join(lines)


def _clip_half_plane(polygon: list[np.ndarray], normal: np.ndarray) -> list[np.ndarray]:
    """The part of a convex polygon where ``d · normal ≤ 0`` (one Sutherland–Hodgman pass)."""
    kept: list[np.ndarray] = []
    for index, start in enumerate(polygon):
        end = polygon[(index + 1) % len(polygon)]
        start_side, end_side = float(start @ normal), float(end @ normal)
        if start_side <= 0:
            kept.append(start)
        if (start_side < 0 < end_side) or (end_side < 0 < start_side):
            kept.append(start + start_side / (start_side - end_side) * (end - start))
    return kept


class _Arrow(NamedTuple):
    """One arrow from the origin: a task gradient (thin, its name at the tip) or a method's output (thick)."""

    vector: np.ndarray
    name: str
    color: str
    hover: str
    is_gradient: bool
    #: A method's update that is (numerically) zero: drawn as a ring at the origin, "(zero)" in the legend.
    zero: bool = False

    @property
    def width(self) -> float:
        return 2.0 if self.is_gradient else 4.0


def _arrow_2d(arrow: _Arrow) -> go.Scatter:
    name, color, width, hover = arrow.name, arrow.color, arrow.width, arrow.hover
    return go.Scatter(
        x=[0.0, float(arrow.vector[0])],
        y=[0.0, float(arrow.vector[1])],
        mode="lines+markers+text" if arrow.is_gradient else "lines+markers",
        name=name,
        legendgroup=name,
        line={"color": color, "width": width},
        marker=(
            {"symbol": "circle-open", "size": [0, 16], "color": color, "line": {"width": 3}}
            if arrow.zero
            else {"symbol": "arrow", "angleref": "previous", "size": [0, 4 * width + 6], "color": color}
        ),
        text=["", name] if arrow.is_gradient else None,
        textposition="top center",
        textfont={"color": color, "size": 14},
        customdata=[hover, hover],
        hovertemplate="%{customdata}<extra></extra>",
    )


def _arrow_3d(arrow: _Arrow, head: float) -> list:
    name, color, width, hover = arrow.name, arrow.color, arrow.width, arrow.hover
    x, y, z = (float(value) for value in arrow.vector)
    line = go.Scatter3d(
        x=[0.0, x],
        y=[0.0, y],
        z=[0.0, z],
        mode="lines+markers" if arrow.zero else "lines",
        marker={"symbol": "circle-open", "size": 8, "color": color} if arrow.zero else None,
        name=name,
        legendgroup=name,
        line={"color": color, "width": width * 2},
        customdata=[hover, hover],
        hovertemplate="%{customdata}<extra></extra>",
    )
    cone = go.Cone(
        x=[x],
        y=[y],
        z=[z],
        u=[x],
        v=[y],
        w=[z],
        anchor="tip",
        sizemode="absolute",
        sizeref=head,
        colorscale=[[0.0, color], [1.0, color]],
        showscale=False,
        showlegend=False,
        legendgroup=name,
        name=name,
        hovertext=[hover],
        hoverinfo="text",
    )
    return [line, cone]


def _plane_3d(normal: np.ndarray, radius: float, name: str, show_legend: bool) -> go.Mesh3d:
    """The plane d · normal = 0 (boundary of the half-space that conflicts with ``normal``)."""
    unit = normal / np.linalg.norm(normal)
    helper = np.eye(3)[int(np.argmin(np.abs(unit)))]
    first = np.cross(unit, helper)
    first /= np.linalg.norm(first)
    second = np.cross(unit, first)
    corners = np.array(
        [radius * (sx * first + sy * second) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    )
    return go.Mesh3d(
        x=corners[:, 0],
        y=corners[:, 1],
        z=corners[:, 2],
        i=[0, 0],
        j=[1, 2],
        k=[2, 3],
        color="rgb(214, 39, 40)",
        opacity=0.07,
        name="conflict boundaries (d·gᵢ = 0)",
        legendgroup="conflict",
        showlegend=show_legend,
        hoverinfo="skip",
    )


def gradient_arrows(
    gradients: Sequence[Sequence[float]],
    outputs: Mapping[str, Sequence[float]] | None = None,
    names: Sequence[str] | None = None,
    *,
    show_conflict: bool = True,
    show_agreement: bool = False,
    colors: Mapping[str, str] | None = None,
    title: str = "Task gradients and the combined update",
) -> go.Figure:
    """Arrows from the origin for 2–3 task gradients (thin, task colours) and one per method output
    (thick, one distinct colour each, in the legend), with equal axis scaling and hover text giving
    each arrow's cosine and angle to every gradient.

    2-D: the conflict region — directions d with d·gᵢ < 0 for some i, one half-plane per gradient — is
    shaded lightly (darker where several overlap). 3-D vectors give a 3-D figure (lines and cones);
    there the boundary planes d·gᵢ = 0 are drawn translucent.

    ``show_agreement`` (2-D) shades instead the directions that lower every task's loss (d·gᵢ > 0 for
    all i, the dual cone), nothing when there is none. An update of (numerically) zero length is a
    ring at the origin with "(zero)" in the legend; one equal to an earlier method's says "(= that one)".
    """
    if is_empty(gradients):
        return empty_figure(title)
    matrix = _check_vectors(gradients, "gradients")
    names = _default_names(len(matrix)) if names is None else check_labels(names, "names", length=len(matrix))
    results = _check_outputs(outputs, dimension=matrix.shape[1])
    arrows = _arrows(matrix, names, results, _gradient_colors(names, colors))
    longest = max(np.linalg.norm(arrow.vector) for arrow in arrows)
    radius = 1.2 * longest if longest > 0 else 1.0
    if matrix.shape[1] == 2:
        return _figure_2d(arrows, matrix, radius, show_conflict, title, show_agreement)
    return _figure_3d(arrows, matrix, names, radius, show_conflict, title)


def _check_outputs(outputs: Mapping[str, Sequence[float]] | None, dimension: int) -> dict[str, np.ndarray]:
    """The method outputs as vectors of the gradients' ``dimension``, in the given order."""
    outputs = {} if outputs is None else outputs
    if not isinstance(outputs, Mapping):
        raise ValueError(f"`outputs` must be a dict method → vector, got {type(outputs).__name__}")
    methods = check_labels(list(outputs), "outputs")
    return {
        method: as_vector(outputs[method], f"outputs['{method}']", length=dimension) for method in methods
    }


def _gradient_colors(names: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, str]:
    """Each gradient's colour: the one given in ``colors``, else a grey of :data:`_GRADIENT_GREYS`."""
    if colors is not None and not isinstance(colors, Mapping):
        raise ValueError(f"`colors` must be a mapping gradient name → colour, got {type(colors).__name__}")
    return {
        name: (colors or {}).get(name, _GRADIENT_GREYS[index % len(_GRADIENT_GREYS)])
        for index, name in enumerate(names)
    }


def _arrows(
    matrix: np.ndarray,
    names: Sequence[str],
    results: Mapping[str, np.ndarray],
    gradient_colors: Mapping[str, str],
) -> list[_Arrow]:
    """The gradients' arrows, then one per method output, each hover naming its cosines and angles
    (names escaped with :func:`plot_text`: they are drawn as text, colours are looked up by the raw name)."""
    method_colors = series_colors(list(results))
    shown = [plot_text(name) for name in names]
    arrows = [
        _Arrow(gradient, label, gradient_colors[name], _describe(label, gradient, matrix, shown, label), True)
        for gradient, name, label in zip(matrix, names, shown)
    ]
    # Arrows that coincide would hide each other: the legend says which are zero or equal to another.
    tolerance = _SAME_ARROW * max(float(np.linalg.norm(matrix, axis=1).max()), 1e-12)
    drawn: dict[str, np.ndarray] = {}
    for method, vector in results.items():
        label = plot_text(method)
        zero = float(np.linalg.norm(vector)) <= tolerance
        twin = next((other for other, seen in drawn.items() if np.linalg.norm(seen - vector) <= tolerance), None)
        legend = f"{label} (zero)" if zero else (f"{label} (= {twin})" if twin else label)
        hover = _describe(label, vector, matrix, shown, "d")
        arrows.append(_Arrow(vector, legend, method_colors[method], hover, False, zero))
        drawn[label] = vector
    return arrows


def _conflict_regions_2d(matrix: np.ndarray, radius: float) -> list[go.Scatter]:
    """One shaded half-plane d·gᵢ < 0 per non-zero gradient; the first stands for all in the legend."""
    # A box well beyond the visible range, so the shading fills the plot whatever its aspect.
    box = [np.array(corner, dtype=float) * 4 * radius for corner in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    regions = [np.array(_clip_half_plane(box, gradient)) for gradient in matrix if np.any(gradient)]
    return [
        go.Scatter(
            x=[*region[:, 0], region[0, 0]],
            y=[*region[:, 1], region[0, 1]],
            mode="lines",
            fill="toself",
            fillcolor=CONFLICT_FILL,
            line={"width": 0},
            name=_CONFLICT_NAME,
            legendgroup="conflict",
            showlegend=index == 0,
            hoverinfo="skip",
        )
        for index, region in enumerate(regions)
    ]


def _agreement_region_2d(matrix: np.ndarray, radius: float) -> list[go.Scatter]:
    """The directions with d·gᵢ > 0 for every non-zero gradient (one polygon, the dual cone), or
    nothing where they are only a line or a point (gradients that surround the origin)."""
    region = [np.array(corner, dtype=float) * 4 * radius for corner in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    for gradient in matrix:
        if np.any(gradient) and len(region) >= 3:
            region = _clip_half_plane(region, -gradient)
    if len(region) < 3:
        return []
    corners = np.array(region)
    x, y = corners[:, 0], corners[:, 1]
    if 0.5 * abs(float(x @ np.roll(y, 1) - y @ np.roll(x, 1))) <= 1e-9 * radius * radius:
        return []
    return [
        go.Scatter(
            x=[*x, x[0]],
            y=[*y, y[0]],
            mode="lines",
            fill="toself",
            fillcolor=_AGREEMENT_FILL,
            line={"width": 0},
            name=_AGREEMENT_NAME,
            legendgroup="agreement",
            hoverinfo="skip",
        )
    ]


def _figure_2d(
    arrows: Sequence[_Arrow],
    matrix: np.ndarray,
    radius: float,
    show_conflict: bool,
    title: str,
    show_agreement: bool = False,
) -> go.Figure:
    fig = go.Figure()
    if show_agreement:
        fig.add_traces(_agreement_region_2d(matrix, radius))
    if show_conflict:
        fig.add_traces(_conflict_regions_2d(matrix, radius))
    traces = [_arrow_2d(arrow) for arrow in arrows]
    for rank, trace in enumerate(traces, start=1):
        trace.legendrank = rank  # the legend lists the gradients first, as given
    # the task gradients are drawn last, on top: the thick method arrows would otherwise hide them
    fig.add_traces([t for t, a in zip(traces, arrows) if not a.is_gradient]
                   + [t for t, a in zip(traces, arrows) if a.is_gradient])
    finish_layout(fig, title=title, x_title="x₁", y_title="x₂", legend_title="vectors")
    fig.update_xaxes(range=[-radius, radius], zeroline=True, zerolinecolor="#999999", constrain="domain")
    fig.update_yaxes(
        range=[-radius, radius],
        zeroline=True,
        zerolinecolor="#999999",
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
    )
    return fig


def _figure_3d(
    arrows: Sequence[_Arrow],
    matrix: np.ndarray,
    names: Sequence[str],
    radius: float,
    show_conflict: bool,
    title: str,
) -> go.Figure:
    fig = go.Figure()
    if show_conflict:
        normals = [(gradient, name) for gradient, name in zip(matrix, names) if np.any(gradient)]
        fig.add_traces(
            [
                _plane_3d(gradient, radius, name, show_legend=index == 0)
                for index, (gradient, name) in enumerate(normals)
            ]
        )
    for arrow in arrows:
        fig.add_traces(_arrow_3d(arrow, head=0.12 * radius))
    finish_layout(fig, title=title, legend_title="vectors")
    axis = {"range": [-radius, radius], "zeroline": True}
    fig.update_layout(
        scene={
            "xaxis": {**axis, "title": {"text": "x₁"}},
            "yaxis": {**axis, "title": {"text": "x₂"}},
            "zaxis": {**axis, "title": {"text": "x₃"}},
            "aspectmode": "cube",
        }
    )
    return fig
