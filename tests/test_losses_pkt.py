"""Probabilistic knowledge transfer (Passalis & Tefas 2018): the loss against a reference written
from the paper's equations, against the authors' code's form with self-pairs, finite
differences, and the properties the method claims (any feature sizes, blind to each example's
length and to rotations, but not to a shift)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.pkt import cosine_kernel, neighbour_probabilities, pkt_loss
from tests.test_losses_relation import random_orthogonal, t64

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)
EPS = 1e-7


def ref_probabilities(f: np.ndarray, self_pairs: bool) -> np.ndarray:
    """Eq. 5 and 10 entry by entry: p[i, j] = K(x_j, x_i) / sum over k (k != i) of K(x_k, x_i)."""
    x = f.reshape(len(f), -1)
    b = len(x)

    def kernel(a, c):
        return 0.5 * (float(a @ c) / (math.sqrt(a @ a) * math.sqrt(c @ c)) + 1.0)

    p = np.zeros((b, b))
    for i in range(b):
        others = [k for k in range(b) if self_pairs or k != i]
        total = sum(kernel(x[k], x[i]) for k in others)
        for j in others:
            p[i, j] = kernel(x[j], x[i]) / total
    return p


def ref_pkt(fs: np.ndarray, ft: np.ndarray, self_pairs: bool = False) -> float:
    """Eq. 9, averaged over the B² pairs."""
    p, q = ref_probabilities(ft, self_pairs), ref_probabilities(fs, self_pairs)
    b = len(p)
    pairs = [(i, j) for i in range(b) for j in range(b) if self_pairs or i != j]
    return sum(p[i, j] * math.log((p[i, j] + EPS) / (q[i, j] + EPS)) for i, j in pairs) / b**2


def authors_code(fs: torch.Tensor, ft: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The authors' cosine_similarity_loss (probabilistic_kt, nn/pkt.py), as published: each row
    over its norm plus eps, the kernel's rows normalised with the diagonal in, the mean of the
    B² terms."""

    def probs(f):
        f = f / (f.norm(dim=1, keepdim=True) + eps)
        k = (f @ f.t() + 1.0) / 2.0
        return k / k.sum(dim=1, keepdim=True)

    p, q = probs(ft), probs(fs)
    return torch.mean(p * torch.log((p + eps) / (q + eps)))


def feats(seed: int, b: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(b, d))


@pytest.mark.parametrize("self_pairs", [False, True])
def test_pkt_matches_the_papers_equations(self_pairs):
    fs, ft = feats(0, 6, 3), feats(1, 6, 7)  # another width than the student's
    got = neighbour_probabilities(t64(fs), self_pairs).numpy()
    np.testing.assert_allclose(got, ref_probabilities(fs, self_pairs), rtol=1e-12, atol=1e-15)
    loss = pkt_loss(t64(fs), t64(ft), self_pairs).item()
    assert loss == pytest.approx(ref_pkt(fs, ft, self_pairs), rel=1e-12)


def test_rows_are_distributions_over_the_other_examples():
    p = neighbour_probabilities(t64(feats(3, 7, 4)))
    torch.testing.assert_close(p.sum(dim=1), torch.ones(7, dtype=torch.float64))
    assert p.diagonal().abs().max().item() == 0.0 and p.min().item() >= 0.0
    k = cosine_kernel(t64(feats(3, 7, 4)))
    torch.testing.assert_close(k, k.t())
    torch.testing.assert_close(k.diagonal(), torch.ones(7, dtype=torch.float64))


def test_self_pairs_are_the_authors_code():
    fs, ft = t64(feats(4, 8, 3)), t64(feats(5, 8, 6))
    got = pkt_loss(fs, ft, self_pairs=True).item()
    assert got == pytest.approx(authors_code(fs, ft).item(), rel=1e-6)
    # the paper's form differs: each example's own pair carries weight in the code's
    assert pkt_loss(fs, ft).item() != pytest.approx(got, rel=1e-3)


@pytest.mark.parametrize("self_pairs", [False, True])
def test_pkt_gradients_against_finite_differences(self_pairs):
    fs = t64(feats(6, 5, 3), grad=True)
    ft = t64(feats(7, 5, 4), grad=True)
    assert torch.autograd.gradcheck(lambda s, t: pkt_loss(s, t, self_pairs), (fs, ft))


def test_finite_for_a_zero_example_a_batch_of_one_and_opposite_vectors():
    fs = torch.tensor(feats(8, 4, 3), dtype=torch.float32)
    fs[2] = 0.0
    fs.requires_grad_()
    loss = pkt_loss(fs, torch.randn(4, 6))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(fs.grad).all()
    assert pkt_loss(torch.randn(1, 3), torch.randn(1, 5)).item() == 0.0
    # two opposite vectors: each one's only neighbour has a kernel of 0 (in exact arithmetic)
    pair = torch.tensor([[3.0, 0.0], [-2.0, 0.0]], dtype=torch.float64)
    assert neighbour_probabilities(pair).abs().max().item() == 0.0
    assert math.isfinite(pkt_loss(pair, torch.randn(2, 3, dtype=torch.float64)).item())


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(2, 7), ds=st.integers(2, 5),
       dt=st.integers(2, 5))  # fmt: skip
def test_pkt_is_a_divergence(seed, b, ds, dt):
    """Without the logarithm's guard it is a sum of KL divergences: never below zero, zero when
    the student's cosines are the teacher's."""
    fs, ft = feats(seed, b, ds), feats(seed + 1, b, dt)
    assert pkt_loss(t64(fs), t64(ft), eps=0.0).item() >= -1e-15
    assert pkt_loss(t64(ft), t64(ft), eps=0.0).item() == pytest.approx(0.0, abs=1e-15)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(2, 7), d=st.integers(2, 5))
def test_pkt_blind_to_lengths_rotations_and_batch_order(seed, b, d):
    rng = np.random.default_rng(seed)
    fs, ft = rng.normal(size=(b, d)), rng.normal(size=(b, d + 2))
    base = pkt_loss(t64(fs), t64(ft)).item()
    tol = dict(rel=1e-9, abs=1e-14)
    lengths = rng.uniform(0.01, 100.0, size=(b, 1))  # each example its own positive factor
    assert pkt_loss(t64(lengths * fs), t64(ft)).item() == pytest.approx(base, **tol)
    assert pkt_loss(t64(fs @ random_orthogonal(rng, d)), t64(ft)).item() == pytest.approx(
        base, **tol
    )
    pb = rng.permutation(b)  # reordering the batch reorders rows and columns of both
    assert pkt_loss(t64(fs[pb]), t64(ft[pb])).item() == pytest.approx(base, **tol)
    # a student that is the teacher's embedding turned and stretched per example has nothing left
    # to learn
    same = lengths * (ft @ random_orthogonal(rng, d + 2))
    assert pkt_loss(t64(same), t64(ft)).item() == pytest.approx(0.0, abs=1e-12)


def test_pkt_sees_a_shift_where_rkd_does_not():
    """Cosines are taken from the origin: the teacher's embedding moved by a common offset has
    other neighbour distributions (RKD's distances and angles would not change)."""
    ft = feats(9, 8, 5)
    assert pkt_loss(t64(ft + 2.0), t64(ft)).item() > 1e-3
