"""``python -m mtl_core suites``: the task suites, their tasks, types, metrics and options; and your own
data: ``suites inspect FILE``, ``suites add-csv FILE --targets a,b --name N``, ``suites remove N``.

User suites (imported from CSV files, saved in ``$MTL_LAB_HOME/suites``) are listed with the
built-in ones and marked ``user`` (``"user": true`` in ``--json``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mtl_core.cli import UsageError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "suites", help="list the task suites; import your own CSV data as a suite", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    parser.set_defaults(handler=run)
    commands = parser.add_subparsers(dest="suites_command", metavar="ACTION", parser_class=type(parser))

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")

    inspect = commands.add_parser("inspect", parents=[common], help="describe the columns of a CSV file")
    inspect.add_argument("file", metavar="FILE")
    inspect.add_argument("--delimiter", help="column separator (default: guessed from , ; tab |)")
    inspect.set_defaults(handler=inspect_command)

    add = commands.add_parser(
        "add-csv", parents=[common], help="save a CSV file as a named suite (each target column → a task)",
        description="Save a CSV file as a named task suite in $MTL_LAB_HOME/suites/NAME. Text features are "
                    "one-hot encoded; a target's kind (classification or regression) is detected and --kind "
                    "overrides it. Limits: MTL_LAB_MAX_CSV_MB (default 50), MTL_LAB_MAX_CSV_ROWS, "
                    "MTL_LAB_MAX_CSV_COLUMNS.",
    )
    add.add_argument("file", metavar="FILE")
    add.add_argument("--targets", required=True, help="comma-separated target columns (at least 2; one task each)")
    add.add_argument("--name", required=True, help="suite name: letters, digits, _ or - (at most 40)")
    add.add_argument("--features", help="comma-separated feature columns (default: every other named column)")
    add.add_argument("--kind", action="append", default=None, metavar="TARGET=KIND",
                     help="classification or regression for a target (repeatable; default: detected)")
    add.add_argument("--missing", choices=("drop", "impute"), default="drop",
                     help="drop rows with missing values (default), or impute them (numbers: training mean; "
                          "categories: a '(missing)' category; targets: unlabelled)")
    add.add_argument("--delimiter", help="column separator (default: guessed from , ; tab |)")
    add.add_argument("--replace", action="store_true", help="overwrite a user suite of the same name")
    add.set_defaults(handler=add_command)

    remove = commands.add_parser("remove", parents=[common], help="delete a user suite")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=remove_command)


def run(args: argparse.Namespace) -> int:
    from mtl_core.suites import SUITES  # imported here so that `--help` stays instant
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites(args.home)
    described = []
    for name, cls in SUITES.items():
        entry = cls.describe()
        entry.setdefault("user", False)
        origin = SUITES.origin(name)
        entry["plugin"] = origin.to_dict() if origin is not None else None
        described.append(entry)
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for suite in described:
        mark = " [user suite]" if suite["user"] else ""
        if suite["plugin"]:
            mark = f" [plugin {suite['plugin']['plugin']}, module {suite['plugin']['module']}]"
        print(f"{suite['name']}{mark}: {suite['description'].splitlines()[0] if suite['description'] else ''}")
        for task in suite["tasks"]:
            direction = "higher is better" if task["higher_is_better"] else "lower is better"
            print(f"  task {task['name']:<12} {task['kind']:<15} {task['metric']} ({direction})")
        for option in suite["options"]:
            print(f"  option {option['name']}={option['default']!r}  {option['help']}")
        print()
    return 0


def _kinds(items: list[str] | None) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for item in items or []:
        target, sep, kind = item.rpartition("=")
        if not sep or not target.strip():
            raise UsageError(f"`--kind` must be TARGET=classification or TARGET=regression, got {item!r}")
        kinds[target.strip()] = kind.strip()
    return kinds


def inspect_command(args: argparse.Namespace) -> int:
    from mtl_core.userdata.csv_import import inspect_csv

    preview = inspect_csv(args.file, delimiter=args.delimiter)
    if args.json:
        print(json.dumps(preview.to_dict(), indent=2))
        return 0
    print(f"{preview.filename or args.file}: {preview.n_rows} rows, {len(preview.columns)} columns "
          f"(delimiter {preview.delimiter!r})")
    width = max(len(c.name) for c in preview.columns)
    for column in preview.columns:
        kind = column.suggested_kind or "-"
        examples = ", ".join(column.examples[:3])
        print(f"  {column.name:<{width}}  {column.dtype:<6}  missing {column.n_missing:<6} distinct "
              f"{column.n_distinct:<6} as target: {kind:<14} e.g. {examples}")
    for warning in preview.warnings:
        print(f"warning: {warning}")
    for column in preview.columns:  # a column detected as classification whose classes are too rare to learn
        if column.suggested_kind == "classification" and column.class_warning:
            print(f"warning: {column.class_warning}")
    return 0


def add_command(args: argparse.Namespace) -> int:
    from mtl_core.userdata.csv_import import import_csv

    report = import_csv(
        args.file, args.name, targets=args.targets, features=args.features, kinds=_kinds(args.kind),
        missing=args.missing, home=args.home, replace=args.replace, delimiter=args.delimiter,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    for line in report.lines():
        print(line)
    print(f"train on it: python -m mtl_core train --suite {report.name} --tasks {','.join(report.task_names)}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    from mtl_core.userdata.csv_import import remove_user_suite

    directory = remove_user_suite(args.name, home=args.home)
    result: dict[str, Any] = {"removed": args.name, "directory": str(directory)}
    print(json.dumps(result) if args.json else f"user suite `{args.name}` removed ({directory})")
    return 0
