"""``python -m mtl_core study``: a pairwise transfer study, written to ``study.json``.

Every chosen task alone, every pair together (``--all``: all tasks together too) for ``--seeds``
seeds, as one group of runs on the background worker pool (``--executor serial``: in this
process; ``--executor ray [--address …]``: as Ray tasks on a local Ray or a cluster). Every run follows one protocol: up to ``--max-epochs`` epochs, stopping once the sum of
its validation losses has not improved for ``--patience`` epochs. The study is recorded in the run
store of ``$MTL_LAB_HOME`` like one launched from the dashboard (:mod:`mtl_core.studies.records`), so the
Relationships page lists it. Prints a summary; ``--out`` gets the full study (see :mod:`mtl_core.studies.study`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtl_core.cli import UsageError
from mtl_core.cli.common import (
    add_config_arguments,
    add_executor_arguments,
    config_from_args,
    make_cli_executor,
    method_help,
)

__all__ = ["register", "RunProgress", "format_matrix"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtl_core.studies.study import DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, DEFAULT_SEEDS

    parser = subparsers.add_parser(
        "study",
        help="pairwise transfer study (tasks alone, pairs, optionally all) over seeds",
        description="Train every task alone and every pair of tasks together over several seeds; report "
        "pairwise transfer (mean, 95 % CI, paired t-test), Δm %, gradient cosines, TAG affinity "
        "(--tag) and the best task groupings.",
    )
    add_config_arguments(parser, patience=False)
    parser.add_argument("--method", help=method_help)  # type: ignore[arg-type]
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="S",
                        help=f"number of seeds (default {DEFAULT_SEEDS})")
    parser.add_argument("--patience", dest="study_patience", type=int, default=DEFAULT_PATIENCE, metavar="N",
                        help="every run stops when the sum of its validation losses has not improved for N "
                             f"epochs (default {DEFAULT_PATIENCE})")
    parser.add_argument("--max-epochs", dest="max_epochs", type=int, default=DEFAULT_MAX_EPOCHS, metavar="N",
                        help=f"every run trains at most N epochs (default {DEFAULT_MAX_EPOCHS}); replaces --epochs")
    parser.add_argument("--seed", type=int, help="first seed (default: the config's, 0)")
    parser.add_argument("--tag", action="store_true", help="record TAG affinity in all-tasks hard-sharing runs")
    parser.add_argument("--all", dest="include_all", action="store_true", help="also train all tasks together")
    parser.add_argument("--metric", choices=("best", "final"), default="best",
                        help="validation metric: best epoch (default) or last epoch")
    add_executor_arguments(parser)
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes if the pool is started now (with --executor ray: runs at once)")
    parser.add_argument("--out", metavar="FILE", help="write study.json here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


class RunProgress:
    """A tqdm bar of runs done / total on stderr (only when enabled, e.g. on a terminal)."""

    def __init__(self, enabled: bool, description: str = "study") -> None:
        self.enabled = enabled
        self.description = description
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", desc=self.description, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_matrix(tasks: list[str], matrix: list[list[float | None]], percent: bool = False) -> str:
    """A plain-text table of a T × T matrix (rows: the task measured)."""
    width = max(7, *(len(t) for t in tasks))
    lines = [" " * width + "".join(f"{t:>{width + 1}}" for t in tasks)]
    for task, row in zip(tasks, matrix, strict=True):
        cells = []
        for value in row:
            if value is None:
                cells.append(f"{'—':>{width + 1}}")
            else:
                cells.append(f"{value * 100:>{width}.1f}%" if percent else f"{value:>{width + 1}.3f}")
        lines.append(f"{task:<{width}}" + "".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mtl_core.errors import ConfigError
    from mtl_core.studies.study import (
        DEFAULT_PROBE_INTERVAL,
        StudySpec,
        apply_study_defaults,
        run_study,
    )

    if args.seeds < 1:
        raise UsageError(f"`--seeds` must be an integer ≥ 1, got {args.seeds}")
    if args.epochs is not None:
        raise UsageError(f"`--epochs` does not apply to a study (every run trains up to --max-epochs, "
                         f"{args.max_epochs}, with --patience {args.study_patience}), got {args.epochs}")
    config = config_from_args(args, extra={"method": args.method, "seed": args.seed}, defaults=apply_study_defaults)
    probe_interval = config.probe_interval or DEFAULT_PROBE_INTERVAL
    try:
        spec = StudySpec(
            base=config,
            seeds=StudySpec.seeds_from(config.seed, args.seeds),
            include_all=args.include_all,
            tag=args.tag,
            metric=args.metric,
            probe_interval=probe_interval,
            patience=args.study_patience,
            max_epochs=args.max_epochs,
        ).validated()
    except ConfigError as exc:
        if exc.field in ("patience", "max_epochs"):  # name the option the user typed
            raise UsageError(f"`--{exc.field.replace('_', '-')}` must be {exc.expected}, got {exc.got!r}") from None
        raise
    executor = make_cli_executor(args.executor, args.workers, args.address)
    progress = RunProgress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        study = run_study(spec, executor, progress=progress)
    finally:
        progress.close()
    text = json.dumps(study, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    _print_summary(study)
    return 0


def _print_summary(study: dict[str, Any]) -> None:
    tasks = study["tasks"]
    out = sys.stdout
    failed = study.get("n_failed", 0)
    print(f"{study['n_runs']} runs ({failed} failed), seeds {study['seeds']}", file=out)
    protocol = study.get("conventions", {}).get("protocol")
    if protocol:
        print(f"protocol: {protocol}", file=out)
    overall = study.get("stopping", {}).get("overall")
    if overall:
        print(f"stopping epochs: median {overall['median']:g}, min {overall['min']}, max {overall['max']} "
              f"({overall['at_max_epochs']} of {overall['n']} runs reached max_epochs)", file=out)
    print("transfer(row ← column), mean over seeds (positive = the column task helps the row task):", file=out)
    print(format_matrix(tasks, study["transfer"]["mean"], percent=True), file=out)
    for source, groupings in study.get("groupings", {}).items():
        best = max(groupings, key=lambda g: g["score"]) if groupings else None
        if best is not None:
            groups = " | ".join(", ".join(group) for group in best["groups"])
            print(f"best grouping by {source}: {groups} (score {best['score']:.4f})", file=out)
    full = study.get("delta_m", {}).get("all")
    if full and full.get("mean") is not None:
        print(f"Δm all tasks: {full['mean']:+.2f} %", file=out)
    if "planted_groups" in study:
        print("planted groups: " + " | ".join(", ".join(group) for group in study["planted_groups"]), file=out)
