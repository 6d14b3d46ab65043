"""AppTest for the training-modes page: every mode renders with an empty store and offers a
run; every mode shows a completed run of its preset (really run on a slice of MNIST and
written to the store, no training in the page); a mutual-learning run in flight shows the
peers' curves live, split out of the one joint step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdcore.presets import PRESETS, run_preset
from kdcore.store import Store
from tests.test_modes import TINY, TINY_OVERRIDES
from tests.tiny_mnist import write_tiny_mnist

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "modes.py")
MODES = tuple(TINY_OVERRIDES)
TIMEOUT = 60


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Each mode preset run once for real on 200 training images, one epoch."""
    folder = str(write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=300))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for name in MODES:
            result = run_preset(name, data_dir=folder, **TINY, **TINY_OVERRIDES[name])
            out[name] = json.loads(json.dumps(result))
        return out
    finally:
        torch.set_num_threads(before)


def _page(**params) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_offers_a_run_when_the_store_is_empty(no_shipped, store_path, mode):
    at = _page(mode=mode)
    assert at.segmented_control(key="mode").value == mode
    assert f"No completed {mode} run" in at.info[0].value
    assert any(b.label == "Run it now" for b in at.button)
    assert len(at.get("latex")) == 1 and not _charts(at)


def test_the_views_are_the_map_s_cells_grouped_by_mode(no_shipped, store_path):
    """The page offers every modes preset, each once, in the overview map's place: the online
    views first, then self, then offline, and says which knowledge each passes on."""
    from app.catalog import mode_views

    placed = mode_views()
    assert list(placed) == ["Online", "Self", "Offline"]
    offered = [view for views in placed.values() for view in views]
    assert sorted(offered) == sorted(MODES) and len(set(offered)) == len(offered)
    at = _page()
    assert at.segmented_control(key="mode").options == offered
    said = next(c.value for c in at.caption if c.value.startswith("**Online**"))
    assert "mutual-contrastive (relation)" in said and "**Self**: born-again (response)" in said
    assert "class-wise (relation)" in said and "**Offline**: ensemble (response)" in said


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_shows_its_stored_run(store_path, results, mode):
    result = results[mode]
    store = Store(store_path)
    run_id = store.create("preset", mode, result["config"], f"test-{mode}")
    store.finish(run_id, "completed", "", result)
    at = _page(mode=mode)
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
    charts = _charts(at)
    assert charts, "no chart drawn"
    text = json.dumps(charts)
    if mode == "mutual-learning":
        peer = result["peers"]["peer_1"]["test_accuracy"]
        assert at.metric[0].value == f"{100 * peer:.2f}%"
        assert "peer_1, mutual" in text and "net alone" in text
    elif mode == "born-again":
        assert "ensemble" in text and len(at.dataframe[0].value) == 3
        at.number_input(key="img").set_value(2).run()
        assert not at.exception
        label = result["probe"]["labels"][2]
        assert f"for this {label}" in json.dumps(_charts(at))
    elif mode == "ensemble":
        assert len(charts) == 2 and len(at.dataframe[0].value) == 6
    elif mode == "teacher-free":
        table = at.dataframe[0].value
        assert table.iloc[0]["3"] == pytest.approx(0.9 + 0.01, abs=1e-4)  # uniform, eps 0.1
    elif mode == "teacher-assistant":
        assert "via a mlp-10 assistant" in text
    elif mode == "deep-supervision":
        assert "exit after hidden1" in text
    elif mode == "mutual-contrastive":
        errors = {k: m["test_errors"] for k, m in result["models"].items()}
        assert at.metric[0].value == f"{errors['mcl_1']} errors"
        bars = [t for t in charts[0]["data"] if t["type"] == "bar"]
        assert [t["name"] for t in bars] == ["alone", "mutual learning (predictions)",
                                             "MCL (relations)"]  # fmt: skip
        assert bars[2]["y"] == [errors["mcl_1"], errors["mcl_2"]]
        gaps = {t["name"]: t["y"] for t in charts[1]["data"]}
        # each setting keeps its colour from the bars to the lines
        bar_colour = {t["name"]: t["marker"]["color"] for t in bars}
        bar_colour["alone, after its last epoch"] = bar_colour["alone"]  # the dashed line's entry
        for t in charts[1]["data"]:
            assert t["line"]["color"] == bar_colour[t["name"]], t["name"]
        last = result["settings"]["mcl"]["peers"]["mcl_1"]["history"][-1]["extra"]
        assert gaps["MCL (relations)"][-1] == last["relation_gap"]
        assert any(f"{result['alone_relation_gap']:.4f} for the pair trained alone" in c.value
                   for c in at.caption)  # fmt: skip
    elif mode == "class-wise":
        errors = {k: m["test_errors"] for k, m in result["models"].items()}
        assert at.metric[1].value == f"{errors['student_cskd']} errors"
        lines = [t for t in charts[0]["data"] if t.get("legendgroup") == "student_cskd"]
        assert len(lines) == 3  # intra-class KL, ECE, confidence
        extra = result["history"]["student_cskd"][-1]["extra"]
        assert [t["y"][-1] for t in lines] == [extra["intra_class_kl"], extra["ece"],
                                               extra["confidence"]]  # fmt: skip
        assert any("two test images of one class differ by" in c.value for c in at.caption)
    elif mode == "uskd":
        errors = {k: m["test_errors"] for k, m in result["models"].items()}
        assert [m.value for m in at.metric] == [f"{errors[n]} errors" for n in
                                                ("student_hard", "student_kd", "student_uskd",
                                                 "student_uskd_imagenet")]  # fmt: skip
        assert (
            at.metric[2].delta
            == f"{errors['student_uskd'] - errors['student_hard']:+d} vs hard labels"
        )
        lines = {(t["name"], t["xaxis"]): t["y"] for t in charts[0]["data"]}
        last = result["history"]["student_uskd"][-1]["extra"]["rank_profile"]
        assert lines[("USKD, CIFAR weights", "x")] == last
        assert lines[("teacher", "x")] == result["teacher_rank_profile"]
        zipf = [1 / r for r in range(2, 11)]
        assert lines[("Zipf labels", "x")] == pytest.approx([z / sum(zipf) for z in zipf], rel=1e-6)
        assert lines[("USKD, CIFAR weights", "x2")] == [
            r["extra"]["rank_profile"][0] for r in result["history"]["student_uskd"]
        ]
        own = result["history"]["student_uskd"][-1]["extra"]
        assert any(f"{100 * own['weak_accuracy']:.1f}% of the training images" in c.value
                   for c in at.caption)  # fmt: skip
    elif mode == "online-features":
        errors = {k: m["test_errors"] for k, m in result["models"].items()}
        assert at.metric[0].value == f"{errors['afd_1']} errors"
        assert at.metric[0].delta.startswith(f"{errors['afd_1'] - errors['alone_1']:+d} vs alone")
        bars = [t for t in charts[0]["data"] if t["type"] == "bar"]
        assert [t["name"] for t in bars] == ["alone", "mutual learning", "+ L1 on features",
                                             "+ AFD (adversarial)"]  # fmt: skip
        assert bars[3]["y"] == [errors["afd_1"], errors["afd_2"]]
        # the discriminators' scores per epoch, from the run's own history
        last = result["settings"]["afd"]["peers"]["afd_1"]["history"][-1]["extra"]
        lines = {t["name"]: t["y"] for t in charts[1]["data"] if t.get("name")}
        assert lines["D of afd_2: its peer's features"][-1] == last["afd_2_peer"]


