r"""Forward vs reverse KL on a toy teacher: the best single Gaussian for a two-mode distribution.

The intuition behind the choice of divergence in language-model distillation. A student that is
smaller than its teacher cannot copy every mode of the teacher's next-token distribution, so the
divergence decides *which* approximation it settles on:

* **forward KL** :math:`\mathrm{KL}(p\,\|\,q)` (what word-level KD minimises) is an expectation
  under the teacher; it is infinite wherever :math:`p > 0 = q`, so the student *covers* every
  mode and puts mass in the gap between them, where the teacher has almost none;
* **reverse KL** :math:`\mathrm{KL}(q\,\|\,p)` is an expectation under the student; it is large
  wherever :math:`q > 0 \approx p`, so the student *seeks one mode* and ignores the other.
  Gu, Dong, Wei & Huang (2024), "MiniLLM: Knowledge Distillation of Large Language Models",
  arXiv:2306.08543, choose it for generative LMs on these grounds: forward KL makes the student
  overestimate the low-probability regions of the teacher (their abstract);
* the **generalized Jensen-Shannon divergence** JSD(β) of Agarwal et al. (2024), "On-Policy
  Distillation of Language Models: Learning from Self-Generated Mistakes" (GKD),
  arXiv:2306.13649, Eq. (1), moves between the two with β.

Here the teacher ``p`` is a two-Gaussian mixture discretised on a 1-D grid of N points and the
student family is a single discretised Gaussian ``q(mu, sigma)``; :func:`best_single_gaussian`
finds the best member under each divergence and :func:`kl_frames` tabulates it for a slider.
Everything is a probability vector over the grid (no densities), so every sum is exact.

Pure torch, no Streamlit. Float64 throughout: reverse KL weighs ``log p`` where ``p`` is tiny.
The fit is hundreds of small tensor ops: on a busy machine run it with one intra-op thread
(``torch.set_num_threads(1)``, as the tests do). With two on a loaded 2-core machine
:func:`kl_frames` took 25 s instead of 0.5 s (measured): exp/log go multi-threaded from 2048
elements and then wait on descheduled threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

GAP_SD = 2.0  # "the gap": between the modes and more than 2 teacher widths from both
ONE_SIDE = 0.05  # a student with less than 5% of its mass past the midpoint picks one mode
DIGITS = 4  # what kl_frames rounds to (JSON for the browser)
BETAS = tuple(i / 20 for i in range(21))  # 0, 0.05, ..., 1: the slider's stops

_DT = torch.float64
_TINY = 1e-300  # a teacher's exact zeros (underflow) count as this in best_single_gaussian

# ----------------------------------------------------------------------------- distributions


def _log_bimodal(grid: torch.Tensor, sep: float, weight: float, width: float) -> torch.Tensor:
    """log of :func:`bimodal`, computed in log space so far tails stay finite. (N,) -> (N,)."""
    x = grid.to(_DT)
    lw = torch.tensor([weight, 1.0 - weight], dtype=_DT).log()  # log 0 = -inf: one mode only
    left = lw[0] - (x + sep / 2) ** 2 / (2 * width**2)
    right = lw[1] - (x - sep / 2) ** 2 / (2 * width**2)
    logits = torch.logaddexp(left, right)
    return logits - torch.logsumexp(logits, -1)


def bimodal(grid: torch.Tensor, sep: float, weight: float, width: float) -> torch.Tensor:
    r"""The teacher: two Gaussians discretised on ``grid`` and normalised to sum to 1.

    :math:`p_i \propto w\,\mathcal{N}(x_i; -s/2, \tau^2) + (1-w)\,\mathcal{N}(x_i; s/2, \tau^2)`
    with ``s = sep`` (distance between the modes), ``w = weight`` (mass of the left mode, in
    [0, 1]) and ``τ = width`` (both standard deviations). Shapes: grid (N,) -> (N,), float64.
    """
    if not (sep >= 0 and 0 <= weight <= 1 and width > 0):
        raise ValueError("need sep >= 0, 0 <= weight <= 1 and width > 0")
    return _log_bimodal(grid, sep, weight, width).exp()


def _log_gaussian_on(grid: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor):
    """log of :func:`gaussian_on`; mu and log_sigma (...) -> (..., N)."""
    z = (grid.to(_DT) - mu[..., None]) * torch.exp(-log_sigma)[..., None]
    return torch.log_softmax(-0.5 * z**2, -1)  # the 1/(σ√2π) factor cancels in the normalisation


def gaussian_on(
    grid: torch.Tensor, mu: float | torch.Tensor, log_sigma: float | torch.Tensor
) -> torch.Tensor:
    r"""The student family: :math:`q_i \propto \exp(-(x_i-\mu)^2 / 2\sigma^2)`, summing to 1.

    ``mu`` and ``log_sigma`` are numbers or tensors of one shape (...); returns (..., N). Being
    normalised on the grid, ``q``'s own mean and variance match ``mu`` and ``sigma**2`` only
    when the grid is fine and wide compared with ``sigma``.
    """
    mu = torch.as_tensor(mu, dtype=_DT)
    log_sigma = torch.as_tensor(log_sigma, dtype=_DT)
    return _log_gaussian_on(grid, mu, log_sigma).exp()


# ----------------------------------------------------------------------------- divergences


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) along the last axis from log probabilities, 0 log 0 = 0. (..., N) -> (...)."""
    a = log_a.exp()
    terms = a * (log_a - log_b)
    return torch.where(a > 0, terms, torch.zeros_like(terms)).sum(-1)


