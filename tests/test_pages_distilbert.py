"""AppTest for the DistilBERT page: the teacher's blocks the student starts from in the URL, the
start of every choice computed live from the shipped teacher, the triple loss as the training
step computes it, the shipped run drawn without training, and an empty store offering one."""

from __future__ import annotations

import pytest

from app.distilbert_figures import ablation_figure, curves_figure, init_figure, starts_figure
from app.lm_figures import LABEL
from kdcore.presets_distilbert import DISTILBERT
from tests.apptest import chart, plotly_array, run_page


def _page(**params):
    return run_page("distilbert.py", 90, **params)


def _copied(fig: dict) -> list[tuple[float, float]]:
    """The (student row, teacher row) of every copy line, as drawn."""
    return [(t["y"][0], t["y"][1]) for t in fig["data"] if t.get("mode") == "lines"]


@pytest.mark.parametrize(("keep", "rows"), [("1, 3", [1, 3]), ("2, 4", [2, 4])])
def test_the_start_follows_the_url_and_is_computed_live(no_shipped, store_path, keep, rows):
    at = _page(keep=keep)
    assert not at.exception
    # embeddings (row 0) and head (row 5) always, then the chosen blocks, in order
    assert [t for _, t in _copied(chart(at, "init"))] == [0, *rows, 5]
    starts = chart(at, "starts")
    bars = starts["data"][0]
    assert list(bars["x"]) == ["1, 2", "1, 3", "1, 4", "2, 3", "2, 4", "3, 4"]
    values = dict(zip(bars["x"], plotly_array(bars["y"]), strict=True))
    chosen = [x for x, c in zip(bars["x"], bars["marker"]["color"], strict=True) if c != "#ced4da"]
    assert chosen == [keep]
    caption = next(c.value for c in at.caption if "before any training" in c.value)
    assert f"{values[keep]:.3g} bits per character" in caption
    # the shipped teacher: one of every two from the first is the best start, and every start
    # without block 1 is worse than random weights (measured, and said on the page)
    assert min(values, key=values.get) == "1, 3"
    assert "best of the 6 choices here is blocks 1 and 3" in caption
    random = float(caption.split(" from random weights")[0].rsplit("against ", 1)[1])
    assert all(values[x] > random for x in ("2, 3", "2, 4", "3, 4"))
    assert all(values[x] < random for x in ("1, 2", "1, 3", "1, 4"))
    loss = at.table[0].value
    assert list(loss.columns) == ["α_ce·T²·KL", "α_lm·CE", "α_cos·L_cos"]
    start, rand = loss.iloc[0], loss.iloc[1]
    assert all(start < rand) if keep == "1, 3" else start["α_cos·L_cos"] < rand["α_cos·L_cos"]
    assert [b.label for b in at.button] == ["Run it now"]  # no run shipped or stored
    links = " ".join(m.value for m in at.markdown)
    assert "](/hidden-states)" in links and "](/language-models)" in links  # see also


@pytest.mark.parametrize("params", [{"keep": "1, 5"}, {"keep": "3"}, {"ep_distilbert": "-3"}])
def test_odd_url_values_fall_back_without_a_traceback(no_shipped, store_path, params):
    at = _page(**params)
    assert not at.exception
    if "keep" in params:  # back to the paper's blocks 1 and 3
        assert [t for _, t in _copied(chart(at, "init"))] == [0, 1, 3, 5]


def test_the_figures_draw_what_they_are_given():
    fig = init_figure((1, 3), 4)
    lines = [tuple(t.y) for t in fig.data if t.mode == "lines"]
    assert lines == [(0, 0), (5 / 3, 1), (10 / 3, 3), (5, 5)]
    teacher = next(t for t in fig.data if t.mode == "markers+text" and t.x[0] == 1)
    assert [c == "#ced4da" for c in teacher.marker.color] == [False, False, True, False, True,
                                                               False]  # fmt: skip
    fig = starts_figure({(1, 2): 0.3, (1, 3): 0.15}, (1, 2), 4.0, 0.003)
    assert list(fig.data[0].x) == ["1, 2", "1, 3"] and fig.layout.yaxis.type == "log"
    fig = curves_figure({"distilbert": [0.15, 0.01], "hard": [4.0, 0.5]}, {"distilbert"})
    assert [t.line.dash for t in fig.data] == ["solid", "dot"]
    fig = ablation_figure({"no_kd": 0.0005, "init_only": -0.0001}, {"no_kd": -2.96})
    assert list(fig.data[0].x) == pytest.approx([0.5, -0.1])
    assert list(fig.data[1].x) == [2.96] and list(fig.data[1].y) == [LABEL["no_kd"]]
    assert list(fig.data[0].y) == [LABEL["no_kd"], LABEL["init_only"]]
    assert set(DISTILBERT) <= set(LABEL)


def test_the_shipped_run_is_drawn_without_training(store_path):
    from kdcore.reference import load_references

    res = load_references()[0]["distilbert"].result
    models, floor = res["models"], res["floor_bits"]
    at = _page()
    assert any(c.value.startswith("The shipped run: preset distilbert") for c in at.caption)
    curves = chart(at, "curves")
    students = [t for t in curves["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in students] == [LABEL[n] for n in DISTILBERT]
    full = next(t for t in students if t["name"] == LABEL["distilbert"])
    epochs = res["history"]["distilbert"]
    want = [models["distilbert"]["start_kl_true"], *(r["extra"]["bits_per_char"] - floor
                                                     for r in epochs)]  # fmt: skip
    assert list(plotly_array(full["y"])) == pytest.approx(want)
    dashes = {t["name"]: t["line"]["dash"] for t in students}
    assert dashes[LABEL["hard"]] == dashes[LABEL["random_init"]] == "dot"
    assert dashes[LABEL["distilbert"]] == dashes[LABEL["no_kd"]] == "solid"
    ablation = chart(at, "ablation")
    here = dict(zip(ablation["data"][0]["y"], plotly_array(ablation["data"][0]["x"]), strict=True))
    cost = 1000 * (models["no_cos"]["kl_true"] - models["distilbert"]["kl_true"])
    assert here[LABEL["no_cos"]] == pytest.approx(cost)
    paper = dict(zip(ablation["data"][1]["y"], ablation["data"][1]["x"], strict=True))
    assert paper[LABEL["random_init"]] == 3.69 and paper[LABEL["no_kd"]] == 2.96
    size = models["distilbert"]["params"] / models["teacher"]["params"]
    assert any(f"{size:.0%} of the teacher's parameters" in c.value for c in at.caption)
    table = at.table[-1].value
    assert list(table["model"]) == ["teacher", *(LABEL[n] for n in DISTILBERT)]
    assert list(table["starts from"])[1:3] == ["random", "teacher"]
