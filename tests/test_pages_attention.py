"""AppTest for the MiniLM page: the shipped teacher's relations live (the controls in the URL,
odd values refused), the shipped run drawn without training, and an empty store offering one."""

from __future__ import annotations

import json

import pytest
import torch

from app.attention_figures import PAIR_TITLE, relation_caption, relation_maps_figure
from app.lm_figures import LABEL
from kdcore.gpt import load_lm
from kdcore.language import LANGUAGE, PROMPT
from kdcore.lm import sample_texts
from kdcore.losses.minilm import model_relations
from kdcore.presets_lm import ASSET, N_WORDS
from kdcore.presets_minilm import MINILM, map_text
from tests.apptest import plotly_array, run_page


def _page(**params):
    return run_page("attention.py", 90, **params)


def _chart(at, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id)


def test_the_teachers_relations_follow_the_url(no_shipped, store_path):
    at = _page(doc="5", block="2", rel="v-v", heads="8")
    fig = _chart(at, "teacher_maps")
    maps = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(maps) == 8  # one panel per relation head
    text = map_text(PROMPT + LANGUAGE.text(sample_texts(6, N_WORDS, 2024).words[5]))
    want = model_relations(load_lm(ASSET)[0], torch.tensor([LANGUAGE.chars.encode(text)]), 8, 1)
    got = torch.from_numpy(plotly_array(maps[3]["z"]).copy()).nan_to_num(0.0)
    torch.testing.assert_close(got, want["vv"][0, 3].double(), atol=1e-6, rtol=0)
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles[3] == "head 4"
    caption = next(c.value for c in at.caption if "The teacher's block 2" in c.value)
    assert "value–value: row i" in caption
    assert f"“{text}”" in caption and "8 relation heads of 16" in caption
    assert [b.label for b in at.button] == ["Run it now"]  # no run shipped or stored


@pytest.mark.parametrize("params", [{"heads": "3"}, {"block": "9"}, {"rel": "xy"},
                                    {"doc": "abc"}, {"who": "nope"}])  # fmt: skip
def test_odd_url_values_fall_back_without_a_traceback(store_path, params):
    at = _page(**params)
    fig = _chart(at, "teacher_maps")
    assert len([t for t in fig["data"] if t["type"] == "heatmap"]) in (4, 1, 2, 8, 16)


def test_the_shipped_run_is_drawn_without_training(store_path):
    from kdcore.reference import load_references

    res_models = load_references()[0]["minilm-relations"].result["models"]
    at = _page(who=LABEL["attention_value"], srel="v-v")
    assert any(c.value.startswith("The shipped run: preset minilm-relations") for c in at.caption)
    kls = _chart(at, "relation_kls")
    assert [t["name"] for t in kls["data"]] == list(PAIR_TITLE.values())
    assert kls["data"][0]["x"] == [LABEL[n] for n in MINILM]
    maps = _chart(at, "student_maps")
    titles = [a["text"] for a in maps["layout"]["annotations"]]
    assert titles == ["teacher", "real text only", "MiniLM:<br>q-k + v-v"]
    text = load_references()[0]["minilm-relations"].result["relation_maps"]["text"]
    said = f"The value–value relation of each model's last block on “{text}”"
    assert any(c.value.startswith(said) for c in at.caption)
    kl = _chart(at, "results")
    assert [round(v, 2) for v in plotly_array(kl["data"][0]["y"])] == [
        round(1000 * res_models[n]["kl_true"], 2) for n in ("teacher", *MINILM)
    ]
    table = at.table[0].value
    assert list(table["model"]) == ["teacher", *(LABEL[n] for n in MINILM)]
    assert any("Nearest on q-q + k-k + v-v" in c.value for c in at.caption)


def test_the_caption_reads_the_run():
    models = {"hard": {"relation_kl": 2.4}, "word_kd": {"relation_kl": 2.5},
              "qkv_relations": {"relation_kl": 0.04}}  # fmt: skip
    text = relation_caption(models)
    assert f"{LABEL['qkv_relations']}, 0.040 nats, against 2.400 for real text alone" in text
    assert relation_caption({}) == "This run kept no relation KLs."


def test_maps_are_blank_above_the_diagonal_and_square():
    fig = relation_maps_figure({"a": [[1, 0], [0.5, 0.5]], "b": [[1, 0], [0.2, 0.8]]}, "ab")
    z = fig.data[0].z
    assert z[0][1] != z[0][1]  # NaN: a causal row has nothing to its right
    assert all(ax.scaleanchor for ax in fig.select_yaxes())


@pytest.mark.parametrize("page", ["attention.py", "lm.py"])
def test_a_damaged_teacher_file_costs_one_line(page, tmp_path, monkeypatch, store_path):
    """Both language-model pages load the shipped teacher through one helper: a damaged file is
    one line and the page stops there, never a traceback."""
    import kdcore.presets_lm
    from app import ui

    bad = tmp_path / "lm-teacher.safetensors"
    bad.write_bytes(b"not a safetensors file" * 10)
    monkeypatch.setattr(kdcore.presets_lm, "ASSET", bad)
    ui._lm_teacher.clear()
    try:
        at = run_page(page, 90)
        said = [c.value for c in at.caption if "train_lm_teacher.py" in c.value]
        assert len(said) == 1 and "\n" not in said[0]
        assert not at.get("plotly_chart")
    finally:
        ui._lm_teacher.clear()
