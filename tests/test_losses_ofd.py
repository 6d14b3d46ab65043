"""The overhaul of feature distillation (Heo et al. 2019): the partial L2 against a reference
written number by number from the paper's equation and against the authors' code's form, the
margin against the conditional expectation integrated numerically and the authors'
``get_margin_from_BN``, finite differences, its properties, and the registered method (its
margins measured over the batches seen, its variants, its records)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.ofd import gaussian_margin, margin_relu, ofd_loss, partial_l2
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=40, deadline=None)


def ref_partial(s: np.ndarray, t: np.ndarray) -> float:
    """Eq. 5 number by number: 0 where S_i ≤ T_i ≤ 0, else (T_i − S_i)², summed over an example,
    averaged over examples."""
    total = 0.0
    for b in range(s.shape[0]):
        for idx in np.ndindex(*s.shape[1:]):
            si, ti = s[(b, *idx)], t[(b, *idx)]
            total += 0.0 if si <= ti <= 0 else (ti - si) ** 2
    return total / s.shape[0]


def authors_loss(s: torch.Tensor, t: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """The authors' ``distillation_loss`` (margin as a (1, C, 1, 1) buffer), divided by the batch
    size as their training loop does."""
    target = torch.max(t, margin.view(1, -1, *[1] * (t.dim() - 2)))
    loss = torch.nn.functional.mse_loss(s, target, reduction="none")
    loss = loss * ((s > target) | (target > 0)).float()
    return loss.sum() / s.shape[0]


def authors_margin(mean: float, std: float) -> float:
    """The authors' ``get_margin_from_BN`` for one channel (BatchNorm shift and scale)."""
    s, m = abs(std), mean
    below = 0.5 * (1 + math.erf(-m / s / math.sqrt(2)))
    if below > 0.001:
        return -s * math.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi) / below + m
    return -3 * s


def integrated_margin(mean: float, std: float) -> float:
    """E[x | x < 0] for x ~ N(mean, std²), by the trapezoid rule on a fine grid."""
    x = np.linspace(min(mean, 0.0) - 12 * std, 0.0, 200_001)
    p = np.exp(-0.5 * ((x - mean) / std) ** 2)
    return float(np.trapezoid(x * p, x) / np.trapezoid(p, x))


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 2, 3)])
def test_partial_l2_matches_the_papers_equation_and_the_authors_code(shape):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=shape), rng.normal(size=shape)
    t[rng.random(shape) < 0.2] = 0.0  # targets exactly at zero: skipped when s ≤ 0
    assert partial_l2(t64(s), t64(t)).item() == pytest.approx(ref_partial(s, t), rel=1e-12)
    margin = t64(-rng.uniform(0.1, 1.5, size=shape[1]))
    got = ofd_loss(t64(s), t64(t), margin).item()
    assert got == pytest.approx(authors_loss(t64(s), t64(t), margin).item(), rel=1e-12)
    raised = np.maximum(t, margin.numpy().reshape(1, -1, *[1] * (len(shape) - 2)))
    assert got == pytest.approx(ref_partial(s, raised), rel=1e-12)


@pytest.mark.parametrize(("mean", "std"), [(0.0, 1.0), (0.7, 0.5), (-1.2, 2.0), (2.5, 1.0)])
def test_the_margin_is_the_expected_negative_response(mean, std):
    got = gaussian_margin(t64([mean]), t64([std])).item()
    assert got == pytest.approx(integrated_margin(mean, std), abs=1e-6)
    assert got == pytest.approx(authors_margin(mean, std), rel=1e-12)
    assert got < 0
    assert gaussian_margin(t64([0.0]), t64([1.0])).item() == pytest.approx(-math.sqrt(2 / math.pi))


def test_a_channel_almost_never_negative_takes_three_sigma_as_the_authors_code():
    # P(x < 0) = Φ(−4) ≈ 3e-5 ≤ 0.001: −3σ, where the expectation would be about −0.23
    assert gaussian_margin(t64([4.0]), t64([1.0])).item() == -3.0
    assert authors_margin(4.0, 1.0) == -3.0


