"""The dist-stronger preset (DIST from stronger teachers, Huang et al. 2022): what it trains and
records, the configs it refuses before anything trains, and the DKD page's section that shows
it beside the paper's ImageNet table."""

from __future__ import annotations

import json

import pytest

from app.dist_views import gains, paper_gains, stronger_figure, verdict
from kdcore.presets_dist import DIST_IMAGENET
from kdcore.presets_stronger import PRESET, student_name
from kdcore.runner import PRESETS, run_preset
from kdcore.store import Store
from tests.apptest import chart, run_page
from tests.tiny_mnist import write_tiny_mnist

TINY = {"epochs": 1, "per_class": 20, "teachers": ("mlp-10", "mlp-30"), "student": "mlp-8"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=400, n_test=200)


def test_each_teacher_teaches_the_student_by_kd_and_by_dist(tiny_dir):
    result = json.loads(json.dumps(run_preset(PRESET, data_dir=tiny_dir, **TINY)))
    assert result["status"] == "completed", result["message"]
    models = result["models"]
    students = [student_name(m, a) for a in ("mlp-10", "mlp-30") for m in ("kd", "dist")]
    assert list(models) == ["teacher_mlp-10", "teacher_mlp-30", "student_hard", *students]
    for a in ("mlp-10", "mlp-30"):
        kd, dist = models[student_name("kd", a)], models[student_name("dist", a)]
        assert kd["method"] == "kd" and kd["method_params"] == {"T": 4.0, "alpha": 0.9}
        assert dist["method"] == "dist"
        assert dist["method_params"] == {"beta": 1.0, "gamma": 1.0, "tau": 1.0}
        assert kd["arch"] == dist["arch"] == "mlp-8"
    rows = result["stronger"]
    assert [r["teacher"] for r in rows] == ["mlp-10", "mlp-30"]
    for r in rows:
        assert r["teacher_errors"] == models[f"teacher_{r['teacher']}"]["test_errors"]
        assert r["teacher_params"] == models[f"teacher_{r['teacher']}"]["params"]
        for m in ("kd", "dist"):
            assert r[m] == models[student_name(m, r["teacher"])]["test_errors"]
    assert rows[0]["teacher_params"] < rows[1]["teacher_params"]


def test_dist_overrides_reach_its_students(tiny_dir):
    tiny = {**TINY, "teachers": ("mlp-10",)}
    result = run_preset(PRESET, data_dir=tiny_dir, dist={"tau": 4.0, "beta": 2.0}, **tiny)
    params = result["models"][student_name("dist", "mlp-10")]["method_params"]
    assert params == {"beta": 2.0, "gamma": 1.0, "tau": 4.0}


@pytest.mark.parametrize(
    "changes, said",
    [({"teachers": ()}, "at least one"), ({"dist": {"beta": -1}}, "dist: β"),
     ({"dist": {"bogus": 1}}, "no parameter bogus"), ({"T": 0}, "temperature"),
     ({"teachers": ("mlp-nope",)}, "mlp-nope")],
)  # fmt: skip
def test_a_config_it_cannot_run_is_refused_before_anything_trains(changes, said):
    with pytest.raises(ValueError, match=said):
        PRESETS[PRESET].with_changes(changes)


def test_the_paper_gains_are_the_claims_numbers():
    """The figure's paper panel, read off the official README's table, gives the gains the
    preset's claim quotes (1.45 and 1.36 by KD, 2.31 and 2.48 by DIST)."""
    g = paper_gains(DIST_IMAGENET)
    assert g["kd"][0] == 1.45 and g["kd"][-1] == 1.36
    assert g["dist"][0] == 2.31 and g["dist"][-1] == 2.48
    claim = PRESETS[PRESET].paper["claims"][0]
    assert all(f"{v:.2f}" in claim for v in (1.45, 1.36, 2.31, 2.48))


ROWS = [
    {"teacher": "mlp-30", "teacher_params": 24_000, "teacher_errors": 300, "kd": 560, "dist": 540},
    {"teacher": "mlp-300", "teacher_params": 330_000, "teacher_errors": 150, "kd": 590,
     "dist": 520},
]  # fmt: skip


def test_the_figure_and_verdict_read_the_run():
    assert gains(ROWS, 530) == {"kd": [-0.3, -0.6], "dist": [-0.1, 0.1]}
    fig = stronger_figure(ROWS, 530)
    here = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in here] == ["KD", "DIST"]
    assert list(here[1].x) == [24_000, 330_000] and list(here[1].y) == pytest.approx([-0.1, 0.1])
    paper = [t for t in fig.data if t.xaxis == "x2"]
    assert list(paper[0].x) == DIST_IMAGENET["teachers"]
    said = verdict(ROWS, 530)
    assert "makes 590 errors by KD and 520 by DIST, against 530" in said
    assert "-0.60 and +0.10 points" in said and "ahead of KD's under 2 of the 2" in said


def test_the_dkd_page_shows_a_stored_run(store_path):
    models = {"student_hard": {"test_errors": 530, "test_accuracy": 0.947}}
    result = {"preset": PRESET, "status": "completed", "models": models, "stronger": ROWS,
              "config": {"epochs": 2}}  # fmt: skip
    store = Store(store_path)
    run_id = store.create("preset", PRESET, {"epochs": 2}, "k")
    store.finish(run_id, "completed", "", result)
    at = run_page("dkd.py", 180)
    fig = chart(at, "stronger")
    assert [t["name"] for t in fig["data"][:2]] == ["KD", "DIST"]
    assert verdict(ROWS, 530) in " ".join(m.value for m in at.markdown)
    table = next(f.value for f in at.dataframe if "student by DIST" in f.value.columns)
    assert list(table["student by KD"]) == [560, 590]
    assert any(f"Run #{run_id}" in c.value for c in at.caption)
