"""Training speed per sharing strategy: epochs per second on `planted` and `digits` (ew, CPU).

    python benchmarks/epochs.py [--epochs 3]
"""

from __future__ import annotations

import argparse

import torch

from mtl_core.config import TrainConfig
from mtl_core.strategies import STRATEGIES
from mtl_core.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch={torch.__version__} threads=1 epochs={args.epochs} (default suite and strategy options)")
    print(f"{'suite':<10} {'strategy':<13} {'train rows':>10} {'params':>8} {'epochs/s':>9} {'s/epoch':>8}")
    for suite in ("planted", "digits"):
        for strategy in STRATEGIES.names():
            trainer = Trainer(TrainConfig(suite=suite, strategy=strategy, epochs=args.epochs, seed=0))
            result = trainer.run()
            seconds = result["timings"]["train_seconds"]
            n_params = sum(p.numel() for p in trainer.model.parameters())
            print(f"{suite:<10} {strategy:<13} {len(trainer.data.train):>10} {n_params:>8} "
                  f"{args.epochs / seconds:>9.2f} {seconds / args.epochs:>8.3f}")


if __name__ == "__main__":
    main()
