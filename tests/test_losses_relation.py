"""The relation-based and decoupled losses against plain float64 formulas, finite differences and
properties: RKD (Park et al. 2019), SP (Tung & Mori 2019), NST (Huang & Wang 2017), DKD (Zhao et al.
2022) and CRD (Tian et al. 2020).

References are written from the equations with numpy loops, so a mistake in kdcore cannot be
repeated in its own reference.
"""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kdcore.losses.crd import CRDMemory, Embed, crd_infonce_loss
from kdcore.losses.dkd import (
    dkd_loss,
    dkd_parts,
    kd_per_example,
    teacher_target_prob,
)
from kdcore.losses.kd import kd_loss, softmax_t
from kdcore.losses.nst import channel_maps, nst_loss
from kdcore.losses.rkd import (
    normalised_distances,
    pairwise_distances,
    rkd_angle_loss,
    rkd_distance_loss,
    triplet_angles,
)
from kdcore.losses.similarity import similarity_loss, similarity_matrix

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))  # Haar-distributed, determinant +-1


def all_finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in tensors)


# ============================================================ RKD (Park et al. 2019)


def ref_pdist(x: np.ndarray) -> np.ndarray:
    b = len(x)
    d = np.zeros((b, b))
    for i, j in itertools.product(range(b), repeat=2):
        d[i, j] = math.sqrt(((x[i] - x[j]) ** 2).sum())
    return d


def ref_normalised(x: np.ndarray) -> np.ndarray:
    d = ref_pdist(x)
    b = len(x)
    mu = sum(d[i, j] for i in range(b) for j in range(b) if i != j) / (b * (b - 1))  # Eq. 4
    return d / mu


def ref_angles(x: np.ndarray) -> np.ndarray:
    """A[i, j, k] = cos of the angle at vertex x_i between x_j and x_k (0 if degenerate)."""
    b = len(x)

    def unit(v):
        n = math.sqrt((v**2).sum())
        return v / n if n > 0 else np.zeros_like(v)

    a = np.zeros((b, b, b))
    for i, j, k in itertools.product(range(b), repeat=3):
        a[i, j, k] = unit(x[j] - x[i]) @ unit(x[k] - x[i])
    return a


def ref_huber(a: np.ndarray, b: np.ndarray) -> float:
    """Eq. 6 with delta = 1, averaged over all entries."""
    r = np.abs(a - b)
    return float(np.where(r < 1, 0.5 * r**2, r - 0.5).mean())


def random_emb(seed: int, b: int = 6, d: int = 4, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, (b, d))


def test_rkd_potentials_match_reference():
    x = random_emb(0, b=5, d=3)
    np.testing.assert_allclose(pairwise_distances(t64(x)).numpy(), ref_pdist(x), rtol=1e-13)
    np.testing.assert_allclose(normalised_distances(t64(x)).numpy(), ref_normalised(x), rtol=1e-13)
    np.testing.assert_allclose(triplet_angles(t64(x)).numpy(), ref_angles(x), atol=1e-14)
    # The off-diagonal mean of psi_D is 1 (Eq. 4), and cosines lie in [-1, 1].
    nd = normalised_distances(t64(x)).numpy()
    assert nd.sum() / (5 * 4) == pytest.approx(1.0, rel=1e-13)
    assert np.abs(triplet_angles(t64(x)).numpy()).max() <= 1 + 1e-12


def test_rkd_flattens_trailing_dimensions():
    x = random_emb(1, b=4, d=12)
    torch.testing.assert_close(pairwise_distances(t64(x).reshape(4, 3, 2, 2)), t64(ref_pdist(x)))


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_rkd_losses_match_reference(scale):
    # scale = 10 for the student puts many normalised gaps into the linear part of the Huber loss.
    s, t = random_emb(2, d=3, scale=scale), random_emb(3, d=5)
    s[:, 0] *= 1.0 + 3 * (scale > 1)  # anisotropic, so the normalised distances differ a lot
    got_d = rkd_distance_loss(t64(s), t64(t)).item()
    got_a = rkd_angle_loss(t64(s), t64(t)).item()
    assert got_d == pytest.approx(ref_huber(ref_normalised(s), ref_normalised(t)), rel=1e-12)
    assert got_a == pytest.approx(ref_huber(ref_angles(s), ref_angles(t)), rel=1e-12)


