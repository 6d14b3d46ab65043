"""AppTest for the overview, temperature and distillation-loss pages.

Each page runs without an exception, every control changes what is shown, and nonsense in the
URL falls back to the defaults with a notice instead of an error.
"""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.catalog import MAP, available

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # first run loads MNIST and the demo models


def page(name: str, **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(arr) -> np.ndarray:
    """Plotly 6 sends numpy arrays as base64 typed arrays ({"dtype", "bdata"})."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"])
    return np.asarray(arr)


def shown(at: AppTest) -> tuple:
    """Everything a user reads: text, numbers and the figures' data."""
    return (
        tuple(m.value for m in at.markdown),
        tuple(c.value for c in at.caption),
        tuple(m.value for m in at.metric),
        tuple(json.dumps(f["data"]) for f in figures(at)),
        tuple(json.dumps(f["layout"].get("sliders")) for f in figures(at)),
    )


def changes(at: AppTest, act) -> None:
    before = shown(at)
    act(at)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert shown(at) != before


# ----------------------------------------------------------------------------- overview


def test_overview_map_links_the_pages_that_exist():
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()  # through the router, so page links resolve as they do in the app
    assert not at.exception
    assert any("Knowledge distillation" in t.value for t in at.title)
    links = [link.proto.page for link in at.get("page_link")]
    expected = [c.slug for c in MAP if available(c.slug)]
    assert links == expected and "temperature" in links
    coming = [c.value for c in at.caption if "coming" in c.value]
    assert len(coming) == sum(not available(c.slug) for c in MAP)
    assert len(at.get("image")) == 1  # the teacher-student diagram


def test_overview_runs_on_its_own():
    at = page("overview.py")  # outside the router no page is registered: plain links instead
    assert not at.get("page_link")
    assert any("](/temperature)" in m.value for m in at.markdown)


# ----------------------------------------------------------------------------- temperature


def test_temperature_figure_has_frames_and_a_slider():
    at = page("temperature.py")
    fig = figures(at)[0]
    assert len(fig["frames"]) == 100
    steps = fig["layout"]["sliders"][0]["steps"]
    assert len(steps) == 100 and steps[0]["method"] == "animate"
    bars = [values(f["data"][0]["y"]) for f in fig["frames"]]  # p_i(T) per frame
    assert all(len(b) == 10 and b.sum() == pytest.approx(1.0) for b in bars)
    assert bars[0].max() > bars[-1].max()  # sharper at T = 0.1 than at T = 50
    assert "dark knowledge" in fig["frames"][0]["layout"]["title"]["text"]
    assert len(json.dumps(fig)) < 2_000_000


@pytest.mark.parametrize(
    "act",
    [
        lambda at: at.button_group(key="digit").set_value(7),
        lambda at: at.number_input(key="idx").set_value(3),
        lambda at: at.number_input(key="T").set_value(4.0),
        lambda at: at.toggle(key="log").set_value(True),
        lambda at: at.slider(key="eps").set_value(0.3),
        lambda at: at.button_group(key="src").set_value("by hand"),
    ],
    ids=["digit", "index", "T", "log", "eps", "source"],
)
def test_temperature_every_control_changes_the_view(act):
    changes(page("temperature.py"), act)


def test_temperature_hand_logits_and_bad_text():
    at = page("temperature.py", src="by hand")
    changes(at, lambda at: at.text_input(key="z").input("0, 1, 2, 3, 4, 5, 6, 7, 8, 9"))
    assert values(figures(at)[0]["data"][0]["y"]).argmax() == 9
    at.text_input(key="z").input("one, two").run()
    assert not at.exception
    assert any("ten numbers" in c.value for c in at.caption)


def test_temperature_state_comes_from_the_url():
    at = page("temperature.py", T="8.5", digit="3", idx="12", log="true", eps="0.2")
    assert at.number_input(key="T").value == 8.5
    assert at.button_group(key="digit").value == 3
    assert at.number_input(key="idx").value == 12
    assert at.toggle(key="log").value is True
    assert not at.toast


def test_temperature_nonsense_in_the_url_falls_back_with_a_notice():
    at = page("temperature.py", T="hot", digit="x", idx="-4", log="maybe", src="?", eps="2")
    assert at.number_input(key="T").value == 1.0
    assert at.button_group(key="digit").value == 2
    assert at.number_input(key="idx").value == 7
    assert at.slider(key="eps").value == 0.1
    notices = " ".join(t.value for t in at.toast)
    for key in ("T", "digit", "idx", "log", "src", "eps"):
        assert f"{key}=" in notices
    at.run()  # the notices are shown once, not on every rerun
    assert not at.exception and not at.toast


# ----------------------------------------------------------------------------- the KD loss


@pytest.mark.parametrize(
    "act",
    [
        lambda at: at.slider(key="alpha").set_value(0.3),
        lambda at: at.slider(key="T").set_value(12.0),
        lambda at: at.button_group(key="digit").set_value(5),
        lambda at: at.number_input(key="idx").set_value(0),
    ],
    ids=["alpha", "T", "digit", "index"],
)
def test_kd_loss_every_control_changes_the_view(act):
    changes(page("kd_loss.py"), act)


def test_kd_loss_shows_equations_code_and_consistent_numbers():
    at = page("kd_loss.py", alpha="0.5", T="2")
    assert len(at.latex) >= 3
    code = " ".join(c.value for c in at.code)
    assert "def kd_loss" in code and "def distillation_loss" in code
    ce, kd, total = (float(m.value) for m in at.metric[:3])
    assert total == pytest.approx(0.5 * ce + 0.5 * kd, abs=2e-4)
    assert len(figures(at)) == 3


def test_kd_loss_nonsense_in_the_url_falls_back_with_a_notice():
    at = page("kd_loss.py", alpha="-3", T="nan", idx="99999")
    assert at.slider(key="alpha").value == 0.9
    assert at.slider(key="T").value == 4.0
    notices = " ".join(t.value for t in at.toast)
    assert "alpha=" in notices and "T=" in notices and "idx=" in notices


# ----------------------------------------------------------------------------- missing models


def test_missing_or_corrupt_models_are_replaced_with_a_notice(tmp_path, monkeypatch):
    (tmp_path / "teacher.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setenv("KD_DEMO_MODELS", str(tmp_path))  # and no student file at all
    at = page("temperature.py")
    notes = [c.value for c in at.caption if "stand-in" in c.value]
    assert len(notes) == 2
    assert "teacher" in notes[0] and "not a readable safetensors" in notes[0]
    assert "student" in notes[1] and "no checkpoint" in notes[1]
    assert len(figures(at)[0]["frames"]) == 100


# ----------------------------------------------------------------------------- the shared chart


def test_opening_the_chart_at_an_exact_t_leaves_the_shared_frames_alone():
    import torch

    from app.figures import temperature_figure, temperature_spec
    from kdcore import analysis

    z = torch.tensor([-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2])
    spec = temperature_spec(analysis.temperature_sweep(z, analysis.temperature_grid()))
    dump = lambda: json.dumps(spec, default=lambda a: a.tolist())  # noqa: E731
    before = dump()
    fig = temperature_figure(spec, analysis.temperature_sweep(z, np.array([3.0])))
    slider = fig.layout.sliders[0]
    assert slider.steps[slider.active].label == "3" and len(fig.frames) == 101
    assert values(fig.to_dict()["data"][0]["y"]) == pytest.approx(
        analysis.temperature_sweep(z, np.array([3.0])).probs[0]
    )
    fig = temperature_figure(spec, analysis.temperature_sweep(z, np.array([1.0])))
    assert len(fig.frames) == 100  # T = 1 is on the grid: no extra frame
    assert dump() == before  # the cached spec is shared by every user: never mutated
