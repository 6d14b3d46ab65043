"""Forward vs reverse KL on a two-mode teacher (kdcore.klfit): each formula against a direct
computation, each fitted optimum against its known answer (moment matching for forward KL, one
mode for reverse KL, zero when the teacher is in the student's family)."""

import itertools
import json
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdcore import klfit
from kdcore.klfit import (
    best_single_gaussian,
    bimodal,
    gaussian_on,
    generalized_jsd_discrete,
    kl_frames,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


WIDE = torch.linspace(-15, 15, 601, dtype=torch.float64)  # fine and wide: no truncation to speak of


def moments(p: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    mean = float((p * x).sum())
    return mean, float((p * (x - mean) ** 2).sum())


def random_pair(seed: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64) * 2, 0)
    q = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64) * 2, 0)
    return p, q


def kl_np(a: np.ndarray, b: np.ndarray) -> float:
    return float(sum(ai * math.log(ai / bi) for ai, bi in zip(a, b, strict=True) if ai > 0))


# ----------------------------------------------------------------------------- distributions


def test_bimodal_is_a_normalised_mixture_with_its_modes_at_plus_minus_half_sep():
    p = bimodal(WIDE, sep=4.0, weight=0.3, width=0.6)
    assert p.shape == WIDE.shape and float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    mean, var = moments(p, WIDE)
    assert mean == pytest.approx(0.3 * -2 + 0.7 * 2, abs=1e-9)
    assert var == pytest.approx(0.6**2 + 0.3 * 0.7 * 4.0**2, abs=1e-6)  # a mixture's variance
    left, right = p[WIDE < 0], p[WIDE > 0]
    assert float(WIDE[WIDE < 0][left.argmax()]) == pytest.approx(-2.0, abs=0.06)
    assert float(WIDE[WIDE > 0][right.argmax()]) == pytest.approx(2.0, abs=0.06)
    # the left mode's mass, less its tail past 0, plus the right mode's tail below 0
    tail = 0.5 * math.erfc(2.0 / 0.6 / math.sqrt(2))
    assert float(left.sum()) == pytest.approx(0.3 * (1 - tail) + 0.7 * tail, abs=1e-3)
    with pytest.raises(ValueError):
        bimodal(WIDE, sep=1.0, weight=1.5, width=0.5)


def test_gaussian_on_has_the_given_mean_and_spread_on_a_wide_grid():
    q = gaussian_on(WIDE, 0.7, math.log(1.3))
    mean, var = moments(q, WIDE)
    assert float(q.sum()) == pytest.approx(1.0, abs=1e-12)
    assert mean == pytest.approx(0.7, abs=1e-9) and var == pytest.approx(1.3**2, abs=1e-9)
    # a one-mode teacher is the same distribution
    assert torch.allclose(bimodal(WIDE, 0.0, 0.5, 1.3), gaussian_on(WIDE, 0.0, math.log(1.3)))


# ----------------------------------------------------------------------------- the divergence


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_generalized_jsd_against_a_direct_computation(beta):
    for seed in range(3):
        p, q = random_pair(seed)
        a, b = p.numpy(), q.numpy()
        if beta == 0:
            want = kl_np(a, b)
        elif beta == 1:
            want = kl_np(b, a)
        else:
            m = beta * a + (1 - beta) * b
            want = (beta * kl_np(a, m) + (1 - beta) * kl_np(b, m)) / (beta * (1 - beta))
        got = float(generalized_jsd_discrete(p, q, beta))
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def trl_generalized_jsd(student_log: torch.Tensor, teacher_log: torch.Tensor, beta: float):
    """TRL's GKDTrainer.generalized_jsd_loss (reduction "sum"), the same steps: F.kl_div(input,
    target) is KL(target || input)."""
    if beta == 0:
        return F.kl_div(student_log, teacher_log, reduction="sum", log_target=True)
    if beta == 1:
        return F.kl_div(teacher_log, student_log, reduction="sum", log_target=True)
    b = torch.tensor(beta, dtype=student_log.dtype)
    mix = torch.logsumexp(torch.stack([student_log + torch.log(1 - b), teacher_log + b.log()]), 0)
    kl_teacher = F.kl_div(mix, teacher_log, reduction="sum", log_target=True)
    kl_student = F.kl_div(mix, student_log, reduction="sum", log_target=True)
    return b * kl_teacher + (1 - b) * kl_student


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.7, 1.0])
def test_unscaled_values_are_trl_gkd_and_scaled_differ_by_beta_one_minus_beta(beta):
    p, q = random_pair(7)
    trl = float(trl_generalized_jsd(q.log(), p.log(), beta))
    assert float(generalized_jsd_discrete(p, q, beta, scaled=False)) == pytest.approx(trl)
    scale = beta * (1 - beta) if 0 < beta < 1 else 1.0
    assert float(generalized_jsd_discrete(p, q, beta)) * scale == pytest.approx(trl)


