"""A Streamlit session without a browser: a websocket client that speaks the app's own protocol.

The browser's half of a Streamlit session is a websocket to ``/_stcore/stream`` carrying
protobuf messages: it sends ``BackMsg.rerun_script`` (the URL's query string, the page, the
widgets' values) and receives ``ForwardMsg`` deltas until ``script_finished``. This client does
exactly that and nothing else, so a load test measures the server alone: no Chromium on the same
cores, no static files. It keeps the widget ids it is sent, by label, to move a control the way
a browser would (the other widgets keep the values the URL gives them).

    session = WsSession("ws://127.0.0.1:8501", "temperature", "digit=2")
    await session.open()                      # the first script run, like opening the page
    await session.set_number("Which one", 17)  # one rerun; returns its latency in seconds
    await session.click("Start")              # press a button
"""

from __future__ import annotations

import time

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

RUN_TIMEOUT_S = 120.0


class ProtocolError(RuntimeError):
    """The server said something a browser would show as an error."""


class WsSession:
    def __init__(self, base: str, page: str, query: str = "") -> None:
        self.url = f"{base.rstrip('/')}/_stcore/stream"
        self.page, self.query = page, query
        self.widgets: dict[str, tuple[str, str]] = {}  # label -> (widget id, element type)
        self.exceptions = 0  # exception boxes the script drew
        self.bytes_received = 0
        self.ws = None

    async def open(self) -> float:
        """Connect and run the page once; the seconds until its script finished."""
        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None)
        return await self._rerun([])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def set_number(self, label: str, value: int | float) -> float:
        """Type ``value`` into the number box whose label starts with ``label`` (as far as the
        server can tell); the seconds until the rerun it starts has finished."""
        found = [k for k in self.widgets if k.startswith(label)]
        if not found:
            raise ProtocolError(f"no control labelled {label!r}; the page has {list(self.widgets)}")
        wid, _ = self.widgets[found[0]]
        state = BackMsg().rerun_script.widget_states.widgets.add()
        state.id = wid
        if isinstance(value, int):
            state.int_value = value
        else:
            state.double_value = float(value)
        return await self._rerun([state])

    async def click(self, label: str) -> float:
        """Press the button labelled ``label``; the seconds until the rerun it starts ends."""
        if label not in self.widgets:
            raise ProtocolError(f"no button labelled {label!r}; the page has {list(self.widgets)}")
        state = BackMsg().rerun_script.widget_states.widgets.add()
        state.id = self.widgets[label][0]
        state.trigger_value = True
        return await self._rerun([state])

    async def _rerun(self, states: list) -> float:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.page
        for s in states:
            cs.widget_states.widgets.add().CopyFrom(s)
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        while True:
            raw = await self.ws.recv()
            self.bytes_received += len(raw)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                self._note(fwd.delta)
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue
                return time.perf_counter() - t0
            elif kind == "page_not_found":
                raise ProtocolError(f"page {self.page!r} not found")
            if time.perf_counter() - t0 > RUN_TIMEOUT_S:
                raise TimeoutError(f"no script_finished within {RUN_TIMEOUT_S:.0f} s")

    def _note(self, delta) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        el = delta.new_element
        kind = el.WhichOneof("type")
        if kind == "exception":
            self.exceptions += 1
            return
        inner = getattr(el, kind, None) if kind else None
        wid = getattr(inner, "id", "") if inner is not None else ""
        label = getattr(inner, "label", "") if inner is not None else ""
        if wid and label:
            self.widgets[label] = (wid, kind)
