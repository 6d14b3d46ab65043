"""The preset result view on real results: every preset is run briefly on a slice of MNIST, its
result goes through JSON (as the CLI and the run store keep it) and is rendered by
``show_result`` in AppTest, and the figure builders are checked against the numbers."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.preset_views import (
    bias_figure,
    bias_table,
    curves_figure,
    panel_title,
    results_table,
    sweep_figure,
)
from kdcore.presets import PRESETS, Monitor, run_preset
from tests.tiny_mnist import TINY_OVERRIDES, write_tiny_mnist

ALL = ("hinton-mnist", "omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    folder = str(write_tiny_mnist(tmp_path_factory.mktemp("mnist")))
    out = {}
    for name in ALL:
        result = run_preset(name, data_dir=folder, **TINY_OVERRIDES[name])
        out[name] = json.loads(json.dumps(result))  # the shape a stored run comes back in
    return out


def page(result: dict) -> None:
    from app.preset_views import show_result

    show_result(result)


def render(result: dict) -> AppTest:
    at = AppTest.from_function(page, args=(result,), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text_of(at: AppTest) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption])


@pytest.mark.parametrize("name", ALL)
def test_every_preset_result_renders_with_the_papers_numbers(results, name):
    result = results[name]
    at = render(result)
    table = at.dataframe[0].value
    assert list(table["model"]) == list(result["models"])
    assert list(table["test errors"]) == [m["test_errors"] for m in result["models"].values()]
    paper = result["paper"]["test_errors"]
    for model, errors in paper.items():
        if model in result["models"]:
            # a number, or its text where the column has gaps (shown blank, not "None")
            assert str(table.set_index("model").loc[model, "paper errors"]) == str(errors)
    if "paper errors" in table:
        assert not table["paper errors"].isna().any()
    text = text_of(at)
    assert result["paper"]["source"] in text
    assert PRESETS[name].differences in text
    assert not at.warning  # completed runs carry no warning
    charts = at.get("plotly_chart")
    extra = int("bias_adjustment" in result) + int("sweep" in result)
    assert len(charts) == 1 + extra  # the curves, plus the preset's own chart


def test_bias_view_marks_the_best_bias_and_compares_with_the_paper(results):
    result = results["omitted-3"]
    adj, paper_adj = result["bias_adjustment"], result["paper"]["bias_adjustment"]
    fig = bias_figure(adj, paper_adj)
    best = [t for t in fig.data if t.mode == "markers"]
    assert len(best) == 2  # on both panels
    i = adj["sweep"]["bias"].index(adj["bias"])
    assert best[0].x[0] == adj["bias"] and best[0].y[0] == pytest.approx(
        100 * adj["sweep"]["accuracy_on_classes"][i]
    )
    vlines = sorted(s.x0 for s in fig.layout.shapes)  # each drawn on both panels
    assert vlines == sorted([adj["bias"], adj["validation"]["bias"], 3.5] * 2)

    table = bias_table(adj, paper_adj)
    assert list(table.columns) == [
        "",
        "ours: best on test",
        "ours: chosen on held-out",
        "paper: best on test",
    ]
    row = dict(zip(table[""], table["paper: best on test"], strict=True))
    assert row["bias added"] == "3.5" and row["errors on 3s after"] == "14"
    ours = dict(zip(table[""], table["ours: best on test"], strict=True))
    assert ours["test errors after"] == str(adj["errors_after"])

    at = render(result)
    tables = [d.value for d in at.dataframe]
    assert len(tables) == 2 and "ours: best on test" in tables[1].columns


def test_lowering_biases_is_drawn_against_the_reduction(results):
    adj = results["only-7-8"]["bias_adjustment"]
    fig = bias_figure(adj, results["only-7-8"]["paper"]["bias_adjustment"])
    assert min(fig.data[0].x) == 0 and max(fig.data[0].x) > 0
    assert 7.6 in [s.x0 for s in fig.layout.shapes]
    assert "reduction of the 7 and 8 logits" in fig.layout.xaxis2.title.text


def test_sweep_figure_has_one_panel_per_student_and_the_papers_band(results):
    result = results["temperature-sweep"]
    sweep = result["sweep"]
    fig = sweep_figure(sweep, result["paper"])
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [list(t.y) for t in lines] == [sweep["errors"][s] for s in sweep["errors"]]
    assert fig.layout.xaxis.type == "log"
    # each statement on its own students' panel: the 2.5-4 band on the 30-unit one, the T=8
    # line on the 300-unit one; each panel its student's hard-label baseline. The tiny run's
    # students (30 and 8 units) renamed as the paper profile's (300 and 30).
    names = dict(zip(sweep["errors"], ["mlp-300", "mlp-30"], strict=True))
    sweep = {
        **sweep,
        "errors": {names[k]: v for k, v in sweep["errors"].items()},
        "baseline_errors": {names[k]: v for k, v in sweep["baseline_errors"].items()},
    }
    fig = sweep_figure(sweep, result["paper"])
    rects = [s.xref for s in fig.layout.shapes if s.type == "rect"]
    t8 = [s.xref for s in fig.layout.shapes if s.type == "line" and s.x0 == 8.0]
    base = [s.xref for s in fig.layout.shapes if s.type == "line" and s.x0 != 8.0]
    assert rects == ["x2"] and t8 == ["x"] and sorted(base) == ["x domain", "x2 domain"]

    alpha = results["alpha-sweep"]
    fig = sweep_figure(alpha["sweep"], alpha["paper"])
    assert fig.layout.xaxis.type == "linear" and not any(
        s.type == "rect" for s in fig.layout.shapes
    )
    assert list(fig.data[0].x) == [0.0, 0.5, 1.0]


def test_curves_mark_the_papers_final_errors_in_each_models_colour(results):
    result = results["hinton-mnist"]
    fig = curves_figure(result["history"], result["paper"])
    curves = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert list(curves) == list(result["history"])
    for name, errors in result["paper"]["test_errors"].items():  # teacher 67, hard 146, kd 74
        (line,) = [s for s in fig.layout.shapes if s.y0 == errors]
        assert line.line.color == curves[name].line.color and line.line.dash == "dot"
        assert f"paper: {name} {errors}" in [t.name for t in fig.data]
    ticks = fig.layout.yaxis.tickvals  # round values spanning the curves and the paper's lines
    lowest = min(min(result["paper"]["test_errors"].values()), *curves["teacher"].y)
    assert min(ticks) <= lowest and max(ticks) >= max(max(c.y) for c in curves.values()) / 2
    assert len(curves_figure(result["history"]).layout.shapes) == 0  # no paper, no lines


def test_curves_of_a_short_run_label_whole_epochs_and_counts_in_full():
    """A one-epoch run's curve: its epoch axis reads 1, not 0.5 steps; thousands of test errors
    (a student barely started) read "10,000", not "1×10⁴"."""
    history = {"student_hard": [{"epoch": 1, "test_errors": 8723}]}
    fig = curves_figure(history)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    assert fig.layout.yaxis.exponentformat == "none" and fig.layout.yaxis.separatethousands
    assert 10_000 in fig.layout.yaxis.tickvals


def test_results_table_shows_missing_paper_numbers_as_a_dash(results):
    table = results_table(results["temperature-sweep"])
    assert table["paper errors"].isna().sum() == len(table) - 1  # only the teacher has one
    assert "paper error %" not in table.columns  # no percentages in this paper entry at all
    pct = results_table(results["only-7-8"]).set_index("model")["paper error %"]
    assert pct["student_78"] == 47.3
    shown = render(results["temperature-sweep"]).dataframe[0].value
    assert list(shown["paper errors"]).count("\u2014") == len(table) - 1  # a dash on the page too


def test_a_cached_model_takes_no_seconds_in_the_run_and_says_when_it_trained(results):
    result = json.loads(json.dumps(results["omitted-3"]))
    result["models"]["teacher"].update(cached=True, seconds=780.8)
    table = results_table(result).set_index("model")
    assert pd.isna(table.loc["teacher", "seconds"]) and table.loc["student_no3", "seconds"] > 0
    at = render(result)
    said = text_of(at)
    assert "Loaded from the cache, not trained in this run: teacher (trained in 781 s" in said
    assert any(m.value.startswith("#### Test errors, ours beside") for m in at.markdown)
    bare = {**result, "paper": {}}  # no figure of the paper's: the heading does not promise one
    assert "#### Test errors" in [m.value for m in render(bare).markdown]


class CancelSecondStudent(Monitor):
    def __init__(self, cancel: threading.Event):
        self.cancel, self.students = cancel, 0

    def on_model_start(self, name, index, count):
        self.students += name != "teacher"

    def on_step(self, progress):
        if self.students == 2:
            self.cancel.set()


def test_a_cancelled_run_shows_a_warning_and_what_finished(tmp_path):
    folder = str(write_tiny_mnist(tmp_path / "mnist", n_train=1000, n_test=500))
    cancel = threading.Event()
    result = run_preset(
        "alpha-sweep",
        data_dir=folder,
        monitor=CancelSecondStudent(cancel),
        cancel=cancel,
        **TINY_OVERRIDES["alpha-sweep"],
    )
    assert result["status"] == "cancelled"
    at = render(json.loads(json.dumps(result)))
    assert "cancelled" in at.warning[0].value
    assert list(at.dataframe[0].value["model"]) == ["teacher", "mlp-30 alpha=0"]
    assert len(at.get("plotly_chart")) == 2  # the one-point sweep and the curves


def two_results(a: dict, b: dict) -> None:
    from app.preset_views import show_result

    show_result(a)
    show_result(b)
    show_result(a, key="again")  # the same result twice needs its own key


def test_several_results_on_one_page(results):
    at = AppTest.from_function(
        two_results, args=(results["omitted-3"], results["only-7-8"]), default_timeout=60
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 2 * 3


def test_long_panel_titles_of_a_sweep_break_near_their_middle():
    sweep = {"parameter": "T", "values": [1.0, 4.0], "fixed": {},
             "errors": {"from the hard teacher": [300, 250], "mlp-30": [310, 260]},
             "baseline_errors": {}}  # fmt: skip
    titles = [a.text for a in sweep_figure(sweep).layout.annotations][:2]
    assert titles == ["from the<br>hard teacher", "mlp-30"]
    assert panel_title("from the smoothed teacher") == "from the<br>smoothed teacher"
    assert panel_title("a" * 20) == "a" * 20  # nowhere to break
    one = {**sweep, "errors": {"from the hard teacher": [300, 250]}}
    assert sweep_figure(one).layout.annotations[0].text == "from the hard teacher"  # room
