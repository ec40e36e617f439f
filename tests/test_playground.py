"""The playground's engine side: every gradient method applied to small gradients, the cosines, and
sentences whose numbers are the real dot products."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl_core import figures
from mtl_core.balancing import METHODS, combine
from mtl_core.workshop.playground import (
    BASELINE,
    DEFAULT_METHODS,
    combine_all,
    common_descent_exists,
    cosine_matrix,
    default_methods,
    describe,
    gradient_methods,
)


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
    assert "every d·gᵢ > 0, so this step lowers every loss" in agreeing["ew"].sentence
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


# --- zero is zero: the sentences' tolerance --------------------------------------------------------------------
SURROUNDING = [_polar(10, 1.0), _polar(175, 2.0), _polar(-100, 1.5)]  # 0 is in their convex hull


def test_a_dot_product_within_the_tolerance_is_zero_and_raises_nothing() -> None:
    gradients = [[1.0, 0.0], [-1.0, 1.0]]  # the plain sum (0, 1) is orthogonal to g₁
    sentence = combine_all(gradients, [])["ew"].sentence
    assert sentence.endswith("every d·gᵢ ≥ 0, so this step raises no loss and leaves the loss of task 1 unchanged "
                             "to first order (d·g₁ = 0).")
    # a rounding residue (-1e-13) is 0, not a raise, and prints without a sign
    residue = describe("pcgrad", gradients, [-1e-13, 1.0])
    assert "raises the loss" not in residue and "d·g₁ = 0" in residue and "+0" not in residue and "-0" not in residue
    # a tiny but real negative value (-1e-4) raises the loss, and the number says so (not "+0.00")
    tiny = describe("pcgrad", gradients, [-1e-4, 1.0])
    assert "raises the loss of task 1 (d·g₁ = -1.0e-04)" in tiny


def test_the_reported_contradiction_is_gone() -> None:
    # Nash-MTL's solver leaves an update of ~1e-6 where the exact one is zero: it printed "raises … (d·g₁ = +0.00)".
    outcome = combine_all(SURROUNDING, ["nash_mtl"])["nash_mtl"]
    assert "raises the loss" not in outcome.sentence and "the update is zero" in outcome.sentence


@pytest.mark.parametrize("gradients", [CONFLICT, SURROUNDING, [[1.0, 0.0], [-1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]],
                                       [[1.0, 0.0], [-1.0, 0.0]], [[1.0, 0.2, 0.0], [-0.8, 1.0, 0.3], [0.0, -1.0, 0.5]]])
def test_no_sentence_raises_a_loss_by_zero_or_prints_a_signed_zero(gradients: list[list[float]]) -> None:
    import re

    for method, outcome in combine_all(gradients).items():
        sentence = outcome.sentence
        assert not re.search(r"[+-]0\.00\b", sentence), (method, sentence)
        for clause in re.findall(r"raises the loss(?:es)? of tasks? [^(]*\(([^)]*)\)", sentence):
            values = [part.split("=")[1].strip() for part in clause.split(",")]
            assert all(value not in ("0", "+0", "-0") for value in values), (method, sentence)
        if outcome.dots and max(outcome.dots) < 0:
            assert "raises" in sentence or "the update is zero" in sentence, (method, sentence)


def test_still_raises_and_now_raises_are_told_apart() -> None:
    sentence = describe("pcgrad", SURROUNDING, [0.1, -1.0])
    sum_dots = np.asarray(SURROUNDING) @ np.asarray(SURROUNDING).sum(axis=0)
    assert sum_dots[0] < 0 and sum_dots[1] > 0
    dots = np.asarray(SURROUNDING) @ np.array([0.1, -1.0])
    assert dots[0] < 0 and dots[1] < 0
    assert "it still raises the loss of task 1" in sentence and "and now also raises the loss of task 2" in sentence


# --- the default methods and where every loss can go down ------------------------------------------------------
def test_the_default_methods_are_a_few_registered_gradient_methods() -> None:
    registered = [m["name"] for m in gradient_methods()]
    assert default_methods() == [name for name in DEFAULT_METHODS if name in registered]
    assert 2 <= len(default_methods()) <= 4 and BASELINE not in default_methods()
    outcomes = combine_all(CONFLICT, default_methods())
    assert list(outcomes) == [BASELINE, *default_methods()]
    # they differ visibly on the default gradients: any two arrows ≥ 4° apart, or one ≥ 0.3 longer
    tips = [np.asarray(o.direction) for o in outcomes.values()]
    for i in range(len(tips)):
        for j in range(i + 1, len(tips)):
            a, b = tips[i], tips[j]
            angle = math.degrees(math.acos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))
            assert angle >= 4 or abs(np.linalg.norm(a) - np.linalg.norm(b)) >= 0.3, (i, j)


@pytest.mark.parametrize(("gradients", "exists"), [
    (CONFLICT, True), ([_polar(10, 1), _polar(190, 2)], False), (SURROUNDING, False),
    ([[0.0, 0.0], [0.0, 0.0]], True), ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], True),
    ([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], False),
])
def test_common_descent_exists_unless_zero_is_in_the_hull(gradients: list[list[float]], exists: bool) -> None:
    assert common_descent_exists(gradients) is exists


# --- the figure: where every task improves, zero and coinciding arrows ----------------------------------------
def test_the_agreement_region_is_the_dual_cone_and_is_absent_when_empty() -> None:
    fig = figures.gradient_arrows(CONFLICT, {"mgda": [0.1, 0.2]}, show_conflict=False, show_agreement=True)
    (region,) = [trace for trace in fig.data if trace.fill == "toself"]
    assert region.name == "every task improves (d·gᵢ > 0 for all i)" and fig.data[0] is region
    vertices = np.column_stack([region.x, region.y])
    assert (vertices @ np.asarray(CONFLICT).T >= -1e-9).all()
    assert np.ptp(vertices[:, 0]) > 0 and np.ptp(vertices[:, 1]) > 0
    empty = figures.gradient_arrows(SURROUNDING, {}, show_conflict=False, show_agreement=True)
    assert not [trace for trace in empty.data if trace.fill == "toself"]
    opposite = figures.gradient_arrows([[1.0, 0.0], [-2.0, 0.0]], {}, show_conflict=False, show_agreement=True)
    assert not [trace for trace in opposite.data if trace.fill == "toself"]


def test_zero_and_coinciding_updates_are_told_apart_in_the_legend() -> None:
    outputs = {"ew": [0.5, 0.5], "mgda": [1e-7, 0.0], "mgda_ub": [1e-7, 0.0], "upgrad": [0.5, 0.5]}
    fig = figures.gradient_arrows([[1.0, 0.0], [0.0, 1.0]], outputs)
    arrows = {trace.name: trace for trace in fig.data if trace.fill != "toself"}
    assert {"ew", "mgda (zero)", "mgda_ub (zero)", "upgrad (= ew)"} <= set(arrows)
    assert arrows["mgda (zero)"].marker.symbol == "circle-open"
    assert arrows["ew"].marker.symbol == "arrow"
