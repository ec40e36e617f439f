"""Per-task gradients of the shared parameters, computed from one shared forward pass.

Given the per-task losses of one forward pass, :func:`task_jacobian` returns the T × P matrix ``G``
of the gradients of each loss w.r.t. the *shared* parameters (flattened and concatenated, on the
losses' device — never copied to the CPU) and, from the same backward passes, each task's gradient on
its own parameters (heads, towers).

Two ways to do the T vector-Jacobian products:

* ``loop``: one ``autograd.grad`` per task through the retained graph (T backward passes; the floor).
* ``batched``: one ``autograd.grad`` with ``is_grads_batched=True`` (vmap over the T one-hot
  cotangents); usually faster on a GPU, measured slower on a CPU with small models
  (``benchmarks/jacobian.py``).

``auto`` picks ``loop`` on CPU and ``batched`` on CUDA, following the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["TaskGradients", "task_jacobian", "resolve_mode", "flatten", "unflatten_into_grads"]


@dataclass
class TaskGradients:
    """``shared``: (T, P) matrix; ``own``: per task, gradients of its own parameters (same order
    as the parameter lists given)."""

    shared: torch.Tensor
    own: list[list[torch.Tensor]]


def resolve_mode(mode: str, device: torch.device) -> str:
    if mode == "auto":
        return "batched" if device.type == "cuda" else "loop"
    return mode


def flatten(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads]) if grads else torch.zeros(0)


def unflatten_into_grads(vector: torch.Tensor, params: Sequence[torch.nn.Parameter]) -> None:
    """Write ``vector`` (P,) into ``p.grad`` of ``params`` (overwriting)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p).clone()
        offset += n
    if offset != vector.numel():
        raise ValueError(f"direction has {vector.numel()} entries, parameters need {offset}")


def task_jacobian(
    losses: torch.Tensor,
    shared: Sequence[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    mode: str = "loop",
    retain_graph: bool = False,
) -> TaskGradients:
    """Gradients of each ``losses[i]`` w.r.t. ``shared`` (stacked as rows) and ``own[i]``.

    ``own[i]`` are task i's parameters (only its loss depends on them). Parameters a loss does not
    reach get zero gradients. ``retain_graph`` keeps the graph after the last pass.
    """
    n_tasks = int(losses.shape[0])
    shared = list(shared)
    device = losses.device
    if mode == "batched" and shared:
        eye = torch.eye(n_tasks, dtype=losses.dtype, device=device)
        rows = torch.autograd.grad(
            losses,
            shared,
            grad_outputs=eye,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        matrix = torch.cat([r.reshape(n_tasks, -1) for r in rows], dim=1)
        own_params = [p for params in own for p in params]
        own_grads: list[list[torch.Tensor]] = [[] for _ in range(n_tasks)]
        if own_params:
            flat = torch.autograd.grad(
                losses.sum(), own_params, retain_graph=retain_graph, allow_unused=True, materialize_grads=True
            )
            offset = 0
            for i, params in enumerate(own):
                own_grads[i] = list(flat[offset : offset + len(params)])
                offset += len(params)
        return TaskGradients(shared=matrix, own=own_grads)
    if mode not in ("loop", "batched"):
        raise ValueError(f"`mode` must be loop or batched, got {mode!r}")
    own_grads = []
    n_shared = len(shared)
    # Each task's row is written in place (no per-task vector, no final stack: one copy fewer).
    matrix = torch.zeros(n_tasks, sum(p.numel() for p in shared), device=device, dtype=losses.dtype)
    for i in range(n_tasks):
        inputs = shared + list(own[i])
        if not inputs or not losses[i].requires_grad:
            own_grads.append([torch.zeros_like(p) for p in own[i]])
            continue
        grads = torch.autograd.grad(
            losses[i],
            inputs,
            retain_graph=retain_graph or i < n_tasks - 1,
            allow_unused=True,
            materialize_grads=True,
        )
        if n_shared:
            row = matrix[i]
            offset = 0
            for g in grads[:n_shared]:
                n = g.numel()
                row[offset : offset + n].copy_(g.reshape(-1))
                offset += n
        own_grads.append(list(grads[n_shared:]))
    return TaskGradients(shared=matrix, own=own_grads)
