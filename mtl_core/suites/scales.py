"""``scales``: the toy of GradNorm (Chen et al., ICML 2018, §4) — regression tasks whose targets
differ in scale by orders of magnitude.

``fᵢ(x) = σᵢ tanh((B + εᵢ) x)`` with ``B`` (out_dim × dim) entries ~ N(0, 10) (variance 10, std
√10) shared by all tasks and ``εᵢ`` entries ~ N(0, 3.5) (variance 3.5) per task, both drawn once per
dataset. The paper used x ∈ ℝ²⁵⁰ and y ∈ ℝ¹⁰⁰ without stating the input distribution; here
``x ~ N(0, I/dim)`` so that the pre-activations keep the same spread whatever ``dim`` is.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mtl_core.errors import ConfigError
from mtl_core.options import Option
from mtl_core.suites import SUITES
from mtl_core.suites._generators import EVAL_ROWS, make_generator, make_split, regression_task
from mtl_core.suites.base import Suite, SuiteData, TaskSpec

__all__ = ["ScalesSuite"]

_B_VARIANCE = 10.0
_EPSILON_VARIANCE = 3.5


@SUITES.register("scales")
class ScalesSuite(Suite):
    """GradNorm's toy: tasks ``σᵢ tanh((B + εᵢ)x)`` of very different scales (Chen et al. 2018)."""

    name = "scales"
    description = (
        "The synthetic toy of GradNorm (Chen et al., ICML 2018): T regression tasks "
        "fᵢ(x) = σᵢ·tanh((B + εᵢ)x) that share a random matrix B (entries ~ N(0, 10)) up to a "
        "task-specific perturbation εᵢ (entries ~ N(0, 3.5)), with scales σᵢ that differ by orders of "
        "magnitude (1 and 100 by default). The targets are deliberately not standardised: with equal "
        "loss weights the large-σ task dominates the gradient and the small one barely trains. Use it "
        "to see what loss- and gradient-balancing methods do about magnitude conflicts."
    )
    task_kinds = ("regression",)
    size_option = "n_samples"
    options = (
        Option("sigmas", "floats", (1.0, 100.0), "Scale σᵢ of each task (at least two; one task per value).", low=0.0),
        Option("dim", "int", 50, "Input dimension (the paper used 250).", low=1, high=4096),
        Option("out_dim", "int", 10, "Output dimension of every task (the paper used 100).", low=1, high=1024),
        Option("n_samples", "int", 1000, "Training rows (validation and test: 500 each).", low=2, high=1_000_000),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        sigmas = self.settings["sigmas"]
        if len(sigmas) < 2:
            raise ConfigError("suite_options.sigmas", "a list of at least two positive numbers", list(sigmas))
        if any(sigma <= 0 for sigma in sigmas):
            raise ConfigError("suite_options.sigmas", "a list of positive numbers", list(sigmas))

    def task_specs(self) -> list[TaskSpec]:
        out_dim = self.settings["out_dim"]
        return [
            regression_task(
                f"s{i + 1}",
                out_dim,
                f"σ = {sigma:g}: {sigma:g}·tanh((B + ε{i + 1})x), {out_dim} outputs, not standardised.",
            )
            for i, sigma in enumerate(self.settings["sigmas"])
        ]

    def build(self, seed: int) -> SuiteData:
        s = self.settings
        generator = make_generator(seed)
        shape = (s["out_dim"], s["dim"])
        shared = math.sqrt(_B_VARIANCE) * torch.randn(shape, generator=generator, dtype=torch.float64)
        perturbations = [
            math.sqrt(_EPSILON_VARIANCE) * torch.randn(shape, generator=generator, dtype=torch.float64)
            for _ in s["sigmas"]
        ]
        names = [spec.name for spec in self.task_specs()]

        def sample(n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            x = torch.randn(n, s["dim"], generator=generator, dtype=torch.float64) / math.sqrt(s["dim"])
            targets = {
                name: sigma * torch.tanh(x @ (shared + eps).T)
                for name, sigma, eps in zip(names, s["sigmas"], perturbations)
            }
            return x, targets

        # Evaluation rows first, so that they do not change with n_samples.
        test, val, train = sample(EVAL_ROWS), sample(EVAL_ROWS), sample(s["n_samples"])
        return SuiteData(
            tasks=self.task_specs(),
            train=make_split(*train),
            val=make_split(*val),
            test=make_split(*test),
            info={"sigmas": list(s["sigmas"]), "b_std": math.sqrt(_B_VARIANCE), "epsilon_std": math.sqrt(_EPSILON_VARIANCE)},
        )
