"""Correlation congruence (Peng et al. 2019): the kernel and the loss against references written
entry by entry, the series against the exact Gaussian RBF it approximates, the benchmark code's
form against RepDistiller's, finite differences, and the properties the method claims (any
feature sizes, blind to each example's length and to rotations)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.cc import (
    benchmark_cc_loss,
    cc_loss,
    correlation_matrix,
    rbf_kernel,
)
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.test_losses_relation import random_orthogonal, t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def feats(seed: int, b: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(b, d))


def ref_psi(f: np.ndarray, gamma: float, order: int) -> np.ndarray:
    """The series entry by entry, from the raw vectors: the cosine of each pair, then
    Σ_p e^{−2γ} (2γ)^p / p! · cos^p."""
    b = len(f)
    out = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            c = float(f[i] @ f[j]) / math.sqrt(float(f[i] @ f[i]) * float(f[j] @ f[j]))
            out[i, j] = sum(
                math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * c**p
                for p in range(order + 1)
            )
    return out


def ref_cc(fs: np.ndarray, ft: np.ndarray, gamma: float, order: int) -> float:
    d = ref_psi(ft, gamma, order) - ref_psi(fs, gamma, order)
    return float((d**2).sum()) / len(fs) ** 2


def repdistiller_correlation(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """RepDistiller's distiller_zoo/CC.py ``Correlation.forward``, as published."""
    delta = torch.abs(f_s - f_t)
    return torch.mean((delta[:-1] * delta[1:]).sum(1))


@pytest.mark.parametrize(("gamma", "order"), [(0.4, 2), (1.0, 0), (0.1, 5)])
def test_cc_matches_the_series_entry_by_entry(gamma, order):
    fs, ft = feats(1, 6, 3), feats(2, 6, 7)
    got = cc_loss(t64(fs), t64(ft), gamma, order).item()
    assert got == pytest.approx(ref_cc(fs, ft, gamma, order), rel=1e-12)
    np.testing.assert_allclose(correlation_matrix(t64(ft), gamma, order).numpy(),
                               ref_psi(ft, gamma, order), rtol=1e-12)  # fmt: skip


def test_the_series_tends_to_the_gaussian_rbf_it_approximates():
    """On unit vectors exp(−γ‖a − b‖²) = e^{−2γ} e^{2γ a·b}: the error of the P-order series is
    the tail of the exponential's, so it falls with P, within the bound of the tail at cosine 1."""
    f = t64(feats(3, 8, 5))
    exact = rbf_kernel(f, 0.4)
    np.testing.assert_allclose(torch.diagonal(exact).numpy(), 1.0, rtol=1e-12)
    errors = [(correlation_matrix(f, 0.4, p) - exact).abs().max().item() for p in range(8)]
    assert all(a > b for a, b in itertools.pairwise(errors))
    # |tail| ≤ e^{−2γ} Σ_{p > P} (2γ)^p / p! since |cos| ≤ 1
    for p, err in enumerate(errors):
        tail = math.exp(-0.8) * sum(0.8**k / math.factorial(k) for k in range(p + 1, 40))
        assert err <= tail + 1e-12
    # P = 0 is the constant e^{−2γ}: no pair is told from another
    np.testing.assert_allclose(correlation_matrix(f, 0.4, 0).numpy(), math.exp(-0.8))


def test_benchmark_form_is_repdistillers_correlation():
    es, et = torch.randn(9, 16), torch.randn(9, 16)
    assert benchmark_cc_loss(es, et).item() == pytest.approx(
        repdistiller_correlation(es, et).item(), rel=1e-6
    )
    # each example meets only its neighbour: one pair that agrees zeroes two terms
    et[4] = es[4]
    terms = (es - et).abs()
    expect = sum(float(terms[i] @ terms[i + 1]) for i in range(8) if 4 not in (i, i + 1)) / 8
    assert benchmark_cc_loss(es, et).item() == pytest.approx(expect, rel=1e-6)
    assert benchmark_cc_loss(es[:1], et[:1]).item() == 0.0


@pytest.mark.parametrize("order", [0, 2, 4])
def test_cc_gradients_against_finite_differences(order):
    fs = t64(feats(6, 5, 3), grad=True)
    ft = t64(feats(7, 5, 4), grad=True)
    assert torch.autograd.gradcheck(lambda s, t: cc_loss(s, t, 0.4, order), (fs, ft))


