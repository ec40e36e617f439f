"""Presenter limits: where the file is found, how a bad file is reported, and each cap refusing (with a
message naming the cap, its value and its file) exactly what exceeds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtl_core.config import TrainConfig
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.workshop.limits import (
    LIMITS_ENV,
    LimitError,
    Limits,
    LimitsFileError,
    check_limits,
    limits_path,
    load_limits,
    save_limits,
)

PLANTED = {"suite": "planted", "suite_options": {"n_samples": 200}, "epochs": 5}


def _limits_file(text: str, folder: Path | None = None) -> Path:
    folder = folder or lab_home()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_no_limits() -> None:
    assert limits_path() is None
    limits = load_limits()
    assert limits == Limits() and not limits.active and limits.describe() == []
    check_limits([dict(PLANTED, epochs=10_000)] * 50, owner="anyone")  # nothing to enforce


def test_the_file_in_the_lab_home_is_read_and_described() -> None:
    path = _limits_file("max_epochs: 20\nmax_tasks: null\nmax_concurrent_runs_per_session: 4\n")
    assert limits_path() == path
    limits = load_limits()
    assert limits == Limits(max_epochs=20, max_concurrent_runs_per_session=4, source=str(path))
    assert limits.describe() == ["at most 20 epochs per run", "at most 4 queued or running runs per session"]


def test_saved_limits_are_what_the_engine_reads_and_bad_ones_are_refused() -> None:
    saved = save_limits({"max_epochs": 30, "max_tasks": None})
    path = lab_home() / "limits.yaml"
    assert limits_path() == path and load_limits() == saved == Limits(max_epochs=30, source=str(path))
    with pytest.raises(LimitsFileError, match=r"`max_epochs` must be a positive integer or null, got 0"):
        save_limits({"max_epochs": 0})
    with pytest.raises(LimitsFileError, match=r"`epochs` must be a known limit"):
        save_limits({"epochs": 5})
    assert load_limits() == saved  # a refused save leaves the file as it was
    assert not list(path.parent.glob(".limits.yaml.*"))  # no partial file left behind


def test_the_environment_variable_wins_and_must_name_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _limits_file("max_epochs: 20\n")
    other = _limits_file("max_epochs: 3\n", tmp_path / "elsewhere")
    monkeypatch.setenv(LIMITS_ENV, str(other))
    assert load_limits().max_epochs == 3
    monkeypatch.setenv(LIMITS_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(LimitsFileError, match=r"`MTL_LAB_LIMITS` must be the path of an existing limits file"):
        load_limits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_epochs: -1\n", r"`max_epochs` must be a positive integer or null, got -1"),
        ("max_epochs: ten\n", r"`max_epochs` must be a positive integer or null, got 'ten'"),
        ("max_tasks: true\n", r"`max_tasks` must be a positive integer or null, got True"),
        ("max_epoch: 3\n", r"`max_epoch` must be a known limit \(max_epochs, max_concurrent_runs_per_session"),
        ("- 3\n", r"`\(top level\)` must be a mapping of limits"),
        ("max_epochs: [3\n", r"`file` must be valid YAML, got 'a syntax error at line"),
    ],
)
def test_a_bad_limits_file_names_the_file_and_the_field(text: str, message: str) -> None:
    path = _limits_file(text)
    with pytest.raises(LimitsFileError, match=message) as caught:
        load_limits()
    assert str(caught.value).startswith(f"limits file {path}: ")


def test_max_epochs_refuses_the_run_that_asks_for_more() -> None:
    path = _limits_file("max_epochs: 20\n")
    check_limits([dict(PLANTED, epochs=20)], owner="s1")
    with pytest.raises(LimitError) as caught:
        check_limits([dict(PLANTED, epochs=10), TrainConfig.from_dict(dict(PLANTED, epochs=21))], owner="s1")
    assert str(caught.value) == (f"This workshop allows at most 20 epochs per run (max_epochs, set in {path}); "
                                 "run 2 of 2 asks for 21. Lower the epochs.")


def test_max_tasks_counts_the_suites_tasks_when_none_are_named() -> None:
    _limits_file("max_tasks: 4\n")
    check_limits([dict(PLANTED, tasks=["t1", "t2", "t3", "t4"])], owner="s1")
    with pytest.raises(LimitError, match=r"at most 4 tasks per run \(max_tasks, .*this run trains 6\."):
        check_limits([PLANTED], owner="s1")  # planted has 6 tasks by default


def test_max_samples_reads_the_option_or_the_suites_default() -> None:
    _limits_file("max_samples: 500\n")
    check_limits([PLANTED], owner="s1")
    with pytest.raises(LimitError, match=r"at most 500 training rows per run .*asks for n_samples = 1000"):
        check_limits([{"suite": "mmoe"}], owner="s1")  # the mmoe suite's default is 1000 rows
    check_limits([{"suite": "digits"}], owner="s1")  # a suite of fixed size (no size_option) is not capped


def test_concurrent_runs_are_counted_per_session_and_only_while_unfinished() -> None:
    _limits_file("max_concurrent_runs_per_session: 3\n")
    store = RunStore.at_home(lab_home())
    try:
        mine = store.create_runs([dict(PLANTED)] * 2, owner="session-a")
        store.create_runs([dict(PLANTED)] * 5, owner="session-b")
        check_limits([PLANTED], owner="session-a", store=store)  # 2 + 1 ≤ 3
        with pytest.raises(LimitError) as caught:
            check_limits([PLANTED, PLANTED], owner="session-a", store=store)
        assert "allows 3 queued or running runs per session" in str(caught.value)
        assert "you have 2 queued or running, and this would add 2" in str(caught.value)
        # a finished run frees its place
        store.claim_run(mine[0])
        store.set_status(mine[0], "cancelled")
        check_limits([PLANTED, PLANTED], owner="session-a", store=store)
        with pytest.raises(LimitError, match="you have none queued or running, and this would add 4"):
            check_limits([PLANTED] * 4, owner="session-c", store=store)
    finally:
        store.close()
