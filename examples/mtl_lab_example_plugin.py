"""An example MTL Lab plugin: a suite, a sharing strategy and a balancing method of its own.

Load it with ``MTL_LAB_PLUGINS=examples/mtl_lab_example_plugin.py`` (a path), or with
``MTL_LAB_PLUGINS=mtl_lab_example_plugin`` when its folder is on ``PYTHONPATH``, or install it with an
entry point in the ``mtl_lab.plugins`` group. Then::

    python -m mtl_core train --suite example_waves --strategy example_tiny --method example_inverse_loss

and the three entries appear in the dashboard's Train page, marked as coming from this plugin.
A plugin uses only the public registries and base classes, exactly as a built-in entry does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtl_core.balancing import METHODS, BalancingMethod, StepContext
from mtl_core.options import Option
from mtl_core.strategies import STRATEGIES, MTLModel
from mtl_core.suites import SUITES, Split, Suite, SuiteData, TaskSpec

__version__ = "0.1.0"

_EVAL_ROWS = 200


@SUITES.register("example_waves")
class WavesSuite(Suite):
    """Regression tasks ``y_k = sin(frequency_k · wᵀx)`` that read the same direction ``w`` of the input."""

    name = "example_waves"
    description = (
        "Example plugin suite: T regression tasks y_k = sin(k·wᵀx) + noise that share one input "
        "direction w, at increasing frequencies k = 1 … T."
    )
    task_kinds = ("regression",)
    size_option = "n_samples"
    options = (
        Option("n_tasks", "int", 2, "Number of tasks (frequencies 1 … n_tasks).", low=2, high=8),
        Option("dim", "int", 4, "Input dimension.", low=1, high=256),
        Option("n_samples", "int", 300, "Training rows (validation and test: 200 each).", low=10, high=100_000),
        Option("noise", "float", 0.1, "Standard deviation of the label noise.", low=0.0, high=10.0),
    )

    def task_specs(self) -> list[TaskSpec]:
        return [TaskSpec(f"wave{k}", "regression", 1, "mse", False, f"sin({k}·wᵀx) + noise")
                for k in range(1, self.settings["n_tasks"] + 1)]

    def build(self, seed: int) -> SuiteData:
        s = self.settings
        generator = torch.Generator().manual_seed(int(seed))
        direction = torch.randn(s["dim"], generator=generator)
        direction /= direction.norm()

        def split(n: int) -> Split:
            x = torch.randn(n, s["dim"], generator=generator)
            projection = x @ direction
            y = {spec.name: (torch.sin(k * projection) + s["noise"] * torch.randn(n, generator=generator))[:, None]
                 for k, spec in enumerate(self.task_specs(), start=1)}
            return Split(x=x, y=y, masks={name: torch.ones(n, dtype=torch.bool) for name in y})

        test, val, train = split(_EVAL_ROWS), split(_EVAL_ROWS), split(s["n_samples"])
        return SuiteData(tasks=self.task_specs(), train=train, val=val, test=test, info={"plugin": "example"})


@STRATEGIES.register("example_tiny")
class TinySharing(MTLModel):
    """One shared tanh layer, then a linear head per task."""

    name = "example_tiny"
    description = "Example plugin strategy: one shared tanh layer of `hidden` units, one linear head per task."
    options = (Option("hidden", "int", 16, "width of the shared layer", low=1, high=1024),)
    has_shared_representation = True

    def __init__(self, input_dim: int, tasks: list[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        hidden = self.settings["hidden"]
        self.trunk = nn.Sequential(nn.Linear(input_dim, hidden), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(hidden, spec.n_outputs) for spec in self.tasks)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(z) for name, head in zip(self.task_names, self.heads, strict=True)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[self.task_names.index(task)]]


@METHODS.register("example_inverse_loss")
class InverseLossWeighting(BalancingMethod):
    """Weights proportional to 1 / Lᵢ (detached), scaled to sum to T: every task's weighted loss is
    equal, a crude form of loss balancing."""

    name = "example_inverse_loss"
    description = "Example plugin method: weights ∝ 1 / (task loss), summing to the number of tasks."
    paper = "example plugin"
    kind = "loss"
    positive_weights = True

    def loss(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        inverse = 1.0 / losses.detach().clamp_min(1e-8)
        weights = inverse * (self.n_tasks / inverse.sum())
        if not torch.isfinite(weights).all():
            weights = torch.ones_like(losses)
        self.weights = weights.clone()
        return (weights * losses).sum()

