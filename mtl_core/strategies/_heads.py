"""Private building blocks shared by the strategies: task checks, heads, expert mixing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from mtl_core.errors import ConfigError
from mtl_core.suites.base import TaskSpec

__all__ = [
    "check_tasks",
    "check_input",
    "task_index",
    "make_heads",
    "last_linear_parameters",
    "mix_experts",
]


def check_tasks(input_dim: int, tasks: Sequence[TaskSpec]) -> None:
    """Reject what no strategy can be built for: no tasks, repeated names, empty outputs."""
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise ValueError(f"`input_dim` must be a positive integer, got {input_dim!r}")
    names = [t.name for t in tasks]
    if not names:
        raise ConfigError("tasks", "at least one task", names)
    if len(set(names)) != len(names):
        raise ConfigError("tasks", "distinct task names", names)
    for spec in tasks:
        if isinstance(spec.n_outputs, bool) or not isinstance(spec.n_outputs, int) or spec.n_outputs < 1:
            raise ValueError(f"`n_outputs` of task {spec.name!r} must be a positive integer, got {spec.n_outputs!r}")


def check_input(x: torch.Tensor, input_dim: int) -> None:
    """``x`` must be N × input_dim."""
    if x.dim() != 2 or x.shape[1] != input_dim:
        raise ValueError(f"`x` must be a 2-D tensor (N × {input_dim}), got shape {tuple(x.shape)}")


def task_index(task_names: Sequence[str], task: str) -> int:
    """Position of ``task`` in ``task_names`` (modules are kept in ``ModuleList``s in task order,
    since task names may contain characters that ``ModuleDict`` keys cannot)."""
    try:
        return list(task_names).index(task)
    except ValueError:
        raise ValueError(f"`task` must be one of {', '.join(task_names)}, got {task!r}") from None


def make_heads(in_features: int, tasks: Sequence[TaskSpec]) -> nn.ModuleList:
    """One linear head per task, from ``in_features`` to the task's ``n_outputs``."""
    return nn.ModuleList(nn.Linear(in_features, t.n_outputs) for t in tasks)


def last_linear_parameters(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    """The parameters of the last ``nn.Linear`` inside each of ``modules`` (GradNorm's W when the
    last shared layer is spread over several parallel blocks, e.g. experts or columns)."""
    out: list[nn.Parameter] = []
    for module in modules:
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if linears:
            out.extend(linears[-1].parameters())
    return out


def mix_experts(gate_logits: torch.Tensor, expert_outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax gate (N × E) over stacked expert outputs (N × E × H): returns (mixture N × H, gate)."""
    gate = torch.softmax(gate_logits, dim=-1)
    return torch.einsum("ne,neh->nh", gate, expert_outputs), gate
