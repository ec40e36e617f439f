"""Exports: a run or a study as JSON and CSV, a figure as interactive HTML (and PNG when a static
image exporter is installed). Used by ``python -m mtl_core export`` and by the dashboard's download
buttons; every function returns the text / bytes, and writes a file too when given a path.

* A **run** is what :meth:`mtl_core.runs.store.RunStore.export_run` returns (``mtl_lab.run_export/1``: the
  run, its metric rows, probe records and result) or a ``run.json`` record of the trainer.
  :func:`run_to_csv` writes metric rows in the columns of ``runs export --format csv``
  (``run_id, step, epoch, task, key, value``); :func:`history_to_csv` writes a ``run.json``'s
  per-epoch history.
* A **study** is ``study.json`` (:mod:`mtl_core.studies.study`, ``mtl_lab.study/1``). :func:`study_to_csv`
  writes one row per transfer-matrix cell (target ≠ partner): ``target, partner, mean, ci_low,
  ci_high, p_value`` — transfer(target ← partner), positive = the partner helps — then
  ``p_adjusted`` (Holm-adjusted over the cells; computed for a study written before it was stored), ``n`` (seeds),
  ``metric``, ``cosine`` and ``affinity`` (TAG Z_{partner→target}) when the study has them.
* A **figure** is a ``plotly.graph_objects.Figure`` (or its JSON / dict form). HTML embeds
  plotly.js by default, so the file works offline. PNG needs the optional ``kaleido`` package,
  which MTL Lab does not require: without it :func:`figure_to_png` raises :class:`ExportError`.

JSON is strict (NaN and infinities become ``null``). Every CSV of MTL Lab is written by :func:`csv_text`:
a text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) is written with a leading ``'``; numbers stay numbers.
plotly is imported only when a figure is exported.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtl_core.errors import MTLError

__all__ = [
    "ExportError",
    "RUN_CSV_COLUMNS",
    "HISTORY_CSV_COLUMNS",
    "STUDY_CSV_COLUMNS",
    "to_jsonable",
    "csv_cell",
    "csv_text",
    "frame_to_csv",
    "run_to_json",
    "run_to_csv",
    "history_to_csv",
    "load_json_file",
    "study_cells",
    "study_to_json",
    "study_to_csv",
    "static_export_available",
    "as_figure",
    "figure_to_html",
    "figure_to_png",
    "figure_to_json",
    "figure_from_json",
    "export_figure",
    "write_export",
]

RUN_CSV_COLUMNS = ("run_id", "step", "epoch", "task", "key", "value")
HISTORY_CSV_COLUMNS = ("epoch", "task", "key", "value")
STUDY_CSV_COLUMNS = ("target", "partner", "mean", "ci_low", "ci_high", "p_value", "p_adjusted", "n", "metric", "cosine",
                     "affinity")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_STUDY_FORMAT = "mtl_lab.study/1"


class ExportError(MTLError):
    """Something cannot be exported: bad input data, no static image exporter, an unwritable path."""


# --- helpers -----------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, numpy / torch values as Python ones, and NaN / ±inf as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):
        return to_jsonable(value._asdict())
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def _is_number_literal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: Any) -> str:
    """One CSV cell as text: None empty, booleans ``true`` / ``false``, numbers as Python writes them
    (``-0.25`` stays a number), and text that a spreadsheet would run as a formula — starting with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return, and not a number — with a leading ``'`` (OWASP's
    advice against CSV injection), so a task named ``=cmd|' /C calc'!A0`` stays text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number_literal(text):
        return "'" + text
    return text


