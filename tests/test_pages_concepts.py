"""AppTest for the overview, temperature and distillation-loss pages.

Each page runs without an exception, every control changes what is shown, and nonsense in the
URL falls back to the defaults with a notice instead of an error.
"""

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.catalog import MAP, available
from app.catalog import page as page_info

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
        tuple(c.proto.json for c in at.get("bidi_component")),  # our own components
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
    links = [(link.proto.page, link.proto.query_string) for link in at.get("page_link")]
    expected = [(k.slug, urlencode(k.query)) for c in MAP for k in c.links if available(k.slug)]
    assert links == [*expected, ("reproductions", "")]  # and, under the map, every result's seeds
    # the response/offline cell holds the temperature page and its neighbours (issues #11, #13);
    # every known family of the field has a page, the projector's spectrum included
    for slug in ("temperature", "kd-loss", "dkd", "deit", "language-models", "projector"):
        assert (slug, "") in links
    # a training mode opens on its own view, not on the modes page's first one
    assert ("modes", "mode=born-again") in links and ("modes", "mode=deep-supervision") in links
    coming = [c.value for c in at.caption if "coming" in c.value]
    assert len(coming) == sum(not any(available(k.slug) for k in c.links) for c in MAP)
    assert len(at.get("image")) == 1  # the teacher-student diagram


@pytest.mark.parametrize(
    "link",
    sorted({k for c in MAP for k in c.links if k.query}, key=lambda k: k.query),
    ids=lambda k: "&".join(f"{a}={b}" for a, b in k.query),
)
def test_a_map_link_opens_its_page_on_the_view_it_names(link):
    """A map cell's deep link sets only parameters its page reads, to a value the page takes
    without a notice: the view the cell names, not the page's default."""
    info = page_info(link.slug)
    assert {key for key, _ in link.query} <= set(info.params)
    at = AppTest.from_file(str(info.path), default_timeout=TIMEOUT)
    for key, value in link.query:
        at.query_params[key] = value
    at.run()
    assert not at.exception and not at.toast, [t.value for t in at.toast]
    for key, value in link.query:
        assert at.session_state[key] == value


def test_overview_diagram_draws_the_label_into_the_ce_term():
    import re

    at = page("overview.py")
    svg = at.get("image")[0].proto.imgs[0].url
    if svg.startswith("data:"):
        svg = base64.b64decode(svg.split(",", 1)[1]).decode()
    path = re.search(r'id="label-to-ce" d="([^"]+)"', svg)
    assert path, "no arrow from the label y to the CE term"
    assert "marker-end" in svg[path.end() : path.end() + 200]
    x, y = (float(v) for v in path.group(1).split()[-1].lstrip("L").split(","))
    assert 590 <= x <= 750 and 85 <= y <= 100  # ends at the top of the loss box


def test_overview_runs_on_its_own():
    at = page("overview.py")  # outside the router no page is registered: plain links instead
    assert not at.get("page_link")
    assert any("](/temperature)" in m.value for m in at.markdown)


# ----------------------------------------------------------------------------- temperature


def slider_data(at: AppTest) -> dict:
    """What the temperature component was given: every frame, and the one shown at rest."""
    (component,) = [c for c in at.get("bidi_component") if c.proto.id.endswith("-tslider")]
    data = json.loads(component.proto.json)
    return json.loads(data) if isinstance(data, str) else data  # sent as one JSON text


def shown_frame(at: AppTest) -> dict:
    data = slider_data(at)
    return data["frames"][data["active"]]


