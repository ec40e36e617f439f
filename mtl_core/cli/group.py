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
from mtl_core.cli.common import add_executor_arguments

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
    add_executor_arguments(parser, when="with --train: ")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="with --train: worker processes if the pool is started now (ray: runs at once)")
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
    what = _not_a_study(study)
    if what is not None:
        raise UsageError(f"`--from` must be a study.json, got {what} ({str(path)!r}): {_STUDY_HINT}")
    if not isinstance(study.get("tasks"), list):
        raise UsageError(f"`--from` must be a study.json with a `tasks` list, got {str(path)!r}")
    return study


_STUDY_HINT = ("grouping needs a transfer study's pairwise scores (every task trained alone and in every pair); pass "
               "the file of `python -m mtl_core study --suite SUITE --out study.json`, or a study "
               "downloaded as JSON from the Relationships page")


def _not_a_study(data: Any) -> str | None:
    """What ``data`` is when it is plainly not a study (a run's record, another MTL Lab file), else None."""
    from mtl_core.studies.study import STUDY_FORMAT  # here, so that `--help` stays instant

    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    kind = data.get("format")
    if kind == "mtl_lab.run_export/1" or (isinstance(data.get("run"), dict) and "metrics" in data):
        return "a run's export (`runs export ID`): this is one run, not a study"
    if "history" in data and "config" in data and "transfer" not in data:
        return "a run's record (`train --out run.json`): this is one run, not a study"
    if isinstance(kind, str) and kind != STUDY_FORMAT and kind.startswith("mtl_lab."):
        return f"a {kind!r} file, not a study"
    return None


def run(args: argparse.Namespace) -> int:
    from mtl_core.analysis.grouping import best_grouping
    from mtl_core.studies.grouping_runs import evaluate_grouping
    from mtl_core.studies.study import grouping_sources, score_unit

    if not args.train and (args.executor is not None or args.address is not None or args.workers is not None):
        given = "--executor" if args.executor is not None else "--address" if args.address is not None else "--workers"
        raise UsageError(f"`{given}` applies with --train only, got {given} without --train")
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
    if all(len(group) == 1 for group in grouping.groups):
        _print_alone_note(sources[args.source], tasks, args.source)
    output: dict[str, Any] = {"source": args.source, "unit": score_unit(args.source).to_dict(), **grouping.to_dict()}
    if args.train:
        from mtl_core.cli.common import make_cli_executor
        from mtl_core.cli.study import RunProgress

        executor = make_cli_executor(args.executor, args.workers, args.address)  # checked before anything is queued
        progress = RunProgress(enabled=not args.quiet and sys.stderr.isatty(), description="grouping")
        try:
            output["evaluation"] = evaluate_grouping(study, grouping.groups, args.source, executor, progress)
        finally:
            progress.close()
    if args.json:
        print(json.dumps(output, indent=2))
        return 0
    _print_grouping(args, grouping, tasks, output.get("evaluation"))
    return 0


def _print_grouping(args: argparse.Namespace, grouping: Any, tasks: list[str], evaluation: dict[str, Any] | None) -> None:
    """The grouping as text; each number in its unit (the prediction in its source's, the measurement
    a relative change of the metric against alone)."""
    from mtl_core.studies.grouping_runs import evaluation_summary
    from mtl_core.studies.study import score_unit

    unit, change = score_unit(args.source), score_unit("transfer")
    print(f"best grouping into at most {args.k} group(s) by {args.source} ({grouping.method} search):")
    for number, group in enumerate(grouping.groups, start=1):
        print(f"  group {number}: {', '.join(group)}")
    kind = f"{unit.name} of the validation metric" if unit.percent else f"{unit.name}, unitless"
    print(f"predicted score ({kind}; mean over tasks): {unit.format(grouping.score)}")
    if evaluation:
        print(f"measured: {change.name} of the validation metric, mean over seeds with its 95 % CI")
    print(f"{'task':<10}{'predicted':>12}" + (f"{'measured':>12}{'95% CI':>22}" if evaluation else ""))
    for task in tasks:
        line = f"{task:<10}{unit.format(grouping.task_scores[task]):>12}"
        if evaluation:
            measured = evaluation["tasks"][task]
            low, high = measured.get("ci_low"), measured.get("ci_high")
            interval = f"[{change.format(low)}, {change.format(high)}]" if low is not None and high is not None else "—"
            line += f"{change.format(measured.get('mean')):>12}{interval:>22}"
        print(line)
    if evaluation:
        print(evaluation_summary(evaluation))


def _print_alone_note(scores: Any, tasks: list[str], source: str) -> None:
    """Every task alone is the baseline, not a grouping to train: say so (on stderr) and name the best
    grouping that trains tasks together."""
    from mtl_core.analysis.grouping import best_groupings, suggest_grouping
    from mtl_core.studies.study import score_unit

    suggestion = suggest_grouping(best_groupings(scores, tasks))
    note = "note: every task is alone in this grouping (score 0, the single-task baseline): nothing to train together"
    if suggestion.k is not None:
        note += (f"; the best grouping that trains tasks together is at --k {suggestion.k} "
                 f"({score_unit(source).format(suggestion.score)})")
    print(note, file=sys.stderr)
