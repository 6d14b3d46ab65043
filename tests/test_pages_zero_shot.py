"""AppTest for the zero-shot page: the class similarity read live from the shipped teacher, one
impression crafted live for the digit, β and draw in the URL (the target and the teacher's answer
the core's), the run's stored impressions and students, and odd input (a digit that is none, no
weights, no run) as one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.zero_shot_figures import image_grid, similarity_figure
from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.presets_zeroshot import PRESET, STUDENTS
from kdcore.reference import load_references, reference_dir
from kdcore.zero_shot import T_IMPRESSION, class_similarity, craft_impressions, sample_targets
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180


def _page(**params: str) -> AppTest:
    return run_page("zero_shot.py", TIMEOUT, **params)


@pytest.fixture(scope="module")
def shipped():
    ref = load_references(reference_dir())[0][PRESET]
    return ref, load_model(ref.path.parent / ref.weights["teacher"]["file"])[0]


def test_the_similarity_and_one_impression_are_computed_live(store_path, shipped):
    _, net = shipped
    at = _page(digit="7", beta="0.1 (peaked)", draw="3")
    sim = class_similarity(net.head.weight).numpy()
    z = chart(at, "similarity")["data"][0]["z"]
    drawn = np.array([plotly_array(r) for r in z]) if isinstance(z, list) else plotly_array(z)
    np.testing.assert_allclose(drawn, sim, atol=1e-9)
    bars = chart(at, "craft")["data"]
    target = sample_targets(torch.tensor(sim), 7, 0.1, 1, seed=3)[0]
    assert plotly_array(bars[0]["y"]) == pytest.approx(target.numpy(), abs=1e-6)
    data = load_mnist()

    def normalise(p):
        return (p - data.mean[0]) / data.std[0]

    x, _ = craft_impressions(net, target[None], data.image_shape, normalise, 200, 0.05,
                             torch.Generator().manual_seed(3))  # fmt: skip
    with torch.no_grad():
        got = torch.softmax(net(x) / T_IMPRESSION, 1)[0].numpy()
    assert plotly_array(bars[1]["y"]) == pytest.approx(got, abs=1e-5)
    caption = next(c.value for c in at.caption if "Adam steps on the pixels" in c.value)
    top = int(target.argmax())
    assert caption.startswith(f"A target sampled from digit 7's Dirichlet at β = 0.1 (draw 3; "
                              f"its largest entry is digit {top})")  # fmt: skip


def test_the_runs_impressions_and_students_are_shown(store_path, shipped):
    ref, _ = shipped
    at = _page()
    captions = " ".join(c.value for c in at.caption)
    pictures = [c for image in at.get("image") for c in image.captions]
    assert pictures[0] == "the impression"  # the one crafted live, then the run's, per β
    assert pictures[1].startswith("β = 1: row d sampled from digit d's Dirichlet")
    assert pictures[2].startswith("β = 0.1: row d sampled from digit d's Dirichlet")
    imp = ref.result["impressions"]
    assert f"of {imp['count']:,} crafted in" in captions
    bars = chart(at, "students")["data"][0]
    models = ref.result["models"]
    assert list(bars["x"]) == ["teacher", *STUDENTS]
    want = [100 * models[n]["test_accuracy"] for n in ["teacher", *STUDENTS]]
    assert list(plotly_array(bars["y"])) == pytest.approx(want)
    assert "Shown: the run shipped with the app" in captions


@pytest.mark.parametrize("params", [{"digit": "12"}, {"beta": "2"}, {"draw": "-1"},
                                    {"draw": "1e9"}])  # fmt: skip
def test_odd_url_values_fall_back_with_a_notice(store_path, params):
    at = _page(**params)
    assert at.toast, params
    assert chart(at, "craft")


def test_a_run_without_teacher_weights_shows_its_stored_figures(
    store_path, shipped_without_weights
):
    shipped_without_weights(PRESET)
    at = _page()
    said = " ".join(c.value for c in at.caption)
    assert "The teacher cannot be loaded, so the live views are off" in said
    assert chart(at, "similarity") and chart(at, "students")
    assert not [c for c in at.get("plotly_chart") if "craft" in c.proto.id]


def test_with_no_run_the_page_offers_one(store_path, no_shipped):
    at = _page()
    assert [b.label for b in at.button] == ["Run it now"]
    assert not at.get("plotly_chart")


def test_the_pictures_are_what_they_are_given():
    pics = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    grid = image_grid(pics, scale=2, gap=1)
    assert grid.shape == (2 * 9 - 1, 3 * 11 - 1)
    np.testing.assert_array_equal(grid[:8:2, 11:21:2], pics[0, 1])
    assert (grid[8] == 255).all()  # the gap between rows
    fig = similarity_figure(np.eye(3))
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1 and list(fig.data[0].x) == [0, 1, 2]
