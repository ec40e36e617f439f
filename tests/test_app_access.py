"""Identity and roles on a shared server (issue 12): participants keep one identity across reloads
(``?me=<token>``), see and manage only their own runs and suites; the presenter, unlocked by
``MTL_LAB_PRESENTER_PASSCODE``, manages all; with no passcode the app is single-user, as before; and
it refuses to serve other machines without a passcode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import MAIN, page_texts
from services.catalog import AUTOSTART_ENV  # noqa: E402  (app/ is on sys.path through app_support)
from services.limits import set_limits  # noqa: E402
from services.runs import cancel_run, delete_run, queue_runs  # noqa: E402
from state import ME_PARAM  # noqa: E402
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest
from views._access import loopback_only  # noqa: E402

from mtl_core.runs.store import RunStore, lab_home
from mtl_core.userdata.csv_import import import_csv
from mtl_core.workshop.access import (
    AccessError,
    Actor,
    new_token,
    owner_of_token,
    passcode_matches,
    valid_token,
)
from mtl_core.workshop.limits import LimitError, load_limits

PASSCODE = "correct horse battery staple"
TOKEN_A = "a" * 8 + "A" * 8 + "-aaaaaaa"
TOKEN_B = "b" * 8 + "B" * 8 + "_bbbbbbb"
OWNER_A, OWNER_B = owner_of_token(TOKEN_A), owner_of_token(TOKEN_B)
TINY = {"suite": "planted", "suite_options": {"n_samples": 150, "dim": 6, "n_tasks": 4}, "strategy": "hard",
        "strategy_options": {"hidden": 8}, "method": "ew", "epochs": 2, "batch_size": 32}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUTOSTART_ENV, "0")
    return lab_home()


@pytest.fixture
def workshop(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workshop server: a presenter passcode is configured."""
    monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", PASSCODE)
    return home


@pytest.fixture
def run_of_a(home: Path) -> int:
    """A queued run of participant A (queued, so that it can be both cancelled and deleted)."""
    return queue_runs([TINY], owner=OWNER_A)[0]


def _open(page: str, token: str | None, **query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    if page == "run_view":
        at.run()  # its url_path is not its file name: the pages must be registered first
    at.switch_page(f"views/{page}.py")
    if token is not None:
        at.query_params[ME_PARAM] = token
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


_texts = page_texts


def _run_ids(at: AppTest) -> set[int]:
    return set(at.dataframe[0].value["id"]) if at.dataframe else set()


# --- the engine's rules ----------------------------------------------------------------------------------------
def test_tokens_and_owner_ids() -> None:
    token = new_token()
    assert valid_token(token) and token != new_token()
    assert owner_of_token(token) == owner_of_token(token) != owner_of_token(new_token())
    assert owner_of_token(token).startswith("p-") and token not in owner_of_token(token)
    assert not valid_token("short") and not valid_token("x" * 20 + "<script>") and not valid_token(None)
    with pytest.raises(ValueError):
        owner_of_token("bad token!")


def test_passcodes_compare_exactly_and_never_match_when_unset() -> None:
    assert passcode_matches(PASSCODE, PASSCODE)
    assert not passcode_matches(PASSCODE + " ", PASSCODE) and not passcode_matches("", PASSCODE)
    assert not passcode_matches(None, None) and not passcode_matches("", None) and not passcode_matches("x", None)


def test_an_actor_manages_their_own_and_the_presenter_everything() -> None:
    participant, presenter = Actor(OWNER_B), Actor(OWNER_B, manages_all=True)
    assert participant.may_manage(OWNER_B) and not participant.may_manage(OWNER_A)
    assert not participant.may_manage(None) and presenter.may_manage(OWNER_A) and presenter.may_manage(None)
    with pytest.raises(AccessError, match="Run 3 belongs to another participant"):
        participant.check(OWNER_A, "Run 3")


def test_the_services_refuse_another_participants_run_with_a_sentence(run_of_a: int) -> None:
    store = RunStore.at_home(lab_home())
    assert cancel_run(run_of_a, Actor(OWNER_B)) == (f"Run {run_of_a} belongs to another participant; only they "
                                                   "or the presenter can change it.")
    assert "another participant" in delete_run(run_of_a, Actor(OWNER_B))
    assert store.get_run(run_of_a).status == "queued"
    assert "cancelled" in cancel_run(run_of_a, Actor(OWNER_A))
    assert delete_run(run_of_a, Actor(OWNER_A)) is None
    assert store.count_runs() == 0


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.1.1", True),
    (None, False), ("", False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("lab.example", False),
])
def test_loopback_addresses(address: str | None, expected: bool) -> None:
    assert loopback_only(address) is expected


