"""How long to train: optimizer steps, not epochs.

A fixed number of epochs means very different amounts of training on different data: 10 epochs of
a 107-row training split with batches of 32 are 40 optimizer steps (an under-trained model), 10
epochs of 3,000 rows are 940. The Train page and ``python -m mtl_core train`` therefore default to
the epochs that give :data:`DEFAULT_STEPS` optimizer steps on the run's training split, and the page
warns below :data:`MIN_STEPS`. Lessons and studies set their own epochs.

The suite registry (and torch) is imported only by :func:`training_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtl_core.errors import ConfigError

__all__ = ["DEFAULT_STEPS", "MIN_STEPS", "MAX_DEFAULT_EPOCHS", "steps_per_epoch", "total_steps",
           "epochs_for_steps", "training_rows"]

#: The default training length in optimizer steps (the Train page and the ``train`` command).
DEFAULT_STEPS = 300
#: Fewer optimizer steps than this and a run is flagged as under-trained on the Train page.
MIN_STEPS = 100
#: The default epochs never exceed this (the Train page's largest Epochs value).
MAX_DEFAULT_EPOCHS = 1000


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, "an integer ≥ 1", value)
    return value


def steps_per_epoch(train_rows: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: one per mini-batch, the last one possibly smaller (as the trainer
    does: ``⌈train_rows / batch_size⌉``)."""
    return math.ceil(_positive_int(train_rows, "train_rows") / _positive_int(batch_size, "batch_size"))


def total_steps(train_rows: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a whole run of ``epochs`` epochs (without early stopping)."""
    return steps_per_epoch(train_rows, batch_size) * _positive_int(epochs, "epochs")


def epochs_for_steps(
    train_rows: int, batch_size: int, steps: int = DEFAULT_STEPS, max_epochs: int = MAX_DEFAULT_EPOCHS
) -> int:
    """The fewest epochs that give at least ``steps`` optimizer steps on ``train_rows`` training rows
    with batches of ``batch_size`` (at least 1, at most ``max_epochs``).

    >>> epochs_for_steps(107, 32)   # a 178-row CSV's training split: 4 steps per epoch
    75
    """
    per_epoch = steps_per_epoch(train_rows, batch_size)
    wanted = math.ceil(_positive_int(steps, "steps") / per_epoch)
    return max(1, min(wanted, _positive_int(max_epochs, "max_epochs")))


def training_rows(
    suite: str, suite_options: Mapping[str, Any] | None = None, tasks: Sequence[str] | None = None, seed: int = 0
) -> int:
    """The rows of the training split a run of ``suite`` trains on: the suite's data built for
    ``seed`` with ``suite_options``, keeping the rows labelled for at least one of ``tasks`` (None:
    all of the suite's tasks), as the trainer does. Builds the data (a CSV suite reads its file).

    Raises :class:`ConfigError` for an unknown suite, bad options or unknown tasks."""
    from mtl_core.suites import make_suite

    data = make_suite(suite, **dict(suite_options or {})).build(seed)
    if tasks is not None:
        unknown = [task for task in tasks if task not in data.task_names]
        if unknown or not tasks:
            raise ConfigError("tasks", f"task names from {', '.join(data.task_names)}", list(tasks))
        data = data.select(list(tasks))
    return len(data.train)
