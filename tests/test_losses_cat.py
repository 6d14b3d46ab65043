"""Class attention transfer (Guo et al. 2023): the class activation maps against a loop over
positions and the model's own logits, the loss against the official ``CAT_KD.py`` written out
(pooling, normalisation, binarisation), properties (at r = 1 without normalisation it is logit
matching; normalised, the strength of a map does not matter), finite differences, and the
registered method's parts and one epoch of training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.cat import (
    CAT_WEIGHT,
    binarize,
    cat_loss,
    transferred,
)
from kdcore.methods import METHODS
from kdcore.models import build_model, class_activation_maps
from kdcore.train import Batch, TrainConfig
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def official_loss(stu, tea, resolution, normalize, binarized):
    """``CAT_KD.forward_train`` and ``CAT_loss`` of the official code written out: the teacher's
    maps binarised at their L1 norm over H·W cells, both pooled to r × r, normalised over the two
    spatial dimensions, then ``F.mse_loss``."""
    if binarized:
        h, w = tea.shape[2:]
        threshold = torch.norm(tea, dim=(2, 3), keepdim=True, p=1) / (h * w)
        tea = torch.relu(tea - threshold).bool() * torch.ones_like(tea)
    stu = F.adaptive_avg_pool2d(stu, (resolution, resolution))
    tea = F.adaptive_avg_pool2d(tea, (resolution, resolution))
    if normalize:
        stu, tea = F.normalize(stu, dim=(2, 3)), F.normalize(tea, dim=(2, 3))
    return F.mse_loss(stu, tea)


def maps(seed: int, shape=(3, 4, 6, 6), dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_the_maps_are_the_head_at_every_position_and_average_to_the_logits_less_its_bias():
    torch.manual_seed(0)
    feat, head = torch.randn(2, 5, 3, 4, dtype=torch.float64), torch.nn.Linear(5, 7).double()
    got = class_activation_maps(feat, head.weight)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                torch.testing.assert_close(got[b, :, i, j] + head.bias, head(feat[b, :, i, j]))
    torch.testing.assert_close(got.mean((2, 3)) + head.bias, head(feat.mean((2, 3))))


def test_the_resnets_maps_are_its_heads_weights_on_its_last_stage():
    torch.manual_seed(0)
    net = build_model("resnet8", in_shape=(1, 28, 28)).eval()
    with torch.no_grad():
        out = net.forward_features(torch.randn(3, 1, 28, 28))
        want = class_activation_maps(out.features["stage3"], net.head.weight)
    torch.testing.assert_close(out.features["cam"], want)
    torch.testing.assert_close(out.features["cam"].mean((2, 3)) + net.head.bias, out.logits)


@pytest.mark.parametrize("resolution", [1, 2, 3])
@pytest.mark.parametrize(("normalize", "binarized"), [(False, False), (True, False), (True, True)])
def test_the_loss_is_the_official_codes(resolution, normalize, binarized):
    s, t = maps(0), maps(1, (3, 4, 7, 7))  # the two models' maps need not be the same size
    teacher = binarize(t) if binarized else t
    got = cat_loss(s, teacher, resolution, normalize)
    torch.testing.assert_close(got, official_loss(s, t, resolution, normalize, binarized))


def test_binarised_maps_mark_where_each_map_exceeds_its_mean_absolute_value():
    m = torch.tensor([[[[3.0, -1.0], [0.5, 1.5]]]])  # mean |m| = 1.5
    assert binarize(m).tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    assert binarize(-m.abs()).sum() == 0  # a map below zero everywhere teaches nothing


@given(st.integers(0, 10_000), st.floats(0.05, 20.0))
@SETTINGS
def test_at_resolution_1_unnormalised_it_is_logit_matching(seed, scale):
    s, t = scale * maps(seed), maps(seed + 1)
    got = cat_loss(s, t, 1, False)
    torch.testing.assert_close(got, F.mse_loss(s.mean((2, 3)), t.mean((2, 3))))


@given(st.integers(0, 10_000), st.floats(0.05, 20.0), st.floats(0.05, 20.0))
@SETTINGS
def test_normalised_the_strength_of_each_map_does_not_matter(seed, a, b):
    s, t = maps(seed), maps(seed + 1)
    base = cat_loss(s, t, 2, True)
    torch.testing.assert_close(cat_loss(a * s, b * t, 2, True), base)
    assert cat_loss(a * t, t, 2, True) < 1e-12  # the same places at any strength: no loss
    assert base <= 4.0 / 4 + 1e-9  # two unit maps at most 2 apart, over r² = 4 cells each


@given(st.integers(0, 10_000))
@SETTINGS
def test_pooled_maps_keep_the_mean_so_the_loss_holds_the_logits_gap(seed):
    m = maps(seed)
    for r in (1, 2, 3):
        torch.testing.assert_close(transferred(m, r, False).mean((2, 3)), m.mean((2, 3)))


@pytest.mark.parametrize("normalize", [False, True])
def test_gradients_against_finite_differences(normalize):
    s = maps(3, (2, 3, 4, 4)).requires_grad_(True)
    t = maps(4, (2, 3, 6, 6))
    assert torch.autograd.gradcheck(lambda x: cat_loss(x, t, 2, normalize), (s,))


def test_registered_with_the_official_resnet56_resnet20_settings():
    m = METHODS["cat"]
    assert m.family == "feature" and m.short == "CAT-KD"
    p = m.make_params()
    assert (p.beta, p.resolution, p.normalize, p.binarize, p.ce_weight) == (
        CAT_WEIGHT, 2, False, False, 1.0
    )  # fmt: skip
    assert CAT_WEIGHT == 0.7


@pytest.mark.parametrize(
    "params",
    [{}, {"ce_weight": 0.0, "beta": 50.0, "normalize": True},
     {"ce_weight": 0.0, "beta": 300.0, "normalize": True, "binarize": True}],
)  # fmt: skip
def test_its_parts_are_the_pure_function_on_the_models_maps(params):
    small = few_per_class(per=2, n_test=10)
    torch.manual_seed(0)
    student, teacher = build_model("resnet8").eval(), build_model("resnet8").eval()
    d = build_distiller("cat", params, student, teacher, small)
    x, y = small.x_train[:6], small.y_train[:6]
    with torch.no_grad():
        s_out, t_out = student.forward_features(x), teacher.forward_features(x)
        parts = d(s_out, d.teacher_targets(t_out), Batch(x, y, torch.arange(6)))
    p = d.params
    t_maps = binarize(t_out.features["cam"]) if p.binarize else t_out.features["cam"]
    want = p.beta * cat_loss(s_out.features["cam"], t_maps, p.resolution, p.normalize)
    torch.testing.assert_close(parts["cat"], want)
    torch.testing.assert_close(parts["ce"], p.ce_weight * F.cross_entropy(s_out.logits, y))
    # the cached targets: K maps of r × r per example, whatever the teacher's map size
    assert d.teacher_targets(t_out)["maps"].shape == (6, 10, 2, 2)


def test_trains_one_epoch_and_brings_the_students_maps_toward_the_teachers():
    small = few_per_class()
    torch.manual_seed(0)
    teacher = build_model("resnet8").eval()
    student = build_model("resnet8")
    d = build_distiller("cat", {"ce_weight": 0.0, "beta": 50.0, "normalize": True}, student,
                        teacher, small)  # fmt: skip
    x = small.x_test[:64]

    def gap() -> float:
        with torch.no_grad():
            s = student.eval().forward_features(x).features["cam"]
            return float(cat_loss(s, teacher.forward_features(x).features["cam"], 2, True))

    before = gap()
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "cat", distiller=d)  # fmt: skip
    assert result.status == "completed"
    assert gap() < before


def test_a_model_without_class_maps_is_refused_in_one_line():
    small = few_per_class(per=2, n_test=10)
    with pytest.raises(ValueError, match="CAT-KD needs class activation maps, which the student"):
        build_distiller("cat", {}, build_model("mlp-30"), build_model("resnet8"), small)


# ----------------------------------------------------------------------------- the preset


def test_the_preset_keeps_every_students_class_maps_and_their_distance_to_the_teachers(
    tmp_path,
):
    import json

    from kdcore.presets import PRESETS, run_preset
    from kdcore.presets_cat import where_gaps
    from tests.tiny_mnist import write_tiny_mnist

    preset = PRESETS["cat-mnist"]
    assert preset.config.teacher == "resnet20" and preset.config.student == "resnet8"
    data_dir = write_tiny_mnist(tmp_path / "mnist", n_train=200, n_test=100)
    # the teacher a ResNet of the student's widths, for speed, as fsp-mnist's test
    result = run_preset("cat-mnist", data_dir=data_dir, teacher="resnet8", teacher_epochs=1,
                        epochs=2, per_class=10, probe_batch=16, shown=3)  # fmt: skip
    result = json.loads(json.dumps(result))
    assert result["status"] == "completed", result["message"]
    students = ["student_hard", "student_kd", "student_cat", "student_cat_alone",
                "student_cat_binary"]  # fmt: skip
    assert list(result["models"]) == ["teacher", *students]
    params = {s: result["models"][s]["method_params"] for s in students[2:]}
    assert params["student_cat"] == {"beta": 0.7, "resolution": 2, "normalize": False,
                                     "binarize": False, "ce_weight": 1.0}  # fmt: skip
    alone, binary = params["student_cat_alone"], params["student_cat_binary"]
    assert alone["ce_weight"] == 0 and alone["beta"] == 50 and alone["normalize"]
    assert binary["binarize"] and binary["beta"] == 300 and binary["ce_weight"] == 0
    gaps, maps = result["class_map_gap"], result["class_maps"]
    assert list(gaps) == students and len(maps["indices"]) == len(maps["labels"]) == 3
    assert len(maps["teacher"]) == 3 and len(maps["teacher"][0]) == 10  # 10 maps of 7 × 7
    assert len(maps["teacher"][0][0]) == 7 and len(maps["teacher"][0][0][0]) == 7
    for s in students:
        assert len(gaps[s]) == 2  # one per epoch
        assert 0 <= gaps[s][-1]["pooled"] <= 1 and 0 <= gaps[s][-1]["full"] <= 1
        assert result["history"][s][-1]["extra"]["class_map_gap"] == gaps[s][-1]["pooled"]
        assert len(maps["students"][s]) == 3
    assert {"ce", "cat"} <= set(result["history"]["student_cat"][-1]["losses"])
    # the distance is CAT's normalised loss: none for the teacher's own maps, at any strength
    t = torch.tensor(maps["teacher"])
    assert where_gaps(3 * t, t) == {"pooled": 0.0, "full": 0.0}