def _divergences(log_p: torch.Tensor, log_q: torch.Tensor, beta: torch.Tensor):
    """(D_β, KL(p||q), KL(q||p)) for log_p (..., N), log_q (..., N), beta (...) -> each (...)."""
    fwd, rev = _kl(log_p, log_q), _kl(log_q, log_p)
    inside = (beta > 0) & (beta < 1)
    b = torch.where(inside, beta, torch.full_like(beta, 0.5))  # no log 0 or 0/0 at the ends
    b_ = b[..., None]
    # m = β p + (1-β) q. logsumexp, not logaddexp: the latter's double backward is NaN where
    # both terms underflow, and the Newton polish needs second derivatives.
    log_m = torch.stack(torch.broadcast_tensors(b_.log() + log_p, torch.log1p(-b_) + log_q))
    log_m = torch.logsumexp(log_m, 0)
    jsd = b * _kl(log_p, log_m) + (1 - b) * _kl(log_q, log_m)
    scaled = jsd / (b * (1 - b))
    return torch.where(beta <= 0, fwd, torch.where(beta >= 1, rev, scaled)), fwd, rev


def generalized_jsd_discrete(
    p: torch.Tensor, q: torch.Tensor, beta: float | torch.Tensor, scaled: bool = True
) -> torch.Tensor:
    r"""The generalized JSD between a teacher ``p`` and a student ``q`` (probability vectors).

    GKD's Eq. (1) (Agarwal et al. 2024, arXiv:2306.13649), with the teacher as P and the student
    as Q, exactly as TRL's ``GKDTrainer.generalized_jsd_loss`` implements it:

    .. math::
        m = \beta p + (1-\beta) q, \qquad
        \mathrm{JSD}(\beta) = \beta\,\mathrm{KL}(p\,\|\,m) + (1-\beta)\,\mathrm{KL}(q\,\|\,m).

    TRL returns :math:`\mathrm{KL}(p\|q)` (forward) at β = 0 and :math:`\mathrm{KL}(q\|p)`
    (reverse) at β = 1, but JSD(β) itself tends to 0 at both ends (it is
    :math:`\beta\,\mathrm{KL}(p\|q) + O(\beta^2)` near 0 and
    :math:`(1-\beta)\,\mathrm{KL}(q\|p) + O((1-\beta)^2)` near 1), so that loss jumps at the ends.
    With ``scaled=True`` (the default) this returns

    .. math::
        D_\beta(p, q) = \frac{\mathrm{JSD}(\beta)}{\beta(1-\beta)}, \qquad
        D_0 = \mathrm{KL}(p\,\|\,q), \quad D_1 = \mathrm{KL}(q\,\|\,p),

    the ends being the limits, so :math:`D_\beta` is continuous on [0, 1]. For 0 < β < 1 it
    differs from JSD(β) by a constant factor, so its minimiser over ``q`` is GKD's; the minimiser
    therefore moves from the forward-KL optimum to the reverse-KL optimum as β goes from 0 to 1.
    ``scaled=False`` gives TRL's values (JSD(β) inside, the KLs at the ends).

    Shapes: p, q (..., N) summing to 1 along the last axis; beta a number or (...) in [0, 1].
    Returns (...), in nats.
    """
    p, q = torch.as_tensor(p, dtype=_DT), torch.as_tensor(q, dtype=_DT)
    beta = torch.as_tensor(beta, dtype=_DT).expand(p.shape[:-1])
    if ((beta < 0) | (beta > 1)).any():
        raise ValueError("beta must lie in [0, 1]")
    d, _, _ = _divergences(p.log(), q.log(), beta)
    if scaled:
        return d
    inside = (beta > 0) & (beta < 1)
    return torch.where(inside, d * beta * (1 - beta), d)


