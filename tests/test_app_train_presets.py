"""The Train page's "Start from" presets and its data-scaled epochs (issue 13, items 6 and 7).

The presets are data (:mod:`mtl_core.presets`): every preset must validate, the conflict preset must
show what it claims when it is really trained, and choosing it on the page must fill the widgets and
queue exactly its runs. The Epochs box defaults to about ``DEFAULT_STEPS`` optimizer steps on the
chosen data and flags runs under ``MIN_STEPS`` steps.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from app_support import open_page as _open
from app_support import page_texts
from services.catalog import AUTOSTART_ENV  # noqa: E402  (app_support put app/ on the path)

from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError
from mtl_core.presets import PRESETS, get_preset
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.suites.user_csv import refresh_user_suites
from mtl_core.training.events import Callback, ProbeEvent
from mtl_core.training.length import DEFAULT_STEPS, MIN_STEPS, epochs_for_steps, training_rows
from mtl_core.training.trainer import Trainer
from mtl_core.userdata.csv_import import import_csv

CONFLICT = PRESETS["conflict"]


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    refresh_user_suites()
    yield lab_home()
    refresh_user_suites(tmp_path_factory.mktemp("no_suites"))


_texts = page_texts


# --- the presets as data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config_for_each_of_its_methods(name: str) -> None:
    preset = PRESETS[name]
    assert preset.name == name and preset.title and preset.look_for and preset.measured
    configs = [TrainConfig.from_dict(config).validated() for config in preset.configs(seed=2)]
    assert [c.method for c in configs] == list(preset.methods) and len(preset.methods) >= 2
    assert {c.seed for c in configs} == {2}
    steps = math.ceil(training_rows(preset.suite, preset.suite_options, preset.tasks) / preset.batch_size) * preset.epochs
    assert steps >= DEFAULT_STEPS  # a preset is never under-trained


def test_an_unknown_preset_is_refused_with_the_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("nosuch")
    assert info.value.field == "preset" and "conflict" in str(info.value)


class _Cosines(Callback):
    def __init__(self) -> None:
        self.matrices: list[np.ndarray] = []

    def on_probe(self, event: ProbeEvent) -> None:
        if event.kind == "cosine":
            self.matrices.append(np.array(event.value))


@pytest.mark.slow
def test_the_conflict_preset_shows_conflict_and_methods_that_differ() -> None:
    """Trained for real (seed 0, as the page queues it): the lone task's gradient conflicts with the
    group's on average over all probes (the run view's default heatmap), and mgda gives the lone task
    a lower test error than ew at the group's expense (measured over seeds 0–4 in the preset)."""
    lone = "t2"
    results = {}
    for config in CONFLICT.configs(seed=0):
        if config["method"] not in ("ew", "mgda"):
            continue
        cosines = _Cosines()
        result = Trainer(TrainConfig.from_dict(config), [cosines]).run()
        mean = np.mean(cosines.matrices, axis=0)
        order = list(CONFLICT.tasks)
        lone_row = [mean[order.index(lone), order.index(other)] for other in order if other != lone]
        assert max(lone_row) < -0.05, (config["method"], lone_row)
        results[config["method"]] = {task: m["value"] for task, m in result["final_metrics"].items()}
    group = [task for task in CONFLICT.tasks if task != lone]
    assert results["mgda"][lone] < results["ew"][lone] - 0.01, results
    assert np.mean([results["mgda"][t] for t in group]) > np.mean([results["ew"][t] for t in group]) + 0.01, results


# --- the page ------------------------------------------------------------------------------------------------
def test_choosing_the_preset_fills_the_widgets_and_start_queues_its_runs(app_env: Path) -> None:
    at = _open("train")
    assert not at.exception
    assert at.selectbox(key="train_preset").value == ""  # the manual settings until a preset is chosen
    assert "Conflicting tasks — methods differ" in _texts(at)  # the tour points to it
    # Manual changes first: the preset must replace them (options it does not set go back to defaults).
    at.selectbox(key="train_suite").select("digits").run()
    at.selectbox(key="train_preset").select("conflict").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_suite").value == "planted"
    for option, value in CONFLICT.suite_options.items():
        assert at.number_input(key=f"opt_suite_planted_{option}").value == value
    assert at.number_input(key="opt_suite_planted_p_out").value == 0.0  # a default the preset relies on
    assert at.multiselect(key="train_tasks").value == list(CONFLICT.tasks)
    assert at.selectbox(key="train_strategy").value == CONFLICT.strategy
    assert at.number_input(key="opt_strategy_hard_hidden").value == CONFLICT.strategy_options["hidden"]
    assert at.multiselect(key="train_methods").value == list(CONFLICT.methods)
    assert at.number_input(key="train_epochs").value == CONFLICT.epochs
    assert at.number_input(key="train_batch_size").value == CONFLICT.batch_size
    assert at.number_input(key="train_lr").value == pytest.approx(CONFLICT.lr)
    assert CONFLICT.look_for in [i.value for i in at.info]
    assert "≈ **600 optimizer steps** per run (400 training rows / batch 200 = 2 steps per epoch × 300 epochs)" in _texts(at)
    assert not at.error and not at.warning, [*at.error, *at.warning]

    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    runs = sorted(RunStore.at_home(app_env).list_runs(), key=lambda r: r.id)
    assert [r.method for r in runs] == list(CONFLICT.methods)
    expected = {c["method"]: TrainConfig.from_dict(c).validated().to_dict() for c in CONFLICT.configs(seed=0)}
    for run in runs:
        queued = run.config
        want = expected[run.method]
        for field in ("suite", "suite_options", "tasks", "strategy", "strategy_options", "epochs", "batch_size",
                      "lr", "seed"):
            assert queued[field] == want[field], (field, queued[field], want[field])


