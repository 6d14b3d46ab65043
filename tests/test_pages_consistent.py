"""AppTest for the patient-and-consistent page: the four teacher views of the image and draw in
the URL, computed live (the KLs are the core's, on the demo teacher), the stored run's curves,
table and verdict as the run recorded them, the offer of a run at the preset's own length, and
odd URL values as one line."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.consistent_figures import (
    LABELS,
    errors_figure,
    fidelity_figure,
    log_ticks,
    table_rows,
    verdict,
)
from kdcore.consistency import KINDS, teacher_views
from kdcore.presets_consistent import PRESET, STUDENTS
from kdcore.reference import load_references, reference_dir
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180


def _page(**params: str) -> AppTest:
    return run_page("consistent.py", TIMEOUT, **params)


def _kls(at: AppTest) -> list[str]:
    return [m.value for m in at.metric if m.label == "target off by (KL)"]


def test_the_four_views_are_computed_live_for_the_image_and_draw(store_path):
    from app.ui import load_demo, models_dir

    at = _page(digit="3", idx="2", draw="5")
    bundle = load_demo(str(models_dir()))
    data, net = bundle.data, bundle.teacher
    index = int(torch.nonzero(data.y_test == 3)[2])
    partner = int(torch.randint(len(data.y_test), (1,), generator=torch.Generator().manual_seed(6)))
    views = teacher_views(data.x_test[index : index + 1], data.x_test[partner : partner + 1], 2, 5)
    want, targets = [], []
    with torch.no_grad():
        for kind in KINDS:
            seen, shown = views[kind]
            own, target = torch.softmax(net(seen), 1)[0], torch.softmax(net(shown), 1)[0]
            want.append(f"{float((own * (own.log() - target.log())).sum()):.3f}")
            targets.append(target.numpy())
    assert _kls(at) == want
    assert want[2] == want[3] == "0.000" and float(want[0]) > 0 and float(want[1]) > 0
    bars = chart(at, "targets")["data"]
    for bar, target in zip(bars, targets, strict=True):
        assert plotly_array(bar["y"]) == pytest.approx(target, abs=1e-6)
    assert any(f"Test image #{index}, a 3" in c.value and "(draw 5)" in c.value for c in at.caption)


def test_the_stored_run_is_drawn_as_it_was_recorded(store_path):
    ref = load_references(reference_dir())[0][PRESET]
    models, history = ref.result["models"], ref.result["history"]
    at = _page()
    lines = chart(at, "patience")["data"]
    assert [t["name"] for t in lines] == [LABELS[n] for n in STUDENTS]
    for line, name in zip(lines, STUDENTS, strict=True):
        want = [round(10_000 * (1 - r["test_accuracy"])) for r in history[name]]
        assert list(plotly_array(line["y"])) == want
    table = next(f.value for f in at.dataframe if "student" in f.value.columns)
    assert list(table["test errors"]) == [models[n]["test_errors"] for n in STUDENTS]
    assert list(table["KL, test images"]) == [models[n]["kl_test"] for n in STUDENTS]
    assert verdict(models) in " ".join(m.value for m in at.markdown)
    assert chart(at, "fidelity")


def test_with_no_run_the_page_offers_one_at_the_presets_length(store_path, no_shipped):
    at = _page()
    assert [b.label for b in at.button] == ["Run it now"]
    box = at.number_input(key="ep_consistent")
    assert box.value == 800 and box.max == 2000
    assert not [c for c in at.get("plotly_chart") if "patience" in c.proto.id]


@pytest.mark.parametrize("draw", ["-1", "x", "10000"])
def test_a_draw_it_cannot_take_falls_back_with_a_notice(store_path, draw):
    at = _page(draw=draw)
    assert at.number_input(key="draw").value == 0
    assert any("draw" in t.value for t in at.toast)


def test_the_figures_and_words_read_the_run():
    recs = [{"epoch": e, "test_accuracy": 0.95, "extra": {"kl_train": 0.01, "kl_test": 0.1}}
            for e in (1, 2)]  # fmt: skip
    history = {"student_fixed": recs, "student_consistent": recs}
    fig = errors_figure(history, ["student_fixed", "student_consistent"])
    assert [t.name for t in fig.data] == ["fixed teacher", "consistent views"]
    assert list(fig.data[0].y) == [500, 500]
    fig = fidelity_figure(history, ["student_fixed"])
    assert [list(t.y) for t in fig.data] == [[0.01, 0.01], [0.1, 0.1]]
    models = {"student_hard": {"test_errors": 700}, "student_fixed": {"test_errors": 650,
              "kl_train": 0.01, "kl_test": 0.2, "agreement": 0.93},
              "student_consistent": {"test_errors": 420, "kl_train": 0.02, "kl_test": 0.09,
                                     "agreement": 0.96}}  # fmt: skip
    said = verdict(models)
    assert "taught by **consistent views** (420 test errors)" in said
    assert ("grows: fixed teacher from 0.010 to 0.200 (×20.0); consistent views from 0.020 to "
            "0.090 (×4.5).") in said  # fmt: skip
    rows = table_rows(models, ["student_hard", "student_fixed"])
    assert rows[1] == {"student": "fixed teacher", "test errors": 650, "KL, transfer images": 0.01,
                       "KL, test images": 0.2, "agrees with the teacher": 0.93}  # fmt: skip


def test_log_ticks_are_one_two_five_within_the_data():
    assert log_ticks([270, 8700])["tickvals"] == [200, 500, 1000, 2000, 5000, 10000]
    assert log_ticks([0.008, 2.3])["ticktext"] == ["0.01", "0.1", "1"]  # wide: decades only
