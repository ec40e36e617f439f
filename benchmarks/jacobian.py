"""Per-step time of gradient methods for each way of computing the per-task Jacobian.

Setting (issue 3): hard sharing, MLP trunk 3 × 256, batch 256, T = 2, 4, 8 planted regression
tasks; UPGrad and PCGrad aggregation; the median of repeated steps of the real trainer step
(`Trainer._train_step`), next to a plain `ew` step (one backward of the summed loss). When
`torchjd` is importable, its `mtl_backward` with its UPGrad aggregator on the same model is timed too.

    python benchmarks/jacobian.py [--repeats 30] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtl_core.config import TrainConfig
from mtl_core.trainer import Trainer

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


def time_steps(step, repeats: int, device: str) -> float:
    for _ in range(3):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def time_trainer(n_tasks: int, method: str, mode: str, repeats: int, device: str) -> float:
    trainer = make_trainer(n_tasks, method, mode, device)
    x, y, m = batch(trainer)
    return time_steps(lambda: trainer._train_step(x, y, m, epoch=1), repeats, device)


def time_torchjd(n_tasks: int, repeats: int, device: str) -> float | None:
    try:
        from torchjd.aggregation import UPGrad
    except ImportError:
        return None
    from torchjd.autojac import jac_to_grad, mtl_backward  # torchjd ≥ 0.18 API

    from mtl_core.trainer import task_losses

    trainer = make_trainer(n_tasks, "ew", "loop", device)
    x, y, m = batch(trainer)
    model, aggregator = trainer.model, UPGrad()

    def step() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        z = model.encode(x)
        outputs = model.decode(z)
        # one separate graph per task loss (a stacked tensor would share one node)
        losses = [task_losses(outputs, y, m, [spec])[0] for spec in trainer.tasks]
        mtl_backward(losses, features=z, shared_params=trainer.shared)
        jac_to_grad(trainer.shared, aggregator)
        trainer.optimizer.step()

    return time_steps(step, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", default="2,4,8")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    header = f"{'T':>2} {'method':<7} {'ew ms':>8} " + " ".join(f"{m + ' ms':>17}" for m in MODES) + f" {'auto→':>15} {'torchjd ms':>11}"
    print(header)
    for n_tasks in [int(t) for t in args.tasks.split(",")]:
        ew = time_trainer(n_tasks, "ew", "auto", args.repeats, args.device)
        jd = time_torchjd(n_tasks, args.repeats, args.device)
        for method in ("upgrad", "pcgrad"):
            timings = {mode: time_trainer(n_tasks, method, mode, args.repeats, args.device) for mode in MODES}
            auto_mode = make_trainer(n_tasks, method, "auto", args.device).jacobian_mode
            fastest = min(timings.values())
            cells = " ".join(f"{timings[m]:>9.2f} ({timings[m] / fastest:4.2f}×)" for m in MODES)
            jd_cell = f"{jd:>11.2f}" if (jd is not None and method == "upgrad") else f"{'—':>11}"
            print(f"{n_tasks:>2} {method:<7} {ew:>8.2f} {cells} {auto_mode:>15} {jd_cell}")


if __name__ == "__main__":
    main()
