r"""Decoupled knowledge distillation: KD split into target and non-target parts (Zhao et al. 2022).

Borui Zhao, Quan Cui, Renjie Song, Yiyu Qiu, Jiajun Liang, "Decoupled Knowledge Distillation",
CVPR 2022, arXiv:2203.08679, §3.1 (Eq. 1–7). Reference code: megvii-research/mdistiller,
``mdistiller/distillers/DKD.py``.

With t the labelled class, write the softened distribution :math:`p = \mathrm{softmax}(z / T)` as
a binary split :math:`b = [p_t, 1 - p_t]` (Eq. 2) and the distribution over the other classes,
renormalised, :math:`\hat p_i = p_i / (1 - p_t)` for i ≠ t (Eq. 3). Then, exactly (Eq. 4–7),

.. math::
    \mathrm{KL}(p^{\mathcal T} \| p^{\mathcal S})
    = \underbrace{\mathrm{KL}(b^{\mathcal T} \| b^{\mathcal S})}_{\mathrm{TCKD}}
    + (1 - p_t^{\mathcal T}) \underbrace{\mathrm{KL}(\hat p^{\mathcal T} \|
        \hat p^{\mathcal S})}_{\mathrm{NCKD}}

so classical KD down-weights the non-target knowledge exactly when the teacher is confident.
DKD gives the two parts their own weights: :math:`\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}`.

Departures of the reference code, and how this module differs from it:

* Both parts are multiplied by T² and averaged over the batch (``* temperature**2 /
  target.shape[0]``), like Hinton's KD term; the paper's equations have no T². Followed here.
* mdistiller gets the non-target distribution by subtracting 1000 from the target logit (after
  dividing by T) and taking a softmax over all K classes. That equals the renormalised
  :math:`\hat p` up to a weight of :math:`e^{-1000}` on the target class, which underflows to 0,
  unless logits / T differ by about 1000 (e.g. T = 0.05 with logits 50 apart), when the target
  class leaks back in. Here the target column is removed instead, which is exact for any logits.
* mdistiller takes ``torch.log`` of the binary probabilities, which is -inf when one underflows;
  here they come from log-sum-exps, so TCKD stays finite for extreme logits.

With these definitions :func:`kd_per_example` = TCKD + (1 - :func:`teacher_target_prob`) · NCKD
holds per example, to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param

# mdistiller's CIFAR-100 settings (CFG.DKD: ALPHA=1.0, BETA=8.0, T=4.0); Zhao et al. 2022, §4 tune β
# per teacher-student pair. For the caller; the loss takes them as arguments.
DKD_ALPHA = 1.0
DKD_BETA = 8.0
DKD_T = 4.0


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_i p_i (log p_i - log q_i) over the last dimension, from log-probabilities.

    (..., K) -> (...).
    """
    return F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)


def _split(logits: torch.Tensor, labels: torch.Tensor, T: float):
    """Log-probabilities of the binary split (B, 2) and of the non-target classes (B, K-1)."""
    z = logits / T  # (B, K)
    b, k = z.shape
    target = F.one_hot(labels, k).bool()  # (B, K)
    z_other = z[~target].reshape(b, k - 1)  # (B, K-1): the row without its target logit
    lse_all = torch.logsumexp(z, dim=1)  # (B,)
    log_pt = z.gather(1, labels.unsqueeze(1)).squeeze(1) - lse_all  # (B,)
    log_rest = torch.logsumexp(z_other, dim=1) - lse_all  # (B,): log(1 - p_t), no cancellation
    log_binary = torch.stack([log_pt, log_rest], dim=1)  # (B, 2)
    return log_binary, F.log_softmax(z_other, dim=1)


def non_target_log_probs(logits: torch.Tensor, labels: torch.Tensor, T: float) -> torch.Tensor:
    r"""log p̂: the softened prediction over the K − 1 non-target classes, renormalised (the
    distribution NCKD compares). logits: (B, K) with K >= 2; labels: (B,). Returns (B, K − 1),
    each row without its target class, the others in order."""
    return _split(logits, labels, T)[1]


