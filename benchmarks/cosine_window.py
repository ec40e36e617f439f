"""Which window of gradient-cosine probes shows the planted groups? (the run view's default heatmap)

    python benchmarks/cosine_window.py [--seeds 10] [--suite-opt n_groups=3 ...]

Each probe measures the cosine matrix of the task gradients on one mini-batch; the run view's
heatmap averages a window of probes. Early on the task heads are random, so the gradients on the
shared trunk agree little even for related tasks; late in training they are mostly mini-batch noise
(or related tasks even conflict, each fitting its own rows). This script trains ``planted`` runs as a
new user would and reports, for each candidate window and over the seeds:

* the margin: the mean cosine of the task pairs inside a planted group minus that of the pairs across
  groups (averaged over the seeds);
* recovered: in how many seeds the best k-grouping of the window's mean matrix
  (:func:`mtl_core.analysis.grouping.best_grouping`, k = the planted number of groups) is the planting.

Settings: the Train page's defaults (hard sharing, ``ew``, Adam, lr 1e-3, batch 64, a probe every
5 steps) for 10 epochs (also with a probe every step, and with the study's lr 3e-3 and batch 32),
30, 60 and 200 epochs; and the study protocol's config (``PLANTED_STUDY_CONFIG``: at most 200 epochs
with a patience of 10, a probe every 5 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mtl_core.analysis.grouping import best_grouping, same_partition
from mtl_core.config import TrainConfig
from mtl_core.studies.study import PLANTED_STUDY_CONFIG
from mtl_core.training.events import Callback, ProbeEvent
from mtl_core.training.trainer import Trainer

#: Candidate windows: a name and the slice of the run's ``n`` probes it averages.
WINDOWS: dict[str, Callable[[int], slice]] = {
    "last probe": lambda n: slice(n - 1, n),
    "last 10 probes": lambda n: slice(max(0, n - 10), n),
    "last 25 %": lambda n: slice(n - math.ceil(n / 4), n),
    "first 25 %": lambda n: slice(0, math.ceil(n / 4)),
    "first half": lambda n: slice(0, math.ceil(n / 2)),
    "whole run": lambda n: slice(0, n),
}

TRAIN_PAGE = TrainConfig(suite="planted", strategy="hard", method="ew", lr=1e-3, batch_size=64, probe_interval=5)


@dataclass(frozen=True)
class Setting:
    name: str
    config: TrainConfig


def settings(suite_options: dict) -> list[Setting]:
    page = TRAIN_PAGE.replace(suite_options=suite_options)
    study = PLANTED_STUDY_CONFIG.replace(suite_options=suite_options, epochs=200, patience=10, probe_interval=5)
    return [
        Setting("Train page, 10 epochs (the default run)", page.replace(epochs=10)),
        Setting("… a probe every step", page.replace(epochs=10, probe_interval=1)),
        Setting("… lr 3e-3, batch 32", page.replace(epochs=10, lr=3e-3, batch_size=32)),
        Setting("Train page, 30 epochs", page.replace(epochs=30)),
        Setting("Train page, 60 epochs", page.replace(epochs=60)),
        Setting("Train page, 200 epochs", page.replace(epochs=200)),
        Setting("study config, ≤ 200 epochs, patience 10", study),
    ]


class CosineCollector(Callback):
    """Keeps the run's cosine probes (step, T × T matrix)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.matrices: list[np.ndarray] = []

    def on_probe(self, event: ProbeEvent) -> None:
        if event.kind == "cosine":
            self.steps.append(event.step)
            self.matrices.append(np.array([[np.nan if v is None else v for v in row] for row in event.value], float))


def in_and_cross(matrix: np.ndarray, tasks: Sequence[str], groups: Sequence[Sequence[str]]) -> tuple[float, float]:
    """Mean cosine of the task pairs inside a planted group and across groups."""
    group_of = {task: index for index, group in enumerate(groups) for task in group}
    inside, across = [], []
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            (inside if group_of[tasks[i]] == group_of[tasks[j]] else across).append(matrix[i, j])
    return float(np.nanmean(inside)), float(np.nanmean(across))


def measure(config: TrainConfig) -> dict:
    """Train one run; per window: in-group and cross-group mean cosine, and whether the best grouping
    of the window's mean matrix is the planting."""
    collector = CosineCollector()
    trainer = Trainer(config, [collector])
    result = trainer.run()
    tasks, groups = trainer.task_names, result["planted_groups"]
    n = len(collector.matrices)
    out = {"probes": n, "last_step": collector.steps[-1], "epochs": len(result["history"]), "windows": {}}
    for name, window in WINDOWS.items():
        matrix = np.nanmean(np.stack(collector.matrices[window(n)]), axis=0)
        inside, across = in_and_cross(matrix, tasks, groups)
        found = best_grouping(np.where(np.isnan(matrix), 0.0, matrix), len(groups), tasks)
        out["windows"][name] = {"in": inside, "cross": across, "recovered": same_partition(found.groups, groups)}
    return out


def _span(values: Sequence[int]) -> str:
    return f"{min(values)}–{max(values)}" if min(values) != max(values) else str(values[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--suite-opt", action="append", default=[], metavar="KEY=JSON",
                        help="a planted suite option, e.g. n_groups=3 (repeatable)")
    args = parser.parse_args()
    suite_options = {key: json.loads(value) for key, value in (opt.split("=", 1) for opt in args.suite_opt)}
    torch.set_num_threads(1)
    print(f"torch={torch.__version__} threads=1 suite=planted {suite_options or '(defaults)'} "
          f"seeds 0…{args.seeds - 1}; cells: mean margin (in-group − cross-group cosine) · seeds recovered")
    print("| setting | probes | epochs | " + " | ".join(WINDOWS) + " | whole run: in / cross | seconds |")
    print("|---|---|---|" + "---|" * len(WINDOWS) + "---|---|")
    for setting in settings(suite_options):
        started = time.perf_counter()
        runs = [measure(setting.config.replace(seed=seed)) for seed in range(args.seeds)]
        cells = []
        for name in WINDOWS:
            windows = [r["windows"][name] for r in runs]
            margin = np.mean([w["in"] - w["cross"] for w in windows])
            cells.append(f"{margin:+.3f} · {sum(w['recovered'] for w in windows)}/{len(windows)}")
        whole = [r["windows"]["whole run"] for r in runs]
        in_cross = f"{np.mean([w['in'] for w in whole]):+.3f} / {np.mean([w['cross'] for w in whole]):+.3f}"
        print(f"| {setting.name} | {_span([r['probes'] for r in runs])} | {_span([r['epochs'] for r in runs])} | "
              + " | ".join(cells) + f" | {in_cross} | {time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