# ----------------------------------------------------------------------------- fitting


def _default_inits(p: torch.Tensor, grid: torch.Tensor) -> list[float]:
    """Starting means: p's mean (where forward KL ends up) and its two largest local maxima
    (reverse KL has a local optimum on each mode)."""
    x = grid.to(_DT)
    starts = [float((p * x).sum())]
    inner = (p[1:-1] > p[:-2]) & (p[1:-1] >= p[2:])
    peaks = torch.nonzero(inner).flatten() + 1
    starts += [float(x[i]) for i in peaks[p[peaks].argsort(descending=True)[:2]].sort().values]
    return starts


def _fit(
    log_p: torch.Tensor,  # (N,)
    grid: torch.Tensor,  # (N,)
    betas: torch.Tensor,  # (B,)
    inits: Sequence[float],  # K starting means
    steps: int,
) -> dict[str, torch.Tensor]:
    """Minimises D_β over (mu, log sigma) for every β and every start at once; keeps the best.

    Adam on B * 2K independent two-parameter problems summed into one loss (Adam's update is
    per parameter, so the problems do not interact), then a few Newton steps to polish, since
    the tests compare with closed forms to 1e-6. Returns (B,) tensors mu, log_sigma, div.
    """
    x = grid.to(_DT)
    p = log_p.exp()
    mean = (p * x).sum()
    std = ((p * (x - mean) ** 2).sum()).sqrt().clamp_min(1e-3)
    dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
    # Two starting widths per mean: p's own spread (the forward-KL answer) and a third of it.
    mu0 = torch.tensor(list(inits), dtype=_DT).repeat(2)  # (2K,)
    ls0 = torch.cat([std.log().expand(len(inits)), (std / 3).log().expand(len(inits))])
    B, S = len(betas), len(mu0)
    beta = betas.to(_DT)[:, None].expand(B, S)
    lo_ls = math.log(max(dx / 4, 1e-6))  # narrower than a grid step is meaningless

    def objective(mu, ls):
        return _divergences(log_p, _log_gaussian_on(x, mu, ls), beta)[0]  # (B, S)

    # Adam by hand (torch.optim imports torch._dynamo on first use: seconds on a cold start).
    lr = torch.tensor([0.1 * float(std), 0.1], dtype=_DT)[:, None, None]  # (2, 1, 1): mu, ls
    theta = torch.stack([mu0.expand(B, S), ls0.expand(B, S)])  # (2, B, S)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    b1, b2 = 0.9, 0.99
    for t in range(1, steps + 1):
        theta.requires_grad_(True)
        (g,) = torch.autograd.grad(objective(theta[0], theta[1]).sum(), theta)
        with torch.no_grad():
            m.lerp_(g, 1 - b1)
            v.lerp_(g * g, 1 - b2)
            decay = 0.5 * (1 + math.cos(math.pi * (t - 1) / steps))  # cosine to 0
            step = lr * decay * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + 1e-12)
            theta = theta.detach() - step
            theta[1].clamp_(min=lo_ls)
    mu, ls = theta.detach()
    mu, ls = _newton(objective, mu, ls, lo_ls)
    with torch.no_grad():
        d = objective(mu, ls)  # (B, S)
        # The global best per β; among starts within 1e-9 of it (two equally good modes), the
        # leftmost, so a symmetric teacher gives the same answer on every run.
        best = d.min(1, keepdim=True).values
        tied = d <= best + 1e-9 * (1 + best.abs())
        pick = torch.where(tied, mu, torch.full_like(mu, math.inf)).argmin(1)  # (B,)
        rows = torch.arange(B)
        return {"mu": mu[rows, pick], "log_sigma": ls[rows, pick], "div": d[rows, pick]}