@pytest.mark.parametrize(("key", "value"), [("train_epochs", 2), ("opt_suite_planted_p_out", -0.2),
                                          ("opt_strategy_hard_hidden", 64)])
def test_changing_a_setting_of_the_preset_drops_its_claim(app_env: Path, key: str, value: object) -> None:
    at = _open("train")
    at.selectbox(key="train_preset").select("conflict").run()
    assert CONFLICT.look_for in [i.value for i in at.info]
    at.number_input(key=key).set_value(value).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_preset").value == ""
    assert CONFLICT.look_for not in [i.value for i in at.info]
    assert at.number_input(key=key).value == value  # the change itself is kept
    assert at.multiselect(key="train_methods").value == list(CONFLICT.methods)


def test_epochs_default_to_the_steps_target_and_follow_the_data_until_set(app_env: Path) -> None:
    at = _open("train")
    rows = training_rows("planted")
    expected = epochs_for_steps(rows, 32)
    assert at.number_input(key="train_epochs").value == expected
    per_epoch = math.ceil(rows / 32)
    assert f"≈ **{per_epoch * expected} optimizer steps** per run ({rows} training rows / batch 32" in _texts(at)
    assert not at.warning

    at.number_input(key="train_batch_size").set_value(64).run()  # not set by hand: follows the batch size
    assert at.number_input(key="train_epochs").value == epochs_for_steps(rows, 64)

    at.number_input(key="train_epochs").set_value(2).run()  # set by hand: kept, and flagged
    warnings = " ".join(w.value for w in at.warning)
    assert "Under-trained" in warnings and f"fewer than {MIN_STEPS}" in warnings, warnings
    assert f"at least {math.ceil(MIN_STEPS / math.ceil(rows / 64))} epochs" in warnings
    at.number_input(key="train_batch_size").set_value(32).run()
    assert at.number_input(key="train_epochs").value == 2
    assert not at.exception


def _wine_csv() -> bytes:
    from sklearn.datasets import load_wine

    wine = load_wine()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*wine.feature_names[:-1], "proline", "cultivar"])
    for features, target in zip(wine.data, wine.target, strict=True):
        writer.writerow([*features, int(target)])
    return out.getvalue().encode()


def test_a_small_user_data_set_is_no_longer_trained_for_a_few_steps(app_env: Path) -> None:
    """The newcomer's case: Wine (178 rows) as a CSV suite used to default to 10 epochs = 20 steps."""
    import_csv(_wine_csv(), "wine", targets=["cultivar", "proline"], kinds={"cultivar": "classification",
                                                                          "proline": "regression"})
    at = _open("train")
    at.selectbox(key="train_suite").select("wine").run()
    assert not at.exception, at.exception
    rows = training_rows("wine")
    assert rows < 178
    epochs = at.number_input(key="train_epochs").value
    steps = math.ceil(rows / 32) * epochs
    assert epochs == epochs_for_steps(rows, 32) and DEFAULT_STEPS <= steps < DEFAULT_STEPS + math.ceil(rows / 32)
    assert f"≈ **{steps} optimizer steps** per run ({rows} training rows / batch 32" in _texts(at)
    assert not at.warning


def test_the_default_epochs_respect_the_presenters_limit_and_say_so(app_env: Path) -> None:
    (app_env / "limits.yaml").write_text("max_epochs: 5\n", encoding="utf-8")
    at = _open("train")
    assert at.number_input(key="train_epochs").value == 5
    warnings = " ".join(w.value for w in at.warning)
    assert "Under-trained" in warnings and "the presenter's limit on epochs allows no more" in warnings, warnings
    assert not at.error, [e.value for e in at.error]