def test_rkd_gradients_against_finite_differences():
    s, t = t64(random_emb(4, b=4, d=3), grad=True), t64(random_emb(5, b=4, d=2), grad=True)
    assert torch.autograd.gradcheck(rkd_distance_loss, (s, t))
    assert torch.autograd.gradcheck(rkd_angle_loss, (s, t))
    assert torch.autograd.gradcheck(lambda x: triplet_angles(x).sin().sum(), (s,))


@pytest.mark.parametrize("b", [5, 130])  # 130: several vertex blocks, the last one partial
def test_rkd_angle_fused_backward_matches_autograd_on_the_explicit_angles(b):
    """The hand-written backward of rkd_angle_loss against autograd through triplet_angles (the
    reference code's form), with points far from the origin. (At duplicated examples the two
    differ on purpose: the norm has no derivative there, and where triplet_angles divides the
    zero difference by 1, the fused loss gives it no gradient; both stay finite, see below.)"""
    s = random_emb(8, b=b, d=6) + 50.0  # far from the origin: the centring must absorb it
    s, t = t64(s, grad=True), t64(random_emb(9, b=b, d=4) * 3, grad=True)
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    fused = rkd_angle_loss(s, t)
    explicit = F.smooth_l1_loss(triplet_angles(s2), triplet_angles(t2))
    assert fused.item() == pytest.approx(explicit.item(), rel=1e-10)
    fused.backward()
    explicit.backward()
    torch.testing.assert_close(s.grad, s2.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(t.grad, t2.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rkd_finite_at_zero_distance(dtype):
    """Duplicated examples and a batch collapsed to one point: the norm has no derivative at 0."""
    t = torch.tensor(random_emb(6, b=4, d=3), dtype=dtype)
    duplicated = torch.tensor(random_emb(7, b=4, d=3), dtype=dtype)
    duplicated[1] = duplicated[0]
    collapsed = torch.ones(4, 3, dtype=dtype)
    for s in (duplicated, collapsed):
        s = s.clone().requires_grad_()
        loss = rkd_distance_loss(s, t) + rkd_angle_loss(s, t)
        loss.backward()
        assert all_finite(loss, s.grad)
    assert normalised_distances(collapsed).abs().max().item() == 0.0
    with pytest.raises(ValueError):
        rkd_distance_loss(torch.ones(1, 3), torch.ones(1, 3))


@SETTINGS
@given(
    seed=seeds,
    b=st.integers(3, 7),
    ds=st.integers(2, 6),
    dt=st.integers(2, 6),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-10.0, 10.0),
    student_only=st.booleans(),
)
def test_rkd_unchanged_by_rotation_translation_and_scaling(
    seed, b, ds, dt, scale, shift, student_only
):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(b, ds)), rng.normal(size=(b, dt))

    def similarity_transform(x):
        d = x.shape[1]
        return scale * x @ random_orthogonal(rng, d) + shift * rng.normal(size=d)

    s2 = similarity_transform(s)
    t2 = t if student_only else similarity_transform(t)
    for loss in (rkd_distance_loss, rkd_angle_loss):
        base = loss(t64(s), t64(t)).item()
        assert loss(t64(s2), t64(t2)).item() == pytest.approx(base, rel=1e-8, abs=1e-12)


@SETTINGS
@given(seed=seeds, b=st.integers(2, 7), d=st.integers(1, 6), scale=st.floats(0.01, 100.0))
def test_rkd_zero_for_a_similar_copy(seed, b, d, scale):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(b, d))
    s = scale * t @ random_orthogonal(rng, d) + rng.normal(size=d)
    assert rkd_distance_loss(t64(s), t64(t)).item() == pytest.approx(0.0, abs=1e-20)
    assert rkd_angle_loss(t64(s), t64(t)).item() == pytest.approx(0.0, abs=1e-20)