def _newton(objective, mu: torch.Tensor, ls: torch.Tensor, lo_ls: float, iters: int = 6):
    """Damped Newton steps on every (mu, log sigma) pair at once. Each problem has a 2x2
    Hessian; a step is taken only where the Hessian is positive definite and the step lowers the
    objective, so a start sitting on a saddle stays where Adam left it."""
    for _ in range(iters):
        mu_, ls_ = mu.clone().requires_grad_(True), ls.clone().requires_grad_(True)
        d = objective(mu_, ls_)
        g_mu, g_ls = torch.autograd.grad(d.sum(), (mu_, ls_), create_graph=True)
        h_mm, h_ml = torch.autograd.grad(g_mu.sum(), (mu_, ls_), retain_graph=True)
        (h_ll,) = torch.autograd.grad(g_ls.sum(), (ls_,))
        with torch.no_grad():
            det = h_mm * h_ll - h_ml**2
            ok = (h_mm > 0) & (det > 0)
            safe = torch.where(ok, det, torch.ones_like(det))
            step_mu = (h_ll * g_mu - h_ml * g_ls) / safe
            step_ls = (h_mm * g_ls - h_ml * g_mu) / safe
            new_mu = torch.where(ok, mu - step_mu, mu)
            new_ls = torch.where(ok, (ls - step_ls).clamp(min=lo_ls), ls)
            better = objective(new_mu, new_ls) <= d
            mu, ls = torch.where(better, new_mu, mu), torch.where(better, new_ls, ls)
    return mu, ls


def best_single_gaussian(
    p: torch.Tensor,
    grid: torch.Tensor,
    beta: float,
    steps: int = 100,
    inits: Sequence[float] | None = None,
) -> dict:
    r"""The single discretised Gaussian ``q`` closest to ``p`` under :math:`D_\beta`.

    Minimises :func:`generalized_jsd_discrete` (scaled) over ``(mu, log sigma)`` from several
    starting means at once (``inits``; by default p's mean and its modes, each with two
    starting widths) and returns the global best. Reverse KL has a local optimum on
    each mode; when two are equally good (a symmetric teacher), the left one is returned.

    Known answers the tests check: at β = 0 the optimum matches moments (q's mean and variance
    on the grid equal p's; for a fine, wide grid ``mu`` = mean of p and ``sigma**2`` = variance
    of p); at β = 1 with well separated modes ``q`` sits on the heavier mode with
    ``sigma`` ≈ its width; every divergence is 0 when ``p`` is itself in the family.

    Shapes: p (N,) summing to 1, grid (N,) increasing and evenly spaced. Returns a dict with
    floats ``mu``, ``sigma``, ``divergence`` (D_β), ``forward_kl`` (KL(p||q)), ``reverse_kl``
    (KL(q||p)), all in nats, and ``q`` (N,). Zeros in ``p`` (underflow in far tails) are read as
    1e-300, so reverse KL stays finite: a huge penalty rather than an infinite one.
    """
    p = torch.as_tensor(p, dtype=_DT)
    if not 0 <= beta <= 1:
        raise ValueError("beta must lie in [0, 1]")
    log_p = p.clamp_min(_TINY).log()  # finite, so reverse KL has a gradient everywhere
    betas = torch.tensor([beta], dtype=_DT)
    fit = _fit(log_p, grid, betas, inits or _default_inits(p, grid), steps)
    return _describe(log_p, grid, fit, 0)


def _describe(log_p: torch.Tensor, grid: torch.Tensor, fit: dict, i: int) -> dict:
    mu, ls = fit["mu"][i], fit["log_sigma"][i]
    log_q = _log_gaussian_on(grid, mu, ls)
    return {
        "mu": float(mu),
        "sigma": float(ls.exp()),
        "q": log_q.exp(),
        "divergence": float(fit["div"][i]),
        "forward_kl": float(_kl(log_p, log_q)),
        "reverse_kl": float(_kl(log_q, log_p)),
    }


# ----------------------------------------------------------------------------- frames for a view


