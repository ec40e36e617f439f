"""Architectures: how MMoE / PLE gates spread each task over the experts (Ma et al. 2018; Tang et al.
2020)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from mtl_core.figures._common import (
    as_vector,
    check_labels,
    empty_figure,
    is_empty,
    matrix_heatmap,
    plot_text,
)

__all__ = ["gate_heatmap"]


def gate_heatmap(
    weights: Mapping[str, Sequence[float]],
    expert_labels: Sequence[str],
    *,
    title: str = "Gate weights per task",
) -> go.Figure:
    """Rows = tasks, columns = experts, cell = the task's mean gate weight on the expert (a sequential
    white-to-blue scale from 0; a softmax gate's weights lie in [0, 1]). PLE's task-specific experts
    are simply more columns (label them e.g. "shared 1", "task a 1")."""
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"`weights` must be a dict task → list of gate weights, got {type(weights).__name__}"
        )
    if is_empty(weights) or is_empty(expert_labels):
        return empty_figure(title)
    tasks = check_labels(list(weights), "weights")
    experts = check_labels(expert_labels, "expert_labels")
    values = np.stack([as_vector(weights[task], f"weights['{task}']", length=len(experts)) for task in tasks])
    if np.any(values < 0):
        row, column = np.argwhere(values < 0)[0]
        raise ValueError(f"`weights['{tasks[row]}'][{column}]` must be ≥ 0, got {values[row, column]}")
    text = [[f"{value:.2f}" for value in row] for row in values]
    tasks, experts = [plot_text(task) for task in tasks], [plot_text(expert) for expert in experts]
    hover = [
        [f"gate({task} → {expert}) = {value:.3f}" for expert, value in zip(experts, row)]
        for task, row in zip(tasks, values)
    ]
    fig = matrix_heatmap(
        values,
        x_labels=experts,
        y_labels=tasks,
        text=text,
        hover=hover,
        colorscale="Blues",
        zmin=0.0,
        zmax=max(1.0, float(values.max())),
        zmid=None,
        colorbar_title="gate weight",
        title=title,
        x_title="expert",
        y_title="task",
        square_cells=False,
    )
    return fig
