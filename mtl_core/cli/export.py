"""``python -m mtl_core export run|study|figure|report``: runs and studies as JSON / CSV, figures as HTML /
PNG, a study as a one-file HTML report.

* ``export run ID|RUN.json [--format json|csv] [--out FILE]``: a stored run (the same output as
  ``runs export``) or a ``run.json`` written by ``train --out`` (CSV: its per-epoch history);
* ``export study STUDY.json [--format csv|json] [--out FILE]``: CSV has one row per transfer-matrix
  cell: target, partner, mean, ci_low, ci_high, p_value, p_adjusted, n, metric, cosine, affinity;
* ``export figure [FIGURE.json] [--run ID|RUN.json | --study STUDY.json] [--kind K] --out FILE``:
  a plotly figure JSON (as the dashboard downloads it), or a figure of a run (``--kind losses`` or
  ``metrics``) or of a study (``transfer``, ``cosine`` or ``affinity``) drawn by the dashboard's
  figure functions; the format follows ``--out``'s suffix: .html (interactive, works offline),
  .png (needs the optional ``kaleido`` package) or .json;
* ``export report --study ID|STUDY.json --out FILE.html``: a finished transfer study as one
  self-contained HTML file that works offline (:mod:`mtl_core.report`): protocol and conventions,
  suite and options, the transfer / affinity / cosine heatmaps, the best groupings, measured vs
  predicted for the groupings trained from it (found in the run store), the runs and the command
  that reproduces it. Written atomically; on bad input nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtl_core.cli import UsageError

__all__ = ["register", "RUN_FIGURES", "STUDY_FIGURES"]

RUN_FIGURES = ("losses", "metrics")
STUDY_FIGURES = ("transfer", "cosine", "affinity")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export runs and studies (JSON, CSV) and figures (HTML, PNG)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="export_command", metavar="WHAT", parser_class=type(parser))

    run = commands.add_parser("run", help="a stored run (by id) or a run.json file")
    run.add_argument("source", metavar="ID|RUN.json")
    run.add_argument("--format", choices=("json", "csv"), default="json")
    run.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    run.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    run.set_defaults(handler=run_command)

    study = commands.add_parser("study", help="a study.json (CSV: one row per transfer-matrix cell)")
    study.add_argument("file", metavar="STUDY.json")
    study.add_argument("--format", choices=("csv", "json"), default="csv")
    study.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    study.set_defaults(handler=study_command)

    figure = commands.add_parser("figure", help="a figure as interactive HTML, PNG or plotly JSON")
    figure.add_argument("file", nargs="?", metavar="FIGURE.json", help="a plotly figure JSON file")
    figure.add_argument("--run", metavar="ID|RUN.json", help="draw a figure of this run")
    figure.add_argument("--study", metavar="STUDY.json", help="draw a figure of this study")
    figure.add_argument("--kind", help=f"run: {', '.join(RUN_FIGURES)}; study: {', '.join(STUDY_FIGURES)}")
    figure.add_argument("--out", required=True, metavar="FILE", help="output file: .html, .png or .json")
    figure.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    figure.set_defaults(handler=figure_command)

    report = commands.add_parser("report", help="a study as one self-contained HTML report (works offline)")
    report.add_argument("--study", required=True, metavar="ID|STUDY.json",
                        help="a study id of the run store (Relationships page) or a study.json file")
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    report.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    report.set_defaults(handler=report_command)

    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _emit(text: str, out: str | None) -> None:
    from mtl_core.runs.export import write_export

    if out:
        write_export(text, out)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _run_id(source: str) -> int | None:
    """The run id ``source`` names, None when it names a file; a number too large to be a run id is
    a usage error."""
    text = source.strip()
    if not text.isdigit():
        return None
    from mtl_core.cli.runs import run_id

    try:
        return run_id(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None


def _run_json(path: str) -> dict[str, Any]:
    from mtl_core.runs.export import load_json_file

    record = load_json_file(path, "run.json")
    if not isinstance(record, Mapping) or not isinstance(record.get("history"), list):
        raise UsageError(f"`{path}` must be a run.json (written by `train --out`) with a `history` list")
    return dict(record)


def _store(home: str | None) -> Any:
    from mtl_core.runs.store import RunStore, default_store_path

    path = default_store_path(home)
    if not path.exists():
        raise UsageError(f"no run store at {path} yet (submit a run first, or set MTL_LAB_HOME)")
    return RunStore(path)


def run_command(args: argparse.Namespace) -> int:
    run_id = _run_id(args.source)
    if run_id is not None:
        # a stored run: exactly what `runs export` gives
        from mtl_core.cli.runs import export_command

        return export_command(argparse.Namespace(id=run_id, format=args.format, out=args.out, home=args.home))
    from mtl_core.runs.export import history_to_csv, run_to_json

    record = _run_json(args.source)
    _emit(run_to_json(record) if args.format == "json" else history_to_csv(record), args.out)
    return 0


def study_command(args: argparse.Namespace) -> int:
    from mtl_core.runs.export import load_json_file, study_to_csv, study_to_json

    study = load_json_file(args.file, "study.json")
    _emit(study_to_csv(study) if args.format == "csv" else study_to_json(study), args.out)
    return 0


# --- figures -----------------------------------------------------------------------------------------

def dashboard_figures() -> Any:
    """The figure functions the dashboard draws with (:mod:`mtl_core.figures`: plotly, no torch)."""
    from mtl_core import figures

    return figures


def _history_from_metrics(rows: list[Any]) -> list[dict[str, Any]]:
    """Per-epoch records (as in run.json) from the epoch-level metric rows of a stored run."""
    keys = {"epoch_train_loss": "train_loss", "val_loss": "val_loss", "val_metric": "val_metric"}
    epochs: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.key in keys and row.task is not None and row.epoch is not None:
            record = epochs.setdefault(int(row.epoch), {"epoch": int(row.epoch)})
            record.setdefault(keys[row.key], {})[row.task] = row.value
    return [epochs[e] for e in sorted(epochs)]


def _run_for_figure(source: str, home: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """History records, task specs and a title for a run given by id or run.json path."""
    run_id = _run_id(source)
    if run_id is None:
        record = _run_json(source)
        return record["history"], list(record.get("tasks") or []), f"run {Path(source).name}"
    store = _store(home)
    result = store.get_result(run_id)
    store.get_run(run_id)  # a clear error for an unknown id
    if result and isinstance(result.get("history"), list):
        return result["history"], list(result.get("tasks") or []), f"run {run_id}"
    return _history_from_metrics(store.metrics_after(run_id)), [], f"run {run_id}"


def _build_figure(args: argparse.Namespace) -> Any:
    given = [name for name, value in (("FIGURE.json", args.file), ("--run", args.run), ("--study", args.study))
             if value]
    if len(given) != 1:
        raise UsageError("`export figure` needs exactly one of FIGURE.json, --run or --study, got "
                         f"{', '.join(given) if given else 'none'}")
    if args.file:
        if args.kind:
            raise UsageError("`--kind` goes with --run or --study, not with a figure JSON file")
        from mtl_core.runs.export import figure_from_json

        try:
            text = Path(args.file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise UsageError(f"`{args.file}` cannot be read: {exc}") from None
        return figure_from_json(text)
    figures = dashboard_figures()
    if args.run:
        kind = args.kind or "losses"
        if kind not in RUN_FIGURES:
            raise UsageError(f"`--kind` must be one of {', '.join(RUN_FIGURES)} for a run, got {kind!r}")
        history, tasks, title = _run_for_figure(args.run, args.home)
        if kind == "losses":
            # the title names the run (a file name the user chose): plotly would read tags in it
            return figures.loss_curves(history, title=f"Loss per task — {figures.plot_text(title)}")
        meta = {t["name"]: {"metric": t["metric"], "higher_is_better": t["higher_is_better"]}
                for t in tasks if isinstance(t, Mapping) and "name" in t}
        if not meta:
            raise UsageError(f"{title} has no task list yet (it has not finished); --kind losses works while it runs")
        return figures.metric_curves(history, meta,
                                     title=f"Validation metric per task — {figures.plot_text(title)}")
    from mtl_core.runs.export import load_json_file, study_cells

    kind = args.kind or "transfer"
    if kind not in STUDY_FIGURES:
        raise UsageError(f"`--kind` must be one of {', '.join(STUDY_FIGURES)} for a study, got {kind!r}")
    study = load_json_file(args.study, "study.json")
    study_cells(study)  # checks the study's shape
    from mtl_core.report import study_task_order

    tasks = study["tasks"]
    order = study_task_order(study)  # related tasks side by side, as on the Relationships page
    if kind == "transfer":
        transfer = study["transfer"]
        # p_adjusted is None for a study written before it was stored: the figure adjusts p_value then.
        return figures.transfer_heatmap(transfer["mean"], transfer.get("ci_low"), transfer.get("ci_high"),
                                        transfer.get("p_value"), tasks, p_adjusted=transfer.get("p_adjusted"),
                                        order=order)
    if not study.get(kind):
        raise UsageError(f"this study has no {kind} matrix" + (" (run the study with --tag)" if kind == "affinity"
                                                               else ""))
    if kind == "cosine":
        matrix = [[study["cosine"][i][j] for j in (order or range(len(tasks)))] for i in (order or range(len(tasks)))]
        return figures.cosine_heatmap(matrix, [tasks[i] for i in (order or range(len(tasks)))])
    return figures.affinity_heatmap(study["affinity"], tasks, order=order)


def figure_command(args: argparse.Namespace) -> int:
    from mtl_core.runs.export import export_figure

    try:
        fig = _build_figure(args)
    except ValueError as exc:  # the figure functions' own checks on the data
        raise UsageError(f"the figure cannot be drawn: {exc}") from None
    path = export_figure(fig, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return 0


# --- the study report --------------------------------------------------------------------------------

def _report_study(source: str, home: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The study ``source`` names (a study.json file, else a study id of the run store) and the
    groupings trained from it that the run store holds."""
    from mtl_core.report import check_study, trained_groupings
    from mtl_core.runs.export import load_json_file
    from mtl_core.runs.store import StudyNotFoundError, default_store_path

    path = Path(source).expanduser()
    store_path = default_store_path(home)
    if path.is_file():
        study = check_study(load_json_file(path, "study.json"), f"`{source}`")
    elif source.lower().endswith(".json") or os.sep in source or path.exists():
        raise UsageError(f"`--study` must be a study id or a study.json file, got `{source}`, which is "
                         + ("not a file" if path.exists() else "no file"))
    else:
        if not store_path.exists():
            raise UsageError(f"`--study`: no study `{source}`: there is no run store at {store_path} (give a "
                             "study.json file, or set MTL_LAB_HOME / --home)")
        from mtl_core.studies.records import collect

        store = _store(home)
        try:
            record = store.get_study(source)
        except StudyNotFoundError:
            raise UsageError(f"`--study`: no study `{source}` in the run store at {store_path}") from None
        if record.kind != "study":
            raise UsageError(f"`--study`: `{source}` is a {record.kind} evaluation, not a study; give the study "
                             f"it was trained from ({record.manifest.get('study', '?')})")
        study = check_study(collect(source, store), f"study `{source}`")
        return study, trained_groupings(source, store)
    evaluations: list[dict[str, Any]] = []
    group_id = study.get("group_id")
    if isinstance(group_id, str) and store_path.exists():
        from mtl_core.errors import MTLError

        try:  # a file's report does not need the store: one the store cannot give is left out
            evaluations = trained_groupings(group_id, _store(home))
        except MTLError:
            evaluations = []
    return study, evaluations


def report_command(args: argparse.Namespace) -> int:
    from mtl_core.report import study_report, write_report

    out = Path(args.out).expanduser()
    # The output path is checked before the study is read: a typo there costs nothing.
    if out.is_dir():
        raise UsageError(f"`--out` must be a file name such as report.html, got the folder `{args.out}`")
    if not out.parent.is_dir():
        raise UsageError(f"`--out`: the folder `{out.parent}` does not exist, got `{args.out}`")
    study, evaluations = _report_study(args.study, args.home)
    try:
        text = study_report(study, evaluations)
    except ValueError as exc:  # the figure functions' own checks on the study's numbers
        raise UsageError(f"the report cannot be drawn from `{args.study}`: {exc}") from None
    path = write_report(text, out)
    print(f"wrote {path} ({len(text.encode('utf-8')) / 1e6:.1f} MB)", file=sys.stderr)
    return 0
