"""CTKD's parts against references: the gradient reversal against autograd of the plain loss, the
curriculum against the official code's cosine schedule, the learned temperature's range and
inverse, θ's gradient against finite differences of KD in T; the registered method's parts, its
refusals, and on real images that the temperature climbs the loss the student descends.

The references follow Li et al. 2023 (its cosine curriculum) and the official code
(``train_student.py``'s ``CosineDecay`` with ``--decay_max 0 --decay_min -1 --decay_loops 10``,
whose value at epoch n is −λ_n, used as the reversal's factor; ``t_start + t_end *
sigmoid(temp)``).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.ctkd import (
    T_INIT,
    ctkd_loss,
    curriculum,
    learned_temperature,
    reverse_gradient,
    theta_for,
)
from kdcore.losses.kd import kd_loss
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.logit_methods import one_epoch_losses, parts_on_logits
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def official_decay(epoch: int, loops: int = 10, hi: float = 0.0, lo: float = -1.0) -> float:
    """The official ``CosineDecay.get_value``: cos from ``hi`` down to ``lo`` over ``loops``."""
    i = min(max(epoch, 0), loops)
    return (math.cos(i * math.pi / loops) + 1.0) * 0.5 * (hi - lo) + lo


def test_the_reversal_is_the_identity_forwards_and_minus_lambda_backwards():
    x = torch.randn(5, requires_grad=True)
    w = torch.randn(5)
    y = reverse_gradient(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)


@pytest.mark.parametrize("epoch", range(0, 13))
def test_the_curriculum_is_the_official_schedule_at_whole_epochs(epoch):
    # the code's value is the factor of a reversal by −1: λ = −value
    assert curriculum(epoch, 10) == pytest.approx(-official_decay(epoch), abs=1e-12)


@SETTINGS
@given(st.floats(0.0, 30.0), st.floats(0.1, 20.0), st.floats(0.0, 3.0))
def test_the_curriculum_rises_from_its_least_to_its_most_and_stays(n, ramp, top):
    lam = curriculum(n, ramp, 0.0, top)
    assert -1e-12 <= lam <= top + 1e-12
    assert curriculum(n + 0.5, ramp, 0.0, top) >= lam - 1e-12
    assert curriculum(0.0, ramp, 0.0, top) == pytest.approx(0.0, abs=1e-12)
    assert curriculum(ramp / 2, ramp, 0.0, top) == pytest.approx(top / 2)
    assert curriculum(ramp + n, ramp, 0.0, top) == pytest.approx(top)
    assert curriculum(n, 0.0, 0.0, top) == top  # no ramp: at its most from the start


@SETTINGS
@given(st.floats(-30.0, 30.0), st.floats(0.1, 5.0), st.floats(0.5, 40.0))
def test_any_theta_gives_a_temperature_in_range_and_theta_for_inverts_it(theta, lo, span):
    T = float(learned_temperature(torch.tensor(theta, dtype=torch.float64), lo, span))
    assert lo <= T <= lo + span
    if lo < T < lo + span and abs(theta) < 15:  # away from where σ rounds to 0 or 1
        assert theta_for(T, lo, span) == pytest.approx(theta, rel=1e-6, abs=1e-6)


def test_the_official_start_and_out_of_range_starts_are_refused_in_one_line():
    assert pytest.approx(1 + 20 / (1 + math.exp(-1))) == T_INIT
    assert theta_for(T_INIT, 1.0, 20.0) == pytest.approx(1.0)
    for t in (1.0, 21.0, 0.5, 30.0):
        with pytest.raises(ValueError, match="strictly between the lowest") as err:
            theta_for(t, 1.0, 20.0)
        assert "\n" not in str(err.value)


def test_value_and_student_gradient_are_kds_at_the_learned_temperature():
    torch.manual_seed(0)
    s = (torch.randn(8, 10, dtype=torch.float64) * 3).requires_grad_()
    t = torch.randn(8, 10, dtype=torch.float64) * 4
    theta = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    T = 1.0 + 20.0 / (1.0 + math.exp(-0.3))
    loss = ctkd_loss(s, t, theta, 0.6)
    ref = kd_loss(s, t, T)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    (g,) = torch.autograd.grad(loss, s, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref, s)
    assert torch.allclose(g, g_ref)


@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0])
def test_thetas_gradient_is_minus_lambda_times_the_loss_slope_by_finite_differences(lam):
    torch.manual_seed(1)
    s = torch.randn(6, 10, dtype=torch.float64) * 2
    t = torch.randn(6, 10, dtype=torch.float64) * 5
    theta = torch.tensor([-0.4], dtype=torch.float64, requires_grad=True)
    ctkd_loss(s, t, theta, lam, 2.0, 10.0).backward()
    h = 1e-6

    def at(th: float) -> float:
        return float(kd_loss(s, t, 2.0 + 10.0 / (1.0 + math.exp(-th))))

    slope = (at(-0.4 + h) - at(-0.4 - h)) / (2 * h)
    assert float(theta.grad) == pytest.approx(-lam * slope, rel=1e-5, abs=1e-9)


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_registered_with_the_official_settings_and_its_parts_equal_the_pure_function(small):
    m = METHODS["ctkd"]
    assert m.family == "response" and "arXiv:2211.16231" in m.citation and m.short == "CTKD"
    p = m.make_params({})
    assert (p.t_start, p.t_range, p.ramp_epochs, p.lam_max, p.alpha) == (1.0, 20.0, 10.0, 1.0, 0.9)
    assert p.t_init == pytest.approx(15.62, abs=0.01)
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    parts = parts_on_logits("ctkd", {"alpha": 0.7, "t_init": 4.0}, small, s, t, y)
    assert torch.allclose(parts["kd"], 0.7 * kd_loss(s, t, 4.0), rtol=1e-5)
    assert torch.allclose(parts["ce"], 0.3 * torch.nn.functional.cross_entropy(s, y))
    assert set(parts_on_logits("ctkd", {"alpha": 0.0}, small, s, t, y)) == {"ce"}


def test_a_start_outside_the_range_is_refused_when_the_method_is_built(small):
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    with pytest.raises(ValueError, match="starting temperature"):
        build_distiller("ctkd", {"t_init": 25.0}, student, teacher, small)


def test_trains_one_epoch_with_finite_parts(small):
    assert {"ce", "kd"} <= set(one_epoch_losses("ctkd", small))


def test_on_real_images_the_temperature_climbs_the_loss_the_student_descends(small):
    """A real 100-100 teacher's logits; the θ step alone (the student's logits held) must raise
    the KD term, the student's step alone lower it; the epoch's record follows its steps."""
    torch.manual_seed(0)
    teacher, student = build_model("mlp-100"), build_model("mlp-30")
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    assert distill(teacher, None, small, cfg, "hard").ok
    d = build_distiller("ctkd", {"ramp_epochs": 0.5}, student, teacher, small)
    x, y = small.x_train[:200], small.y_train[:200]
    with torch.no_grad():
        t_logits = teacher(x)
    batch = Batch(x, y, torch.arange(200))
    opt_theta = torch.optim.SGD([d.theta], lr=0.05)
    opt_student = torch.optim.SGD(student.parameters(), lr=0.05)
    d.seen = len(small.y_train)  # past the curriculum: λ = 1

    def kd_now() -> float:
        with torch.no_grad():
            return float(d(student.forward_features(x), {"logits": t_logits}, batch)["kd"])

    before = kd_now()
    d(student.forward_features(x), {"logits": t_logits}, batch)["kd"].backward()
    opt_theta.step()
    raised = kd_now()
    assert raised > before
    opt_student.zero_grad()
    d(student.forward_features(x), {"logits": t_logits}, batch)["kd"].backward()
    opt_student.step()
    assert kd_now() < raised

    # a run from the start: λ follows the examples seen, the record the temperatures taken
    fresh = build_model("mlp-30")
    d = build_distiller("ctkd", {"ramp_epochs": 2.0}, fresh, teacher, small)
    result = distill(fresh, teacher, small, cfg, "ctkd", distiller=d)
    assert result.ok, result.message
    extra = result.history[-1].extra
    assert d.seen == len(small.y_train) and extra["lambda"] == pytest.approx(curriculum(1.0, 2.0))
    trace = extra["temperature_trace"]
    assert 2 <= len(trace) <= 40 and trace[0] == pytest.approx(T_INIT, abs=1e-4)
    assert extra["temperature_min"] <= extra["temperature_mean"] <= extra["temperature_max"]
    assert 1.0 < extra["temperature"] < 21.0