def component_state(at: AppTest, suffix: str, state: dict) -> AppTest:
    """Runs the page as the browser does when our component calls setStateValue."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    states: WidgetStates = at._tree.get_widget_states()
    widget = states.widgets.add()
    (widget.id,) = [c.proto.id for c in at.get("bidi_component") if c.proto.id.endswith(suffix)]
    widget.json_value = json.dumps(state)
    at._run(states)
    assert not at.exception, [e.value for e in at.exception]
    return at


def release(at: AppTest, T: float) -> AppTest:
    """The temperature slider let go at T."""
    return component_state(at, "-tslider", {"T": T})


def test_temperature_component_has_every_frame_and_formatted_numbers():
    at = page("temperature.py")
    data = slider_data(at)
    assert len(data["frames"]) == 100 and data["frames"][data["active"]]["T"] == 1.0
    temps = [f["T"] for f in data["frames"]]
    assert temps[0] == 0.1 and temps[-1] == 50 and temps == sorted(temps)
    ratios = np.diff(np.log(temps))
    assert ratios.max() < 1.35 * ratios.min()  # log-spaced (up to rounding), as the slider is
    for f in data["frames"]:  # link-friendly: each T prints as it is (?T=7.49)
        assert float(f"{f['T']:.3g}") == f["T"] and sum(f["p"]) == pytest.approx(1.0)
    first, last = data["frames"][0], data["frames"][-1]
    assert max(first["p"]) > max(last["p"])  # sharper at T = 0.1 than at T = 50
    assert "At T = 50.00 the runners-up after <b>2</b>" in last["para"]
    assert first["top"] == "1.0000" and last["dark"] != "0.0000"
    assert len(json.dumps(data)) < 300_000


def test_temperature_one_t_after_release():
    """Issue #11: the dragged T must reach the URL and every number on the page."""
    at = page("temperature.py")
    before = shown(at)
    release(at, 7.53)
    assert at.query_params["T"] == "7.53"
    frame = shown_frame(at)
    assert frame["T"] == 7.53 and frame["Ts"] == "7.53" and "At T = 7.53" in frame["para"]
    names = [t["name"] for t in figures(at)[0]["data"]]
    assert "teacher at T = 7.53" in names  # the label-smoothing chart follows the same T
    assert shown(at) != before
    # A reload of that link shows the same numbers.
    again = page("temperature.py", T="7.53")
    assert shown_frame(again) == frame


def test_temperature_page_marks_its_t_on_the_shipped_sweep_at_five_seeds():
    """The page's one T, let go on the slider, is the line on the shipped temperature sweep and
    the T its caption reads the five-seed means at (the swept T nearest it)."""
    from kdcore.reference import load_references, load_seed_study, sweep_seeds

    ref = load_references()[0]["temperature-sweep"]
    wide, narrow = sweep_seeds(ref, load_seed_study(ref))
    at = release(page("temperature.py"), 10.0)
    sweep = next(f for f in figures(at) if any(t.get("legendgroup") == "seeds" for t in f["data"]))
    lines = [sh for sh in sweep["layout"]["shapes"] if sh.get("line", {}).get("width") == 2]
    assert [sh["x0"] for sh in lines] == [10.0, 10.0]  # one per student's panel
    j = wide.values.index(12.0)  # 10 is nearest 12 on the log scale the axis uses (8 on a line)
    said = (f"Your T = 10 is not one the sweep trained; nearest it is 12 (at alpha = 0.9): mean "
            f"test errors over "
            f"5 seeds, mlp-300 {wide.mean()[j]:.1f} (sd {wide.sd()[j]:.1f}), mlp-30 "
            f"{narrow.mean()[j]:.1f} (sd {narrow.sd()[j]:.1f}).")  # fmt: skip
    assert said in [c.value for c in at.caption]
    # a T the sweep trained, and one past its range: no line stretching the axis there
    assert any(c.value.startswith("Your T = 4 is one the sweep trained (at alpha = 0.9):")
               for c in page("temperature.py", T="4").caption)  # fmt: skip
    far = page("temperature.py", T="50")
    assert any("outside the 1-20 swept, is not one the sweep trained; nearest it is 20" in c.value
               for c in far.caption)  # fmt: skip
    sweep = next(f for f in figures(far) if any(t.get("legendgroup") == "seeds" for t in f["data"]))
    assert not [sh for sh in sweep["layout"]["shapes"] if sh.get("line", {}).get("width") == 2]


@pytest.mark.parametrize(
    "act",
    [
        lambda at: at.button_group(key="digit").set_value(7),
        lambda at: at.number_input(key="idx").set_value(3),
        lambda at: at.toggle(key="log").set_value(True),
        lambda at: at.slider(key="eps").set_value(0.3),
        lambda at: at.button_group(key="src").set_value("by hand"),
    ],
    ids=["digit", "index", "log", "eps", "source"],
)
def test_temperature_every_control_changes_the_view(act):
    changes(page("temperature.py"), act)


def test_temperature_hand_logits_and_bad_text():
    at = page("temperature.py", src="by hand")
    changes(at, lambda at: at.text_input(key="z").input("0, 1, 2, 3, 4, 5, 6, 7, 8, 9"))
    assert np.argmax(shown_frame(at)["p"]) == 9
    at.text_input(key="z").input("one, two").run()
    assert not at.exception
    assert any("ten numbers" in c.value for c in at.caption)


def test_temperature_state_comes_from_the_url():
    at = page("temperature.py", T="8.5", digit="3", idx="12", log="true", eps="0.2")
    frame = shown_frame(at)
    assert frame["T"] == 8.5 and "At T = 8.50" in frame["para"]
    assert slider_data(at)["log_y"] is True
    assert at.button_group(key="digit").value == 3
    assert at.number_input(key="idx").value == 12
    assert at.toggle(key="log").value is True
    assert not at.toast


