"""``penguins``: the Palmer penguins (Gorman, Williams & Fraser 2014; Horst, Hill & Gorman 2020).

The data ships inside the ``palmerpenguins`` package (a CSV read with ``load_penguins()``), so it
works offline.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from mtl_core.suites import SUITES
from mtl_core.suites._generators import (
    classification_task,
    make_generator,
    make_split,
    masked_standardise,
    regression_task,
    stratified_split,
)
from mtl_core.suites.base import Split, Suite, SuiteData, TaskSpec

__all__ = ["PenguinsSuite", "FEATURES", "CLASSES"]

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm")
"""Input columns (standardised with training statistics). No target is used as a feature."""

CLASSES: dict[str, tuple[str, ...]] = {
    "species": ("Adelie", "Chinstrap", "Gentoo"),
    "sex": ("female", "male"),
    "island": ("Biscoe", "Dream", "Torgersen"),
}
"""Class names of the classification tasks, in label order."""

_MASS = "body_mass_g"


@lru_cache(maxsize=1)
def _load() -> tuple[Any, int]:
    """The complete rows of the used columns, and how many rows had a missing value."""
    from palmerpenguins import load_penguins

    frame = load_penguins()[[*FEATURES, _MASS, *CLASSES]]
    complete = frame.dropna().reset_index(drop=True)
    return complete, len(frame) - len(complete)


@SUITES.register("penguins")
class PenguinsSuite(Suite):
    """Species, sex, island (classification) and body mass (regression) from bill and flipper sizes."""

    name = "penguins"
    description = (
        "The Palmer penguins (Gorman et al. 2014; the palmerpenguins package, bundled, no download): "
        "333 complete records of Adélie, Chinstrap and Gentoo penguins from three islands. From bill "
        "length, bill depth and flipper length (standardised) it predicts species, sex and island "
        "(classification) and body mass (regression, standardised). A small real tabular mix of "
        "task types and of related (species ↔ island, size ↔ mass) and weakly related (sex) tasks. "
        "Split 60/20/20 by seed, stratified by species."
    )

    def task_specs(self) -> list[TaskSpec]:
        return [
            classification_task("species", 3, "Species: Adelie, Chinstrap or Gentoo."),
            classification_task("sex", 2, "Sex: female or male (hard from bill/flipper sizes alone, species-dependent)."),
            classification_task("island", 3, "Island: Biscoe, Dream or Torgersen (tied to species: Gentoo only on Biscoe)."),
            regression_task("body_mass", 1, "Body mass in grams, standardised with training statistics."),
        ]

    def build(self, seed: int) -> SuiteData:
        frame, n_dropped = _load()
        features = torch.tensor(frame[list(FEATURES)].to_numpy(dtype="float64"))
        mass = torch.tensor(frame[_MASS].to_numpy(dtype="float64")).unsqueeze(1)
        labels = {
            task: torch.tensor([classes.index(value) for value in frame[task]], dtype=torch.int64)
            for task, classes in CLASSES.items()
        }
        train, val, test = stratified_split(labels["species"], make_generator(seed))
        x_train, (x_val, x_test), _, _ = masked_standardise(features[train], None, features[val], features[test])
        m_train, (m_val, m_test), mass_mean, mass_std = masked_standardise(mass[train], None, mass[val], mass[test])

        def split(rows: torch.Tensor, x: torch.Tensor, body_mass: torch.Tensor) -> Split:
            return make_split(x, {**{task: values[rows] for task, values in labels.items()}, "body_mass": body_mass})

        return SuiteData(
            tasks=self.task_specs(),
            train=split(train, x_train, m_train),
            val=split(val, x_val, m_val),
            test=split(test, x_test, m_test),
            info={
                "n_dropped": n_dropped,
                "n_rows": len(frame),
                "features": list(FEATURES),
                "classes": {task: list(classes) for task, classes in CLASSES.items()},
                "body_mass_mean_g": float(mass_mean[0]),
                "body_mass_std_g": float(mass_std[0]),
            },
        )
