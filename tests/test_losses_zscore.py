"""Logit standardisation's loss against a plain loop, finite differences and properties (blind to
each row's mean and spread, where KD is not); the registered method's parts against the pure
function, and one epoch of training.

The reference follows Sun et al. 2024 (Algorithm 1) and the official ``KD.py``: each row of
logits minus its mean, over its unbiased standard deviation plus 1e-7, then KD at the base
temperature τ: τ² KL(teacher ‖ student), the batch mean.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.kd import kd_loss
from kdcore.losses.zscore import standardise, zscore_kd_loss
from kdcore.methods import METHODS
from tests.logit_methods import one_epoch_losses, parts_on_logits
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def ref_zscore(row: list[float]) -> list[float]:
    k = len(row)
    mean = sum(row) / k
    std = math.sqrt(sum((x - mean) ** 2 for x in row) / (k - 1))  # unbiased, as Tensor.std
    return [(x - mean) / (std + 1e-7) for x in row]


def ref_loss(s: list[list[float]], t: list[list[float]], tau: float) -> float:
    def log_softmax(row):
        m = max(row)
        lse = m + math.log(sum(math.exp(x - m) for x in row))
        return [x - lse for x in row]

    total = 0.0
    for zs, zt in zip(s, t, strict=True):
        lq = log_softmax([x / tau for x in ref_zscore(zs)])
        lp = log_softmax([x / tau for x in ref_zscore(zt)])
        total += sum(math.exp(a) * (a - b) for a, b in zip(lp, lq, strict=True))
    return tau * tau * total / len(s)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_the_loss_matches_the_reference(tau):
    g = torch.Generator().manual_seed(3)
    s, t = 3 * torch.randn(6, 10, generator=g), 8 * torch.randn(6, 10, generator=g)
    want = ref_loss(s.double().tolist(), t.double().tolist(), tau)
    assert float(zscore_kd_loss(s, t, tau)) == pytest.approx(want, rel=1e-5)


def test_standardised_rows_have_mean_zero_and_unit_spread():
    z = 5 * torch.randn(7, 10, generator=torch.Generator().manual_seed(1)) + 3
    zs = standardise(z)
    assert torch.allclose(zs.mean(1), torch.zeros(7), atol=1e-6)
    assert torch.allclose(zs.std(1), torch.ones(7), atol=1e-5)


def test_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, 6, generator=g, dtype=torch.double, requires_grad=True)
    t = torch.randn(5, 6, generator=g, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda x: zscore_kd_loss(x, t, 2.0), (s,))


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(0.2, 20.0), shift=st.floats(-50.0, 50.0))
def test_blind_to_each_rows_mean_and_spread_where_kd_is_not(seed, scale, shift):
    """A student whose logits are the teacher's, scaled and shifted, is taught nothing more:
    the relations between the logits are all the loss sees. KD still asks for the size."""
    g = torch.Generator().manual_seed(seed)
    t = 4 * torch.randn(4, 10, generator=g)
    s = torch.randn(4, 10, generator=g)
    base = zscore_kd_loss(s, t, 2.0)
    assert float(zscore_kd_loss(scale * s + shift, t, 2.0)) == pytest.approx(
        float(base), rel=1e-4, abs=1e-6
    )
    assert float(zscore_kd_loss(s, scale * t + shift, 2.0)) == pytest.approx(
        float(base), rel=1e-4, abs=1e-6
    )
    assert float(zscore_kd_loss(scale * t + shift, t, 2.0)) < 1e-6  # the teacher's, resized
    if abs(scale - 1) > 0.1:
        assert float(kd_loss(scale * t + shift, t, 2.0)) > 1e-4


def test_zero_for_equal_logits_and_positive_otherwise():
    z = 2 * torch.randn(8, 10, generator=torch.Generator().manual_seed(5))
    assert abs(float(zscore_kd_loss(z, z, 2.0))) < 1e-6
    assert float(zscore_kd_loss(z, z.flip(1), 2.0)) > 0


# ----------------------------------------------------------------------------- as a method


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_registered_with_the_official_settings_and_its_parts_equal_the_pure_function(small):
    m = METHODS["zscore"]
    assert m.family == "response" and "arXiv:2403.01427" in m.citation
    default = m.make_params({})
    assert (default.tau, default.kd_weight, default.ce_weight) == (2.0, 9.0, 0.1)
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    params = {"tau": 4.0, "kd_weight": 3.0, "ce_weight": 0.5}
    parts = parts_on_logits("zscore", params, small, s, t, y)
    assert torch.allclose(parts["kd"], 3.0 * zscore_kd_loss(s, t, 4.0))
    assert torch.allclose(parts["ce"], 0.5 * torch.nn.functional.cross_entropy(s, y))


def test_trains_one_epoch_with_finite_parts(small):
    assert {"ce", "kd"} <= set(one_epoch_losses("zscore", small))
