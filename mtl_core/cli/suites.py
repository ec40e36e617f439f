"""``python -m mtl_core suites``: the task suites, their tasks, types, metrics and options."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("suites", help="list the task suites", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..suites import SUITES  # imported here so that `--help` stays instant

    described = [cls.describe() for _, cls in SUITES.items()]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for suite in described:
        print(f"{suite['name']}: {suite['description'].splitlines()[0] if suite['description'] else ''}")
        for task in suite["tasks"]:
            direction = "higher is better" if task["higher_is_better"] else "lower is better"
            print(f"  task {task['name']:<12} {task['kind']:<15} {task['metric']} ({direction})")
        for option in suite["options"]:
            print(f"  option {option['name']}={option['default']!r}  {option['help']}")
        print()
    return 0
