"""A finished transfer study (``study.json``, :mod:`mtl_core.studies.study`) as one self-contained HTML
file: for a paper's supplement, a teacher's handout, or a colleague without MTL Lab.

The file holds plotly.js once (not once per figure) and every figure as plotly JSON drawn with
``Plotly.newPlot``, so it opens offline in any browser; a 10-task study stays under 5 MB (plotly.js
itself is about 4.8 MB). The figures are the dashboard's own (:mod:`mtl_core.figures`); the plotly
template they share is written once too.

Sections: the protocol and the conventions (sign of transfer, what a cell is, Holm's correction), the
suite and its options, pairwise transfer with its CIs and significance, TAG affinity and mean gradient
cosine (when measured), the best groupings by each source, measured vs predicted for each grouping
trained (``evaluations``: :func:`trained_groupings`), the early forecast (when the study has one), one
row per run, and the command that reproduces the study (:func:`reproduce_command`).

Every name a user chose (tasks, suites, options) is HTML-escaped in the page and goes through
:func:`mtl_core.figures.plot_text` in the figures (the figure functions do it for the names they draw).

Use :func:`study_report` for the text (a Streamlit ``download_button`` takes it as is) and
:func:`write_report` to write it atomically; ``python -m mtl_core export report`` does both.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtl_core.runs.export import ExportError, study_cells

__all__ = [
    "REPORT_SECTIONS",
    "check_study",
    "reproduce_command",
    "study_report",
    "trained_groupings",
    "write_report",
]

_STUDY_FORMAT = "mtl_lab.study/1"
_RUN_FORMAT = "mtl_lab.run_export/1"

#: The ``id`` of each section of the report, in order (those without data are left out or say why).
REPORT_SECTIONS = ("protocol", "suite", "transfer", "affinity", "cosine", "groupings", "measured", "forecast",
                   "runs", "reproduce")


# --- input ---------------------------------------------------------------------------------------------


def check_study(study: Any, what: str = "the input") -> dict[str, Any]:
    """``study`` as a study dict, or :class:`ExportError` saying in one sentence what it is instead
    (a run, a grouping evaluation, another JSON) — ``what`` names the input in that sentence."""
    if not isinstance(study, Mapping):
        raise ExportError(f"{what} must be a study.json ({_STUDY_FORMAT}), got a JSON {type(study).__name__}")
    if study.get("format") == _RUN_FORMAT or "history" in study or ("run" in study and "metrics" in study):
        raise ExportError(f"{what} is a run, not a study: give a study.json (written by `study --out`) or a study id")
    if "measured_score" in study and "groups" in study:
        raise ExportError(f"{what} is a grouping evaluation, not a study: give the study it was trained from")
    if study.get("format") not in (None, _STUDY_FORMAT):
        raise ExportError(f"{what} must be a study.json ({_STUDY_FORMAT}), got format {study.get('format')!r}")
    try:
        study_cells(study)
    except ExportError as exc:
        raise ExportError(f"{what} is not a complete study: {exc}") from None
    return dict(study)


def trained_groupings(study_id: str, store: Any) -> list[dict[str, Any]]:
    """Measured vs predicted (:func:`mtl_core.studies.grouping_runs.collect_grouping`) of every grouping
    evaluation recorded for the study ``study_id`` in ``store``, oldest first, each with its ``id``,
    ``done`` and ``total`` runs; evaluations whose study cannot be read are left out."""
    from mtl_core.runs.store import StudyNotFoundError
    from mtl_core.studies.records import collect, list_studies

    out = []
    for info in reversed(list_studies(store, "grouping")):
        if info.manifest.get("study") != study_id:
            continue
        try:
            outcome = collect(info.group_id, store)
        except StudyNotFoundError:
            continue
        out.append({**outcome, "id": info.group_id, "done": info.done, "total": info.total})
    return out


# --- the reproducing command ---------------------------------------------------------------------------


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_option_text(v) for v in value)
    return str(value)


def _options(flag: str, values: Any) -> list[str]:
    out = []
    for name, value in sorted((values or {}).items()):
        out += [flag, f"{name}={_option_text(value)}"]
    return out


def reproduce_command(study: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The ``python -m mtl_core study …`` command line (as argv) that runs ``study`` again: its suite,
    tasks, options, model and optimiser settings, seeds and protocol, all spelled out, so that neither
    the suite's study defaults nor the engine's defaults can change it later. Also the caveats: what
    of the study the command cannot say (seeds that are not consecutive, task names with a comma)."""
    spec = study.get("spec") if isinstance(study.get("spec"), Mapping) else {}
    config = spec.get("config") if isinstance(spec.get("config"), Mapping) else study.get("config") or {}
    seeds = [int(s) for s in (spec.get("seeds") or study.get("seeds") or [0])]
    tasks = [str(t) for t in (config.get("tasks") or study.get("tasks") or [])]
    caveats = []
    argv = ["python", "-m", "mtl_core", "study", "--suite", str(config.get("suite", "planted"))]
    if tasks:
        argv += ["--tasks", ",".join(tasks)]
        if any("," in task or task != task.strip() for task in tasks):
            caveats.append("a task name holds a comma or surrounding spaces, which `--tasks` cannot express: "
                           "list the tasks in a --config file instead")
    argv += _options("--suite-opt", config.get("suite_options"))
    argv += ["--strategy", str(config.get("strategy", "hard")), *_options("--strategy-opt", config.get("strategy_options"))]
    argv += ["--method", str(config.get("method", "ew")), *_options("--method-opt", config.get("method_options"))]
    for flag, key in (("--batch-size", "batch_size"), ("--optimizer", "optimizer"), ("--lr", "lr"),
                      ("--weight-decay", "weight_decay")):
        if config.get(key) is not None:
            argv += [flag, _option_text(config[key])]
    if config.get("device") not in (None, "cpu"):
        argv += ["--device", str(config["device"])]
    argv += ["--probe-interval", str(spec.get("probe_interval", config.get("probe_interval", 5)))]
    if config.get("tag_interval") is not None:
        argv += ["--tag-interval", str(config["tag_interval"])]
    if config.get("jacobian_mode") not in (None, "auto"):
        argv += ["--jacobian-mode", str(config["jacobian_mode"])]
    if config.get("tag_lookahead") not in (None, "sgd"):
        caveats.append(f"TAG's lookahead was {config['tag_lookahead']!r}, which has no flag: set `tag_lookahead` "
                       "in a --config file")
    argv += ["--seed", str(seeds[0]), "--seeds", str(len(seeds))]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        caveats.append(f"the study's seeds {seeds} are not consecutive; the command runs "
                       f"{list(range(seeds[0], seeds[0] + len(seeds)))}")
    if "max_epochs" in spec:
        argv += ["--patience", str(spec.get("patience")), "--max-epochs", str(spec["max_epochs"])]
    elif config.get("epochs") is not None:
        # written before the protocol existed: its runs trained `epochs` epochs (StudySpec.from_dict)
        epochs = config["epochs"]
        patience = config.get("patience") if config.get("patience") is not None else epochs
        argv += ["--patience", str(patience), "--max-epochs", str(epochs)]
    if spec.get("tag"):
        argv.append("--tag")
    if spec.get("include_all"):
        argv.append("--all")
    argv += ["--metric", str(spec.get("metric", "best")), "--out", "study.json"]
    return argv, caveats