def test_scaled_jsd_is_continuous_at_both_ends_and_zero_only_for_equal_distributions():
    p, q = random_pair(3)
    fwd, rev = (
        float(generalized_jsd_discrete(p, q, 0.0)),
        float(generalized_jsd_discrete(p, q, 1.0)),
    )
    assert float(generalized_jsd_discrete(p, q, 1e-5)) == pytest.approx(fwd, rel=1e-3)
    assert float(generalized_jsd_discrete(p, q, 1 - 1e-5)) == pytest.approx(rev, rel=1e-3)
    betas = torch.linspace(0, 1, 11, dtype=torch.float64)
    d = generalized_jsd_discrete(p.expand(11, -1), q.expand(11, -1), betas)  # (11,) batched
    assert d.shape == (11,) and bool((d > 0).all())
    assert float(generalized_jsd_discrete(p, p, 0.4)) == pytest.approx(0.0, abs=1e-12)


def test_divergence_gradients_match_finite_differences():
    """What the fit descends: D_β as a function of the student's logits."""
    p, _ = random_pair(11, n=6)
    logits = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for b in (0.0, 0.4, 1.0):
        beta = torch.tensor(b, dtype=torch.float64)

        def f(z, beta=beta):
            return klfit._divergences(p.log(), torch.log_softmax(z, 0), beta)[0]

        assert torch.autograd.gradcheck(f, (logits.clone().requires_grad_(True),))
        assert torch.autograd.gradgradcheck(f, (logits.clone().requires_grad_(True),))


# ----------------------------------------------------------------------------- the fitted student


def test_forward_kl_optimum_is_moment_matching():
    p = bimodal(WIDE, sep=4.0, weight=0.3, width=0.6)
    fit = best_single_gaussian(p, WIDE, beta=0.0)
    # Exact on the grid (the family is exponential in x and x^2): q's moments are p's.
    p_mean, p_var = moments(p, WIDE)
    q_mean, q_var = moments(fit["q"], WIDE)
    assert q_mean == pytest.approx(p_mean, abs=1e-7) and q_var == pytest.approx(p_var, rel=1e-7)
    # And the parameters themselves, up to the grid's discretisation.
    assert fit["mu"] == pytest.approx(p_mean, abs=1e-4)
    assert fit["sigma"] == pytest.approx(math.sqrt(p_var), rel=1e-4)
    assert fit["divergence"] == fit["forward_kl"]


@pytest.mark.parametrize(("weight", "mode"), [(0.5, -3.0), (0.7, -3.0), (0.3, 3.0)])
def test_reverse_kl_optimum_sits_on_one_mode(weight, mode):
    """Well separated modes: the student takes the heavier mode (the left one on a tie) with the
    teacher's width, and pays only -log(that mode's weight) for ignoring the other."""
    p = bimodal(WIDE, sep=6.0, weight=weight, width=0.5)
    fit = best_single_gaussian(p, WIDE, beta=1.0)
    assert fit["mu"] == pytest.approx(mode, abs=1e-3)
    assert fit["sigma"] == pytest.approx(0.5, rel=1e-3)
    kept = weight if mode < 0 else 1 - weight
    assert fit["reverse_kl"] == pytest.approx(-math.log(kept), abs=1e-4)
    assert fit["forward_kl"] > 10  # the other mode is not covered at all


