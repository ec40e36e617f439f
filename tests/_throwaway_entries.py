"""A balancing method, a sharing strategy and a suite that exist only for tests/test_capabilities.py.

Each one declares what it is through class attributes and nothing else; no test names them. Loaded
as a pytest plugin (``-p _throwaway_entries``) it registers them before the test files are
collected, as a real plugin would, so the property tests parametrised over the registries run on
them too. Imported as a module, it registers nothing: :func:`registered` does, for one block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mtl_core.balancing import METHODS, BalancingMethod, StepContext
from mtl_core.options import Option
from mtl_core.strategies import STRATEGIES, MTLModel
from mtl_core.strategies._heads import check_input, check_tasks, make_heads, task_index
from mtl_core.suites import SUITES, Suite, SuiteData, TaskSpec
from mtl_core.suites._generators import make_generator, make_split, regression_task

__all__ = ["METHOD", "STRATEGY", "SUITE", "registered"]

METHOD = STRATEGY = SUITE = "throwaway"
EVAL_ROWS = 20


class MeanOfGradients(BalancingMethod):
    """The mean of the task gradients, α = 1/T for every task (a test entry, not a real method)."""

    name = METHOD
    description = "The mean of the task gradients, as a test entry."
    paper = "none (tests/_throwaway_entries.py)"
    kind = "gradient"
    weighted_sum = True
    scale_invariant = True
    permutation_invariant = True
    positive_weights = True
    playground_lead = "The throwaway method averaged the gradients"

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        self.weights = torch.full((grads.shape[0],), 1.0 / grads.shape[0], dtype=grads.dtype, device=grads.device)
        return self.weights @ grads


class LinearHeads(MTLModel):
    """One linear layer per task on the raw input: nothing shared (a test entry)."""

    name = STRATEGY
    description = (
        "A test entry: every task reads the raw input through its own linear head, so no parameter is "
        "shared and the tasks never interact."
    )
    has_shared_parameters = False

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__(input_dim, tasks, **options)
        check_tasks(input_dim, tasks)
        self.heads = make_heads(input_dim, self.tasks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, self.input_dim)
        return {name: head(x) for name, head in zip(self.task_names, self.heads, strict=True)}

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.heads[task_index(self.task_names, task)]]


class SumAndDifference(Suite):
    """Two regression tasks on Gaussian inputs, in two planted groups of one (a test entry)."""

    name = SUITE
    description = (
        "A test entry: Gaussian inputs and two regression tasks, the sum and the difference of the "
        "first two inputs; its size option is called n_rows, and each task is its own planted group."
    )
    options = (Option("n_rows", "int", 40, "Training rows (validation and test: 20 each).", low=2, high=10_000),)
    task_kinds = ("regression",)
    size_option = "n_rows"
    plants_groups = True

    def task_specs(self) -> list[TaskSpec]:
        return [regression_task("sum", 1, "x₁ + x₂."), regression_task("difference", 1, "x₁ − x₂.")]

    def groups(self) -> list[list[str]]:
        return [["sum"], ["difference"]]

    def build(self, seed: int) -> SuiteData:
        generator = make_generator(seed)
        splits = []
        for rows in (self.settings["n_rows"], EVAL_ROWS, EVAL_ROWS):
            x = torch.randn(rows, 3, generator=generator)
            y = {"sum": (x[:, 0] + x[:, 1]).unsqueeze(1), "difference": (x[:, 0] - x[:, 1]).unsqueeze(1)}
            splits.append(make_split(x, y))
        return SuiteData(self.task_specs(), *splits, info={"planted_groups": self.groups()})


_ENTRIES = ((METHODS, METHOD, MeanOfGradients), (STRATEGIES, STRATEGY, LinearHeads), (SUITES, SUITE, SumAndDifference))


def register() -> None:
    for registry, name, cls in _ENTRIES:
        registry.register(name)(cls)


def unregister() -> None:
    for registry, name, _ in _ENTRIES:
        if name in registry:
            registry.unregister(name)


@contextmanager
def registered() -> Iterator[None]:
    """The three entries are registered inside the block, and gone after it."""
    register()
    try:
        yield
    finally:
        unregister()


def pytest_configure(config: Any) -> None:
    """As a plugin (``-p _throwaway_entries``): register before any test file is collected."""
    register()
