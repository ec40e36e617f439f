"""Downloads of runs, studies and figures (:mod:`mtl_core.runs.export`, which imports no torch): the same
files ``python -m mtl_core export`` writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mtl_core.errors import MTLError
from mtl_core.runs.export import (
    ExportError,
    figure_to_html,
    figure_to_png,
    run_to_csv,
    run_to_json,
    static_export_available,
    study_cells,
    study_to_csv,
    study_to_json,
)
from services.catalog import store

if TYPE_CHECKING:  # the figures come from mtl_core.figures, which the pages import anyway
    import plotly.graph_objects as go

__all__ = [
    "ExportError",
    "run_json",
    "run_csv",
    "study_exportable",
    "study_json",
    "study_csv",
    "figure_html",
    "figure_png",
    "png_export_available",
]


def run_json(run_id: int) -> str:
    """Everything stored about a run (``mtl_lab.run_export/1``: the run, its metric rows, probes and
    result) as JSON — what ``python -m mtl_core export run ID`` writes."""
    return run_to_json(store().export_run(int(run_id)))


def run_csv(run_id: int) -> str:
    """A run's metric series as CSV: ``run_id, step, epoch, task, key, value``."""
    return run_to_csv(store().export_run(int(run_id)))


def study_exportable(result: Mapping[str, Any]) -> bool:
    """Whether a study's analysis holds a transfer value to export (not before its first pair is done)."""
    try:
        return any(cell["mean"] is not None for cell in study_cells(result))
    except ExportError:
        return False


def study_json(result: Mapping[str, Any]) -> str:
    """A study's analysis (``study.json``, as :func:`study_result` gives it) as JSON."""
    return study_to_json(result)


def study_csv(result: Mapping[str, Any]) -> str:
    """A study's transfer-matrix cells as CSV: target, partner, mean, ci_low, ci_high, p_value, p_adjusted, n,
    metric, cosine, affinity (one row per ordered pair of tasks)."""
    return study_to_csv(result)


def figure_html(fig: go.Figure) -> str:
    """A figure as a standalone interactive HTML page (plotly.js embedded: it works offline)."""
    return figure_to_html(fig)


def figure_png(fig: go.Figure) -> bytes:
    """A figure as a PNG image; raises :class:`ExportError` without the optional ``kaleido``."""
    return figure_to_png(fig)


_png_available: bool | None = None


def png_export_available() -> bool:
    """Whether PNG export can work (the optional ``kaleido`` package is installed); looked up once."""
    global _png_available
    if _png_available is None:
        _png_available = static_export_available()
    return _png_available


def study_report_problem(result: Mapping[str, Any]) -> str | None:
    """Why the study cannot be reported yet (one sentence), or None when it can."""
    from mtl_core.report import check_study

    try:
        check_study(result, "this study")
    except MTLError as exc:
        return str(exc)
    return None


def study_report_html(group_id: str, result: Mapping[str, Any]) -> str:
    """The study as one self-contained HTML page (:func:`mtl_core.report.study_report`): protocol, suite,
    heatmaps, groupings, the trained groupings found in the store, forecast, runs, the command."""
    from mtl_core.report import study_report, trained_groupings

    return study_report(result, trained_groupings(group_id, store()))