def test_finite_for_a_zero_example():
    fs = torch.tensor(feats(8, 4, 3), dtype=torch.float32)
    fs[2] = 0.0
    fs.requires_grad_()
    loss = cc_loss(fs, torch.randn(4, 6))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(fs.grad).all()


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(2, 7), ds=st.integers(2, 5),
       dt=st.integers(2, 5), order=st.integers(0, 4))  # fmt: skip
def test_cc_is_a_squared_distance(seed, b, ds, dt, order):
    """Never below zero, zero when the student's cosines are the teacher's, symmetric."""
    fs, ft = feats(seed, b, ds), feats(seed + 1, b, dt)
    loss = cc_loss(t64(fs), t64(ft), 0.4, order).item()
    assert loss >= 0.0
    assert cc_loss(t64(ft), t64(fs), 0.4, order).item() == pytest.approx(loss, rel=1e-12, abs=0)
    assert cc_loss(t64(ft), t64(ft), 0.4, order).item() == 0.0


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(2, 7), d=st.integers(2, 5))
def test_cc_blind_to_lengths_rotations_and_batch_order(seed, b, d):
    rng = np.random.default_rng(seed)
    fs, ft = rng.normal(size=(b, d)), rng.normal(size=(b, d + 2))
    base = cc_loss(t64(fs), t64(ft)).item()
    tol = dict(rel=1e-9, abs=1e-14)
    lengths = rng.uniform(0.01, 100.0, size=(b, 1))  # each example its own positive factor
    assert cc_loss(t64(lengths * fs), t64(ft)).item() == pytest.approx(base, **tol)
    rotated = t64(fs @ random_orthogonal(rng, d))
    assert cc_loss(rotated, t64(ft)).item() == pytest.approx(base, **tol)
    pb = rng.permutation(b)  # reordering the batch reorders rows and columns of both
    assert cc_loss(t64(fs[pb]), t64(ft[pb])).item() == pytest.approx(base, **tol)
    same = lengths * (ft @ random_orthogonal(rng, d + 2))
    assert cc_loss(t64(same), t64(ft)).item() == pytest.approx(0.0, abs=1e-12)


def test_benchmark_form_is_not_blind_to_batch_order():
    """The code's neighbours are the batch's order: shuffling the batch changes the loss."""
    es, et = torch.randn(12, 8), torch.randn(12, 8)
    pb = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert benchmark_cc_loss(es[pb], et[pb]).item() != pytest.approx(
        benchmark_cc_loss(es, et).item(), rel=1e-3
    )


@pytest.fixture(scope="module")
def small():
    return few_per_class(20)


def test_the_distiller_adds_beta_times_the_chosen_form(small):
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    x, y = small.x_train[:16], small.y_train[:16]
    out = student.forward_features(x)
    fs = out.features["embedding"]
    paper = build_distiller("cc", {"weight": 7.0}, student, teacher, small)
    assert not list(paper.parameters())  # the paper's form trains nothing of its own
    with torch.no_grad():
        targets = paper.teacher_targets(teacher.eval().forward_features(x))
    parts = paper(out, targets, Batch(x, y, torch.arange(16)))
    assert set(parts) == {"ce", "cc"}
    expect = 7.0 * cc_loss(fs, targets["feat"]).item()
    assert parts["cc"].item() == pytest.approx(expect, rel=1e-6)
    params = {"form": "benchmark code", "weight": 0.02, "feat_dim": 16}
    code = build_distiller("cc", params, student, teacher, small)
    assert sum(p.numel() for p in code.parameters()) == 30 * 16 + 16 + 100 * 16 + 16
    parts = code(out, targets, Batch(x, y, torch.arange(16)))
    expect = 0.02 * benchmark_cc_loss(code.embed_s(fs), code.embed_t(targets["feat"])).item()
    assert parts["cc"].item() == pytest.approx(expect, rel=1e-6)


@pytest.mark.parametrize("form", ["paper", "benchmark code"])
def test_both_forms_train_a_real_student(small, form):
    """Two epochs on real MNIST images: the run completes, records its CC part each epoch, and
    the benchmark code's heads (the teacher's too) move."""
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    cfg = TrainConfig(epochs=2, batch_size=50, lr=0.05, seed=0)
    weight = {"paper": 50.0, "benchmark code": 0.02}[form]
    d = build_distiller("cc", {"form": form, "weight": weight}, student, teacher, small)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    result = distill(student, teacher, small, cfg, "cc", distiller=d)
    assert result.ok, result.message
    assert all(h.losses["cc"] > 0 for h in result.history)
    moved = [k for k, v in d.state_dict().items() if not torch.equal(v, before[k])]
    assert moved == ([] if form == "paper" else list(before))
