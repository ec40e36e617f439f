"""Time and memory of every gradient method on one task-gradient matrix, beside torchjd's aggregators.

Issue 14: each gradient method of ``mtl_core.balancing.combine`` against torchjd 0.18's aggregator
of the same name on the same float32 matrix (8 × 200 000 and 16 × 1 000 000 by default), called
alternately (paired: ours, theirs, ours, …) so that a change of machine load hits both; the median
of each, their ratio, the floor (a bare ``G @ G.T`` plus ``w @ G``, the two passes over G every
Gramian method needs, timed in the same rounds) with ours / floor and torchjd / floor, and the peak extra memory of one call of ours (torch's profiler on CPU,
``torch.cuda.max_memory_allocated`` on CUDA) in P-vectors (one P-vector = the direction itself).
With ``--gramian-error`` it also measures the float32 Gramian's error against float64 on
ill-conditioned matrices (the numbers ``_qp.gramian`` documents).

    python benchmarks/aggregators.py [--shapes 8x200000 16x1000000] [--rounds 15] [--threads 1 2]
                                     [--device cpu|cuda] [--methods upgrad mgda ...] [--gramian-error]

torchjd is optional (``pip install torchjd==0.18.* qpsolvers quadprog``; CAGrad and Nash-MTL need
its ``cagrad`` / ``nash_mtl`` extras): without it, or for an aggregator it cannot build, the torchjd
columns say "n/a". Report the machine and its load (``uptime``) with the table.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mtl_core.balancing import METHODS, combine

#: Our method name → how to build torchjd's aggregator for T tasks (None: torchjd has none).
TORCHJD_AGGREGATORS: dict[str, Callable[[object, int], object] | None] = {
    "upgrad": lambda aggregation, n_tasks: aggregation.UPGrad(),
    "mgda": lambda aggregation, n_tasks: aggregation.MGDA(),
    "mgda_ub": None,  # the same computation as mgda on a matrix
    "imtl_g": lambda aggregation, n_tasks: aggregation.IMTLG(),
    "aligned_mtl": lambda aggregation, n_tasks: aggregation.AlignedMTL(),
    "cagrad": lambda aggregation, n_tasks: aggregation.CAGrad(c=0.5),
    "pcgrad": lambda aggregation, n_tasks: aggregation.PCGrad(),
    "nash_mtl": lambda aggregation, n_tasks: aggregation.NashMTL(n_tasks=n_tasks),
    "graddrop": lambda aggregation, n_tasks: aggregation.GradDrop(),
    "gradvac": lambda aggregation, n_tasks: aggregation.GradVac(),
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(call: Callable[[], object], device: str) -> float:
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return time.perf_counter() - start


def torchjd_aggregator(method: str, n_tasks: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    build = TORCHJD_AGGREGATORS.get(method)
    if build is None:
        return None
    try:
        from torchjd import aggregation
    except ImportError:
        return None
    try:
        return build(aggregation, n_tasks)  # type: ignore[return-value]
    except Exception:  # an optional dependency of that aggregator is missing
        return None


def peak_extra_bytes(call: Callable[[], object], device: str) -> int:
    """Peak bytes allocated by ``call`` beyond what was held before it."""
    call()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        call()
    held = peak = 0
    for event in sorted(profiler.events(), key=lambda event: event.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak


def bench_shape(n_tasks: int, n_params: int, methods: list[str], rounds: int, device: str) -> None:
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(n_tasks, n_params, generator=generator).to(device)
    vector_bytes = n_params * grads.element_size()
    print(f"\n{n_tasks} × {n_params} float32 on {device}: medians of {rounds} paired calls")
    weights = torch.rand(n_tasks, generator=generator).to(device)

    def floor() -> object:
        """The two passes over G that any Gramian method needs: G Gᵀ, then one weighted sum of rows."""
        return grads @ grads.T, weights @ grads

    print("| method | ours (ms) | torchjd (ms) | floor (ms) | ours / torchjd | ours / floor | torchjd / floor "
          "| peak extra memory of ours (P-vectors) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        seeded = torch.Generator(device=device).manual_seed(0)

        def ours(method: str = method, seeded: torch.Generator = seeded) -> torch.Tensor:
            return combine(method, grads, generator=seeded)

        theirs = torchjd_aggregator(method, n_tasks)
        ours()
        if theirs is not None:
            try:
                theirs(grads)
            except Exception:  # e.g. a solver missing at call time
                theirs = None
        our_times, their_times, floor_times = [], [], []
        for _ in range(rounds):
            our_times.append(timed(ours, device))
            floor_times.append(timed(floor, device))
            if theirs is not None:
                their_times.append(timed(lambda theirs=theirs: theirs(grads), device))
        ours_ms = 1e3 * statistics.median(our_times)
        theirs_ms = 1e3 * statistics.median(their_times) if their_times else math.nan
        ratio = f"{ours_ms / theirs_ms:.2f}" if their_times else "n/a"
        theirs_text = f"{theirs_ms:.2f}" if their_times else "n/a"
        floor_ms = 1e3 * statistics.median(floor_times)
        their_floor = f"{theirs_ms / floor_ms:.2f}" if their_times else "n/a"
        memory = peak_extra_bytes(ours, device) / vector_bytes
        print(
            f"| {method} | {ours_ms:.2f} | {theirs_text} | {floor_ms:.2f} | {ratio} | {ours_ms / floor_ms:.2f} "
            f"| {their_floor} | {memory:.2f} |"
        )


def gramian_error() -> None:
    """Largest error of the float32 Gramian (one float32 GEMM, as ``_qp.gramian`` computes it)
    relative to ‖gᵢ‖‖gⱼ‖, against the float64 Gramian of the same float32 entries, and the smallest
    eigenvalue it reports for exactly rank-deficient rows (relative to the largest)."""
    from mtl_core.balancing._qp import gramian

    print("\nfloat32 Gramian vs float64 (same float32 entries)")
    print("| T × P | condition of G | max error / (‖gᵢ‖‖gⱼ‖) | √P·eps | min eigenvalue / max, exact rank T − 1 |")
    print("|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for n_tasks, n_params in [(8, 10_000), (8, 200_000), (16, 200_000)]:
        for condition in (1e0, 1e3, 1e6):
            basis = torch.linalg.qr(torch.randn(n_params, n_tasks, generator=generator))[0].T
            spectrum = torch.logspace(0, -math.log10(condition), n_tasks)
            mixing = torch.linalg.qr(torch.randn(n_tasks, n_tasks, generator=generator))[0]
            grads = ((mixing * spectrum) @ basis).float()
            exact = (grads.double() @ grads.double().T).numpy()
            norms = exact.diagonal() ** 0.5
            error = float((abs(gramian(grads) - exact) / (norms[:, None] * norms[None, :])).max())
            dependent = grads.clone()
            dependent[-1] = dependent[:-1].sum(dim=0)
            values = torch.linalg.eigvalsh(torch.as_tensor(gramian(dependent)))
            floor = float(values.min() / values.max())
            bound = math.sqrt(n_params) * float(torch.finfo(torch.float32).eps)
            print(f"| {n_tasks} × {n_params} | {condition:.0e} | {error:.1e} | {bound:.1e} | {floor:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["8x200000", "16x1000000"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--methods", nargs="+", default=sorted(n for n, c in METHODS.items() if c.kind == "gradient")
    )
    parser.add_argument("--gramian-error", action="store_true")
    args = parser.parse_args()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    try:
        import importlib.metadata

        import torchjd  # noqa: F401

        torchjd_version = importlib.metadata.version("torchjd")
    except ImportError:
        torchjd_version = "not installed"
    for threads in args.threads:
        torch.set_num_threads(threads)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        print(
            f"\ntorch {torch.__version__}, torchjd {torchjd_version}, {threads} thread(s), "
            f"{device_name or platform.machine()}, {os.cpu_count()} CPUs, load {load:.2f}"
        )
        for shape in args.shapes:
            n_tasks, n_params = (int(part) for part in shape.lower().split("x"))
            bench_shape(n_tasks, n_params, args.methods, args.rounds, args.device)
    if args.gramian_error:
        gramian_error()


if __name__ == "__main__":
    main()
