"""Overhead of the during-training probes and of TAG affinity over a plain ``ew`` run (CPU).

    python benchmarks/probes.py [--epochs 5] [--repeats 7] [--suite planted]

Rows: the same run (default suite, ``hard`` strategy, ``ew``, Adam) without probes; with the
gradient probes (cosine, norms, conflict, weights) every 1, 5, 10 and 25 steps; with TAG affinity
(lookahead every k steps, gradient probes off); and two rows with ``jacobian_mode="batched"``. Times are CPU seconds of this process
(``time.process_time``, one torch thread; data loading excluded). In each of ``--repeats`` rounds
every row runs back to back with the same run without probes (order alternating); "× ew" is the
median over rounds of that pair's ratio, which resists the slow spells of a shared machine; the
"seconds" column is the median time of the row's own runs; "per probed step" is the overhead ×
the interval: the extra cost of one probed step in plain steps (a plain step counting its share
of the per-epoch evaluation), from which the overhead at any interval k is about that / k.
The targets: gradient probes ≤ 15 % at the default ``probe_interval``, TAG ≤ 1.5 × at the default
TAG interval.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtl_core.config import TrainConfig
from mtl_core.suites import SuiteData
from mtl_core.training.tag import DEFAULT_TAG_INTERVAL, TagProbe
from mtl_core.training.trainer import Trainer, load_data

PROBE_INTERVALS = (1, 5, 10, 25)
TAG_INTERVALS = (1, 2, 5, 10)


def _seconds(config: TrainConfig, data: SuiteData, tag_interval: int | None = None) -> float:
    """CPU seconds of one training run (data given, so loading is excluded)."""
    trainer = Trainer(config, data=data)
    if tag_interval is not None:
        trainer.probes = [p for p in trainer.probes if not isinstance(p, TagProbe)] + [TagProbe(tag_interval)]
    started = time.process_time()
    trainer.run()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--suite", default="planted")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = TrainConfig(suite=args.suite, strategy="hard", method="ew", epochs=args.epochs, seed=0).validated()
    data = load_data(base)
    steps = -(-len(data.train) // base.batch_size) * base.epochs
    print(f"torch={torch.__version__} threads=1 suite={args.suite} tasks={len(data.tasks)} "
          f"train rows={len(data.train)} steps={steps} strategy=hard method=ew optimizer={base.optimizer}; "
          f"median of {args.repeats} rounds, CPU seconds")
    runs: list[tuple[str, TrainConfig, int | None]] = [("no probes (against itself)", base, None)]
    runs += [(f"probe_interval={k}", base.replace(probe_interval=k), None) for k in PROBE_INTERVALS]
    runs += [
        (f"tag, lookahead every {k}" + (" (default)" if k == DEFAULT_TAG_INTERVAL else ""), base.replace(tag=True), k)
        for k in TAG_INTERVALS
    ]
    # The same, with the probe steps' per-task Jacobian computed by one vmapped backward pass
    # (jacobian_mode="batched") instead of T passes (the CPU default): what a cheaper Jacobian buys.
    batched = base.replace(jacobian_mode="batched")
    runs += [
        ("probe_interval=5, batched jacobian", batched.replace(probe_interval=5), None),
        (f"tag every {DEFAULT_TAG_INTERVAL}, batched jacobian", batched.replace(tag=True), DEFAULT_TAG_INTERVAL),
    ]
    _seconds(base, data)  # warm-up
    # Each configuration runs back to back with a run without probes (order alternating), and the
    # ratio of the pair is taken; the median over rounds resists the slow spells of a shared machine.
    seconds: list[list[float]] = [[] for _ in runs]
    ratios: list[list[float]] = [[] for _ in runs]
    for round_index in range(args.repeats):
        for row, (_, config, tag_interval) in enumerate(runs):
            if round_index % 2:
                probed, plain = _seconds(config, data, tag_interval), _seconds(base, data)
            else:
                plain, probed = _seconds(base, data), _seconds(config, data, tag_interval)
            seconds[row].append(probed)
            ratios[row].append(probed / plain)
    print(f"{'run':<36} {'seconds':>8} {'× ew':>6} {'overhead':>9} {'per probed step':>16}")
    for (label, config, tag_interval), times, row_ratios in zip(runs, seconds, ratios):
        ratio = statistics.median(row_ratios)
        interval = tag_interval or config.probe_interval
        # The extra cost of one probed step in plain steps: overhead × interval (eval time ignored).
        per_step = f"{(ratio - 1) * interval:>15.2f}×" if interval else f"{'':>16}"
        print(f"{label:<36} {statistics.median(times):>8.3f} {ratio:>6.2f} {100 * (ratio - 1):>8.1f}% {per_step}")

if __name__ == "__main__":
    main()
