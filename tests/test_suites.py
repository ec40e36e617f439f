"""Tests of the task suites: properties shared by every registered suite, then suite-specific facts."""

from __future__ import annotations

import json
import time
from functools import cache

import pytest
import torch

from mtl_core.errors import ConfigError
from mtl_core.suites import SUITES, SuiteData, make_suite
from mtl_core.suites._generators import (
    CorrelatedRegression,
    correlation_factor,
    load_digit_images,
    make_generator,
    stratified_split,
)
from mtl_core.suites.planted import label_correlation, planted_correlation

BUILT_IN = {"planted", "mmoe", "scales", "digits", "multidigit", "penguins"}
ALL_SUITES = sorted(SUITES.names())


@cache
def built(name: str, seed: int = 0) -> SuiteData:
    """Default-option build, cached: the tests below only read it."""
    return make_suite(name).build(seed)


def splits(data: SuiteData):
    return {"train": data.train, "val": data.val, "test": data.test}


def group_means(matrix: torch.Tensor, n_groups: int) -> tuple[float, float]:
    """Mean off-diagonal entry inside the planted groups and across them."""
    group = torch.arange(matrix.shape[0]) % n_groups
    same = group.unsqueeze(0) == group.unsqueeze(1)
    inside = same & ~torch.eye(matrix.shape[0], dtype=torch.bool)
    return float(matrix[inside].mean()), float(matrix[~same].mean())


# --- every registered suite ----------------------------------------------------------------------------


def test_built_in_suites_are_registered() -> None:
    assert BUILT_IN <= set(SUITES.names())


@pytest.mark.parametrize("name", ALL_SUITES)
def test_build_matches_task_specs(name: str) -> None:
    suite = make_suite(name)
    data = built(name)
    assert data.tasks == suite.task_specs()
    assert len(set(data.task_names)) == len(data.task_names) >= 2
    dim = data.input_dim
    for split_name, split in splits(data).items():
        n = len(split)
        assert n > 0, split_name
        assert split.x.dtype == torch.float32 and split.x.shape == (n, dim)
        assert torch.isfinite(split.x).all()
        assert list(split.y) == data.task_names and list(split.masks) == data.task_names
        for spec in data.tasks:
            y, mask = split.y[spec.name], split.masks[spec.name]
            assert mask.dtype == torch.bool and mask.shape == (n,)
            assert mask.any(), (split_name, spec.name)
            if spec.kind == "classification":
                assert (spec.metric, spec.higher_is_better) == ("accuracy", True)
                assert y.dtype == torch.int64 and y.shape == (n,)
                assert 0 <= int(y.min()) and int(y.max()) < spec.n_outputs
                assert spec.n_outputs >= 2
            else:
                assert spec.kind == "regression"
                assert (spec.metric, spec.higher_is_better) == ("mse", False)
                assert y.dtype == torch.float32 and y.shape == (n, spec.n_outputs)
                assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL_SUITES)
def test_split_sizes_are_sane(name: str) -> None:
    data = built(name)
    if SUITES.get(name).scarce_training_rows:
        # Scarce training rows by design (a partner's rows must be able to help); evaluation is large.
        assert 0 < len(data.train) < len(data.val) == len(data.test)
        return
    assert len(data.train) >= len(data.val) > 0
    assert len(data.train) >= len(data.test) > 0


@pytest.mark.parametrize("name", ALL_SUITES)
def test_deterministic_for_a_seed_and_different_for_another(name: str) -> None:
    first, again, other = make_suite(name).build(3), make_suite(name).build(3), make_suite(name).build(4)
    for split_name, split in splits(first).items():
        twin = splits(again)[split_name]
        assert torch.equal(split.x, twin.x)
        for task in first.task_names:
            assert torch.equal(split.y[task], twin.y[task])
            assert torch.equal(split.masks[task], twin.masks[task])
    assert first.info == again.info
    assert not torch.equal(first.train.x, other.train.x)


@pytest.mark.parametrize("name", ALL_SUITES)
def test_describe_and_info_are_json_ready(name: str) -> None:
    cls = SUITES.get(name)
    described = cls.describe()
    assert described["name"] == name
    assert len(described["description"]) > 80
    assert [t["name"] for t in described["tasks"]] == [t.name for t in make_suite(name).task_specs()]
    assert all(t["description"] for t in described["tasks"])
    json.dumps(described)
    json.dumps(built(name).info)


@pytest.mark.parametrize("name", ALL_SUITES)
def test_select_round_trip(name: str) -> None:
    data = built(name)
    reordered = data.select(list(reversed(data.task_names)))
    assert reordered.task_names == list(reversed(data.task_names))
    assert torch.equal(reordered.train.x, data.train.x)
    one = data.task_names[0]
    alone = data.select([one])
    assert alone.task_names == [one]
    assert len(alone.train) == int(data.train.masks[one].sum())
    assert torch.equal(alone.test.y[one], data.test.y[one][data.test.masks[one]])
    back = alone.select([one])
    assert torch.equal(back.val.x, alone.val.x)


