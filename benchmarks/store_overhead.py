"""How much does recording a run into the run store slow training down?

Trains the same configuration with and without :class:`mtl_core.runs.workers.StoreRecorder` (what a
background worker attaches), alternating the two so that machine noise hits both alike, and
reports the median seconds per step and the overhead. A third variant adds a live reader: another
process polling ``metrics_after`` every 0.1 s, as the dashboard does. Then raw store numbers:
batched insert throughput and the latency of an incremental read on a large run.

    python benchmarks/store_overhead.py              # ~2 minutes on 2 cores
    python benchmarks/store_overhead.py --quick      # a smoke run (seconds)
    python benchmarks/store_overhead.py --json out.json

Single-threaded torch, as in a worker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mtl_core.config import TrainConfig
from mtl_core.runs.store import RunStore
from mtl_core.runs.workers import StoreRecorder
from mtl_core.training.events import Callback
from mtl_core.training.trainer import load_data, train

CONFIGS = {
    # tiny steps: the worst case for a per-step cost (2 tasks, 8-unit trunk)
    "tiny": {"suite": "planted", "suite_options": {"n_samples": 2000, "dim": 8, "n_tasks": 2, "n_groups": 1},
             "strategy_options": {"hidden": 8, "depth": 1}, "batch_size": 32, "epochs": 6},
    # the planted suite's defaults (6 tasks), gradient-level method
    "planted-6-pcgrad": {"suite": "planted", "method": "pcgrad", "epochs": 3, "batch_size": 32},
}

# A dashboard-like reader in another process: while switched on (a "1" line on stdin), it polls
# every running run for the rows after the last step it has, every 0.1 s.
_READER = """
import os, select, sys, time
from mtl_core.runs.store import RunStore
store = RunStore(sys.argv[1])
cursor = {}
active = False
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    if select.select([sys.stdin], [], [], 0 if active else 1.0)[0]:
        line = sys.stdin.readline()
        if not line:
            break
        active = line.strip() == "1"
    if active:
        for record in store.list_runs(status="running"):
            rows = store.metrics_after(record.id, cursor.get(record.id, -1))
            if rows:
                cursor[record.id] = rows[-1].step
        time.sleep(0.1)
"""


class _Replay(Callback):
    """Keeps every event of a run, to replay them through a recorder alone."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_step(self, event: Any) -> None:
        self.events.append(("on_step", event))

    def on_epoch_end(self, event: Any) -> None:
        self.events.append(("on_epoch_end", event))


def _time_run(config: TrainConfig, data: Any, store: RunStore | None) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, steps) of one training run."""
    recorder = None
    if store is not None:
        run_id = store.create_run(config.to_dict())
        store.claim_run(run_id)
        recorder = StoreRecorder(store, run_id)
    wall, cpu = time.perf_counter(), time.process_time()
    if recorder is None:
        result = train(config, [], data=data)
    else:
        with recorder:
            result = train(config, [recorder], data=data)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu  # includes the final flush
    if store is not None:
        store.finish_run(run_id, "done")
    return wall, cpu, result["steps"]


def _recorder_cpu_per_step(config: TrainConfig, data: Any, store: RunStore) -> float:
    """CPU seconds per step spent by the recorder itself (both threads): replay a run's events."""
    replay = _Replay()
    train(config, [replay], data=data)
    run_id = store.create_run(config.to_dict())
    store.claim_run(run_id)
    started = time.process_time()
    with StoreRecorder(store, run_id) as recorder:
        for hook, event in replay.events:
            getattr(recorder, hook)(event)
    steps = sum(1 for hook, _ in replay.events if hook == "on_step")
    return (time.process_time() - started) / steps


