"""Equal weighting: the plain sum of task losses."""

from __future__ import annotations

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod


@METHODS.register("ew")
class EqualWeighting(BalancingMethod):
    """Equal weights: minimise Σᵢ Lᵢ. The baseline every MTL paper compares against."""

    name = "ew"
    description = "Equal weights: the sum of the task losses."
    paper = "baseline"
    kind = "loss"
    positive_weights = True
    playground_lead = "Equal weights add the gradients"
