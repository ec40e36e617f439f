"""``planted``: correlated regression tasks with a planted group structure.

The generator is MMoE's (Ma et al., KDD 2018, §3.2) generalised to T tasks: the task weight
vectors are ``w = c·L·U`` with ``U`` orthonormal rows and ``L`` the Cholesky factor of a block
correlation matrix ``C`` (1 on the diagonal, ``p_in`` inside a group, ``p_out`` across groups),
so ``cos(wᵢ, wⱼ) = Cᵢⱼ`` and the labels inherit (a somewhat lower) correlation. Task ``k`` (0-based)
belongs to group ``k % n_groups``: the groups interleave, so a clustering of the task-relationship
matrix is needed to see the blocks.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..options import Option
from . import SUITES
from ._generators import build_correlated_regression, is_positive_definite, label_correlation, regression_task
from .base import Suite, SuiteData, TaskSpec

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
    """T correlated regression tasks in planted groups (MMoE generator, Ma et al. 2018)."""

    name = "planted"
    description = (
        "Synthetic regression tasks with a planted group structure, built with the correlated-task "
        "generator of MMoE (Ma et al., KDD 2018): each task is y = wᵀx + Σ sin(αᵢwᵀx + βᵢ) + ε, and the "
        "task weight vectors are drawn so that their cosines equal a block correlation matrix — p_in "
        "inside a group, p_out across groups. Groups interleave (t1, t3, t5 | t2, t4, t6 for two "
        "groups), so only a clustering of a measured task-relationship matrix (gradient cosines, "
        "pairwise transfer, TAG affinities) reveals them. One task can be made data-scarce to study "
        "whether related tasks help it. Use it to check that an analysis recovers a known answer."
    )
    options = (
        Option("n_tasks", "int", 6, "Number of tasks t1..tT.", low=2, high=32),
        Option("n_groups", "int", 2, "Number of planted groups (task k goes to group k mod n_groups).", low=1, high=32),
        Option("p_in", "float", 0.9, "Weight correlation between two tasks of the same group.", low=-1.0, high=1.0),
        Option("p_out", "float", 0.0, "Weight correlation between tasks of different groups.", low=-1.0, high=1.0),
        Option("n_samples", "int", 1000, "Training rows (validation and test: 500 each).", low=2, high=1_000_000),
        Option("scarce_task", "str_or_none", None, "A task with few training labels (e.g. t1), or null."),
        Option("scarce_samples", "int", 50, "Training rows labelled for the scarce task.", low=2),
        Option("noise", "float", 0.1, "Standard deviation of the label noise ε.", low=0.0),
        Option("dim", "int", 32, "Input dimension (at least n_tasks).", low=2, high=4096),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        s = self.settings
        if s["n_groups"] > s["n_tasks"]:
            raise ConfigError("suite_options.n_groups", f"an integer ≤ n_tasks ({s['n_tasks']})", s["n_groups"])
        if s["dim"] < s["n_tasks"]:
            raise ConfigError("suite_options.dim", f"an integer ≥ n_tasks ({s['n_tasks']})", s["dim"])
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
        """The target T × T correlation matrix of the task weight vectors (float64)."""
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
                f"Correlated regression target, planted group {group + 1} of {s['n_groups']}"
                + (f" (with {', '.join(mates)})" if mates else " (alone)")
                + f": weight correlation {s['p_in']} inside the group, {s['p_out']} across."
            )
            if name == s["scarce_task"]:
                text += f" Data-scarce: only {s['scarce_samples']} training rows are labelled."
            specs.append(regression_task(name, 1, text))
        return specs

    def build(self, seed: int) -> SuiteData:
        s = self.settings
        scarce = {s["scarce_task"]: s["scarce_samples"]} if s["scarce_task"] is not None else None
        data = build_correlated_regression(
            self.task_specs(), self.correlation(), s["n_samples"], s["dim"], s["noise"], seed, scarce
        )
        data.info = {"planted_groups": self.groups(), **data.info, "scarce_task": s["scarce_task"]}
        return data
