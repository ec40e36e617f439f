"""The 63-run planted study through the local worker pool and through Ray (issue 15).

Three ways to train the same study (a 6-task × 3-seed pairwise transfer study on ``planted``:
:data:`mtl_core.studies.study.PLANTED_STUDY_CONFIG` under the study's default protocol, 21
configurations × 3 seeds = 63 runs), each in a fresh MTL Lab home and a fresh Python process:

- ``pool``: the local worker pool (:class:`~mtl_core.runs.executors.LocalProcessExecutor`, ``--workers``
  processes), started cold;
- ``ray-local``: :class:`~mtl_core.runs.ray_executor.RayExecutor` without an address: a local Ray
  started by the study with this machine's cores;
- ``ray-cluster``: a simulated cluster of ``--nodes`` Ray nodes on this machine (``ray start --head``,
  then ``ray start --address`` for each further node, ``--cpus-per-node`` CPUs each), reached at its
  ``HOST:PORT`` address as a real cluster is.

Modes run interleaved (pool, ray-local, ray-cluster, pool, …) ``--repeats`` times. Per mode: wall-clock
from planning to the collected study, the time to connect to Ray (``ray.init`` or joining the cluster;
also inside the wall-clock), the busy span (first run start → last run finish, from the run store), mean seconds per
run, the overhead per run against the pool ((busy span − pool's busy span) / 63 runs), and whether
every run's result equals the pool's float for float.

    python benchmarks/ray.py [--workers 2] [--repeats 2] [--nodes 2] [--cpus-per-node 1]
                             [--modes pool,ray-local,ray-cluster]

Needs Ray (``pip install -r requirements-ray.txt``). Prints a Markdown table; the results are noted in
``benchmarks/README.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where this file would be found as `ray`:
# Ray itself must be imported instead (here and by mtl_core's Ray executor).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

MODES = ("pool", "ray-local", "ray-cluster")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    found = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    if not Path(found).exists():
        raise SystemExit("benchmarks/ray.py: the `ray` command is missing (pip install -r requirements-ray.txt)")
    return found


def _start_cluster(nodes: int, cpus: int) -> tuple[str, Path]:
    """``nodes`` Ray nodes on this machine (a head, then workers joining it); returns the address."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="mtl_ray_bench_"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}  # ray start --head's default
    common = ["--num-cpus", str(cpus), "--num-gpus", "0", "--disable-usage-stats"]
    subprocess.run([_ray_cli(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--include-dashboard", "false", "--temp-dir", str(temp), *common],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    for _ in range(nodes - 1):
        subprocess.run([_ray_cli(), "start", "--address", address, "--node-ip-address", "127.0.0.1", *common],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    return address, temp


def _stop_cluster() -> None:
    subprocess.run([_ray_cli(), "stop", "--force"], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _one(mode: str, workers: int, address: str | None) -> dict[str, Any]:
    """One study, in this process (a child of the benchmark): its timings and per-run results."""
    import torch

    from mtl_core.runs.executors import LocalProcessExecutor
    from mtl_core.runs.store import RunStore
    from mtl_core.runs.workers import stop_pool
    from mtl_core.studies.study import PLANTED_STUDY_CONFIG, StudySpec, run_study

    torch.set_num_threads(1)
    home = Path(tempfile.mkdtemp(prefix=f"mtl_ray_bench_{mode}_"))
    spec = StudySpec(PLANTED_STUDY_CONFIG, seeds=(0, 1, 2)).validated()
    started = time.perf_counter()
    if mode == "pool":
        executor = LocalProcessExecutor(home=home, max_workers=workers)
        connect_seconds = None
    else:
        from mtl_core.runs.ray_executor import RayExecutor
        from mtl_core.runs.ray_support import connect

        executor = RayExecutor(home=home, address=address)
        connect(address)  # timed apart from the study: a cluster is usually up already
        connect_seconds = time.perf_counter() - started
    try:
        study = run_study(spec, executor)
    finally:
        if mode == "pool":
            stop_pool(home, timeout=20)
    wall = time.perf_counter() - started
    store = RunStore.at_home(home)
    records = [store.get_run(row["run_id"]) for row in study["runs"]]
    first_start = min(r.started_at for r in records)
    last_finish = max(r.finished_at for r in records)
    run_seconds = [r.finished_at - r.started_at for r in records]
    results = {}
    for row in study["runs"]:
        result = store.get_result(row["run_id"]) or {}
        key = f"{'+'.join(row['tasks'])}@{row['seed']}"
        results[key] = {k: result.get(k) for k in ("final_metrics", "best_epoch", "steps")}
        results[key]["history"] = [{k: v for k, v in epoch.items() if k != "seconds"}  # timings differ
                                   for epoch in result.get("history", [])]
    store.close()
    return {
        "mode": mode,
        "wall": wall,
        "connect": connect_seconds,
        "busy": last_finish - first_start,
        "mean_run": statistics.fmean(run_seconds),
        "runs": len(records),
        "failed": sum(r.status != "done" for r in records),
        "results": results,
    }


def _child(mode: str, workers: int, address: str | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--workers", str(workers)]
    env = dict(os.environ)
    if address:
        command += ["--address", address]
        env["RAY_AUTH_MODE"] = "token"  # the cluster's token is this machine's ~/.ray/auth_token
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"benchmarks/ray.py: the {mode} study failed (exit {out.returncode}):\n"
                         + "\n".join(out.stderr.strip().splitlines()[-15:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="local pool processes (default 2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=2, help="Ray nodes of the simulated cluster")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.child, args.workers, args.address)))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"benchmarks/ray.py: --modes must name some of {', '.join(MODES)}, got {', '.join(unknown)}")
    import ray
    import torch

    machine = (f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
               f"Ray {ray.__version__}, Python {platform.python_version()}")
    print(machine, file=sys.stderr)
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for mode in modes:
            address = temp = None
            if mode == "ray-cluster":
                _stop_cluster()
                address, temp = _start_cluster(args.nodes, args.cpus_per_node)
            try:
                print(f"repeat {repeat + 1}: {mode} …", file=sys.stderr, flush=True)
                row = _child(mode, args.workers, address)
            finally:
                if mode == "ray-cluster":
                    _stop_cluster()
                    shutil.rmtree(temp, ignore_errors=True)
            row["repeat"] = repeat + 1
            rows.append(row)
            print(f"  {row['wall']:.1f} s wall, busy {row['busy']:.1f} s, {row['failed']} failed", file=sys.stderr)
    load_after = os.getloadavg()[0]
    pools = [r for r in rows if r["mode"] == "pool"]
    reference = pools[0]["results"] if pools else None
    pool_busy = statistics.fmean(r["busy"] for r in pools) if pools else None
    where = {"pool": f"local pool, {args.workers} workers",
             "ray-local": f"Ray, local (ray.init, {os.cpu_count()} CPUs)",
             "ray-cluster": f"Ray cluster, {args.nodes} nodes × {args.cpus_per_node} CPU (ray start, HOST:PORT)"}
    print(f"\n`python benchmarks/ray.py --workers {args.workers} --repeats {args.repeats} --nodes {args.nodes} "
          f"--cpus-per-node {args.cpus_per_node}` — {time.strftime('%Y-%m-%d')}, {machine}; 1-minute load "
          f"{load_before:.1f} before, {load_after:.1f} after.\n")
    print("| executor | repeat | wall-clock (s) | connect (s) | busy span (s) | mean s / run | overhead / run vs pool (ms) "
          "| failed | results = pool's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        overhead = "—" if pool_busy is None or row["mode"] == "pool" else f"{1000 * (row['busy'] - pool_busy) / row['runs']:+.0f}"
        same = "—" if reference is None else ("yes" if row["results"] == reference else "NO")
        connect = "—" if row["connect"] is None else f"{row['connect']:.1f}"
        print(f"| {where[row['mode']]} | {row['repeat']} | {row['wall']:.1f} | {connect} | {row['busy']:.1f} "
              f"| {row['mean_run']:.2f} | {overhead} | {row['failed']} | {same} |")


if __name__ == "__main__":
    main()
