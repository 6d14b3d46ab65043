"""kdcore.analysis against direct computations (numpy, closed forms, finite differences)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore import analysis

K = 10


def np_softmax(z: np.ndarray, T: float) -> np.ndarray:
    e = np.exp((z - z.max()) / T)
    return e / e.sum()


def np_kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


logit_rows = st.lists(
    st.floats(-20, 20, allow_nan=False, allow_infinity=False), min_size=K, max_size=K
)


# ----------------------------------------------------------------------------- temperature grid


def test_grid_is_log_spaced_and_contains_one():
    g = analysis.temperature_grid(0.1, 50.0, 100)
    assert len(g) == 100
    assert g[0] == pytest.approx(0.1) and g[-1] == pytest.approx(50.0)
    assert 1.0 in g  # exactly, so the slider can stop on the plain softmax
    assert np.all(np.diff(g) > 0)
    i1 = int(np.flatnonzero(g == 1.0)[0])
    for half in (g[: i1 + 1], g[i1:]):  # constant ratio within each half
        ratios = half[1:] / half[:-1]
        assert np.allclose(ratios, ratios[0])


@pytest.mark.parametrize("bad", [(1.0, 50.0, 10), (0.1, 1.0, 10), (0.1, 50.0, 2)])
def test_grid_rejects_bad_ranges(bad):
    with pytest.raises(ValueError):
        analysis.temperature_grid(*bad)


# ----------------------------------------------------------------------------- the sweep


def test_sweep_matches_numpy_softmax_entropy_and_dark_mass():
    z = np.array([-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2])
    temps = np.array([0.1, 0.5, 1.0, 4.0, 20.0])
    sw = analysis.temperature_sweep(torch.tensor(z), temps)
    assert sw.probs.shape == (5, K) and sw.top_class == 2
    for i, T in enumerate(temps):
        p = np_softmax(z, T)
        assert np.allclose(sw.probs[i], p, rtol=1e-9, atol=1e-300)
        nz = p[p > 0]
        assert sw.entropy[i] == pytest.approx(-np.sum(nz * np.log(nz)), abs=1e-12)
        assert sw.top_prob[i] == pytest.approx(p[2])
        assert sw.dark_mass[i] == pytest.approx(1 - p[2])
    # Hinton's point: at T = 1 the "3" and "7" are tiny but still ranked above the "6".
    assert 0 < sw.probs[2, 6] < sw.probs[2, 7] < sw.probs[2, 3] < 1e-4


def test_sweep_limits_one_hot_and_uniform():
    z = torch.tensor([3.0, 1.0, 0.5, -2.0, 0.0, 0.0, 1.5, 2.0, -1.0, 0.2])
    sw = analysis.temperature_sweep(z, np.array([0.01, 1e4]))
    assert sw.top_prob[0] == pytest.approx(1.0) and sw.entropy[0] == pytest.approx(0.0, abs=1e-9)
    assert sw.entropy[1] == pytest.approx(sw.max_entropy, rel=1e-6)
    assert sw.max_entropy == pytest.approx(math.log(K))


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.floats(-50, 50), st.floats(0.1, 50))
def test_sweep_rows_sum_to_one_and_ignore_a_constant_shift(row, c, T):
    z = torch.tensor(row, dtype=torch.float64)
    a = analysis.temperature_sweep(z, np.array([T]))
    b = analysis.temperature_sweep(z + c, np.array([T]))
    assert a.probs.sum() == pytest.approx(1.0)
    assert np.allclose(a.probs, b.probs, atol=1e-12)
    assert 0 <= a.entropy[0] <= a.max_entropy + 1e-12


def test_entropy_edge_cases():
    assert float(analysis.entropy(torch.full((K,), 1 / K))) == pytest.approx(math.log(K))
    assert float(analysis.entropy(torch.eye(K)[3])) == 0.0  # 0 log 0 = 0, not nan


def test_regime_words():
    assert "T < 1" in analysis.regime(0.3)
    assert "T = 1" in analysis.regime(1.0)
    assert "T > 1" in analysis.regime(3.0, 0.5)
    assert "uniform" in analysis.regime(40.0, 0.995)


# ----------------------------------------------------------------------------- label smoothing


def test_label_smoothing_target():
    t = analysis.label_smoothing_target(2, K, 0.1).numpy()
    assert t.sum() == pytest.approx(1.0)
    assert t[2] == pytest.approx(0.9 + 0.01) and t[0] == pytest.approx(0.01)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.integers(0, K - 1), st.floats(0, 1))
def test_label_smoothing_is_distillation_from_a_uniform_teacher(row, label, eps):
    s = torch.tensor([row], dtype=torch.float64)
    out = analysis.label_smoothing_as_kd(s, torch.tensor([label]), eps)
    # Direct: cross-entropy with the smoothed target, in numpy.
    q = np_softmax(np.array(row), 1.0)
    target = analysis.label_smoothing_target(label, K, eps).numpy()
    log_q = np.array(row) - np.max(row) - np.log(np.sum(np.exp(np.array(row) - np.max(row))))
    direct = -float(np.sum(target * log_q))
    assert out["label_smoothing"] == pytest.approx(direct, rel=1e-9, abs=1e-9)
    assert out["label_smoothing"] == pytest.approx(
        out["distillation"] + out["entropy_of_uniform"], rel=1e-9, abs=1e-9
    )
    assert out["kl_to_uniform"] == pytest.approx(np_kl(np.full(K, 1 / K), q), abs=1e-9)


# ----------------------------------------------------------------------------- the KD loss


def _batch(seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, K, generator=g, dtype=torch.float64) * 2
    t = torch.randn(b, K, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, K, (b,), generator=g)
    return s, t, y


@pytest.mark.parametrize("T, alpha", [(1.0, 0.0), (4.0, 0.9), (20.0, 0.5), (0.5, 1.0)])
def test_loss_mix_against_a_direct_computation(T, alpha):
    s, t, y = _batch()
    out = analysis.loss_mix(s, t, y, T, alpha)
    ce = np.mean([-np.log(np_softmax(s[b].numpy(), 1.0)[y[b]]) for b in range(len(y))])
    kl = np.mean(
        [np_kl(np_softmax(t[b].numpy(), T), np_softmax(s[b].numpy(), T)) for b in range(len(y))]
    )
    assert out["raw_ce"] == pytest.approx(ce, rel=1e-6)
    assert out["raw_kd"] == pytest.approx(T * T * kl, rel=1e-6)
    assert out["ce"] == pytest.approx((1 - alpha) * ce, rel=1e-6, abs=1e-12)
    assert out["kd"] == pytest.approx(alpha * T * T * kl, rel=1e-6, abs=1e-12)
    assert out["total"] == pytest.approx(out["ce"] + out["kd"], rel=1e-6)


@pytest.mark.parametrize("T", [0.3, 4.0, 20.0])
def test_loss_mix_sweep_is_loss_mix_at_every_alpha(T):
    """The page's bars across alpha (one evaluation of each term, scaled) against the registered
    KD distiller evaluated at each alpha in turn."""
    s, t, y = _batch(5)
    alphas = np.array([0.0, 0.1, 0.35, 0.5, 0.9, 1.0])
    sweep = analysis.loss_mix_sweep(s, t, y, T, alphas)
    for i, a in enumerate(alphas):
        one = analysis.loss_mix(s, t, y, T, float(a))
        assert sweep["ce"][i] == pytest.approx(one["ce"], rel=1e-12, abs=1e-15)
        assert sweep["kd"][i] == pytest.approx(one["kd"], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("T", [0.5, 1.0, 3.0, 25.0])
def test_kd_gradient_closed_form_and_finite_differences(T):
    s, t, _ = _batch(1)
    b = len(s)
    p, q = F.softmax(t / T, -1), F.softmax(s / T, -1)
    g = analysis.kd_gradient(s, t, T)
    assert torch.allclose(g, T * (q - p) / b, atol=1e-12)  # Hinton et al. 2015, §2
    g_plain = analysis.kd_gradient(s, t, T, t_squared=False)
    assert torch.allclose(g_plain, (q - p) / (T * b), atol=1e-12)
    # One coordinate by central differences on the loss itself.
    from kdcore.losses import kd_loss

    h = 1e-6
    e = torch.zeros_like(s)
    e[0, 3] = h
    fd = (kd_loss(s + e, t, T) - kd_loss(s - e, t, T)) / (2 * h)
    assert float(fd) == pytest.approx(float(g[0, 3]), rel=1e-5, abs=1e-9)


def test_gradient_norms_differ_by_exactly_t_squared():
    s, t, _ = _batch(2)
    temps = np.array([0.5, 1.0, 2.0, 10.0, 40.0])
    out = analysis.gradient_norms(s, t, temps)
    assert np.allclose(out["with_t2"] / out["without_t2"], temps**2)
    # Without T^2 the gradient falls like 1/T^2 at high T (the shrink the factor corrects).
    assert out["without_t2"][-1] * 40.0**2 == pytest.approx(
        out["without_t2"][-2] * 10.0**2, rel=0.05
    )


def test_gradient_norms_are_kd_gradient_at_each_t_in_turn():
    """The vectorised norms (vmap over T) against autograd of kd_loss, one T at a time, with
    and without the T^2 factor; a batch of 3 rows, temperatures from 0.1 to 200."""
    s, t, _ = _batch(3)
    temps = np.array([0.1, 0.7, 1.0, 3.0, 20.0, 200.0])
    out = analysis.gradient_norms(s, t, temps)
    for i, T in enumerate(temps):
        with_t2 = float(analysis.kd_gradient(s, t, float(T), True).norm())
        without = float(analysis.kd_gradient(s, t, float(T), False).norm())
        assert out["with_t2"][i] == pytest.approx(with_t2, rel=1e-12, abs=1e-15)
        assert out["without_t2"][i] == pytest.approx(without, rel=1e-12, abs=1e-15)


def test_high_temperature_limit_converges_to_logit_matching():
    s, t, _ = _batch(3)
    out = analysis.high_temperature_limit(s, t, np.array([1.0, 10.0, 100.0, 1000.0]))
    s0 = (s - s.mean(-1, keepdim=True)).numpy()
    t0 = (t - t.mean(-1, keepdim=True)).numpy()
    direct = np.mean(np.sum((s0 - t0) ** 2, -1)) / (2 * K)
    assert out["limit"] == pytest.approx(direct, rel=1e-9)
    gaps = np.abs(out["ratio"] - 1)
    assert np.all(np.diff(gaps[1:]) < 0) and gaps[-1] < 1e-3


def test_high_temperature_limit_is_kd_loss_at_each_t_in_turn():
    """The vectorised curve (vmap over T) against kd_loss called once per T."""
    from kdcore.losses import kd_loss

    s, t, _ = _batch(6)
    temps = np.array([0.1, 0.9, 4.0, 60.0, 2000.0])
    out = analysis.high_temperature_limit(s, t, temps)
    s0, t0 = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    for i, T in enumerate(temps):
        assert out["t2_kl"][i] == pytest.approx(float(kd_loss(s0, t0, float(T))), rel=1e-12)


def test_high_temperature_limit_ignores_per_row_shifts():
    s, t, _ = _batch(4)
    temps = np.array([2.0, 50.0])
    a = analysis.high_temperature_limit(s, t, temps)
    b = analysis.high_temperature_limit(s + 7.0, t - torch.arange(4.0)[:, None], temps)
    assert a["limit"] == pytest.approx(b["limit"])
    assert np.allclose(a["t2_kl"], b["t2_kl"])
