"""WSLD (Zhou et al. 2021): the loss against the official ``WSLDistiller`` written out and a
reference by example, finite differences (the weights held, as the code detaches them), the
weights' properties, the registered method, and the preset end to end."""

from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.wsld import AHEAD, sample_weights, wsld_loss
from kdcore.models import build_model
from kdcore.presets import run_preset
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class, write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=40, deadline=None)


def official(fc_s, fc_t, label, T=2.0, alpha=2.5):
    """The official WSLDistiller.forward's soft part (bellymonster/Weighted-Soft-Label-
    Distillation), written out for K classes, before the hard loss."""
    t_soft_label = F.softmax(fc_t / T, dim=1)
    softmax_loss = -torch.sum(t_soft_label * F.log_softmax(fc_s / T, dim=1), 1, keepdim=True)
    log_softmax_s = F.log_softmax(fc_s.detach(), dim=1)
    log_softmax_t = F.log_softmax(fc_t.detach(), dim=1)
    one_hot_label = F.one_hot(label, num_classes=fc_s.shape[1]).to(fc_s.dtype)
    softmax_loss_s = -torch.sum(one_hot_label * log_softmax_s, 1, keepdim=True)
    softmax_loss_t = -torch.sum(one_hot_label * log_softmax_t, 1, keepdim=True)
    focal_weight = softmax_loss_s / (softmax_loss_t + 1e-7)
    focal_weight = torch.max(focal_weight, torch.zeros(1, dtype=fc_s.dtype))
    focal_weight = 1 - torch.exp(-focal_weight)
    return alpha * (T**2) * torch.mean(focal_weight * softmax_loss)


def ref_wsld(s: np.ndarray, t: np.ndarray, y: np.ndarray, T: float) -> float:
    """Example by example: w = 1 − exp(−L_s/L_t), times −Σ_i T_i^T log S_i^T, times T²."""

    def softmax(z):
        e = [math.exp(v - max(z)) for v in z]
        return [v / sum(e) for v in e]

    total = 0.0
    for b in range(len(y)):
        ce_s = -math.log(softmax(list(s[b]))[y[b]])
        ce_t = -math.log(softmax(list(t[b]))[y[b]])
        w = 1 - math.exp(-ce_s / (ce_t + 1e-7))
        pt, ps = softmax(list(t[b] / T)), softmax(list(s[b] / T))
        total += w * -sum(p * math.log(q) for p, q in zip(pt, ps, strict=True))
    return T**2 * total / len(y)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_wsld_matches_the_official_code_and_a_reference_by_example(T):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 10)) * 3, rng.normal(size=(6, 10)) * 3
    y = rng.integers(0, 10, size=6)
    got = wsld_loss(t64(s), t64(t), torch.as_tensor(y), T).item()
    assert 2.5 * got == pytest.approx(official(t64(s), t64(t), torch.as_tensor(y), T).item(),
                                      rel=1e-12)  # fmt: skip
    assert got == pytest.approx(ref_wsld(s, t, y, T), rel=1e-10)


def test_gradients_against_finite_differences():
    """The weights carry no gradient (the code detaches both models' logits for them): held at
    their values here, where a finite difference would see them move."""
    rng = np.random.default_rng(2)
    t, y = t64(rng.normal(size=(4, 6))), torch.as_tensor(rng.integers(0, 6, size=4))
    s = t64(rng.normal(size=(4, 6)), True)
    held = sample_weights(s, t, y)
    with mock.patch("kdcore.losses.wsld.sample_weights", lambda *_: held):
        assert torch.autograd.gradcheck(lambda x: wsld_loss(x, t, y, 2.0), (s,))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), lead=st.floats(0.5, 20.0))
def test_the_weight_grows_as_the_student_falls_behind_the_teacher(seed, lead):
    """w lies in [0, 1), is 1 − 1/e where the two cross-entropies on the label are equal, and
    falls as the student's label logit rises (it is ahead), rises as it falls."""
    rng = np.random.default_rng(seed)
    t = t64(rng.normal(size=(3, 5)) * 0.5)  # label cross-entropies far above the code's ε
    y = torch.as_tensor(rng.integers(0, 5, size=3))
    w = sample_weights(t.clone(), t, y)
    assert w.tolist() == pytest.approx([AHEAD] * 3, rel=1e-6)
    ahead, behind = t.clone(), t.clone()
    ahead[torch.arange(3), y] += lead
    behind[torch.arange(3), y] -= lead
    wa, wb = sample_weights(ahead, t, y), sample_weights(behind, t, y)
    assert ((wa < w) & (wb > w) & (wa >= 0) & (wb < 1)).all()


def test_unweighted_it_is_kds_soft_term_as_a_cross_entropy():
    rng = np.random.default_rng(3)
    s, t = t64(rng.normal(size=(5, 7))), t64(rng.normal(size=(5, 7)))
    y = torch.as_tensor(rng.integers(0, 7, size=5))
    kl = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean")
    entropy = -(F.softmax(t / 3, 1) * F.log_softmax(t / 3, 1)).sum(1).mean()
    assert wsld_loss(s, t, y, 3.0, weighted=False).item() == pytest.approx(
        9 * (kl + entropy).item(), rel=1e-12)  # fmt: skip


def test_the_method_trains_with_its_parts_named_and_records_its_weights():
    small = few_per_class()
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("wsld", {"T": 3.0, "alpha": 1.5}, student, teacher, small)
    result = distill(student, teacher, small, TrainConfig(epochs=2, batch_size=50, seed=0),
                     "wsld", distiller=d)  # fmt: skip
    assert result.ok, result.message
    assert set(result.history[-1].losses) == {"ce", "soft", "total"}
    for record in result.history:
        assert 0 < record.extra["mean_weight"] < 1 and 0 <= record.extra["student_ahead"] <= 1
    x, y = small.x_train[:30], small.y_train[:30]
    with torch.no_grad():
        s = student.eval().forward_features(x)
        t = d.teacher_targets(teacher.eval().forward_features(x))
        parts = d(s, t, type("B", (), {"y": y})())
    assert parts["ce"].item() == pytest.approx(F.cross_entropy(s.logits, y).item())
    assert parts["soft"].item() == pytest.approx(
        1.5 * wsld_loss(s.logits, t["logits"], y, 3.0).item(), rel=1e-5)  # fmt: skip


def test_the_preset_trains_the_weighted_and_the_plain_student(tmp_path):
    tiny = str(write_tiny_mnist(tmp_path, n_train=1000, n_test=300))
    result = json.loads(
        json.dumps(
            run_preset(
                "wsld-mnist",
                data_dir=tiny,
                teacher="mlp-30",
                teacher_epochs=1,
                epochs=1,
                per_class=20,
            )
        )
    )
    assert result["status"] == "completed", result["message"]
    models = result["models"]
    assert {"student_wsld", "student_wsld_plain"} <= set(models)
    assert models["student_wsld_plain"]["method_params"]["weighted"] is False
    assert "mean_weight" in result["history"]["student_wsld"][-1]["extra"]
