"""Run labels built from what differs between the runs shown (``mtl_core.runs.labels``), checked by
property over generated configs and on the workshop lessons' own presets."""

from __future__ import annotations

import itertools
import random

import pytest

from mtl_core.runs.labels import differing_settings, run_labels, setting_labels
from mtl_core.workshop.lessons import load_lessons

BASE = {
    "suite": "planted", "tasks": ["t1", "t2", "t3", "t4"], "suite_options": {"n_tasks": 4, "p_in": 0.9},
    "strategy": "hard", "strategy_options": {"hidden": 32}, "method": "ew", "method_options": {},
    "epochs": 10, "patience": None, "lr": 0.003, "batch_size": 32, "seed": 0, "probe_interval": 5,
    "tag": False, "name": None, "device": "cpu",
}


def _config(**changes) -> dict:
    config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in BASE.items()}
    for key, value in changes.items():
        if key in ("suite_options", "strategy_options", "method_options"):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def _split(label: str) -> tuple[str, str]:
    """(base, seed part) of a run label."""
    base, _, seed = label.rpartition(" · ")
    return (base, seed) if seed.startswith("seed ") else (label, "")


def test_a_lone_run_is_labelled_by_strategy_and_method() -> None:
    assert run_labels([_config()]) == ["hard · ew"]
    assert run_labels([_config(strategy="mmoe", method="pcgrad", seed=3)]) == ["mmoe · pcgrad"]
    assert run_labels([_config(seed=3)], always=("seed",)) == ["hard · ew · seed 3"]


def test_runs_differing_only_in_seed_differ_only_in_seed() -> None:
    configs = [_config(seed=seed) for seed in (0, 1, 2)]
    labels = run_labels(configs)
    assert labels == ["hard · ew · seed 0", "hard · ew · seed 1", "hard · ew · seed 2"]
    assert len(set(setting_labels(configs))) == 1
    assert differing_settings(configs) == []


def test_the_settings_that_differ_name_the_runs() -> None:
    configs = [_config(method=method, seed=seed) for method in ("ew", "pcgrad", "mgda") for seed in (0, 1)]
    assert run_labels(configs)[:3] == ["ew · seed 0", "ew · seed 1", "pcgrad · seed 0"]
    configs = [_config(suite_options={"p_in": p_in}, seed=1) for p_in in (0.9, 0.0)]
    assert run_labels(configs) == ["p_in 0.9", "p_in 0"]  # one seed: no seed in the label
    assert run_labels([_config(lr=0.003), _config(lr=0.01)]) == ["lr 0.003", "lr 0.01"]
    assert run_labels([_config(tag=True), _config()]) == ["TAG on", "TAG off"]
    assert run_labels([_config(tasks=["t1", "t2"]), _config(tasks=["t3", "t4"])]) == ["tasks t1, t2", "tasks t3, t4"]


def test_a_setting_that_follows_from_another_is_left_out() -> None:
    # Lesson 1's single-task runs also switch probes off: the strategy already says so.
    configs = [_config(strategy=strategy, suite_options={"p_in": p_in}, seed=seed,
                       probe_interval=0 if strategy == "single" else 5)
               for p_in in (0.9, 0.0) for strategy in ("hard", "single") for seed in (0, 1)]
    assert differing_settings(configs) == ["strategy", "suite_options.p_in"]
    assert run_labels(configs)[:3] == ["hard · p_in 0.9 · seed 0", "hard · p_in 0.9 · seed 1",
                                       "single · p_in 0.9 · seed 0"]
    # A method option comes with its method, unless it splits runs of one method.
    configs = [_config(method="pcgrad"), _config(method="cagrad", method_options={"c": 0.4})]
    assert run_labels(configs) == ["pcgrad", "cagrad"]
    configs.append(_config(method="cagrad", method_options={"c": 0.8}))
    assert run_labels(configs) == ["pcgrad", "cagrad · c 0.4", "cagrad · c 0.8"]


def test_values_are_exact_so_different_settings_never_share_a_label() -> None:
    assert setting_labels([_config(lr=0.1), _config(lr=0.1000001)]) == ["lr 0.1", "lr 0.1000001"]
    assert setting_labels([_config(lr=1e-3), _config(lr=3e-4)]) == ["lr 0.001", "lr 0.0003"]


def test_always_keeps_shared_settings_in_the_label() -> None:
    configs = [_config(method=m) for m in ("ew", "dwa")]
    assert run_labels(configs, always=("strategy", "method")) == ["hard · ew", "hard · dwa"]
    assert run_labels(configs, always=("suite", "method", "seed")) == ["ew · planted · seed 0", "dwa · planted · seed 0"]


@pytest.mark.parametrize("seed", range(20))
def test_labels_tell_exactly_the_settings_apart(seed: int) -> None:
    """Random groups: one setting label per distinct config (seed aside), the same label for the
    same settings, and the seed named exactly when the seeds differ."""
    rng = random.Random(seed)
    choices = {
        "strategy": ["hard", "single", "mmoe"], "method": ["ew", "pcgrad", "cagrad"], "lr": [0.003, 0.01],
        "epochs": [10, 20], "suite_options": [{"p_in": 0.9}, {"p_in": 0.0}], "method_options": [{}, {"c": 0.4}],
        "seed": [0, 1, 2],
    }
    keys = rng.sample(sorted(choices), rng.randint(1, 4))
    configs = [_config(**{key: rng.choice(choices[key]) for key in keys}) for _ in range(rng.randint(1, 8))]
    settings = setting_labels(configs)
    labels = run_labels(configs)
    signature = [tuple(sorted((k, str(v)) for k, v in c.items() if k != "seed")) for c in configs]
    for (i, a), (j, b) in itertools.combinations(enumerate(signature), 2):
        assert (a == b) == (settings[i] == settings[j]), (configs[i], configs[j], settings)
    seeds_differ = len({c["seed"] for c in configs}) > 1
    for config, setting, label in zip(configs, settings, labels, strict=True):
        assert label == (f"{setting} · seed {config['seed']}" if seeds_differ else setting)
        assert setting  # never empty


def test_lesson_presets_are_labelled_with_what_they_compare() -> None:
    lessons = {lesson.order: lesson for lesson in load_lessons()}
    first = lessons[1]
    labels = run_labels([config.to_dict() for config in first.configs()])
    assert {_split(label)[0] for label in labels} == {"hard · p_in 0.9", "single · p_in 0.9", "hard · p_in 0",
                                                     "single · p_in 0"}
    third = lessons[3]
    labels = run_labels([config.to_dict() for config in third.configs()])
    assert {_split(label)[0] for label in labels} == {"ew", "pcgrad", "mgda", "cagrad"}


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(TypeError, match=r"`configs\[1\]` must be a run config \(a dict\), got str"):
        run_labels([_config(), "hard"])
    with pytest.raises(TypeError, match="`configs` must be a list of run configs"):
        run_labels(_config())
    assert run_labels([]) == []
