"""``python -m mtl_core runs list|show|cancel|delete|export``: the runs in the run store."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mtl_core.cli import UsageError
from mtl_core.runs.export import run_to_csv
from mtl_core.runs.store import MAX_RUN_ID, STATUSES, RunRecord, RunStore, as_run_id, default_store_path

__all__ = ["register", "run_summary", "run_id"]


def run_id(text: str) -> int:
    """An ``ID`` argument: a run number from 1 to the largest id a store can hold (argparse ``type``:
    anything else is one line and exit status 2)."""
    value = as_run_id(text)
    if value is None:
        shown = text if len(text) <= 40 else text[:39] + "…"
        raise argparse.ArgumentTypeError(f"ID must be a run number from 1 to {MAX_RUN_ID}, got {shown!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list, inspect, cancel, delete and export stored runs",
        description="Runs in the run store ($MTL_LAB_HOME/runs.db).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    commands = parser.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=type(parser))

    listing = commands.add_parser("list", help="list runs, newest first", parents=[common])
    listing.add_argument("--status", choices=STATUSES, action="append", help="only runs in this status (repeatable)")
    listing.add_argument("--owner", help="only runs of this owner")
    listing.add_argument("--group", help="only runs of this group (study)")
    listing.add_argument("--suite", help="only runs on this suite")
    listing.add_argument("--method", help="only runs with this balancing method")
    listing.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50; 0 = all)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_command)

    show = commands.add_parser("show", help="show one run", parents=[common])
    show.add_argument("id", type=run_id)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--traceback", action="store_true", help="print the traceback of a failed run")
    show.set_defaults(handler=show_command)

    cancel = commands.add_parser("cancel", help="cancel a queued or running run", parents=[common])
    cancel.add_argument("id", type=run_id)
    cancel.set_defaults(handler=cancel_command)

    delete = commands.add_parser("delete", help="delete a finished or queued run and its data", parents=[common])
    delete.add_argument("id", type=run_id)
    delete.set_defaults(handler=delete_command)

    export = commands.add_parser("export", help="export a run (JSON: everything; CSV: its metric series)", parents=[common])
    export.add_argument("id", type=run_id)
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    export.set_defaults(handler=export_command)

    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store(args: argparse.Namespace) -> RunStore:
    path = default_store_path(args.home)
    if not path.exists():
        what = f"run {args.id} does not exist: " if hasattr(args, "id") else ""
        raise UsageError(f"{what}no run store at {path} yet (submit a run first, or set MTL_LAB_HOME)")
    store = RunStore(path)
    # Show the truth about runs whose worker process died (heartbeats are left to the pool,
    # which knows whether this machine just woke up).
    store.recover_interrupted(stale_after=None)
    return store


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The JSON form of a run in ``runs list --json`` (``show --json`` adds more)."""
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "error": record.error,
        "group": record.group_id,
        "owner": record.owner,
        "pid": record.worker_pid,
        "host": record.worker_host,
        "suite": record.suite,
        "strategy": record.strategy,
        "method": record.method,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "heartbeat_at": record.heartbeat_at,
        "duration": record.duration,
        "cancel_requested": record.cancel_requested,
    }


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def list_command(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError(f"`--limit` must be 0 (all) or more, got {args.limit}")
    if not default_store_path(args.home).exists():
        print("[]" if args.json else "no runs")
        return 0
    store = _store(args)
    records = store.list_runs(status=args.status, owner=args.owner, group_id=args.group, suite=args.suite,
                              method=args.method, limit=min(args.limit, MAX_RUN_ID) or None)
    if args.json:
        print(json.dumps([run_summary(r) for r in records], indent=2))
        return 0
    if not records:
        print("no runs")
        return 0
    header = ("ID", "STATUS", "NAME", "SUITE", "STRATEGY", "METHOD", "GROUP", "CREATED", "TIME", "PID", "ERROR")
    rows = [
        (str(r.id), r.status, r.name or "-", r.suite or "-", r.strategy or "-", r.method or "-", r.group_id or "-",
         _when(r.created_at), _duration(r.duration), str(r.worker_pid or "-"), _short(r.error))
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _short(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_command(args: argparse.Namespace) -> int:
    store = _store(args)
    record = store.get_run(args.id)
    result = store.get_result(args.id)
    last_step = store.last_step(args.id)
    details = run_summary(record)
    details.update(
        config=record.config,
        info=record.info,
        last_step=last_step,
        final_metrics=(result or {}).get("final_metrics"),
        traceback=record.traceback,
    )
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    print(f"run {record.id}{' (' + record.name + ')' if record.name else ''}: {record.status}")
    lines = [
        ("owner", record.owner), ("group", record.group_id), ("suite", record.suite),
        ("strategy", record.strategy), ("method", record.method), ("created", _when(record.created_at)),
        ("started", _when(record.started_at)), ("finished", _when(record.finished_at)),
        ("time", _duration(record.duration)), ("worker pid", record.worker_pid), ("last step", last_step),
    ]
    for label, value in lines:
        if value is not None:
            print(f"  {label:<11}{value}")
    if record.error:
        print(f"  {'error':<11}{record.error}")
    if result and result.get("final_metrics"):
        for task, metric in result["final_metrics"].items():
            print(f"  {'test ' + task:<11}{metric.get('metric')}={metric.get('value')}")
    plugins = (result or record.info or {}).get("plugins") or []
    if plugins:
        print(f"  {'plugins':<11}" + ", ".join(f"{p.get('name')} {p.get('version') or '(no version)'}" for p in plugins))
    print(f"  config     {json.dumps(record.config, sort_keys=True)}")
    if record.traceback:
        if args.traceback:
            print(record.traceback.rstrip())
        else:
            print("  (a traceback is stored: --traceback prints it)")
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    outcome = _store(args).request_cancel(args.id)
    if outcome == "cancelled":
        print(f"run {args.id} cancelled (it was queued)")
    else:
        print(f"run {args.id}: cancel requested; its worker stops it within a few seconds")
    return 0


def delete_command(args: argparse.Namespace) -> int:
    _store(args).delete_run(args.id)
    print(f"run {args.id} deleted")
    return 0


def export_command(args: argparse.Namespace) -> int:
    data = _store(args).export_run(args.id)
    if args.format == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = run_to_csv(data, run_id=args.id)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"`--out` must be a writable file path, got {args.out!r} ({exc.strerror})") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
