"""USKD (Yang et al. 2023, the teacher-free half of the NKD paper): the loss against the
official ``USKDLoss`` written out and a reference written example by example, finite
differences, the soft labels' properties, the method with its weak classifier, and the preset's
per-epoch profiles."""

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
from kdcore.losses.uskd import (
    non_target_profile,
    rank_scores,
    target_label,
    uskd_parts,
    zipf_labels,
    zipf_profile,
)
from kdcore.models import build_model
from kdcore.presets import run_preset
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class, write_tiny_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=40, deadline=None)


def official(fea_logits, logit_s, gt_label, alpha, beta, mu):
    """The official USKDLoss.forward (yzd-v/cls_KD) for hard labels, written out, with the weak
    classifier's output given (``self.fc(fea_mid)``) and the Zipf table on the CPU."""
    label = gt_label.view(len(gt_label), 1)
    n, c = logit_s.shape
    s_i = F.softmax(logit_s, dim=1)
    s_t = torch.gather(s_i, 1, label)
    p_t = s_t**2
    p_t = (p_t + 1 - p_t.mean(0, True)).detach()
    s_i = F.log_softmax(logit_s, dim=1)
    s_t = torch.gather(s_i, 1, label)
    loss_t = -(p_t * s_t).sum(dim=1).mean()
    target = torch.zeros_like(logit_s).scatter_(1, label, 0.9) + 0.1 * torch.ones_like(logit_s) / c
    loss_weak = -(mu * target * F.log_softmax(fea_logits, dim=1)).sum(dim=1).mean()
    w_i = F.softmax(fea_logits, dim=1)
    w_t = torch.gather(w_i, 1, label)
    rank = w_i / (1 - w_t.sum(1, True) + 1e-6) + s_i / (1 - s_t.sum(1, True) + 1e-6)
    _, rank = torch.sort(rank, descending=True, dim=-1)
    z_i = (1 / torch.arange(1, c + 1, dtype=logit_s.dtype)).repeat(n, 1)
    z_i = torch.gather(z_i, dim=1, index=torch.argsort(rank))
    mask = torch.ones_like(logit_s).scatter_(1, label, 0).bool()
    ns_i = F.log_softmax(logit_s[mask].reshape(n, -1), dim=1)
    nz_i = z_i[mask].reshape(n, -1)
    nz_i = (nz_i / nz_i.sum(dim=1, keepdim=True)).detach()
    loss_non = -(nz_i * ns_i).sum(dim=1).mean()
    return alpha * loss_t + beta * loss_non + loss_weak


def softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def ref_uskd(s: np.ndarray, w: np.ndarray, y: np.ndarray, alpha, beta, mu) -> float:
    """The three terms example by example: the target label S_t² + 1 − mean S_t², the classes
    ranked by W_i/(1 − W_t) + log S_i/(1 − log S_t), Zipf's 1/rank over the others."""
    n, k = s.shape
    sq = [softmax(list(s[b]))[y[b]] ** 2 for b in range(n)]
    total = 0.0
    for b in range(n):
        ps, pw = softmax(list(s[b])), softmax(list(w[b]))
        log_s = [math.log(p) for p in ps]
        label = sq[b] + 1 - sum(sq) / n
        total -= alpha * label * log_s[y[b]]
        smooth = [0.9 * (i == y[b]) + 0.1 / k for i in range(k)]
        total -= mu * sum(q * math.log(p) for q, p in zip(smooth, pw, strict=True))
        score = [pw[i] / (1 - pw[y[b]] + 1e-6) + log_s[i] / (1 - log_s[y[b]] + 1e-6)
                 for i in range(k)]  # fmt: skip
        order = sorted(range(k), key=lambda i: -score[i])
        others = [i for i in range(k) if i != y[b]]
        zipf = [1 / (order.index(i) + 1) for i in others]
        rest = softmax([s[b, i] for i in others])
        total -= beta * sum(z / sum(zipf) * math.log(q) for z, q in zip(zipf, rest, strict=True))
    return total / n