def test_ofd_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(4, 6))
    margin = t64(np.full(6, -0.6))
    target = np.maximum(t, -0.6)
    # away from the kinks, where S_i = T_i: each number at least 0.1 from its target
    s = target + rng.choice([-1, 1], size=t.shape) * rng.uniform(0.1, 1.0, size=t.shape)
    assert torch.autograd.gradcheck(lambda x: ofd_loss(x, t64(t), margin), (t64(s, True),))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 5), c=st.integers(1, 6),
       depth=st.floats(0.0, 5.0))  # fmt: skip
def test_a_student_below_a_non_positive_target_costs_nothing(seed, b, c, depth):
    """Every number the ReLU would silence in both (S_i ≤ T_i ≤ 0) costs nothing, however far
    below; any other mismatch costs; and the partial L2 never exceeds the plain one."""
    rng = np.random.default_rng(seed)
    t = -rng.uniform(0, 2, size=(b, c))
    s = t - depth * rng.random((b, c))
    assert partial_l2(t64(s), t64(t)).item() == 0.0
    i, j = rng.integers(b), rng.integers(c)
    s_bad = s.copy()
    s_bad[i, j] = t[i, j] + 0.5  # above its target
    assert partial_l2(t64(s_bad), t64(t)).item() == pytest.approx(0.25 / b)
    u, v = t64(rng.normal(size=(b, c))), t64(rng.normal(size=(b, c)))
    assert partial_l2(u, v).item() <= ((u - v) ** 2).sum(1).mean().item() + 1e-12


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), deeper=st.floats(0.0, 10.0))
def test_the_margin_relu_keeps_positives_and_forgets_how_far_below_the_margin(seed, deeper):
    """σ_m keeps every value above m; a teacher value anywhere below m gives the same target,
    so the loss cannot tell how far below it was."""
    rng = np.random.default_rng(seed)
    margin = t64(-rng.uniform(0.2, 1.5, size=4))
    t = rng.normal(size=(3, 4)) * 2
    out = margin_relu(t64(t), margin).numpy()
    m = margin.numpy()
    assert np.array_equal(out, np.maximum(t, m))
    below = t < m
    t2 = np.where(below, t - deeper, t)
    s = t64(rng.normal(size=(3, 4)))
    assert ofd_loss(s, t64(t2), margin).item() == pytest.approx(ofd_loss(s, t64(t), margin).item())


@pytest.fixture(scope="module")
def small():
    return few_per_class()


LAYERS = {"student_layer": "hidden2_pre", "teacher_layer": "hidden2_pre"}


@pytest.mark.parametrize("batch", [50, 200])
def test_the_margins_are_the_teachers_over_every_batch_seen(small, batch):
    """With the learning rate at 0 nothing trains: after one epoch, in batches of 50 or in one
    batch, the recorded margins are, over the whole training set, the mean of each teacher
    unit's negative responses and the Gaussian's expectation from its mean and spread, computed
    here directly; the shares likewise (in batches, each counted at the margins then in force,
    which the set's first batches only estimate)."""
    torch.manual_seed(1)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("ofd", LAYERS, student, teacher, small)
    assert len(small.y_train) == 200
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.0, momentum=0.0, seed=0)
    result = distill(student, teacher, small, cfg, "ofd", distiller=d)
    assert result.ok, result.message
    extra = result.history[-1].extra
    with torch.no_grad():
        t = teacher.eval().forward_features(small.x_train).features["hidden2_pre"].double()
    neg = torch.where(t < 0, t, torch.zeros_like(t))
    responses = neg.sum(0) / (t < 0).sum(0)
    gaussian = gaussian_margin(t.mean(0), t.std(0, unbiased=False))
    assert extra["margin_responses"] == pytest.approx(responses.tolist(), abs=1e-4)
    assert extra["margin_gaussian"] == pytest.approx(gaussian.tolist(), abs=1e-4)
    assert extra["margin"] == extra["margin_gaussian"]  # the paper's, by default
    assert extra["negative"] == pytest.approx((t < 0).double().mean().item(), abs=1e-5)
    raised = (t < gaussian).double().mean().item()
    assert extra["raised"] == pytest.approx(raised, abs=1e-5 if batch == 200 else 5e-3)
    assert 0 < extra["skipped"] < extra["negative"]
    assert set(result.history[-1].losses) == {"ce", "ofd", "total"}  # no KD at α = 0


