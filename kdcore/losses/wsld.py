r"""Weighted soft label distillation, WSLD (Zhou, Song, Chen, Zhou, Wang, Yuan & Zhang 2021): KD's
soft term weighted per example by how the student does against the teacher on the label.

Helong Zhou, Liangchen Song, Jiajie Chen, Ye Zhou, Guoli Wang, Junsong Yuan, Qian Zhang,
"Rethinking Soft Labels for Knowledge Distillation: A Bias-Variance Tradeoff Perspective",
ICLR 2021, arXiv:2102.00650. Official code: bellymonster/Weighted-Soft-Label-Distillation,
``knowledge_distiller.py`` (ImageNet: T = 2, α = 2.5, beside the cross-entropy at weight 1).

The paper reads soft labels as trading bias for variance, and finds the trade going the wrong
way on *regularization samples*: images on which the teacher, judged by the label, does worse
than the student. With :math:`\mathcal{L}_s = -\log S_y` and :math:`\mathcal{L}_t = -\log T_y`
the two models' cross-entropies on the label (at temperature 1, without gradient), each
example's soft term is weighted by

.. math:: w = 1 - \exp\!\big(-\mathcal{L}_s / \mathcal{L}_t\big),

near 1 where the student is far behind the teacher, below :math:`1 - 1/e \approx 0.63` where it
is already ahead, towards 0 where it is far ahead; and

.. math:: \mathcal{L} = \mathrm{CE}(y, S) + \alpha\,T^2\,\frac1B\sum_b w_b\,
    \Big(-\sum_i T^{T}_{b,i} \log S^{T}_{b,i}\Big),

the soft term a cross-entropy at temperature T, as the official code computes it (a KL up to
the teacher's entropy, a constant of the teacher's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param

# the official ImageNet code: T = 2, α = 2.5, the cross-entropy at weight 1
WSLD_T = 2.0
WSLD_ALPHA = 2.5
EPS = 1e-7  # the code's guard in L_s / (L_t + ε)
AHEAD = 1 - math.exp(-1)  # the weight where the student is exactly as good as the teacher


def sample_weights(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:  # fmt: skip
    r"""Each example's weight :math:`1 - \exp(-\mathcal{L}_s / \mathcal{L}_t)` (B,), from the
    two models' cross-entropies on the label at temperature 1, without gradient."""
    ce_s = F.cross_entropy(student_logits.detach(), labels, reduction="none")
    ce_t = F.cross_entropy(teacher_logits.detach(), labels, reduction="none")
    return 1 - torch.exp(-(ce_s / (ce_t + EPS)).clamp_min(0))


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       T: float) -> torch.Tensor:  # fmt: skip
    """Per example (B,): the cross-entropy between the teacher's and the student's softmax at
    temperature T."""
    t = F.softmax(teacher_logits / T, dim=1)
    return -(t * F.log_softmax(student_logits / T, dim=1)).sum(1)


def wsld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              T: float = WSLD_T, weighted: bool = True) -> torch.Tensor:  # fmt: skip
    r""":math:`T^2\,\frac1B\sum_b w_b\,\mathrm{CE}_T(T_b, S_b)`, the weighted soft term before
    α; ``weighted=False`` sets every w to 1 (KD's soft term as a cross-entropy). (B, K),
    (B,) -> a scalar."""
    soft = soft_cross_entropy(student_logits, teacher_logits, T)
    if weighted:
        soft = sample_weights(student_logits, teacher_logits, labels) * soft
    return T**2 * soft.mean()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class WSLDParams:
    T: float = param(WSLD_T, "Temperature T", 0.05, 100.0, 0.5, "The official ImageNet run: 2")
    alpha: float = param(WSLD_ALPHA, "α, weight of the soft term", 0.0, 100.0, 0.25,
                         "The official ImageNet run: 2.5 (the cross-entropy at 1)")  # fmt: skip
    weighted: bool = param(True, "Weight each example", help="Off: every weight 1, the ablation")


class WSLD(Distiller):
    """CE + α·the weighted soft term. Each epoch records the weights' mean over the training
    images and the share on which the student was ahead of the teacher (w below 1 − 1/e)."""

    def __init__(self, params: WSLDParams):
        super().__init__(params)
        self._seen = 0
        self.register_buffer("sums", torch.zeros(2), persistent=False)

    def forward(self, student, teacher, batch):
        p = self.params
        s, t = student.logits, teacher["logits"]
        with torch.no_grad():
            w = sample_weights(s, t, batch.y)
            self._seen += len(batch.y)
            self.sums += torch.stack([w.sum(), (w < AHEAD).sum().float()])
        return {
            "ce": F.cross_entropy(s, batch.y),
            "soft": p.alpha * wsld_loss(s, t, batch.y, p.T, p.weighted),
        }

    def epoch_summary(self) -> dict:
        seen, (total, ahead) = self._seen, self.sums.tolist()
        self._seen = 0
        self.sums.zero_()
        if not seen:
            return {}
        return {"mean_weight": round(total / seen, 5), "student_ahead": round(ahead / seen, 5)}
