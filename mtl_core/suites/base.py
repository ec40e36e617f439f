"""The task-suite contract.

A suite builds, for a seed and a set of options, one input matrix shared by all its tasks and one
target per task, split into train / validation / test. A task's targets may be missing for some
rows (a data-scarce task): ``masks`` marks the rows whose label counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from mtl_core.options import Option, resolve_options

__all__ = ["TaskSpec", "Split", "SuiteData", "Suite"]

TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``n_outputs`` is the number of classes (classification) or output dims (regression).

    ``metric`` is ``accuracy`` for classification and ``mse`` for regression unless a suite says
    otherwise; ``higher_is_better`` tells how to read it.
    """

    name: str
    kind: TaskKind
    n_outputs: int
    metric: str
    higher_is_better: bool
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "n_outputs": self.n_outputs,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "description": self.description,
        }


@dataclass
class Split:
    """Inputs (N × D float32), per-task targets (long for classification, float N × k for
    regression) and per-task boolean masks (N,) marking rows whose label is present."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, tasks: Sequence[str]) -> Split:
        """Keep only ``tasks``; rows labelled for none of them are dropped."""
        keep = torch.zeros(len(self), dtype=torch.bool)
        for task in tasks:
            keep |= self.masks[task]
        return Split(
            x=self.x[keep],
            y={t: self.y[t][keep] for t in tasks},
            masks={t: self.masks[t][keep] for t in tasks},
        )


@dataclass
class SuiteData:
    """What a suite builds. ``info`` holds suite-specific facts for ``run.json`` and the dashboard,
    e.g. ``planted_groups`` and ``label_correlation`` for the planted suite."""

    tasks: list[TaskSpec]
    train: Split
    val: Split
    test: Split
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def select(self, tasks: Sequence[str]) -> SuiteData:
        """A copy restricted to ``tasks`` (in that order)."""
        return SuiteData(
            tasks=[self.task(t) for t in tasks],
            train=self.train.subset(tasks),
            val=self.val.subset(tasks),
            test=self.test.subset(tasks),
            info=dict(self.info),
        )


class Suite:
    """Base class of task suites. Subclasses set ``name``, ``description``, ``options`` and
    implement :meth:`task_specs` and :meth:`build`.

    ``build`` must be deterministic for a given ``seed`` and options. The class attributes below
    say what a suite *is*; the presenter limits and the suite tests read them, so a new suite is
    one new file.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    #: The kinds of task the suite offers (every :class:`TaskSpec` it builds has one of them).
    task_kinds: ClassVar[tuple[TaskKind, ...]] = ("classification", "regression")
    #: The integer option that sets the number of training rows, which a workshop's
    #: ``max_samples`` limit caps (see :mod:`mtl_core.workshop.limits`); None: the size is fixed.
    size_option: ClassVar[str | None] = None
    #: True when the tasks come in known groups, the answer a transfer study should recover:
    #: :meth:`groups` names them and the built data carries them as ``info["planted_groups"]``.
    plants_groups: ClassVar[bool] = False
    #: True when the training split is by design smaller than the validation and test splits
    #: (few labelled rows per task, so that a partner task's rows can help).
    scarce_training_rows: ClassVar[bool] = False
    #: True for suites the user imported (CSV), False for those that ship with MTL Lab.
    user_defined: ClassVar[bool] = False
    #: Training settings (``TrainConfig`` fields) a transfer study of this suite starts from when the
    #: user does not set them (the ``study`` command, the Relationships page); ``strategy_options``
    #: apply to the ``hard`` strategy only. See :func:`mtl_core.studies.study.apply_study_defaults`.
    study_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        self.settings = resolve_options(self.options, options, "suite_options")

    def task_specs(self) -> list[TaskSpec]:
        """The tasks this suite offers with its current options (cheap: no data is built)."""
        raise NotImplementedError

    def build(self, seed: int) -> SuiteData:
        raise NotImplementedError

    def groups(self) -> list[list[str]] | None:
        """The planted groups of task names with the current options (suites that set
        :attr:`plants_groups`), else None."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        suite = cls()
        return {
            "name": cls.name,
            "description": cls.description,
            "tasks": [t.to_dict() for t in suite.task_specs()],
            "options": [o.to_dict() for o in cls.options],
        }
