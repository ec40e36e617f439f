"""A 6-task × 3-seed pairwise transfer study on `planted` (21 configurations × 3 seeds = 63 runs).

Times the whole study (plan, train, collect) through the background worker pool (``--workers``
processes, a fresh pool in a temporary MTL Lab home, so its start-up is included) and in this
process (serial), prints the per-run table (21 configurations × 3 seeds, seconds of training) and
writes a Markdown report (default ``benchmarks/STUDY.md``).

    python benchmarks/study.py [--workers 2] [--executor pool|serial|both] [--suite-defaults]

Settings: :data:`mtl_core.studies.study.PLANTED_STUDY_CONFIG` with the study's default protocol (every run up
to ``max_epochs`` epochs, stopped after ``patience`` epochs without improvement of its validation
loss); ``--suite-defaults`` uses the planted suite's own defaults instead (1,000 training rows,
batch 64, lr 1e-3).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtl_core.config import TrainConfig
from mtl_core.runs.executors import LocalProcessExecutor, SerialExecutor
from mtl_core.studies.study import PLANTED_STUDY_CONFIG, StudySpec, run_study


def _pool_run_seconds(study: dict[str, Any], home: Path) -> tuple[dict[Any, float], float]:
    """Seconds per run (start → finish in the run store) and the span from the first start to
    the last finish."""
    from mtl_core.runs.store import RunStore

    store = RunStore.at_home(home)
    records = {row["run_id"]: store.get_run(row["run_id"]) for row in study["runs"]}
    seconds = {run_id: r.finished_at - r.started_at for run_id, r in records.items()
               if r.started_at is not None and r.finished_at is not None}
    first = min(r.started_at for r in records.values() if r.started_at is not None)
    last = max(r.finished_at for r in records.values() if r.finished_at is not None)
    return seconds, last - first


@dataclass
class Measurement:
    """One timed study: ``wall`` (plan → collected study), ``busy`` (first run start → last run
    finish), per-run seconds, and CPU seconds of the processes that did the work."""

    label: str
    study: dict[str, Any]
    wall: float
    busy: float
    seconds: dict[Any, float]
    cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time_pool(spec: StudySpec, workers: int) -> list[Measurement]:
    """A cold study (a fresh pool starts: worker processes import torch), then a warm one on the
    same pool. CPU: the pool's processes, counted once the pool has exited and been reaped."""
    from mtl_core.runs.workers import stop_pool

    home = Path(tempfile.mkdtemp(prefix="mtl_study_bench_"))
    executor = LocalProcessExecutor(home=home, max_workers=workers)
    out = []
    cpu_before = _children_cpu()
    try:
        for label in (f"pool, {workers} workers, cold start", f"pool, {workers} workers, warm"):
            print(f"{label}:", file=sys.stderr)
            started = time.perf_counter()
            study = run_study(spec, executor, progress=_progress)
            wall = time.perf_counter() - started
            print(file=sys.stderr)
            seconds, busy = _pool_run_seconds(study, home)
            out.append(Measurement(label, study, wall, busy, seconds, math.nan))
    finally:
        stop_pool(home, timeout=20)
    time.sleep(1.0)  # let the reaper thread collect the supervisor (and with it its workers' usage)
    out[0].cpu = _children_cpu() - cpu_before  # start-up and both studies: reported on the cold row
    return out


def _time_serial(spec: StudySpec) -> Measurement:
    print("serial:", file=sys.stderr)
    timings: dict[Any, float] = {}
    cpu_before = _self_cpu()
    started = time.perf_counter()
    study = run_study(spec, _TimedSerialExecutor(timings), progress=_progress)
    wall = time.perf_counter() - started
    print(file=sys.stderr)
    return Measurement("serial, 1 process", study, wall, sum(timings.values()), timings, _self_cpu() - cpu_before)


class _TimedSerialExecutor(SerialExecutor):
    """The serial executor (in a throw-away home), recording each run's training seconds from its run record."""

    def __init__(self, timings: dict[Any, float]) -> None:
        super().__init__(tempfile.mkdtemp(prefix="mtl_study_bench_serial_"))
        self.timings = timings

    def train(self, run_ids, progress=None):  # type: ignore[no-untyped-def]
        super().train(run_ids, progress)
        for run_id in run_ids:
            result = self.store.get_result(run_id)
            if result is not None:
                timing = result["timings"]
                self.timings[run_id] = timing["train_seconds"] + timing["data_seconds"]


def _planted_contrast(study: dict[str, Any]) -> str:
    """Mean transfer inside vs across the planted groups (the signal the grouping relies on)."""
    planted = study.get("planted_groups")
    if not planted:
        return ""
    group = {task: g for g, members in enumerate(planted) for task in members}
    tasks, mean = study["tasks"], study["transfer"]["mean"]
    inside, across = [], []
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            if i != j and mean[i][j] is not None:
                (inside if group.get(a) == group.get(b) else across).append(mean[i][j])
    return (f"mean transfer inside the planted groups {100 * statistics.fmean(inside):+.1f} %, "
            f"across them {100 * statistics.fmean(across):+.1f} %")


