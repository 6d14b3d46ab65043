"""ICKD (Liu et al. 2021): the correlation matrices and the loss against the official code's
written out and a loop by example, properties (the size of the map does not matter, the loss is
bounded, a permutation of channels moves rows and columns together), finite differences, the
spectrum, and the method owning and training its embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.ickd import (
    channel_spectrum,
    effective_rank,
    icc_gram,
    icc_loss,
    icc_matrix,
)
from kdcore.models import build_model
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def official_batch_loss(f_s, f_t):
    """``ICKDLoss.batch_loss`` of the official Cifar100/distiller_zoo/ICKD.py written out, after
    the student's embedding (passed in already embedded)."""
    bsz, ch = f_s.shape[0], f_s.shape[1]
    f_s = f_s.view(bsz, ch, -1)
    f_t = f_t.view(bsz, ch, -1)
    emd_s = torch.nn.functional.normalize(torch.bmm(f_s, f_s.permute(0, 2, 1)), dim=2)
    emd_t = torch.nn.functional.normalize(torch.bmm(f_t, f_t.permute(0, 2, 1)), dim=2)
    g_diff = emd_s - emd_t
    return (g_diff * g_diff).view(bsz, -1).sum() / (ch * bsz)


def test_the_loss_is_the_official_codes_and_a_loop_by_example():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(3, 5, 4, 3)), rng.normal(size=(3, 5, 2, 2))  # maps of other sizes
    got = icc_loss(icc_matrix(t64(s)), icc_matrix(t64(t))).item()
    # the official code views both maps as (B, C, -1) and never pools: other sizes are fine
    assert got == pytest.approx(official_batch_loss(t64(s), t64(t)).item(), rel=1e-12)
    total = 0.0
    for b in range(3):
        gs, gt = (x[b].reshape(5, -1) @ x[b].reshape(5, -1).T for x in (s, t))
        gs = gs / np.linalg.norm(gs, axis=1, keepdims=True)
        gt = gt / np.linalg.norm(gt, axis=1, keepdims=True)
        total += ((gs - gt) ** 2).sum()
    assert got == pytest.approx(total / (5 * 3), rel=1e-12)


def test_the_gram_is_the_sum_over_positions():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 3, 2, 4))
    g = icc_gram(t64(f)).numpy()
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert g[b, i, j] == pytest.approx((f[b, i] * f[b, j]).sum(), rel=1e-12)
    # a flat layer is one position: the outer product
    v = rng.normal(size=(2, 4))
    assert np.allclose(icc_gram(t64(v)).numpy(), np.einsum("bi,bj->bij", v, v))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 4))
def test_bounded_zero_on_itself_and_blind_to_the_maps_scale(seed, hw, channels):
    rng = np.random.default_rng(seed)
    a = t64(rng.normal(size=(2, channels, hw, 2)))
    b = t64(rng.normal(size=(2, channels, 3, 1)))
    loss = icc_loss(icc_matrix(a), icc_matrix(b)).item()
    assert 0.0 <= loss <= 4.0 + 1e-12  # two unit rows are at most 2 apart
    assert icc_loss(icc_matrix(a), icc_matrix(a)).item() == 0.0
    # a whole map scaled by a positive number gives the same matrix (rows are normalised)
    assert torch.allclose(icc_matrix(3.7 * a), icc_matrix(a), atol=1e-12)


def test_permuting_channels_permutes_rows_and_columns_and_keeps_the_spectrum():
    rng = np.random.default_rng(2)
    f = t64(rng.normal(size=(4, 6, 3, 3)))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    g, gp = icc_matrix(f), icc_matrix(f[:, perm])
    assert torch.allclose(gp, g[:, perm][:, :, perm], atol=1e-12)
    # the loss between a map and its channels shuffled is not zero: ICKD ties channels by place
    assert icc_loss(gp, g).item() > 0.01
    assert torch.allclose(channel_spectrum(icc_gram(f[:, perm])), channel_spectrum(icc_gram(f)),
                          atol=1e-6)  # fmt: skip


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(3)
    t = icc_matrix(t64(rng.normal(size=(2, 3, 2, 2))))
    s = t64(rng.normal(size=(2, 3, 2, 2)), True)
    assert torch.autograd.gradcheck(lambda a: icc_loss(icc_matrix(a), t), (s,))


