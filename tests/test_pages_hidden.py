"""AppTest for the TinyBERT page: the layer mapping in the URL drawn from the registry's entry
(odd values refused), the shipped run drawn without training, and an empty store offering one."""

from __future__ import annotations

import pytest

from app.hidden_figures import layer_map_figure, projector_figure, readout_figure
from app.lm_figures import LABEL
from kdcore.losses.tinybert import layer_map
from kdcore.presets_tinybert import TINYBERT
from tests.apptest import chart, plotly_array, run_page


def _page(**params):
    return run_page("hidden.py", 60, **params)


def _lines(fig: dict) -> list[tuple[float, float]]:
    """The mapping's (student depth, teacher layer) pairs, as drawn."""
    return [(t["y"][0], t["y"][1]) for t in fig["data"] if t.get("mode") == "lines"]


@pytest.mark.parametrize(("mapping", "want"), [("top", [(0, 0), (2, 3), (4, 4)]),
                                               ("bottom", [(0, 0), (2, 1), (4, 2)])])  # fmt: skip
def test_the_mapping_follows_the_url(no_shipped, store_path, mapping, want):
    at = _page(map=mapping)
    assert _lines(chart(at, "layer_map")) == want  # student block m drawn at depth 2m
    caption = next(c.value for c in at.caption if "the student's 2 blocks" in c.value.lower())
    n = dict(layer_map(mapping, 2, 4))[1]
    assert f"student block 1 → teacher block {n}" in caption
    assert [b.label for b in at.button] == ["Run it now"]  # no run shipped or stored
    links = " ".join(m.value for m in at.markdown)
    assert "](/attention-relations)" in links and "](/projector)" in links  # see also


@pytest.mark.parametrize("params", [{"map": "middle"}, {"map": ""}, {"ep_tinybert": "-3"}])
def test_odd_url_values_fall_back_without_a_traceback(no_shipped, store_path, params):
    at = _page(**params)
    assert not at.exception
    assert _lines(chart(at, "layer_map")) in ([(0, 0), (2, 2), (4, 4)], [])


def test_the_shipped_run_is_drawn_without_training(store_path):
    from kdcore.reference import load_references

    res = load_references()[0]["tinybert-hidden"].result
    models = res["models"]
    at = _page(map="top")
    assert not at.exception
    assert any(c.value.startswith("The shipped run: preset tinybert-hidden") for c in at.caption)
    kl = chart(at, "results")
    assert [round(v, 2) for v in plotly_array(kl["data"][0]["y"])] == [
        round(1000 * models[n]["kl_true"], 2) for n in ("teacher", *TINYBERT)
    ]
    readout = chart(at, "readout")
    heat = [t for t in readout["data"] if t["type"] == "heatmap"]
    assert [round(v, 4) for v in plotly_array(heat[1]["z"])[-1]] == models["hidden_top"][
        "readout_r2"][-1]  # fmt: skip
    said = f"{models['hidden_top']['r2_last']:.3f} from the top-mapped student's"
    assert any(said in c.value for c in at.caption)
    spectra = chart(at, "projector")
    epochs = len(res["history"]["hidden_top"])
    last = res["history"]["hidden_top"][-1]["extra"]["projector_sv"]
    assert [t["name"] for t in spectra["data"]] == [
        *(f"epoch {e + 1}" for e in range(epochs)),
        "uniform, last epoch",
        "bottom, last epoch",
    ]
    assert list(plotly_array(spectra["data"][epochs - 1]["y"])) == pytest.approx(last)
    bottom = res["history"]["hidden_bottom"][-1]["extra"]["projector_sv"]
    assert list(plotly_array(spectra["data"][-1]["y"])) == pytest.approx(bottom)
    assert any(f"bottom {bottom[-1]:.3f}" in c.value for c in at.caption)
    table = at.table[0].value
    assert list(table["model"]) == ["teacher", *(LABEL[n] for n in TINYBERT)]


def test_the_figures_draw_what_they_are_given():
    fig = layer_map_figure(layer_map("uniform", 2, 4), 2, 4)
    assert [tuple(t.y) for t in fig.data if t.mode == "lines"] == [(0, 0), (2, 2), (4, 4)]
    fig = readout_figure({"a": [[0.5, 0.6], [0.7, 0.9]]}, [(0, 0), (1, 1)])
    assert [(s.x0, s.y0) for s in fig.layout.shapes] == [(-0.5, -0.5), (0.5, 0.5)]
    fig = projector_figure([[3.0, 1.0, 0.1], [4.0, 2.0, 0.01]], {"top": [2.0, 1.0, 0.5]})
    assert [t.name for t in fig.data] == ["epoch 1", "epoch 2", "top"]
    assert fig.data[-1].line.dash == "dash"
    assert fig.layout.yaxis.type == "log"
