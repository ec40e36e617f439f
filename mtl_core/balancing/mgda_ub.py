"""MGDA-UB: MGDA's min-norm weights computed on the shared representation's gradients.

Sener, O. & Koltun, V. (2018). "Multi-Task Learning as Multi-Objective Optimization". NeurIPS 2018.
"""

from __future__ import annotations

from mtl_core.balancing import METHODS
from mtl_core.balancing.mgda import MGDA

__all__ = ["MGDAUB"]


@METHODS.register("mgda_ub")
class MGDAUB(MGDA):
    """MGDA-UB (Sener & Koltun, NeurIPS 2018): MGDA with the "upper bound" trick.

    Same solver and convention as :class:`~mtl_core.balancing.mgda.MGDA` (``α`` on the simplex,
    ``d`` the min-norm point of the hull of the rows), but ``level = "representation"``: the trainer
    hands over the gradients of the task losses with respect to the shared representation ``Z``
    (one backward pass through the heads only), and applies ``d = αᵀ∇_Z L`` at ``Z``, which back-
    propagates ``Σ αᵢ ∇_θ Lᵢ`` into the trunk. Minimising ``‖Σ αᵢ ∇_Z Lᵢ‖`` minimises an upper
    bound of MGDA's objective. On a plain matrix it is exactly MGDA.
    """

    name = "mgda_ub"
    description = (
        "MGDA computed on the gradients of the shared representation instead of the parameters: "
        "much cheaper, and it minimises an upper bound of MGDA's objective."
    )
    paper = "Sener & Koltun, NeurIPS 2018"
    level = "representation"
    playground_lead = (
        "MGDA-UB did what MGDA does (it only changes where the gradients are taken, which "
        "makes no difference here)"
    )