@pytest.mark.parametrize(("margin", "partial"), [("responses", True), ("zero", False),
                                                 ("none", False)])  # fmt: skip
def test_each_variant_trains_on_the_target_it_names(small, margin, partial):
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    params = {**LAYERS, "margin": margin, "partial": partial, "alpha": 0.5}
    d = build_distiller("ofd", params, student, teacher, small)
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "ofd", distiller=d)  # fmt: skip
    assert result.ok, result.message
    extra = result.history[-1].extra
    assert set(result.history[-1].losses) == {"ce", "kd", "ofd", "total"}
    if margin == "none":  # the raw responses: nothing raised, no margin to record (−∞)
        assert extra["raised"] == 0.0 and "margin" not in extra
    else:
        assert extra["margin"] == (extra["margin_responses"] if margin == "responses"
                                   else [0.0] * 100)  # fmt: skip
    # the step's loss is the named target's, at the margins in force
    x, y = small.x_train[:20], small.y_train[:20]
    with torch.no_grad():
        t = d.teacher_targets(teacher.eval().forward_features(x))
        out = student.eval().forward_features(x)
        d.eval()
        parts = d(out, t, Batch(x, y, torch.arange(20)))
        s = d.connector(out.features["hidden2_pre"])
        m = d.margin()
        target = t["feat"] if margin == "none" else torch.maximum(t["feat"], m.float())
        want = partial_l2(s, target) if partial else ((s - target) ** 2).sum(1).mean()
    assert parts["ofd"].item() == pytest.approx(1e-3 * want.item(), rel=1e-5)


def test_spatial_layers_get_a_convolutional_connector_and_bad_margins_are_refused(small):
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn")
    d = build_distiller("ofd", {"student_layer": "conv2", "teacher_layer": "conv2"}, student,
                        teacher, small)  # fmt: skip
    assert isinstance(d.connector[0], torch.nn.Conv2d)
    assert (d.connector[0].in_channels, d.connector[0].out_channels) == (16, 64)
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "ofd", distiller=d)  # fmt: skip
    assert result.ok and len(result.history[-1].extra["margin"]) == 64
    with pytest.raises(ValueError, match="margin"):
        build_distiller("ofd", {**LAYERS, "margin": "median"}, build_model("mlp-30"),
                        build_model("mlp-100"), small)  # fmt: skip


def test_the_cnns_maps_before_their_relus_are_the_papers_position(small):
    """The CNN's conv2 before its ReLU and pooling (14 × 14): the teacher's channels have
    negative responses to raise, their margins are below zero, and after the ReLU (conv2) none
    is negative at all."""
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn")
    pre = {"student_layer": "conv2_pre", "teacher_layer": "conv2_pre"}
    d = build_distiller("ofd", pre, student, teacher, small)
    result = distill(student, teacher, small, TrainConfig(epochs=1, batch_size=50, seed=0),
                     "ofd", distiller=d)  # fmt: skip
    assert result.ok, result.message
    extra = result.history[-1].extra
    assert 0 < extra["raised"] < extra["negative"] < 1
    assert max(extra["margin"]) < 0 and len(extra["margin"]) == 64
    with torch.no_grad():
        out = teacher.eval().forward_features(small.x_train[:8])
    assert out.features["conv2_pre"].shape[1:] == (64, 14, 14)
    assert torch.equal(torch.relu(out.features["conv2_pre"]).amax(), out.features["conv2"].amax())