def test_a_mutual_learning_run_in_flight_is_drawn_live(store_path, results):
    store = Store(store_path)
    run_id = store.create("preset", "mutual-learning", {"epochs": 2, "seed": 0}, "live",
                          status="running", device="cpu")  # fmt: skip
    for record in results["mutual-learning"]["history"]["peer_1"]:
        store.append_epoch(run_id, "peers", {**record, "model": "peer_1"})
    for record in results["mutual-learning"]["history"]["peer_2"]:
        store.append_epoch(run_id, "peers", {**record, "model": "peer_2"})
    store.set_progress(run_id, 0.25, {"model": "peers", "index": 0, "count": 4, "epoch": 1,
                                      "epochs": 2})  # fmt: skip
    at = _page(mode="mutual-learning")
    assert any(f"Run #{run_id} is under way" in c.value for c in at.caption)
    text = json.dumps(_charts(at))
    assert "peer_1, mutual" in text and "peer_2, mutual" in text


@pytest.mark.parametrize(
    ("mode", "cited"),
    [("born-again", "Furlanello et al. 2018, Table 2"),
     ("teacher-assistant", "Mirzadeh et al. 2020, Table 1"),
     ("ensemble", "Hinton et al. 2015, Table 1"),
     ("uskd", "ImageNet top-1 accuracy %, alone and with USKD")],
)  # fmt: skip
def test_each_mode_shows_its_papers_table_from_the_preset(no_shipped, store_path, mode, cited):
    """The page draws the rows the preset quotes (one source of truth), under a citation."""
    paper = PRESETS[mode].paper
    at = _page(mode=mode)
    assert len(at.dataframe) == 1  # no run stored: the reference table only
    table = at.dataframe[0].value
    shown = table.astype(object).where(table.notna(), None).to_dict("records")  # NaN: None
    assert shown == paper[paper["table"]]
    assert any(c.value.startswith(f"Paper: {cited}") for c in at.caption)


def test_the_reference_numbers_are_the_papers(no_shipped, store_path):
    table = _page(mode="ensemble").dataframe[0].value
    assert list(table["test frame accuracy %"]) == [58.9, 61.1, 60.8]
    assert list(table["WER %"]) == [10.9, 10.7, 10.7]
    at = _page(mode="mutual-learning")
    assert not at.dataframe
    assert any("alone 68.99%, mutual 71.19%" in c.value for c in at.caption)