# ============================================================ SP (Tung & Mori 2019)


def ref_similarity(f: np.ndarray) -> np.ndarray:
    q = f.reshape(len(f), -1)
    b = len(q)
    g = np.array([[float(q[i] @ q[j]) for j in range(b)] for i in range(b)])  # G~ = Q Q^T
    return g / np.sqrt((g**2).sum(axis=1, keepdims=True))  # each row to unit L2 norm


def ref_sp(fs: np.ndarray, ft: np.ndarray) -> float:
    b = len(fs)
    return float(((ref_similarity(ft) - ref_similarity(fs)) ** 2).sum() / b**2)


def random_feat(seed: int, shape: tuple[int, ...], relu: bool = False) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=shape)
    return np.maximum(x, 0.0) if relu else x


def test_similarity_matches_reference():
    fs, ft = random_feat(10, (5, 3, 4, 4), relu=True), random_feat(11, (5, 7, 2, 2), relu=True)
    np.testing.assert_allclose(similarity_matrix(t64(fs)).numpy(), ref_similarity(fs), rtol=1e-13)
    assert similarity_loss(t64(fs), t64(ft)).item() == pytest.approx(ref_sp(fs, ft), rel=1e-12)
    # Rows (not columns) are unit vectors; G is not symmetric in general.
    g = similarity_matrix(t64(fs))
    torch.testing.assert_close(g.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert not torch.allclose(g, g.t())


def test_similarity_gradients_against_finite_differences():
    fs = t64(random_feat(12, (4, 3, 2, 2)), grad=True)
    ft = t64(random_feat(13, (4, 5)), grad=True)
    assert torch.autograd.gradcheck(similarity_loss, (fs, ft))


def test_similarity_finite_for_an_all_zero_example():
    fs = torch.tensor(random_feat(14, (4, 3, 2, 2), relu=True), dtype=torch.float32)
    fs[2] = 0.0
    fs.requires_grad_()
    loss = similarity_loss(fs, torch.randn(4, 6))
    loss.backward()
    assert all_finite(loss, fs.grad)
    assert similarity_matrix(fs.detach())[2].abs().max().item() == 0.0


@SETTINGS
@given(
    seed=seeds,
    b=st.integers(2, 6),
    cs=st.integers(1, 5),
    ct=st.integers(1, 5),
    scale=st.floats(0.01, 100.0),
)
def test_similarity_unchanged_by_channel_permutations_and_scale(seed, b, cs, ct, scale):
    rng = np.random.default_rng(seed)
    fs, ft = rng.normal(size=(b, cs, 3, 2)), rng.normal(size=(b, ct, 2, 2))
    base = similarity_loss(t64(fs), t64(ft)).item()
    tol = dict(rel=1e-9, abs=1e-14)
    ps, pt = rng.permutation(cs), rng.permutation(ct)
    # Q Q^T sums over the features, so their order does not matter: the student's alone, or both.
    assert similarity_loss(t64(fs[:, ps]), t64(ft)).item() == pytest.approx(base, **tol)
    assert similarity_loss(t64(fs[:, ps]), t64(ft[:, pt])).item() == pytest.approx(base, **tol)
    # Row normalisation removes a global scale of either network's features.
    assert similarity_loss(t64(scale * fs), t64(ft)).item() == pytest.approx(base, **tol)
    # Reordering the batch permutes rows and columns of both G: the Frobenius norm is unchanged.
    pb = rng.permutation(b)
    assert similarity_loss(t64(fs[pb]), t64(ft[pb])).item() == pytest.approx(base, **tol)


# ============================================================ NST (Huang & Wang 2017)


def ref_pool(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Average pooling by whole blocks (the sizes used below divide exactly)."""
    b, c, hh, ww = x.shape
    return x.reshape(b, c, h, hh // h, w, ww // w).mean(axis=(3, 5))


def ref_maps(x: np.ndarray) -> np.ndarray:
    f = x.reshape(x.shape[0], x.shape[1], -1)
    n = np.sqrt((f**2).sum(axis=2, keepdims=True))
    return np.divide(f, n, out=np.zeros_like(f), where=n > 0)


def ref_nst(fs: np.ndarray, ft: np.ndarray) -> float:
    h, w = min(fs.shape[2], ft.shape[2]), min(fs.shape[3], ft.shape[3])
    s, t = ref_maps(ref_pool(fs, h, w)), ref_maps(ref_pool(ft, h, w))

    def k(x, y):  # polynomial kernel, d = 2, c = 0
        return float(x @ y) ** 2

    total = 0.0
    for n in range(len(s)):
        cs, ct = len(s[n]), len(t[n])
        tt = sum(k(t[n][i], t[n][j]) for i in range(ct) for j in range(ct)) / ct**2
        ss = sum(k(s[n][i], s[n][j]) for i in range(cs) for j in range(cs)) / cs**2
        st_ = sum(k(s[n][i], t[n][j]) for i in range(cs) for j in range(ct)) / (cs * ct)
        total += tt + ss - 2 * st_
    return total / len(s)


@pytest.mark.parametrize(
    "shape_s, shape_t",
    [((3, 4, 4, 4), (3, 6, 4, 4)), ((2, 3, 8, 8), (2, 5, 4, 4)), ((2, 5, 2, 6), (2, 3, 4, 3))],
)
def test_nst_matches_reference(shape_s, shape_t):
    fs, ft = random_feat(20, shape_s, relu=True), random_feat(21, shape_t, relu=True)
    assert nst_loss(t64(fs), t64(ft)).item() == pytest.approx(ref_nst(fs, ft), rel=1e-12)


def test_nst_is_a_distance_between_spatial_gram_matrices():
    """With k(x, y) = (x^T y)^2 the MMD is ||F_T^T F_T / C_T - F_S^T F_S / C_S||_F^2 per example."""
    fs, ft = random_feat(22, (3, 4, 3, 3)), random_feat(23, (3, 7, 3, 3))
    s, t = channel_maps(t64(fs)), channel_maps(t64(ft))  # (B, C, HW)
    gram = t.transpose(1, 2) @ t / 7 - s.transpose(1, 2) @ s / 4  # (B, HW, HW)
    want = gram.pow(2).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(nst_loss(t64(fs), t64(ft)), want)


def test_nst_gradients_against_finite_differences():
    fs = t64(random_feat(24, (2, 3, 4, 4)), grad=True)
    ft = t64(random_feat(25, (2, 4, 2, 2)), grad=True)
    assert torch.autograd.gradcheck(nst_loss, (fs, ft))


def test_nst_finite_with_a_dead_channel():
    fs = torch.tensor(random_feat(26, (2, 3, 4, 4), relu=True), dtype=torch.float32)
    fs[:, 1] = 0.0  # a ReLU channel that never fires
    fs.requires_grad_()
    loss = nst_loss(fs, torch.rand(2, 5, 4, 4))
    loss.backward()
    assert all_finite(loss, fs.grad)


@SETTINGS
@given(
    seed=seeds,
    b=st.integers(1, 4),
    cs=st.integers(1, 5),
    ct=st.integers(1, 5),
    hw=st.sampled_from([(2, 2), (3, 2), (4, 4)]),
)
def test_nst_unchanged_by_channel_and_consistent_spatial_permutations(seed, b, cs, ct, hw):
    rng = np.random.default_rng(seed)
    fs, ft = rng.normal(size=(b, cs, *hw)), rng.normal(size=(b, ct, *hw))
    base = nst_loss(t64(fs), t64(ft)).item()
    tol = dict(rel=1e-9, abs=1e-13)
    assert base >= -1e-13
    ps, pt = rng.permutation(cs), rng.permutation(ct)
    # Channels are samples of two sets, not pairs: any reordering of either side is the same MMD.
    assert nst_loss(t64(fs[:, ps]), t64(ft)).item() == pytest.approx(base, **tol)
    assert nst_loss(t64(fs), t64(ft[:, pt])).item() == pytest.approx(base, **tol)
    assert nst_loss(t64(fs[:, ps]), t64(ft[:, pt])).item() == pytest.approx(base, **tol)
    # The same reordering of the positions in both keeps every inner product.
    pix = rng.permutation(hw[0] * hw[1])

    def shuffle(x):
        return x.reshape(*x.shape[:2], -1)[..., pix].reshape(x.shape)

    assert nst_loss(t64(shuffle(fs)), t64(shuffle(ft))).item() == pytest.approx(base, **tol)
    # Each map is normalised: a positive scale per channel changes nothing; equal sets give 0.
    scales = rng.uniform(0.1, 10.0, size=(1, cs, 1, 1))
    assert nst_loss(t64(fs * scales), t64(ft)).item() == pytest.approx(base, **tol)
    assert nst_loss(t64(fs * scales), t64(fs[:, ps])).item() == pytest.approx(0.0, abs=1e-13)


# ============================================================ DKD (Zhao et al. 2022)


def ref_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def ref_logsumexp(z: np.ndarray) -> float:
    m = z.max()
    return float(m + np.log(np.exp(z - m).sum()))


def ref_dkd_parts(s: np.ndarray, t: np.ndarray, y: np.ndarray, T: float):
    """Per example: the binary KL (TCKD) and the KL of the renormalised non-target distributions
    (NCKD), each times T^2 (Eq. 2-7; the T^2 as in mdistiller). The binary probabilities are taken
    in log space, log p_t = z_t/T - lse(z/T) and log(1 - p_t) = lse(z_other/T) - lse(z/T), so that
    the reference holds where 1 - p_t rounds to 0."""
    tckd, nckd = [], []
    for zs, zt, c in zip(s, t, y, strict=True):
        others = [i for i in range(len(zs)) if i != c]

        def log_binary(z, c=c, others=others):
            lse = ref_logsumexp(z / T)
            return np.array([z[c] / T - lse, ref_logsumexp(z[others] / T) - lse])

        lbp, lbq = log_binary(zt), log_binary(zs)
        tckd.append(T * T * float((np.exp(lbp) * (lbp - lbq)).sum()))
        ph, qh = ref_softmax(zt[others] / T), ref_softmax(zs[others] / T)  # p_i / (1 - p_t)
        nckd.append(T * T * float((ph * np.log(ph / qh)).sum()))
    return np.array(tckd), np.array(nckd)


def random_logits(seed: int, b: int = 6, k: int = 10, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, (b, k))


LABELS = torch.tensor([0, 3, 9, 1, 1, 5])


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_dkd_parts_match_reference(T):
    s, t = random_logits(30), random_logits(31)
    tckd, nckd = dkd_parts(t64(s), t64(t), LABELS, T, reduction="none")
    want_t, want_n = ref_dkd_parts(s, t, LABELS.numpy(), T)
    np.testing.assert_allclose(tckd.numpy(), want_t, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(nckd.numpy(), want_n, rtol=1e-9, atol=1e-13)
    mean_t, mean_n = dkd_parts(t64(s), t64(t), LABELS, T)
    assert mean_t.item() == pytest.approx(want_t.mean(), rel=1e-9)
    assert mean_n.item() == pytest.approx(want_n.mean(), rel=1e-9)
    got = dkd_loss(t64(s), t64(t), LABELS, 1.0, 8.0, T).item()
    assert got == pytest.approx(want_t.mean() + 8.0 * want_n.mean(), rel=1e-9)


def mdistiller_style_dkd(s, t, y, T):
    """(TCKD, NCKD) as mdistiller computes them: binary probabilities by summing a softmax and
    their plain log; the non-target softmax with 1000 subtracted from the target logit / T."""
    gt = F.one_hot(y, s.shape[1]).to(s.dtype)
    ps, pt = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], dim=1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], dim=1)
    tckd = (bt * (bt.log() - bs.log())).sum() * T**2 / len(y)
    log_qs = F.log_softmax(s / T - 1000.0 * gt, dim=1)
    qt = F.softmax(t / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_qs, qt, reduction="sum") * T**2 / len(y)
    return tckd, nckd


def test_dkd_agrees_with_the_reference_code_where_its_mask_holds():
    s, t = t64(random_logits(32)), t64(random_logits(33))
    for T in (1.0, 4.0):
        tckd, nckd = dkd_parts(s, t, LABELS, T)
        want_t, want_n = mdistiller_style_dkd(s, t, LABELS, T)
        torch.testing.assert_close(tckd, want_t)
        torch.testing.assert_close(nckd, want_n)


def test_dkd_exact_where_the_reference_codes_mask_leaks():
    """Target logit / T 1000 above the rest: subtracting 1000 no longer removes the target class
    from mdistiller's non-target softmax, and its binary log gives -inf. Removing the column and
    working in log space stays exact (the numpy reference uses only the non-target logits)."""
    s = np.array([[0.0, 60.0, 1.0, 2.0]])  # / T = [0, 1200, 20, 40]
    t = random_logits(35, b=1, k=4)
    y, T = torch.tensor([1]), 0.05
    tckd, nckd = dkd_parts(t64(s), t64(t), y, T)
    want_t, want_n = ref_dkd_parts(s, t, y.numpy(), T)
    assert tckd.item() == pytest.approx(want_t.mean(), rel=1e-9)
    assert nckd.item() == pytest.approx(want_n.mean(), rel=1e-9)
    leaky_t, leaky_n = mdistiller_style_dkd(t64(s), t64(t), y, T)
    assert not math.isclose(leaky_n.item(), nckd.item(), rel_tol=0.1)
    assert not torch.isfinite(leaky_t)


def test_dkd_gradients_against_finite_differences():
    s, t = t64(random_logits(36, b=3, k=5), grad=True), t64(random_logits(37, b=3, k=5), grad=True)
    y = torch.tensor([0, 4, 2])
    for T in (0.5, 4.0):
        assert torch.autograd.gradcheck(lambda a, b, T=T: dkd_loss(a, b, y, 1.0, 8.0, T), (s, t))
        assert torch.autograd.gradcheck(lambda a, b, T=T: kd_per_example(a, b, T), (s, t))


def test_dkd_helpers_agree_with_kd():
    s, t = t64(random_logits(38)), t64(random_logits(39))
    for T in (1.0, 4.0):
        torch.testing.assert_close(kd_per_example(s, t, T).mean(), kd_loss(s, t, T))
        want = softmax_t(t, T)[torch.arange(6), LABELS]
        torch.testing.assert_close(teacher_target_prob(t, LABELS, T), want)


def test_dkd_two_classes_has_no_non_target_part():
    s, t = t64(random_logits(40, k=2)), t64(random_logits(41, k=2))
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    tckd, nckd = dkd_parts(s, t, y, 4.0, reduction="none")
    assert nckd.abs().max().item() == 0.0
    torch.testing.assert_close(tckd, kd_per_example(s, t, 4.0))
    with pytest.raises(ValueError):
        dkd_parts(s, t, y, 4.0, reduction="sum")


logit = st.floats(-20.0, 20.0, allow_nan=False, width=64)
temps = st.floats(0.1, 100.0)


@st.composite
def labelled_logit_pairs(draw):
    b, k = draw(st.integers(1, 5)), draw(st.integers(2, 10))
    s = draw(arrays(np.float64, (b, k), elements=logit))
    t = draw(arrays(np.float64, (b, k), elements=logit))
    y = draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b))
    return s, t, torch.tensor(y)


@SETTINGS
@given(data=labelled_logit_pairs(), T=temps)
def test_kd_is_tckd_plus_weighted_nckd_per_example(data, T):
    """Zhao et al. 2022, Eq. 7: KD = TCKD + (1 - p_t^T) NCKD, for every example."""
    s, t, y = data
    tckd, nckd = dkd_parts(t64(s), t64(t), y, T, reduction="none")
    assert tckd.min().item() >= -1e-12 * max(1.0, T * T)
    assert nckd.min().item() >= -1e-12 * max(1.0, T * T)
    pt = teacher_target_prob(t64(t), y, T)
    np.testing.assert_allclose(
        kd_per_example(t64(s), t64(t), T).numpy(),
        (tckd + (1 - pt) * nckd).numpy(),
        rtol=1e-9,
        atol=1e-10 * max(1.0, T * T),
    )


@SETTINGS
@given(data=labelled_logit_pairs(), T=temps)
def test_dkd_with_unit_weights_exceeds_kd_by_the_confident_part(data, T):
    """alpha = beta = 1 is not KD: it adds back p_t^T NCKD, the part KD suppresses."""
    s, t, y = data
    zs, zt = t64(s), t64(t)
    gap = dkd_loss(zs, zt, y, 1.0, 1.0, T) - kd_loss(zs, zt, T)
    _, nckd = dkd_parts(zs, zt, y, T, reduction="none")
    want = (teacher_target_prob(zt, y, T) * nckd).mean()
    tol = 1e-10 * max(1.0, T * T)
    assert gap.item() == pytest.approx(want.item(), rel=1e-8, abs=tol)
    assert gap.item() >= -tol


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    T=st.one_of(st.floats(0.05, 1000.0), st.sampled_from([0.05, 1000.0])),
)
def test_dkd_finite_at_extremes(data, T):
    b, k = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 8))
    elems = st.one_of(st.floats(-1e4, 1e4, width=32), st.sampled_from([-1e4, 1e4, 0.0]))
    s = torch.tensor(data.draw(arrays(np.float32, (b, k), elements=elems)), requires_grad=True)
    t = torch.tensor(data.draw(arrays(np.float32, (b, k), elements=elems)))
    y = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    loss = dkd_loss(s, t, y, 1.0, 8.0, T)
    loss.backward()
    assert all_finite(loss, s.grad)


# ============================================================ CRD (Tian et al. 2020)


def ref_crd(zs, zt, mem_s, mem_t, idx, neg, T) -> float:
    """Two (k+1)-way cross-entropies: the positive is the other bank's row of the same example."""
    total = 0.0
    for anchor, bank in ((zs, mem_t), (zt, mem_s)):
        side = 0.0
        for n in range(len(idx)):
            rows = [idx[n], *neg[n]]
            logits = np.array([float(bank[r] @ anchor[n]) / T for r in rows])
            m = logits.max()
            side += -logits[0] + m + math.log(np.exp(logits - m).sum())
        total += side / len(idx)
    return total


def unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def crd_inputs(seed: int, b: int = 4, n: int = 10, d: int = 5, k: int = 6):
    rng = np.random.default_rng(seed)
    zs, zt = unit_rows(rng.normal(size=(b, d))), unit_rows(rng.normal(size=(b, d)))
    mem_s, mem_t = unit_rows(rng.normal(size=(n, d))), unit_rows(rng.normal(size=(n, d)))
    idx = rng.choice(n, size=b, replace=False)
    neg = rng.integers(0, n, size=(b, k))
    return zs, zt, mem_s, mem_t, idx, neg


@pytest.mark.parametrize("T", [0.07, 0.5, 1.0])
def test_crd_matches_reference(T):
    zs, zt, mem_s, mem_t, idx, neg = crd_inputs(50)
    got = crd_infonce_loss(
        t64(zs), t64(zt), t64(mem_s), t64(mem_t), torch.tensor(idx), torch.tensor(neg), T
    ).item()
    assert got == pytest.approx(ref_crd(zs, zt, mem_s, mem_t, idx, neg, T), rel=1e-12)


def test_crd_gradients_against_finite_differences():
    zs, zt, mem_s, mem_t, idx, neg = crd_inputs(51, b=3, n=6, d=3, k=4)
    args = [t64(a, grad=True) for a in (zs, zt, mem_s, mem_t)]
    i, c = torch.tensor(idx), torch.tensor(neg)
    assert torch.autograd.gradcheck(
        lambda a, b, m, n: crd_infonce_loss(a, b, m, n, i, c, 0.5), args
    )


@SETTINGS
@given(seed=seeds)
def test_crd_unchanged_by_reordering_the_negatives(seed):
    zs, zt, mem_s, mem_t, idx, neg = crd_inputs(seed % 1000)
    perm = np.random.default_rng(seed).permutation(neg.shape[1])
    inputs = [t64(a) for a in (zs, zt, mem_s, mem_t)]
    base = crd_infonce_loss(*inputs, torch.tensor(idx), torch.tensor(neg), 0.1).item()
    other = crd_infonce_loss(*inputs, torch.tensor(idx), torch.tensor(neg[:, perm]), 0.1).item()
    assert other == pytest.approx(base, rel=1e-12)


def test_crd_embed_gives_unit_rows():
    head = Embed(12, 8)
    z = head(torch.randn(5, 3, 2, 2))
    assert z.shape == (5, 8)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))