# --- figures -------------------------------------------------------------------------------------------


def _matrix(values: Any) -> list[list[float]] | None:
    if values is None:
        return None
    return [[math.nan if v is None else float(v) for v in row] for row in values]


def study_task_order(study: Mapping[str, Any]) -> list[int] | None:
    """The dashboard's task order for a study's heatmaps: a clustering of the first matrix with an
    off-diagonal value (transfer, else affinity, else cosine); None when there is none."""
    from mtl_core.figures import cluster_order

    size = len(study["tasks"])
    for candidate in ((study.get("transfer") or {}).get("mean"), study.get("affinity"), study.get("cosine")):
        matrix = _matrix(candidate)
        if matrix is not None and any(math.isfinite(matrix[i][j]) for i in range(size) for j in range(size) if i != j):
            return cluster_order(matrix) or None
    return None


class _Figures:
    """The report's figures as plotly JSON, each layout's template written once (``templates``)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int | None]] = []  # (div id, figure JSON, template index)
        self.templates: list[str] = []

    def add(self, fig: Any) -> str:
        data = json.loads(fig.to_json())
        template = data.get("layout", {}).pop("template", None)
        index = None
        if template is not None:
            text = json.dumps(template, separators=(",", ":"))
            if text not in self.templates:
                self.templates.append(text)
            index = self.templates.index(text)
        div = f"figure-{len(self.entries)}"
        self.entries.append((div, json.dumps(data, separators=(",", ":"), allow_nan=False), index))
        return f'<div class="figure" id="{div}"></div>'

    def script(self) -> str:
        templates = "[" + ",".join(self.templates) + "]"
        figures = ",".join(f'["{div}",{text},{"null" if index is None else index}]'
                           for div, text, index in self.entries)
        return _script_safe(
            f"const TEMPLATES={templates};\nconst FIGURES=[{figures}];\n"
            "for (const [id, fig, t] of FIGURES) {\n"
            "  if (t !== null) { fig.layout.template = TEMPLATES[t]; }\n"
            "  Plotly.newPlot(id, fig.data, fig.layout, {responsive: true, displaylogo: false});\n"
            "}\n")


def _script_safe(text: str) -> str:
    """JSON / JS text that cannot end its <script> element or open a comment in it: ``<``, ``>`` and
    ``&`` as JS escapes (they only occur inside strings in JSON), and the JS line separators."""
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# --- HTML helpers ----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}"


def _percent(value: Any) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{100 * value:+.2f} %"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _groups_text(groups: Sequence[Sequence[str]]) -> str:
    return " · ".join("{" + ", ".join(str(t) for t in group) + "}" for group in groups)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>'


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


# --- sections --------------------------------------------------------------------------------------------

_CONVENTION_NAMES = {"protocol": "Protocol", "transfer": "Transfer (sign, cells, Holm's correction)",
                     "delta_m": "Δm", "affinity": "TAG affinity", "cosine": "Gradient cosine",
                     "forecast": "Early forecast", "groupings": "Groupings"}

_DEFAULT_TRANSFER_CONVENTION = (
    "transfer[i][j] = transfer(i ← j): relative change of task i's validation metric when trained with task j "
    "vs alone, same seed; positive = j helps i. Mean, 95 % t CI and paired t-test p-value over seeds; "
    "significance after Holm's correction over the off-diagonal cells, α = 0.05.")


def _protocol_section(study: Mapping[str, Any]) -> str:
    from mtl_core.studies.study import protocol_text

    conventions = dict(study.get("conventions") or {})
    conventions.setdefault("transfer", _DEFAULT_TRANSFER_CONVENTION)
    spec = study.get("spec") or {}
    if {"patience", "max_epochs"} <= set(spec):
        conventions["protocol"] = protocol_text(spec["patience"], spec["max_epochs"], spec.get("metric", "best"))
    items = "".join(f"<dt>{_e(_CONVENTION_NAMES.get(key, key))}</dt><dd>{_e(text)}</dd>"
                    for key, text in conventions.items() if isinstance(text, str))
    body = ('<p class="lead">Sign of transfer: a cell in row i, column j is the change of task i\'s validation '
            "metric when task j trains with it instead of alone; positive (blue) = j helps i, negative (red) = "
            "negative transfer. * marks a cell significant after Holm's correction over all the cells "
            "tested.</p>" + f"<dl>{items}</dl>")
    stopping = (study.get("stopping") or {}).get("overall")
    if stopping:
        body += _p(f"Runs stopped after a median of {stopping['median']:g} epochs, between {stopping['min']} "
                   f"and {stopping['max']}; {stopping['at_max_epochs']} of {stopping['n']} reached the maximum.")
    return _section("protocol", "Protocol and conventions", body)


def _suite_section(study: Mapping[str, Any]) -> str:
    spec = study.get("spec") or {}
    config = spec.get("config") or study.get("config") or {}

    def options(key: str) -> str:
        values = config.get(key) or {}
        return ", ".join(f"{name} = {_option_text(value)}" for name, value in sorted(values.items())) or "—"

    rows = [
        ("suite", config.get("suite", "—")), ("suite options", options("suite_options")),
        ("sharing strategy", config.get("strategy", "—")), ("strategy options", options("strategy_options")),
        ("balancing method", config.get("method", "—")), ("method options", options("method_options")),
        ("optimizer", f"{config.get('optimizer', '—')}, lr {_option_text(config.get('lr'))}, weight decay "
                      f"{_option_text(config.get('weight_decay'))}, batch {_option_text(config.get('batch_size'))}"),
        ("seeds", ", ".join(str(s) for s in study.get("seeds") or [])),
        ("runs", f"{study.get('n_runs', '—')} ({study.get('n_failed', 0)} failed)"),
        ("all tasks together", "yes" if spec.get("include_all") else "no"),
        ("TAG affinity", "yes" if spec.get("tag") else "no"),
        ("gradient probes", f"every {spec.get('probe_interval', '—')} steps"),
        ("metric", "best validation epoch" if spec.get("metric", "best") == "best" else "last epoch"),
    ]
    metric_info = (study.get("metric") or {}).get("tasks") or {}
    tasks = [(task, (metric_info.get(task) or {}).get("name", "—"),
              "higher" if (metric_info.get(task) or {}).get("higher_is_better") else "lower")
             for task in study["tasks"]]
    body = _table(("setting", "value"), rows, "settings") + "<h3>Tasks</h3>" + _table(
        ("task", "validation metric", "better"), tasks)
    if study.get("planted_groups"):
        body += _p("The planted suite hid these groups: " + _groups_text(study["planted_groups"]) + ".")
    return _section("suite", "Suite and options", body)


def _transfer_section(study: Mapping[str, Any], plots: _Figures, order: list[int] | None) -> str:
    from mtl_core import figures

    transfer = study["transfer"]
    fig = figures.transfer_heatmap(transfer["mean"], transfer.get("ci_low"), transfer.get("ci_high"),
                                   transfer.get("p_value"), study["tasks"], order=order,
                                   p_adjusted=transfer.get("p_adjusted"))
    rows = []
    for cell in study_cells(study):
        low, high = cell["ci_low"], cell["ci_high"]
        ci = f"[{_percent(low)}, {_percent(high)}]" if low is not None and high is not None else "—"
        significant = cell["p_adjusted"] is not None and cell["p_adjusted"] < 0.05
        rows.append((cell["target"], cell["partner"], _percent(cell["mean"]), ci, _number(cell["p_value"], 3),
                     _number(cell["p_adjusted"], 3), "*" if significant else "", cell["n"] if cell["n"] else "—"))
    body = plots.add(fig) + _p(
        "Row i, column j: transfer(i ← j) in %, the change of task i's validation metric when trained with j "
        "instead of alone; positive = j helps i. Hover a cell for its 95 % interval, raw and Holm-adjusted p.")
    body += ("<details><summary>Every cell with its 95 % CI and p-values</summary>"
             + _table(("target i", "partner j", "transfer(i ← j)", "95 % CI", "p", "p (Holm)", "significant",
                       "seeds"), rows) + "</details>")
    overall = (study.get("delta_m") or {}).get("all")
    if overall and overall.get("mean") is not None:
        body += _p(f"All tasks together: Δm = {overall['mean']:+.2f} % against single-task "
                   "(positive = better than training each task alone).")
    return _section("transfer", "Pairwise transfer", body)


def _matrix_sections(study: Mapping[str, Any], plots: _Figures, order: list[int] | None) -> str:
    from mtl_core import figures

    tasks = study["tasks"]
    out = ""
    if study.get("affinity") is not None:
        fig = figures.affinity_heatmap(_matrix(study["affinity"]), tasks, order)
        out += _section("affinity", "TAG inter-task affinity", plots.add(fig) + _p(
            "Row i, column j: how much one training step on task i alone lowers task j's loss (positive = i "
            "helps j), measured inside the all-tasks runs."))
    elif (study.get("spec") or {}).get("tag"):
        out += _section("affinity", "TAG inter-task affinity", _p(
            "Not measured: " + (" ".join(study.get("notes") or []) or "the runs recorded no TAG affinity.")))
    if study.get("cosine") is not None:
        permutation = order or list(range(len(tasks)))
        matrix = _matrix(study["cosine"])
        reordered = [[matrix[i][j] for j in permutation] for i in permutation]
        fig = figures.cosine_heatmap(reordered, [tasks[i] for i in permutation], title="Mean gradient cosine")
        source = "all-tasks runs" if study.get("cosine_source") == "all" else "pair runs"
        out += _section("cosine", "Mean gradient cosine", plots.add(fig) + _p(
            f"Mean cosine between the task gradients on the shared weights during training ({source}): positive "
            "= the tasks pull the same way, negative = they conflict."))
    return out


def _groupings_section(study: Mapping[str, Any], plots: _Figures) -> str:
    from mtl_core import analysis, figures
    from mtl_core.studies.study import grouping_sources, score_unit

    sources = grouping_sources(study)
    stored = study.get("groupings") or {}
    body = ""
    for source, scores in sources.items():
        unit = score_unit(source)
        groupings = stored.get(source) or [g.to_dict() for g in analysis.best_groupings(scores, study["tasks"])]
        rows = [(g["k"], _groups_text(g["groups"]), unit.format(g["score"])) for g in groupings]
        body += f"<h3>From {_e(unit.name)}</h3>" + _table(("k (at most)", "groups", f"score ({unit.name})"), rows)
        suggestion = analysis.suggest_grouping(groupings)
        if suggestion.k is None or suggestion.alone_is_best:
            body += _p("Every task alone is predicted to do best by this source.")
            continue
        best = next(g for g in groupings if g["k"] == suggestion.k)
        task_scores = analysis.task_scores(scores.tolist(), [list(g) for g in best["groups"]], study["tasks"])
        factor = 100.0 if unit.percent else 1.0
        label = f"predicted {unit.name}" + (" (%)" if unit.percent else "")
        fig = figures.groupings_figure(best["groups"], {t: factor * v for t, v in task_scores.items()},
                                       score_label=label, title=f"Suggested grouping from {source} (k ≤ {best['k']})")
        body += plots.add(fig)
    if not body:
        body = _p("No matrix to group the tasks from yet.")
    return _section("groupings", "Best groupings by each source", body)


def _measured_section(evaluations: Sequence[Mapping[str, Any]], plots: _Figures) -> str:
    from mtl_core import figures
    from mtl_core.studies.grouping_runs import evaluation_summary
    from mtl_core.studies.study import score_unit

    body = ""
    for outcome in evaluations:
        made_by = score_unit(str(outcome.get("source", "transfer")))
        factor = 100.0 if made_by.percent else 1.0
        tasks = outcome.get("tasks") or {}
        predicted = {t: factor * v["predicted"] for t, v in tasks.items() if v.get("predicted") is not None}
        measured = {t: 100.0 * v["mean"] for t, v in tasks.items() if v.get("mean") is not None and t in predicted}
        title = f"{_groups_text(outcome.get('groups') or [])} from {made_by.source}"
        progress = (f" ({outcome['done']} of {outcome['total']} runs done)"
                    if outcome.get("total") and outcome.get("done", 0) < outcome["total"] else "")
        body += f"<h3>{_e(title + progress)}</h3>"
        fig = figures.measured_vs_predicted(predicted, measured, label="relative change vs alone (%)",
                                            predicted_label=None if made_by.percent else f"{made_by.name} (unitless)")
        body += plots.add(fig)
        if (outcome.get("measured_score") or {}).get("mean") is not None:
            body += _p(evaluation_summary(outcome))
    return _section("measured", "Measured vs predicted (groupings trained)", body) if body else ""


def _forecast_section(study: Mapping[str, Any], plots: _Figures) -> str:
    forecast = study.get("forecast")
    if not isinstance(forecast, Mapping) or not forecast.get("steps") or not forecast.get("signals"):
        return ""
    from mtl_core import figures
    from mtl_core.analysis.forecast import FORECAST_SIGNALS

    threshold = forecast.get("threshold", 0.8)
    sentences = []
    for name in forecast["signals"]:
        step = (forecast.get("reached") or {}).get(name)
        label = FORECAST_SIGNALS.get(name, name)
        label = label[:1].upper() + label[1:]
        sentences.append(f"{label} first ranks the pairs with ρ ≥ {threshold:g} at step {step}." if step is not None
                         else f"{label} never reaches ρ ≥ {threshold:g}.")
    total = forecast.get("total_steps")
    if total:
        sentences.append(f"The runs measuring them trained up to {total} steps.")
    body = plots.add(figures.forecast_figure(forecast)) + _p(
        "Spearman's ρ between the task pairs ranked by a cheap signal, accumulated up to each training step, "
        "and ranked by the final pairwise transfer (Standley et al. 2020; Fifty et al. 2021). " + " ".join(sentences))
    return _section("forecast", "Early forecast of transfer", body)


def _runs_section(study: Mapping[str, Any]) -> str:
    rows = []
    for row in study.get("runs") or []:
        metrics = ", ".join(f"{task}: {_number(value)}" for task, value in (row.get("metrics") or {}).items())
        epochs = row.get("stopped_epoch")
        epochs_text = "—" if epochs is None else f"{epochs} (best {row.get('best_epoch', '—')}, {row.get('stop_reason') or '—'})"
        rows.append((row.get("run_id", "—"), row.get("role", "—"), ", ".join(row.get("tasks") or []), row.get("seed", "—"),
                     row.get("status", "—"), epochs_text, metrics or "—", row.get("error") or ""))
    metric = "best validation metric" if (study.get("spec") or {}).get("metric", "best") == "best" else \
        "last validation metric"
    body = _table(("run", "role", "tasks", "seed", "status", "epochs (best, stop)", f"final metrics ({metric})",
                   "error"), rows, "runs")
    return _section("runs", "Runs", body)


def _reproduce_section(study: Mapping[str, Any]) -> str:
    argv, caveats = reproduce_command(study)
    body = (_p("From the root of an MTL Lab installation (or any folder where `python -m mtl_core` runs):")
            + f'<pre class="command"><code>{_e(shlex.join(argv))}</code></pre>')
    if caveats:
        body += "<ul>" + "".join(f"<li>{_e(c)}</li>" for c in caveats) + "</ul>"
    return _section("reproduce", "Reproduce this study", body)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f5f5f5}dt{font-weight:600;margin-top:.6em}dd{margin-left:1.2em}
pre.command{background:#f5f5f5;padding:.8em;white-space:pre-wrap;word-break:break-all}
.figure{width:100%;min-height:420px}.meta{color:#666}.notes{background:#fff8e1;padding:.5em 1em}
"""