def test_temperature_nonsense_in_the_url_falls_back_with_a_notice():
    at = page("temperature.py", T="hot", digit="x", idx="-4", log="maybe", src="?", eps="2")
    assert shown_frame(at)["T"] == 1.0
    assert at.button_group(key="digit").value == 2
    assert at.number_input(key="idx").value == 7
    assert at.slider(key="eps").value == 0.1
    notices = " ".join(t.value for t in at.toast)
    for key in ("T", "digit", "idx", "log", "src", "eps"):
        assert f"{key}=" in notices
    at.run()  # the notices are shown once, not on every rerun
    assert not at.exception and not at.toast
    assert shown_frame(page("temperature.py", T="500"))["T"] == 1.0  # out of range


def test_temperature_your_own_digit_reaches_the_teacher():
    import torch
    import torch.nn.functional as F

    from kdcore.data import load_mnist

    at = page("temperature.py", src="your digit")
    assert any("Draw a digit" in c.value for c in at.caption)
    mnist = load_mnist()
    index = int(torch.nonzero(mnist.y_test == 3)[0])
    pixels = mnist.denormalise(mnist.x_test[index])[0]  # a real 3, drawn on the 56x56 canvas
    canvas = F.interpolate(pixels[None, None], size=(40, 40), mode="bilinear")[0, 0]
    big = torch.zeros(56, 56)
    big[2:42, 12:52] = canvas  # off-centre, as a hand would put it
    values = (big * 255).round().to(torch.uint8).flatten().tolist()
    component_state(at, "-digit_canvas", {"pixels": values})
    assert any("reads your digit as a **3**" in c.value for c in at.caption)
    assert np.argmax(shown_frame(at)["p"]) == 3
    assert len(at.get("image")) == 1  # what the teacher sees


def test_an_uploaded_file_is_decoded_or_refused_in_one_line():
    import torch
    from torchvision.io import encode_png

    from app.own_digit import decode

    image = torch.zeros(1, 40, 30, dtype=torch.uint8)
    assert decode(bytes(encode_png(image).tolist())).shape == (1, 40, 30)
    assert decode(b"this is not an image") is None


# ----------------------------------------------------------------------------- the KD loss


