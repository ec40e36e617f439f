"""Per-step time of gradient methods for each way of computing the per-task Jacobian.

Setting (issue 3): hard sharing, MLP trunk 3 × 256, batch 256, T = 2, 4, 8 planted regression
tasks; UPGrad and PCGrad aggregation; the median of repeated steps of the real trainer step
(`Trainer._train_step`), next to a plain `ew` step (one backward of the summed loss). When
`torchjd` is importable, its `mtl_backward` with its UPGrad aggregator on the same model is timed too.

    python benchmarks/jacobian.py [--rounds 15] [--block 4] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtl_core.config import TrainConfig
from mtl_core.training.trainer import Trainer

MODES = ("loop", "batched", "representation")


def make_trainer(n_tasks: int, method: str, mode: str, device: str) -> Trainer:
    cfg = TrainConfig(
        suite="planted",
        suite_options={"n_tasks": n_tasks, "n_groups": 2, "n_samples": 512, "dim": 64},
        strategy="hard",
        strategy_options={"hidden": 256, "depth": 3},
        method=method,
        batch_size=256,
        jacobian_mode=mode,
        device=device,
        seed=0,
    )
    return Trainer(cfg)


def batch(trainer: Trainer) -> tuple:
    data = trainer.data.train
    dev = trainer.device
    return (
        data.x[:256].to(dev),
        {k: v[:256].to(dev) for k, v in data.y.items()},
        {k: v[:256].to(dev) for k, v in data.masks.items()},
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_of_trainer(n_tasks: int, method: str, mode: str, device: str):
    trainer = make_trainer(n_tasks, method, mode, device)
    x, y, m = batch(trainer)
    return lambda: trainer._train_step(x, y, m, epoch=1)


def interleaved_medians(steps: dict[str, object], rounds: int, block: int, device: str) -> dict[str, float]:
    """Median ms per step of each contestant, timed in blocks of ``block`` steps, round-robin in a
    shuffled order every round, so drifts of a shared machine hit every contestant alike."""
    import random

    rng = random.Random(0)
    for step in steps.values():  # warm-up (allocator, autograd caches)
        for _ in range(3):
            step()
    sync(device)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            step = steps[name]
            start = time.perf_counter()
            for _ in range(block):
                step()
            sync(device)
            samples[name].append((time.perf_counter() - start) / block * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def torchjd_step(n_tasks: int, device: str):
    try:
        from torchjd.aggregation import UPGrad

        aggregator = UPGrad()  # needs torchjd's optional qpsolvers + quadprog
    except ImportError as exc:
        print(f"(torchjd not timed: {exc})")
        return None
    from torchjd.autojac import jac_to_grad, mtl_backward  # torchjd ≥ 0.18 API

    from mtl_core.training.trainer import task_losses

    trainer = make_trainer(n_tasks, "ew", "loop", device)
    x, y, m = batch(trainer)
    model = trainer.model

    def step() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        z = model.encode(x)
        outputs = model.decode(z)
        # one separate graph per task loss (a stacked tensor would share one node)
        losses = [task_losses(outputs, y, m, [spec])[0] for spec in trainer.tasks]
        mtl_backward(losses, features=z, shared_params=trainer.shared)
        jac_to_grad(trainer.shared, aggregator)
        trainer.optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of interleaved timing blocks")
    parser.add_argument("--block", type=int, default=4, help="steps per timing block")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", default="2,4,8")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (workers use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"rounds={args.rounds} block={args.block}")
    header = (f"{'T':>2} {'method':<7} {'ew ms':>8} " + " ".join(f"{m + ' ms':>17}" for m in MODES)
              + f" {'auto→':>15} {'auto/fastest':>12} {'torchjd ms':>11} {'torchjd/auto':>12}")
    print(header)
    for n_tasks in [int(t) for t in args.tasks.split(",")]:
        for method in ("upgrad", "pcgrad"):
            steps = {"ew": step_of_trainer(n_tasks, "ew", "auto", args.device)}
            steps.update({mode: step_of_trainer(n_tasks, method, mode, args.device) for mode in MODES})
            jd = torchjd_step(n_tasks, args.device) if method == "upgrad" else None
            if jd is not None:
                steps["torchjd"] = jd
            timings = interleaved_medians(steps, args.rounds, args.block, args.device)
            auto_mode = make_trainer(n_tasks, method, "auto", args.device).jacobian_mode
            fastest = min(timings[m] for m in MODES)
            cells = " ".join(f"{timings[m]:>9.2f} ({timings[m] / fastest:4.2f}×)" for m in MODES)
            auto_ratio = timings[auto_mode] / fastest
            if "torchjd" in timings:
                jd_cells = f"{timings['torchjd']:>11.2f} {timings['torchjd'] / timings[auto_mode]:>11.2f}×"
            else:
                jd_cells = f"{'—':>11} {'—':>12}"
            print(f"{n_tasks:>2} {method:<7} {timings['ew']:>8.2f} {cells} {auto_mode:>15} {auto_ratio:>11.2f}× {jd_cells}",
                  flush=True)


if __name__ == "__main__":
    main()