@pytest.mark.parametrize("name", ALL_SUITES)
def test_declared_capabilities_hold(name: str) -> None:
    cls, suite = SUITES.get(name), make_suite(name)
    assert {spec.kind for spec in suite.task_specs()} <= set(cls.task_kinds)
    if cls.size_option is not None:
        option = {o.name: o for o in cls.options}[cls.size_option]
        assert option.kind == "int" and isinstance(suite.settings[cls.size_option], int)
    groups = suite.groups()
    if cls.plants_groups:
        assert groups is not None
        assert sorted(task for group in groups for task in group) == sorted(t.name for t in suite.task_specs())
        assert built(name).info["planted_groups"] == groups
    else:
        assert groups is None and "planted_groups" not in built(name).info


def test_built_in_suites_declare_what_they_are() -> None:
    # A flag dropped by mistake would silently drop a limit or a test.
    sized = {name for name in BUILT_IN if SUITES.get(name).size_option == "n_samples"}
    assert sized == {"planted", "mmoe", "scales", "multidigit"}
    assert {name for name in BUILT_IN if SUITES.get(name).plants_groups} == {"planted"}
    assert not SUITES.get("planted").user_defined


@pytest.mark.parametrize("name", ALL_SUITES)
def test_unknown_option_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_suite(name, no_such_option=1)
    assert error.value.field == "suite_options.no_such_option"


# --- option validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("planted", {"n_groups": 7}, "suite_options.n_groups"),
        ("planted", {"n_tasks": 3, "n_groups": 4}, "suite_options.n_groups"),
        ("planted", {"scarce_task": "t7"}, "suite_options.scarce_task"),
        ("planted", {"scarce_task": "y1"}, "suite_options.scarce_task"),
        ("planted", {"scarce_task": "t1", "n_samples": 20}, "suite_options.scarce_samples"),
        ("planted", {"p_in": 1.5}, "suite_options.p_in"),
        ("planted", {"n_tasks": "many"}, "suite_options.n_tasks"),
        ("planted", {"dim": 3}, "suite_options.dim"),
        ("planted", {"noise": -0.1}, "suite_options.noise"),
        ("mmoe", {"p": 1.2}, "suite_options.p"),
        ("mmoe", {"p": -0.1}, "suite_options.p"),
        ("scales", {"sigmas": [1.0]}, "suite_options.sigmas"),
        ("scales", {"sigmas": [1.0, -2.0]}, "suite_options.sigmas"),
        ("scales", {"sigmas": [0.0, 2.0]}, "suite_options.sigmas"),
        ("multidigit", {"n_samples": 0}, "suite_options.n_samples"),
    ],
)
def test_bad_options_raise_config_error(name: str, options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_suite(name, **options)
    assert error.value.field == field


def test_cli_strings_are_coerced() -> None:
    suite = make_suite("planted", n_tasks="4", scarce_task="t2", p_in="0.8")
    assert suite.settings["n_tasks"] == 4 and suite.settings["p_in"] == 0.8
    assert make_suite("scales", sigmas="1,10,100").settings["sigmas"] == (1.0, 10.0, 100.0)
    assert make_suite("planted", scarce_task="null").settings["scarce_task"] is None


# --- planted / mmoe ------------------------------------------------------------------------------------


def test_correlated_weights_have_the_target_cosines() -> None:
    target = planted_correlation(5, 2, 0.8, -0.1)
    source = CorrelatedRegression.draw(target, dim=12, noise=0.1, generator=make_generator(0))
    unit = source.weights / source.weights.norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, target, atol=1e-10)
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    factor = correlation_factor(singular)
    assert torch.allclose(factor @ factor.T, singular)


def test_planted_groups_and_target_correlation() -> None:
    data = built("planted")
    assert data.info["planted_groups"] == [["t1", "t3", "t5"], ["t2", "t4", "t6"]]
    suite = make_suite("planted", n_tasks=7, n_groups=3, p_in=0.7, p_out=0.1)
    groups = suite.build(0).info["planted_groups"]
    assert groups == [["t1", "t4", "t7"], ["t2", "t5"], ["t3", "t6"]]
    target = torch.tensor(suite.build(0).info["correlation"])
    group_of = {task: g for g, members in enumerate(groups) for task in members}
    for i in range(7):
        for j in range(7):
            expected = 1.0 if i == j else (0.7 if group_of[f"t{i + 1}"] == group_of[f"t{j + 1}"] else 0.1)
            assert target[i, j].item() == pytest.approx(expected)


