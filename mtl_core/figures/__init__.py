"""Figures of the MTL Lab dashboard: pure functions, validated data in → ``plotly.graph_objects.Figure``
out (no I/O, no Streamlit, no torch), in the manner of plotly's figure factories.

Pages and the CLI import it as ``from mtl_core import figures`` (plotly and numpy, imported on use).
Data are plain Python / pandas values; the app's services (``app/services/``) convert run-store records to them.

Conventions: cosines and transfer use a red-blue scale centred on 0 (red = conflict / negative
transfer); every task-coloured figure takes ``colors=`` (default :func:`task_colors` of its tasks) so
that one ``task_colors(run_tasks)`` keeps a task's colour the same across a page; empty data give a
figure that says "No data yet" instead of raising; invalid data raise ``ValueError`` naming the
argument. Every name a figure draws (task, column, suite, method, run) is shown literally: it goes
through :func:`plot_text`, since plotly.js reads tags and entities in its text; a ``title=`` is plotly
text, so a caller who puts a user string in it escapes that string with :func:`plot_text`.
"""

from __future__ import annotations

from mtl_core.figures._common import EMPTY_MESSAGE, empty_figure, plot_text, series_colors, task_colors
from mtl_core.figures.architectures import gate_heatmap
from mtl_core.figures.classroom import class_panels, class_summary
from mtl_core.figures.gradients import (
    cosine_heatmap,
    cosine_timeseries,
    norm_ratio_timeseries,
    weights_timeseries,
)
from mtl_core.figures.playground import gradient_arrows
from mtl_core.figures.relations import (
    affinity_heatmap,
    cluster_order,
    forecast_figure,
    groupings_figure,
    measured_vs_predicted,
    transfer_heatmap,
)
from mtl_core.figures.training import (
    compare_bars,
    loss_curves,
    metric_curves,
    overlay_curves,
    step_loss_curves,
)

__all__ = [
    "EMPTY_MESSAGE",
    "empty_figure",
    "plot_text",
    "task_colors",
    "series_colors",
    "loss_curves",
    "step_loss_curves",
    "metric_curves",
    "overlay_curves",
    "compare_bars",
    "cosine_heatmap",
    "cosine_timeseries",
    "norm_ratio_timeseries",
    "weights_timeseries",
    "transfer_heatmap",
    "affinity_heatmap",
    "cluster_order",
    "groupings_figure",
    "measured_vs_predicted",
    "forecast_figure",
    "gradient_arrows",
    "gate_heatmap",
    "class_panels",
    "class_summary",
]
