r"""Logit standardisation: KD on z-scored logits (Sun, Ren, Li, Wang & Cao 2024).

Shangquan Sun, Wenqi Ren, Jingzhi Li, Rui Wang and Xiaochun Cao, "Logit Standardization in
Knowledge Distillation", CVPR 2024, arXiv:2403.01427. Official code:
sunshangquan/logit-standardization-KD, ``mdistiller/distillers/KD.py`` (``normalize`` and
``kd_loss`` with ``logit_stand``) and ``tools/train.py`` (``--logit-stand --base-temp 2
--kd-weight 9``).

KD softens both models' logits with one shared temperature, so a student can only match its
teacher exactly by matching the *size* of the teacher's logits too: their range and spread,
which a small student may not reach. Sun et al. standardise each example's logits first,

.. math::
    \mathcal{Z}(z) = \frac{z - \bar z}{\sigma(z)}, \qquad
    \mathcal{L} = \tau^2 \, \mathrm{KL}\big(\mathrm{softmax}(\mathcal{Z}(v)/\tau) \,\big\|\,
        \mathrm{softmax}(\mathcal{Z}(z)/\tau)\big),

with :math:`\bar z` and :math:`\sigma(z)` the mean and standard deviation of one example's K
logits, v the teacher's, z the student's, τ a shared base temperature. Each model in effect gets
its own temperature, :math:`\tau\,\sigma`, per example (the paper's "weighted standard deviation
of logit" as temperature), and only the *relations* between the logits are taught: adding a
constant to a row of logits, or multiplying it by a positive number, leaves the loss unchanged.

As the official code: the standard deviation is the unbiased one (``Tensor.std``), with 1e-7
added to it; the student minimises :math:`0.1\,\mathrm{CE} + 9 \cdot \tau^2 \mathrm{KL}` at
τ = 2 (mdistiller's CE weight 0.1; ``--kd-weight 9 --base-temp 2``, the CIFAR-100 runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param
from .kd import kd_loss

EPS = 1e-7  # the official code's, added to the standard deviation


def standardise(logits: torch.Tensor) -> torch.Tensor:
    """Each row's z-score: (z − mean) / (std + 1e-7), the unbiased std over the last dimension
    as ``Tensor.std``. logits: (..., K) -> (..., K), every row of mean 0 and std about 1."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + EPS)


def zscore_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float
) -> torch.Tensor:
    r""":math:`\tau^2\,\mathrm{KL}(\mathrm{softmax}(\mathcal{Z}(v)/\tau) \,\|\,
    \mathrm{softmax}(\mathcal{Z}(z)/\tau))`, the batch mean (Sun et al. 2024,
    Algorithm 1): :func:`kdcore.losses.kd.kd_loss` of the standardised logits.

    student_logits, teacher_logits: (B, K) with K ≥ 2. Returns a scalar. Unchanged when a row of
    either side is shifted or scaled by a positive number."""
    return kd_loss(standardise(student_logits), standardise(teacher_logits), tau)


@dataclass(frozen=True)
class ZScoreParams:
    # the official code's CIFAR-100 settings: --base-temp 2 --kd-weight 9, mdistiller's CE 0.1
    tau: float = param(2.0, "Base temperature τ", 0.05, 100.0, 0.5)
    kd_weight: float = param(9.0, "Weight of the z-scored KD term", 0.0, 100.0, 0.5)
    ce_weight: float = param(0.1, "Weight of the cross-entropy", 0.0, 10.0, 0.05)


class ZScoreKD(Distiller):
    """ce_weight·CE + kd_weight·τ²·KL on z-scored logits, each part named (Sun et al. 2024)."""

    def forward(self, student, teacher, batch):
        p = self.params
        return {
            "ce": p.ce_weight * F.cross_entropy(student.logits, batch.y),
            "kd": p.kd_weight * zscore_kd_loss(student.logits, teacher["logits"], p.tau),
        }