def test_crd_memory_update_touches_only_the_given_rows():
    g = torch.Generator().manual_seed(0)
    mem = CRDMemory(12, 4, momentum=0.5, generator=g)
    bound = 1 / math.sqrt(4 / 3)
    assert mem.memory_student.abs().max().item() <= bound  # the reference code's uniform init
    before_s, before_t = mem.memory_student.clone(), mem.memory_teacher.clone()
    idx = torch.tensor([1, 7, 4])
    zs, zt = F.normalize(torch.randn(3, 4), dim=1), F.normalize(torch.randn(3, 4), dim=1)
    mem.update(idx, zs, zt)
    untouched = torch.ones(12, dtype=torch.bool)
    untouched[idx] = False
    for bank, before, new in (
        (mem.memory_student, before_s, zs),
        (mem.memory_teacher, before_t, zt),
    ):
        assert torch.equal(bank[untouched], before[untouched])
        assert (bank[idx] - before[idx]).abs().amax(dim=1).min().item() > 0
        torch.testing.assert_close(bank[idx], F.normalize(0.5 * before[idx] + 0.5 * new, dim=1))
        torch.testing.assert_close(bank[idx].norm(dim=1), torch.ones(3))


def test_crd_negatives_avoid_the_positive_and_its_class():
    g = torch.Generator().manual_seed(1)
    idx = torch.tensor([0, 3, 4])
    neg = CRDMemory(5, 2).sample_negatives(idx, 400, g)
    assert neg.shape == (3, 400) and neg.dtype == torch.long
    for row, i in zip(neg, idx, strict=True):
        assert set(row.tolist()) == set(range(5)) - {i.item()}  # every other row, never itself
    labels = torch.arange(30) % 3
    mem = CRDMemory(30, 2, labels=labels)
    idx = torch.tensor([0, 1, 2, 5, 29])
    neg = mem.sample_negatives(idx, 50, g)
    assert ((neg >= 0) & (neg < 30)).all()
    assert (labels[neg] != labels[idx].unsqueeze(1)).all()
    with pytest.raises(RuntimeError):
        CRDMemory(4, 2, labels=torch.zeros(4)).sample_negatives(torch.tensor([0]), 3, g)


def test_crd_loss_decreases_on_a_toy_problem():
    """Two embedding heads over fixed random 'features' of 64 examples learn to pick each example
    out of 32 negatives through the memory banks, updated after each step as in the authors' loop.
    (Over seeds 0-3 the last five losses average 0.25-0.35 of the first five.)"""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, b, k, d = 64, 16, 32, 16
    feat_s, feat_t = torch.randn(n, 12), torch.randn(n, 20)
    head_s, head_t = Embed(12, d), Embed(20, d)
    mem = CRDMemory(n, d, generator=g)
    opt = torch.optim.Adam([*head_s.parameters(), *head_t.parameters()], lr=1e-2)
    losses = []
    for _ in range(50):
        idx = torch.randperm(n, generator=g)[:b]
        neg = mem.sample_negatives(idx, k, g)
        zs, zt = head_s(feat_s[idx]), head_t(feat_t[idx])
        loss = mem(zs, zt, idx, neg, T=0.07)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mem.update(idx, zs, zt)
        losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.6 * first, (first, last)