@pytest.mark.parametrize(("alpha", "beta", "mu"), [(0.1, 0.1, 0.1), (1.0, 0.1, 0.005),
                                                   (0.7, 2.0, 0.3)])  # fmt: skip
def test_uskd_matches_the_official_code_and_a_reference_by_example(alpha, beta, mu):
    rng = np.random.default_rng(0)
    s, w = rng.normal(size=(7, 10)) * 3, rng.normal(size=(7, 10)) * 2
    y = rng.integers(0, 10, size=7)
    got = sum(uskd_parts(t64(s), t64(w), torch.as_tensor(y), alpha, beta, mu).values()).item()
    want = official(t64(w), t64(s), torch.as_tensor(y), alpha, beta, mu).item()
    assert got == pytest.approx(want, rel=1e-12)
    assert got == pytest.approx(ref_uskd(s, w, y, alpha, beta, mu), rel=1e-10)


def test_gradients_against_finite_differences():
    """Through the network's logits and the weak classifier's. The soft labels carry no
    gradient: the target label is held at its value here (a finite difference would see it
    move), the Zipf labels are piecewise constant in both inputs."""
    rng = np.random.default_rng(2)
    y = torch.as_tensor(rng.integers(0, 6, size=4))
    s, w = t64(rng.normal(size=(4, 6)), True), t64(rng.normal(size=(4, 6)), True)
    held = target_label(s, y)
    with mock.patch("kdcore.losses.uskd.target_label", lambda *_: held):
        assert torch.autograd.gradcheck(
            lambda a, b: sum(uskd_parts(a, b, y, 0.5, 0.3, 0.2).values()), (s, w)
        )


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9))
def test_the_target_labels_mean_is_one_and_keeps_the_confidence_order(seed, n):
    rng = np.random.default_rng(seed)
    s = t64(rng.normal(size=(n, 5)) * 3, True)
    y = torch.as_tensor(rng.integers(0, 5, size=n))
    label = target_label(s, y)
    assert not label.requires_grad
    assert label.mean().item() == pytest.approx(1.0, abs=1e-12)
    conf = F.softmax(s, 1).gather(1, y[:, None]).squeeze(1).detach()
    order = conf.argsort()
    assert (label[order].diff() >= -1e-12).all()  # surer images weigh more


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 12))
def test_zipf_labels_are_one_over_the_rank_normalised_over_the_other_classes(seed, k):
    rng = np.random.default_rng(seed)
    scores = t64(rng.permutation(k * 3).reshape(3, k)[:, :k].astype(float))  # no ties
    y = torch.as_tensor(rng.integers(0, k, size=3))
    z = zipf_labels(scores, y)
    assert z.shape == (3, k - 1)
    assert z.sum(1).tolist() == pytest.approx([1.0] * 3)
    for b in range(3):
        others = [i for i in range(k) if i != y[b]]
        ranks = [1 + int((scores[b] > scores[b, i]).sum()) for i in others]
        want = np.array([1 / r for r in ranks])
        assert z[b].tolist() == pytest.approx((want / want.sum()).tolist())
    first = scores.clone()
    first[torch.arange(3), y] = 1e9  # the label ranked first: 1/2, 1/3, ... 1/K
    for row in zipf_labels(first, y).sort(1, descending=True).values:
        assert row.tolist() == pytest.approx(zipf_profile(k).tolist(), rel=1e-6)


def test_the_rank_is_the_codes_sum_of_the_weak_and_the_log_probabilities():
    s = t64([[2.0, 1.0, 0.0]])
    w = t64([[0.0, 0.0, 3.0]])
    y = torch.tensor([0])
    pw, ls = F.softmax(w, 1)[0], F.log_softmax(s, 1)[0]
    want = pw / (1 - pw[0] + 1e-6) + ls / (1 - ls[0] + 1e-6)
    assert rank_scores(s, w, y)[0].tolist() == pytest.approx(want.tolist(), rel=1e-12)
    # the weak classifier's favourite wrong class ranks first among the others
    assert zipf_labels(rank_scores(s, w, y), y)[0].argmax().item() == 1  # class 2


