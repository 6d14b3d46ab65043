"""AppTest for the forward-vs-reverse-KL view (app/components/klview.py) in a tiny script: a
link's β opens the nearest frame, nonsense in the URL falls back with a notice, a release writes
?beta=, and every number the component shows is the frame's own, formatted in Python."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from app.components import klview
from app.components.klview_frontend import HTML
from kdcore.klfit import kl_frames

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def script():
    import streamlit as st

    from app.components.klview import kl_view, url_beta
    from kdcore.klfit import kl_frames

    beta = url_beta()
    frames = st.cache_data(kl_frames, show_spinner=False)(4.0, 0.5, 0.5)
    shown = kl_view(frames, beta)
    st.markdown(f"shown β = {shown:g}")


def run(**params) -> AppTest:
    at = AppTest.from_function(script, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def url(at: AppTest, key: str) -> str | None:
    """A URL value as a string (AppTest keeps a link's values as a list, a written one as is)."""
    v = at.query_params.get(key)
    return v[0] if isinstance(v, list) else v


def data(at: AppTest) -> dict:
    (component,) = [c for c in at.get("bidi_component") if c.proto.id.endswith("-klview")]
    return json.loads(component.proto.json)


def active(at: AppTest) -> dict:
    d = data(at)
    return d["frames"][d["active"]]


@pytest.fixture(scope="module")
def frames() -> dict:
    return kl_frames(4.0, 0.5, 0.5)


def test_a_valid_link_opens_its_frame_and_a_value_between_frames_snaps():
    at = run(beta="0.75")
    assert active(at)["beta"] == 0.75 and not at.toast
    assert at.markdown[-1].value == "shown β = 0.75"
    at = run(beta="0.33")
    assert active(at)["beta"] == 0.35 and at.markdown[-1].value == "shown β = 0.35"
    assert url(at, "beta") == "0.35"  # the address says the frame in use, as the screen does


@pytest.mark.parametrize("raw", ["2", "-0.1", "abc", "nan", "inf", "٠٫٥"])
def test_nonsense_in_the_url_falls_back_to_forward_kl_with_a_notice(raw):
    at = run(beta=raw)
    assert "beta=" in " ".join(t.value for t in at.toast)
    assert active(at)["beta"] == 0.0 and "beta" not in at.query_params
    at.run()  # shown once, not on every rerun
    assert not at.exception and not at.toast


def test_release_writes_the_url_and_the_page_follows():
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    at = run()
    assert active(at)["beta"] == 0.0 and "beta" not in at.query_params
    states: WidgetStates = at._tree.get_widget_states()
    widget = states.widgets.add()
    (widget.id,) = [c.proto.id for c in at.get("bidi_component") if c.proto.id.endswith("-klview")]
    widget.json_value = json.dumps({"beta": 0.6})
    at._run(states)  # what the browser sends when the slider is let go at β = 0.6
    assert not at.exception, [e.value for e in at.exception]
    assert url(at, "beta") == "0.6" and active(at)["beta"] == 0.6


def test_numbers_and_curve_come_from_the_same_frame(frames):
    d = klview.view_data(frames, 0.0)
    assert len(d["frames"]) == len(frames["frames"]) == 21
    assert d["ticks"] == {"0": 0, "0.5": 10, "1": 20}
    assert d["colors"]["p"] != d["colors"]["q"]
    assert d["ymax"] >= max(max(f["q"]) for f in frames["frames"])
    for shown, f in zip(d["frames"], frames["frames"], strict=True):
        assert shown["q"] == f["q"] and shown["mu"] == f["mu"]
        assert shown["text"]["mu"] == f"{f['mu']:.2f}".replace("-", "\u2212")
        assert shown["text"]["sigma"] == f"{f['sigma']:.2f}"
        assert shown["text"]["fwd"] == f"{f['fwd']:.3f} nats"
        assert shown["text"]["rev"] == f"{f['rev']:.3f} nats"
        assert shown["text"]["gap"] == f"{100 * f['gap']:.1f}%"
        assert f"β = {f['beta']:.2f}" in shown["label"] and f"β = {f['beta']:.2f}" in shown["say"]
    first, last = d["frames"][0], d["frames"][-1]
    assert "forward KL" in first["label"] and "covers both modes" in first["say"]
    assert "reverse KL" in last["label"] and "picks one mode" in last["say"]
    assert "JSD" in d["frames"][10]["label"]


def test_the_dom_keeps_its_test_hooks():
    """What a browser test will query (the browser check itself runs elsewhere)."""
    assert 'data-testid="klview"' in HTML
    for cls in ("kl-beta", "kl-mu", "kl-sigma", "kl-fwd", "kl-rev", "kl-gap"):
        assert f"{cls}" in HTML
    for tick in ("forward KL", "JSD", "reverse KL"):
        assert f">{tick}<" in HTML