@pytest.mark.parametrize(
    "act",
    [
        lambda at: at.slider(key="alpha").set_value(0.3),
        lambda at: at.select_slider(key="kd_T").set_value(12.0),
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
    # the equation with this image's numbers, on a line of its own (one line overflowed)
    filled = at.latex[1].value
    assert "KL" not in filled and f"= {total:.3f}" in filled and filled.count("\\\\") == 0
    assert len(figures(at)) == 4  # the mix, the gradient, the limit, the shipped alpha sweep


def test_kd_loss_marks_its_alpha_on_the_shipped_alpha_sweep_at_five_seeds():
    from kdcore.reference import load_references, load_seed_study, sweep_seeds

    ref = load_references()[0]["alpha-sweep"]
    (s,) = sweep_seeds(ref, load_seed_study(ref))
    at = page("kd_loss.py", alpha="0.5")
    sweep = figures(at)[-1]
    assert [sh["x0"] for sh in sweep["layout"]["shapes"] if sh["line"].get("width") == 2] == [0.5]
    j = s.values.index(0.5)
    said = (f"Your alpha = 0.5 is one the sweep trained (at T = 20): mean test errors over 5 "
            f"seeds, mlp-800 {s.mean()[j]:.1f} (sd {s.sd()[j]:.1f}).")  # fmt: skip
    assert said in [c.value for c in at.caption]
    at.slider(key="alpha").set_value(0.6).run()  # between 0.5 and 0.7: the first swept, 0.5
    assert any(c.value.startswith("Your alpha = 0.6 is not one the sweep trained; nearest it is")
               for c in at.caption)  # fmt: skip


def test_kd_loss_nonsense_in_the_url_falls_back_with_a_notice():
    at = page("kd_loss.py", alpha="-3", T="nan", idx="99999")
    assert at.slider(key="alpha").value == 0.9
    assert at.select_slider(key="kd_T").value == 4.0
    notices = " ".join(t.value for t in at.toast)
    assert "alpha=" in notices and "T=" in notices and "idx=" in notices


def test_kd_loss_temperature_is_log_scaled_and_kept_in_the_url():
    at = page("kd_loss.py")
    options = [float(o) for o in at.select_slider(key="kd_T").options]
    assert options[0] == 0.1 and options[-1] == 50 and 1.0 in options and 4.0 in options
    steps = np.diff(np.log(options))
    assert steps.max() < 2.5 * steps.min()  # log spacing: 0.1-1 takes as much track as 1-10
    assert sum(o < 1 for o in options) == sum(1 <= o < 10 for o in options)
    at.select_slider(key="kd_T").set_value(12.0).run()
    assert at.query_params["T"] == "12"
    linked = page("kd_loss.py", T="8")
    assert linked.select_slider(key="kd_T").value == 8.0
    snapped = page("kd_loss.py", T="7.7")
    assert snapped.select_slider(key="kd_T").value == 8.0  # the nearest stop
    assert snapped.query_params["T"] == "8"  # and the address says so


def test_kd_loss_small_t_is_printed_properly_and_the_limit_is_reached():
    at = page("kd_loss.py", T="0.1")
    text = " ".join(m.value for m in at.markdown)
    assert "T² = 0.01" in text and "T² = 0.0." not in text
    limit = figures(at)[2]
    t2_kl, line = (values(tr["y"]) for tr in limit["data"][:2])
    assert t2_kl[-1] == pytest.approx(line[0], rel=0.01)  # the curve reaches its limit


def test_log_axes_have_clean_labels():
    at = page("kd_loss.py")
    for fig in figures(at)[1:3]:  # the gradient and the limit charts, T on a log axis
        x = fig["layout"]["xaxis"]
        assert x["type"] == "log" and "50" in x["ticktext"] and "5" in x["ticktext"]
        assert x["range"][1] > np.log10(float(x["ticktext"][-1]))  # room for the last label
    assert figures(at)[1]["layout"]["yaxis"]["dtick"] == 1  # one label per decade


# ----------------------------------------------------------------------------- missing models


def test_missing_or_corrupt_models_are_replaced_with_a_notice(tmp_path, monkeypatch):
    (tmp_path / "teacher.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setenv("KD_DEMO_MODELS", str(tmp_path))  # and no student file at all
    at = page("temperature.py")
    notes = [c.value for c in at.caption if "stand-in" in c.value]
    assert len(notes) == 2
    assert "teacher" in notes[0] and "not a readable safetensors" in notes[0]
    assert "student" in notes[1] and "no checkpoint" in notes[1]
    assert len(slider_data(at)["frames"]) == 100


def test_a_valid_checkpoint_of_another_model_is_replaced_with_a_notice(tmp_path, monkeypatch):
    """A real safetensors file of a CIFAR ResNet (3 channels) as the demo teacher: one line and
    a stand-in, not a shape error on the page."""
    from kdcore.checkpoint import save_model
    from kdcore.models import build_model

    save_model(build_model("resnet8", 10, (3, 32, 32)), tmp_path / "teacher.safetensors",
               "resnet8", 10, (3, 32, 32))  # fmt: skip
    monkeypatch.setenv("KD_DEMO_MODELS", str(tmp_path))
    at = page("temperature.py")
    assert not at.exception
    notes = [c.value for c in at.caption if "stand-in" in c.value]
    assert "teacher" in notes[0] and "does not take mnist images" in notes[0], notes


# ----------------------------------------------------------------------------- the paper teacher


@pytest.mark.parametrize("name", ["temperature.py", "kd_loss.py"])
def test_the_paper_teacher_of_the_reference_run_can_replace_the_demo_one(name):
    demo = page(name)
    at = page(name, teacher="paper")
    assert at.button_group(key="teacher").value == "paper" and not at.toast
    captions = " ".join(c.value for c in at.caption)
    assert "mlp-1200" in captions, captions  # the reference run's 784-1200-1200-10 net
    accuracy = float(captions.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 99.0  # measured here on the shipped half-precision weights
    assert "mlp-300" in " ".join(c.value for c in demo.caption)
    assert shown(at) != shown(demo)  # another teacher, other logits everywhere
    changes(at, lambda at: at.button_group(key="teacher").set_value("demo"))
    assert "mlp-300" in " ".join(c.value for c in at.caption)


def test_a_missing_reference_run_falls_back_to_the_demo_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path))  # no reference runs there
    at = page("temperature.py", teacher="paper")
    captions = " ".join(c.value for c in at.caption)
    assert "Paper teacher unavailable (no shipped reference run hinton-mnist)" in captions
    assert "mlp-300" in captions


def test_an_odd_teacher_in_the_link_falls_back_with_a_notice():
    at = page("kd_loss.py", teacher="gpt")
    assert at.button_group(key="teacher").value == "demo"
    assert "teacher=" in " ".join(t.value for t in at.toast)
