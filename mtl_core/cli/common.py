"""Shared argument handling: commands that take a training configuration (train, study) and
commands that train queued runs somewhere (``--executor`` / ``--address``: study, group --train)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mtl_core.cli import UsageError
from mtl_core.config import OPTIMIZERS, TrainConfig, load_config_file

__all__ = [
    "EXECUTOR_CHOICES",
    "add_config_arguments",
    "add_executor_arguments",
    "check_address_use",
    "config_from_args",
    "executor_choice",
    "make_cli_executor",
    "method_help",
    "parse_key_values",
    "ray_address",
    "strategy_help",
    "tag_help",
]


# Help texts read from the registries' classes. They are passed to argparse as functions and
# composed only when a help is shown (see ``_Parser.format_help``): the registries import torch.
def method_help() -> str:
    """``--method``: every balancing method, by what it does (its class's ``kind``)."""
    from mtl_core.balancing import METHODS

    loss = sorted(name for name, cls in METHODS.items() if cls.kind == "loss")
    gradient = sorted(name for name, cls in METHODS.items() if cls.kind == "gradient")
    return (f"balancing method: one that weights the losses ({', '.join(loss)}) or one that combines "
            f"the task gradients ({', '.join(gradient)})")


def strategy_help() -> str:
    """``--strategy``: every sharing strategy."""
    from mtl_core.strategies import STRATEGIES

    return f"sharing strategy: {', '.join(sorted(STRATEGIES.names()))}"


def tag_help() -> str:
    """``--tag``: TAG needs a strategy with one shared representation."""
    from mtl_core.strategies import STRATEGIES

    able = sorted(name for name, cls in STRATEGIES.items() if cls.has_shared_representation)
    return f"record TAG inter-task affinity (strategies with one shared representation: {', '.join(able)})"


def add_config_arguments(parser: argparse.ArgumentParser, *, patience: bool = True) -> None:
    """Add the flags of a TrainConfig. Every default is None so that only given flags override
    the ``--config`` file. ``patience=False`` leaves ``--patience`` to the command (a study
    has its own, with a default)."""
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON config; flags override it")
    parser.add_argument("--suite", help="task suite (see `python -m mtl_core suites`)")
    parser.add_argument("--tasks", help="comma-separated task names (default: all of the suite's)")
    parser.add_argument("--suite-opt", action="append", default=None, metavar="KEY=VALUE", help="suite option (repeatable)")
    parser.add_argument("--strategy", help=strategy_help)  # type: ignore[arg-type]
    parser.add_argument("--strategy-opt", action="append", default=None, metavar="KEY=VALUE", help="strategy option (repeatable)")
    parser.add_argument("--method-opt", action="append", default=None, metavar="KEY=VALUE", help="balancing-method option (repeatable)")
    parser.add_argument("--epochs", type=int)
    if patience:
        parser.add_argument("--patience", type=int, metavar="N",
                            help="stop when the sum of the validation losses has not improved for N epochs "
                                 "(--epochs is then the maximum; default: off)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--device", help="cpu or cuda")
    parser.add_argument("--probe-interval", type=int,
                        help=f"record gradient probes every N steps (0 = off; default {TrainConfig.probe_interval})")
    parser.add_argument("--tag-interval", type=int,
                        help=f"TAG lookahead every N steps when --tag is on (default {TrainConfig.tag_interval})")
    parser.add_argument("--jacobian-mode", help="auto, loop, batched or representation")
    parser.add_argument("--name", help="a name for the run")


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"`{flag}` must be KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def config_from_args(
    args: argparse.Namespace,
    extra: dict[str, Any] | None = None,
    defaults: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> TrainConfig:
    """Merge the ``--config`` file with the given flags and validate. ``defaults`` fills in what
    neither sets (e.g. a suite's study defaults)."""
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    simple = {
        "suite": args.suite,
        "tasks": args.tasks,
        "strategy": args.strategy,
        "epochs": args.epochs,
        "patience": getattr(args, "patience", None),
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "device": args.device,
        "probe_interval": args.probe_interval,
        "tag_interval": args.tag_interval,
        "jacobian_mode": args.jacobian_mode,
        "name": args.name,
    }
    simple.update(extra or {})
    for key, value in simple.items():
        if value is not None:
            data[key] = value
    for key, flag, items in (
        ("suite_options", "--suite-opt", args.suite_opt),
        ("strategy_options", "--strategy-opt", args.strategy_opt),
        ("method_options", "--method-opt", args.method_opt),
    ):
        given = parse_key_values(items, flag)
        if given:
            merged = dict(data.get(key) or {})
            merged.update(given)
            data[key] = merged
    if defaults is not None:
        data = defaults(data)
    return TrainConfig.from_dict(data).validated()


#: The ``--executor`` choices: the executor each names (:mod:`mtl_core.runs.executors`).
EXECUTOR_CHOICES = {"pool": "local", "serial": "serial", "ray": "ray"}


def add_executor_arguments(parser: argparse.ArgumentParser, when: str = "") -> None:
    """``--executor`` (default: ``$MTL_LAB_EXECUTOR``) and ``--address`` (the Ray cluster). ``when``
    prefixes the helps (``"with --train: "``)."""
    parser.add_argument("--executor", choices=tuple(EXECUTOR_CHOICES), default=None,
                        help=f"{when}pool: the background worker pool; serial: in this process; ray: Ray tasks "
                             "on a local Ray or the cluster of --address (default: $MTL_LAB_EXECUTOR, else pool)")
    parser.add_argument("--address", metavar="ADDRESS",
                        help=f"{when}with --executor ray: the Ray cluster, auto, HOST:PORT or ray://HOST:PORT "
                             "(default: $MTL_LAB_RAY_ADDRESS, else a local Ray with this machine's cores)")


def executor_choice(choice: str | None) -> str:
    """The ``--executor`` choice, or the one ``$MTL_LAB_EXECUTOR`` names (``local`` is ``pool``); an
    unknown name in the variable raises :class:`~mtl_core.settings.SettingError` naming the allowed ones."""
    if choice is not None:
        return choice
    from mtl_core.settings import settings

    name = settings().executor
    return {engine: flag for flag, engine in EXECUTOR_CHOICES.items()}.get(name, "pool")


def ray_address(address: str | None) -> str | None:
    """The normalised ``--address`` (None: not given, then ``$MTL_LAB_RAY_ADDRESS``; None from both: a
    local Ray). A malformed one raises :class:`~mtl_core.runs.ray_support.RaySetupError` naming it."""
    from mtl_core.runs.ray_support import parse_address
    from mtl_core.settings import settings

    if address is not None:
        return parse_address(address, setting="`--address`")
    return settings().ray_address


def check_address_use(choice: str, address: str | None) -> None:
    """``--address`` names a Ray cluster: refused (:class:`UsageError`) with any executor but ``ray``."""
    if address is not None and choice != "ray":
        raise UsageError(f"`--address` applies to --executor ray only, got --executor {choice} with "
                         f"--address {address!r}")


def make_cli_executor(choice: str | None, workers: int | None, address: str | None) -> Any:
    """The executor of ``--executor`` / ``--workers`` / ``--address``, checked before anything is queued:
    for ``ray`` the address is parsed, Ray's version checked and this process connected to the
    cluster (or a local Ray started), so bad input or an unreachable cluster is one line (exit status
    2) and no run is queued. The runs are recorded in the run store of ``$MTL_LAB_HOME``."""
    from mtl_core.runs.executors import make_executor

    choice = executor_choice(choice)
    check_address_use(choice, address)
    if workers is not None and workers < 1:
        raise UsageError(f"`--workers` must be an integer ≥ 1, got {workers}")
    if choice == "ray":
        from mtl_core.runs.ray_support import connect, require_ray

        cluster = ray_address(address)
        require_ray()
        connect(cluster)
        # "" (not None): a local Ray even when $MTL_LAB_RAY_ADDRESS names a cluster but --address "" was given.
        return make_executor("ray", address=cluster or "", max_parallel=workers)
    options = {"max_workers": workers} if choice == "pool" else {}
    return make_executor(EXECUTOR_CHOICES[choice], **options)
