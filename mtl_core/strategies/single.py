"""Independent networks: one MLP tower and one head per task, in one module.

The single-task baseline (every task trained alone, e.g. as in Caruana 1997, "Multitask Learning",
Machine Learning 28) packed into one ``nn.Module`` so that it trains with the same loop as the
sharing strategies. Nothing is shared, so every balancing method reduces to per-task training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtl_core.strategies import STRATEGIES
from mtl_core.strategies._heads import check_input, check_tasks, make_heads, task_index
from mtl_core.strategies.base import MTLModel, mlp
from mtl_core.suites.base import TaskSpec

__all__ = ["SingleTask"]


@STRATEGIES.register("single")
class SingleTask(MTLModel):
    """Per task: ``depth`` × ``hidden`` ReLU tower, then a linear head. No shared parameters."""

    name = "single"
    description = (
        "Single-task baseline: every task gets its own MLP tower (depth × hidden, ReLU) and linear "
        "head, with no parameter shared between tasks. It is the reference that sharing must beat: "
        "a task that does better under a sharing strategy than here benefits from transfer, one that "
        "does worse suffers negative transfer. Balancing methods have nothing to aggregate here."
    )
    has_shared_parameters = False

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        hidden, depth = self.settings["hidden"], self.settings["depth"]
        self.towers = nn.ModuleList(mlp([input_dim] + [hidden] * depth) for _ in self.tasks)
        self.heads = make_heads(hidden, self.tasks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.input_dim)
        return {
            name: head(tower(x))
            for name, tower, head in zip(self.task_names, self.towers, self.heads, strict=True)
        }

    def task_modules(self, task: str) -> list[nn.Module]:
        i = task_index(self.task_names, task)
        return [self.towers[i], self.heads[i]]