def csv_text(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """The one CSV writer of MTL Lab (the CLI's exports and the pages' downloads): a header line, then
    one line per row, every cell written by :func:`csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(name) for name in header])
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def frame_to_csv(frame: Any) -> str:
    """A pandas DataFrame (its columns, not its index) as CSV by :func:`csv_text`; missing values are
    empty cells, as ``DataFrame.to_csv`` writes them."""
    rows = ([None if _is_missing(value) else value for value in row]
            for row in frame.itertuples(index=False, name=None))
    return csv_text(list(frame.columns), rows)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
                             and math.isnan(value))


def write_export(content: str | bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``content`` to ``path`` (text as UTF-8); :class:`ExportError` when that fails."""
    target = Path(path).expanduser()
    try:
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write `{target}`: {exc.strerror or exc}") from None
    return target


def _output(content: str | bytes, path: str | os.PathLike[str] | None) -> Any:
    return content if path is None else write_export(content, path)


def load_json_file(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON content of ``path``; :class:`ExportError` naming ``what`` when it is not JSON."""
    source = Path(path).expanduser()
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no such file: `{source}`") from None
    except (OSError, UnicodeError) as exc:
        raise ExportError(f"`{source}` cannot be read: {exc}") from None
    except ValueError as exc:
        raise ExportError(f"`{source}` must be a {what} JSON file, but it is not JSON ({exc})") from None


# --- runs --------------------------------------------------------------------------------------------


def run_to_json(record: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """A run as strict, indented JSON: an ``export_run`` dict, a ``run.json`` record or a
    :class:`~mtl_core.runs.store.RunRecord`. Returns the text, or the written path."""
    if not isinstance(record, Mapping) and not hasattr(record, "to_dict"):
        raise ExportError(f"`record` must be a run (a dict or a RunRecord), got {type(record).__name__}")
    return _output(_dumps(record), path)


def _metric_row(row: Any, index: int) -> tuple[Any, Any, Any, Any, Any]:
    if hasattr(row, "_asdict"):
        row = row._asdict()
    if isinstance(row, Mapping):
        try:
            return row["step"], row.get("epoch"), row.get("task"), row["key"], row.get("value")
        except KeyError as exc:
            raise ExportError(f"`rows[{index}]` must have step, epoch, task, key and value; missing {exc}") from None
    if isinstance(row, Sequence) and not isinstance(row, str) and len(row) == 5:
        return tuple(row)  # type: ignore[return-value]
    raise ExportError(f"`rows[{index}]` must be a metric row (step, epoch, task, key, value), got {row!r}")


def run_to_csv(rows: Any, run_id: int | None = None, path: str | os.PathLike[str] | None = None) -> Any:
    """Metric rows (``RunStore.metrics_after`` rows, dicts or 5-tuples ``step, epoch, task, key,
    value``) as CSV in the columns of ``runs export --format csv``. ``rows`` may also be a whole
    ``export_run`` dict (its ``metrics``; ``run_id`` from its run)."""
    if isinstance(rows, Mapping):
        if "metrics" not in rows:
            raise ExportError("`rows` must be metric rows or a run export with `metrics`; this dict has no `metrics`"
                              + (" (a run.json record? use history_to_csv)" if "history" in rows else ""))
        if run_id is None:
            run = rows.get("run")
            run_id = run.get("id") if isinstance(run, Mapping) else None
        rows = rows["metrics"]
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise ExportError(f"`rows` must be a list of metric rows, got {type(rows).__name__}")
    lines = []
    for index, row in enumerate(rows):
        step, epoch, task, key, value = _metric_row(row, index)
        lines.append([run_id, step, epoch, task, key, math.nan if value is None else float(value)])
    return _output(csv_text(RUN_CSV_COLUMNS, lines), path)


def history_to_csv(record: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Any:
    """A ``run.json`` record's per-epoch history (and test metrics) as CSV ``epoch, task, key, value``:
    one row per task value (``train_loss``, ``val_loss``, ``val_metric``, …), run-level numbers with
    an empty task, then ``test_metric`` / ``test_loss`` per task with an empty epoch."""
    if not isinstance(record, Mapping) or not isinstance(record.get("history"), list):
        raise ExportError("`record` must be a run.json record with a `history` list")
    lines = []
    for index, epoch_record in enumerate(record["history"]):
        if not isinstance(epoch_record, Mapping):
            raise ExportError(f"`history[{index}]` must be a dict, got {type(epoch_record).__name__}")
        epoch = epoch_record.get("epoch")
        for key, value in epoch_record.items():
            if key in ("epoch", "epochs", "step"):
                continue
            if isinstance(value, Mapping):
                lines.extend([epoch, task, key, v] for task, v in value.items())
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append([epoch, None, key, value])
    final = record.get("final_metrics") or {}
    if isinstance(final, Mapping):
        for task, values in final.items():
            if isinstance(values, Mapping):
                for source, key in (("value", "test_metric"), ("loss", "test_loss")):
                    if source in values:
                        lines.append([None, task, key, values[source]])
    return _output(csv_text(HISTORY_CSV_COLUMNS, lines), path)


# --- studies -----------------------------------------------------------------------------------------


def _square(value: Any, size: int, name: str) -> list[list[Any]] | None:
    if value is None:
        return None
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != size
            or any(not isinstance(row, Sequence) or isinstance(row, str) or len(row) != size for row in value)):
        raise ExportError(f"`{name}` must be a {size} × {size} matrix (one row and column per task)")
    return [list(row) for row in value]


def _holm(p_values: list[list[Any]]) -> list[list[float | None]]:
    """Holm-adjusted p-values of a study that did not store them (written before they existed)."""
    from mtl_core.analysis.transfer import holm_adjust, nan_to_none

    numbers = [[_cell_number(v, f"transfer.p_value[{i}][{j}]") for j, v in enumerate(row)]
               for i, row in enumerate(p_values)]
    return nan_to_none(holm_adjust([[math.nan if v is None else v for v in row] for row in numbers]))


def _cell_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExportError(f"`{name}` must hold numbers or null, got {value!r}")
    return float(value) if math.isfinite(value) else None


def study_cells(study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The off-diagonal cells of a study's transfer matrix, one dict per (target, partner), with the
    keys of :data:`STUDY_CSV_COLUMNS` (None where the study has no value)."""
    if not isinstance(study, Mapping):
        raise ExportError(f"`study` must be a study.json dict ({_STUDY_FORMAT}), got {type(study).__name__}")
    tasks = study.get("tasks")
    transfer = study.get("transfer")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise ExportError(f"`study` must be a study.json ({_STUDY_FORMAT}) with a list of `tasks`")
    if not isinstance(transfer, Mapping) or transfer.get("mean") is None:
        raise ExportError(f"`study` must be a study.json ({_STUDY_FORMAT}) with a `transfer` matrix (`transfer.mean`)")
    size = len(tasks)
    matrices = {key: _square(transfer.get(key), size, f"transfer.{key}") for key in ("mean", "ci_low", "ci_high",
                                                                                     "p_value", "p_adjusted", "n")}
    if matrices["p_adjusted"] is None and matrices["p_value"] is not None:
        matrices["p_adjusted"] = _holm(matrices["p_value"])
    cosine = _square(study.get("cosine"), size, "cosine")
    affinity = _square(study.get("affinity"), size, "affinity")
    metric_info = (study.get("metric") or {}).get("tasks") if isinstance(study.get("metric"), Mapping) else None
    cells = []
    for i, target in enumerate(tasks):
        metric = None
        if isinstance(metric_info, Mapping) and isinstance(metric_info.get(target), Mapping):
            metric = metric_info[target].get("name")
        for j, partner in enumerate(tasks):
            if i == j:
                continue
            cell: dict[str, Any] = {"target": target, "partner": partner}
            for key in ("mean", "ci_low", "ci_high", "p_value", "p_adjusted"):
                matrix = matrices[key]
                cell[key] = _cell_number(matrix[i][j], f"transfer.{key}[{i}][{j}]") if matrix else None
            count = matrices["n"][i][j] if matrices["n"] else None
            cell["n"] = int(count) if isinstance(count, (int, float)) and not isinstance(count, bool) \
                and math.isfinite(count) else None
            cell["metric"] = metric if isinstance(metric, str) else None
            cell["cosine"] = _cell_number(cosine[i][j], f"cosine[{i}][{j}]") if cosine else None
            cell["affinity"] = _cell_number(affinity[j][i], f"affinity[{j}][{i}]") if affinity else None
            cells.append(cell)
    return cells


def study_to_json(study: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Any:
    """A study as strict, indented JSON (checked to hold a transfer matrix)."""
    study_cells(study)
    return _output(_dumps(study), path)


def study_to_csv(study: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Any:
    """A study's transfer-matrix cells as CSV (:data:`STUDY_CSV_COLUMNS`)."""
    rows = [[cell[key] for key in STUDY_CSV_COLUMNS] for cell in study_cells(study)]
    return _output(csv_text(STUDY_CSV_COLUMNS, rows), path)


# --- figures -----------------------------------------------------------------------------------------


def static_export_available() -> bool:
    """Whether a static image exporter (``kaleido``) is installed, i.e. PNG export can work."""
    return importlib.util.find_spec("kaleido") is not None


def as_figure(fig: Any) -> Any:
    """``fig`` as a ``plotly.graph_objects.Figure`` (a Figure, its dict form, or its JSON text)."""
    import plotly.graph_objects as go

    if isinstance(fig, go.Figure):
        return fig
    if isinstance(fig, str):
        return figure_from_json(fig)
    if isinstance(fig, Mapping):
        try:
            return go.Figure(dict(fig))
        except (ValueError, TypeError) as exc:
            raise ExportError(f"`fig` is not a valid plotly figure: {_first_line(exc)}") from None
    raise ExportError(f"`fig` must be a plotly Figure (or its dict / JSON form), got {type(fig).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def figure_to_html(fig: Any, path: str | os.PathLike[str] | None = None, *, include_plotlyjs: bool | str = True
                   ) -> Any:
    """The figure as a standalone interactive HTML page (plotly.js embedded unless
    ``include_plotlyjs="cdn"``). Returns the HTML text, or the written path."""
    figure = as_figure(fig)
    html = figure.to_html(include_plotlyjs=include_plotlyjs, full_html=True)
    return _output(html, path)


def figure_to_png(fig: Any, path: str | os.PathLike[str] | None = None, *, scale: float = 2.0,
                  width: int | None = None, height: int | None = None) -> Any:
    """The figure as a PNG image (bytes, or the written path). Needs ``kaleido``: without it, or
    when it fails (kaleido ≥ 1 also needs a Chrome browser), raises :class:`ExportError`."""
    figure = as_figure(fig)
    if not static_export_available():
        raise ExportError("PNG export needs a static image exporter: install the optional `kaleido` package "
                          "(pip install kaleido); interactive HTML export works without it")
    try:
        image = figure.to_image(format="png", scale=scale, width=width, height=height)
    except Exception as exc:  # the exporter's own failures (no browser, timeouts) become one clear line
        raise ExportError(f"PNG export failed in the static image exporter (kaleido): {_first_line(exc)}") from None
    return _output(image, path)


def figure_to_json(fig: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """The figure as plotly JSON (what :func:`figure_from_json` and ``export figure FILE`` read)."""
    return _output(as_figure(fig).to_json(), path)


def figure_from_json(text: str) -> Any:
    """A figure from plotly JSON text; :class:`ExportError` when it is not one."""
    import plotly.io as pio

    try:
        return pio.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ExportError(f"not a plotly figure JSON: {_first_line(exc)}") from None


_FIGURE_WRITERS = {".html": figure_to_html, ".htm": figure_to_html, ".png": figure_to_png, ".json": figure_to_json}


def export_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write the figure in the format its path's suffix names: ``.html``, ``.png`` or ``.json``."""
    suffix = Path(path).suffix.lower()
    writer = _FIGURE_WRITERS.get(suffix)
    if writer is None:
        raise ExportError(f"the figure file name must end in .html, .png or .json, got {str(path)!r}")
    return writer(fig, path)
