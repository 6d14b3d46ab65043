"""The feature-based losses against plain float64 formulas, finite differences and properties.

References are written directly from the definitions in numpy (Romero et al. 2015, Eq. 3;
Miles & Mikolajczyk 2024's LogSum; Zagoruyko & Komodakis 2017, the code's ``at``/``at_loss``), so a
mistake in kdcore cannot be repeated in its own reference.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kdcore.losses.attention import at_loss, attention_map
from kdcore.losses.fitnets import fitnet_loss
from kdcore.losses.logsum import LOGSUM_ALPHA, logsum_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


# ----------------------------------------------------------------------------- plain references


def ref_fitnet(s: np.ndarray, t: np.ndarray) -> float:
    return ((s.astype(np.float64) - t) ** 2).mean()


def ref_logsum(s: np.ndarray, t: np.ndarray, alpha: float, eps: float) -> float:
    return math.log((np.abs(s.astype(np.float64) - t) ** alpha).sum() + eps)


def ref_attention_map(f: np.ndarray) -> np.ndarray:
    """Sum over channels of F^2 (the paper's F_sum^2), flattened, divided by its L2 norm."""
    q = (f.astype(np.float64) ** 2).sum(axis=1).reshape(len(f), -1)
    norm = np.sqrt((q**2).sum(axis=1, keepdims=True))
    return q / np.maximum(norm, 1e-12)


def ref_block_pool(f: np.ndarray, h: int, w: int) -> np.ndarray:
    """Average pooling to (h, w) when the sizes divide exactly: the mean of each block."""
    b, c, hh, ww = f.shape
    return f.reshape(b, c, h, hh // h, w, ww // w).mean(axis=(3, 5))


def ref_at_loss(s: np.ndarray, t: np.ndarray) -> float:
    h, w = min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3])
    a_s = ref_attention_map(ref_block_pool(s, h, w))
    a_t = ref_attention_map(ref_block_pool(t, h, w))
    return ((a_s - a_t) ** 2).mean()


def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def randn(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, shape)


# ----------------------------------------------------------------------------- FitNets


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 7), (2, 9)])
def test_fitnet_matches_reference(shape):
    s, t = randn(0, *shape), randn(1, *shape)
    assert fitnet_loss(t64(s), t64(t)).item() == pytest.approx(ref_fitnet(s, t), rel=1e-12)


def test_fitnet_is_the_papers_half_squared_norm_rescaled():
    # Romero et al. 2015, Eq. 3: 1/2 ||u_h - r(v_g)||^2 per example. The mean over all elements
    # is that, averaged over the batch, times 2 / (elements per example).
    s, t = randn(2, 4, 3, 2, 2), randn(3, 4, 3, 2, 2)
    per_example = 0.5 * ((s - t) ** 2).reshape(4, -1).sum(axis=1)
    got = fitnet_loss(t64(s), t64(t)).item()
    assert got == pytest.approx(per_example.mean() * 2 / 12, rel=1e-12)


def test_fitnet_float32_close_to_reference():
    s, t = randn(4, 8, 16), randn(5, 8, 16)
    got = fitnet_loss(torch.tensor(s).float(), torch.tensor(t).float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_fitnet(s, t), rel=1e-5)


def test_fitnet_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 5\)"):
        fitnet_loss(torch.zeros(4, 3), torch.zeros(4, 5))


# ----------------------------------------------------------------------------- LogSum


@pytest.mark.parametrize("alpha", [1.0, 2.0, 2.5, 4.0, 5.0])
@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_logsum_matches_reference(alpha, eps):
    s, t = randn(6, 8, 10), randn(7, 8, 10)
    got = logsum_loss(t64(s), t64(t), alpha=alpha, eps=eps).item()
    assert got == pytest.approx(ref_logsum(s, t, alpha, eps), rel=1e-12)


def test_logsum_default_is_the_authors_alpha():
    # Simple-Recipe-Distillation: c_diff.pow(4.0), in the ImageNet and the DeiT code.
    assert LOGSUM_ALPHA == 4.0
    s, t = randn(8, 4, 6), randn(9, 4, 6)
    assert logsum_loss(t64(s), t64(t)).item() == pytest.approx(ref_logsum(s, t, 4.0, 1e-5))


def test_logsum_sums_over_the_batch():
    # The authors' code takes the log of the sum over batch and features: repeating the batch
    # adds log 2, where a mean over elements would leave the value unchanged.
    s, t = randn(10, 4, 6), randn(11, 4, 6)
    one = logsum_loss(t64(s), t64(t), eps=0.0).item()
    two = logsum_loss(t64(np.concatenate([s, s])), t64(np.concatenate([t, t])), eps=0.0).item()
    assert two - one == pytest.approx(math.log(2.0), rel=1e-12)


