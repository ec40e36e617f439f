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
    """Make each ``p.grad`` of ``params`` a view of its slice of ``vector`` (P,), overwriting.

    No copy: ``vector`` becomes the gradients' storage, so the caller hands it over (a later
    in-place change of a ``.grad``, e.g. another backward accumulating into it, changes ``vector``).
    """
    total = sum(p.numel() for p in params)
    if total != vector.numel():
        raise ValueError(f"direction has {vector.numel()} entries, parameters need {total}")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p)
        offset += n


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
    if mode not in ("loop", "batched"):
        raise ValueError(f"`mode` must be loop or batched, got {mode!r}")
    shared = list(shared)
    if mode == "batched" and shared:
        return _batched_jacobian(losses, shared, own, retain_graph)
    return _loop_jacobian(losses, shared, own, retain_graph)


def _batched_jacobian(
    losses: torch.Tensor,
    shared: list[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    retain_graph: bool,
) -> TaskGradients:
    """One vmapped backward over the T one-hot cotangents, for the shared *and* the tasks' own
    parameters (no second backward for the heads): task i's own gradients are row i of theirs."""
    n_tasks = int(losses.shape[0])
    own_params = [p for params in own for p in params]
    rows = torch.autograd.grad(
        losses,
        shared + own_params,
        grad_outputs=torch.eye(n_tasks, dtype=losses.dtype, device=losses.device),
        is_grads_batched=True,
        retain_graph=retain_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    n_shared = len(shared)
    matrix = torch.cat([r.reshape(n_tasks, -1) for r in rows[:n_shared]], dim=1)
    own_grads: list[list[torch.Tensor]] = []
    offset = n_shared
    for i, params in enumerate(own):
        own_grads.append([g[i] for g in rows[offset : offset + len(params)]])
        offset += len(params)
    return TaskGradients(shared=matrix, own=own_grads)


def _loop_jacobian(
    losses: torch.Tensor,
    shared: list[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    retain_graph: bool,
) -> TaskGradients:
    """One backward per task through the retained graph (shared and own parameters together); each
    task's row is written in place into one T × P matrix (no per-task vector, no final stack)."""
    n_tasks = int(losses.shape[0])
    n_shared = len(shared)
    # Every row is written below (a skipped task's row explicitly zeroed): no zero fill of T × P.
    matrix = torch.empty(n_tasks, sum(p.numel() for p in shared), device=losses.device, dtype=losses.dtype)
    own_grads: list[list[torch.Tensor]] = []
    for i in range(n_tasks):
        inputs = shared + list(own[i])
        if not inputs or not losses[i].requires_grad:
            matrix[i].zero_()
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
            torch.cat([g.reshape(-1) for g in grads[:n_shared]], out=matrix[i])
        own_grads.append(list(grads[n_shared:]))
    return TaskGradients(shared=matrix, own=own_grads)
