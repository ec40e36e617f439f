"""Soft parameter sharing: per-task towers tied by an L2 penalty between corresponding layers.

Duong, L., Cohn, T., Bird, S., Cook, P. (2015). "Low Resource Dependency Parsing: Cross-lingual
Parameter Sharing in a Neural Network Parser". ACL. — Yang, Y., Hospedales, T. (2017). "Trace Norm
Regularised Deep Multi-Task Learning". ICLR workshop.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import torch

from mtl_core.options import Option
from mtl_core.strategies import STRATEGIES
from mtl_core.strategies.base import WIDTH_OPTIONS
from mtl_core.strategies.single import SingleTask
from mtl_core.suites.base import TaskSpec

__all__ = ["SoftSharing"]


@STRATEGIES.register("soft")
class SoftSharing(SingleTask):
    """The towers of :class:`SingleTask` plus the tie

    ``regularization() = lam · Σ_layers Σ_{i<j} ‖θ_i − θ_j‖²``

    where θ_i is the weight matrix *and* bias of task i's tower at that layer and the inner sum runs
    over unordered task pairs (each pair counted once). Heads are not tied (their output sizes
    differ). Every tower belongs to its task, so there are no shared parameters: the coupling
    between tasks comes only from the penalty, which the trainer adds to the objective.
    """

    name = "soft"
    description = (
        "Soft parameter sharing (Duong et al. 2015; Yang & Hospedales 2017): every task has its own "
        "MLP tower and head, as in the single-task baseline, but corresponding tower layers are pulled "
        "together by the penalty λ·Σ over layers Σ over task pairs ‖W_i − W_j‖² (weights and biases). "
        "λ = 0 gives independent networks; a large λ approaches hard sharing. No parameter is shared, "
        "so balancing methods act on the losses only."
    )
    has_shared_parameters = False
    has_regularization = True
    options = WIDTH_OPTIONS + (
        Option("lam", "float", 1e-3, "strength λ of the L2 tie between task towers", low=0.0),
    )

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        self.lam: float = self.settings["lam"]

    def tie_distance(self) -> torch.Tensor:
        """``Σ_layers Σ_{i<j} ‖θ_i − θ_j‖²`` over the towers (zero for one task)."""
        first = next(self.towers[0].parameters())
        total = torch.zeros((), device=first.device, dtype=first.dtype)
        per_task = [list(tower.parameters()) for tower in self.towers]
        for params_i, params_j in combinations(per_task, 2):
            for p_i, p_j in zip(params_i, params_j, strict=True):
                total = total + (p_i - p_j).pow(2).sum()
        return total

    def regularization(self) -> torch.Tensor:
        return self.lam * self.tie_distance()
