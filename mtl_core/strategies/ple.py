"""Progressive Layered Extraction (PLE): stacked customised gate controls (CGC).

Tang, H., Liu, J., Zhao, M., Gong, X. (2020). "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations". RecSys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtl_core.options import Option
from mtl_core.strategies import STRATEGIES
from mtl_core.strategies._heads import (
    check_input,
    check_tasks,
    last_linear_parameters,
    make_heads,
    mix_experts,
    task_index,
)
from mtl_core.strategies.base import MTLModel, mlp
from mtl_core.suites.base import TaskSpec

__all__ = ["PLE", "ExtractionLevel"]


class ExtractionLevel(nn.Module):
    """One CGC level: task experts per task, shared experts, a gate per task over (own experts +
    shared experts), and, unless it is the last level, a shared gate over all experts."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        n_tasks: int,
        n_task_experts: int,
        n_shared_experts: int,
        with_shared_gate: bool,
    ) -> None:
        super().__init__()

        def expert() -> nn.Sequential:
            return mlp([in_features] + [hidden] * depth)

        self.task_experts = nn.ModuleList(
            nn.ModuleList(expert() for _ in range(n_task_experts)) for _ in range(n_tasks)
        )
        self.shared_experts = nn.ModuleList(expert() for _ in range(n_shared_experts))
        self.task_gates = nn.ModuleList(
            nn.Linear(in_features, n_task_experts + n_shared_experts, bias=False) for _ in range(n_tasks)
        )
        self.shared_gate = (
            nn.Linear(in_features, n_tasks * n_task_experts + n_shared_experts, bias=False)
            if with_shared_gate
            else None
        )

    def forward(
        self, task_inputs: Sequence[torch.Tensor], shared_input: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None, list[torch.Tensor], torch.Tensor | None]:
        """Returns (task outputs, shared output or None, task gate weights, shared gate weights or None)."""
        shared_out = [expert(shared_input) for expert in self.shared_experts]
        per_task_out = [
            [expert(h) for expert in experts] for experts, h in zip(self.task_experts, task_inputs, strict=True)
        ]
        task_outputs: list[torch.Tensor] = []
        task_gate_weights: list[torch.Tensor] = []
        for gate, own_out, h in zip(self.task_gates, per_task_out, task_inputs, strict=True):
            mixed, weights = mix_experts(gate(h), torch.stack(own_out + shared_out, dim=1))
            task_outputs.append(mixed)
            task_gate_weights.append(weights)
        if self.shared_gate is None:
            return task_outputs, None, task_gate_weights, None
        every_expert = [out for own_out in per_task_out for out in own_out] + shared_out
        shared_mixed, shared_weights = mix_experts(self.shared_gate(shared_input), torch.stack(every_expert, dim=1))
        return task_outputs, shared_mixed, task_gate_weights, shared_weights


