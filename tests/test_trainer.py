"""The trainer over every suite × strategy, determinism, events, and the Jacobian paths."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import TrainConfig
from mtl_core.strategies import STRATEGIES
from mtl_core.suites import SUITES
from mtl_core.training.events import Callback, EpochEvent, StepEvent
from mtl_core.training.jacobian import task_jacobian
from mtl_core.training.trainer import Trainer, train

# Small but real settings per suite so the grid (suites × strategies) stays fast.
SMALL = {
    "planted": {"n_samples": 200, "dim": 8, "n_tasks": 3, "n_groups": 1},
    "mmoe": {"n_samples": 200, "dim": 8},
    "scales": {"n_samples": 200, "dim": 10, "out_dim": 3},
    "multidigit": {"n_samples": 300},
}
SMALL_NET = {"hidden": 16, "depth": 1}


def small_config(suite: str, strategy: str = "hard", **changes: object) -> TrainConfig:
    values: dict = {
        "suite": suite,
        "suite_options": SMALL.get(suite, {}),
        "strategy": strategy,
        "strategy_options": SMALL_NET,
        "epochs": 2,
        "batch_size": 64,
        "lr": 3e-3,
        "seed": 0,
    }
    values.update(changes)
    return TrainConfig.from_dict(values)


def _without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def _finite(result: dict) -> bool:
    for record in result["history"]:
        for key in ("train_loss", "val_loss", "val_metric"):
            if not all(math.isfinite(v) for v in record[key].values()):
                return False
    return all(math.isfinite(m["value"]) for m in result["final_metrics"].values())


@pytest.mark.parametrize("strategy", STRATEGIES.names())
@pytest.mark.parametrize("suite", SUITES.names())
def test_every_suite_and_strategy_trains_and_is_deterministic(suite: str, strategy: str) -> None:
    cfg = small_config(suite, strategy)
    first = train(cfg)
    assert first["status"] == "done"
    assert len(first["history"]) == 2
    assert _finite(first)
    task_names = [t["name"] for t in first["tasks"]]
    assert set(first["final_metrics"]) == set(task_names)
    second = train(cfg)
    assert _without_timings(first["history"]) == _without_timings(second["history"])
    assert first["final_metrics"] == second["final_metrics"]


def test_different_seeds_differ() -> None:
    a = train(small_config("planted", seed=0))
    b = train(small_config("planted", seed=1))
    assert a["final_metrics"] != b["final_metrics"]


def test_run_record_contract() -> None:
    result = train(small_config("planted"))
    for key in ("config", "tasks", "history", "final_metrics", "timings", "planted_groups"):
        assert key in result
    record = result["history"][0]
    assert set(record["train_loss"]) == set(record["val_loss"]) == set(record["val_metric"])
    for metric in result["final_metrics"].values():
        assert set(metric) >= {"metric", "value", "higher_is_better"}
    # the config round-trips
    assert TrainConfig.from_dict(result["config"]).validated() == small_config("planted").validated()


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: list[StepEvent] = []
        self.epochs: list[EpochEvent] = []
        self.started: dict | None = None
        self.ended: dict | None = None
        self.stop_after = stop_after

    def on_run_start(self, info: dict) -> None:
        self.started = info

    def on_step(self, event: StepEvent) -> None:
        self.steps.append(event)

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.epochs.append(event)

    def on_run_end(self, result: dict) -> None:
        self.ended = result

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def test_events_are_emitted_in_order() -> None:
    recorder = Recorder()
    result = train(small_config("planted"), [recorder])
    assert recorder.started is not None and recorder.ended is result
    assert len(recorder.steps) == recorder.started["total_steps"]
    assert [e.step for e in recorder.steps] == list(range(1, len(recorder.steps) + 1))
    assert [e.epoch for e in recorder.epochs] == [1, 2]
    assert recorder.steps[0].weights is not None  # ew records its (equal) weights


def test_should_stop_cancels_cleanly() -> None:
    recorder = Recorder(stop_after=3)
    result = train(small_config("planted", epochs=5), [recorder])
    assert result["status"] == "cancelled"
    assert len(recorder.steps) == 3
    assert all(math.isfinite(m["value"]) for m in result["final_metrics"].values())


def test_cancelled_run_records_its_stop_reason() -> None:
    result = train(small_config("planted", epochs=5, patience=2), [Recorder(stop_after=3)])
    assert result["stop_reason"] == "cancelled" and result["stopped_epoch"] == 0  # no epoch finished


# --- early stopping ----------------------------------------------------------------------------------------
def plateau_config(**changes: object) -> TrainConfig:
    """A tiny run that overfits within a few epochs (60 rows, lr 0.05): its validation loss stops improving."""
    values: dict = {"suite_options": {"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6}, "epochs": 100,
                    "patience": 3, "batch_size": 32, "lr": 0.05}
    values.update(changes)
    return small_config("planted", **values)


def test_early_stopping_stops_a_plateauing_run_by_the_validation_loss() -> None:
    recorder = Recorder()
    result = train(plateau_config(), [recorder])
    assert result["status"] == "done" and result["stop_reason"] == "patience"
    stopped, best = result["stopped_epoch"], result["best_epoch"]
    assert stopped < 100 and stopped == best + 3 == len(result["history"])
    # the criterion: the sum of the validation losses, lowest at best_epoch, not lower in the 3 epochs after it
    scores = [sum(record["val_loss"].values()) for record in result["history"]]
    assert min(scores) == scores[best - 1] and all(score >= scores[best - 1] for score in scores[best:])
    # events: one per epoch trained; the step budget is the maximum, the steps taken are fewer
    assert [e.epoch for e in recorder.epochs] == list(range(1, stopped + 1))
    assert all(e.epochs == 100 for e in recorder.epochs)
    assert len(recorder.steps) == result["steps"] < recorder.started["total_steps"]
    assert recorder.ended["stop_reason"] == "patience"
    # each task's best validation metric is over the epochs trained (MSE: lower is better)
    for task, value in result["best_val_metric"].items():
        assert value == min(record["val_metric"][task] for record in result["history"])


def test_without_patience_every_epoch_is_trained() -> None:
    stopped = train(plateau_config())
    assert stopped["stop_reason"] == "patience"
    epochs = stopped["stopped_epoch"] + 2  # past the point where patience stopped it
    full = train(plateau_config(epochs=epochs, patience=None))
    assert full["stop_reason"] == "max_epochs" and full["stopped_epoch"] == epochs == len(full["history"])
    # stopping early changes nothing before the stop: the same epochs, the same numbers
    assert _without_timings(full["history"][: stopped["stopped_epoch"]]) == _without_timings(stopped["history"])


def test_an_early_stop_is_recorded_in_the_store_as_finished() -> None:
    from mtl_core.runs.store import RunStore
    from mtl_core.runs.workers import execute_run, submit

    (run_id,) = submit([plateau_config()], start=False)
    store = RunStore.at_home()
    assert execute_run(store, store.claim_next()) == "done"
    info = store.get_run(run_id).info
    assert info["stop_reason"] == "patience" and info["stopped_epoch"] < 100
    assert store.last_step(run_id) == info["steps"] < info["total_steps"]
    assert store.get_result(run_id)["stopped_epoch"] == info["stopped_epoch"]


def test_digits_single_task_reaches_sane_accuracy() -> None:
    cfg = TrainConfig.from_dict(
        {"suite": "digits", "tasks": ["digit"], "strategy": "single", "epochs": 30, "lr": 3e-3, "seed": 0}
    )
    result = train(cfg)
    assert result["final_metrics"]["digit"]["value"] > 0.9


def test_bad_lr_reports_nan_clearly() -> None:
    from mtl_core.training.trainer import TrainingError

    cfg = small_config("scales", "hard", lr=10.0, optimizer="sgd", epochs=3)
    cfg = cfg.replace(suite_options={**SMALL["scales"], "sigmas": [100.0, 1000.0]})
    with pytest.raises(TrainingError, match="became NaN/inf"):
        train(cfg)


def test_jacobian_modes_agree_with_autograd_per_task() -> None:
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh())
    heads = [torch.nn.Linear(7, 1) for _ in range(3)]
    x = torch.randn(11, 5)
    z = trunk(x)
    losses = torch.stack([(h(z) ** 2).mean() * (i + 1) for i, h in enumerate(heads)])
    shared = list(trunk.parameters())
    own = [list(h.parameters()) for h in heads]
    loop = task_jacobian(losses, shared, own, mode="loop", retain_graph=True)
    batched = task_jacobian(losses, shared, own, mode="batched", retain_graph=True)
    assert loop.shared.shape == (3, sum(p.numel() for p in shared))
    torch.testing.assert_close(loop.shared, batched.shared)
    for i in range(3):
        expected = torch.autograd.grad(losses[i], shared + own[i], retain_graph=True)
        torch.testing.assert_close(loop.shared[i], torch.cat([g.reshape(-1) for g in expected[: len(shared)]]))
        for got_loop, got_batched, want in zip(loop.own[i], batched.own[i], expected[len(shared):], strict=True):
            torch.testing.assert_close(got_loop, want)
            torch.testing.assert_close(got_batched, want)


@pytest.mark.parametrize("mode", ["loop", "batched", "representation"])
def test_gradient_method_paths_give_the_same_run(mode: str) -> None:
    base = train(small_config("planted", method="pcgrad", jacobian_mode="loop"))
    other = train(small_config("planted", method="pcgrad", jacobian_mode=mode))
    for task, metric in base["final_metrics"].items():
        assert other["final_metrics"][task]["value"] == pytest.approx(metric["value"], rel=1e-4, abs=1e-5)


def test_gradient_method_applies_the_aggregated_direction() -> None:
    """One step of a gradient method: shared grads equal the method applied to the per-task
    Jacobian, heads get their own task's gradient."""
    from mtl_core.balancing import combine

    trainer = Trainer(small_config("planted", method="mgda"))
    data = trainer.data.train
    x, y, m = data.x[:32], {k: v[:32] for k, v in data.y.items()}, {k: v[:32] for k, v in data.masks.items()}
    from mtl_core.training.trainer import task_losses

    losses = task_losses(trainer.model(x), y, m, trainer.tasks)
    grads = task_jacobian(losses, trainer.shared, trainer.own, mode="loop")
    expected = combine("mgda", grads.shared)
    lr_before = [g["lr"] for g in trainer.optimizer.param_groups]
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0  # keep parameters fixed so we can read the gradients
    trainer._train_step(x, y, m, epoch=1)
    got = torch.cat([p.grad.reshape(-1) for p in trainer.shared])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    for task_params, own in zip(trainer.own, grads.own, strict=True):
        for p, g in zip(task_params, own, strict=True):
            torch.testing.assert_close(p.grad, g)
    del lr_before
