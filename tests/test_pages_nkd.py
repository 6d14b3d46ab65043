"""AppTest for the DKD page's section on normalized KD (NKD): the chart is the demo models'
normalised distributions over the other digits at the page's T, the tables KD's exact three-way
split and NKD's two parts at the URL's γ, for the image and over the test set; the section offers
its preset's run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdcore.losses.dkd import non_target_log_probs
from kdcore.losses.nkd import kd_split, non_target_part
from tests.apptest import plotly_array, run_page

TIMEOUT = 120  # the first run loads MNIST and the demo models


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_the_section_draws_the_demo_models_parts_at_the_pages_t_and_urls_gamma(
    no_shipped, store_path
):
    from app.ui import load_demo, models_dir

    bundle = load_demo(str(models_dir()))
    at = run_page("dkd.py", TIMEOUT, digit="3", idx="0", T="2", nkd_gamma="4")
    assert at.slider(key="nkd_gamma").value == 4.0
    index = int(bundle.by_digit[3][0])
    s, t = bundle.student_logits[index : index + 1], bundle.teacher_logits[index : index + 1]
    y = bundle.data.y_test[index : index + 1]
    teacher, student = _chart(at, "nkd_non_target")["data"]
    assert list(teacher["x"]) == [str(d) for d in range(10) if d != 3]
    want = non_target_log_probs(t, y, 2.0).exp()[0].numpy()
    assert plotly_array(teacher["y"]) == pytest.approx(want, rel=1e-5)
    want = non_target_log_probs(s, y, 2.0).exp()[0].numpy()
    assert plotly_array(student["y"]) == pytest.approx(want, rel=1e-5)
    # the tables: KD's parts at T = 1 summing to its cross-entropy; NKD's at λ = T, γ from the URL
    parts = {k: float(v[0]) for k, v in kd_split(s, t, y).items()}
    here = next(tb.value for tb in at.table if "rest term" in tb.value.columns)
    assert here.loc["KD (T = 1)", "total"] == pytest.approx(parts["cross_entropy"], rel=1e-4)
    assert here.loc["KD (T = 1)", "wrong digits"] == pytest.approx(parts["non_target"], rel=1e-4)
    nkd_non = float(non_target_part(s, t, y, 2.0))
    assert here.loc["NKD", "rest term"] == 0.0
    assert here.loc["NKD", "wrong digits"] == pytest.approx(4 * nkd_non, rel=1e-4)
    assert here.loc["NKD", "label term"] == pytest.approx(parts["target"], rel=1e-4)
    mean = [tb.value for tb in at.table if "rest term" in tb.value.columns][1]
    every = kd_split(bundle.student_logits, bundle.teacher_logits, bundle.data.y_test)
    assert mean.loc["KD (T = 1)", "total"] == pytest.approx(
        float(every["cross_entropy"].mean()), rel=1e-4)  # fmt: skip
    caption = next(c.value for c in at.caption if "times as much" in c.value)
    w = parts["weight"]
    assert f"1 − T_t = {w:.2e}" in caption and f"{4 / w:,.0f} times as much" in caption
    median = float(np.median(every["weight"].numpy()))
    assert f"median weight is {median:.2e}" in caption
    assert any("No completed nkd-mnist run" in i.value for i in at.info)


def test_gamma_moves_only_nkds_row(no_shipped, store_path):
    at = run_page("dkd.py", TIMEOUT, nkd_gamma="0")
    zero = next(tb.value for tb in at.table if "rest term" in tb.value.columns)
    at.slider(key="nkd_gamma").set_value(2.0).run()
    two = next(tb.value for tb in at.table if "rest term" in tb.value.columns)
    assert zero.loc["KD (T = 1)"].tolist() == two.loc["KD (T = 1)"].tolist()
    assert zero.loc["NKD", "wrong digits"] == 0.0 and two.loc["NKD", "wrong digits"] > 0
    assert two.loc["NKD", "label term"] == zero.loc["NKD", "label term"]
