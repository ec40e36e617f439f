"""The sharing-strategy contract.

A strategy is a ``torch.nn.Module`` built from the suite's input size and task specs. It tells the
trainer which parameters are *shared* (more than one task's loss depends on them) and which belong to
one task only, so that gradient methods aggregate over the shared ones and each task-owned
parameter gets its own task's gradient.

Strategies that have a single shared representation ``z = encode(x)`` read by every task head
(``hard``) expose it through :meth:`encode` / :meth:`decode`; representation-level methods
(MGDA-UB, GradDrop) and the fast Jacobian path use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtl_core.options import Option, resolve_options
from mtl_core.suites.base import TaskSpec

__all__ = ["MTLModel", "mlp", "WIDTH_OPTIONS"]

WIDTH_OPTIONS: tuple[Option, ...] = (
    Option("hidden", "int", 64, "width of each hidden layer", low=1, high=4096),
    Option("depth", "int", 2, "number of hidden layers in the trunk / each tower", low=1, high=16),
)


def mlp(sizes: Sequence[int], final_activation: bool = True) -> nn.Sequential:
    """A ReLU MLP through ``sizes`` (e.g. [in, h, h]); ReLU after the last layer if asked."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MTLModel(nn.Module):
    """Base class of sharing strategies.

    Subclasses set ``name``, ``description`` and ``options``, build their layers in ``__init__``
    (after calling ``super().__init__``) and implement :meth:`forward` and :meth:`task_modules`.
    The class attributes below say what a strategy *is*; the configuration checks, the CLI help and
    the contract tests read them, so a new strategy is one new file.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = WIDTH_OPTIONS
    #: True when the model computes ``z = encode(x)`` once and every head reads only ``z``
    #: (needed by representation-level methods and TAG).
    has_shared_representation: ClassVar[bool] = False
    #: False when every parameter belongs to one task (tasks interact through the losses or a
    #: penalty only): :meth:`shared_parameters` and :meth:`last_shared_parameters` are then empty
    #: and gradient methods have nothing to aggregate.
    has_shared_parameters: ClassVar[bool] = True
    #: True when :meth:`regularization` adds a penalty to the objective (soft sharing's L2 tie).
    has_regularization: ClassVar[bool] = False

    def __init__(self, input_dim: int, tasks: Sequence[TaskSpec], **options: Any) -> None:
        super().__init__()
        self.settings = resolve_options(self.options, options, "strategy_options")
        self.input_dim = input_dim
        self.tasks = list(tasks)
        self.task_names = [t.name for t in tasks]

    # --- the contract --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs per task: logits (N × classes) or predictions (N × k)."""
        raise NotImplementedError

    def task_modules(self, task: str) -> list[nn.Module]:
        """Modules whose parameters only ``task``'s output depends on (heads, towers, own gates)."""
        raise NotImplementedError

    def regularization(self) -> torch.Tensor | None:
        """An extra loss term added to the objective (e.g. soft sharing's L2 tie), or ``None``."""
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The shared representation (only when ``has_shared_representation``)."""
        raise NotImplementedError(f"strategy {self.name!r} has no single shared representation")

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task outputs from the shared representation (only when ``has_shared_representation``)."""
        raise NotImplementedError(f"strategy {self.name!r} has no single shared representation")

    # --- derived -------------------------------------------------------------------------------
    def task_parameters(self, task: str) -> list[nn.Parameter]:
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for module in self.task_modules(task):
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every parameter not owned by exactly one task, in registration order."""
        owned = {id(p) for t in self.task_names for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in owned]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the last shared layer (GradNorm's W). Default: the last shared tensor(s)
        belonging to the last module that holds shared parameters."""
        shared_ids = {id(p) for p in self.shared_parameters()}
        last: list[nn.Parameter] = []
        for module in self.modules():
            direct = [p for p in module.parameters(recurse=False) if id(p) in shared_ids]
            if direct:
                last = direct
        return last

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "description": cls.description,
            "options": [o.to_dict() for o in cls.options],
            "has_shared_representation": cls.has_shared_representation,
            "has_shared_parameters": cls.has_shared_parameters,
        }