def grid_for(sep: float, weight: float, width: float, n: int | None = None) -> torch.Tensor:
    """An even grid, symmetric about 0 (the midpoint between the modes), wide enough for both
    modes (4 widths past each) and for the forward-KL student (4 of p's standard deviations
    past p's mean: its sigma then differs from p's by about 0.05%). By default n points with at
    least 4 per teacher width, 201 to 801 of them. (n,)."""
    mean = sep / 2 * (1 - 2 * weight)
    std = math.sqrt(width**2 + weight * (1 - weight) * sep**2)  # a mixture's variance
    half = max(sep / 2 + 4 * width, abs(mean) + 4 * std)
    if n is None:
        n = min(801, max(201, 2 * math.ceil(half / (width / 4)) + 1))
    return torch.linspace(-half, half, n, dtype=_DT)


def _r(v) -> float | list[float]:
    """Rounded for JSON; ``+ 0.0`` turns -0.0 into 0.0 so that no "-0.0000" is shown."""
    if isinstance(v, torch.Tensor) and v.dim():
        return [round(float(t), DIGITS) + 0.0 for t in v]
    return round(float(v), DIGITS) + 0.0


def kl_frames(
    sep: float,
    weight: float,
    width: float,
    betas: Sequence[float] = BETAS,
    n: int | None = None,
    steps: int = 100,
) -> dict:
    """Everything a view of forward vs reverse KL needs, for the teacher
    ``bimodal(sep, weight, width)`` and each β of ``betas`` (increasing, in [0, 1]).

    JSON-ready (floats rounded to 4 digits): ``x`` (n,) the grid, ``p`` (n,) the teacher,
    ``modes`` [-sep/2, sep/2], ``gap`` [lo, hi] the region between the modes more than
    ``GAP_SD`` widths from both (``None`` when the modes are too close to leave one), ``p_gap``
    the teacher's mass there, ``p_mean`` and ``p_std``; and ``frames``, one per β, each with
    ``beta``, ``q`` (n,), ``mu``, ``sigma``, ``div`` (D_β), ``fwd`` (KL(p||q)), ``rev``
    (KL(q||p)), ``gap`` (q's mass in the gap), ``left`` (q's mass left of the midpoint) and
    ``picks``: "left" or "right" when less than ``ONE_SIDE`` of q lies past the midpoint
    (mode-seeking), else "both" (mode-covering). All β are fitted in one batch.
    """
    betas = [float(b) for b in betas]
    if not betas or any(not 0 <= b <= 1 for b in betas):
        raise ValueError("betas must be in [0, 1]")
    if not (sep >= 0 and 0 <= weight <= 1 and width > 0):
        raise ValueError("need sep >= 0, 0 <= weight <= 1 and width > 0")
    grid = grid_for(sep, weight, width, n)
    log_p = _log_bimodal(grid, sep, weight, width)
    p = log_p.exp()
    fit = _fit(log_p, grid, torch.tensor(betas, dtype=_DT), _default_inits(p, grid), steps)
    lo, hi = -sep / 2 + GAP_SD * width, sep / 2 - GAP_SD * width
    in_gap = (grid > lo) & (grid < hi)  # empty when lo >= hi
    mean = (p * grid).sum()
    frames = []
    for i, b in enumerate(betas):
        f = _describe(log_p, grid, fit, i)
        q = f["q"]
        left = float(q[grid < 0].sum() + q[grid == 0].sum() / 2)
        picks = "left" if 1 - left < ONE_SIDE else "right" if left < ONE_SIDE else "both"
        frames.append(
            {
                "beta": b,
                "q": _r(q),
                "mu": _r(f["mu"]),
                "sigma": _r(f["sigma"]),
                "div": _r(f["divergence"]),
                "fwd": _r(f["forward_kl"]),
                "rev": _r(f["reverse_kl"]),
                "gap": _r(q[in_gap].sum()),
                "left": _r(left),
                "picks": picks,
            }
        )
    return {
        "sep": float(sep),
        "weight": float(weight),
        "width": float(width),
        "x": _r(grid),
        "p": _r(p),
        "modes": [_r(-sep / 2), _r(sep / 2)],
        "gap": [_r(lo), _r(hi)] if lo < hi else None,
        "p_gap": _r(p[in_gap].sum()),
        "p_mean": _r(mean),
        "p_std": _r((p * (grid - mean) ** 2).sum().sqrt()),
        "frames": frames,
    }
