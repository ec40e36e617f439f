"""GradDrop: per coordinate, keep only one sign of the task gradients, chosen at random.

Chen, Z., Ngiam, J., Huang, Y., Luong, T., Kretzschmar, H., Chai, Y. & Anguelov, D. (2020). "Just
Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout". NeurIPS 2020.
"""

from __future__ import annotations

import torch

from mtl_core.balancing import METHODS
from mtl_core.balancing.base import BalancingMethod, StepContext
from mtl_core.options import Option

__all__ = ["GradDrop"]


@METHODS.register("graddrop")
class GradDrop(BalancingMethod):
    """GradDrop (Chen et al., NeurIPS 2020), on the shared representation (``level``).

    Per coordinate ``k``: sign purity ``Pₖ = ½(1 + Σᵢ gᵢₖ / Σᵢ |gᵢₖ|)`` (½ where every gradient is
    zero), ``Uₖ ~ U[0, 1)``; keep the positive entries if ``Uₖ < Pₖ``, otherwise the negative ones.
    ``d = Σᵢ (ℓ gᵢ + (1 − ℓ) Mᵢ ⊙ gᵢ)`` with the keep-masks ``Mᵢ`` and the ``leak`` ℓ (0: pure
    GradDrop; 1: the plain sum).

    Convention: a **sum** over tasks; where all entries of a coordinate share a sign, ``P`` is exactly
    0 or 1 and the coordinate is kept, so sign-consistent gradients give the plain sum. Randomised:
    ``U`` is drawn from ``generator``. ``weights`` are the fraction of each task's gradient mass
    (L1) that passes (1 for a zero gradient) — not coefficients of ``G``.
    """

    name = "graddrop"
    description = (
        "For every coordinate of the shared representation, randomly keeps only the positive or only "
        "the negative task gradients, favouring the sign that dominates."
    )
    paper = "Chen et al., NeurIPS 2020"
    kind = "gradient"
    level = "representation"
    randomised = True
    scale_invariant = True
    playground_lead = (
        "GradDrop kept, coordinate by coordinate and at random, only the positive or only the "
        "negative gradient values"
    )
    options = (
        Option(
            "leak",
            "float",
            0.0,
            "Fraction of each task's gradient that always passes (0 = none).",
            low=0.0,
            high=1.0,
        ),
    )

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        leak = float(self.settings["leak"])
        work_dtype = torch.float64 if grads.dtype == torch.float64 else torch.float32
        work = grads.to(work_dtype)
        total, mass = work.sum(dim=0), work.abs().sum(dim=0)
        purity = 0.5 * (1.0 + total / torch.where(mass > 0, mass, torch.ones_like(mass)))
        purity = torch.where(mass > 0, purity, torch.full_like(purity, 0.5))
        if self.generator is not None:
            uniform = torch.rand(
                work.shape[1], generator=self.generator, device=self.generator.device, dtype=work_dtype
            ).to(work.device)
        else:
            uniform = torch.rand(work.shape[1], device=work.device, dtype=work_dtype)
        keep_positive = uniform < purity
        mask = torch.where(work > 0, keep_positive, ~keep_positive)
        kept = work * mask
        direction = (leak * work + (1.0 - leak) * kept).sum(dim=0)
        task_mass = work.abs().sum(dim=1)
        passed = leak * task_mass + (1.0 - leak) * kept.abs().sum(dim=1)
        fraction = torch.where(task_mass > 0, passed / torch.where(task_mass > 0, task_mass, 1.0), 1.0)
        self.weights = fraction.detach().to(grads.dtype)
        return direction.to(grads.dtype)
