"""AppTest for the label-smoothing page: both shipped teachers projected live onto the plane of
the three digits in the URL (the spread the page shows is the core's, on the real weights), one
image's soft targets at the page's T, the students' errors as the run recorded them, and every
odd input (two digits, a digit that is none, no weights, no run) as one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.smoothing_figures import projection_figure, students_figure, sweep_sentence
from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.presets_smoothing import PRESET, TEACHERS, sweep_points
from kdcore.reference import load_references, reference_dir
from kdcore.smoothing import cluster_spread, non_target_entropy, template_projection
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180


def _page(digits: list[str] | None = None, **params: str) -> AppTest:
    """The page with ``digits`` in its URL as a repeated parameter, one per pill."""
    return run_page("smoothing.py", TIMEOUT, **params, **({"digits": digits} if digits else {}))


@pytest.fixture(scope="module")
def shipped():
    ref = load_references(reference_dir())[0][PRESET]
    teachers = {n: load_model(ref.path.parent / ref.weights[n]["file"])[0] for n in TEACHERS}
    return ref, teachers


def _metrics(at: AppTest, start: str) -> list[str]:
    return [m.value for m in at.metric if m.label.startswith(start)]


def test_the_shipped_teachers_are_projected_live(store_path, shipped):
    _, teachers = shipped
    at = _page(["3", "5", "8"], split="training", digit="5", idx="2", T="2")
    fig = chart(at, "projection")
    drawn = {t["name"] for t in fig["data"]}
    assert drawn == {"digit 3", "digit 5", "digit 8", "the chosen image"}
    data = load_mnist()
    keep = torch.isin(data.y_train, torch.tensor([3, 5, 8]))
    spreads = []
    for name in TEACHERS:  # the page's figure is the core's, on every training image of them
        xy, _ = template_projection(teachers[name], data.x_train[keep], (3, 5, 8))
        spreads.append(cluster_spread(xy, data.y_train[keep]))
    assert _metrics(at, "cluster spread") == [f"{s:.3f}" for s in spreads]
    assert spreads[1] < spreads[0]  # label smoothing: tighter clusters (measured)
    caption = next(c.value for c in at.caption if "Cluster spread" in c.value)
    assert caption.startswith("Training images of digits 3, 5, 8")
    # the chosen image, ringed in both panels where the core puts it
    index = int(torch.nonzero(data.y_test == 5)[2])
    rings = [t for t in fig["data"] if t["name"] == "the chosen image"]
    for ring, name in zip(rings, TEACHERS, strict=True):
        want = template_projection(teachers[name], data.x_test[index : index + 1], (3, 5, 8))[0]
        assert [ring["x"][0], ring["y"][0]] == pytest.approx(want[0].tolist(), rel=1e-5)
    # its soft targets and evenness at the page's T
    bars = chart(at, "targets")["data"]
    for bar, name in zip(bars, TEACHERS, strict=True):
        z = teachers[name](data.x_test[index : index + 1]).detach()
        assert plotly_array(bar["y"]) == pytest.approx(torch.softmax(z[0] / 2, 0).numpy(),
                                                       abs=1e-6)  # fmt: skip
    even = _metrics(at, "evenness")
    for shown, name in zip(even, TEACHERS, strict=True):
        z = teachers[name](data.x_test[index : index + 1]).detach()
        assert shown == f"{float(non_target_entropy(z, torch.tensor([5]), 2.0)[0]):.3f}"


def test_the_students_are_the_runs(store_path, shipped):
    ref, _ = shipped
    at = _page()
    models = ref.result["models"]
    lines = chart(at, "students")["data"]
    base = models["student_hard"]["test_errors"]
    T = ref.result["config"]["T"]  # the page's T slider opens at the run's
    names = ["from the hard teacher", "from the smoothed teacher", f"hard labels alone: {base}"]
    assert [b["name"] for b in lines] == [*names, f"T above: {T:g}"]
    temperatures = ref.result["sweep"]["values"]
    for line, stem in zip(lines[:2], ("student_from_hard", "student_from_ls"), strict=True):
        assert list(plotly_array(line["x"])) == temperatures
        want = [models[f"{stem} T={t:g}"]["test_errors"] for t in temperatures]
        assert list(plotly_array(line["y"])) == want
    prose = " ".join(m.value for m in at.markdown)
    assert sweep_sentence(sweep_points(models)) in prose
    table = next(f.value for f in at.dataframe if "model" in f.value.columns)  # not the seeds'
    assert list(table["model"]) == list(models)
    assert list(table["test errors"]) == [m["test_errors"] for m in models.values()]
    assert "Shown: the run shipped with the app" in " ".join(c.value for c in at.caption)
    prose = " ".join(m.value for m in at.markdown)
    assert "sure on average" in prose  # the calibration paragraph, measured live


def test_fewer_than_three_digits_asks_for_three(store_path):
    at = _page(["0", "1"])
    assert [i.value for i in at.info] == ["Pick exactly three digits (2 picked now)."]
    assert not [c for c in at.get("plotly_chart") if "projection" in c.proto.id]


@pytest.mark.parametrize("digits", [["3", "x", "5"], ["3", "3", "5"], ["10", "1", "2"]])
def test_a_digit_link_it_cannot_take_falls_back_with_a_notice(store_path, digits):
    at = _page(digits)
    assert any("not understood; using 4, 7, 9" in t.value for t in at.toast)
    names = {t["name"] for t in chart(at, "projection")["data"]}
    assert {"digit 4", "digit 7", "digit 9"} <= names


def test_a_run_without_teacher_weights_says_so_in_one_line(store_path, shipped_without_weights):
    shipped_without_weights(PRESET)
    at = _page()
    said = " ".join(c.value for c in at.caption)
    assert "The teachers cannot be loaded, so the live views are off" in said
    assert chart(at, "students")  # the run's own numbers still shown


def test_with_no_run_the_page_offers_one(store_path, no_shipped):
    at = _page()
    assert [b.label for b in at.button] == ["Run it now"]
    assert not at.get("plotly_chart")


def test_the_figures_draw_what_they_are_given():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    fig = projection_figure({"a": (xy, np.array([1, 2, 3])), "b": (xy, np.array([1, 2, 3]))},
                            (1, 2, 3), {"b": np.array([0.5, 0.5])})  # fmt: skip
    assert [t.name for t in fig.data] == ["digit 1", "digit 2", "digit 3"] * 2 + [
        "the chosen image"
    ]
    assert [t.showlegend for t in fig.data[:3]] == [True] * 3
    points = {"from the hard teacher": [(1.0, 280), (4.0, 250)],
              "from the smoothed teacher": [(1.0, 270), (4.0, 320)]}  # fmt: skip
    fig = students_figure(points, 300, 2.0)
    assert list(fig.data[0].x) == [1.0, 4.0] and list(fig.data[1].y) == [270, 320]
    assert fig.layout.shapes[0].y0 == 300  # hard labels alone, across
    assert fig.layout.shapes[1].x0 == 2.0  # the page's T, down the chart
    assert students_figure(points, None, 50.0).layout.shapes == ()  # off the chart: no line
    said = sweep_sentence(points)
    assert "hard teacher does best at T = 4 (250 errors)" in said
    assert "smoothed teacher at T = 1 (270)" in said
    assert "behind at T = 4 and ahead at T = 1." in said


def test_the_seed_study_draws_both_students_curves_over_the_seeds(store_path, shipped):
    """The study keeps its tables (every model, every measure) and, above them, the sweep's
    mean curve over the seeds for each teacher's student."""
    import statistics

    from kdcore.reference import load_seed_study

    ref, _ = shipped
    rows = load_seed_study(ref)
    assert len(rows) == 5
    at = _page()
    fig = chart(at, "ref-smooth-teacher-sweep")
    for title in ("from the hard teacher", "from the smoothed teacher"):
        line = next(t for t in fig["data"] if t.get("name") == title)
        want = [round(statistics.fmean(r["sweep"]["errors"][title][i] for r in rows), 1)
                for i in range(len(ref.result["sweep"]["values"]))]  # fmt: skip
        assert list(plotly_array(line["y"])) == pytest.approx(want)
