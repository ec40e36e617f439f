"""``mmoe``: the two correlated regression tasks of MMoE (Ma et al., KDD 2018, §3.2).

``w₁ = c u₁``, ``w₂ = c(p u₁ + √(1−p²) u₂)`` with orthonormal ``u₁, u₂`` (c = 1), and
``yₖ = wₖᵀx + Σ_{i=1..10} sin(αᵢ wₖᵀx + βᵢ) + ε``. The generator is shared with ``planted``.
"""

from __future__ import annotations

import torch

from mtl_core.options import Option
from mtl_core.suites import SUITES
from mtl_core.suites._generators import build_correlated_regression, label_correlation, regression_task
from mtl_core.suites.base import Suite, SuiteData, TaskSpec

__all__ = ["MMoESuite", "label_correlation"]


@SUITES.register("mmoe")
class MMoESuite(Suite):
    """Two regression tasks whose weight vectors have cosine ``p`` (Ma et al. 2018)."""

    name = "mmoe"
    description = (
        "The synthetic benchmark of MMoE (Ma et al., KDD 2018): two regression tasks "
        "y = wᵀx + Σ sin(αᵢwᵀx + βᵢ) + ε whose weight vectors have cosine p. Sweeping p from 0 to 1 "
        "moves from unrelated to (nearly) identical tasks; the measured label correlation is shown "
        "next to p (the sines make it somewhat lower). The paper's finding: a shared-bottom model "
        "degrades as p falls, a mixture of experts with per-task gates degrades less."
    )
    task_kinds = ("regression",)
    size_option = "n_samples"
    options = (
        Option("p", "float", 0.5, "Cosine between the two task weight vectors.", low=0.0, high=1.0),
        Option("n_samples", "int", 1000, "Training rows (validation and test: 500 each).", low=2, high=1_000_000),
        Option("noise", "float", 0.1, "Standard deviation of the label noise ε.", low=0.0),
        Option("dim", "int", 32, "Input dimension.", low=2, high=4096),
    )

    def correlation(self) -> torch.Tensor:
        """The 2 × 2 target correlation of the weight vectors (float64)."""
        p = self.settings["p"]
        return torch.tensor([[1.0, p], [p, 1.0]], dtype=torch.float64)

    def task_specs(self) -> list[TaskSpec]:
        p = self.settings["p"]
        return [
            regression_task("y1", 1, f"MMoE regression target 1: y = w₁ᵀx + Σ sin(αᵢw₁ᵀx + βᵢ) + ε (cos(w₁, w₂) = {p})."),
            regression_task("y2", 1, f"MMoE regression target 2: y = w₂ᵀx + Σ sin(αᵢw₂ᵀx + βᵢ) + ε (cos(w₁, w₂) = {p})."),
        ]

    def build(self, seed: int) -> SuiteData:
        s = self.settings
        return build_correlated_regression(
            self.task_specs(), self.correlation(), s["n_samples"], s["dim"], s["noise"], seed
        )
