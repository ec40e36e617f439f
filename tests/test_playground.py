"""The playground's engine side: every gradient method applied to small gradients, the cosines, and
sentences whose numbers are the real dot products."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl_core.balancing import METHODS, combine
from mtl_core.workshop.playground import BASELINE, combine_all, cosine_matrix, describe, gradient_methods


def _polar(angle: float, length: float) -> list[float]:
    return [length * math.cos(math.radians(angle)), length * math.sin(math.radians(angle))]


CONFLICT = [_polar(10, 1.0), _polar(135, 2.0)]  # the plain sum raises task 1's loss


def test_every_gradient_method_is_offered_and_nothing_else() -> None:
    names = [m["name"] for m in gradient_methods()]
    assert names == sorted(n for n, cls in METHODS.items() if cls.kind == "gradient")
    assert "pcgrad" in names and "mgda" in names and "cagrad" in names and "ew" not in names


@pytest.mark.parametrize("gradients", [CONFLICT, [_polar(0, 1), _polar(120, 1), _polar(-100, 1.5)],
                                       [[1.0, 0.2, 0.0], [-0.8, 1.0, 0.3], [0.0, -1.0, 0.5]]])
def test_outputs_are_the_engines_combine_and_dots_are_real(gradients: list[list[float]]) -> None:
    outcomes = combine_all(gradients)
    assert list(outcomes) == [BASELINE] + [m["name"] for m in gradient_methods()]
    matrix = np.asarray(gradients)
    assert np.allclose(outcomes[BASELINE].direction, matrix.sum(axis=0))
    for method, outcome in outcomes.items():
        assert outcome.error is None, (method, outcome.error)
        assert np.allclose(outcome.dots, matrix @ np.asarray(outcome.direction))
        if method != BASELINE:
            generator = torch.Generator().manual_seed(0) if METHODS.get(method).randomised else None
            expected = combine(method, torch.tensor(matrix, dtype=torch.float64), generator=generator)
            assert np.allclose(outcome.direction, expected.numpy())


def test_sentences_say_what_happened_to_the_worst_served_task() -> None:
    outcomes = combine_all(CONFLICT, ["pcgrad", "mgda", "graddrop"])
    dots_sum = np.asarray(CONFLICT) @ np.asarray(CONFLICT).sum(axis=0)
    assert dots_sum[0] < 0  # the plain sum raises task 1's loss …
    assert outcomes["ew"].sentence == f"Equal weights add the gradients: d·g₁ = {dots_sum[0]:+.2f} < 0, so this step " \
                                      "raises the loss of task 1."
    # … PCGrad's update does not: its sentence gives the before/after numbers
    pcgrad = outcomes["pcgrad"]
    assert min(pcgrad.dots) >= 0
    assert f"d·g₁ went from {dots_sum[0]:+.2f} (plain sum) to {pcgrad.dots[0]:+.2f}; no task's loss goes up" in pcgrad.sentence
    assert outcomes["mgda"].sentence.startswith("MGDA took the shortest vector in the convex hull")
    # GradDrop (random signs, seed 0) still hurts task 1 here, and says so
    assert outcomes["graddrop"].dots[0] < 0 and "it still raises the loss of task 1" in outcomes["graddrop"].sentence


def test_every_sentence_opens_with_the_lead_its_class_declares() -> None:
    for method, outcome in combine_all(CONFLICT).items():
        lead = METHODS.get(method).playground_lead
        assert outcome.sentence.startswith(lead or f"{method}: "), (method, outcome.sentence)
    built_in = {"ew", "pcgrad", "mgda", "mgda_ub", "cagrad", "imtl_g", "gradvac", "aligned_mtl", "nash_mtl", "upgrad",
                "graddrop", "db_mtl"}
    assert all(METHODS.get(method).playground_lead for method in built_in)


def test_agreeing_opposite_and_zero_gradients() -> None:
    agreeing = combine_all([_polar(0, 1), _polar(60, 1)], ["mgda"])
    assert "every d·gᵢ ≥ 0" in agreeing["ew"].sentence
    assert "like the plain sum it lowers every loss" in agreeing["mgda"].sentence
    opposite = combine_all([[1.0, 0.0], [-1.0, 0.0]], ["mgda", "graddrop"])
    assert "they cancel out (d = 0)" in opposite["ew"].sentence
    assert "the update is zero" in opposite["mgda"].sentence
    assert "where the plain sum cancels out" in opposite["graddrop"].sentence
    zero = combine_all([[0.0, 0.0], [0.0, 0.0]], ["pcgrad"])
    assert all(o.error is None for o in zero.values())
    assert cosine_matrix([[0.0, 0.0], [1.0, 0.0]]) == [[None, None], [None, 1.0]]


def test_cosines_and_bad_input() -> None:
    cosines = cosine_matrix(CONFLICT)
    assert cosines[0][1] == pytest.approx(math.cos(math.radians(125)))
    assert cosines[0][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="`gradients` must be 1–8 vectors of 2 or 3 numbers"):
        combine_all([[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match="finite"):
        cosine_matrix([[1.0, math.nan], [0.0, 1.0]])
    with pytest.raises(ValueError, match="`methods` must be gradient methods"):
        combine_all(CONFLICT, ["gradnorm"])
    assert describe("pcgrad", CONFLICT, [0.0, 0.0]).endswith("the update is zero — with these gradients it takes "
                                                             "no step at all.")
