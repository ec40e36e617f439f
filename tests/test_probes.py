"""During-training probes (gradient cosines, norms, conflict, weights) and TAG inter-task affinity
(Fifty et al. 2021): records, cost when off, the lookahead leaving no trace, and known answers on
`planted` and `mmoe`."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import mtl_core.training.trainer as trainer_module
from mtl_core.analysis.grouping import best_grouping
from mtl_core.balancing import make_method
from mtl_core.config import TrainConfig
from mtl_core.training.events import Callback, ProbeEvent, StepEvent
from mtl_core.training.probes import PROBE_FACTORIES, GradientProbe, ProbeContext, build_probes
from mtl_core.training.tag import (
    DEFAULT_TAG_INTERVAL,
    TagProbe,
    affinity_matrix,
    lookahead_parameters,
    raw_gradient_scale,
)
from mtl_core.training.trainer import Trainer, train

SMALL_NET = {"hidden": 16, "depth": 1}


class Recorder(Callback):
    """Keeps every probe and step event of a run."""

    def __init__(self) -> None:
        self.probes: list[ProbeEvent] = []
        self.steps: list[StepEvent] = []

    def on_probe(self, event: ProbeEvent) -> None:
        self.probes.append(event)

    def on_step(self, event: StepEvent) -> None:
        self.steps.append(event)

    def of(self, kind: str) -> list[ProbeEvent]:
        return [e for e in self.probes if e.kind == kind]


def planted_config(**changes: object) -> TrainConfig:
    values: dict = {
        "suite": "planted",
        "suite_options": {"n_samples": 200, "dim": 8},
        "strategy": "hard",
        "strategy_options": SMALL_NET,
        "epochs": 2,
        "batch_size": 32,
        "lr": 3e-3,
        "seed": 0,
    }
    values.update(changes)
    return TrainConfig.from_dict(values)


def _without_timings(result: dict) -> dict:
    out = {k: v for k, v in result.items() if k not in ("timings", "config")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in result["history"]]
    return out


# --- gradient probes ---------------------------------------------------------------------------------


def test_probes_off_record_nothing_and_compute_no_jacobian(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = trainer_module.task_jacobian

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "task_jacobian", counting)
    off = Recorder()
    trainer = Trainer(planted_config(probe_interval=0), [off])
    assert trainer.probes == []
    trainer.run()
    assert off.probes == [] and calls == []
    on = Recorder()
    result = train(planted_config(probe_interval=3), [on])
    due_steps = result["steps"] // 3
    assert len(calls) == due_steps  # ew never forms G: only the probe steps pay for it
    assert [e.step for e in on.of("cosine")] == [3 * k for k in range(1, due_steps + 1)]


def test_gradient_probe_records_are_well_formed() -> None:
    rec = Recorder()
    train(planted_config(probe_interval=2, suite_options={"n_samples": 200, "dim": 8, "n_tasks": 4}), [rec])
    cosines, norms, conflicts = rec.of("cosine"), rec.of("norms"), rec.of("conflict")
    assert len(cosines) == len(norms) == len(conflicts) > 0
    for event in cosines:
        cos = torch.tensor(event.value)
        assert cos.shape == (4, 4)
        assert torch.allclose(cos, cos.T, atol=1e-12)
        assert torch.allclose(torch.diagonal(cos), torch.ones(4, dtype=cos.dtype))
        assert bool((cos.abs() <= 1).all())
    for event in norms:
        assert len(event.value) == 4 and all(math.isfinite(v) and v >= 0 for v in event.value)
    for cos_event, conflict_event in zip(cosines, conflicts):
        (fraction,) = conflict_event.value
        assert 0.0 <= fraction <= 1.0
        cos = torch.tensor(cos_event.value)
        assert fraction == pytest.approx(float((torch.triu(cos, 1) < 0).sum()) / 6)


def test_gradient_probe_matches_a_direct_computation() -> None:
    grads = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    ctx = ProbeContext(1, 1, torch.ones(3), grads, None, (torch.zeros(1), {}, {}))
    events = {e.kind: e.value for e in GradientProbe(1).measure(ctx)}
    s = 1 / math.sqrt(2)
    assert torch.allclose(torch.tensor(events["cosine"]), torch.tensor([[1.0, -s, 0.0], [-s, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert events["norms"] == pytest.approx([1.0, math.sqrt(2), 0.0])
    assert events["conflict"] == pytest.approx([1 / 3])


def test_weights_are_recorded_for_a_loss_weighting_method() -> None:
    rec = Recorder()
    train(planted_config(method="uw", probe_interval=4), [rec])
    weights = rec.of("weights")
    assert len(weights) > 0 and [e.step for e in weights] == [e.step for e in rec.of("cosine")]
    by_step = {e.step: e for e in rec.steps}
    for event in weights:
        assert len(event.value) == 6 and all(math.isfinite(v) and v > 0 for v in event.value)
        assert event.value == pytest.approx(list(by_step[event.step].weights.values()))


def test_mmoe_gradient_cosine_falls_as_task_correlation_falls() -> None:
    """Ma et al. (2018)'s p is the cosine of the tasks' weight vectors: the shared-trunk gradients
    of the two tasks align less when p is low (mean over the run's probes, averaged over seeds)."""

    def mean_cosine(p: float, seed: int) -> float:
        rec = Recorder()
        config = TrainConfig.from_dict({
            "suite": "mmoe", "suite_options": {"p": p, "n_samples": 300, "dim": 8}, "strategy_options": SMALL_NET,
            "epochs": 6, "batch_size": 32, "lr": 1e-2, "seed": seed, "probe_interval": 2,
        })
        train(config, [rec])
        values = [e.value[0][1] for e in rec.of("cosine")]
        return sum(values) / len(values)

    seeds = (0, 1, 2)
    high = sum(mean_cosine(0.9, s) for s in seeds) / len(seeds)
    low = sum(mean_cosine(0.1, s) for s in seeds) / len(seeds)
    assert high > low + 0.1, (high, low)


# --- TAG -----------------------------------------------------------------------------------------------


def test_tag_probe_is_registered_and_built_only_when_asked() -> None:
    assert "tag" in PROBE_FACTORIES
    assert not any(isinstance(p, TagProbe) for p in build_probes(planted_config().validated()))
    probes = build_probes(planted_config(tag=True).validated())
    (tag,) = [p for p in probes if isinstance(p, TagProbe)]
    assert tag.interval == DEFAULT_TAG_INTERVAL and tag.needs_grads
    with pytest.raises(ValueError, match="`interval` must be a positive integer"):
        TagProbe(0)


@pytest.mark.parametrize(
    ("method", "optimizer", "probe_interval"),
    [("ew", "adam", 0), ("uw", "sgd", 2), ("pcgrad", "adamw", 0), ("db_mtl", "adam", 3)],
)
def test_tag_lookahead_leaves_no_trace(method: str, optimizer: str, probe_interval: int) -> None:
    """The same run with TAG on and off: identical losses, metrics and trained model."""
    config = planted_config(method=method, optimizer=optimizer, probe_interval=probe_interval, weight_decay=1e-3)
    plain = Trainer(config)
    plain_result = plain.run()
    rec = Recorder()
    with_tag = Trainer(config.replace(tag=True), [rec])
    assert any(isinstance(p, TagProbe) for p in with_tag.probes)
    tag_result = with_tag.run()
    assert len(rec.of("affinity")) == config.epochs
    assert _without_timings(tag_result) == _without_timings(plain_result)
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), with_tag.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_affinity_records_per_epoch_and_per_lookahead_step() -> None:
    rec = Recorder()
    config = planted_config(tag=True, epochs=3)
    result = train(config, [rec])
    per_epoch, per_step = rec.of("affinity"), rec.of("affinity_step")
    assert [e.epoch for e in per_epoch] == [1, 2, 3]  # the last epoch's mean too
    steps_per_epoch = result["steps"] // 3
    assert [e.step for e in per_epoch] == [steps_per_epoch * k for k in (1, 2, 3)]
    assert [e.step for e in per_step] == list(range(DEFAULT_TAG_INTERVAL, result["steps"] + 1, DEFAULT_TAG_INTERVAL))
    assert sum(e.extra["lookahead_steps"] for e in per_epoch) == len(per_step)
    for event in per_epoch + per_step:
        matrix = torch.tensor(event.value)
        assert matrix.shape == (6, 6) and bool(torch.isfinite(matrix).all())
    for epoch_event in per_epoch:
        rows = [torch.tensor(e.value) for e in per_step if e.epoch == epoch_event.epoch]
        assert torch.allclose(torch.stack(rows).mean(0), torch.tensor(epoch_event.value), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_tag_affinity_recovers_planted_groups(seed: int) -> None:
    """`planted` with 2 groups of 3 (p_in 0.9, p_out 0): the best grouping into at most 2 groups
    by the run's mean TAG affinity (mtl_core.analysis.grouping, exhaustive) is {t1, t3, t5} | {t2, t4, t6}."""
    rec = Recorder()
    config = TrainConfig.from_dict({
        "suite": "planted",
        "suite_options": {"n_tasks": 6, "n_groups": 2, "p_in": 0.9, "p_out": 0.0, "n_samples": 300, "dim": 8},
        "strategy": "hard", "strategy_options": {"hidden": 32, "depth": 1},
        "epochs": 10, "batch_size": 64, "lr": 1e-2, "seed": seed, "tag": True,
    })
    result = train(config, [rec])
    affinity = torch.tensor([e.value for e in rec.of("affinity")]).mean(0)  # [source i][target j]
    names = [t["name"] for t in result["tasks"]]
    planted = {frozenset(group) for group in result["planted_groups"]}
    assert planted == {frozenset({"t1", "t3", "t5"}), frozenset({"t2", "t4", "t6"})}
    # best_grouping takes scores[a][b] = benefit of b to a, i.e. Z_{b→a}: the transposed affinity.
    grouping = best_grouping(affinity.T.numpy(), k=2, tasks=names)
    assert {frozenset(group) for group in grouping.groups} == planted


def _same(a: object, b: object) -> bool:
    """Deep equality of nested optimiser states (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize(
    ("optimizer_class", "options"),
    [
        (torch.optim.Adam, {"lr": 1e-2}),
        (torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
        (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
        (torch.optim.SGD, {"lr": 0.1}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "maximize": True}),
        (torch.optim.RMSprop, {"lr": 1e-2, "momentum": 0.5}),  # no closed form: the shadow-optimiser path
    ],
)
@pytest.mark.parametrize("warm_steps", [0, 3])
def test_lookahead_parameters_match_a_real_optimiser_step_and_touch_nothing(
    optimizer_class: type[torch.optim.Optimizer], options: dict, warm_steps: int
) -> None:
    generator = torch.Generator().manual_seed(warm_steps)
    shared = [torch.nn.Parameter(torch.randn(3, 4, generator=generator)), torch.nn.Parameter(torch.randn(5, generator=generator))]
    other = torch.nn.Parameter(torch.randn(2, generator=generator))  # optimised too, but not shared
    optimizer = optimizer_class([*shared, other], **options)
    for _ in range(warm_steps):
        for p in (*shared, other):
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    for p in (*shared, other):
        p.grad = torch.randn(p.shape, generator=generator)
    grads = torch.randn(4, 17, generator=generator)
    before = copy.deepcopy((shared, other, optimizer))
    grads_before = [p.grad.clone() for p in (*shared, other)]

    stacked = lookahead_parameters(optimizer, shared, grads)

    assert [tuple(t.shape) for t in stacked] == [(4, 3, 4), (4, 5)]
    for p, q, g in zip((*shared, other), (*before[0], before[1]), grads_before):
        assert torch.equal(p, q) and torch.equal(p.grad, g)
    assert _same(optimizer.state_dict(), before[2].state_dict())
    for i in range(4):
        reference_shared, reference_other, reference = copy.deepcopy(before)
        reference_other.grad = None  # the lookahead moves the shared parameters only
        reference_shared[0].grad = grads[i, :12].reshape(3, 4).clone()
        reference_shared[1].grad = grads[i, 12:].clone()
        reference.step()
        for got, want in zip(stacked, reference_shared):
            assert torch.allclose(got[i], want.detach(), rtol=0, atol=1e-6)


def test_affinity_matrix_formula_and_missing_labels() -> None:
    base = torch.tensor([2.0, 4.0, 0.0])
    after = torch.tensor([[1.0, 4.0, 0.5], [2.0, 2.0, 0.5], [3.0, 5.0, 0.5]])
    z = affinity_matrix(base, after)
    assert torch.allclose(z[:, :2], torch.tensor([[0.5, 0.0], [0.0, 0.5], [-0.5, -0.25]], dtype=torch.float64))
    assert bool(torch.isnan(z[:, 2]).all())  # no labelled row of that task in the batch
    with pytest.raises(ValueError, match="`lookahead` must be a"):
        affinity_matrix(base, after[:2])


def test_raw_gradient_scale_undoes_the_loss_transform() -> None:
    losses = torch.tensor([0.5, 2.0])
    assert torch.equal(raw_gradient_scale(make_method("ew", 2), losses), torch.ones(2))
    # DB-MTL differentiates log L: d log L / dL = 1 / L.
    assert torch.allclose(raw_gradient_scale(make_method("db_mtl", 2), losses), 1 / losses, rtol=1e-5)


def test_sgd_lookahead_is_the_papers_step_with_the_groups_learning_rate() -> None:
    """θ'ₛ|i = θₛ − η∇Lᵢ (Fifty et al. 2021, Eq. 1): no momentum, no second moments, nothing touched."""
    from mtl_core.training.tag import LOOKAHEADS, sgd_lookahead_parameters

    generator = torch.Generator().manual_seed(0)
    shared = [torch.nn.Parameter(torch.randn(2, 3, generator=generator)), torch.nn.Parameter(torch.randn(4, generator=generator))]
    optimizer = torch.optim.Adam([{"params": [shared[0]], "lr": 0.1}, {"params": [shared[1]], "lr": 0.01}])
    for p in shared:
        p.grad = torch.randn(p.shape, generator=generator)
    optimizer.step()  # a warm state that the lookahead must ignore
    grads = torch.randn(3, 10, generator=generator)
    before = [p.detach().clone() for p in shared]
    stacked = sgd_lookahead_parameters(optimizer, shared, grads)
    assert torch.allclose(stacked[0], before[0].unsqueeze(0) - 0.1 * grads[:, :6].reshape(3, 2, 3))
    assert torch.allclose(stacked[1], before[1].unsqueeze(0) - 0.01 * grads[:, 6:])
    assert all(torch.equal(p, q) for p, q in zip(shared, before))
    assert set(LOOKAHEADS) == {"sgd", "optimizer"}
    with pytest.raises(ValueError, match="`grads` must be a"):
        sgd_lookahead_parameters(optimizer, shared, grads[:, :5])
    with pytest.raises(ValueError, match="`lookahead` must be one of"):
        TagProbe(1, lookahead="nesterov")


def test_tag_lookahead_setting_is_validated_and_reaches_the_probe() -> None:
    from mtl_core.errors import ConfigError

    (tag,) = [p for p in build_probes(planted_config(tag=True).validated()) if isinstance(p, TagProbe)]
    assert tag.lookahead == "sgd"
    config = planted_config(tag=True, tag_lookahead="optimizer").validated()
    (tag,) = [p for p in build_probes(config) if isinstance(p, TagProbe)]
    assert tag.lookahead == "optimizer"
    with pytest.raises(ConfigError, match="`tag_lookahead` must be one of sgd, optimizer, got 'adam'"):
        planted_config(tag_lookahead="adam").validated()
