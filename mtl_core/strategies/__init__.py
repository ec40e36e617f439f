"""Sharing strategies, keyed by name in :data:`STRATEGIES`."""

from __future__ import annotations

from collections.abc import Sequence

from mtl_core.registry import Registry
from mtl_core.strategies.base import MTLModel, mlp
from mtl_core.suites.base import TaskSpec

STRATEGIES: Registry[type[MTLModel]] = Registry("strategy")

__all__ = ["STRATEGIES", "MTLModel", "mlp", "make_model"]


def make_model(name: str, input_dim: int, tasks: Sequence[TaskSpec], **options: object) -> MTLModel:
    """Build the strategy ``name`` for ``tasks`` (options validated)."""
    return STRATEGIES.get(name, "strategy")(input_dim, tasks, **options)


# Every module of this package registers its entries on import (one file per entry).
from mtl_core._autoload import import_submodules  # noqa: E402

import_submodules(__name__, __path__)
