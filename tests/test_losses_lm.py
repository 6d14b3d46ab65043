"""The language-model losses against plain float64 loops, finite differences and properties.

References are written from the equations position by position in numpy (Kim & Rush 2016,
§3.1; Agarwal et al. 2024, Eq. 1; Boizard et al. 2024), with the probabilities mixed and
compared directly rather than in log space, so a mistake in kdcore is not repeated here.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kdcore.losses.kd import kd_loss
from kdcore.losses.lm import (
    forward_kl_per_token,
    generalized_jsd,
    sequence_log_prob,
    token_kd_loss,
    uld_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


# ----------------------------------------------------------------------------- plain references


def ref_softmax(z: np.ndarray) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64)
    e = np.exp(a - a.max())
    return e / e.sum()


def ref_kl(p: np.ndarray, q: np.ndarray) -> float:
    """sum_v p_v log(p_v / q_v), with 0 log 0 = 0."""
    return float(sum(pv * math.log(pv / qv) for pv, qv in zip(p, q, strict=True) if pv > 0))


def ref_mask(mask, b: int, n: int) -> np.ndarray:
    return np.ones((b, n), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def ref_mean_over_positions(values: dict) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def ref_token_kd(s, t, T, mask=None) -> float:
    m = ref_mask(mask, *s.shape[:2])
    kls = {
        (b, pos): ref_kl(ref_softmax(t[b, pos] / T), ref_softmax(s[b, pos] / T))
        for b in range(s.shape[0])
        for pos in range(s.shape[1])
        if m[b, pos]
    }
    return T * T * ref_mean_over_positions(kls)


def ref_gjsd_position(s_row, t_row, beta, T) -> float:
    p_s, p_t = ref_softmax(s_row / T), ref_softmax(t_row / T)
    if beta == 0.0:
        return ref_kl(p_t, p_s)
    if beta == 1.0:
        return ref_kl(p_s, p_t)
    mix = beta * p_t + (1 - beta) * p_s  # mixed as probabilities, not log-probabilities
    return beta * ref_kl(p_t, mix) + (1 - beta) * ref_kl(p_s, mix)


def ref_gjsd(s, t, beta, T, mask=None) -> float:
    m = ref_mask(mask, *s.shape[:2])
    values = {
        (b, pos): ref_gjsd_position(s[b, pos], t[b, pos], beta, T)
        for b in range(s.shape[0])
        for pos in range(s.shape[1])
        if m[b, pos]
    }
    return ref_mean_over_positions(values)


def ref_uld(s, t, s_mask=None, t_mask=None) -> float:
    ms, mt = ref_mask(s_mask, *s.shape[:2]), ref_mask(t_mask, *t.shape[:2])
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        pos_s = [i for i in range(s.shape[1]) if ms[b, i]]
        pos_t = [i for i in range(t.shape[1]) if mt[b, i]]
        for i_s, i_t in zip(pos_s, pos_t, strict=False):  # zip stops at the shorter list
            p = sorted(ref_softmax(s[b, i_s]), reverse=True)
            q = sorted(ref_softmax(t[b, i_t]), reverse=True)
            v = max(len(p), len(q))
            p, q = p + [0.0] * (v - len(p)), q + [0.0] * (v - len(q))
            total += sum(abs(a - c) for a, c in zip(p, q, strict=True))
            count += 1
    return total / count if count else 0.0


def ref_sequence_log_prob(z, y, mask=None) -> np.ndarray:
    m = ref_mask(mask, *z.shape[:2])
    out = np.zeros(z.shape[0])
    for b in range(z.shape[0]):
        for pos in range(z.shape[1]):
            if m[b, pos]:
                out[b] += math.log(ref_softmax(z[b, pos])[y[b, pos]])
    return out


def t64(a, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def rand(seed: int, *shape, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape)


def rand_mask(seed: int, b: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).random((b, n)) < 0.6


BETAS = (0.0, 0.1, 0.5, 0.9, 1.0)


# ----------------------------------------------------------------------------- reference tests


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("masked", [False, True])
def test_token_kd_matches_reference(T, masked):
    s, t = rand(0, 3, 5, 7), rand(1, 3, 5, 7)
    mask = rand_mask(2, 3, 5) if masked else None
    m = None if mask is None else torch.tensor(mask)
    got = token_kd_loss(t64(s), t64(t), T, m).item()
    assert got == pytest.approx(ref_token_kd(s, t, T, mask), rel=1e-10)


def test_token_kd_is_kd_loss_over_flattened_positions():
    s, t = rand(3, 2, 4, 6), rand(4, 2, 4, 6)
    got = token_kd_loss(t64(s), t64(t), 2.0)
    want = kd_loss(t64(s).reshape(8, 6), t64(t).reshape(8, 6), 2.0)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_generalized_jsd_matches_reference(beta, T):
    s, t = rand(5, 3, 4, 6), rand(6, 3, 4, 6)
    mask = rand_mask(7, 3, 4)
    got = generalized_jsd(t64(s), t64(t), beta, T, torch.tensor(mask)).item()
    assert got == pytest.approx(ref_gjsd(s, t, beta, T, mask), rel=1e-10)


def test_generalized_jsd_half_is_the_ordinary_jsd():
    s, t = rand(8, 2, 3, 5), rand(9, 2, 3, 5)
    p, q = torch.softmax(t64(t), -1), torch.softmax(t64(s), -1)
    m = (p + q) / 2
    jsd = 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)
    torch.testing.assert_close(generalized_jsd(t64(s), t64(t), 0.5), jsd.mean())


def test_generalized_jsd_endpoints_are_the_two_kls_exactly():
    s, t = t64(rand(10, 2, 3, 5)), t64(rand(11, 2, 3, 5))
    forward = forward_kl_per_token(t, s).mean()  # KL(teacher ‖ student)
    reverse = forward_kl_per_token(s, t).mean()  # KL(student ‖ teacher)
    assert torch.equal(generalized_jsd(s, t, 0.0), forward)
    assert torch.equal(generalized_jsd(s, t, 1.0), reverse)
    assert not torch.allclose(forward, reverse)  # the two directions do differ here


@pytest.mark.parametrize("masked", [False, True])
def test_uld_matches_reference(masked):
    s, t = rand(12, 3, 5, 4), rand(13, 3, 7, 9)  # Ls != Lt, Vs != Vt
    ms, mt = (rand_mask(14, 3, 5), rand_mask(15, 3, 7)) if masked else (None, None)
    got = uld_loss(
        t64(s),
        t64(t),
        None if ms is None else torch.tensor(ms),
        None if mt is None else torch.tensor(mt),
    ).item()
    assert got == pytest.approx(ref_uld(s, t, ms, mt), rel=1e-10)


def test_uld_pools_pairs_and_cuts_each_row_to_its_shorter_side():
    # Row 0 has 2 student and 3 teacher positions (2 pairs), row 1 has 1 and 1 (1 pair).
    s, t = rand(16, 2, 3, 4), rand(17, 2, 4, 6)
    ms = torch.tensor([[True, False, True], [False, True, False]])
    mt = torch.tensor([[True, True, False, True], [False, False, False, True]])
    per_pair = []
    for b, pairs in ((0, [(0, 0), (2, 1)]), (1, [(1, 3)])):
        for i_s, i_t in pairs:
            p = [*sorted(ref_softmax(s[b, i_s]), reverse=True), 0.0, 0.0]  # Vs 4 -> 6
            q = sorted(ref_softmax(t[b, i_t]), reverse=True)
            per_pair.append(sum(abs(a - c) for a, c in zip(p, q, strict=True)))
    got = uld_loss(t64(s), t64(t), ms, mt).item()
    assert got == pytest.approx(sum(per_pair) / 3, rel=1e-12)


def test_sequence_log_prob_matches_reference():
    z = rand(18, 3, 5, 6)
    y = np.random.default_rng(19).integers(0, 6, (3, 5))
    mask = rand_mask(20, 3, 5)
    targets = torch.tensor(np.where(mask, y, -100))  # masked targets need not be valid indices
    got = sequence_log_prob(t64(z), targets, torch.tensor(mask)).numpy()
    np.testing.assert_allclose(got, ref_sequence_log_prob(z, y, mask), rtol=1e-12)
    full = sequence_log_prob(t64(z), torch.tensor(y)).numpy()
    np.testing.assert_allclose(full, ref_sequence_log_prob(z, y), rtol=1e-12)


def test_forward_kl_per_token_matches_reference_and_is_zero_where_masked():
    p, q = rand(21, 2, 4, 5), rand(22, 2, 4, 5)
    mask = rand_mask(23, 2, 4)
    got = forward_kl_per_token(t64(p), t64(q), torch.tensor(mask)).numpy()
    assert got.shape == (2, 4)
    for b in range(2):
        for pos in range(4):
            want = ref_kl(ref_softmax(p[b, pos]), ref_softmax(q[b, pos])) if mask[b, pos] else 0
            assert got[b, pos] == pytest.approx(want, rel=1e-10, abs=0)


def test_token_kd_gradient_has_closed_form():
    # d/dz of T^2 mean_N KL(p^T ‖ q^T) is T (q^T - p^T) / N at counted positions, 0 elsewhere.
    s, t, T = rand(24, 2, 3, 5), rand(25, 2, 3, 5), 2.0
    mask = np.array([[True, False, True], [True, True, False]])
    z = t64(s, grad=True)
    token_kd_loss(z, t64(t), T, torch.tensor(mask)).backward()
    q, p = torch.softmax(t64(s) / T, -1), torch.softmax(t64(t) / T, -1)
    want = T * (q - p) / mask.sum() * torch.tensor(mask).unsqueeze(-1)
    torch.testing.assert_close(z.grad, want)


# ----------------------------------------------------------------------------- finite differences


def test_gradients_against_finite_differences():
    s, t = t64(rand(26, 2, 3, 4), grad=True), t64(rand(27, 2, 3, 4), grad=True)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    assert torch.autograd.gradcheck(lambda a, b: token_kd_loss(a, b, 2.0, mask), (s, t))
    for beta in BETAS:
        fn = lambda a, b, beta=beta: generalized_jsd(a, b, beta, 1.5, mask)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (s, t))
    assert torch.autograd.gradcheck(lambda a, b: forward_kl_per_token(a, b, mask), (s, t))
    y = torch.tensor([[0, 1, 2], [3, 0, 1]])
    assert torch.autograd.gradcheck(lambda a: sequence_log_prob(a, y, mask), (s,))


def test_uld_gradients_against_finite_differences():
    s, t = t64(rand(28, 2, 3, 4), grad=True), t64(rand(29, 2, 5, 6), grad=True)
    ms = torch.tensor([[True, True, False], [False, True, True]])
    mt = torch.tensor([[False, True, True, True, False], [True, False, False, False, False]])
    assert torch.autograd.gradcheck(lambda a, b: uld_loss(a, b, ms, mt), (s, t))
    assert torch.autograd.gradcheck(lambda a, b: uld_loss(a, b), (s, t))


# ----------------------------------------------------------------------------- properties

finite = st.floats(-20.0, 20.0, allow_nan=False, width=64)
temps = st.floats(0.2, 20.0)
betas = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0))
# Multiples of 1/64, for which 1 − (1 − β) == β exactly: a β below ~1e-16 would otherwise round
# 1 − β to 1, the reverse-KL end, which is not the limit of the interior (see generalized_jsd).
dyadic_betas = st.integers(0, 64).map(lambda k: k / 64)


@st.composite
def lm_pairs(draw, same_shape=True):
    b = draw(st.integers(1, 3))
    ls = draw(st.integers(1, 5))
    vs = draw(st.integers(2, 8))
    lt, vt = (ls, vs) if same_shape else (draw(st.integers(1, 5)), draw(st.integers(2, 8)))
    s = draw(arrays(np.float64, (b, ls, vs), elements=finite))
    t = draw(arrays(np.float64, (b, lt, vt), elements=finite))
    ms = draw(arrays(np.bool_, (b, ls)))
    mt = draw(arrays(np.bool_, (b, lt)))
    return s, t, ms, mt


def all_losses(s, t, ms, mt, T, beta):
    """Every loss of the module on one pair (same shapes), masked by ms."""
    m = torch.tensor(ms)
    return {
        "token_kd": token_kd_loss(t64(s), t64(t), T, m),
        "gjsd": generalized_jsd(t64(s), t64(t), beta, T, m),
        "uld": uld_loss(t64(s), t64(t), m, m),
    }


@SETTINGS
@given(pair=lm_pairs(), T=temps, beta=betas)
def test_zero_for_equal_logits(pair, T, beta):
    s, _, ms, _ = pair
    for name, value in all_losses(s, s, ms, ms, T, beta).items():
        assert value.item() == pytest.approx(0.0, abs=1e-9 * max(1.0, T * T)), name


@SETTINGS
@given(pair=lm_pairs(), T=temps, beta=betas, data=st.data())
def test_unchanged_by_a_constant_added_to_a_row(pair, T, beta, data):
    s, t, ms, _ = pair
    shift = data.draw(arrays(np.float64, (*s.shape[:2], 1), elements=finite))
    base = all_losses(s, t, ms, ms, T, beta)
    for moved in (
        all_losses(s + shift, t, ms, ms, T, beta),
        all_losses(s, t + shift, ms, ms, T, beta),
    ):
        for name, value in moved.items():
            assert value.item() == pytest.approx(base[name].item(), rel=1e-7, abs=1e-9), name


@SETTINGS
@given(pair=lm_pairs(), T=temps, beta=betas)
def test_non_negative(pair, T, beta):
    s, t, ms, _ = pair
    for name, value in all_losses(s, t, ms, ms, T, beta).items():
        assert value.item() >= -1e-12 * max(1.0, T * T), name


@SETTINGS
@given(pair=lm_pairs(), T=temps)
def test_generalized_jsd_endpoints_equal_the_kls(pair, T):
    s, t, ms, _ = pair
    m = torch.tensor(ms)
    zs, zt = t64(s), t64(t)
    tol = dict(rel=1e-9, abs=1e-12)
    forward = ref_gjsd(s, t, 0.0, T, ms)  # KL(p_T ‖ p_S)
    reverse = ref_gjsd(s, t, 1.0, T, ms)  # KL(p_S ‖ p_T)
    assert generalized_jsd(zs, zt, 0.0, T, m).item() == pytest.approx(forward, **tol)
    assert generalized_jsd(zs, zt, 1.0, T, m).item() == pytest.approx(reverse, **tol)
    torch.testing.assert_close(
        generalized_jsd(zs, zt, 0.0, T, m), token_kd_loss(zs, zt, T, m) / (T * T)
    )


@SETTINGS
@given(pair=lm_pairs(), T=temps, beta=dyadic_betas)
def test_generalized_jsd_symmetric_under_swap_and_one_minus_beta(pair, T, beta):
    s, t, ms, _ = pair
    m = torch.tensor(ms)
    one = generalized_jsd(t64(s), t64(t), beta, T, m).item()
    swapped = generalized_jsd(t64(t), t64(s), 1.0 - beta, T, m).item()
    assert swapped == pytest.approx(one, rel=1e-9, abs=1e-12)


@SETTINGS
@given(pair=lm_pairs(), beta=st.floats(0.01, 0.99))
def test_generalized_jsd_bounded_by_the_entropy_of_beta(pair, beta):
    # JSD(β) = H(M) − β H(p_T) − (1 − β) H(p_S) is a mutual information, at most H(β) nats.
    s, t, ms, _ = pair
    value = generalized_jsd(t64(s), t64(t), beta, 1.0, torch.tensor(ms)).item()
    assert value <= -beta * math.log(beta) - (1 - beta) * math.log1p(-beta) + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_generalized_jsd_scaled_tends_to_the_kls_at_the_ends(seed):
    # lim β→0 JSD(β)/β = KL(p_T ‖ p_S), lim β→1 JSD(β)/(1 − β) = KL(p_S ‖ p_T).
    s, t = t64(rand(30 + seed, 2, 3, 6, scale=2.0)), t64(rand(40 + seed, 2, 3, 6, scale=2.0))
    eps = 1e-5
    forward, reverse = generalized_jsd(s, t, 0.0), generalized_jsd(s, t, 1.0)
    assert (generalized_jsd(s, t, eps) / eps).item() == pytest.approx(forward.item(), rel=1e-3)
    assert (generalized_jsd(s, t, 1 - eps) / eps).item() == pytest.approx(reverse.item(), rel=1e-3)
    # The unscaled value vanishes there: the definition jumps at the two ends.
    assert generalized_jsd(s, t, eps).item() < 1e-3 * forward.item()


@SETTINGS
@given(pair=lm_pairs(same_shape=False), data=st.data())
def test_uld_unchanged_by_permuting_either_vocabulary(pair, data):
    s, t, ms, mt = pair
    perm_s = data.draw(st.permutations(range(s.shape[-1])))
    perm_t = data.draw(st.permutations(range(t.shape[-1])))
    m_s, m_t = torch.tensor(ms), torch.tensor(mt)
    base = uld_loss(t64(s), t64(t), m_s, m_t).item()
    moved = uld_loss(t64(s[..., perm_s]), t64(t[..., perm_t]), m_s, m_t).item()
    assert moved == pytest.approx(base, rel=1e-12, abs=1e-15)


@SETTINGS
@given(pair=lm_pairs(), data=st.data())
def test_uld_zero_for_a_permuted_vocabulary_with_extra_unused_tokens(pair, data):
    # The student's vocabulary is the teacher's relabelled, plus tokens it never predicts.
    s, _, ms, _ = pair
    perm = data.draw(st.permutations(range(s.shape[-1])))
    extra = data.draw(st.integers(0, 4))
    student = np.concatenate([s[..., perm], np.full((*s.shape[:2], extra), -1e4)], axis=-1)
    m = torch.tensor(ms)
    assert uld_loss(t64(student), t64(s), m, m).item() == pytest.approx(0.0, abs=1e-12)


@SETTINGS
@given(pair=lm_pairs(same_shape=False))
def test_uld_symmetric_and_at_most_two_per_pair(pair):
    s, t, ms, mt = pair
    m_s, m_t = torch.tensor(ms), torch.tensor(mt)
    value = uld_loss(t64(s), t64(t), m_s, m_t).item()
    assert uld_loss(t64(t), t64(s), m_t, m_s).item() == pytest.approx(value, rel=1e-12, abs=0)
    assert 0.0 <= value <= 2.0 + 1e-12  # L1 between two probability vectors


@SETTINGS
@given(pair=lm_pairs(same_shape=False), beta=betas, data=st.data())
def test_masked_positions_do_not_matter(pair, beta, data):
    # Rewriting the logits at excluded positions (even to huge values) changes no loss.
    s, t, ms, mt = pair
    noise_s = data.draw(arrays(np.float64, s.shape, elements=st.floats(-1e4, 1e4)))
    noise_t = data.draw(arrays(np.float64, t.shape, elements=st.floats(-1e4, 1e4)))
    s2 = np.where(ms[..., None], s, noise_s)
    t2 = np.where(mt[..., None], t, noise_t)
    m_s, m_t = torch.tensor(ms), torch.tensor(mt)
    assert uld_loss(t64(s2), t64(t2), m_s, m_t).item() == pytest.approx(
        uld_loss(t64(s), t64(t), m_s, m_t).item(), rel=1e-12, abs=0
    )
    tt = data.draw(arrays(np.float64, s.shape, elements=finite))  # a teacher shaped like s
    tt2 = np.where(ms[..., None], tt, -noise_s)
    for fn in (
        lambda a, b, m: token_kd_loss(a, b, 2.0, m),
        lambda a, b, m: generalized_jsd(a, b, beta, 1.0, m),
        lambda a, b, m: sequence_log_prob(a, torch.zeros(a.shape[:2], dtype=torch.long), m),
    ):
        before = fn(t64(s), t64(tt), m_s)
        after = fn(t64(s2), t64(tt2), m_s)
        torch.testing.assert_close(after, before, rtol=1e-12, atol=0)


def test_uld_aligns_by_order_among_counted_positions():
    # Padding placed differently in student and teacher rows does not change the pairing.
    s, t = rand(50, 1, 3, 4), rand(51, 1, 2, 5)
    base = uld_loss(t64(s), t64(t)).item()
    s_padded = np.concatenate([rand(52, 1, 2, 4), s], axis=1)  # left padding, 2 positions
    t_padded = np.concatenate([t[:, :1], rand(53, 1, 1, 5), t[:, 1:]], axis=1)  # a hole
    ms = torch.tensor([[False, False, True, True, True]])
    mt = torch.tensor([[True, False, True]])
    assert uld_loss(t64(s_padded), t64(t_padded), ms, mt).item() == pytest.approx(base, rel=1e-12)
    # Only the first min(3, 2) = 2 student positions count: the third is free.
    s_other = s.copy()
    s_other[:, 2] = rand(54, 4)
    assert uld_loss(t64(s_other), t64(t)).item() == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_all_false_mask_gives_zero_with_a_grad_fn(dtype):
    s = torch.randn(2, 3, 5, dtype=dtype, requires_grad=True)
    t = torch.randn(2, 4, 7, dtype=dtype, requires_grad=True)
    t_same = torch.randn(2, 3, 5, dtype=dtype, requires_grad=True)
    none_s = torch.zeros(2, 3, dtype=torch.bool)
    none_t = torch.zeros(2, 4, dtype=torch.bool)
    values = {
        "token_kd": token_kd_loss(s, t_same, 2.0, none_s),
        "uld": uld_loss(s, t, none_s, none_t),
        "uld_one_side": uld_loss(s, t, None, none_t),
        **{f"gjsd_{b}": generalized_jsd(s, t_same, b, 1.0, none_s) for b in BETAS},
    }
    for name, value in values.items():
        assert value.shape == () and value.item() == 0.0, name
        assert value.grad_fn is not None, name
        s.grad = None
        value.backward()
        assert s.grad is not None and torch.equal(s.grad, torch.zeros_like(s)), name
    seq = sequence_log_prob(s, torch.zeros(2, 3, dtype=torch.long), none_s)
    assert torch.equal(seq, torch.zeros(2, dtype=dtype)) and seq.grad_fn is not None
    assert torch.equal(forward_kl_per_token(s, t_same, none_s), torch.zeros(2, 3, dtype=dtype))


@pytest.mark.parametrize("beta", BETAS)
def test_no_nan_or_inf_at_extremes(beta):
    # Opposite one-hots at ±1e4 in float32, the worst case for every log-probability.
    s = torch.full((2, 3, 6), -1e4)
    s[..., 1] = 1e4
    t = torch.full((2, 3, 6), -1e4)
    t[..., 0] = 1e4
    t_wide = torch.full((2, 4, 9), -1e4)
    t_wide[..., 0] = 1e4
    mask = torch.tensor([[True, False, True], [False, False, False]])
    fns = {
        "token_kd": lambda a: token_kd_loss(a, t, 0.5, mask),
        "gjsd": lambda a: generalized_jsd(a, t, beta, 1.0, mask),
        "uld": lambda a: uld_loss(a, t_wide, mask, None),
        "seq": lambda a: sequence_log_prob(a, torch.zeros(2, 3, dtype=torch.long), mask).sum(),
    }
    for name, fn in fns.items():
        z = s.clone().requires_grad_()
        value = fn(z)
        value.backward()
        assert torch.isfinite(value), (name, value)
        assert torch.isfinite(z.grad).all(), name


def test_bad_arguments_are_refused():
    s = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(s, s, 1.5)
    with pytest.raises(ValueError, match="mask"):
        token_kd_loss(s, s, 1.0, torch.ones(1, 3, dtype=torch.bool))
