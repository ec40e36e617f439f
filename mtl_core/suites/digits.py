"""``digits``: five classification tasks on scikit-learn's bundled 8×8 handwritten digits.

The data is ``sklearn.datasets.load_digits`` (1,797 images from the UCI "Optical Recognition of
Handwritten Digits" set), shipped with scikit-learn, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mtl_core.suites import SUITES
from mtl_core.suites._generators import (
    classification_task,
    load_digit_images,
    make_generator,
    make_split,
    stratified_split,
)
from mtl_core.suites.base import Suite, SuiteData, TaskSpec

__all__ = ["DigitsSuite", "DIGIT_TASKS"]


@dataclass(frozen=True)
class _DigitTask:
    name: str
    classes: tuple[str, ...]
    label: Callable[[torch.Tensor], torch.Tensor]
    description: str


def _member_of(values: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda digit: torch.isin(digit, torch.tensor(values)).long()


DIGIT_TASKS: tuple[_DigitTask, ...] = (
    _DigitTask("digit", tuple(str(d) for d in range(10)), lambda d: d, "Which digit (10 classes, 0–9)."),
    _DigitTask("parity", ("even", "odd"), lambda d: d % 2, "Odd (1) or even (0)."),
    _DigitTask("ge5", ("< 5", "≥ 5"), lambda d: (d >= 5).long(), "Digit at least 5 (1) or below (0)."),
    _DigitTask("prime", ("not prime", "prime"), _member_of((2, 3, 5, 7)), "Prime digit: 2, 3, 5 or 7 (1), else 0."),
    _DigitTask(
        "loop", ("no loop", "loop"), _member_of((0, 4, 6, 8, 9)), "Digit with a closed loop: 0, 4, 6, 8 or 9 (1), else 0."
    ),
)
"""The tasks: each is a function of the digit, so ``digit`` alone determines all the others."""


@SUITES.register("digits")
class DigitsSuite(Suite):
    """Digit identity and four binary digit properties on scikit-learn's 8×8 digits."""

    name = "digits"
    description = (
        "scikit-learn's bundled 8×8 handwritten digits (1,797 images, pixels scaled to [0, 1]) with five "
        "classification tasks: the digit itself and four binary properties — parity, at least 5, prime, "
        "and has a closed loop. Every property is a function of the digit, but they group the digits "
        "differently (parity splits 3 from 8, loop joins them), so some pairs of tasks share features "
        "and others pull the shared layers apart. Split 60/20/20, stratified by digit, by seed."
    )
    task_kinds = ("classification",)

    def task_specs(self) -> list[TaskSpec]:
        return [classification_task(t.name, len(t.classes), t.description) for t in DIGIT_TASKS]

    def build(self, seed: int) -> SuiteData:
        pixels, digits = load_digit_images()
        parts = stratified_split(digits, make_generator(seed))
        splits = [
            make_split(pixels[rows], {t.name: t.label(digits[rows]) for t in DIGIT_TASKS}) for rows in parts
        ]
        return SuiteData(
            tasks=self.task_specs(),
            train=splits[0],
            val=splits[1],
            test=splits[2],
            info={"classes": {t.name: list(t.classes) for t in DIGIT_TASKS}, "n_images": int(digits.numel())},
        )
