"""Probes: measurements taken during a run, every ``probe_interval`` steps, stored as ProbeEvents.

A probe runs *before* the parameter update of the step it measures, on the step's own batch, so it
sees the same gradients the balancing method sees. The trainer computes the per-task Jacobian ``G``
of the shared parameters at most once per step: gradient methods need it anyway; for loss-weighting
methods it is computed only on probe steps (so probes that are off cost nothing).

Records (``ProbeEvent.kind``):

* ``cosine`` — T × T cosine similarity of the task gradients on the shared parameters;
* ``norms`` — per-task gradient norms (vector); norm ratios are ``norms[i] / norms[j]``;
* ``conflict`` — ``[fraction of task pairs with negative cosine]``;
* ``weights`` — the balancing method's task weights (or αᵢ) at that step (after the update).
* ``affinity`` / ``affinity_step`` — TAG inter-task affinity, per epoch / per lookahead step
  (:mod:`mtl_core.training.tag`, when ``config.tag``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mtl_core.balancing._qp import gramian
from mtl_core.training.events import ProbeEvent

__all__ = ["ProbeContext", "Probe", "GradientProbe", "build_probes", "cosine_matrix", "PROBE_FACTORIES"]


@dataclass
class ProbeContext:
    """What a probe sees: the step, the batch, its per-task losses (with graph), the shared
    Jacobian ``grads`` (T × P, detached) and the trainer's objects."""

    step: int
    epoch: int
    losses: torch.Tensor
    grads: torch.Tensor | None
    trainer: Any
    batch: tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]
    extra: dict[str, Any] = field(default_factory=dict)


class Probe:
    """Base class. ``needs_grads``: the trainer provides ``ctx.grads`` on due steps."""

    name: str = "probe"
    needs_grads: bool = False

    def __init__(self, interval: int) -> None:
        self.interval = interval

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0

    def measure(self, ctx: ProbeContext) -> list[ProbeEvent]:
        raise NotImplementedError

    def end_epoch(self, epoch: int, step: int) -> list[ProbeEvent]:
        """Called by the trainer after the last step of each epoch (and of a cancelled run): a
        probe that aggregates per epoch (TAG affinity) emits its summary here."""
        return []


def cosine_matrix(grads: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """T × T cosine similarities of the rows of ``grads``; a zero row has cosine 0 with others
    and 1 with itself."""
    norms = grads.norm(dim=1)
    unit = grads / norms.clamp(min=eps).unsqueeze(1)
    cos = unit @ unit.T
    cos.fill_diagonal_(1.0)
    return cos.clamp(-1.0, 1.0)


def gradient_statistics(grads: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine matrix (as :func:`cosine_matrix`) and row norms of ``grads``, both float64, from the
    Gramian: one GEMM in ``grads``' own dtype and only the T × T result in float64 (no float64 copy
    of the T × P matrix; see :func:`mtl_core.balancing._qp.gramian` for its precision)."""
    try:
        matrix = torch.from_numpy(gramian(grads))
    except ValueError:  # a NaN or inf entry: the direct formula, which shows it in the statistics
        wide = grads.detach().double()
        return cosine_matrix(wide, eps), wide.norm(dim=1)
    norms = torch.diagonal(matrix).clamp(min=0.0).sqrt()
    clamped = norms.clamp(min=eps)
    cos = matrix / clamped.unsqueeze(1) / clamped.unsqueeze(0)
    cos.fill_diagonal_(1.0)
    return cos.clamp(-1.0, 1.0), norms


class GradientProbe(Probe):
    """Cosine matrix, norms and the conflict fraction of the shared task gradients."""

    name = "gradients"
    needs_grads = True

    def measure(self, ctx: ProbeContext) -> list[ProbeEvent]:
        if ctx.grads is None or ctx.grads.shape[1] == 0:
            return []
        cos, norms = gradient_statistics(ctx.grads)
        n = cos.shape[0]
        pairs = n * (n - 1) / 2
        upper = torch.triu(cos, diagonal=1)
        conflicting = float((upper < 0).sum().item()) / pairs if pairs else 0.0
        return [
            ProbeEvent(ctx.step, ctx.epoch, "cosine", cos.tolist()),
            ProbeEvent(ctx.step, ctx.epoch, "norms", norms.tolist()),
            ProbeEvent(ctx.step, ctx.epoch, "conflict", [conflicting]),
        ]


#: Extra probes keyed by name; each factory takes the validated config and returns a Probe or None.
PROBE_FACTORIES: dict[str, Callable[[Any], Probe | None]] = {}


def build_probes(config: Any) -> list[Probe]:
    """The probes a run records: gradient statistics every ``probe_interval`` steps (when > 0),
    plus any registered extra probe that applies to ``config`` (e.g. TAG affinity)."""
    probes: list[Probe] = []
    if config.probe_interval > 0:
        probes.append(GradientProbe(config.probe_interval))
    for factory in PROBE_FACTORIES.values():
        probe = factory(config)
        if probe is not None:
            probes.append(probe)
    return probes


# Built-in extra probes register themselves in PROBE_FACTORIES on import.
from mtl_core.training import tag as _tag  # noqa: E402, F401
