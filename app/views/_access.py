"""Identity and roles on every page: the refusal to serve other machines without a presenter
passcode, and the sidebar's name, participant id and presenter unlock box."""

from __future__ import annotations

import ipaddress

import streamlit as st
from services.classroom import record_name, recorded_name
from services.limits import LIMIT_LABELS, current_limits, set_limits
from services.runs import MTLError
from state import StateKeys, acting, is_presenter, session_owner, single_user, unlock_presenter

__all__ = ["NAME_PARAM", "loopback_only", "refuse_unsafe_exposure", "identity_sidebar"]

#: The address parameter that keeps the optional display name across reloads (``?name=…``).
NAME_PARAM = "name"

REFUSAL = (
    "This server is reachable from other machines (`server.address` is {where}) but no presenter passcode "
    "is set, so every participant could cancel and delete everyone's runs. Set `MTL_LAB_PRESENTER_PASSCODE` "
    "in the server's environment and restart it (README, *Workshops*), or serve on `127.0.0.1` for one person."
)


def loopback_only(address: str | None) -> bool:
    """Whether a server bound to ``address`` (``server.address``; None or empty: every interface) is
    reachable from this machine only."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def refuse_unsafe_exposure() -> None:
    """Stop the page with one sentence when the server listens beyond loopback with no passcode."""
    address = st.get_option("server.address")
    if single_user() and not loopback_only(address):
        st.error(REFUSAL.format(where=f"`{address}`" if address else "unset: every interface"),
                 icon=":material/lock:")
        st.stop()


def _keep_name() -> None:
    """Mirror the display name into the address, so that a reload keeps it."""
    name = str(st.session_state.get(StateKeys.DISPLAY_NAME) or "").strip()
    if name and st.query_params.get(NAME_PARAM) != name:
        st.query_params[NAME_PARAM] = name
    elif not name and NAME_PARAM in st.query_params:
        del st.query_params[NAME_PARAM]


def _record_name() -> None:
    """Keep the name with the participant's owner id (what their runs carry) for the presenter's Class
    page: written when it changes, so it is on record before any run is queued from this session."""
    entry = (session_owner(), str(st.session_state.get(StateKeys.DISPLAY_NAME) or "").strip())
    if st.session_state.get(StateKeys.NAME_RECORDED) == entry:
        return
    try:
        record_name(*entry)
    except OSError:  # a read-only lab home: the Class page lists this participant by id
        return
    st.session_state[StateKeys.NAME_RECORDED] = entry


def _unlock() -> None:
    given = st.session_state.get(StateKeys.PRESENTER_PASSCODE) or ""
    st.session_state[StateKeys.PRESENTER_PASSCODE] = ""  # never kept, never shown again
    unlocked = unlock_presenter(given)
    st.session_state[StateKeys.PRESENTER_PROBLEM] = None if unlocked else "That is not the presenter passcode."


def _lock() -> None:
    st.session_state[StateKeys.PRESENTER] = False


def identity_sidebar() -> None:
    """Who you are (an optional name and your participant id) and, on a workshop server, the presenter box."""
    if StateKeys.DISPLAY_NAME not in st.session_state:
        # A page switch that sets the address anew drops ``?name=`` (and may drop the widget's state):
        # the name this session last recorded stays.
        # A new session (a link or bookmark without ``?name=``) takes the name this participant gave before.
        kept = st.session_state.get(StateKeys.NAME_RECORDED) or ("", "")
        remembered = kept[1] if kept[0] == session_owner() else recorded_name(session_owner())
        st.session_state[StateKeys.DISPLAY_NAME] = str(st.query_params.get(NAME_PARAM) or remembered)[:40]
    st.text_input("Your name (optional)", key=StateKeys.DISPLAY_NAME, max_chars=40, on_change=_keep_name,
                  help="Shown to you and, on a workshop server, to the presenter on the Class page beside your "
                       "runs (other participants never see it); your runs are yours through the address "
                       "(`?me=…`): bookmark it, and do not share it.")
    _keep_name()
    _record_name()
    st.caption(f"Participant `{session_owner()}`")
    if single_user():
        return
    if is_presenter():
        st.success("Presenter: you see and manage every participant's runs and suites.", icon=":material/key:")
        st.button("Lock presenter", key=StateKeys.PRESENTER_UNLOCK, on_click=_lock)
        _limits_editor()
        return
    with st.expander("Presenter"):
        st.text_input("Passcode", type="password", key=StateKeys.PRESENTER_PASSCODE)
        st.button("Unlock", key=StateKeys.PRESENTER_UNLOCK, on_click=_unlock)
        if st.session_state.get(StateKeys.PRESENTER_PROBLEM):
            st.error(st.session_state[StateKeys.PRESENTER_PROBLEM])


def _limits_editor() -> None:
    """The presenter's caps for every participant (0 = no cap), written to the limits file."""
    with st.expander("Limits for every participant"):
        current = current_limits()
        with st.form("presenter_limits", border=False):
            values = {key: int(st.number_input(label, min_value=0, value=current[key] or 0, step=1,
                                               key=f"limit_{key}", help="0 = no cap"))
                      for key, label in LIMIT_LABELS.items()}
            if st.form_submit_button("Save limits"):
                try:
                    phrases = set_limits({k: v or None for k, v in values.items()}, acting())
                except MTLError as exc:
                    st.error(str(exc))
                else:
                    st.success("Saved: " + ("; ".join(phrases) if phrases else "no caps") + ".")
