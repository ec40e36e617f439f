"""One simulated browser tab: a websocket client that speaks Streamlit's protocol (no browser).

What a Streamlit frontend does, reduced to what the load generator needs:

* it opens ``ws://HOST:PORT/_stcore/stream`` offering the subprotocol ``streamlit`` (the second and
  third entries of that header carry an XSRF token and a session id to resume; a loopback client
  with no auth cookie sends neither);
* it asks for a script run with a ``BackMsg.rerun_script`` (a ``ClientState``: the query string,
  the widget states, the page's script hash or its URL path, and a fragment id for a fragment run);
* it reads ``ForwardMsg``s: ``new_session`` (a run starts), ``delta`` (elements), ``navigation``
  (the pages and their hashes), ``page_info_changed`` (the script changed the query string),
  ``auto_rerun`` (a ``st.fragment(run_every=…)`` to re-run on a timer), ``stop_auto_rerun`` and
  ``script_finished`` (a run ended; ``FINISHED_EARLY_FOR_RERUN`` means another run follows).

A client here keeps one request in flight at a time and times it from the send to the
``script_finished`` that ends it (a page switch inside the script, ``st.switch_page``, ends the first
run early and the request with the run of the new page).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["Finish", "StreamlitClient", "RequestTimeout"]

_DONE = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
}


class RequestTimeout(Exception):
    """No ``script_finished`` came for a request in time."""


@dataclass
class Finish:
    """How a request ended: ``seconds`` from send to its final ``script_finished``."""

    seconds: float
    status: str
    page_hash: str


@dataclass
class StreamlitClient:
    """A browser tab's view of one Streamlit session (see the module docstring)."""

    url: str
    query: dict[str, str] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)  # URL path → page script hash
    page_hash: str = ""
    fragments: dict[str, float] = field(default_factory=dict)  # fragment id → run_every seconds
    buttons: dict[str, str] = field(default_factory=dict)  # widget id → label (current page)
    exceptions: list[str] = field(default_factory=list)  # messages of exception elements received
    errors: list[str] = field(default_factory=list)  # texts of st.error alerts received
    successes: list[str] = field(default_factory=list)  # texts of st.success alerts received
    messages: int = 0
    full_runs: int = 0  # full-page runs started (a fragment's st.rerun() starts one)
    bytes_received: int = 0
    _socket: ClientConnection | None = None
    _reader: asyncio.Task | None = None
    _finished: asyncio.Queue | None = None

    async def open(self) -> None:
        # The server pings; this side does not (a busy generator must not drop itself), and deltas
        # with figures can be large.
        self._socket = await connect(self.url, subprotocols=["streamlit"], max_size=None,
                                     ping_interval=None, open_timeout=60, close_timeout=5)
        self._finished = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # the connection's end is not a result
                pass

    @property
    def query_string(self) -> str:
        return urlencode(self.query)

    async def _read(self) -> None:
        assert self._socket is not None and self._finished is not None
        async for data in self._socket:
            if isinstance(data, str):
                continue
            self.messages += 1
            self.bytes_received += len(data)
            message = ForwardMsg()
            message.ParseFromString(data)
            self._handle(message)
        self._finished.put_nowait(None)  # the connection ended: wake a waiting request

    def _handle(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind == "new_session":
            self.page_hash = message.new_session.page_script_hash
            if not message.metadata.run.fragment_ids:  # a full run redraws the page and its fragments
                self.full_runs += 1
                self.buttons.clear()
                self.fragments.clear()
        elif kind == "navigation":
            self.pages = {page.url_pathname: page.page_script_hash for page in message.navigation.app_pages}
            self.page_hash = message.navigation.page_script_hash or self.page_hash
        elif kind == "page_info_changed":
            self.query = dict(parse_qsl(message.page_info_changed.query_string, keep_blank_values=True))
        elif kind == "auto_rerun":
            self.fragments[message.auto_rerun.fragment_id] = message.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fragment_id in message.stop_auto_rerun.fragment_ids:
                self.fragments.pop(fragment_id, None)
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element)
        elif kind == "script_finished":
            assert self._finished is not None
            self._finished.put_nowait(message.script_finished)

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.exceptions.append(f"{element.exception.type}: {element.exception.message}"[:300])
        elif kind == "alert":
            if element.alert.format == element.alert.ERROR:
                self.errors.append(element.alert.body[:300])
            elif element.alert.format == element.alert.SUCCESS:
                self.successes.append(element.alert.body[:300])
        elif kind == "button":
            self.buttons[element.button.id] = element.button.label

    async def request(self, *, page: str | None = None, fragment_id: str = "", trigger: str | None = None,
                      timeout: float = 120.0) -> Finish:
        """Ask for a run and wait for its end: a full run of ``page`` (a URL path; None: the current
        page), a fragment run (``fragment_id``), with the button ``trigger`` (a widget id) clicked."""
        assert self._socket is not None and self._finished is not None
        while not self._finished.empty():  # ends of runs this client did not ask for
            self._finished.get_nowait()
        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query_string
        if page is not None:
            state.page_script_hash = self.pages.get(page, "")
            state.page_name = "" if page in self.pages else page
        else:
            state.page_script_hash = self.page_hash
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = True
        if trigger is not None:
            state.widget_states.widgets.append(WidgetState(id=trigger, trigger_value=True))
        started = time.perf_counter()
        await self._socket.send(back.SerializeToString())
        return await self._await_finish(started, timeout)

    async def _await_finish(self, started: float, timeout: float) -> Finish:
        assert self._finished is not None
        deadline = started + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise RequestTimeout(f"no script_finished within {timeout:.0f} s")
            try:
                status = await asyncio.wait_for(self._finished.get(), remaining)
            except TimeoutError:
                raise RequestTimeout(f"no script_finished within {timeout:.0f} s") from None
            if status is None:
                raise ConnectionError("the server closed the websocket")
            if status in _DONE:
                return Finish(time.perf_counter() - started, _DONE[status], self.page_hash)
            # FINISHED_EARLY_FOR_RERUN: a rerun (a page switch, st.rerun) follows in the same request