def bench_training(name: str, raw: dict[str, Any], pairs: int, store: RunStore) -> dict[str, Any]:
    """Alternate plain / recorder / recorder + live reader runs in shuffled order, ``pairs`` times;
    the overhead is the median over trials of (variant time / plain time of the same trial) - 1,
    which cancels the drift of a machine shared with other work."""
    config = TrainConfig.from_dict(raw).validated()
    data = load_data(config)
    train(config.replace(epochs=1), [], data=data)  # warm-up (lazy imports, allocator)
    variants = ("plain", "recorder", "recorder+reader")
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    order_rng = random.Random(0)
    steps = 0
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(store.path), "3600", "paused"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        for _ in range(pairs):
            order = list(variants)
            order_rng.shuffle(order)
            for variant in order:
                _signal_reader(reader, variant == "recorder+reader")
                seconds, cpu_seconds, steps = _time_run(config, data, None if variant == "plain" else store)
                wall[variant].append(seconds / steps)
                cpu[variant].append(cpu_seconds / steps)
            _signal_reader(reader, False)
    finally:
        reader.kill()
        reader.wait()
    out: dict[str, Any] = {"config": name, "steps": steps, "tasks": len(data.tasks), "trials": pairs,
                           "plain_ms_per_step": round(statistics.median(wall["plain"]) * 1000, 4)}
    for variant in variants[1:]:
        ratios = [v / p - 1 for v, p in zip(wall[variant], wall["plain"], strict=True)]
        cpu_ratios = [v / p - 1 for v, p in zip(cpu[variant], cpu["plain"], strict=True)]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        out[variant] = {
            "ms_per_step": round(statistics.median(wall[variant]) * 1000, 4),
            "wall_overhead_pct": round(statistics.median(ratios) * 100, 2),
            "wall_overhead_iqr_pct": [round(quartiles[0] * 100, 2), round(quartiles[2] * 100, 2)],
            "cpu_overhead_pct": round(statistics.median(cpu_ratios) * 100, 2),
        }
    direct = _recorder_cpu_per_step(config, data, store)
    out["recorder_cpu_us_per_step"] = round(direct * 1e6, 2)
    out["recorder_cpu_pct_of_step"] = round(direct / statistics.median(cpu["plain"]) * 100, 2)
    return out


def _signal_reader(reader: subprocess.Popen[bytes], active: bool) -> None:
    assert reader.stdin is not None
    reader.stdin.write(b"1\n" if active else b"0\n")
    reader.stdin.flush()
    time.sleep(0.05)


def bench_store(store: RunStore, quick: bool) -> dict[str, Any]:
    run_id = store.create_run({"suite": "planted"})
    batches, batch_rows = (50, 100) if quick else (1000, 100)
    started = time.perf_counter()
    step = 0
    for _ in range(batches):
        rows = []
        for _ in range(batch_rows // 10):
            step += 1
            rows.extend((step, 1, f"t{t}", "train_loss", 0.5) for t in range(10))
        store.append_metrics(run_id, rows)
    insert_seconds = time.perf_counter() - started
    total_rows = batches * batch_rows

    def latency(fn: Any, n: int = 50) -> float:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1000

    tail = latency(lambda: store.metrics_after(run_id, step - 10))
    full = latency(lambda: store.metrics_after(run_id), n=5)
    claim_ids = store.create_runs([{"suite": "planted"}] * 50)
    t0 = time.perf_counter()
    for _ in claim_ids:
        store.claim_next()
    claim_ms = (time.perf_counter() - t0) / len(claim_ids) * 1000
    return {
        "rows": total_rows,
        "batch_rows": batch_rows,
        "insert_rows_per_s": round(total_rows / insert_seconds),
        "insert_ms_per_batch": round(insert_seconds / batches * 1000, 3),
        "metrics_after_last_100_rows_ms": round(tail, 3),
        "metrics_after_all_rows_ms": round(full, 1),
        "claim_next_ms": round(claim_ms, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 trials, 1 epoch (a smoke run)")
    parser.add_argument("--trials", type=int, default=15, help="alternations of the variants (default 15)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trials = 3 if args.quick else args.trials
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
                                           "torch": torch.__version__}, "training": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.db")
        for name, raw in CONFIGS.items():
            if args.quick:
                raw = {**raw, "epochs": 1}
            results["training"].append(bench_training(name, raw, trials, store))
        results["store"] = bench_store(store, args.quick)
        store.close()
    results["machine"]["load_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"machine: {results['machine']}")
    print("\n| config | steps/run | plain ms/step | recorder: wall overhead (IQR), CPU overhead | "
          "+ live reader: wall overhead (IQR) | recorder CPU per step |")
    print("|---|---|---|---|---|---|")
    for row in results["training"]:
        rec, live = row["recorder"], row["recorder+reader"]
        print(f"| {row['config']} ({row['tasks']} tasks) | {row['steps']} | {row['plain_ms_per_step']} | "
              f"{rec['wall_overhead_pct']:+.1f} % ({rec['wall_overhead_iqr_pct'][0]:+.1f} … "
              f"{rec['wall_overhead_iqr_pct'][1]:+.1f}), {rec['cpu_overhead_pct']:+.1f} % | "
              f"{live['wall_overhead_pct']:+.1f} % ({live['wall_overhead_iqr_pct'][0]:+.1f} … "
              f"{live['wall_overhead_iqr_pct'][1]:+.1f}) | "
              f"{row['recorder_cpu_us_per_step']} µs ({row['recorder_cpu_pct_of_step']} %) |")
    print("\nstore:", json.dumps(results["store"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
