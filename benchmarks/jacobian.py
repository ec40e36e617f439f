"""Per-step time of gradient methods for each way of computing the per-task Jacobian.

Setting (issue 3): hard sharing, MLP trunk 3 × 256, batch 256, T = 2, 4, 8 planted regression
tasks; UPGrad and PCGrad aggregation; the median of repeated steps of the real trainer step
(`Trainer._train_step`), next to a plain `ew` step (one backward of the summed loss) and the
*T-backward floor* (forward, one backward per task through the retained graph accumulating into
`.grad`, optimiser step: what any step that needs every task's gradient pays, without forming or
combining the Jacobian). When `torchjd` is importable, its `mtl_backward` + `jac_to_grad` with its
UPGrad aggregator on the same model is timed too (otherwise its columns say n/a). All contestants of
one row are timed interleaved (blocks, round-robin, shuffled order), once per thread count.

    python benchmarks/jacobian.py [--rounds 15] [--block 4] [--threads 1 2] [--tasks 2,4,8] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
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
        probe_interval=0,  # the step alone (probes: benchmarks/probes.py); a probe step would add a Jacobian
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


def interleaved_medians(
    steps: dict[str, object], rounds: int, block: int, device: str, clock=time.perf_counter
) -> dict[str, float]:
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
            start = clock()
            for _ in range(block):
                step()
            sync(device)
            samples[name].append((clock() - start) / block * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def floor_step(n_tasks: int, device: str):
    """Forward, T backward passes (task i's own loss scalar through its head and the retained
    trunk, accumulated into ``.grad``: no T × P matrix, no combination), optimiser step. Each pass
    starts from a separate scalar: from an entry of the stacked losses it would also run through
    every other head (zeros), an inflated floor (≈ 20 % at T = 8, measured 2026-12-05)."""
    from mtl_core.training.trainer import task_loss_list

    trainer = make_trainer(n_tasks, "ew", "loop", device)
    x, y, m = batch(trainer)

    def step() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        losses = task_loss_list(trainer.model(x), y, m, trainer.tasks)
        for i in range(n_tasks):
            losses[i].backward(retain_graph=i < n_tasks - 1)
        trainer.optimizer.step()

    return step


def torchjd_step(n_tasks: int, device: str):
    try:
        from torchjd.aggregation import UPGrad

        aggregator = UPGrad()  # needs torchjd's optional qpsolvers + quadprog
    except ImportError:
        return None
    from torchjd.autojac import jac_to_grad, mtl_backward  # torchjd ≥ 0.18 API

    from mtl_core.training.trainer import task_loss_list

    trainer = make_trainer(n_tasks, "ew", "loop", device)
    x, y, m = batch(trainer)
    model = trainer.model

    def step() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        z = model.encode(x)
        outputs = model.decode(z)
        # one separate graph per task loss (a stacked tensor would share one node)
        losses = task_loss_list(outputs, y, m, trainer.tasks)
        mtl_backward(losses, features=z, shared_params=trainer.shared)
        jac_to_grad(trainer.shared, aggregator)
        trainer.optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of interleaved timing blocks")
    parser.add_argument("--block", type=int, default=4, help="steps per timing block")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", default="2,4,8")
    parser.add_argument("--methods", default="upgrad,pcgrad")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts (workers use 1)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: perf_counter; cpu: the process's CPU time (steadier on a shared machine; "
                             "at 1 thread only, on CPU: with more threads it adds up every thread)")
    args = parser.parse_args()
    try:
        import torchjd

        jd_version = torchjd.__version__ if hasattr(torchjd, "__version__") else "?"
    except ImportError:
        jd_version = "not installed (n/a)"
    print(f"device={args.device} torch={torch.__version__} torchjd={jd_version} rounds={args.rounds} block={args.block} "
          f"cpus={os.cpu_count()} load={_load()} clock={args.clock} (cpu at 1 thread only)")
    print("median ms per step; (×) = ratio to the fastest of our modes; over floor = auto / T-backward floor − 1")
    print()
    print("| threads | T | method | ew | floor | " + " | ".join(MODES) + " | auto picks | auto / fastest "
          "| over floor | torchjd | torchjd / ours |")
    print("|" + "---|" * (11 + len(MODES) - 1))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n_tasks in [int(t) for t in args.tasks.split(",")]:
            for method in args.methods.split(","):
                print(row(threads, n_tasks, method, args), flush=True)
    print(f"\nload at the end={_load()} (1, 5, 15 min; 2-thread rows mean little on a machine busy with other work)")


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def row(threads: int, n_tasks: int, method: str, args: argparse.Namespace) -> str:
    torch.manual_seed(0)
    steps = {"ew": step_of_trainer(n_tasks, "ew", "auto", args.device), "floor": floor_step(n_tasks, args.device)}
    steps.update({mode: step_of_trainer(n_tasks, method, mode, args.device) for mode in MODES})
    jd = torchjd_step(n_tasks, args.device) if method == "upgrad" else None
    if jd is not None:
        steps["torchjd"] = jd
    clock = time.process_time if args.clock == "cpu" and threads == 1 else time.perf_counter
    timings = interleaved_medians(steps, args.rounds, args.block, args.device, clock)
    auto_mode = make_trainer(n_tasks, method, "auto", args.device).jacobian_mode
    fastest = min(timings[m] for m in MODES)
    auto = timings[auto_mode]
    cells = [f"{threads}", f"{n_tasks}", method, f"{timings['ew']:.2f}", f"{timings['floor']:.2f}"]
    cells += [f"{timings[m]:.2f} ({timings[m] / fastest:.2f}×)" for m in MODES]
    cells += [auto_mode, f"{auto / fastest:.2f}×", f"{(auto / timings['floor'] - 1) * 100:+.0f} %"]
    if "torchjd" in timings:
        cells += [f"{timings['torchjd']:.2f}", f"{timings['torchjd'] / auto:.2f}×"]
    else:
        cells += ["n/a", "n/a"]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
