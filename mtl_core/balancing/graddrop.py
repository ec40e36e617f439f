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
        work = grads.detach().to(work_dtype)  # no copy for float32 / float64
        # Column sums and L1 norms, row by row (no T × P temporary; torch's L1 norm over dim 0 is
        # ~100× slower than a sum); the positive and negative parts of each column follow:
        # Σ max(g, 0) = (Σg + Σ|g|)/2 and Σ min(g, 0) = (Σg − Σ|g|)/2.
        total = work.sum(dim=0)
        mass, scratch = torch.zeros_like(total), torch.empty_like(total)
        task_mass = torch.empty(work.shape[0], dtype=work_dtype, device=work.device)
        for i, row in enumerate(work):
            torch.abs(row, out=scratch)
            mass += scratch
            task_mass[i] = scratch.sum()
        del scratch
        # Where every entry of a column is 0, Σg = 0 too and the purity is exactly ½.
        purity = total.div(mass.clamp_min(torch.finfo(work_dtype).tiny)).add_(1.0).mul_(0.5)
        if self.generator is not None:
            uniform = torch.rand(
                work.shape[1], generator=self.generator, device=self.generator.device, dtype=work_dtype
            ).to(work.device)
        else:
            uniform = torch.rand(work.shape[1], device=work.device, dtype=work_dtype)
        keep_positive = uniform < purity
        # sₖ = ±1, the kept sign; the kept part of column k is (Σg + sₖΣ|g|)/2, clamped to its sign.
        signs = keep_positive.to(work_dtype).mul_(2.0).sub_(1.0)
        kept = torch.addcmul(total, signs, mass).mul_(0.5)
        kept = torch.where(keep_positive, kept.clamp_min(0.0), kept.clamp_max(0.0))
        direction = kept.mul_(1.0 - leak).add_(total, alpha=leak)
        # Mass of row i that passes: Σₖ |gᵢₖ| [sign kept] = (‖gᵢ‖₁ + gᵢ·s)/2, one GEMV.
        kept_mass = ((task_mass + work @ signs) / 2.0).clamp(min=torch.zeros_like(task_mass), max=task_mass)
        passed = leak * task_mass + (1.0 - leak) * kept_mass
        fraction = torch.where(task_mass > 0, passed / task_mass.clamp_min(torch.finfo(work_dtype).tiny), 1.0)
        self.weights = fraction.detach().to(grads.dtype)
        return direction.to(grads.dtype)
