r"""Normalized KD: KD's target and non-target parts, the non-target one normalised and given a
constant weight (Yang, Zeng, Li, Zhang, Yuan & Li 2023).

Zhendong Yang, Ailing Zeng, Zhe Li, Tianke Zhang, Chun Yuan, Yu Li, "From Knowledge
Distillation to Self-Knowledge Distillation: A Unified Approach with Normalized Loss and
Customized Soft Labels", ICCV 2023, arXiv:2303.13005, §3. Official code: yzd-v/cls_KD,
``mmcls/distillation/losses/nkd.py``, and its ImageNet config (``temp=1.0, gamma=1.5``, beside
the student's own cross-entropy at weight 1).

With t the labelled class, T the teacher's probabilities and S the student's, write each
non-target probability as the rest times a normalised one, :math:`T_i = (1 - T_t)\,\hat T_i`
with :math:`\hat T_i = T_i / (1 - T_t)` for i ≠ t (so :math:`\sum_{i \ne t} \hat T_i = 1`).
KD's cross-entropy then splits exactly in three,

.. math::
    -\sum_i T_i \log S_i = -T_t \log S_t - (1 - T_t) \log(1 - S_t)
        - (1 - T_t) \sum_{i \ne t} \hat T_i \log \hat S_i ,

and the last, the only part that carries how the teacher ranks the wrong classes, is weighted
by :math:`1 - T_t`: nearly nothing where the teacher is sure. NKD keeps the first, drops the
second and gives the normalised third a constant weight γ,

.. math::
    \mathcal{L}_{NKD} = -T_t \log S_t - \gamma \lambda^2 \sum_{i \ne t}
        \hat T_i^{\lambda} \log \hat S_i^{\lambda},

the normalised non-target distributions softened by a temperature λ (1 in the official
ImageNet runs). Both parts are cross-entropies, as the official code computes them: the second
differs from a KL by the teacher's normalised entropy, a constant of the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param
from .dkd import non_target_log_probs

# the official ImageNet config: temp=1.0, gamma=1.5, the student's CE at weight 1
NKD_TEMP = 1.0
NKD_GAMMA = 1.5


def target_part(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:  # fmt: skip
    r""":math:`-T_t \log S_t`: the student's log-probability of the labelled class, weighted by
    the teacher's probability of it (both at temperature 1). (B, K), (B,) -> the batch mean, or
    (B,) per example with ``reduction="none"``."""
    y = labels.unsqueeze(1)
    log_s = F.log_softmax(student_logits, dim=1).gather(1, y).squeeze(1)
    t = F.softmax(teacher_logits, dim=1).gather(1, y).squeeze(1).detach()
    per = -t * log_s
    return per if reduction == "none" else per.mean()


def non_target_part(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    labels: torch.Tensor, temp: float,
                    reduction: str = "mean") -> torch.Tensor:  # fmt: skip
    r""":math:`-\lambda^2 \sum_{i \ne t} \hat T_i^{\lambda} \log \hat S_i^{\lambda}`: the
    cross-entropy between the two models' normalised non-target distributions, each a softmax
    at λ over the K − 1 classes that are not the label (the target column removed,
    :func:`kdcore.losses.dkd.non_target_log_probs`). (B, K), (B,) -> the batch mean, or (B,)
    per example with ``reduction="none"``."""
    log_s = non_target_log_probs(student_logits, labels, temp)
    t = non_target_log_probs(teacher_logits, labels, temp).exp().detach()
    per = -(temp**2) * (t * log_s).sum(1)
    return per if reduction == "none" else per.mean()


def nkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             temp: float = NKD_TEMP, gamma: float = NKD_GAMMA) -> torch.Tensor:  # fmt: skip
    r"""The NKD loss (Yang et al. 2023, Eq. 8), as the official ``NKDLoss``:

    .. math:: \mathcal{L}_{NKD} = -T_t \log S_t - \gamma \lambda^2 \sum_{i \ne t}
        \hat T_i^{\lambda} \log \hat S_i^{\lambda}

    student_logits, teacher_logits: (B, K) with K ≥ 2; labels: (B,). Returns a scalar."""
    return target_part(student_logits, teacher_logits, labels) + gamma * non_target_part(
        student_logits, teacher_logits, labels, temp
    )


def kd_split(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             labels: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
    r"""KD's cross-entropy at temperature 1 in its three parts, per example (B,) each: the
    target term :math:`-T_t \log S_t`, the rest's :math:`-(1 - T_t)\log(1 - S_t)`, and the
    weighted normalised non-target term :math:`-(1 - T_t) \sum_{i \ne t} \hat T_i \log \hat S_i`;
    with the weight :math:`1 - T_t` and the whole cross-entropy. They sum to it exactly."""
    log_s = F.log_softmax(student_logits, dim=1)
    t = F.softmax(teacher_logits, dim=1)
    rest = 1 - t.gather(1, labels.unsqueeze(1)).squeeze(1)  # 1 − T_t
    log_rest = torch.logsumexp(log_s.masked_fill(F.one_hot(labels, log_s.shape[1]).bool(),
                                                 float("-inf")), dim=1)  # fmt: skip
    return {
        "target": target_part(student_logits, teacher_logits, labels, "none"),
        "rest": -rest * log_rest,
        "non_target": rest * non_target_part(student_logits, teacher_logits, labels, 1.0, "none"),
        "weight": rest,
        "cross_entropy": -(t * log_s).sum(1),
    }


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class NKDParams:
    temp: float = param(NKD_TEMP, "Temperature λ (non-target part)", 0.05, 100.0, 0.5,
                        "The official ImageNet runs: 1")  # fmt: skip
    gamma: float = param(NKD_GAMMA, "γ, weight of the non-target part", 0.0, 100.0, 0.5,
                         "The official ImageNet runs: 1.5")  # fmt: skip
    ce_weight: float = param(1.0, "Weight of the cross-entropy", 0.0, 10.0, 0.1)


class NKD(Distiller):
    """ce_weight·CE + NKD's target part + γ·its non-target part, each named."""

    def forward(self, student, teacher, batch):
        p = self.params
        s, t = student.logits, teacher["logits"]
        return {
            "ce": p.ce_weight * F.cross_entropy(s, batch.y),
            "target": target_part(s, t, batch.y),
            "non_target": p.gamma * non_target_part(s, t, batch.y, p.temp),
        }