@STRATEGIES.register("ple")
class PLE(MTLModel):
    """``n_levels`` CGC levels, then a tower + linear head per task.

    Level k reads, per task, the task's output of level k−1 (its experts and gate input) and the
    shared branch's output of level k−1 (shared experts and shared gate input); level 1 reads x
    everywhere. Gates are ``softmax(W h)`` without bias.

    Ownership (a module is task-owned only if no other task's output depends on it):

    * shared experts and shared gates: shared;
    * task t's experts: owned by t only at the last level — below it they feed the shared gate;
    * task t's gate at level k: owned by t when k is one of the last two levels (its output feeds
      only task t's experts and gate of level k+1, which feed no shared gate), or at every level when
      there are no task experts; otherwise shared;
    * towers and heads: owned.

    GradNorm's W is the last linear layer of every shared expert of the last level. After each
    forward, :attr:`last_gates` holds every task's last-level gate weights (N × (n_task_experts +
    n_shared_experts), own experts first, detached); :attr:`last_level_gates` and
    :attr:`last_shared_gates` hold every level's.
    """

    name = "ple"
    description = (
        "Progressive Layered Extraction (Tang et al. 2020): every level has experts private to each "
        "task and experts shared by all; each task's gate mixes its own experts with the shared ones, "
        "and a shared gate mixes all experts to feed the next level's shared experts. Separating "
        "private from shared experts lets tasks that conflict keep task-specific features while "
        "still exchanging information, which limits the 'seesaw' where one task gains at another's "
        "expense."
    )
    options = (
        Option("hidden", "int", 64, "width of every expert and tower layer", low=1, high=4096),
        Option("depth", "int", 1, "number of hidden layers in each expert", low=1, high=16),
        Option("n_levels", "int", 2, "number of extraction (CGC) levels", low=1, high=8),
        Option("n_shared_experts", "int", 2, "shared experts per level", low=1, high=32),
        Option("n_task_experts", "int", 1, "experts per task per level", low=0, high=32),
        Option("tower_depth", "int", 1, "hidden layers in each task tower (0: head on the mixture)", low=0, high=16),
    )

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        s = self.settings
        hidden, n_levels = s["hidden"], s["n_levels"]
        self.levels = nn.ModuleList(
            ExtractionLevel(
                in_features=input_dim if k == 0 else hidden,
                hidden=hidden,
                depth=s["depth"],
                n_tasks=len(self.tasks),
                n_task_experts=s["n_task_experts"],
                n_shared_experts=s["n_shared_experts"],
                with_shared_gate=k < n_levels - 1,
            )
            for k in range(n_levels)
        )
        self.towers = nn.ModuleList(mlp([hidden] * (s["tower_depth"] + 1)) for _ in self.tasks)
        self.heads = make_heads(hidden, self.tasks)
        self.last_gates: dict[str, torch.Tensor] = {}
        self.last_level_gates: list[dict[str, torch.Tensor]] = []
        self.last_shared_gates: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.input_dim)
        task_inputs: list[torch.Tensor] = [x] * len(self.tasks)
        shared_input: torch.Tensor | None = x
        level_gates: list[dict[str, torch.Tensor]] = []
        shared_gates: list[torch.Tensor] = []
        for level in self.levels:
            assert shared_input is not None  # only the last level drops the shared branch
            task_inputs, shared_input, task_weights, shared_weights = level(task_inputs, shared_input)
            level_gates.append({name: w.detach() for name, w in zip(self.task_names, task_weights, strict=True)})
            if shared_weights is not None:
                shared_gates.append(shared_weights.detach())
        self.last_level_gates, self.last_shared_gates = level_gates, shared_gates
        self.last_gates = level_gates[-1]
        return {
            name: head(tower(h))
            for name, tower, head, h in zip(self.task_names, self.towers, self.heads, task_inputs, strict=True)
        }

    def gate_labels(self, task: str) -> list[str]:
        """Names of the experts a task's gate weighs, in column order of its gate weights."""
        task_index(self.task_names, task)
        own = [f"{task} expert {e + 1}" for e in range(self.settings["n_task_experts"])]
        return own + [f"shared expert {e + 1}" for e in range(self.settings["n_shared_experts"])]

    def shared_gate_labels(self) -> list[str]:
        """Names of the experts the shared gates weigh, in column order of their gate weights."""
        own = [f"{t} expert {e + 1}" for t in self.task_names for e in range(self.settings["n_task_experts"])]
        return own + [f"shared expert {e + 1}" for e in range(self.settings["n_shared_experts"])]

    def task_modules(self, task: str) -> list[nn.Module]:
        i = task_index(self.task_names, task)
        n_levels = len(self.levels)
        no_task_experts = self.settings["n_task_experts"] == 0
        modules: list[nn.Module] = []
        for k, level in enumerate(self.levels):
            if k == n_levels - 1:
                modules.append(level.task_experts[i])
            if k >= n_levels - 2 or no_task_experts:
                modules.append(level.task_gates[i])
        return modules + [self.towers[i], self.heads[i]]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters(self.levels[-1].shared_experts)
