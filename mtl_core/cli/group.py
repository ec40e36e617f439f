"""``python -m mtl_core group``: the best task groups from a ``study.json``.

Reads the study's score matrix (``--source transfer|affinity|cosine``), searches the best partition
into at most ``--k`` groups (:mod:`mtl_core.analysis.grouping`) and prints it with each task's
predicted score. ``--train`` trains that grouping with the study's config and seeds and prints the
measured relative change of each task against alone next to the prediction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtl_core.cli import UsageError

__all__ = ["register", "load_study"]

SOURCES = ("transfer", "affinity", "cosine")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "group",
        help="best task groups from a study.json",
        description="Print the best partition of a study's tasks into at most k groups, from its pairwise "
        "transfer, TAG affinity or gradient-cosine matrix (a task alone scores 0).",
    )
    parser.add_argument("--from", dest="study", required=True, metavar="FILE", help="study.json written by `study`")
    parser.add_argument("--k", type=int, required=True, help="at most this many groups")
    parser.add_argument("--source", choices=SOURCES, default="transfer", help="score matrix (default transfer)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--train", action="store_true", help="train the grouping and report measured vs predicted")
    parser.add_argument("--executor", choices=("pool", "serial"), default="pool", help="with --train: where to train")
    parser.add_argument("--workers", type=int, metavar="N", help="with --train: worker processes if the pool is started now")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def load_study(path: str | Path) -> dict[str, Any]:
    """Read a ``study.json``; a missing or malformed file raises :class:`UsageError`."""
    path = Path(path)
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"`--from` must be an existing study.json, got {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"`--from` must be a readable study.json, got {str(path)!r} ({exc.__class__.__name__})") from None
    if not isinstance(study, dict) or not isinstance(study.get("tasks"), list):
        raise UsageError(f"`--from` must be a study.json with a `tasks` list, got {str(path)!r}")
    return study


def run(args: argparse.Namespace) -> int:
    from mtl_core.analysis.grouping import best_grouping
    from mtl_core.studies.study import evaluate_grouping, grouping_sources

    study = load_study(args.study)
    tasks = study["tasks"]
    sources = grouping_sources(study)
    if args.source not in sources:
        available = ", ".join(sources) or "none"
        hint = " (run the study with --tag)" if args.source == "affinity" else ""
        raise UsageError(f"`--source` must be one the study has ({available}), got {args.source!r}{hint}")
    if not 1 <= args.k <= len(tasks):
        raise UsageError(f"`--k` must be an integer in [1, {len(tasks)}], got {args.k}")
    grouping = best_grouping(sources[args.source], args.k, tasks)
    output: dict[str, Any] = {"source": args.source, **grouping.to_dict()}
    if args.train:
        from mtl_core.cli.study import RunProgress, study_executor

        progress = RunProgress(enabled=not args.quiet and sys.stderr.isatty(), description="grouping")
        try:
            output["evaluation"] = evaluate_grouping(
                study, grouping.groups, args.source, study_executor(args.executor, args.workers), progress
            )
        finally:
            progress.close()
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    print(f"best grouping into at most {args.k} group(s) by {args.source} ({grouping.method} search):")
    for number, group in enumerate(grouping.groups, start=1):
        print(f"  group {number}: {', '.join(group)}")
    print(f"score (mean predicted per-task {args.source} score): {grouping.score:.4f}")
    evaluation = output.get("evaluation")
    print(f"{'task':<10}{'predicted':>12}" + (f"{'measured':>12}{'95% CI':>22}" if evaluation else ""))
    for task in tasks:
        line = f"{task:<10}{grouping.task_scores[task]:>12.4f}"
        if evaluation:
            measured = evaluation["tasks"][task]
            low, high = measured.get("ci_low"), measured.get("ci_high")
            interval = f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else "—"
            value = measured.get("mean")
            line += (f"{value:>12.4f}" if value is not None else f"{'—':>12}") + f"{interval:>22}"
        print(line)
    if evaluation:
        overall = evaluation["measured_score"]
        value = overall.get("mean")
        print(f"measured score: {value:.4f}" if value is not None else "measured score: —")
    return 0
