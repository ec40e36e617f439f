"""``python -m mtl_core train``: train one configuration and write ``run.json``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtl_core.cli.common import add_config_arguments, config_from_args, method_help, tag_help
from mtl_core.config import TrainConfig
from mtl_core.training.events import Callback, EpochEvent, StepEvent
from mtl_core.training.length import DEFAULT_STEPS, MAX_DEFAULT_EPOCHS, epochs_for_steps, training_rows

__all__ = ["register", "ProgressBar"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one configuration",
        description="Train one configuration in the foreground (or queue it with --background). "
        f"Without --epochs (on the command line or in --config) the run trains for the epochs that give "
        f"about {DEFAULT_STEPS} optimizer steps on its training rows with its batch size (at least 1 epoch, "
        f"at most {MAX_DEFAULT_EPOCHS}), so a small data set gets more epochs than a large one.",
    )
    add_config_arguments(parser)
    parser.add_argument("--method", help=method_help)  # type: ignore[arg-type]
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tag", action="store_true", default=None, help=tag_help)  # type: ignore[arg-type]
    parser.add_argument("--out", metavar="FILE", help="write the run record (JSON) here")
    parser.add_argument("--background", action="store_true", help="queue the run for the background workers and return")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


class ProgressBar(Callback):
    """A tqdm progress bar over optimisation steps, shown only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_run_start(self, info: dict[str, Any]) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=info["total_steps"], unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_step(self, event: StepEvent) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, event: EpochEvent) -> None:
        if self.bar is not None:
            mean_val = sum(event.val_loss.values()) / max(len(event.val_loss), 1)
            self.bar.set_description(f"epoch {event.epoch}/{event.epochs}")
            self.bar.set_postfix(val_loss=f"{mean_val:.4f}")

    def on_run_end(self, result: dict[str, Any]) -> None:
        if self.bar is not None:
            if result.get("stop_reason") == "patience":  # stopped early: the bar ends full
                self.bar.total = self.bar.n
                self.bar.set_description(f"stopped at epoch {result['stopped_epoch']} (patience)")
                self.bar.refresh()
            self.bar.close()


def default_epochs(data: dict[str, Any]) -> dict[str, Any]:
    """Fill in ``epochs`` when neither the flags nor the config file set it: the epochs that give
    about :data:`~mtl_core.training.length.DEFAULT_STEPS` optimizer steps on the run's training rows."""
    if data.get("epochs") is not None:
        return data
    config = TrainConfig.from_dict(data).validated()
    rows = training_rows(config.suite, config.suite_options, config.tasks, config.seed)
    return {**data, "epochs": epochs_for_steps(rows, config.batch_size)}


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, extra={"method": args.method, "seed": args.seed, "tag": args.tag},
                              defaults=default_epochs)
    if args.background:
        # through the engine's one way to queue runs, which applies the presenter limits
        from mtl_core.runs.store import RunStore
        from mtl_core.studies.records import submit_runs

        (run_id,) = submit_runs([config], RunStore.at_home())
        print(run_id)
        return 0
    from mtl_core.training.trainer import train

    result = train(config, [ProgressBar(enabled=not args.quiet and sys.stderr.isatty())])
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    summary = ", ".join(
        f"{task} {m['metric']}={m['value']:.4f}" for task, m in result["final_metrics"].items()
    )
    stopped = f" (stopped early at epoch {result['stopped_epoch']})" if result.get("stop_reason") == "patience" else ""
    print(f"{result['status']}{stopped}: {summary}", file=sys.stderr)
    return 0