def dkd_parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""TCKD and NCKD, each times T² (Zhao et al. 2022, Eq. 7, scaled as in mdistiller).

    .. math::
        \mathrm{TCKD} = T^2\,\mathrm{KL}(b^{\mathcal T} \| b^{\mathcal S}), \qquad
        \mathrm{NCKD} = T^2\,\mathrm{KL}(\hat p^{\mathcal T} \| \hat p^{\mathcal S})

    student_logits, teacher_logits: (B, K) with K >= 2; labels: (B,) int64. reduction "mean"
    returns two scalars (batch means), "none" two (B,) tensors. NCKD is 0 when K = 2. The teacher
    side is not detached here.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    s_bin, s_other = _split(student_logits, labels, T)
    t_bin, t_other = _split(teacher_logits, labels, T)
    tckd = _kl_rows(t_bin, s_bin) * (T * T)  # (B,)
    nckd = _kl_rows(t_other, s_other) * (T * T)  # (B,)
    if reduction == "mean":
        return tckd.mean(), nckd.mean()
    return tckd, nckd


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    T: float,
) -> torch.Tensor:
    r""":math:`\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}` (Zhao et al. 2022, Eq. 8), batch mean.

    α = 1, β = 1 - p_t per example would give back KD exactly; a fixed β larger than 1 (the paper
    uses up to 8) lets the non-target knowledge through even when the teacher is confident.
    Shapes as :func:`dkd_parts`. Returns a scalar; cross-entropy on the labels is the caller's.
    """
    tckd, nckd = dkd_parts(student_logits, teacher_logits, labels, T)
    return alpha * tckd + beta * nckd


def kd_per_example(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float
) -> torch.Tensor:
    r""":math:`T^2\,\mathrm{KL}(p^T \| q^T)` for each example: (B, K) -> (B,).

    Its batch mean is :func:`kdcore.losses.kd.kd_loss`.
    """
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, K)
    log_p = F.log_softmax(teacher_logits / T, dim=-1)  # (B, K)
    return _kl_rows(log_p, log_q) * (T * T)


def teacher_target_prob(
    teacher_logits: torch.Tensor, labels: torch.Tensor, T: float
) -> torch.Tensor:
    r""":math:`p_t^{\mathcal T}`: the teacher's probability of the labelled class at temperature T.

    teacher_logits: (B, K), labels: (B,) -> (B,). The weight :math:`1 - p_t` that KD puts on NCKD.
    """
    log_p = F.log_softmax(teacher_logits / T, dim=-1)  # (B, K)
    return log_p.gather(1, labels.unsqueeze(1)).squeeze(1).exp()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class DKDParams:
    alpha: float = param(DKD_ALPHA, "α, weight of TCKD", 0.0, 100.0, 0.5, "mdistiller: 1")
    beta: float = param(
        DKD_BETA, "β, weight of NCKD", 0.0, 100.0, 0.5,
        help="mdistiller: 8. KD itself is β = 1 − p_t per example, small when the teacher is sure.",
    )  # fmt: skip
    T: float = param(DKD_T, "Temperature T", 0.05, 100.0, 0.5)


class DKD(Distiller):
    """CE + α·TCKD + β·NCKD, each part named (Zhao et al. 2022, Eq. 8). CE has weight 1 as in
    mdistiller (CFG.DKD.CE_WEIGHT). mdistiller also ramps the DKD term up linearly over its first
    20 epochs (``min(epoch / 20, 1)``) for 240-epoch CIFAR runs; the short runs here have no
    warm-up, which would leave DKD almost off for all of them."""

    def forward(self, student, teacher, batch):
        p = self.params
        tckd, nckd = dkd_parts(student.logits, teacher["logits"], batch.y, p.T)
        return {
            "ce": F.cross_entropy(student.logits, batch.y),
            "tckd": p.alpha * tckd,
            "nckd": p.beta * nckd,
        }
