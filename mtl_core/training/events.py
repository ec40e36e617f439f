"""Events the trainer emits, and the callback interface that the run store and the CLI subscribe to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepEvent", "EpochEvent", "ProbeEvent", "Callback", "StopTraining"]


@dataclass
class StepEvent:
    """After each optimisation step: per-task training loss of the batch (a task with no labelled
    row in the batch is left out) and the method's weights.

    ``total_steps`` is the run's step budget: with early stopping (``patience``) the run may end
    before it, and ``on_run_end``'s result then has ``stop_reason == "patience"``."""

    step: int
    epoch: int
    total_steps: int
    train_loss: dict[str, float]
    weights: dict[str, float] | None = None


@dataclass
class EpochEvent:
    """After each epoch: mean training loss, validation loss and metric per task. ``epochs`` is
    the configured number of epochs, a maximum when the run stops early."""

    epoch: int
    epochs: int
    step: int
    train_loss: dict[str, float]
    val_loss: dict[str, float]
    val_metric: dict[str, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": dict(self.train_loss),
            "val_loss": dict(self.val_loss),
            "val_metric": dict(self.val_metric),
            "seconds": self.seconds,
        }


@dataclass
class ProbeEvent:
    """A probe record at ``step``: ``kind`` names it (``cosine``, ``norms``, ``weights``,
    ``affinity`` …) and ``value`` is a T × T matrix or a length-T vector as nested lists."""

    step: int
    epoch: int
    kind: str
    value: list[Any]
    extra: dict[str, Any] = field(default_factory=dict)


class StopTraining(Exception):
    """Raised by a callback (e.g. on cancel) to stop the run cleanly after the current step."""


class Callback:
    """No-op base: override what you need. ``should_stop`` is polled every step."""

    def on_run_start(self, info: dict[str, Any]) -> None: ...

    def on_step(self, event: StepEvent) -> None: ...

    def on_epoch_end(self, event: EpochEvent) -> None: ...

    def on_probe(self, event: ProbeEvent) -> None: ...

    def on_run_end(self, result: dict[str, Any]) -> None: ...

    def should_stop(self) -> bool:
        return False