def _progress(done: int, total: int) -> None:
    print(f"\r  {done}/{total} runs", end="", file=sys.stderr, flush=True)


def _table(study: dict[str, Any], seconds: dict[Any, float]) -> list[str]:
    seeds = study["seeds"]
    rows: dict[tuple[str, ...], dict[int, float]] = {}
    for row in study["runs"]:
        rows.setdefault(tuple(row["tasks"]), {})[row["seed"]] = seconds.get(row["run_id"], float("nan"))
    header = "| configuration | " + " | ".join(f"seed {s} (s)" for s in seeds) + " | mean (s) |"
    lines = [header, "|" + "---|" * (len(seeds) + 2)]
    for tasks, by_seed in rows.items():
        values = [by_seed.get(s, float("nan")) for s in seeds]
        lines.append(f"| {' + '.join(tasks)} | " + " | ".join(f"{v:.2f}" for v in values)
                     + f" | {statistics.fmean(values):.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", choices=("pool", "serial", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="pool worker processes (default 2)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--suite-defaults", action="store_true", help="the planted suite's default options")
    parser.add_argument("--out", default=str(Path(__file__).with_name("STUDY.md")), help="Markdown report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = TrainConfig(suite="planted") if args.suite_defaults else PLANTED_STUDY_CONFIG
    spec = StudySpec(base, seeds=tuple(range(args.seeds))).validated()
    cfg = spec.base
    settings = (f"suite_options={dict(cfg.suite_options)}, strategy={cfg.strategy}, method={cfg.method}, "
                f"max_epochs={spec.max_epochs}, patience={spec.patience}, batch_size={cfg.batch_size}, lr={cfg.lr}, "
                f"seeds={list(spec.seeds)}")
    machine = f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, Python {platform.python_version()}"
    print(f"{machine}\n{settings}")
    load_before = os.getloadavg()[0]
    measurements: list[Measurement] = []
    if args.executor in ("pool", "both"):
        measurements += _time_pool(spec, args.workers)
    if args.executor in ("serial", "both"):
        measurements.append(_time_serial(spec))
    load_after = os.getloadavg()[0]
    report = [
        "# Transfer-study benchmark",
        "",
        "`python benchmarks/study.py` — a 6-task × 3-seed pairwise study on `planted` "
        "(6 alone + 15 pairs = 21 configurations × 3 seeds = 63 runs), the study's default protocol "
        "(early stopping).",
        "",
        f"- machine: {machine}; 1-minute load average {load_before:.1f} before, {load_after:.1f} after "
        "(other processes share the CPUs when it is above 0)",
        f"- settings: {settings}",
        "",
    ]
    summary = ["| executor | wall-clock (s) | runs busy span (s) | mean s / run | CPU s | best 2-grouping = planted |",
               "|---|---|---|---|---|---|"]
    tables: list[str] = []
    for m in measurements:
        study = m.study
        two = [g for g in study["groupings"]["transfer"] if g["k"] == 2][0]["groups"]
        recovered = sorted(map(sorted, two)) == sorted(map(sorted, study.get("planted_groups", [])))
        mean_run = statistics.fmean(m.seconds.values()) if m.seconds else math.nan
        cpu = "—" if math.isnan(m.cpu) else f"{m.cpu:.1f}"
        summary.append(f"| {m.label} | {m.wall:.1f} | {m.busy:.1f} | {mean_run:.2f} | {cpu} | "
                       f"{'yes' if recovered else 'no'} ({' / '.join(', '.join(g) for g in two)}) |")
        print(f"{m.label}: {m.wall:.1f} s wall-clock for {study['n_runs']} runs ({study['n_failed']} failed)")
        tables += ["", f"## Per-run seconds, {m.label}", "", *_table(study, m.seconds)]
    print("\n".join(summary))
    contrast = _planted_contrast(measurements[-1].study) if measurements else ""
    report += summary + [
        "",
        f"Transfer signal ({measurements[-1].label if measurements else ''}): {contrast}." if contrast else "",
        "",
        "Wall-clock: from planning to the collected study. Cold start includes starting a fresh pool, "
        "whose workers import torch and preload the trainer before their first run; warm reuses that "
        "pool (as when the dashboard or `python -m mtl_core worker` keeps one running). Busy span: first "
        "run start to last run finish. CPU s: user + system seconds of the processes that trained (for "
        "the pool: all its processes over start-up and both studies, on the cold row). The serial executor pays the "
        "one-time `torch._dynamo` import (first optimiser) inside its first run.",
        *tables,
        "",
    ]
    Path(args.out).write_text("\n".join(report), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