def test_planted_measured_label_correlation_follows_the_settings() -> None:
    # corr(yᵢ, yⱼ) = Cᵢⱼ / (1 + σ²) in the population (σ = 0.1: 0.891 inside a group, 0 across);
    # measured on the 500 validation rows, where every task is labelled.
    insides = []
    for seed in range(10):
        data = make_suite("planted").build(seed)
        measured = torch.tensor(data.info["label_correlation"])
        assert torch.allclose(measured, label_correlation(data.val).float(), atol=1e-5)
        inside, across = group_means(measured, 2)
        assert abs(inside - 0.9 / 1.01) < 0.08
        assert abs(across) < 0.12
        insides.append(inside)
    assert sum(insides) / len(insides) == pytest.approx(0.9 / 1.01, abs=0.03)


def test_planted_measured_correlation_with_nonzero_p_out() -> None:
    suite = make_suite("planted", n_tasks=7, n_groups=3, p_in=0.6, p_out=0.2)
    means = [group_means(torch.tensor(suite.build(seed).info["label_correlation"]), 3) for seed in range(10)]
    inside = sum(m[0] for m in means) / len(means)
    across = sum(m[1] for m in means) / len(means)
    assert inside == pytest.approx(0.6 / 1.01, abs=0.05)
    assert across == pytest.approx(0.2 / 1.01, abs=0.05)


def test_planted_each_task_is_labelled_on_its_own_share_of_the_pool() -> None:
    data = make_suite("planted", n_tasks=4, n_samples=100, label_share=0.5).build(0)
    masks = torch.stack([data.train.masks[t] for t in data.task_names])
    assert masks.sum(1).tolist() == [100, 100, 100, 100]
    assert bool(masks.any(0).all())  # no row without a label
    assert len(data.train) <= 200
    shared = (masks[0] & masks[1]).sum().item()
    assert 25 <= shared <= 75  # about n² / pool = 50 rows in common
    assert len(data.select(["t1"]).train) == 100
    assert len(data.select(["t1", "t2"]).train) == int((masks[0] | masks[1]).sum())


def test_planted_targets_are_standardised_with_training_rows() -> None:
    data = built("planted")
    for task in data.task_names:
        y = data.train.y[task][data.train.masks[task]].double()
        assert y.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert y.std().item() == pytest.approx(1.0, abs=1e-4)
        assert bool((data.train.y[task][~data.train.masks[task]] == 0).all())
        assert abs(data.test.y[task].double().mean().item()) < 0.3


def test_planted_scarce_task_masks() -> None:
    suite = make_suite("planted", scarce_task="t2", scarce_samples=30, n_samples=400)
    data = suite.build(0)
    mask = data.train.masks["t2"]
    assert int(mask.sum()) == 30
    assert bool((data.train.y["t2"][~mask] == 0).all())
    labelled = data.train.y["t2"][mask].double()
    assert labelled.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert labelled.std().item() == pytest.approx(1.0, abs=1e-4)
    for task in data.task_names:
        assert bool(data.val.masks[task].all()) and bool(data.test.masks[task].all())
        if task != "t2":
            assert int(data.train.masks[task].sum()) == 400
    assert len(data.select(["t2"]).train) == 30
    assert "Data-scarce" in data.task("t2").description
    assert data.info["scarce_task"] == "t2"


def test_planted_evaluation_rows_do_not_depend_on_n_samples() -> None:
    small, large = make_suite("planted", n_samples=100).build(5), make_suite("planted", n_samples=300).build(5)
    assert torch.equal(small.test.x, large.test.x) and torch.equal(small.val.x, large.val.x)
    assert len(small.train) <= 200 and len(large.train) <= 600
    assert int(small.train.masks["t1"].sum()) == 100 and int(large.train.masks["t1"].sum()) == 300


def test_planted_non_positive_definite_correlation_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        make_suite("planted", p_in=0.1, p_out=0.9)
    assert error.value.field == "suite_options.p_out"
    assert "p_in" in str(error.value) and "positive definite" in str(error.value)
    # With p_in = 0.1 and two groups of three the allowed interval is (−0.4, 0.4).
    assert "(-0.400, 0.400)" in str(error.value)
    make_suite("planted", p_in=0.1, p_out=0.39)
    with pytest.raises(ConfigError) as error:
        make_suite("planted", p_in=1.0)
    assert error.value.field == "suite_options.p_in"


def test_planted_build_is_fast() -> None:
    suite = make_suite("planted")
    suite.build(0)
    start = time.perf_counter()
    suite.build(1)
    assert time.perf_counter() - start < 1.0