def test_the_profile_is_a_sorted_distribution_over_the_wrong_classes():
    rng = np.random.default_rng(3)
    z, y = t64(rng.normal(size=(50, 10)) * 4), torch.as_tensor(rng.integers(0, 10, size=50))
    prof = non_target_profile(z, y)
    assert prof.shape == (9,) and prof.sum().item() == pytest.approx(1.0)
    assert (prof.diff() <= 1e-12).all()
    flat = non_target_profile(torch.zeros(4, 10), torch.arange(4))
    assert flat.tolist() == pytest.approx([1 / 9] * 9)


@pytest.mark.parametrize(("arch", "feature"), [("mlp-30", "hidden1"), ("cnn", "conv2")])
def test_the_method_trains_its_weak_classifier_and_records_each_epoch(arch, feature):
    small = few_per_class()
    torch.manual_seed(0)
    student = build_model(arch)
    d = build_distiller("uskd", {"feature": feature}, student, None, small)
    before = d.weak.weight.detach().clone()
    result = distill(student, None, small, TrainConfig(epochs=2, batch_size=50, seed=0), "uskd",
                     distiller=d)  # fmt: skip
    assert result.ok, result.message
    assert set(result.history[-1].losses) == {"ce", "target", "non_target", "weak", "total"}
    assert not torch.equal(before, d.weak.weight)  # trained with the network
    for record in result.history:
        extra = record.extra
        assert 0 <= extra["weak_accuracy"] <= 1 and 0 <= extra["label_first"] <= 1
        assert extra["target_label_min"] <= 1 <= extra["target_label_max"]
    x, y = small.x_train[:30], small.y_train[:30]
    with torch.no_grad():
        s = student.eval().forward_features(x)
        parts = d(s, {}, type("B", (), {"y": y})())
        w = d.weak_logits(s.features[feature])
    assert parts["ce"].item() == pytest.approx(F.cross_entropy(s.logits, y).item())
    want = uskd_parts(s.logits, w, y, 0.1, 0.1, 0.1)
    for key in ("target", "non_target", "weak"):
        assert parts[key].item() == pytest.approx(want[key].item(), rel=1e-5)


def test_a_feature_the_student_lacks_is_refused_in_one_line():
    small = few_per_class(per=2, n_test=10)
    with pytest.raises(ValueError, match="no feature 'conv9'") as err:
        build_distiller("uskd", {"feature": "conv9"}, build_model("mlp-30"), None, small)
    assert "\n" not in str(err.value)


def test_the_preset_records_every_students_profile_and_the_teachers(tmp_path):
    """One epoch on a few images per class: five models, each student's wrong-digit profile
    after each epoch, the teacher's once."""
    tiny = str(write_tiny_mnist(tmp_path, n_train=1000, n_test=300))
    result = json.loads(
        json.dumps(
            run_preset(
                "uskd", data_dir=tiny, teacher="mlp-30", teacher_epochs=1, epochs=1, per_class=20
            )
        )
    )
    assert result["status"] == "completed", result["message"]
    assert set(result["models"]) == {"teacher", "student_hard", "student_kd", "student_uskd",
                                     "student_uskd_imagenet"}  # fmt: skip
    assert len(result["teacher_rank_profile"]) == 9
    for name in ("student_hard", "student_kd", "student_uskd", "student_uskd_imagenet"):
        prof = result["history"][name][-1]["extra"]["rank_profile"]
        assert len(prof) == 9 and sum(prof) == pytest.approx(1.0, abs=1e-3)
    params = result["models"]["student_uskd_imagenet"]["method_params"]
    assert (params["alpha"], params["beta"], params["mu"]) == (1.0, 0.1, 0.005)
