"""Static weighting: the user's fixed task weights."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod
from mtl_core.errors import ConfigError
from mtl_core.options import Option

__all__ = ["StaticWeighting"]


@METHODS.register("static")
class StaticWeighting(BalancingMethod):
    """Fixed weights: minimise Σᵢ wᵢ Lᵢ with user-chosen wᵢ ≥ 0 (not all zero).

    ``weights = None`` gives wᵢ = 1 for every task, i.e. equal weighting. The weights are used as
    given (no renormalisation), so ``[2, 1]`` doubles the first task's loss. The classic hand-tuned
    baseline of the MTL literature (e.g. the grid searches in Kendall et al., CVPR 2018).
    """

    name = "static"
    description = "Fixed user-chosen task weights: Σ wᵢ Lᵢ."
    paper = "hand-tuned baseline"
    kind = "loss"
    positive_weights = True
    options = (
        Option(
            "weights",
            "floats_or_none",
            None,
            "one non-negative weight per task (null = all 1)",
            low=0.0,
        ),
    )

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        given = self.settings["weights"]
        if given is None:
            self._static = torch.ones(n_tasks)
        else:
            if len(given) != n_tasks:
                raise ConfigError(
                    "method_options.weights", f"a list of {n_tasks} numbers (one per task)", list(given)
                )
            if not any(w > 0 for w in given):
                raise ConfigError("method_options.weights", "non-negative numbers, not all zero", list(given))
            self._static = torch.tensor(given, dtype=torch.float64)

    def current_weights(self) -> torch.Tensor:
        return self._static.clone()