def test_logsum_finite_for_equal_features():
    s = t64(randn(12, 3, 4), grad=True)
    loss = logsum_loss(s, s.detach())
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1e-5))
    assert torch.isfinite(s.grad).all() and (s.grad == 0).all()


def test_logsum_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        logsum_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_logsum_is_a_soft_maximum():
    """(1/alpha) LogSum -> log max|d| as alpha grows, within log(N) / alpha."""
    s, t = randn(13, 4, 8), randn(14, 4, 8)
    log_max = math.log(np.abs(s - t).max())
    gaps = []
    for alpha in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
        gap = logsum_loss(t64(s), t64(t), alpha=alpha, eps=0.0).item() / alpha - log_max
        assert 0.0 <= gap <= math.log(s.size) / alpha + 1e-12
        gaps.append(gap)
    assert gaps == sorted(gaps, reverse=True)


# ----------------------------------------------------------------------------- attention


@pytest.mark.parametrize("shape", [(3, 4, 5, 5), (2, 1, 3, 7), (1, 6, 1, 1)])
def test_attention_map_matches_reference(shape):
    f = randn(15, *shape)
    got = attention_map(t64(f)).numpy()
    assert got.shape == (shape[0], shape[2] * shape[3])
    np.testing.assert_allclose(got, ref_attention_map(f), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-12)


def test_attention_map_equals_the_authors_code():
    # at(x) = F.normalize(x.pow(2).mean(1).view(x.size(0), -1)) (attention-transfer, cifar.py).
    x = t64(randn(16, 2, 5, 3, 4))
    want = F.normalize(x.pow(2).mean(1).view(2, -1))
    np.testing.assert_allclose(attention_map(x).numpy(), want.numpy(), rtol=1e-12)


def test_attention_map_of_zero_features_is_zero():
    assert (attention_map(torch.zeros(2, 3, 4, 4)) == 0).all()


@pytest.mark.parametrize("shape", [(4, 8), (4, 3, 5), (1, 2, 3, 4, 5)])
def test_attention_map_rejects_non_spatial_features(shape):
    with pytest.raises(ValueError, match="spatial"):
        attention_map(torch.zeros(shape))


def test_at_loss_matches_reference_same_size():
    s, t = randn(17, 3, 4, 6, 6), randn(18, 3, 8, 6, 6)  # channel counts may differ
    assert at_loss(t64(s), t64(t)).item() == pytest.approx(ref_at_loss(s, t), rel=1e-12)


@pytest.mark.parametrize(
    ("s_hw", "t_hw"), [((8, 8), (4, 4)), ((4, 4), (8, 8)), ((6, 4), (3, 8)), ((9, 9), (3, 3))]
)
def test_at_loss_pools_the_larger_map(s_hw, t_hw):
    s, t = randn(19, 2, 3, *s_hw), randn(20, 2, 5, *t_hw)
    assert at_loss(t64(s), t64(t)).item() == pytest.approx(ref_at_loss(s, t), rel=1e-12)


def test_at_loss_equals_the_authors_code():
    # at_loss(x, y) = (at(x) - at(y)).pow(2).mean() (attention-transfer, cifar.py).
    def at(x):
        return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))

    x, y = t64(randn(21, 4, 3, 5, 5)), t64(randn(22, 4, 6, 5, 5))
    want = (at(x) - at(y)).pow(2).mean().item()
    assert at_loss(x, y).item() == pytest.approx(want, rel=1e-12)


def test_at_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match="spatial"):
        at_loss(torch.zeros(2, 8), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="batch"):
        at_loss(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))


# ----------------------------------------------------------------------------- gradients


def test_gradients_against_finite_differences():
    s, t = t64(randn(23, 2, 3, 4, 4), grad=True), t64(randn(24, 2, 3, 4, 4), grad=True)
    assert torch.autograd.gradcheck(fitnet_loss, (s, t))
    assert torch.autograd.gradcheck(lambda a, b: logsum_loss(a, b, alpha=4.0), (s, t))
    assert torch.autograd.gradcheck(lambda a, b: logsum_loss(a, b, alpha=2.5, eps=0.0), (s, t))
    assert torch.autograd.gradcheck(lambda a: attention_map(a).sin().sum(), (s,))
    assert torch.autograd.gradcheck(at_loss, (s, t))
    big = t64(randn(25, 2, 2, 8, 8), grad=True)
    assert torch.autograd.gradcheck(at_loss, (big, t))
    assert torch.autograd.gradcheck(at_loss, (t, big))


