"""Transformed teacher matching against a plain loop and the official code's arithmetic, finite
differences, the Rényi-entropy decomposition (the paper's reason), properties of the power
transform, WTTM's weights; the registered method's parts and one epoch of training.

The reference follows Zheng & Yang 2024 and the official ``distiller_zoo/ttm.py`` and
``wttm.py``: the teacher's softmax raised to γ = 1/T and renormalised, KL from it to the student's
plain softmax, summed over classes; WTTM multiplies each example's KL by the power sum before the
batch mean.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.kd import kd_loss
from kdcore.losses.ttm import decomposition, power_sum, renyi_entropy, ttm_loss
from kdcore.methods import METHODS
from tests.logit_methods import one_epoch_losses, parts_on_logits
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(x - m) for x in row]
    return [x / sum(e) for x in e]


def ref_loss(s: list[list[float]], t: list[list[float]], gamma: float, weighted: bool) -> float:
    total = 0.0
    for zs, zt in zip(s, t, strict=True):
        powered = [p**gamma for p in softmax(zt)]
        norm = sum(powered)
        target = [p / norm for p in powered]
        ps = softmax(zs)
        kl = sum(q * (math.log(q) - math.log(p)) for q, p in zip(target, ps, strict=True))
        total += (norm if weighted else 1.0) * kl
    return total / len(s)


def official(s: torch.Tensor, t: torch.Tensor, gamma: float, weighted: bool) -> torch.Tensor:
    """The official ``TTM.forward`` / ``WTTM.forward``, line by line."""
    p_s = F.log_softmax(s, dim=1)
    p_t = torch.pow(torch.softmax(t, dim=1), gamma)
    norm = torch.sum(p_t, dim=1)
    p_t = p_t / norm.unsqueeze(1)
    kl = torch.sum(F.kl_div(p_s, p_t, reduction="none"), dim=1)
    return torch.mean(norm * kl) if weighted else torch.mean(kl)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_the_loss_matches_the_reference_and_the_official_code(T, weighted):
    g = torch.Generator().manual_seed(3)
    s, t = 3 * torch.randn(6, 10, generator=g), 6 * torch.randn(6, 10, generator=g)
    got = float(ttm_loss(s, t, T, weighted))
    want = ref_loss(s.double().tolist(), t.double().tolist(), 1 / T, weighted)
    assert got == pytest.approx(want, rel=1e-5)
    assert got == pytest.approx(float(official(s.double(), t.double(), 1 / T, weighted)), rel=1e-5)


def test_at_t_1_it_is_kd_at_t_1():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(7, 10, generator=g), 4 * torch.randn(7, 10, generator=g)
    assert float(ttm_loss(s, t, 1.0)) == pytest.approx(float(kd_loss(s, t, 1.0)), rel=1e-6)


def test_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, 6, generator=g, dtype=torch.double, requires_grad=True)
    t = 3 * torch.randn(5, 6, generator=g, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda x: ttm_loss(x, t, 4.0), (s,))
    assert torch.autograd.gradcheck(lambda x: ttm_loss(x, t, 4.0, weighted=True), (s,))


@SETTINGS
@given(seed=st.integers(0, 10_000), T=st.floats(0.3, 30.0), scale=st.floats(0.5, 10.0))
def test_ttm_is_t_times_kd_less_the_students_renyi_entropy(seed, T, scale):
    """The paper's decomposition, every example, every T: TTM = T·KL(p̃_t ‖ softmax(z/T)) −
    (T − 1)·H_{1/T}(p_s) + (T − 1)·H(p̃_t), so for T > 1 a less certain student is rewarded."""
    g = torch.Generator().manual_seed(seed)
    s = scale * torch.randn(4, 10, generator=g, dtype=torch.double)
    t = 5 * torch.randn(4, 10, generator=g, dtype=torch.double)
    d = decomposition(s, t, T)
    rhs = d["kd"] - (T - 1) * d["renyi"] + (T - 1) * d["teacher_entropy"]
    assert torch.allclose(d["ttm"], rhs, atol=1e-9)
    # the batch mean of the KD part is kd_loss / T (kd_loss carries T², this part T)
    assert float(d["kd"].mean()) == pytest.approx(float(kd_loss(s, t, T)) / T, rel=1e-9)


def test_the_minimum_is_the_teachers_tempered_softmax_not_its_own():
    """TTM's optimum is a student whose plain softmax *is* the teacher's at T: logits v/T. KD's
    (at the same T) is the teacher's logits themselves, so TTM's student is less certain."""
    t = 6 * torch.randn(3, 10, generator=torch.Generator().manual_seed(7), dtype=torch.double)
    assert float(ttm_loss(t / 4.0, t, 4.0)) < 1e-12
    assert float(ttm_loss(t, t, 4.0)) > 1e-3
    assert float(renyi_entropy(t / 4.0, 0.25).mean()) > float(renyi_entropy(t, 0.25).mean())


@SETTINGS
@given(seed=st.integers(0, 10_000), T=st.floats(1.0, 50.0))
def test_wttm_weights_lie_between_one_and_k_to_the_one_minus_gamma(seed, T):
    g = torch.Generator().manual_seed(seed)
    t = 8 * torch.randn(5, 10, generator=g, dtype=torch.double)
    w = power_sum(t, T)
    assert bool((w >= 1 - 1e-12).all()) and bool((w <= 10 ** (1 - 1 / T) + 1e-9).all())
    ref = (F.softmax(t, dim=1) ** (1 / T)).sum(1)
    assert torch.allclose(w, ref, rtol=1e-10)


def test_wttm_weighs_a_hesitant_teachers_images_more():
    sure = torch.tensor([[20.0] + [0.0] * 9])
    torn = torch.tensor([[5.0, 5.0] + [0.0] * 8])
    assert float(power_sum(torn, 10.0)) > float(power_sum(sure, 10.0))
    assert float(power_sum(torch.zeros(1, 10), 10.0)) == pytest.approx(10**0.9, rel=1e-6)


def test_renyi_entropy_limits_and_range():
    z = 3 * torch.randn(6, 10, generator=torch.Generator().manual_seed(8), dtype=torch.double)
    p = F.softmax(z, 1)
    shannon = -(p * p.log()).sum(1)
    assert torch.allclose(renyi_entropy(z, 1.0), shannon)
    assert torch.allclose(renyi_entropy(z, 1.0 + 1e-6), shannon, atol=1e-5)
    # non-increasing in the order, at most log K (the uniform distribution's, at every order)
    h = [renyi_entropy(z, a) for a in (0.1, 0.5, 1.0, 2.0)]
    assert all(bool((x >= y - 1e-12).all()) for x, y in itertools.pairwise(h))
    assert float(renyi_entropy(torch.zeros(1, 10), 0.1)) == pytest.approx(math.log(10))


# ----------------------------------------------------------------------------- as a method


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_registered_with_the_official_settings_and_its_parts_equal_the_pure_function(small):
    m = METHODS["ttm"]
    assert m.family == "response" and "arXiv:2402.11148" in m.citation
    default = m.make_params({})
    assert (default.T, default.beta, default.ce_weight, default.weighted) == (10.0, 45.0, 1, False)
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    params = {"T": 4.0, "beta": 3.0, "ce_weight": 0.5, "weighted": True}
    parts = parts_on_logits("ttm", params, small, s, t, y)
    assert torch.allclose(parts["ttm"], 3.0 * ttm_loss(s, t, 4.0, weighted=True))
    assert torch.allclose(parts["ce"], 0.5 * F.cross_entropy(s, y))


def test_trains_one_epoch_with_finite_parts(small):
    assert {"ce", "ttm"} <= set(one_epoch_losses("ttm", small))
