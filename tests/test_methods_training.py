"""Every registered balancing method trains every sharing strategy through the real trainer."""

from __future__ import annotations

import math

import pytest

from mtl_core.balancing import METHODS
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.strategies import STRATEGIES
from mtl_core.training.events import Callback, StepEvent
from mtl_core.training.trainer import train


class WeightRecorder(Callback):
    def __init__(self) -> None:
        self.weights: list[dict[str, float] | None] = []

    def on_step(self, event: StepEvent) -> None:
        self.weights.append(event.weights)


def tiny(method: str, strategy: str) -> TrainConfig:
    return TrainConfig.from_dict({
        "suite": "planted",
        "suite_options": {"n_tasks": 3, "n_groups": 2, "n_samples": 120, "dim": 6},
        "strategy": strategy,
        "strategy_options": {"hidden": 8, "depth": 1},
        "method": method,
        "epochs": 3,
        "batch_size": 64,
        "lr": 3e-3,
        "seed": 0,
    })


@pytest.mark.parametrize("strategy", STRATEGIES.names())
@pytest.mark.parametrize("method", METHODS.names())
def test_method_trains_strategy_without_nan(method: str, strategy: str) -> None:
    method_cls = METHODS.get(method)
    strategy_cls = STRATEGIES.get(strategy)
    if method_cls.level == "representation" and not strategy_cls.has_shared_representation:
        with pytest.raises(ConfigError, match="`strategy` must be a strategy with one shared representation"):
            tiny(method, strategy).validated()
        return
    recorder = WeightRecorder()
    result = train(tiny(method, strategy), [recorder])
    assert result["status"] == "done"
    for record in result["history"]:
        assert all(math.isfinite(v) for v in record["train_loss"].values())
        assert all(math.isfinite(v) for v in record["val_loss"].values())
    assert all(math.isfinite(m["value"]) for m in result["final_metrics"].values())
    if method_cls.kind == "loss":
        # loss-weighting methods record positive weights at every step
        assert len(recorder.weights) == result["steps"]
        for weights in recorder.weights:
            assert weights is not None
            assert all(w > 0 and math.isfinite(w) for w in weights.values())
