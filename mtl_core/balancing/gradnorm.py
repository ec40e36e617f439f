"""GradNorm (Chen et al., ICML 2018)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["GradNorm"]

_EPS = 1e-8
#: Floor on a weight (the mean weight is 1), so that exp(log w) never underflows to 0.
_MIN_LOG_WEIGHT = math.log(1e-6)


@METHODS.register("gradnorm")
class GradNorm(BalancingMethod):
    """Learn weights that equalise the tasks' gradient norms, scaled by their training rates.

    Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss
    Balancing in Deep Multitask Networks", ICML 2018.

    Weights wᵢ start at 1 and always sum to T. In every :meth:`loss` call:

    * nᵢ = ‖∇_W Lᵢ‖ on the last shared layer W (``ctx.last_shared_parameters``; all shared
      parameters if the strategy names no last layer), one small backward per task through W only;
    * Gᵢ = wᵢ nᵢ, L̃ᵢ = Lᵢ(t)/Lᵢ(0) with Lᵢ(0) the losses of the first call, rᵢ = L̃ᵢ/mean(L̃);
    * the target Ḡ·rᵢ^α (Ḡ = mean G) is held constant and Σ|Gᵢ − Ḡrᵢ^α| is minimised over w. Its
      gradient is taken analytically as sign(Gᵢ − Ḡrᵢ^α)·nᵢ, i.e. — as in the paper — the target
      is treated as a constant although Ḡ depends on w;
    * w takes one step of its own Adam optimiser (``lr``) and is renormalised to sum T.

    Convention: the optimiser acts on log wᵢ (gradient sign(Gᵢ − Ḡrᵢ^α)·nᵢ·wᵢ by the chain rule),
    i.e. the updates are multiplicative. The weights stay positive without clamping (a floor of
    1e-6 only guards against underflow), and a step changes a weight by about ``lr`` *relative*
    to its size, so weights that must differ by orders of magnitude (losses of very different
    scales) get there without overshooting below zero, which additive steps of fixed size do.

    The returned objective is Σ wᵢLᵢ with the weights *before* this update (the ones recorded in
    ``self.weights``); the updated weights are used from the next step on.
    """

    name = "gradnorm"
    description = "Learns weights that equalise gradient norms on the last shared layer, scaled by training rates."
    paper = "Chen et al., ICML 2018"
    kind = "loss"
    positive_weights = True
    options = (
        Option("alpha", "float", 1.5, "restoring-force strength α (0 → equal gradient norms)", low=0.0, high=10.0),
        Option("lr", "float", 0.025, "learning rate of the Adam optimiser on the log-weights (≈ relative change per step)", low=0.0, high=10.0),
    )

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__(n_tasks, generator=generator, **options)
        self._log_weights: torch.Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._initial_losses: torch.Tensor | None = None
        #: Last gradient norms nᵢ (unweighted), kept for the probes and the tests.
        self.grad_norms: torch.Tensor | None = None

    def current_weights(self) -> torch.Tensor:
        if self._log_weights is None:
            return torch.ones(self.n_tasks)
        return self._log_weights.detach().exp()

    def loss(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self._log_weights is None:
            self._log_weights = torch.zeros(self.n_tasks, dtype=losses.dtype, device=losses.device, requires_grad=True)
            self._optimizer = torch.optim.Adam([self._log_weights], lr=self.settings["lr"])
        weights = self._log_weights.detach().exp().to(losses)
        self.weights = weights.clone()

        layer = list(ctx.last_shared_parameters) or list(ctx.shared_parameters)
        if not layer:
            # Nothing is shared (single-task towers, soft sharing): no gradient competes, so the
            # weights stay equal and GradNorm reduces to equal weighting.
            return (weights * losses).sum()
        norms = _task_gradient_norms(losses, layer).to(losses)
        self.grad_norms = norms

        current = losses.detach()
        if self._initial_losses is None:
            self._initial_losses = current.clone()
        self._update_weights(weights, norms, current)
        return (weights * losses).sum()

    def _update_weights(self, weights: torch.Tensor, norms: torch.Tensor, current: torch.Tensor) -> None:
        assert self._initial_losses is not None and self._log_weights is not None and self._optimizer is not None
        ratios = current / self._initial_losses.clamp_min(_EPS)
        relative_rates = ratios / ratios.mean().clamp_min(_EPS)
        weighted_norms = weights * norms
        targets = weighted_norms.mean() * relative_rates.clamp_min(0.0) ** self.settings["alpha"]
        # d|Gᵢ − targetᵢ|/dwᵢ = sign(Gᵢ − targetᵢ)·nᵢ, times dwᵢ/dlog wᵢ = wᵢ
        gradient = torch.sign(weighted_norms - targets) * norms * weights
        self._log_weights.grad = torch.nan_to_num(gradient).to(self._log_weights)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self._log_weights.clamp_(min=_MIN_LOG_WEIGHT)
            # shift so that Σ exp(log wᵢ) = T
            self._log_weights.sub_(torch.logsumexp(self._log_weights, dim=0) - math.log(self.n_tasks))


def _task_gradient_norms(losses: torch.Tensor, layer: list[torch.nn.Parameter]) -> torch.Tensor:
    """‖∇_W Lᵢ‖ for every task, keeping the graph for the main backward (0 where Lᵢ ignores W)."""
    norms = []
    for task_loss in losses:
        if not task_loss.requires_grad:
            norms.append(torch.zeros((), dtype=losses.dtype, device=losses.device))
            continue
        grads = torch.autograd.grad(task_loss, layer, retain_graph=True, allow_unused=True)
        squared = [g.detach().pow(2).sum() for g in grads if g is not None]
        total = torch.stack(squared).sum() if squared else torch.zeros((), dtype=losses.dtype, device=losses.device)
        norms.append(total.sqrt().to(losses.dtype))
    return torch.stack(norms)