def test_the_spectrum_tells_copies_from_independent_channels():
    rng = np.random.default_rng(4)
    one = rng.normal(size=(8, 1, 5, 5))
    copies = t64(np.repeat(one, 4, axis=1) * np.array([1, 2, 0.5, 3])[None, :, None, None])
    spec = channel_spectrum(icc_gram(copies))
    assert spec.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert spec[0].item() == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(spec) == pytest.approx(1.0, abs=1e-4)
    # four channels on disjoint positions: no two fire together, all carry the same
    apart = torch.zeros(3, 4, 2, 2, dtype=torch.float64)
    for c in range(4):
        apart[:, c, c // 2, c % 2] = 1.0
    flat = channel_spectrum(icc_gram(apart))
    assert torch.allclose(flat, torch.full((4,), 0.25), atol=1e-6)
    assert effective_rank(flat) == pytest.approx(4.0, rel=1e-5)
    # sorted from the largest
    rand = channel_spectrum(icc_gram(t64(rng.normal(size=(6, 5, 3, 3)))))
    assert torch.all(rand[:-1] >= rand[1:])


def test_the_method_owns_and_trains_its_embedding_to_the_teachers_channel_count():
    small = few_per_class()
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn")
    d = build_distiller("ickd", {}, student, teacher, small)
    with torch.no_grad():
        s_c = student.forward_features(small.x_train[:2]).features["conv2"].shape[1]
        t_c = teacher.forward_features(small.x_train[:2]).features["conv2"].shape[1]
    assert s_c < t_c and d.embed.map.weight.shape == (t_c, s_c, 1, 1)
    before = d.embed.map.weight.detach().clone()
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "ickd", distiller=d)  # fmt: skip
    assert result.status == "completed"
    assert not torch.equal(before, d.embed.map.weight)
    assert "embed.map.weight" in d.state_dict()
    # the teacher's matrices are its cached targets: C × C per example
    targets = d.teacher_targets(teacher.forward_features(small.x_train[:3]))
    assert targets["icc"].shape == (3, t_c, t_c)


def test_a_flat_layer_goes_through_a_linear_embedding():
    small = few_per_class()
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("ickd", {"student_layer": "hidden2", "teacher_layer": "hidden2"},
                        student, teacher, small)  # fmt: skip
    assert d.embed.map.weight.shape == (100, 30)


def test_a_layer_that_is_not_a_map_or_vector_is_refused_in_one_line():
    from kdcore.losses.ickd import ICKD, ICKDParams
    from kdcore.method import Probe
    from kdcore.models import ModelOutput

    out = ModelOutput(torch.zeros(2, 10), {"odd": torch.zeros(2, 3, 4)})
    with pytest.raises(ValueError, match="ICKD needs"):
        ICKD(ICKDParams(student_layer="odd", teacher_layer="odd"), Probe(out, out, 10, 2))


# ----------------------------------------------------------------------------- the preset


def test_the_preset_tracks_every_students_channels_and_the_ickd_students_matrices(tmp_path):
    from kdcore.presets import PRESETS, run_preset
    from tests.tiny_mnist import write_tiny_mnist

    preset = PRESETS["ickd-mnist"]
    assert preset.config.teacher == "resnet20" and preset.config.student == "resnet8"
    assert preset.paper["cifar100_top1"]["student_ickd"] == 71.76
    data_dir = write_tiny_mnist(tmp_path / "mnist", n_train=200, n_test=100)
    # the teacher a ResNet of the student's widths (its own, for speed), as fsp-mnist's test
    result = run_preset("ickd-mnist", data_dir=data_dir, teacher="resnet8", teacher_epochs=1,
                        epochs=2, per_class=10, probe_batch=16)  # fmt: skip
    result = json.loads(json.dumps(result))
    assert result["status"] == "completed", result["message"]
    students = ["student_hard", "student_kd", "student_ickd", "student_ickd_kd", "student_nst"]
    assert list(result["models"]) == ["teacher", *students]
    assert result["models"]["student_nst"]["method"] == "nst"
    params = {s: result["models"][s]["method_params"] for s in students[2:]}
    assert params["student_ickd"]["beta"] == 2.5 and params["student_ickd"]["alpha"] == 0.0
    assert params["student_ickd_kd"]["alpha"] == 0.5 and params["student_ickd_kd"]["beta"] == 1.25
    assert params["student_nst"]["student_layer"] == "stage3"
    spectra, mats = result["channel_spectrum"], result["channel_matrices"]
    assert list(spectra["students"]) == students and len(mats["indices"]) == 16
    for s in students:
        assert len(spectra["students"][s]) == 2  # one per epoch
        last = spectra["students"][s][-1]
        assert len(last["spectrum"]) == 64 and sum(last["spectrum"]) == pytest.approx(1, abs=1e-3)
        assert 1.0 <= last["rank"] <= 64.0
        assert result["history"][s][-1]["extra"]["channel_rank"] == last["rank"]
    # only the ICKD students have an embedding, so only they are compared entry by entry
    assert set(mats["students"]) == set(mats["gap"]) == {"student_ickd", "student_ickd_kd"}
    assert len(mats["teacher"]) == 64 and len(mats["students"]["student_ickd"]) == 2
    assert len(mats["students"]["student_ickd"][-1]) == 64
    extra = result["history"]["student_ickd"][-1]["extra"]
    assert extra["icc_gap"] == mats["gap"]["student_ickd"][-1] and 0 <= extra["icc_gap"] <= 4
    assert {"ce", "ickd"} <= set(result["history"]["student_ickd"][-1]["losses"])
    assert "kd" in result["history"]["student_ickd_kd"][-1]["losses"]
