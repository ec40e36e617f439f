"""TrainConfig and Option validation: one place, messages that name the field."""

from __future__ import annotations

import json

import pytest

from mtl_core.config import TrainConfig, load_config_file
from mtl_core.errors import ConfigError
from mtl_core.options import Option, resolve_options


def test_defaults_validate_and_fill_options() -> None:
    cfg = TrainConfig().validated()
    assert cfg.suite == "planted"
    assert cfg.suite_options["n_tasks"] == 6
    assert "hidden" in cfg.strategy_options


def test_round_trip_through_json() -> None:
    cfg = TrainConfig(suite="mmoe", suite_options={"p": 0.3}, method="ew", epochs=3, seed=4).validated()
    again = TrainConfig.from_dict(json.loads(cfg.to_json())).validated()
    assert again == cfg


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"suite": "nope"}, "suite"),
        ({"strategy": "nope"}, "strategy"),
        ({"method": "nope"}, "method"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"device": "tpu"}, "device"),
        ({"seed": -3}, "seed"),
        ({"probe_interval": -1}, "probe_interval"),
        ({"tasks": ("t1", "zz")}, "tasks"),
        ({"tasks": ()}, "tasks"),
        ({"tasks": ("t1", "t1")}, "tasks"),
        ({"suite_options": {"p_in": 2.0}}, "suite_options.p_in"),
        ({"suite_options": {"bogus": 1}}, "suite_options.bogus"),
        ({"strategy_options": {"hidden": 0}}, "strategy_options.hidden"),
        ({"jacobian_mode": "magic"}, "jacobian_mode"),
        ({"patience": 0}, "patience"),
        ({"patience": -2}, "patience"),
        ({"patience": True}, "patience"),
        ({"patience": 2.5}, "patience"),
        ({"patience": "5"}, "patience"),
    ],
)
def test_bad_values_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes).validated()
    assert info.value.field == field
    message = str(info.value)
    assert f"`{field}`" in message and "must be" in message and "got" in message


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match="`epochz` must be a known setting"):
        TrainConfig.from_dict({"epochz": 3})


def test_tasks_from_comma_string() -> None:
    cfg = TrainConfig.from_dict({"tasks": "t1, t2"})
    assert cfg.tasks == ("t1", "t2")


def test_option_coercion_from_strings() -> None:
    specs = [
        Option("n", "int", 3, low=1),
        Option("x", "float", 0.5, low=0, high=1),
        Option("flag", "bool", False),
        Option("values", "floats", (1.0,)),
        Option("who", "str_or_none", None),
    ]
    out = resolve_options(specs, {"n": "4", "x": "0.25", "flag": "yes", "values": "1,2.5", "who": "none"}, "opts")
    assert out == {"n": 4, "x": 0.25, "flag": True, "values": (1.0, 2.5), "who": None}
    with pytest.raises(ConfigError, match=r"`opts.n` must be an integer ≥ 1, got '0'"):
        resolve_options(specs, {"n": "0"}, "opts")
    with pytest.raises(ConfigError, match="`opts.x`"):
        resolve_options(specs, {"x": "nan"}, "opts")


def test_config_file_errors(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="`config` must be valid YAML or JSON, got 'a syntax error at line"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="an existing file"):
        load_config_file(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="a mapping of settings"):
        load_config_file(listy)


def test_patience_is_off_by_default_and_round_trips(tmp_path) -> None:
    assert TrainConfig().validated().patience is None
    with pytest.raises(ConfigError, match=r"^`patience` must be null \(off\) or an integer ≥ 1, got 0$"):
        TrainConfig(patience=0).validated()
    cfg = TrainConfig(epochs=50, patience=4).validated()
    assert cfg.to_dict()["patience"] == 4
    assert TrainConfig.from_dict(json.loads(cfg.to_json())).validated() == cfg
    config_file = tmp_path / "config.yaml"
    config_file.write_text("epochs: 50\npatience: 4\n")
    assert TrainConfig.from_dict(load_config_file(config_file)).validated() == cfg
    config_file.write_text("patience: null\n")
    assert TrainConfig.from_dict(load_config_file(config_file)).patience is None


def test_a_validated_config_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    check = TrainConfig._check
    monkeypatch.setattr(TrainConfig, "_check", lambda self: calls.append(1) or check(self))
    cfg = TrainConfig(epochs=3).validated()
    assert calls == [1]
    assert cfg.validated() is cfg and cfg.validated().validated() is cfg
    assert calls == [1]
    # A changed copy is a new config: checked again, and a bad change is caught.
    changed = cfg.replace(seed=4)
    assert changed.validated().seed == 4 and calls == [1, 1]
    with pytest.raises(ConfigError, match="`epochs`"):
        cfg.replace(epochs=0).validated()
    # The mark is not a setting: not written, not read, not compared.
    assert "_checked" not in cfg.to_dict()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="`_checked`"):
        TrainConfig.from_dict({"_checked": True})
    assert not TrainConfig.from_dict(cfg.to_dict())._checked


def test_probe_interval_default_is_one_number_everywhere() -> None:
    """The CLI, the Train page's form and studies probe at TrainConfig's default (issue 13: 10 in
    the CLI against 5 in the app)."""
    import sys
    from pathlib import Path

    from mtl_core.cli.common import add_config_arguments
    from mtl_core.studies.study import StudySpec

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    from services.runs import TrainForm

    default = TrainConfig.probe_interval
    assert TrainForm.probe_interval == default and StudySpec.probe_interval == default
    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    probe_flag = next(action for action in parser._actions if "--probe-interval" in action.option_strings)
    assert f"(0 = off; default {default})" in probe_flag.help