# --- identity ----------------------------------------------------------------------------------------------------
def test_a_first_visit_gets_a_token_in_the_address_and_a_reload_keeps_the_owner(home: Path) -> None:
    first = _open("runs", None)
    token = first.query_params[ME_PARAM]
    token = token[0] if isinstance(token, list) else token
    assert valid_token(token)
    owner = first.session_state["session_owner"]
    assert owner == owner_of_token(token)
    reloaded = _open("train", token)  # a reload, a bookmark or a new tab: a new session, the same address
    assert reloaded.session_state["session_owner"] == owner
    assert token not in _texts(reloaded)  # the page shows the owner id, never the token


def test_reloading_does_not_bypass_the_concurrent_run_limit(workshop: Path) -> None:
    (workshop / "limits.yaml").write_text("max_concurrent_runs_per_session: 1\n", encoding="utf-8")
    for attempt in range(2):  # the same browser, reloaded between the two clicks
        at = _open("train", TOKEN_A)
        at.number_input(key="opt_suite_planted_n_samples").set_value(150)
        at.multiselect(key="train_methods").set_value(["ew"])
        at.number_input(key="train_seeds").set_value(1)
        at.run()
        at.button(key="train_start").click().run()
        assert not at.exception, at.exception
        errors = " ".join(e.value for e in at.error)
        assert ("Nothing was queued" in errors) is (attempt == 1), errors
    runs = RunStore.at_home(workshop).list_runs()
    assert [r.owner for r in runs] == [OWNER_A]


# --- participants ------------------------------------------------------------------------------------------------
def test_a_participant_sees_and_manages_only_their_own_runs(workshop: Path, run_of_a: int) -> None:
    run_of_b = queue_runs([TINY], owner=OWNER_B)[0]
    at = _open("runs", TOKEN_B)
    assert _run_ids(at) == {run_of_b}
    opened = at.dataframe[0].value["open"].tolist()
    assert opened == [f"/run?run={run_of_b}&{ME_PARAM}={TOKEN_B}"]  # a new tab keeps the identity

    view = _open("run_view", TOKEN_B, run=str(run_of_a))
    assert f"Run {run_of_a} belongs to another participant" in _texts(view)
    assert not [b for b in view.button if b.key and b.key.startswith("run_cancel")]

    at = _open("runs", TOKEN_A)
    assert _run_ids(at) == {run_of_a}
    at.multiselect(key="runs_delete_pick").set_value([run_of_a]).run()
    at.button(key="runs_cancel").click().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in RunStore.at_home(workshop).list_runs()] == [run_of_b]


def test_remove_is_offered_only_on_ones_own_suites(workshop: Path) -> None:
    csv = b"x,label,score\n" + b"".join(f"{i},{'yes' if i % 2 else 'no'},{i * 0.5}\n".encode() for i in range(30))
    import_csv(csv, "of_a", targets=["label", "score"], owner=OWNER_A)
    import_csv(csv, "of_b", targets=["label", "score"], owner=OWNER_B)
    at = _open("data", TOKEN_B)
    removes = {b.key for b in at.button if b.key and b.key.startswith("data_remove_")}
    assert removes == {"data_remove_of_b"}
    assert "of_a" in _texts(at).replace("\\", "")  # shared for training: listed (escaped or not), not removable


