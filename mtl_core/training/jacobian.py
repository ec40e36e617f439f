"""Per-task gradients of the shared parameters, computed from one shared forward pass.

Given the per-task losses of one forward pass, :func:`task_jacobian` returns the T × P matrix ``G``
of the gradients of each loss w.r.t. the *shared* parameters (flattened and concatenated, on the
losses' device — never copied to the CPU) and, from the same backward passes, each task's gradient on
its own parameters (heads, towers).

Two ways to do the T vector-Jacobian products:

* ``loop``: one ``autograd.grad`` per task through the retained graph, for the shared parameters and
  the task's own together (T backward passes, the floor of any method that needs every task's
  gradient), each row written straight into the T × P matrix.
* ``batched``: one ``autograd.grad`` with ``is_grads_batched=True`` (vmap over the T one-hot
  cotangents), small heads included (see :data:`FOLD_OWN_FRACTION`); usually faster on a GPU,
  measured slower on a CPU with small models (``benchmarks/jacobian.py``, 1 and 2 threads).

``auto`` picks ``loop`` on CPU and ``batched`` on CUDA, following the benchmark. Nothing here
converts to float64: ``G`` has the losses' dtype.
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
    losses: torch.Tensor | Sequence[torch.Tensor],
    shared: Sequence[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    mode: str = "loop",
    retain_graph: bool = False,
) -> TaskGradients:
    """Gradients of each ``losses[i]`` w.r.t. ``shared`` (stacked as rows) and ``own[i]``.

    ``losses`` is a (T,) tensor or T scalars; separate scalars save the loop mode a backward through
    every other task's head per pass (see :func:`mtl_core.training.trainer.task_loss_list`).

    ``own[i]`` are task i's parameters (only its loss depends on them). Parameters a loss does not
    reach get zero gradients. ``retain_graph`` keeps the graph after the last pass.
    """
    if mode not in ("loop", "batched"):
        raise ValueError(f"`mode` must be loop or batched, got {mode!r}")
    shared = list(shared)
    if mode == "batched" and shared:
        stacked = losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))
        return _batched_jacobian(stacked, shared, own, retain_graph)
    return _loop_jacobian(losses, shared, own, retain_graph)


#: The batched mode folds the tasks' own parameters into its one vmapped backward when what that
#: wastes, (T − 1) × (own parameters) gradient entries that are zero, is at most this fraction of the
#: shared parameters: hard sharing's linear heads (0.3 – 10 % at T = 2 – 8), not MMoE's or PLE's
#: towers (50 – 1500 %, measured up to 1.5× slower folded at T = 8), which get one separate backward.
FOLD_OWN_FRACTION = 0.25


def _batched_jacobian(
    losses: torch.Tensor,
    shared: list[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    retain_graph: bool,
) -> TaskGradients:
    """One vmapped backward over the T one-hot cotangents. Small own parameters (heads) ride along
    in it (task i's own gradients are row i of theirs); large ones get one backward of the summed
    loss, which reaches each task's own parameters through its own loss only."""
    n_tasks = int(losses.shape[0])
    own_params = [p for params in own for p in params]
    owner = [i for i, params in enumerate(own) for _ in params]
    fold = (n_tasks - 1) * sum(p.numel() for p in own_params) <= FOLD_OWN_FRACTION * sum(p.numel() for p in shared)
    separate = bool(own_params) and not fold
    rows = torch.autograd.grad(
        losses,
        shared + own_params if fold else shared,
        grad_outputs=torch.eye(n_tasks, dtype=losses.dtype, device=losses.device),
        is_grads_batched=True,
        retain_graph=retain_graph or separate,
        allow_unused=True,
        materialize_grads=True,
    )
    n_shared = len(shared)
    matrix = torch.cat([r.reshape(n_tasks, -1) for r in rows[:n_shared]], dim=1)
    if separate:
        flat_own = list(torch.autograd.grad(
            losses.sum(), own_params, retain_graph=retain_graph, allow_unused=True, materialize_grads=True
        ))
    else:
        flat_own = [g[i] for g, i in zip(rows[n_shared:], owner, strict=True)]
    own_grads: list[list[torch.Tensor]] = []
    offset = 0
    for params in own:
        own_grads.append(flat_own[offset : offset + len(params)])
        offset += len(params)
    return TaskGradients(shared=matrix, own=own_grads)


def _loop_jacobian(
    losses: torch.Tensor | Sequence[torch.Tensor],
    shared: list[torch.nn.Parameter],
    own: Sequence[Sequence[torch.nn.Parameter]],
    retain_graph: bool,
) -> TaskGradients:
    """One backward per task through the retained graph (shared and own parameters together); each
    task's row is written in place into one T × P matrix (no per-task vector, no final stack)."""
    n_tasks = len(losses)
    n_shared = len(shared)
    # Every row is written below (a skipped task's row explicitly zeroed): no zero fill of T × P.
    matrix = torch.empty(n_tasks, sum(p.numel() for p in shared), device=losses[0].device, dtype=losses[0].dtype)
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