def study_report(study: Mapping[str, Any], evaluations: Sequence[Mapping[str, Any]] = (), *,
                 generated: _dt.datetime | None = None) -> str:
    """The report of ``study`` (a ``study.json`` dict, :func:`check_study` checks it) as one HTML
    page (text; encode as UTF-8 to write or download). ``evaluations``: measured vs predicted of the
    groupings trained from it (:func:`trained_groupings`), drawn in its "measured" section."""
    import plotly
    import plotly.offline

    study = check_study(study, "the study")
    plots = _Figures()
    order = study_task_order(study)
    config = (study.get("spec") or {}).get("config") or study.get("config") or {}
    when = (generated or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Transfer study — {config.get('suite', '?')}: {', '.join(study['tasks'])}"
    header = f"<h1>{_e(title)}</h1>" + (
        f'<p class="meta">Study {_e(study.get("group_id", "—"))} · {len(study.get("seeds") or [])} seeds · '
        f"report generated {_e(when)} by MTL Lab · plotly.js {_e(plotly.__version__)} is embedded, so this file "
        "works offline.</p>")
    unfinished = [row for row in study.get("runs") or [] if row.get("status") not in ("done", "failed", "cancelled")]
    if unfinished:
        header += f'<p class="notes">Partial study: {len(unfinished)} of {len(study["runs"])} runs had not finished.</p>'
    if study.get("notes"):
        header += '<div class="notes">' + "".join(_p(note) for note in study["notes"]) + "</div>"
    sections = [
        _protocol_section(study),
        _suite_section(study),
        _transfer_section(study, plots, order),
        _matrix_sections(study, plots, order),
        _groupings_section(study, plots),
        _measured_section(evaluations, plots),
        _forecast_section(study, plots),
        _runs_section(study),
        _reproduce_section(study),
    ]
    plotly_js = plotly.offline.get_plotlyjs()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style>\n<script>{plotly_js}</script>\n</head><body>\n{header}\n"
            + "\n".join(section for section in sections if section)
            + f"\n<script>\n{plots.script()}</script>\n</body></html>\n")


def write_report(text: str, path: str | os.PathLike[str]) -> Path:
    """Write the report to ``path`` atomically (a temporary file beside it, then renamed), so a
    failed write leaves nothing behind and an existing file whole; :class:`ExportError` when the
    path cannot be written (a folder, a missing folder, no permission)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ExportError(f"the report path `{target}` is a folder; give a file name such as report.html")
    if not target.parent.is_dir():
        raise ExportError(f"cannot write the report to `{target}`: the folder `{target.parent}` does not exist")
    temporary = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp",
                                         delete=False) as handle:
            temporary = Path(handle.name)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as exc:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise ExportError(f"cannot write the report to `{target}`: {exc.strerror or exc}") from None
    return target
