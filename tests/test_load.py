"""What the load test stands on: the protocol client of bench/bench_load.py against a real server,
and the memory settling that cut the server's CPU per rerun (no timings here: see bench/)."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import free_port, start_server  # noqa: E402
from ws_session import ProtocolError, WsSession  # noqa: E402


def test_settle_memory_freezes_once_per_page(monkeypatch):
    from app import ui

    monkeypatch.setattr(ui, "_SETTLED", set())
    gc.unfreeze()
    try:
        ui.settle_memory("temperature")
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the modules and data loaded so far
        junk = [[i] for i in range(1000)]  # made after the freeze: still collectable
        ui.settle_memory("temperature")
        assert gc.get_freeze_count() == frozen  # not again for the same page
        ui.settle_memory("kd-loss")
        assert gc.get_freeze_count() >= frozen + len(junk)  # a new page: what it loaded too
    finally:
        gc.unfreeze()


def test_a_protocol_session_opens_a_page_and_moves_a_control(tmp_path):
    """The bench's websocket client drives the real server as a browser would: the page runs
    without an exception box, its controls are found by label, a move reruns it."""
    env = {**os.environ, "KD_STORE": str(tmp_path / "runs.sqlite"), "KD_TORCH_THREADS": "1"}
    port = free_port()
    server = start_server(port, env, tmp_path / "streamlit.log")

    async def visit() -> tuple[WsSession, float]:
        s = WsSession(f"ws://127.0.0.1:{port}", "temperature", "digit=4")
        try:
            await s.open()
            sent = s.bytes_received
            seconds = await s.set_number("Which one", 9)
            assert s.bytes_received > sent  # the rerun's deltas came back
            with pytest.raises(ProtocolError, match="no control labelled 'Nope'"):
                await s.set_number("Nope", 1)
            return s, seconds
        finally:
            await s.close()

    try:
        session, seconds = asyncio.run(visit())
    finally:
        server.terminate()
        server.wait(10)
    assert session.exceptions == 0 and seconds > 0
    assert any(label.startswith("Which one") for label in session.widgets)
    assert {"Log scale", "Smoothing ε"} <= set(session.widgets)
