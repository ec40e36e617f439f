"""Cross-stitch networks: one column per task, linearly mixed after every hidden layer.

Misra, I., Shrivastava, A., Gupta, A., Hebert, M. (2016). "Cross-stitch Networks for Multi-task
Learning". CVPR.
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
    task_index,
)
from mtl_core.strategies.base import WIDTH_OPTIONS, MTLModel
from mtl_core.suites.base import TaskSpec

__all__ = ["CrossStitch", "stitch_init"]


def stitch_init(n_tasks: int, alpha_self: float) -> torch.Tensor:
    """The initial T × T mixing matrix: ``alpha_self`` on the diagonal, ``(1 − alpha_self)/(T − 1)``
    elsewhere, so every row sums to 1. With one task the matrix is ``[[1]]`` (the identity)."""
    if n_tasks == 1:
        return torch.ones(1, 1)
    alpha = torch.full((n_tasks, n_tasks), (1.0 - alpha_self) / (n_tasks - 1))
    alpha.fill_diagonal_(alpha_self)
    return alpha


@STRATEGIES.register("cross_stitch")
class CrossStitch(MTLModel):
    """Column t computes ``h_t^l = ReLU(Linear_t^l(x̃_t^{l−1}))``; the cross-stitch unit of layer l
    then mixes the columns, ``x̃_i^l = Σ_j α^l_ij h_j^l``, with one learnable T × T matrix α^l per
    hidden layer (also after the last one, so every head reads a mixture). Head t reads ``x̃_t``.

    Because of the mixing, every column and every stitch matrix feeds every task: they are shared;
    only the heads are task-owned. GradNorm's W is the last linear layer of every column.
    """

    name = "cross_stitch"
    description = (
        "Cross-stitch networks (Misra et al. 2016): one MLP column per task; after every hidden layer "
        "a learnable T×T cross-stitch unit replaces each column's activation with a linear "
        "combination of all columns' activations. The units start near separate networks "
        "(α_same = 0.9 on the diagonal, the rest spread evenly) and learn how much to share; "
        "reading the learned α shows which tasks borrow from which."
    )
    options = WIDTH_OPTIONS + (
        Option(
            "alpha_self",
            "float",
            0.9,
            "initial weight a column gives to itself in each cross-stitch unit",
            low=0.0,
            high=1.0,
        ),
    )

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        hidden, depth = self.settings["hidden"], self.settings["depth"]
        n_tasks = len(self.tasks)
        sizes = [input_dim] + [hidden] * depth
        # columns[t][l]: layer l of task t's column.
        self.columns = nn.ModuleList(
            nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
            for _ in self.tasks
        )
        self.stitches = nn.ParameterList(
            nn.Parameter(stitch_init(n_tasks, self.settings["alpha_self"])) for _ in range(depth)
        )
        self.heads = make_heads(hidden, self.tasks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.input_dim)
        inputs = [x] * len(self.tasks)
        for layer, alpha in enumerate(self.stitches):
            activations = torch.stack(
                [torch.relu(column[layer](h)) for column, h in zip(self.columns, inputs, strict=True)]
            )  # T × N × hidden
            inputs = list(torch.einsum("ij,jnh->inh", alpha, activations).unbind(0))
        return {
            name: head(h) for name, head, h in zip(self.task_names, self.heads, inputs, strict=True)
        }

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task_index(self.task_names, task)]]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters(self.columns)
