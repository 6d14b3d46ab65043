"""Variational information distillation (Ahn et al. 2019): the loss against a reference written
from the paper's equation, finite differences, the optimum of each channel's variance, and the
registered method (its regressor, the variance it learns and the errors it records)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.fitnets import fitnet_loss
from kdcore.losses.vid import VID_EPS, vid_alpha, vid_loss, vid_variance
from kdcore.models import build_model
from kdcore.train import TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def ref_vid(mean: np.ndarray, target: np.ndarray, variance: np.ndarray) -> float:
    """Eq. 4 element by element: ½ log σ_c² + (t − μ)² / (2σ_c²), averaged over every element."""
    terms = []
    for idx in np.ndindex(*target.shape):
        c = idx[1]
        r = target[idx] - mean[idx]
        terms.append(0.5 * math.log(variance[c]) + r * r / (2 * variance[c]))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3)])
def test_vid_matches_the_papers_equation(shape):
    rng = np.random.default_rng(0)
    mean, target = rng.normal(size=shape), rng.normal(size=shape)
    var = rng.uniform(0.1, 3.0, size=shape[1])
    got = vid_loss(t64(mean), t64(target), t64(var)).item()
    assert got == pytest.approx(ref_vid(mean, target, var), rel=1e-12)


def test_the_variance_is_a_softplus_started_where_asked():
    a = torch.tensor([-30.0, 0.0, 3.0, 40.0], dtype=torch.float64)
    want = [math.log1p(math.exp(v)) + VID_EPS for v in a.tolist()]
    assert vid_variance(a).tolist() == pytest.approx(want, rel=1e-12)
    assert vid_variance(a).min().item() > 0  # however negative α goes
    for v in (0.01, 1.0, 5.0):
        assert vid_variance(torch.tensor(vid_alpha(v), dtype=torch.float64)).item() == (
            pytest.approx(v, rel=1e-12)
        )


def test_vid_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    mean, target = t64(rng.normal(size=(3, 4, 2, 2)), True), t64(rng.normal(size=(3, 4, 2, 2)))
    alpha = t64(rng.normal(size=4), True)
    assert torch.autograd.gradcheck(lambda m, a: vid_loss(m, target, vid_variance(a)),
                                    (mean, alpha))  # fmt: skip


def test_with_one_fixed_variance_vid_is_a_fitnets_hint_rescaled():
    """σ² = v for every channel: the same squared error as a FitNets hint, weighted 1/(2v), plus
    a constant; the per-channel variance is all that VID adds."""
    rng = np.random.default_rng(2)
    mean, target = t64(rng.normal(size=(6, 5))), t64(rng.normal(size=(6, 5)))
    for v in (0.5, 5.0):
        got = vid_loss(mean, target, torch.full((5,), v, dtype=torch.float64)).item()
        want = fitnet_loss(mean, target).item() / (2 * v) + 0.5 * math.log(v)
        assert got == pytest.approx(want, rel=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(2, 8), c=st.integers(1, 6))
def test_each_channels_best_variance_is_its_mean_squared_error(seed, b, c):
    """The likelihood is stationary in σ_c² where σ_c² equals the channel's mean squared error,
    and lower there than at twice or half of it: what the learned variances move towards."""
    rng = np.random.default_rng(seed)
    mean, target = t64(rng.normal(size=(b, c))), t64(rng.normal(size=(b, c)))
    mse = ((mean - target) ** 2).mean(dim=0)  # (c,)
    var = mse.clone().requires_grad_()
    (grad,) = torch.autograd.grad(vid_loss(mean, target, var), var)
    assert grad.abs().max().item() < 1e-9 * (1 + (1 / mse).max().item())
    at_best = vid_loss(mean, target, mse).item()
    for factor in (0.5, 2.0):
        assert vid_loss(mean, target, mse * factor).item() > at_best


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_the_method_learns_its_variances_and_records_its_errors(small):
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    cfg = TrainConfig(epochs=2, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    result = distill(student, teacher, small, cfg, "vid", {"init_variance": 2.0})
    assert result.ok, result.message
    assert {"ce", "vid"} <= set(result.history[-1].losses)
    first, last = result.history[0].extra, result.history[-1].extra
    assert len(last["variance"]) == len(last["squared_error"]) == 100  # the teacher's units
    assert all(v > 0 for v in last["squared_error"])
    # every unit's variance moved from 2 towards its (much smaller) squared error
    assert max(last["variance"]) < 2.0 and max(first["variance"]) < 2.0
    assert all(a >= b for a, b in zip(first["variance"], last["variance"], strict=True))


def test_recorded_errors_are_the_regressors_on_the_epochs_batches(small):
    """With the learning rate at 0 nothing moves: each unit's recorded squared error is the
    regressor's over the whole training set, computed here directly, and its variance is the 5
    it started from."""
    torch.manual_seed(1)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("vid", {}, student, teacher, small)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.0, momentum=0.0, seed=0)
    result = distill(student, teacher, small, cfg, "vid", distiller=d)
    assert result.ok, result.message
    extra = result.history[-1].extra
    assert extra["variance"] == pytest.approx([5.0] * 100, rel=1e-3)
    with torch.no_grad():
        s = student.eval().forward_features(small.x_train).features["embedding"]
        t = teacher.eval().forward_features(small.x_train).features["embedding"]
        want = ((d.regressor(s) - t) ** 2).mean(dim=0)  # (100,)
    assert extra["squared_error"] == pytest.approx(want.tolist(), rel=1e-3, abs=1e-6)
    # and the next epoch starts its sums afresh rather than adding to this one's
    assert d.epoch_summary()["squared_error"] == [0.0] * 100


def test_spatial_layers_are_pooled_and_flat_with_spatial_refused(small):
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn-8")
    d = build_distiller("vid", {"student_layer": "conv2", "teacher_layer": "conv1"}, student,
                        teacher, small)  # fmt: skip
    assert d.size == (7, 7) and d.alpha.shape == (8,)  # conv1's 8 channels, pooled 14 -> 7
    with pytest.raises(ValueError, match="not both flat or both spatial"):
        build_distiller("vid", {"student_layer": "embedding", "teacher_layer": "conv1"},
                        student, teacher, small)  # fmt: skip
