"""Activation-boundary transfer (Heo et al. 2019): the loss against a reference written unit by
unit from the paper's equation and against the authors' code's form, finite differences, its
zeros exactly where the sides agree with room, and the registered method (its stages, its
connector, and the agreement it records)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.ab import ab_loss, activation_transfer_loss
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=40, deadline=None)


def ref_ab(s: np.ndarray, t: np.ndarray, margin: float) -> float:
    """The paper's hinge unit by unit: ρ(t)·max(0, μ − s)² + (1 − ρ(t))·max(0, μ + s)², summed
    over an example's units, averaged over examples."""
    total = 0.0
    for b in range(s.shape[0]):
        for idx in np.ndindex(*s.shape[1:]):
            on = 1.0 if t[(b, *idx)] > 0 else 0.0
            x = s[(b, *idx)]
            total += on * max(0.0, margin - x) ** 2 + (1 - on) * max(0.0, margin + x) ** 2
    return total / s.shape[0]


def authors_form(s: torch.Tensor, t: torch.Tensor, margin: float) -> torch.Tensor:
    """The authors' criterion_alternative_L2, divided by the batch size as their loop does."""
    loss = (s + margin) ** 2 * ((s > -margin) & (t <= 0)).float() + (s - margin) ** 2 * (
        (s <= margin) & (t > 0)
    ).float()
    return loss.abs().sum() / s.shape[0]


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 2, 3)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
def test_ab_matches_the_papers_equation_and_the_authors_code(shape, margin):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=shape) * 2, rng.normal(size=shape)
    on = t64((t > 0).astype(float))
    got = ab_loss(t64(s), on, margin).item()
    assert got == pytest.approx(ref_ab(s, t, margin), rel=1e-12)
    assert got == pytest.approx(authors_form(t64(s), t64(t), margin).item(), rel=1e-12)


def test_the_activation_transfer_loss_counts_mismatched_sides():
    s = torch.tensor([[0.5, -1.0, 0.0, 2.0], [-0.1, 0.3, 0.2, -2.0]])
    t = torch.tensor([[1.0, 0.5, -1.0, 0.0], [-1.0, 0.0, 3.0, 0.0]])
    # row 0: on/on, off/on, off/off, on/off -> 2; row 1: off/off, on/off, on/on, off/off -> 1
    assert activation_transfer_loss(s, t).item() == pytest.approx(1.5)


def test_ab_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    # away from the hinges' kinks (|s| = μ), where the loss is smooth
    s = rng.choice([-1, 1], size=(4, 6)) * rng.uniform(0.1, 0.8, size=(4, 6))
    s = np.where(rng.random((4, 6)) < 0.3, s * 3 + np.sign(s) * 1.5, s)
    on = t64((rng.random((4, 6)) < 0.5).astype(float))
    assert torch.autograd.gradcheck(lambda x: ab_loss(x, on, 1.0), (t64(s, True),))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 6), c=st.integers(1, 8),
       margin=st.floats(0.0, 3.0))  # fmt: skip
