"""``planted``: groups of related nonlinear regression tasks, with a known answer.

Each task k owns a latent function ``φₖ`` (a sum of M sine ridges of the inputs' projection on its
group's own subspace); the labels mix the latent functions through the symmetric square root of a
block correlation matrix ``C`` (1 on the diagonal, ``p_in`` inside a group, ``p_out`` across), so
tasks of one group share most of their function while tasks of different groups share nothing
(``p_out = 0``) and even read different input directions. Every task is labelled on its own scarce
random share (``label_share``) of a pool of training rows: a partner from the same group brings rows
this task has not seen about the shared function
(positive transfer), a partner from another group competes for the shared trunk (negative transfer).
The generator is :class:`mtl_core.suites._generators.PlantedFunctions`; ``benchmarks/validity.py``
measures how often the analyses recover the planting.

Task ``k`` (0-based) belongs to group ``k % n_groups``: the groups interleave, so a clustering of
the task-relationship matrix is needed to see the blocks.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mtl_core.errors import ConfigError
from mtl_core.options import Option
from mtl_core.suites import SUITES
from mtl_core.suites._generators import (
    build_planted_regression,
    is_positive_definite,
    label_correlation,
    regression_task,
)
from mtl_core.suites.base import Suite, SuiteData, TaskSpec

__all__ = ["PlantedSuite", "planted_correlation", "planted_groups", "label_correlation"]


def planted_groups(n_tasks: int, n_groups: int) -> list[list[str]]:
    """Task names ``t1..tT`` by group, in group order: task ``k`` (0-based) is in group ``k % n_groups``."""
    return [[f"t{k + 1}" for k in range(group, n_tasks, n_groups)] for group in range(n_groups)]


def planted_correlation(n_tasks: int, n_groups: int, p_in: float, p_out: float) -> torch.Tensor:
    """The T × T target correlation (float64): 1 on the diagonal, ``p_in`` inside a group,
    ``p_out`` across groups."""
    group = torch.arange(n_tasks) % n_groups
    same = group.unsqueeze(0) == group.unsqueeze(1)
    matrix = torch.where(same, torch.tensor(p_in, dtype=torch.float64), torch.tensor(p_out, dtype=torch.float64))
    matrix.fill_diagonal_(1.0)
    return matrix


def _positive_definite_p_out(n_tasks: int, n_groups: int, p_in: float) -> tuple[float, float]:
    """The open interval of ``p_out`` values that keep the matrix positive definite (assuming
    ``p_out = 0`` does). The set is convex in ``p_out``, so bisection on each side finds its ends."""

    def ok(p_out: float) -> bool:
        return is_positive_definite(planted_correlation(n_tasks, n_groups, p_in, p_out))

    ends = []
    for limit in (-1.0, 1.0):
        if ok(limit):
            ends.append(limit)
            continue
        inside, outside = 0.0, limit
        for _ in range(40):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if ok(middle) else (inside, middle)
        ends.append(inside)
    return ends[0], ends[1]


@SUITES.register("planted")
class PlantedSuite(Suite):
    """Groups of related nonlinear regression tasks with scarce, task-specific rows (a planted answer)."""

    name = "planted"
    description = (
        "Synthetic regression tasks in planted groups, built so that the truth is known and visible. "
        "Inputs x ~ N(0, I_D). Each task k has a latent function φₖ(x) = Σₘ aₖₘ sin(vₖₘ·Qₖᵀx + bₖₘ) "
        "(M sine ridges, standardised) of x's projection on its group's own subspace Qₖ (⌊D/G⌋ "
        "directions, disjoint between groups). The labels mix the latent functions, y = S φ(x) + ε, "
        "with S the symmetric square root of the block correlation C (1 on the diagonal, p_in inside a "
        "group, p_out across; corr(yᵢ, yⱼ) = Cᵢⱼ / (1 + σ²)), so tasks of a group share most of one "
        "function and tasks of different groups nothing. Each task is labelled on n_samples training rows "
        "drawn at random from a shared pool of ⌈n_samples / label_share⌉ rows (scarce: 100 of 200 by "
        "default), so a partner from the same group brings rows about the shared "
        "function (positive transfer), a partner from another group only competes for the shared trunk "
        "(negative transfer). Groups interleave (t1, t3, t5 | t2, t4, t6 for two groups), so only a "
        "clustering of a measured task-relationship matrix (pairwise transfer, TAG affinities, gradient "
        "cosines) reveals them. One task can be made scarcer still, to see related tasks help it."
    )
    task_kinds = ("regression",)
    size_option = "n_samples"
    plants_groups = True
    scarce_training_rows = True
    #: Measured with benchmarks/validity.py: a trunk of width 32 is narrow enough that tasks of
    #: different groups compete for it (negative transfer; at width 64 it is weak); TAG looks ahead
    #: at every step of the all-tasks run (every 5th step leaves its affinity noisier).
    study_defaults = {"strategy_options": {"hidden": 32}, "lr": 3e-3, "batch_size": 32, "tag_interval": 1}
    options = (
        Option("n_tasks", "int", 6, "Number of tasks t1..tT.", low=2, high=32),
        Option("n_groups", "int", 2, "Number of planted groups (task k goes to group k mod n_groups).", low=1, high=32),
        Option("p_in", "float", 0.9, "Correlation between two tasks of the same group (their shared part).",
               low=-1.0, high=1.0),
        Option("p_out", "float", 0.0, "Correlation between tasks of different groups.", low=-1.0, high=1.0),
        Option("n_samples", "int", 100, "Labelled training rows per task, drawn at random from a pool of "
               "⌈n_samples / label_share⌉ rows (validation and test: 500 rows, every task labelled).",
               low=2, high=1_000_000),
        Option("scarce_task", "str_or_none", None, "A task with fewer labelled training rows (e.g. t1), or null."),
        Option("scarce_samples", "int", 25, "Labelled training rows of the scarce task.", low=2),
        Option("label_share", "float", 0.5, "Share of the training rows each task is labelled on (drawn per "
               "task): 1 = every task on every row, so a partner brings no new rows; small = each task "
               "mostly on rows of its own.", low=0.01, high=1.0),
        Option("noise", "float", 0.1, "Standard deviation σ of the label noise ε.", low=0.0),
        Option("dim", "int", 16, "Input dimension D (at least 2 per group).", low=2, high=4096),
        Option("complexity", "int", 8, "Sine ridges M per latent function (more = harder to learn from few rows).",
               low=1, high=256),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        s = self.settings
        if s["n_groups"] > s["n_tasks"]:
            raise ConfigError("suite_options.n_groups", f"an integer ≤ n_tasks ({s['n_tasks']})", s["n_groups"])
        if s["dim"] < 2 * s["n_groups"]:
            raise ConfigError("suite_options.dim", f"an integer ≥ 2 × n_groups ({2 * s['n_groups']}), so that "
                              "each group has a subspace of at least two input directions", s["dim"])
        names = [f"t{k + 1}" for k in range(s["n_tasks"])]
        if s["scarce_task"] is not None:
            if s["scarce_task"] not in names:
                raise ConfigError("suite_options.scarce_task", f"null or one of {', '.join(names)}", s["scarce_task"])
            if s["scarce_samples"] > s["n_samples"]:
                raise ConfigError(
                    "suite_options.scarce_samples", f"an integer ≤ n_samples ({s['n_samples']})", s["scarce_samples"]
                )
        self._check_positive_definite()

    def _check_positive_definite(self) -> None:
        s = self.settings
        n_tasks, n_groups, p_in, p_out = s["n_tasks"], s["n_groups"], s["p_in"], s["p_out"]
        if is_positive_definite(self.correlation()):
            return
        if not is_positive_definite(planted_correlation(n_tasks, n_groups, p_in, 0.0)):
            size = max(len(group) for group in planted_groups(n_tasks, n_groups))
            raise ConfigError(
                "suite_options.p_in",
                f"in (−1/(s−1), 1) = ({-1 / (size - 1):.3f}, 1) for groups of up to s = {size} tasks, so that "
                "the task correlation matrix is positive definite",
                p_in,
            )
        low, high = _positive_definite_p_out(n_tasks, n_groups, p_in)
        raise ConfigError(
            "suite_options.p_out",
            f"in ({low:.3f}, {high:.3f}) for p_in = {p_in} with {n_tasks} tasks in {n_groups} groups, so that "
            "the task correlation matrix (1 on the diagonal, p_in inside groups, p_out across) is positive "
            "definite",
            p_out,
        )

    def correlation(self) -> torch.Tensor:
        """The target T × T correlation matrix of the tasks' noise-free labels (float64)."""
        s = self.settings
        return planted_correlation(s["n_tasks"], s["n_groups"], s["p_in"], s["p_out"])

    def groups(self) -> list[list[str]]:
        """The planted groups: lists of task names, in group order."""
        return planted_groups(self.settings["n_tasks"], self.settings["n_groups"])

    def task_specs(self) -> list[TaskSpec]:
        s = self.settings
        groups = self.groups()
        specs = []
        for k in range(s["n_tasks"]):
            name, group = f"t{k + 1}", k % s["n_groups"]
            mates = [other for other in groups[group] if other != name]
            text = (
                f"Nonlinear regression target, planted group {group + 1} of {s['n_groups']}"
                + (f" (with {', '.join(mates)})" if mates else " (alone)")
                + f": correlation {s['p_in']} inside the group, {s['p_out']} across; "
                + f"{s['n_samples']} labelled training rows of its own."
            )
            if name == s["scarce_task"]:
                text += f" Data-scarce: only {s['scarce_samples']} of them are labelled."
            specs.append(regression_task(name, 1, text))
        return specs

    def pool_size(self) -> int:
        """Training rows in all: ``⌈n_samples / label_share⌉``."""
        return math.ceil(self.settings["n_samples"] / self.settings["label_share"] - 1e-9)

    def build(self, seed: int) -> SuiteData:
        s = self.settings
        rows = [s["scarce_samples"] if f"t{k + 1}" == s["scarce_task"] else s["n_samples"] for k in range(s["n_tasks"])]
        groups = [k % s["n_groups"] for k in range(s["n_tasks"])]
        data = build_planted_regression(
            self.task_specs(), self.correlation(), groups, rows, self.pool_size(), s["dim"], s["complexity"],
            s["noise"], seed,
        )
        data.info = {"planted_groups": self.groups(), **data.info, "scarce_task": s["scarce_task"]}
        return data
