"""``multidigit``: two scikit-learn digits side by side, after MultiMNIST (Sener & Koltun,
"Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The source digits are split 60/20/20 (stratified) first and pairs are composed inside each split,
so no image seen in training appears in a validation or test pair.
"""

from __future__ import annotations

import torch

from mtl_core.options import Option
from mtl_core.suites import SUITES
from mtl_core.suites._generators import (
    classification_task,
    load_digit_images,
    make_generator,
    make_split,
    stratified_split,
)
from mtl_core.suites.base import Split, Suite, SuiteData, TaskSpec

__all__ = ["MultiDigitSuite", "compose_pairs"]


def compose_pairs(
    pixels: torch.Tensor, digits: torch.Tensor, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` 8×16 images (flattened row-major to 128 features) made of two 8×8 digits drawn
    independently with replacement from ``pixels`` (M × 64): returns images, left and right labels."""
    left = torch.randint(pixels.shape[0], (n,), generator=generator)
    right = torch.randint(pixels.shape[0], (n,), generator=generator)
    images = torch.cat([pixels[left].reshape(n, 8, 8), pixels[right].reshape(n, 8, 8)], dim=2)
    return images.reshape(n, 128), digits[left], digits[right]


@SUITES.register("multidigit")
class MultiDigitSuite(Suite):
    """Left digit and right digit of an 8×16 two-digit image (MultiMNIST-style, Sener & Koltun 2018)."""

    name = "multidigit"
    description = (
        "A small MultiMNIST (Sener & Koltun, NeurIPS 2018): two of scikit-learn's 8×8 digits side by "
        "side in one 8×16 image (128 pixels in [0, 1]); one task reads the left digit, the other the "
        "right. The tasks are the same skill applied to different pixels, so they share low-level "
        "features but compete for the capacity of the shared layers — the classic two-task setting "
        "for gradient-balancing methods such as MGDA. Source digits are split 60/20/20 before pairing, "
        "so train and test images are disjoint."
    )
    task_kinds = ("classification",)
    size_option = "n_samples"
    options = (
        Option(
            "n_samples", "int", 3000, "Training pairs (validation and test: a third of that each).", low=10, high=1_000_000
        ),
    )

    def task_specs(self) -> list[TaskSpec]:
        return [
            classification_task("left", 10, "The digit in the left half of the image (10 classes)."),
            classification_task("right", 10, "The digit in the right half of the image (10 classes)."),
        ]

    def build(self, seed: int) -> SuiteData:
        generator = make_generator(seed)
        pixels, digits = load_digit_images()
        sources = stratified_split(digits, generator)
        n_train = self.settings["n_samples"]
        sizes = (n_train, max(1, n_train // 3), max(1, n_train // 3))
        splits: list[Split] = []
        for rows, size in zip(sources, sizes):
            images, left, right = compose_pairs(pixels[rows], digits[rows], size, generator)
            splits.append(make_split(images, {"left": left, "right": right}))
        return SuiteData(
            tasks=self.task_specs(),
            train=splits[0],
            val=splits[1],
            test=splits[2],
            info={
                "classes": {"left": [str(d) for d in range(10)], "right": [str(d) for d in range(10)]},
                "source_digits": {"train": int(sources[0].numel()), "val": int(sources[1].numel()), "test": int(sources[2].numel())},
            },
        )
