"""The balancing-method contract: small typed hooks the trainer calls without naming a method.

Two kinds:

* **loss weighting** (``kind = "loss"``): the trainer does one forward and one backward of
  :meth:`BalancingMethod.loss` (default ``Σ wᵢ Lᵢ`` with :meth:`current_weights`). No per-task
  gradients are computed unless a method asks for them itself (GradNorm does, on one layer).
* **gradient methods** (``kind = "gradient"``): the trainer computes the T × P matrix ``G`` of
  per-task gradients of :meth:`transform_losses` on the shared parameters (or, for
  ``level = "representation"``, on the shared representation), calls :meth:`aggregate` (through
  ``__call__``, which checks the input once) and applies the returned direction ``d`` as the
  gradient of the shared parameters; task-owned parameters get their own task's gradient.

Methods that keep state (EMA targets, learnable weights) keep it on ``self``; the trainer builds a
fresh instance per run. ``self.weights`` holds the last task weights (or αᵢ) for the probes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from mtl_core.options import Option, resolve_options

__all__ = ["NON_FINITE_MESSAGE", "BalancingMethod", "StepContext", "check_finite", "check_grads"]

#: The one message for a task-gradient matrix with NaN or inf entries (also raised by
#: :func:`mtl_core.balancing._qp.gramian`, which finds them on the Gramian's diagonal).
NON_FINITE_MESSAGE = "`grads` contains NaN or inf values"


@dataclass
class StepContext:
    """What the trainer offers a method during one optimisation step.

    ``losses`` are the per-task losses (T,) of this batch, still attached to the graph;
    ``recompute_losses`` runs a no-grad forward on the same batch (FAMO's second forward);
    ``shared_parameters`` / ``last_shared_parameters`` come from the strategy.
    """

    step: int
    epoch: int
    losses: torch.Tensor
    shared_parameters: list[torch.nn.Parameter]
    last_shared_parameters: list[torch.nn.Parameter]
    recompute_losses: Callable[[], torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_finite(grads: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``grads`` has a NaN or inf entry (one reduction in the common case)."""
    # One reduction instead of an elementwise mask (a few ms per step for T × 10⁵ entries): NaN or inf
    # anywhere makes the sum non-finite; only then (or when finite values overflow) look closer.
    if not bool(torch.isfinite(grads.sum())) and not bool(torch.isfinite(grads).all()):
        raise ValueError(NON_FINITE_MESSAGE)


def check_grads(grads: object, n_tasks: int | None = None, *, finite: bool = True) -> torch.Tensor:
    """Validate a task-gradient matrix once, with messages that name the problem.

    ``finite=False`` leaves out the pass over every entry that looks for NaN or inf, for callers that
    find them another way (the Gramian's diagonal, see :attr:`BalancingMethod.reads_gramian`).
    """
    if not isinstance(grads, torch.Tensor):
        raise ValueError(f"`grads` must be a torch.Tensor of shape (tasks, params), got {type(grads).__name__}")
    if grads.dim() != 2:
        raise ValueError(f"`grads` must be a 2-D tensor (tasks × params), got shape {tuple(grads.shape)}")
    if grads.shape[0] < 1 or grads.shape[1] < 1:
        raise ValueError(f"`grads` must have at least one task and one parameter, got shape {tuple(grads.shape)}")
    if not grads.is_floating_point():
        raise ValueError(f"`grads` must be a floating-point tensor, got dtype {grads.dtype}")
    if n_tasks is not None and grads.shape[0] != n_tasks:
        raise ValueError(f"`grads` must have {n_tasks} rows (one per task), got {grads.shape[0]}")
    if finite:
        check_finite(grads)
    return grads


class BalancingMethod:
    """Base class. Subclasses set the class attributes and override the hooks they need.

    The class attributes say what a method *is*; the trainer, the configuration checks, the
    playground, the CLI help and the property tests read them (the tests run each property on
    every registered method that declares it), so a new method is one new file. Declare only
    what the method guarantees: a property declared ``True`` is tested.
    """

    name: ClassVar[str]
    #: One or two sentences for the dashboard and the CLI.
    description: ClassVar[str] = ""
    #: Paper reference shown in the dashboard, e.g. "Yu et al., NeurIPS 2020".
    paper: ClassVar[str] = ""
    #: ``"loss"``: weights the task losses (one backward of :meth:`loss`, no per-task gradients);
    #: ``"gradient"``: combines the per-task gradients, so the trainer computes the T × P matrix
    #: ``G`` (the Jacobian of the losses) every step and applies :meth:`aggregate`'s direction.
    kind: ClassVar[Literal["loss", "gradient"]] = "loss"
    #: For gradient methods: aggregate over shared ``parameters`` or the shared ``representation``.
    level: ClassVar[Literal["parameters", "representation"]] = "parameters"
    #: True when the output depends on random draws (then ``generator`` is honoured).
    randomised: ClassVar[bool] = False
    #: Gradient methods: the direction is ``weights @ G``, a combination of the task gradients
    #: whose coefficients :meth:`aggregate` leaves in ``self.weights``.
    weighted_sum: ClassVar[bool] = False
    #: Gradient methods: multiplying every task gradient by the same positive factor leaves the
    #: direction's orientation unchanged.
    scale_invariant: ClassVar[bool] = False
    #: Gradient methods: reordering the tasks reorders ``self.weights`` the same way and leaves
    #: the direction unchanged (deterministic methods only).
    permutation_invariant: ClassVar[bool] = False
    #: Gradient methods: :meth:`aggregate` reads ``G`` only through
    #: :func:`mtl_core.balancing._qp.gramian` (which raises for NaN or inf, found on the Gramian's
    #: diagonal) and one final weighted sum of the rows, so ``__call__`` leaves out its own pass over
    #: every entry: a valid call reads ``G`` twice in all. A method that skips the Gramian on some
    #: calls must then call :func:`check_finite` itself.
    reads_gramian: ClassVar[bool] = False
    #: With its default options, ``self.weights`` holds one positive, finite number per task after
    #: every step (a loss weight, or a gradient method's per-task scale).
    positive_weights: ClassVar[bool] = False
    #: The opening of the playground's sentence on what the method did to a few 2-D or 3-D
    #: gradients, in the past tense ("PCGrad projected each gradient off …"); empty: the first
    #: sentence of :attr:`description`. See :func:`mtl_core.workshop.playground.describe`.
    playground_lead: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, n_tasks: int, generator: torch.Generator | None = None, **options: Any) -> None:
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"`n_tasks` must be a positive integer, got {n_tasks!r}")
        self.n_tasks = n_tasks
        self.settings = resolve_options(self.options, options, "method_options")
        self.generator = generator
        self.weights: torch.Tensor | None = None

    # --- hooks (override what you need) --------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        """Extra learnable tensors optimised by the run's optimiser (e.g. UW's log-variances)."""
        return []

    def current_weights(self) -> torch.Tensor:
        """Task weights for the default :meth:`loss` (equal weights unless overridden)."""
        return torch.ones(self.n_tasks)

    def loss(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Scalar objective to back-propagate (loss-weighting methods)."""
        weights = self.current_weights().to(losses)
        self.weights = weights.detach().clone()
        return (weights * losses).sum()

    def transform_losses(self, losses: torch.Tensor) -> torch.Tensor:
        """Per-task losses whose gradients form ``G`` (gradient methods; DB-MTL takes the log)."""
        return losses

    def aggregate(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        """Map the checked T × P matrix to a direction (P,). Gradient methods implement this."""
        raise NotImplementedError(f"{self.name} is not a gradient method")

    def after_step(self, ctx: StepContext) -> None:
        """Called after the optimiser step (FAMO updates its logits here)."""

    def on_epoch_end(self, epoch: int, mean_train_losses: torch.Tensor) -> None:
        """Called with the epoch's mean training loss per task (DWA)."""

    # --- the one entry point for gradient methods ------------------------------------------------
    def __call__(self, grads: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        grads = check_grads(grads, self.n_tasks, finite=not self.reads_gramian)
        direction = self.aggregate(grads, ctx)
        return direction

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "description": cls.description,
            "paper": cls.paper,
            "kind": cls.kind,
            "level": cls.level,
            "randomised": cls.randomised,
            "options": [o.to_dict() for o in cls.options],
        }