def test_fit_is_the_global_minimum_of_a_brute_force_search():
    grid = klfit.grid_for(4.0, 0.6, 0.5)
    p = bimodal(grid, 4.0, 0.6, 0.5)
    mus = torch.linspace(-3, 3, 121, dtype=torch.float64)
    sigmas = torch.linspace(math.log(0.3), math.log(3.0), 61, dtype=torch.float64)
    M, S = torch.meshgrid(mus, sigmas, indexing="ij")
    for beta in (0.0, 0.5, 1.0):
        brute = generalized_jsd_discrete(p.expand(*M.shape, -1), gaussian_on(grid, M, S), beta)
        fit = best_single_gaussian(p, grid, beta)
        assert fit["divergence"] <= float(brute.min()) + 1e-12
        i, _ = np.unravel_index(int(brute.argmin()), M.shape)
        assert fit["mu"] == pytest.approx(float(mus[i]), abs=0.1)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_divergences_are_zero_when_the_teacher_is_in_the_family(beta):
    p = gaussian_on(WIDE, 0.7, math.log(1.3))
    fit = best_single_gaussian(p, WIDE, beta)
    assert fit["mu"] == pytest.approx(0.7, abs=1e-6) and fit["sigma"] == pytest.approx(
        1.3, rel=1e-6
    )
    for k in ("divergence", "forward_kl", "reverse_kl"):
        assert abs(fit[k]) < 1e-10


def test_a_tie_goes_to_the_left_mode_every_time():
    grid = klfit.grid_for(5.0, 0.5, 0.5)
    p = bimodal(grid, 5.0, 0.5, 0.5)
    runs = [best_single_gaussian(p, grid, 1.0) for _ in range(2)]
    assert runs[0]["mu"] == runs[1]["mu"] == pytest.approx(-2.5, abs=1e-3)


# ----------------------------------------------------------------------------- frames for the view


def test_kl_frames_move_from_covering_to_seeking_and_are_json_ready():
    t0 = time.perf_counter()
    out = kl_frames(4.0, 0.5, 0.5)
    seconds = time.perf_counter() - t0
    assert seconds < 5  # about 0.4 s on 2 CPU cores; generous for a loaded machine
    text = json.dumps(out)
    assert json.loads(text) == out and len(text) < 200_000
    frames = out["frames"]
    assert [f["beta"] for f in frames] == list(klfit.BETAS)
    assert len(out["x"]) == len(out["p"]) == len(frames[0]["q"])
    for v in [*out["p"], *frames[0]["q"], frames[5]["mu"], frames[5]["fwd"]]:
        assert round(v, 4) == v
    first, last = frames[0], frames[-1]
    assert first["picks"] == "both" and last["picks"] == "left"
    assert first["div"] == first["fwd"] and last["div"] == last["rev"]
    assert first["mu"] == pytest.approx(out["p_mean"], abs=1e-3)
    assert first["sigma"] == pytest.approx(out["p_std"], rel=2e-3)
    assert last["mu"] == pytest.approx(-2.0, abs=1e-3) and last["sigma"] == pytest.approx(0.5, 1e-2)
    assert first["gap"] > 10 * out["p_gap"] and last["gap"] < 1.5 * out["p_gap"]
    # Along β the student never moves back towards covering: its spread only shrinks.
    sigmas = [f["sigma"] for f in frames]
    assert all(b <= a + 1e-4 for a, b in itertools.pairwise(sigmas))
    assert all(f["fwd"] >= first["fwd"] - 1e-4 and f["rev"] >= last["rev"] - 1e-4 for f in frames)


def test_kl_frames_rejects_a_nonsense_teacher():
    with pytest.raises(ValueError):
        kl_frames(4.0, 0.5, 0.0)
    with pytest.raises(ValueError):
        kl_frames(4.0, 0.5, 0.5, betas=[0.0, 1.5])
