"""Multi-gate Mixture-of-Experts.

Ma, J., Zhao, Z., Yi, X., Chen, J., Hong, L., Chi, E. H. (2018). "Modeling Task Relationships in
Multi-task Learning with Multi-gate Mixture-of-Experts". KDD.
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

__all__ = ["MMoE"]


@STRATEGIES.register("mmoe")
class MMoE(MTLModel):
    """``n_experts`` shared MLP experts f_e; for task t a gate ``g_t(x) = softmax(W_t x)`` (no bias,
    as in the paper) mixes them, ``h_t = Σ_e g_t(x)_e f_e(x)``, and a tower + linear head give the
    output. Experts are shared; gate, tower and head of task t are owned by t.

    After each forward, :attr:`last_gates` holds every task's gate weights (N × n_experts, detached);
    :meth:`gate_weights` computes them for given inputs without touching the model state.
    """

    name = "mmoe"
    description = (
        "Multi-gate Mixture-of-Experts (Ma et al. 2018): a pool of shared MLP experts, and for every "
        "task a softmax gate, computed from the input, that decides how much each expert contributes "
        "to that task's tower. Tasks that disagree can route to different experts instead of fighting "
        "over one trunk; the gate weights show which tasks end up sharing experts."
    )
    options = (
        Option("hidden", "int", 64, "width of every expert and tower layer", low=1, high=4096),
        Option("depth", "int", 1, "number of hidden layers in each expert", low=1, high=16),
        Option("n_experts", "int", 4, "number of shared experts", low=1, high=64),
        Option("tower_depth", "int", 1, "hidden layers in each task tower (0: head on the mixture)", low=0, high=16),
    )

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        hidden, depth = self.settings["hidden"], self.settings["depth"]
        n_experts, tower_depth = self.settings["n_experts"], self.settings["tower_depth"]
        self.experts = nn.ModuleList(mlp([input_dim] + [hidden] * depth) for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(input_dim, n_experts, bias=False) for _ in self.tasks)
        self.towers = nn.ModuleList(mlp([hidden] * (tower_depth + 1)) for _ in self.tasks)
        self.heads = make_heads(hidden, self.tasks)
        self.last_gates: dict[str, torch.Tensor] = {}

    def _mixtures(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        check_input(x, self.input_dim)
        expert_outputs = torch.stack([expert(x) for expert in self.experts], dim=1)  # N × E × H
        mixtures: dict[str, torch.Tensor] = {}
        gates: dict[str, torch.Tensor] = {}
        for name, gate in zip(self.task_names, self.gates, strict=True):
            mixtures[name], gates[name] = mix_experts(gate(x), expert_outputs)
        return mixtures, gates

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mixtures, gates = self._mixtures(x)
        self.last_gates = {name: g.detach() for name, g in gates.items()}
        return {
            name: head(tower(mixtures[name]))
            for name, tower, head in zip(self.task_names, self.towers, self.heads, strict=True)
        }

    @torch.no_grad()
    def gate_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's gate weights over the experts (N × n_experts, rows sum to 1)."""
        return self._mixtures(x)[1]

    def gate_labels(self, task: str) -> list[str]:
        """Names of the experts a task's gate weighs, in column order of its gate weights."""
        task_index(self.task_names, task)
        return [f"expert {e + 1}" for e in range(len(self.experts))]

    def task_modules(self, task: str) -> list[nn.Module]:
        i = task_index(self.task_names, task)
        return [self.gates[i], self.towers[i], self.heads[i]]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters(self.experts)
