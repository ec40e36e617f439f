"""Balancing methods, keyed by name in :data:`METHODS`, and the pure :func:`combine`."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing.base import BalancingMethod, StepContext, check_grads
from mtl_core.registry import Registry

METHODS: Registry[type[BalancingMethod]] = Registry("method")

__all__ = ["METHODS", "BalancingMethod", "StepContext", "check_grads", "combine", "make_method"]


def make_method(name: str, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> BalancingMethod:
    """A fresh instance of method ``name`` for ``n_tasks`` tasks (options validated)."""
    return METHODS.get(name, "method")(n_tasks, generator=generator, **options)


def combine(method: str, grads: torch.Tensor, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
    """Apply gradient method ``method`` to ``grads`` (T × P) and return the direction (P,).

    Raises ``ValueError`` for an unknown method, a loss-weighting method, unknown options, or a
    malformed ``grads``.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(sorted(METHODS.names()))}, got {method!r}")
    cls = METHODS.get(method)
    if cls.kind != "gradient":
        gradient_methods = sorted(n for n, c in METHODS.items() if c.kind == "gradient")
        raise ValueError(
            f"`method` must be a gradient method ({', '.join(gradient_methods)}), got {method!r}, "
            "which weights losses"
        )
    # The shape and dtype are checked here (the task count comes from them); the instance's
    # ``__call__`` checks the entries, once, in the way its method allows.
    grads = check_grads(grads, finite=False)
    instance = cls(int(grads.shape[0]), generator=generator, **options)
    return instance(grads)



# Every module of this package registers its entries on import (one file per entry).
from mtl_core._autoload import import_submodules  # noqa: E402

import_submodules(__name__, __path__)
