"""Normalized KD (Yang et al. 2023): the loss against the official ``NKDLoss`` written out and a
reference written class by class from the paper's equation, KD's exact three-way split it starts
from, finite differences, its invariances, and the registered method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.nkd import kd_split, nkd_loss, non_target_part, target_part
from kdcore.models import build_model
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=40, deadline=None)


def official(logit_s, logit_t, gt_label, temp=1.0, gamma=1.5):
    """The official NKDLoss.forward (yzd-v/cls_KD), written out: the target mask scattered to 0
    in a tensor of ones, the non-target logits kept in order."""
    label = gt_label.view(len(gt_label), 1)
    n, _ = logit_s.shape
    s_i = F.log_softmax(logit_s, dim=1)
    t_i = F.softmax(logit_t, dim=1)
    s_t = torch.gather(s_i, 1, label)
    t_t = torch.gather(t_i, 1, label).detach()
    loss_t = -(t_t * s_t).mean()
    mask = torch.ones_like(logit_s).scatter_(1, label, 0).bool()
    logit_s = logit_s[mask].reshape(n, -1)
    logit_t = logit_t[mask].reshape(n, -1)
    s_n = F.log_softmax(logit_s / temp, dim=1)
    t_n = F.softmax(logit_t / temp, dim=1)
    loss_non = (t_n * s_n).sum(dim=1).mean()
    return loss_t - gamma * temp**2 * loss_non


def ref_nkd(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, gamma: float) -> float:
    """Eq. 8 class by class: −T_t log S_t − γλ² Σ_{i≠t} T̂_i log Ŝ_i, T̂ and Ŝ the softmaxes at λ
    of the logits without the label's, averaged over examples."""

    def softmax(z):
        e = [math.exp(v - max(z)) for v in z]
        return [v / sum(e) for v in e]

    total = 0.0
    for b in range(len(y)):
        total -= softmax(list(t[b]))[y[b]] * math.log(softmax(list(s[b]))[y[b]])
        others = [i for i in range(s.shape[1]) if i != y[b]]
        th = softmax([t[b, i] / temp for i in others])
        sh = softmax([s[b, i] / temp for i in others])
        total -= gamma * temp**2 * sum(p * math.log(q) for p, q in zip(th, sh, strict=True))
    return total / len(y)


@pytest.mark.parametrize(("temp", "gamma"), [(1.0, 1.5), (4.0, 1.0), (0.5, 3.0)])
def test_nkd_matches_the_official_code_and_the_papers_equation(temp, gamma):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 10)) * 3, rng.normal(size=(6, 10)) * 3
    y = rng.integers(0, 10, size=6)
    got = nkd_loss(t64(s), t64(t), torch.as_tensor(y), temp, gamma).item()
    assert got == pytest.approx(official(t64(s), t64(t), torch.as_tensor(y), temp, gamma).item(),
                                rel=1e-12)  # fmt: skip
    assert got == pytest.approx(ref_nkd(s, t, y, temp, gamma), rel=1e-10)


def test_kds_cross_entropy_splits_exactly_in_three():
    """−Σ T_i log S_i = −T_t log S_t − (1 − T_t) log(1 − S_t) − (1 − T_t) Σ T̂_i log Ŝ_i, per
    example; the last over its weight is NKD's non-target part at λ = 1, one example at a time."""
    rng = np.random.default_rng(1)
    s, t = t64(rng.normal(size=(8, 10)) * 4), t64(rng.normal(size=(8, 10)) * 4)
    y = torch.as_tensor(rng.integers(0, 10, size=8))
    parts = kd_split(s, t, y)
    whole = parts["target"] + parts["rest"] + parts["non_target"]
    assert whole.tolist() == pytest.approx(parts["cross_entropy"].tolist(), rel=1e-12)
    want = -(F.softmax(t, 1) * F.log_softmax(s, 1)).sum(1)
    assert parts["cross_entropy"].tolist() == pytest.approx(want.tolist(), rel=1e-12)
    for b in range(8):
        one = non_target_part(s[b : b + 1], t[b : b + 1], y[b : b + 1], 1.0).item()
        assert parts["non_target"][b].item() == pytest.approx(parts["weight"][b].item() * one)
        tgt = target_part(s[b : b + 1], t[b : b + 1], y[b : b + 1]).item()
        assert parts["target"][b].item() == pytest.approx(tgt, rel=1e-12)


def test_nkd_gradients_against_finite_differences():
    rng = np.random.default_rng(2)
    t, y = t64(rng.normal(size=(4, 6))), torch.as_tensor(rng.integers(0, 6, size=4))
    s = t64(rng.normal(size=(4, 6)), True)
    assert torch.autograd.gradcheck(lambda x: nkd_loss(x, t, y, 2.0, 1.5), (s,))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(-20, 20), temp=st.floats(0.5, 8.0))
def test_the_non_target_part_cannot_see_the_label_logits(seed, shift, temp):
    """Moving either model's logit of the labelled class changes nothing of the non-target part
    (it is normalised over the other classes), and shifting a whole row changes neither part."""
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(3, 7)) * 2, rng.normal(size=(3, 7)) * 2
    y = rng.integers(0, 7, size=3)
    yy = torch.as_tensor(y)
    base = non_target_part(t64(s), t64(t), yy, temp).item()
    s2, t2 = s.copy(), t.copy()
    s2[np.arange(3), y] += shift
    t2[np.arange(3), y] -= shift
    assert non_target_part(t64(s2), t64(t2), yy, temp).item() == pytest.approx(base, rel=1e-9)
    whole = nkd_loss(t64(s), t64(t), yy, temp).item()
    assert nkd_loss(t64(s + shift), t64(t - shift), yy, temp).item() == pytest.approx(
        whole, rel=1e-9, abs=1e-9)  # fmt: skip


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), sure=st.floats(2.0, 30.0))
def test_kds_non_target_weight_vanishes_as_the_teacher_grows_sure_nkds_does_not(seed, sure):
    """KD weights the normalised non-target term by 1 − T_t, which goes to 0 as the teacher's
    label logit rises; NKD's non-target part does not move at all."""
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    y = np.array([0, 3])
    yy = torch.as_tensor(y)
    t_sure = t.copy()
    t_sure[np.arange(2), y] += sure
    weight = kd_split(t64(s), t64(t_sure), yy)["weight"]
    assert (weight < kd_split(t64(s), t64(t), yy)["weight"]).all()
    assert (weight < math.exp(-sure + 8)).all()
    assert non_target_part(t64(s), t64(t_sure), yy, 1.0).item() == pytest.approx(
        non_target_part(t64(s), t64(t), yy, 1.0).item(), rel=1e-9)  # fmt: skip


def test_the_method_trains_with_its_parts_named():
    small = few_per_class()
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("nkd", {"gamma": 2.0, "ce_weight": 0.5}, student, teacher, small)
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "nkd", distiller=d)  # fmt: skip
    assert result.ok, result.message
    assert set(result.history[-1].losses) == {"ce", "target", "non_target", "total"}
    x, y = small.x_train[:30], small.y_train[:30]
    with torch.no_grad():
        s = student.eval().forward_features(x)
        t = d.teacher_targets(teacher.eval().forward_features(x))
        parts = d(s, t, type("B", (), {"y": y})())
    assert parts["ce"].item() == pytest.approx(0.5 * F.cross_entropy(s.logits, y).item())
    assert (parts["target"] + parts["non_target"]).item() == pytest.approx(
        nkd_loss(s.logits, t["logits"], y, 1.0, 2.0).item(), rel=1e-5)  # fmt: skip
