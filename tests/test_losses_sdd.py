"""Scale decoupled distillation (Wei, Luo & Luo 2024): the cells' logits against a loop over the
model's own head, the loss against the official ``sdd_kd_loss`` written out (its weights by
correctness, its mean over the cells), the paper's rule against the code's, properties (with the
one scale 1 it is KD; β = 1 weighs every cell alike; the whole image's cell is never
complementary), finite differences, and the registered method's parts and one epoch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.kd import kd_loss
from kdcore.losses.sdd import complementary, region_logits, scale_list, sdd_loss
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def official_sdd_kd_loss(out_s_multi, out_t_multi, T, target):
    """The official ``sdd_kd_loss`` (``mdistiller/distillers/KD.py``) written out: (B, K, R) cells
    with the whole image first, KL·T² per cell, weight 2 where the cell's teacher prediction is
    right and the whole image's wrong or the other way round, 1 elsewhere, summed and divided by
    the B·R cells."""
    out_t = out_t_multi.permute(2, 0, 1).reshape(-1, out_t_multi.shape[1])
    out_s = out_s_multi.permute(2, 0, 1).reshape(-1, out_s_multi.shape[1])
    target_r = target.repeat(out_t_multi.shape[2])
    loss = F.kl_div(F.log_softmax(out_s / T, 1), F.softmax(out_t / T, 1), reduction="none")
    loss = (loss * T**2).sum(1)
    pred = out_t.argmax(1)
    b = len(target)
    global_right = (pred[:b] == target).repeat(out_t_multi.shape[2])
    local_right = pred == target_r
    index = torch.where(local_right != global_right, 2.0, 1.0).to(loss.dtype)
    index[:b] = 1.0
    return (loss * index).sum() / target_r.shape[0]


def cells(seed: int, shape=(5, 4, 5), dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_the_cells_are_the_models_head_on_each_cells_pooled_feature():
    torch.manual_seed(0)
    net = build_model("resnet8", in_shape=(1, 28, 28)).eval()
    with torch.no_grad():
        out = net.forward_features(torch.randn(3, 1, 28, 28))
        got = region_logits(out.features["cam"], out.logits, [1, 2, 4])
        feat = out.features["stage3"]
        want = [net.head(F.adaptive_avg_pool2d(feat, m).flatten(2).transpose(1, 2))
                for m in (1, 2, 4)]  # fmt: skip
    assert got.shape == (3, 10, 1 + 4 + 16)
    torch.testing.assert_close(got, torch.cat(want, 1).transpose(1, 2))
    torch.testing.assert_close(got[:, :, 0], out.logits)  # the 1 × 1 cell: the model's logits


@given(st.integers(0, 10_000), st.floats(0.5, 8.0))
@SETTINGS
def test_by_the_codes_rule_the_loss_is_the_official_codes(seed, T):
    s, t = cells(seed), cells(seed + 1)
    y = torch.randint(0, 4, (5,), generator=torch.Generator().manual_seed(seed))
    y[:2] = t[:2, :, 0].argmax(1)  # some images the teacher gets right as a whole
    got = sdd_loss(s, t, y, T, 2.0, "label")
    torch.testing.assert_close(got, official_sdd_kd_loss(s, t, T, y))


def test_the_papers_rule_and_the_codes_differ_only_where_both_are_wrong_about_other_classes():
    # one image, K = 3 classes, R = 3 cells, the label 0
    t = torch.zeros(1, 3, 3)
    t[0, 1, 0] = 5.0  # the whole image: class 1 (wrong)
    t[0, 0, 1] = 5.0  # cell 1: class 0 (right)
    t[0, 2, 2] = 5.0  # cell 2: class 2 (wrong, another class)
    y = torch.tensor([0])
    assert complementary(t, y, "class").tolist() == [[False, True, True]]
    assert complementary(t, y, "label").tolist() == [[False, True, False]]


@given(st.integers(0, 10_000))
@SETTINGS
def test_the_whole_images_cell_is_never_complementary(seed):
    t = cells(seed)
    y = torch.randint(0, 4, (5,), generator=torch.Generator().manual_seed(seed))
    for rule in ("class", "label"):
        assert not complementary(t, y, rule)[:, 0].any()


@given(st.integers(0, 10_000), st.floats(0.5, 8.0), st.floats(0.0, 5.0))
@SETTINGS
def test_at_the_one_scale_1_it_is_kd(seed, T, beta):
    s, t = cells(seed, (6, 5, 1)), cells(seed + 1, (6, 5, 1))
    y = torch.randint(0, 5, (6,), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(sdd_loss(s, t, y, T, beta), kd_loss(s[:, :, 0], t[:, :, 0], T))


@given(st.integers(0, 10_000), st.floats(0.5, 8.0))
@SETTINGS
def test_at_beta_1_every_cell_weighs_alike_kd_averaged_over_the_cells(seed, T):
    s, t = cells(seed), cells(seed + 1)
    y = torch.zeros(5, dtype=torch.long)
    per_cell = [kd_loss(s[:, :, r], t[:, :, r], T) for r in range(5)]
    torch.testing.assert_close(sdd_loss(s, t, y, T, 1.0), torch.stack(per_cell).mean())
    assert sdd_loss(t, t, y, T, 3.0) < 1e-12  # the teacher's own cells: nothing to learn


def test_gradients_against_finite_differences():
    s = cells(3).requires_grad_(True)
    t, y = cells(4), torch.tensor([0, 1, 2, 3, 0])
    assert torch.autograd.gradcheck(lambda x: sdd_loss(x, t, y, 2.0, 2.0), (s,))


def test_registered_with_the_papers_settings():
    m = METHODS["sdd"]
    assert m.family == "response" and m.short == "SD-KD"
    p = m.make_params()
    assert (p.T, scale_list(p.scales), p.beta, p.rule, p.kd_weight, p.ce_weight) == (
        4.0, [1, 2], 2.0, "class", 0.9, 0.1
    )  # fmt: skip
    with pytest.raises(ValueError, match="Scales M"):
        m.make_params({"scales": "1,3"})


@pytest.mark.parametrize("params", [{}, {"scales": "1,2,4", "rule": "label"}])
def test_its_parts_are_the_pure_function_on_the_models_maps(params):
    small = few_per_class(per=2, n_test=10)
    torch.manual_seed(0)
    student, teacher = build_model("resnet8").eval(), build_model("resnet8").eval()
    d = build_distiller("sdd", params, student, teacher, small)
    x, y = small.x_train[:6], small.y_train[:6]
    with torch.no_grad():
        s_out, t_out = student.forward_features(x), teacher.forward_features(x)
        parts = d(s_out, d.teacher_targets(t_out), Batch(x, y, torch.arange(6)))
    p, scales = d.params, scale_list(d.params.scales)
    s = region_logits(s_out.features["cam"], s_out.logits, scales)
    t = region_logits(t_out.features["cam"], t_out.logits, scales)
    torch.testing.assert_close(parts["sdd"], p.kd_weight * sdd_loss(s, t, y, p.T, p.beta, p.rule))
    torch.testing.assert_close(parts["ce"], p.ce_weight * F.cross_entropy(s_out.logits, y))
    assert d.teacher_targets(t_out)["regions"].shape == (6, 10, sum(m * m for m in scales))
    share = d.epoch_summary()["complementary"]
    assert share == round(float(complementary(t, y, p.rule).float().mean()), 5)
    assert d.epoch_summary() == {}  # counted afresh each epoch


def test_trains_one_epoch_and_brings_the_students_cells_toward_the_teachers():
    small = few_per_class()
    torch.manual_seed(0)
    teacher = build_model("resnet8").eval()
    student = build_model("resnet8")
    d = build_distiller("sdd", {"ce_weight": 0.0}, student, teacher, small)
    x, y = small.x_test[:64], small.y_test[:64]

    def gap() -> float:
        with torch.no_grad():
            s, t = student.eval().forward_features(x), teacher.forward_features(x)
            s = region_logits(s.features["cam"], s.logits, [1, 2])
            return float(sdd_loss(s, region_logits(t.features["cam"], t.logits, [1, 2]), y))

    before = gap()
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "sdd", distiller=d)  # fmt: skip
    assert result.status == "completed"
    assert gap() < before
    assert 0.0 <= result.history[-1].extra["complementary"] <= 1.0


def test_a_model_without_a_logit_map_is_refused_in_one_line():
    small = few_per_class(per=2, n_test=10)
    with pytest.raises(ValueError, match="SD-KD needs a logit map, which the student"):
        build_distiller("sdd", {}, build_model("mlp-30"), build_model("resnet8"), small)


# ----------------------------------------------------------------------------- the preset


def test_the_preset_keeps_every_students_cells_and_their_distance_to_the_teachers(tmp_path):
    import json

    from kdcore.presets import PRESETS, run_preset
    from kdcore.presets_sdd import cell_gaps, split_scales
    from tests.tiny_mnist import write_tiny_mnist

    preset = PRESETS["sdd-mnist"]
    assert preset.config.teacher == "resnet20" and preset.config.student == "resnet8"
    data_dir = write_tiny_mnist(tmp_path / "mnist", n_train=200, n_test=100)
    # the teacher a ResNet of the student's widths, for speed, as cat-mnist's test
    result = run_preset("sdd-mnist", data_dir=data_dir, teacher="resnet8", teacher_epochs=1,
                        epochs=2, per_class=10, probe_batch=16, shown=3)  # fmt: skip
    result = json.loads(json.dumps(result))
    assert result["status"] == "completed", result["message"]
    students = ["student_hard", "student_kd", "student_sdd", "student_sdd_fine",
                "student_sdd_even"]  # fmt: skip
    assert list(result["models"]) == ["teacher", *students]
    params = {s: result["models"][s]["method_params"] for s in students[2:]}
    assert params["student_sdd"] == {"T": 4.0, "scales": "1,2", "beta": 2.0, "rule": "class",
                                     "kd_weight": 0.9, "ce_weight": 0.1}  # fmt: skip
    assert params["student_sdd_fine"]["scales"] == "1,2,4"
    assert params["student_sdd_even"]["beta"] == 1
    gaps, cells = result["cell_gap"], result["cells"]
    assert list(gaps) == students and len(cells["indices"]) == len(cells["labels"]) == 3
    assert len(cells["teacher"]) == 3 and len(cells["teacher"][0]) == 10  # 10 classes
    assert len(cells["teacher"][0][0]) == 1 + 4 + 16  # the cells at 1 × 1, 2 × 2, 4 × 4
    for s in students:
        assert len(gaps[s]) == 2 and set(gaps[s][-1]) == {"1", "2", "4"}  # one per epoch
        assert all(v >= 0 for v in gaps[s][-1].values())
        assert result["history"][s][-1]["extra"]["cell_gap"] == gaps[s][-1]["2"]
        assert len(cells["students"][s]) == 3
    last = result["history"]["student_sdd"][-1]
    assert {"ce", "sdd"} <= set(last["losses"]) and 0 <= last["extra"]["complementary"] <= 1
    t = torch.tensor(cells["teacher"])
    assert cell_gaps(t, t) == {"1": 0.0, "2": 0.0, "4": 0.0}
    assert split_scales(t)[4].shape == (3, 10, 4, 4)
    assert preset.paper["cifar100_top1"]["student_sdd"] == 76.63