def test_mmoe_label_correlation_increases_with_p() -> None:
    for seed in range(3):
        measured = [make_suite("mmoe", p=p).build(seed).info["label_correlation"][0][1] for p in (0.0, 0.5, 0.9, 1.0)]
        assert measured == sorted(measured) and len(set(measured)) == 4
        assert abs(measured[0]) < 0.15
        assert measured[-1] > 0.95
    assert built("mmoe").info["correlation"] == [[1.0, 0.5], [0.5, 1.0]]
    assert built("mmoe").task_names == ["y1", "y2"]


# --- scales --------------------------------------------------------------------------------------------


def test_scales_targets_keep_their_scale() -> None:
    data = built("scales")
    small, large = data.train.y["s1"], data.train.y["s2"]
    assert small.shape == (1000, 10) and data.input_dim == 50
    assert float(small.abs().max()) <= 1.0 and float(large.abs().max()) <= 100.0
    assert 30.0 < float(large.std() / small.std()) < 300.0
    three = make_suite("scales", sigmas=[1, 10, 100], dim=8, out_dim=3).build(0)
    assert three.task_names == ["s1", "s2", "s3"] and three.input_dim == 8
    assert "σ = 10" in three.task("s2").description


# --- digits / multidigit -------------------------------------------------------------------------------


def test_stratified_split_is_a_partition() -> None:
    labels = torch.cat([torch.zeros(50), torch.ones(30), torch.full((20,), 2.0)]).long()
    train, val, test = stratified_split(labels, make_generator(0))
    everything = torch.cat([train, val, test])
    assert sorted(everything.tolist()) == list(range(100))
    assert torch.bincount(labels[train]).tolist() == [30, 18, 12]
    assert torch.bincount(labels[val]).tolist() == [10, 6, 4]
    assert not torch.equal(train, stratified_split(labels, make_generator(1))[0])


def test_digits_labels_and_split() -> None:
    data = built("digits")
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert float(data.train.x.min()) >= 0.0 and float(data.train.x.max()) <= 1.0
    for split in splits(data).values():
        digit = split.y["digit"]
        assert torch.equal(split.y["parity"], digit % 2)
        assert torch.equal(split.y["ge5"], (digit >= 5).long())
        assert torch.equal(split.y["prime"], torch.isin(digit, torch.tensor([2, 3, 5, 7])).long())
        assert torch.equal(split.y["loop"], torch.isin(digit, torch.tensor([0, 4, 6, 8, 9])).long())
    counts = torch.bincount(data.train.y["digit"], minlength=10).float()
    total = torch.bincount(load_digit_images()[1], minlength=10).float()
    assert torch.allclose(counts / total, torch.full((10,), 0.6), atol=0.01)
    # The 1,797 source images are all distinct, so a shared row would mean a leak.
    train_rows = {row.numpy().tobytes() for row in data.train.x}
    assert not any(row.numpy().tobytes() in train_rows for row in data.test.x)


def test_multidigit_pairs_come_from_disjoint_digits() -> None:
    data = built("multidigit")
    pixels, digits = load_digit_images()
    label_of = {row.float().numpy().tobytes(): int(d) for row, d in zip(pixels, digits)}

    def halves(split):
        images = split.x.reshape(-1, 8, 16)
        left = [img[:, :8].reshape(64).numpy().tobytes() for img in images]
        right = [img[:, 8:].reshape(64).numpy().tobytes() for img in images]
        return left, right

    assert data.input_dim == 128 and len(data.train) == 3000 and len(data.test) == 1000
    seen = {}
    for name, split in splits(data).items():
        left, right = halves(split)
        assert [label_of[h] for h in left] == split.y["left"].tolist()
        assert [label_of[h] for h in right] == split.y["right"].tolist()
        seen[name] = set(left) | set(right)
    assert not seen["train"] & seen["test"] and not seen["train"] & seen["val"] and not seen["val"] & seen["test"]
    assert len(make_suite("multidigit", n_samples=60).build(0).train) == 60


# --- penguins ------------------------------------------------------------------------------------------


def test_penguins_rows_features_and_standardisation() -> None:
    data = built("penguins")
    assert data.info["n_dropped"] == 11 and data.info["n_rows"] == 333
    assert len(data.train) + len(data.val) + len(data.test) == 333
    assert data.info["features"] == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
    assert data.input_dim == 3
    x = data.train.x.double()
    assert torch.allclose(x.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(0), torch.ones(3, dtype=torch.float64), atol=1e-4)
    mass = data.train.y["body_mass"].double()
    assert mass.mean().item() == pytest.approx(0.0, abs=1e-5) and mass.std().item() == pytest.approx(1.0, abs=1e-4)
    assert 3500 < data.info["body_mass_mean_g"] < 5000
    assert [data.task(t).n_outputs for t in ("species", "sex", "island")] == [3, 2, 3]
    # Gentoo penguins live only on Biscoe: the labels keep that fact.
    gentoo = data.train.y["species"] == 2
    assert bool((data.train.y["island"][gentoo] == 0).all())
