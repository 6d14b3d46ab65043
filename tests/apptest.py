"""One page of the app run in ``streamlit.testing.v1.AppTest``, shared by the page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parent.parent / "pages"


def run_page(name: str, timeout: float, **params: str) -> AppTest:
    """``pages/<name>`` run once with ``params`` in its URL; fails on any exception box."""
    at = AppTest.from_file(str(PAGES / name), default_timeout=timeout)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
