"""Presenter limits: where the file is found, how a bad file is reported, and each cap refusing (with a
message naming the cap and its value, but not the file's path: participants read it on their pages)
exactly what exceeds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_support import MAIN
from services.limits import limits_summary  # noqa: E402  (app/ is on sys.path through app_support)
from state import ME_PARAM  # noqa: E402
from streamlit.testing.v1 import AppTest

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
    assert str(caught.value) == ("This workshop allows at most 20 epochs per run (max_epochs, a presenter limit); "
                                 "run 2 of 2 asks for 21. Lower the epochs.")
    # participants read the message on their pages: the file's path stays on the server's side
    assert caught.value.source == str(path) and str(path) not in str(caught.value)
    assert caught.value.detail() == f"{caught.value} Limits file: {path}."


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


# --- what the pages show: never the limits file's path ---------------------------------------------------
PASSCODE = "correct horse battery staple"
TOKEN = "c" * 8 + "C" * 8 + "-ccccccc"


def _train_refused(unlock_presenter: bool) -> str:
    """Every text of the Train page after Start training asked for more epochs than the cap allows."""
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.switch_page("views/train.py")
    at.query_params[ME_PARAM] = TOKEN
    at.run()
    if unlock_presenter:
        at.text_input(key="presenter_passcode").input(PASSCODE).run()
        at.button(key="presenter_unlock").click().run()
        assert at.session_state["presenter"] is True
    at.number_input(key="opt_suite_planted_n_samples").set_value(150)
    at.multiselect(key="train_methods").set_value(["ew"])
    at.number_input(key="train_seeds").set_value(1)
    at.number_input(key="train_epochs").set_value(5)
    at.run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    kinds = ("error", "warning", "info", "success", "markdown", "caption")
    return "\n".join(str(element.value) for kind in kinds for element in getattr(at, kind))


@pytest.mark.parametrize("role", ["participant", "presenter", "single user"])
def test_a_refusal_on_the_page_names_the_cap_but_no_server_path(role: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "0")
    if role != "single user":
        monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", PASSCODE)
    path = _limits_file("max_epochs: 2\n", tmp_path / "presenter")
    monkeypatch.setenv(LIMITS_ENV, str(path))
    texts = _train_refused(unlock_presenter=role == "presenter")
    assert "Nothing was queued" in texts and "at most 2 epochs per run (max_epochs, a presenter limit)" in texts
    assert str(tmp_path) not in texts
    assert RunStore.at_home(lab_home()).count_runs() == 0


def test_a_bad_limits_file_is_described_on_the_page_without_its_path(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _limits_file("max_epochs: 0\n")
    assert limits_summary() == ([], "`max_epochs` must be a positive integer or null, got 0.")
    monkeypatch.setenv(LIMITS_ENV, str(tmp_path / "missing.yaml"))
    assert limits_summary() == ([], "`MTL_LAB_LIMITS` names no file on the server.")
    assert str(path.parent) not in str(limits_summary())


def test_a_broken_limits_file_is_explained_on_a_page_without_its_path() -> None:
    from services.runs import explain

    from mtl_core.workshop.limits import LimitsFileError

    error = LimitsFileError("/srv/secret/limits.yaml", "max_epochs", "a positive integer or null", 0)
    assert "/srv/secret" in str(error)  # the CLI's message names the file
    text = explain(error)
    assert "/srv/secret" not in text and "limits.yaml" not in text
    assert "`max_epochs` must be a positive integer or null" in text