# --- the presenter -------------------------------------------------------------------------------------------------
def test_the_presenter_unlocks_with_the_passcode_only_and_then_manages_all(workshop: Path, run_of_a: int) -> None:
    at = _open("runs", TOKEN_B)
    assert _run_ids(at) == set()
    assert re.search(r"\d+ runs? on this server", _texts(at)) and str(workshop) not in _texts(at)  # no server path for participants
    at.text_input(key="presenter_passcode").input("wrong").run()
    at.button(key="presenter_unlock").click().run()
    assert "That is not the presenter passcode." in _texts(at)
    assert at.session_state["presenter"] is False and _run_ids(at) == set()

    at.text_input(key="presenter_passcode").input(PASSCODE).run()
    at.button(key="presenter_unlock").click().run()
    assert not at.exception, at.exception
    assert at.session_state["presenter"] is True and _run_ids(at) == {run_of_a}
    assert at.session_state["presenter_passcode"] == ""  # not kept in the session
    assert PASSCODE not in _texts(at)
    assert f"`{workshop / 'runs.db'}`" in _texts(at)  # the presenter sees where the store is
    at.multiselect(key="runs_delete_pick").set_value([run_of_a]).run()
    at.button(key="runs_delete").click().run()
    assert RunStore.at_home(workshop).count_runs() == 0


def test_the_presenter_sets_the_limits_for_every_participant(workshop: Path) -> None:
    participant = _open("train", TOKEN_A)
    assert not [e for e in participant.expander if e.label == "Limits for every participant"]
    with pytest.raises(AccessError, match="Only the presenter can set the limits."):
        set_limits({"max_epochs": 5}, Actor(OWNER_A))
    at = _open("train", TOKEN_B)
    at.text_input(key="presenter_passcode").input(PASSCODE).run()
    at.button(key="presenter_unlock").click().run()
    at.number_input(key="limit_max_concurrent_runs_per_session").set_value(1)
    at.number_input(key="limit_max_epochs").set_value(30)
    at.button(key="FormSubmitter:presenter_limits-Save limits").click().run()
    assert not at.exception, at.exception
    assert "Saved: at most 30 epochs per run; at most 1 queued or running runs per session." in _texts(at)
    assert load_limits(home=workshop).max_concurrent_runs_per_session == 1  # written where the engine reads it
    queue_runs([TINY], owner=OWNER_A)
    with pytest.raises(LimitError, match="allows 1 queued or running runs per session"):
        queue_runs([TINY], owner=OWNER_A)  # the participant's next run is refused
    at.number_input(key="limit_max_concurrent_runs_per_session").set_value(0)  # 0: no cap
    at.button(key="FormSubmitter:presenter_limits-Save limits").click().run()
    assert load_limits(home=workshop).max_concurrent_runs_per_session is None


# --- single user and exposure --------------------------------------------------------------------------------------
def test_without_a_passcode_everyone_manages_everything_as_before(home: Path, run_of_a: int) -> None:
    at = _open("runs", TOKEN_B)
    assert _run_ids(at) == {run_of_a}
    assert not [e for e in at.expander if e.label == "Presenter"]
    at.multiselect(key="runs_delete_pick").set_value([run_of_a]).run()
    at.button(key="runs_delete").click().run()
    assert RunStore.at_home(home).count_runs() == 0


@pytest.fixture
def served_to_the_room() -> Iterator[None]:
    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "0.0.0.0")
    yield
    streamlit_config.set_option("server.address", before)


def test_serving_other_machines_needs_a_passcode(home: Path, served_to_the_room: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open("runs", TOKEN_A)
    assert len(at.error) == 1 and "MTL_LAB_PRESENTER_PASSCODE" in at.error[0].value
    assert not at.dataframe and not at.button

    monkeypatch.setenv("MTL_LAB_PRESENTER_PASSCODE", PASSCODE)
    at = _open("runs", TOKEN_A)
    assert not at.error
