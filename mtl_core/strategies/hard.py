"""Hard parameter sharing: one shared trunk, one linear head per task.

Caruana, R. (1997). "Multitask Learning". Machine Learning 28, 41–75.
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

__all__ = ["HardSharing"]


@STRATEGIES.register("hard")
class HardSharing(MTLModel):
    """``z = trunk(x)`` (``depth`` × ``hidden`` ReLU MLP), then ``head_t(z)`` for every task t.

    The trunk output ``z`` is the shared representation (:meth:`encode`); its last linear layer is
    GradNorm's W.
    """

    name = "hard"
    description = (
        "Hard parameter sharing (Caruana 1997): one MLP trunk (depth × hidden, ReLU) computes a "
        "representation that every task reads through its own linear head. All trunk parameters "
        "are shared, so the tasks' gradients meet (and may conflict) on every trunk weight. It is "
        "the cheapest MTL model and the one representation-level methods (MGDA-UB, GradDrop) "
        "work on."
    )
    has_shared_representation = True

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        hidden, depth = self.settings["hidden"], self.settings["depth"]
        self.trunk = mlp([input_dim] + [hidden] * depth)
        self.heads = make_heads(hidden, self.tasks)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_dim)
        return self.trunk(x)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(z) for name, head in zip(self.task_names, self.heads, strict=True)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task_index(self.task_names, task)]]
