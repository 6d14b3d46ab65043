"""One page of the app run in ``streamlit.testing.v1.AppTest``, shared by the page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parent.parent / "pages"


def run_page(name: str, timeout: float, **params: str) -> AppTest:
    """``pages/<name>`` run once with ``params`` in its URL; fails on any exception box, and on
    any table that would show a missing figure as Streamlit's "None" rather than a dash."""
    at = AppTest.from_file(str(PAGES / name), default_timeout=timeout)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    check_tables(at)
    return at


def check_tables(at: AppTest) -> None:
    """Every table with a gap (a figure the paper does not give, a cached model's seconds) shows
    it as the app's dash: Streamlit's own placeholder, "None", reads like a value."""
    from app.ui import MISSING

    for frame in at.dataframe:
        value = frame.value
        gaps = value.isna().to_numpy().any() if hasattr(value, "isna") else False
        assert not gaps or frame.proto.placeholder == MISSING, list(value.columns)


def plotly_array(value):
    """A trace's array as numpy: Plotly 6 sends numpy arrays as base64 typed arrays ({"dtype",
    "bdata", "shape"}), plain lists as they are."""
    import base64

    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape(tuple(int(n) for n in shape.split(","))) if shape else flat
    return np.asarray(value, dtype=float)


def chart(at: AppTest, key: str) -> dict:
    """The figure JSON of the page's Plotly chart whose key contains ``key``."""
    import json

    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id)
