"""AppTest for the local-logits page: one test image through the shipped sdd-mnist run's teacher
(its cells at the URL's scales and temperature, which of them SD-KD weighs as complementary, the
soft targets each sends, all computed again here from the shipped weights by the loss's own
functions), the shipped run's students as recorded, odd URL values, the offer of a run where none
is shipped or stored, and the lab's one-line refusal of two MLPs."""

from __future__ import annotations

import numpy as np
import torch

from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.losses.sdd import complementary, region_logits
from kdcore.reference import load_references
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180
STUDENTS = ("student_hard", "student_kd", "student_sdd", "student_sdd_fine", "student_sdd_even")


def _shipped():
    return load_references()[0]["sdd-mnist"]


def _cells(index: int, scales=(1, 2, 4)) -> torch.Tensor:
    """Test image ``index``'s cells through the shipped teacher, (K, R)."""
    ref = _shipped()
    net = load_model(ref.path.parent / ref.weights["teacher"]["file"])[0]
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[index : index + 1])
    return region_logits(out.features["cam"], out.logits, list(scales))[0]


def test_the_page_draws_one_images_cells_their_targets_and_the_shipped_students(store_path):
    ref = _shipped()
    models, kept = ref.result["models"], ref.result["cells"]
    at = run_page("local_logits.py", TIMEOUT, img="8", scales="1,2", T="2",
                  sdd_who="student_sdd_fine", sdd_img=str(kept["indices"][1]))  # fmt: skip
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    for name in STUDENTS:
        assert shown[name] == f"{models[name]['test_errors']} errors"
    cells = _cells(8, (1, 2))
    probs = torch.softmax(cells / 2.0, 0)  # (K, 5) at the URL's T
    grid = chart(at, "sdd_grid")["data"]
    assert len(grid) == 2  # the whole image and its quarters
    assert np.allclose(plotly_array(grid[0]["z"]), probs[:, :1].max(0).values.reshape(1, 1))
    assert np.allclose(plotly_array(grid[1]["z"]), probs[:, 1:].max(0).values.reshape(2, 2),
                       atol=1e-6)  # fmt: skip
    targets = plotly_array(chart(at, "sdd_targets")["data"][0]["z"])
    assert np.allclose(targets, probs.T.numpy(), atol=1e-6)
    label = int(load_mnist().y_test[8])
    comp = int(complementary(cells[None], torch.tensor([label]))[0].sum())
    assert any(f"The whole image says {int(cells[:, 0].argmax())}; {comp} of its 4 cells" in c.value
               for c in at.caption)  # fmt: skip
    # the kept image's cells, the teacher's and the chosen student's, as recorded
    t_grid, s_grid = chart(at, "sdd_teacher")["data"], chart(at, "sdd_SD-KD, ")["data"]
    t_rec = torch.tensor(kept["teacher"][1])
    s_rec = torch.tensor(kept["students"]["student_sdd_fine"][1])
    for fig, rec in ((t_grid, t_rec), (s_grid, s_rec)):
        top = torch.softmax(rec / 4.0, 0)[:, 5:].max(0).values.reshape(4, 4)
        assert np.allclose(plotly_array(fig[2]["z"]), top.numpy(), atol=1e-6)
    lines = chart(at, "sdd_gaps")["data"]
    gaps = ref.result["cell_gap"]
    assert len(lines) == 3 * len(STUDENTS)  # a panel per scale
    for k, line in enumerate(lines):
        scale, name = ("1", "2", "4")[k // len(STUDENTS)], STUDENTS[k % len(STUDENTS)]
        assert plotly_array(line["y"]).tolist() == [e[scale] for e in gaps[name]]


def test_odd_url_values_fall_back_to_the_defaults_with_a_note(store_path):
    at = run_page("local_logits.py", TIMEOUT, img="99999", scales="1,3", T="nan", sdd_who="x",
                  sdd_img="-1")  # fmt: skip
    assert not at.exception
    assert at.button_group(key="scales").value == "1,2,4"
    assert at.slider(key="T").value == 4.0
    assert len(at.toast) >= 4
    # the default image: the one whose cells disagree most with the whole
    index = at.number_input(key="img").value
    cells = _cells(index)
    label = int(load_mnist().y_test[index])
    assert int(complementary(cells[None], torch.tensor([label]))[0].sum()) >= 4


def test_with_no_run_the_page_offers_one_and_turns_the_image_view_off(no_shipped, store_path):
    at = run_page("local_logits.py", TIMEOUT)
    assert not at.exception
    assert any("No completed sdd-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_sdd" for b in at.button)
    assert any("this view is off" in c.value for c in at.caption)
    assert not [c for c in at.get("plotly_chart") if "sdd_" in c.proto.id]


def test_in_the_lab_two_mlps_disable_start_with_the_reason_and_two_resnets_are_ready(store_path):
    at = run_page("lab.py", TIMEOUT)
    at.button_group(key="method").set_value("sdd").run()
    assert not at.exception and at.button[0].disabled
    assert [w.value for w in at.warning] == [
        "SD-KD needs a logit map, which the student does not have: a model ending in average "
        "pooling and a linear head (the ResNets)"
    ]
    at.selectbox(key="teacher").set_value("resnet20")
    at.selectbox(key="student").set_value("resnet8").run()
    assert not at.exception and not at.warning and not at.button[0].disabled
    shown = {n.key: n.value for n in at.number_input}
    assert shown["beta"] == 2.0 and shown["T"] == 4.0 and shown["ce_weight"] == 0.1
