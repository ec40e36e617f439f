"""``python -m mtl_core worker``: run the background worker pool as a long-lived server.

``--status`` and ``--stop`` inspect or stop the pool of an MTL Lab home (whether started here or
automatically by a submitter; see :mod:`mtl_core.runs.workers`). ``--executor ray [--address …]``
runs the Ray bridge instead (:func:`mtl_core.runs.ray_executor.run_bridge`): the queued runs train as
Ray tasks on a local Ray or a cluster, and the run store stays on this host.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtl_core.cli.common import check_address_use, executor_choice, ray_address
from mtl_core.runs.store import lab_home
from mtl_core.runs.workers import (
    EXIT_ALREADY_RUNNING,
    PoolError,
    PoolSupervisor,
    default_max_workers,
    pool_status,
    setup_logging,
    stop_pool,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the background worker pool",
        description="Run the pool of worker processes that train queued runs, until Ctrl-C (running "
        "runs then become failed, interrupted); or inspect / stop the pool of an MTL Lab home. Without "
        "a server, submitting a run starts a pool that exits when idle.",
    )
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: $MTL_LAB_WORKERS or the number of CPU cores)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit after this long with nothing queued or running (default: never)")
    parser.add_argument("--home", help="MTL Lab home folder (default: $MTL_LAB_HOME or ~/.mtl_lab)")
    parser.add_argument("--executor", choices=("pool", "ray"), default=None,
                        help="pool: worker processes on this machine; ray: the Ray bridge, which trains the queued "
                             "runs as Ray tasks (--workers: runs at once; default: the cluster's CPUs) "
                             "(default: ray if $MTL_LAB_EXECUTOR is ray, else pool)")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="with --executor ray: the Ray cluster, auto, HOST:PORT or ray://HOST:PORT "
                             "(default: $MTL_LAB_RAY_ADDRESS, else a local Ray with this machine's cores)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="show the running pool, if any")
    action.add_argument("--stop", action="store_true", help="stop the running pool (running runs become failed)")
    parser.add_argument("--json", action="store_true", help="with --status: print JSON")
    parser.set_defaults(handler=run)


def _describe(info: dict) -> str:
    workers = ", ".join(
        f"{w['pid']} ({'run ' + str(w['run_id']) if w.get('run_id') is not None else 'idle'})"
        for w in info.get("workers", [])
    )
    return (f"pool {info.get('pid')} serving {info.get('home')}: max {info.get('max_workers')} workers; "
            f"workers: {workers or 'none'}")


def run(args: argparse.Namespace) -> int:
    home = lab_home(args.home)
    if args.status:
        info = pool_status(home)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(_describe(info) if info is not None else f"no worker pool is running for {home}")
        return 0
    if args.stop:
        stopped = stop_pool(home)
        print(f"stopped the worker pool of {home}" if stopped else f"no worker pool is running for {home}")
        return 0
    if args.workers is not None and args.workers < 1:
        raise PoolError(f"`--workers` must be at least 1, got {args.workers}")
    if args.idle_exit is not None and args.idle_exit <= 0:
        raise PoolError(f"`--idle-exit` must be a positive number of seconds, got {args.idle_exit}")
    choice = "ray" if executor_choice(args.executor) == "ray" else "pool"
    check_address_use(choice, args.address)
    if choice == "ray":
        return _run_bridge(home, args)
    workers = args.workers or default_max_workers()
    setup_logging()
    supervisor = PoolSupervisor(home, max_workers=workers, min_workers=workers, idle_exit=args.idle_exit)
    status = supervisor.run()
    return _unless_already_running(status, home)


def _run_bridge(home: Path, args: argparse.Namespace) -> int:
    """``worker --executor ray``: the Ray bridge serves the queue of ``home`` until Ctrl-C. A malformed
    address, Ray missing or at another version, or a cluster that does not answer is one line (exit
    status 2), and the queued runs stay queued."""
    from mtl_core.runs.ray_executor import run_bridge
    from mtl_core.runs.ray_support import require_ray

    cluster = ray_address(args.address)
    require_ray()
    setup_logging()
    status = run_bridge(home, address=cluster or "", idle_exit=args.idle_exit, max_parallel=args.workers)
    return _unless_already_running(status, home)


def _unless_already_running(status: int, home: Path) -> int:
    """The exit status of a pool or bridge; :class:`PoolError` if another one already served ``home``."""
    if status == EXIT_ALREADY_RUNNING:
        info = pool_status(home) or {}
        raise PoolError(f"a worker pool is already running for {home} (pid {info.get('pid')}); "
                        "stop it with `python -m mtl_core worker --stop`")
    return status