# ----------------------------------------------------------------------------- properties

finite = st.floats(-10.0, 10.0, allow_nan=False, width=64)


@st.composite
def feature_pairs(draw, spatial: bool = True):
    b = draw(st.integers(1, 3))
    shape = (b, draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if not spatial:
        shape = (b, draw(st.integers(1, 6)))
    return draw(arrays(np.float64, shape, elements=finite)), draw(
        arrays(np.float64, shape, elements=finite)
    )


@SETTINGS
@given(pair=feature_pairs(spatial=False))
def test_fitnet_zero_for_equal_inputs_and_symmetric(pair):
    s, t = pair
    assert fitnet_loss(t64(s), t64(s)).item() == 0.0
    forward, backward = fitnet_loss(t64(s), t64(t)).item(), fitnet_loss(t64(t), t64(s)).item()
    assert forward == backward >= 0.0


@SETTINGS
@given(pair=feature_pairs(spatial=False), scale=st.floats(1e-2, 1e2), alpha=st.floats(1.0, 6.0))
def test_logsum_scaling_adds_alpha_log_c(pair, scale, alpha):
    """Scaling both inputs by c shifts LogSum by alpha log c: its gradient ignores the scale."""
    s, t = pair
    assume(np.abs(s - t).max() > 1e-3)
    base = logsum_loss(t64(s), t64(t), alpha=alpha, eps=0.0).item()
    scaled = logsum_loss(t64(scale * s), t64(scale * t), alpha=alpha, eps=0.0).item()
    assert scaled == pytest.approx(base + alpha * math.log(scale), rel=1e-9, abs=1e-9)


@SETTINGS
@given(pair=feature_pairs(spatial=False), alpha=st.floats(0.5, 20.0))
def test_logsum_bounded_by_the_maximum(pair, alpha):
    s, t = pair
    m = np.abs(s - t).max()
    assume(m > 1e-3)
    loss = logsum_loss(t64(s), t64(t), alpha=alpha, eps=0.0).item()
    assert alpha * math.log(m) - 1e-9 <= loss <= alpha * math.log(m) + math.log(s.size) + 1e-9


@SETTINGS
@given(pair=feature_pairs(), scale=st.floats(1e-3, 1e3))
def test_attention_map_unchanged_by_positive_scaling(pair, scale):
    f, _ = pair
    q_norm = np.linalg.norm((f**2).mean(axis=1).reshape(len(f), -1), axis=1)
    # F.normalize divides by max(norm, 1e-12): maps below that floor are not rescaled.
    assume(((q_norm == 0) | (q_norm * min(scale, 1.0) ** 2 > 1e-9)).all())
    np.testing.assert_allclose(
        attention_map(t64(scale * f)).numpy(), attention_map(t64(f)).numpy(), atol=1e-12
    )


@SETTINGS
@given(pair=feature_pairs())
def test_at_loss_zero_for_identical_features(pair):
    f, _ = pair
    assert at_loss(t64(f), t64(f)).item() == 0.0


@SETTINGS
@given(
    b=st.integers(1, 3),
    cs=st.integers(1, 3),
    ct=st.integers(1, 3),
    s_hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    t_hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    seed=st.integers(0, 2**16),
)
def test_at_loss_handles_different_spatial_sizes(b, cs, ct, s_hw, t_hw, seed):
    """Any two sizes: the larger map on each axis is pooled to the smaller; the result is the
    loss of the pooled features, symmetric, and within [0, 2 / (h w)] (unit non-negative rows)."""
    s, t = t64(randn(seed, b, cs, *s_hw)), t64(randn(seed + 1, b, ct, *t_hw))
    h, w = min(s_hw[0], t_hw[0]), min(s_hw[1], t_hw[1])
    loss = at_loss(s, t)
    pooled = at_loss(F.adaptive_avg_pool2d(s, (h, w)), F.adaptive_avg_pool2d(t, (h, w)))
    assert loss.item() == pytest.approx(pooled.item(), rel=1e-12, abs=1e-15)
    assert loss.item() == pytest.approx(at_loss(t, s).item(), rel=1e-12, abs=1e-15)
    assert 0.0 <= loss.item() <= 2.0 / (h * w) + 1e-12


@SETTINGS
@given(pair=feature_pairs(), k=st.integers(2, 3))
def test_at_loss_zero_against_an_upsampled_copy(pair, k):
    """A teacher map repeated k x k per position pools back to itself: nothing to transfer."""
    f, _ = pair
    up = t64(f).repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)  # (B, C, kH, kW)
    assert at_loss(up, t64(f)).item() == pytest.approx(0.0, abs=1e-24)