def test_ab_is_zero_exactly_where_every_side_agrees_with_room(seed, b, c, margin):
    """Zero when every fired unit's response is at least μ and every silent one's at most −μ;
    positive as soon as one response is inside the margin or on the wrong side; and never
    below the mismatch count times μ² (a mismatched unit costs at least μ²)."""
    rng = np.random.default_rng(seed)
    on = (rng.random((b, c)) < 0.5).astype(float)
    room = rng.uniform(0, 2, size=(b, c))
    s = np.where(on > 0, margin + room, -margin - room)
    assert ab_loss(t64(s), t64(on), margin).item() == 0.0
    i, j = rng.integers(b), rng.integers(c)
    s_bad = s.copy()
    s_bad[i, j] = -s[i, j] * rng.uniform(0, 1)  # the wrong side, or inside the margin
    bad = ab_loss(t64(s_bad), t64(on), margin).item()
    assert bad > 0 or margin == 0.0
    count = activation_transfer_loss(t64(s_bad), t64(on)).item()
    assert bad >= count * margin**2 - 1e-9


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10.0))
def test_only_the_teachers_signs_count(seed, scale):
    """The teacher's responses enter through their signs alone: rescaling them, or passing them
    through a ReLU, changes nothing."""
    rng = np.random.default_rng(seed)
    s, t = t64(rng.normal(size=(4, 5))), rng.normal(size=(4, 5))
    base = ab_loss(s, t64((t > 0).astype(float))).item()
    for t2 in (t * scale, np.maximum(t, 0)):
        assert ab_loss(s, t64((t2 > 0).astype(float))).item() == base


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_the_method_initialises_then_classifies_and_records_its_agreement(small):
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    cfg = TrainConfig(epochs=3, batch_size=50, lr=0.05, seed=0)
    layers = {"student_layer": "hidden2_pre", "teacher_layer": "hidden2_pre"}
    d = build_distiller("ab", {**layers, "init_epochs": 1}, student, teacher, small)
    result = distill(student, teacher, small, cfg, "ab", distiller=d)
    assert result.ok, result.message
    assert [h.stage for h in result.history] == ["init", "train", "train", "train"]
    assert set(result.history[0].losses) == {"ab", "total"}  # AB alone first
    assert "ab" not in result.history[-1].losses and "ce" in result.history[-1].losses
    extra = result.history[0].extra
    assert len(extra["unit_agreement"]) == len(extra["teacher_on"]) == 100
    assert extra["agreement"] == pytest.approx(np.mean(extra["unit_agreement"]), abs=1e-4)
    # after its stage the connector is frozen: no gradient reaches it, its running statistics
    # stay as they were, and the parts are CE alone (α = 0)
    before = {k: v.clone() for k, v in d.connector.state_dict().items()}
    x, y = small.x_train[:20], small.y_train[:20]
    out = student.train().forward_features(x)
    with torch.no_grad():
        targets = d.teacher_targets(teacher.eval().forward_features(x))
    parts = d.train()(out, targets, Batch(x, y, torch.arange(20)))
    assert set(parts) == {"ce"}
    sum(parts.values()).backward()
    assert all(q.grad is None for q in d.connector.parameters())
    after = d.connector.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_recorded_agreement_is_the_connected_students_on_the_epochs_batches(small):
    """With the learning rate at 0 nothing trains: the recorded agreement per unit is, over the
    whole training set, how often the connected student's response and the teacher's share a
    side of zero, computed here directly (the connector's batch statistics aside: BatchNorm in
    training mode normalises each batch by its own, so the batch is the whole set)."""
    torch.manual_seed(1)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    layers = {"student_layer": "hidden2_pre", "teacher_layer": "hidden2"}
    d = build_distiller("ab", {**layers, "init_epochs": 0}, student, teacher, small)
    n = len(small.y_train)
    cfg = TrainConfig(epochs=1, batch_size=n, lr=0.0, momentum=0.0, seed=0)
    result = distill(student, teacher, small, cfg, "ab", distiller=d)
    assert result.ok, result.message
    extra = result.history[-1].extra
    with torch.no_grad():
        s = student.eval().forward_features(small.x_train).features["hidden2_pre"]
        t = teacher.eval().forward_features(small.x_train).features["hidden2"]
        c = d.connector.train()(s)
    want = ((c > 0) == (t > 0)).float().mean(0)
    assert extra["unit_agreement"] == pytest.approx(want.tolist(), abs=1e-4)
    assert extra["teacher_on"] == pytest.approx((t > 0).float().mean(0).tolist(), abs=1e-4)
    assert d.epoch_summary()["unit_agreement"] == [0.0] * 100  # the next epoch starts afresh


def test_spatial_layers_get_a_convolutional_connector(small):
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn")
    d = build_distiller("ab", {"student_layer": "conv2", "teacher_layer": "conv2"}, student,
                        teacher, small)  # fmt: skip
    assert isinstance(d.connector[0], torch.nn.Conv2d)
    assert (d.connector[0].in_channels, d.connector[0].out_channels) == (16, 64)
    with pytest.raises(ValueError, match="not both flat or both spatial"):
        build_distiller("ab", {"student_layer": "embedding", "teacher_layer": "conv1"},
                        student, teacher, small)  # fmt: skip
