"""Training length in optimizer steps (:mod:`mtl_core.training.length`) and the ``train`` command's
default epochs (issue 13, item 7: a small data set must not default to a handful of steps)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.training.length import (
    DEFAULT_STEPS,
    MAX_DEFAULT_EPOCHS,
    epochs_for_steps,
    steps_per_epoch,
    total_steps,
    training_rows,
)
from mtl_core.training.trainer import Trainer, load_data

TINY_OPTIONS = {"n_samples": 60, "dim": 6, "n_tasks": 2, "n_groups": 1}
TINY = ["--suite", "planted", *[a for k, v in TINY_OPTIONS.items() for a in ("--suite-opt", f"{k}={v}")],
        "--strategy-opt", "hidden=8", "--strategy-opt", "depth=1", "--probe-interval", "0", "--quiet"]


# --- the conversion ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 7, 31, 32, 33, 107, 178, 1000, 54_321])
@pytest.mark.parametrize("batch", [1, 8, 32, 64, 200])
@pytest.mark.parametrize("steps", [1, 100, 300])
def test_epochs_for_steps_is_the_fewest_epochs_that_reach_the_steps(rows: int, batch: int, steps: int) -> None:
    epochs = epochs_for_steps(rows, batch, steps, max_epochs=10**9)
    per_epoch = math.ceil(rows / batch)
    assert steps_per_epoch(rows, batch) == per_epoch
    assert total_steps(rows, batch, epochs) == per_epoch * epochs >= steps
    assert epochs == 1 or per_epoch * (epochs - 1) < steps


def test_epochs_for_steps_is_capped_and_examples() -> None:
    assert epochs_for_steps(107, 32) == 75  # a 178-row CSV's training split: 4 steps per epoch
    assert epochs_for_steps(199, 32) == 43  # planted's default training rows on the Train page
    assert epochs_for_steps(5, 32) == DEFAULT_STEPS  # one step per epoch
    assert epochs_for_steps(1, 1, steps=10**6) == MAX_DEFAULT_EPOCHS
    assert epochs_for_steps(1, 1, steps=10**6, max_epochs=30) == 30
    assert epochs_for_steps(10**6, 1) == 1


@pytest.mark.parametrize(("call", "field", "got"), [
    (lambda: steps_per_epoch(0, 32), "train_rows", 0),
    (lambda: steps_per_epoch(10, 0), "batch_size", 0),
    (lambda: steps_per_epoch(10, 2.5), "batch_size", 2.5),
    (lambda: epochs_for_steps(10, 2, steps=0), "steps", 0),
    (lambda: epochs_for_steps(10, 2, max_epochs=True), "max_epochs", True),
    (lambda: total_steps(10, 2, -1), "epochs", -1),
])
def test_bad_arguments_name_the_field(call, field: str, got: object) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.field == field and info.value.got == got


def test_training_rows_are_the_rows_the_trainer_steps_over() -> None:
    for tasks in (None, ("t1",)):
        options = {"n_samples": 90, "dim": 6, "n_tasks": 3, "label_share": 0.3}
        config = TrainConfig(suite="planted", suite_options=options, tasks=tasks, epochs=1, batch_size=16,
                             probe_interval=0, strategy_options={"hidden": 8, "depth": 1})
        rows = training_rows("planted", options, tasks)
        assert rows == len(load_data(config.validated()).train)
        assert Trainer(config).run()["steps"] == steps_per_epoch(rows, 16)
    # One task of three, each labelled on 30 % of the rows: fewer rows than all three together.
    assert training_rows("planted", options, ("t1",)) < training_rows("planted", options)


def test_training_rows_refuses_unknown_tasks_and_bad_options() -> None:
    with pytest.raises(ConfigError) as info:
        training_rows("planted", tasks=["t1", "nosuch"])
    assert info.value.field == "tasks" and "t1" in info.value.expected
    with pytest.raises(ConfigError) as info:
        training_rows("planted", {"n_tasks": 0})
    assert info.value.field == "suite_options.n_tasks"


# --- the train command ---------------------------------------------------------------------------------------
def _train(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> dict:
    from mtl_core.cli import main

    out = tmp_path / "run.json"
    assert main(["train", *args, "--out", str(out)]) == 0, capsys.readouterr().err
    return json.loads(out.read_text())


def test_train_without_epochs_trains_the_default_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    record = _train(capsys, tmp_path, *TINY, "--batch-size", "16")
    rows = training_rows("planted", TINY_OPTIONS)
    assert record["config"]["epochs"] == epochs_for_steps(rows, 16) > 10
    assert DEFAULT_STEPS <= record["steps"] < DEFAULT_STEPS + steps_per_epoch(rows, 16)


def test_train_epochs_from_a_flag_or_the_config_file_win(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert _train(capsys, tmp_path, *TINY, "--epochs", "2")["config"]["epochs"] == 2
    config_file = tmp_path / "run.yaml"
    config_file.write_text("epochs: 3\nbatch_size: 32\n", encoding="utf-8")
    assert _train(capsys, tmp_path, "--config", str(config_file), *TINY)["config"]["epochs"] == 3
    config_file.write_text("batch_size: 32\n", encoding="utf-8")  # the file sets no epochs: the steps default
    record = _train(capsys, tmp_path, "--config", str(config_file), *TINY)
    assert record["config"]["epochs"] == epochs_for_steps(training_rows("planted", TINY_OPTIONS), 32)


def test_train_without_epochs_on_bad_settings_says_which_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from mtl_core.cli import main

    code = main(["train", "--suite", "planted", "--suite-opt", "n_tasks=0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "n_tasks" in err and "Traceback" not in err


def test_train_help_documents_the_default() -> None:
    from mtl_core.cli import build_parser

    parser = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    assert f"about {DEFAULT_STEPS} optimizer steps" in " ".join(parser.format_help().split())
