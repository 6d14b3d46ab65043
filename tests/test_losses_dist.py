"""DIST's relation losses against a plain loop, finite differences and properties (blind to the
scale and shift of one side's probabilities, where KL is not); the registered method's parts
against the pure function, and one epoch of training.

The reference follows Huang et al. 2022, §3, and the official ``dist_kd.py``: at temperature τ,
1 − the Pearson correlation of the two models' probabilities, row by row (inter-class) and column
by column (intra-class), each averaged and times τ².
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.dist import dist_parts, pearson_distance
from kdcore.methods import METHODS
from tests.logit_methods import one_epoch_losses, parts_on_logits
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def ref_pearson(u, v) -> float:
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    cov = sum((a - mu) * (b - mv) for a, b in zip(u, v, strict=True))
    su = math.sqrt(sum((a - mu) ** 2 for a in u))
    sv = math.sqrt(sum((b - mv) ** 2 for b in v))
    return cov / (su * sv)


def ref_dist(s, t, tau) -> tuple[float, float]:
    def softmax(row):
        e = [math.exp(x / tau) for x in row]
        return [x / sum(e) for x in e]

    ys, yt = [softmax(r) for r in s], [softmax(r) for r in t]
    inter = np.mean([1 - ref_pearson(a, b) for a, b in zip(ys, yt, strict=True)])
    cols = range(len(ys[0]))
    intra = np.mean([1 - ref_pearson([r[j] for r in ys], [r[j] for r in yt]) for j in cols])
    return tau * tau * inter, tau * tau * intra


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_dist_matches_the_reference(tau):
    g = torch.Generator().manual_seed(3)
    s, t = 3 * torch.randn(6, 5, generator=g), 3 * torch.randn(6, 5, generator=g)
    inter, intra = dist_parts(s, t, tau)
    want = ref_dist(s.double().tolist(), t.double().tolist(), tau)
    assert (float(inter), float(intra)) == pytest.approx(want, rel=1e-5)


def test_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, 4, generator=g, dtype=torch.double, requires_grad=True)
    t = torch.randn(5, 4, generator=g, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda x: sum(dist_parts(x, t, 2.0)), (s,))


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(0.05, 20.0), shift=st.floats(-1.0, 1.0))
def test_blind_to_one_sides_scale_and_shift_where_kl_is_not(seed, scale, shift):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(4, 10, generator=g), 1)
    q = torch.softmax(torch.randn(4, 10, generator=g), 1)
    base = pearson_distance(p, q)
    assert torch.allclose(pearson_distance(scale * p + shift, q), base, atol=1e-5)
    assert bool(((base >= -1e-6) & (base <= 2 + 1e-6)).all())
    # a student as sure as the teacher, or half as far from uniform: one Pearson distance (0),
    # two KLs
    flat = 0.5 * p + 0.5 / 10
    assert float(pearson_distance(flat, p).abs().max()) < 1e-5
    assert float(torch.nn.functional.kl_div(flat.log(), p, reduction="batchmean")) > 1e-3


def test_zero_for_equal_logits_and_positive_otherwise():
    g = torch.Generator().manual_seed(5)
    z = 2 * torch.randn(8, 10, generator=g)
    # not exactly 0: the official 1e-8 beside the norms' product, which at τ = 4 is about 1e-3
    assert all(0 <= float(v) < 1e-4 for v in dist_parts(z, z, 4.0))
    assert all(float(v) > 0 for v in dist_parts(z, z.flip(1), 4.0))


# ----------------------------------------------------------------------------- as a method


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_registered_and_its_parts_equal_the_pure_function(small):
    m = METHODS["dist"]
    assert m.family == "response" and "arXiv:2205.10536" in m.citation
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    parts = parts_on_logits("dist", {"beta": 2.0, "gamma": 0.5, "tau": 4.0}, small, s, t, y)
    inter, intra = dist_parts(s, t, 4.0)
    assert torch.allclose(parts["inter"], 2.0 * inter)
    assert torch.allclose(parts["intra"], 0.5 * intra)
    assert torch.allclose(parts["ce"], torch.nn.functional.cross_entropy(s, y))


def test_trains_one_epoch_with_finite_parts(small):
    assert {"ce", "inter", "intra"} <= set(one_epoch_losses("dist", small))
