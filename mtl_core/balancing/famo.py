"""FAMO: fast adaptive multitask optimisation (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["FAMO"]

#: Added to every loss before the logarithm (FAMO's Lᵢ − Lᵢ* + ε with Lᵢ* = 0).
_EPS = 1e-8


@METHODS.register("famo")
class FAMO(BalancingMethod):
    """Balance the tasks' log-loss decrease rates with O(1) extra cost (no per-task gradients).

    Liu, Liu, Jin, Stone & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

    Logits ξ (zeros at the start) give z = softmax(ξ). With Dᵢ = Lᵢ − Lᵢ* + ε (Lᵢ* = 0) the
    objective back-propagated is::

        Σᵢ zᵢ log Dᵢ / c,    c = Σᵢ zᵢ / Dᵢ  (held constant)

    so the model's gradient is Σᵢ (zᵢ / (c Dᵢ)) ∇Lᵢ, a convex combination of the raw task
    gradients. After the optimiser step, :meth:`after_step` re-evaluates the losses on the same
    batch (``ctx.recompute_losses``, a no-grad forward) and forms δᵢ = log Dᵢ(t) − log Dᵢ(t+1),
    the decrease of each log-loss. ξ then takes one Adam step (``lr``, ``weight_decay``) along the
    gradient (∂z/∂ξ)ᵀ δ — a *descent* step, so a task whose loss decreased more loses weight and a
    task whose loss decreased less (or grew) gains weight, as in the paper's update
    ξ ← ξ − β((∂z/∂ξ)ᵀδ + γξ).

    Losses are assumed ≥ 0 (Lᵢ* = 0; negative values are clamped to 0).

    Recorded weights: ``self.weights`` = z, on the simplex (not scaled by T); the effective
    per-loss weights zᵢ/(c Dᵢ) of the last step are in ``self.loss_weights``.
    """

    name = "famo"
    description = "Adapts softmax weights on log-losses so that all tasks' losses fall at the same rate."
    paper = "Liu et al., NeurIPS 2023"
    kind = "loss"
    positive_weights = True
    options = (
        Option("lr", "float", 0.025, "learning rate of the logits' Adam optimiser", low=0.0, high=10.0),
        Option("weight_decay", "float", 1e-3, "weight decay γ on the logits", low=0.0, high=1.0),
    )

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self.logits: torch.Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._previous_losses: torch.Tensor | None = None
        self.loss_weights: torch.Tensor | None = None

    def current_weights(self) -> torch.Tensor:
        if self.logits is None:
            return torch.full((self.n_tasks,), 1.0 / self.n_tasks)
        return torch.softmax(self.logits.detach(), dim=0)

    def loss(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.logits is None:
            self.logits = torch.zeros(self.n_tasks, dtype=losses.dtype, device=losses.device, requires_grad=True)
            self._optimizer = torch.optim.Adam(
                [self.logits], lr=self.settings["lr"], weight_decay=self.settings["weight_decay"]
            )
        weights = torch.softmax(self.logits.detach(), dim=0).to(losses)
        self.weights = weights.clone()
        shifted = losses.clamp_min(0.0) + _EPS
        normaliser = (weights / shifted.detach()).sum()
        self.loss_weights = weights / (normaliser * shifted.detach())
        self._previous_losses = losses.detach().clone()
        return (weights * shifted.log()).sum() / normaliser

    def after_step(self, ctx: StepContext) -> None:
        if self._previous_losses is None or self.logits is None or self._optimizer is None:
            return  # no loss() yet: nothing to compare against
        if ctx.recompute_losses is None:
            raise ValueError("FAMO needs `ctx.recompute_losses` (a second forward after the step), got None")
        with torch.no_grad():
            new_losses = torch.as_tensor(ctx.recompute_losses()).detach().to(self._previous_losses)
        if new_losses.shape != self._previous_losses.shape:
            raise ValueError(
                f"`recompute_losses()` must return {self.n_tasks} losses, got shape {tuple(new_losses.shape)}"
            )
        decrease = _log_shifted(self._previous_losses) - _log_shifted(new_losses)
        decrease = torch.nan_to_num(decrease, nan=0.0, posinf=0.0, neginf=0.0).to(self.logits)
        with torch.enable_grad():
            logits = self.logits.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(torch.softmax(logits, dim=0), logits, grad_outputs=decrease)
        self.logits.grad = gradient
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        self._previous_losses = None


def _log_shifted(losses: torch.Tensor) -> torch.Tensor:
    return (losses.clamp_min(0.0) + _EPS).log()
