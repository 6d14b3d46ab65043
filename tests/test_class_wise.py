"""Class-wise self-distillation (CS-KD; Yun et al. 2020): the loss against its definition and
finite differences, the partner sampler (same class, never the image itself, uniform over the
others), the step (no gradient through the partner), the measures it is judged by (intra-class
KL, calibration error) against direct computations, and the preset on a slice of MNIST."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.class_wise import (
    PartnerSampler,
    class_wise_loss,
    class_wise_step,
    expected_calibration_error,
    intra_class_kl,
)
from kdcore.models import build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.train import Batch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, straight from the definition, in float64."""
    p, q = p.double(), q.double()
    return (p * (p.log() - q.log())).sum(-1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.floats(0.5, 8.0), st.integers(0, 2**16))
def test_the_class_wise_term_is_t_squared_kl_from_the_partner(b, T, seed):
    g = torch.Generator().manual_seed(seed)
    z, z_partner = torch.randn(b, 5, generator=g), torch.randn(b, 5, generator=g)
    want = T * T * _kl(F.softmax(z_partner / T, 1), F.softmax(z / T, 1)).mean()
    assert class_wise_loss(z, z_partner, T).item() == pytest.approx(want.item(), rel=1e-4,
                                                                   abs=1e-6)  # fmt: skip
    assert class_wise_loss(z, z.clone(), T).item() == pytest.approx(0.0, abs=1e-6)


def test_the_term_matches_finite_differences_and_leaves_the_partner_alone():
    torch.manual_seed(0)
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    z_partner = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: class_wise_loss(z, z_partner, 4.0), (z,))
    class_wise_loss(z, z_partner, 4.0).backward()
    assert z_partner.grad is None  # the fixed copy: no gradient through the partner


def test_partners_share_the_class_are_never_the_image_and_cover_the_others():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 0])
    sampler = PartnerSampler(labels, 3, torch.Generator().manual_seed(0))
    idx = torch.tensor([0] * 3000)
    partners = sampler(idx, labels[idx])
    assert set(partners.tolist()) == {2, 5, 7}  # the other 0s, each about a third of the time
    assert all(900 < c < 1100 for c in Counter(partners.tolist()).values())
    every = torch.arange(len(labels))
    for _ in range(20):
        p = sampler(every, labels)
        assert torch.equal(labels[p], labels) and not (p == every).any()
    with pytest.raises(ValueError, match="two training images"):
        PartnerSampler(torch.tensor([0, 0, 1]), 2, torch.Generator())


def test_the_step_adds_the_term_and_no_gradient_reaches_the_partners_pass():
    torch.manual_seed(0)
    model = build_model("mlp-30")
    x = torch.rand(12, 1, 28, 28)
    y = torch.tensor([0, 1, 2] * 4)
    sampler = PartnerSampler(y, 3, torch.Generator().manual_seed(1))
    batch = Batch(x[:6], y[:6], torch.arange(6))
    out = class_wise_step(sampler, x, T=4.0, weight=2.0)(model, batch)
    assert set(out.parts) == {"ce", "cls"}
    assert out.parts["ce"].item() == pytest.approx(F.cross_entropy(model(x[:6]), y[:6]).item())
    plain = class_wise_step(sampler, x, weight=0.0)(model, batch)
    assert set(plain.parts) == {"ce"}
    # the partners' draws are the sampler's: the same generator state gives the same term
    s1 = PartnerSampler(y, 3, torch.Generator().manual_seed(5))
    s2 = PartnerSampler(y, 3, torch.Generator().manual_seed(5))
    a = class_wise_step(s1, x, 4.0, 1.0)(model, batch).parts["cls"]
    b = class_wise_step(s2, x, 4.0, 1.0)(model, batch).parts["cls"]
    assert a.item() == b.item() > 0


def test_intra_class_kl_and_calibration_error_by_hand():
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    pairs = torch.tensor([[0, 1], [1, 0]])
    want = (_kl(F.softmax(z[1:2] / 2, 1), F.softmax(z[0:1] / 2, 1))
            + _kl(F.softmax(z[0:1] / 2, 1), F.softmax(z[1:2] / 2, 1))) / 2  # fmt: skip
    assert intra_class_kl(z, labels, pairs, T=2.0) == pytest.approx(want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="one class"):
        intra_class_kl(z, labels, torch.tensor([[0, 2]]))
    # confidences 0.881 (right), 0.5 (right: ties go to class 0), 0.5 (wrong): two bins
    logits = z
    conf = F.softmax(logits, 1).max(1).values
    want = (1 / 3) * abs(1 - conf[0].item()) + (2 / 3) * abs(0.5 - 0.5)
    assert expected_calibration_error(logits, labels, bins=10) == pytest.approx(want, abs=1e-6)
    perfect = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert expected_calibration_error(perfect, torch.tensor([0, 1])) == pytest.approx(0, abs=1e-6)


def test_the_preset_trains_both_students_from_one_start_on_a_slice_of_mnist():
    result = json.loads(json.dumps(run_preset("class-wise", epochs=1, per_class=20, pairs=50)))
    assert result["status"] == "completed", result["message"]
    assert list(result["models"]) == ["student_hard", "student_cskd"]
    assert result["models"]["student_cskd"]["method"] == "cs-kd"
    for name in ("student_hard", "student_cskd"):
        extra = result["history"][name][-1]["extra"]
        assert extra["intra_class_kl"] >= 0 and 0 <= extra["ece"] <= 1
        assert 0.1 <= extra["confidence"] <= 1
        assert {"ce"} <= set(result["history"][name][-1]["losses"])
    assert "cls" in result["history"]["student_cskd"][-1]["losses"]
    assert "cls" not in result["history"]["student_hard"][-1]["losses"]
    assert PRESETS["class-wise"].seed_pairs == {"student_cskd": "student_hard"}


def test_a_set_with_one_image_a_class_is_refused_before_anything_trains():
    with pytest.raises(ValueError, match="two training images of a class"):
        PRESETS["class-wise"].with_changes({"per_class": 1})
    assert PRESETS["class-wise"].with_changes({"per_class": 2}).per_class == 2
