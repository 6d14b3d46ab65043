r"""Transformed teacher matching: the temperature on the teacher alone (Zheng & Yang 2024).

Kaixiang Zheng and En-Hui Yang, "Knowledge Distillation Based on Transformed Teacher Matching",
ICLR 2024, arXiv:2402.11148. Official code: zkxufo/TTM, ``distiller_zoo/ttm.py`` and
``distiller_zoo/wttm.py`` (``--ttm_l``, the exponent γ), ``helper/loops.py`` (the student's loss
``r·CE + b·TTM``) and its README's command (``--distill ttm --ttm_l 0.1 -r 1 -b 45``).

KD softens both models' outputs with one temperature T. TTM keeps it on the teacher only: the
teacher's probabilities raised to the power γ = 1/T and renormalised, which is exactly the
softmax of its logits at T, are matched by the student's *plain* softmax:

.. math::
    \tilde p_t = \frac{p_t^{\gamma}}{\sum_j p_{t,j}^{\gamma}} = \mathrm{softmax}(v/T), \qquad
    \mathcal L_{TTM} = \mathrm{KL}\big(\tilde p_t \,\big\|\, p_s\big), \qquad
    p_s = \mathrm{softmax}(z).

Writing the student's tempered softmax as the same power transform of :math:`p_s` gives, for
every example and every T > 0 (:func:`decomposition`; Zheng & Yang 2024, §3),

.. math::
    \mathcal L_{TTM} = T\,\mathrm{KL}\big(\tilde p_t \,\|\, \mathrm{softmax}(z/T)\big)
        - (T - 1)\,H_{1/T}(p_s) + (T - 1)\,H(\tilde p_t),

with :math:`H_\alpha(p) = \frac{1}{1-\alpha}\log\sum_j p_j^\alpha` the Rényi entropy of order α
and H Shannon's. The last term does not depend on the student, so for T > 1 TTM is KD (scaled by
T rather than T²) *plus a reward for a less certain student*: the Rényi entropy of its own,
untempered prediction. That inherent regulariser is the paper's explanation of why TTM beats KD.

Weighted TTM (WTTM) weights each example's term by the power sum
:math:`U_\gamma(p_t) = \sum_j p_{t,j}^{\gamma}`, the normaliser above: 1 for a one-hot teacher,
:math:`K^{1-\gamma}` for a uniform one, so the images where the teacher hesitates weigh more.
The batch mean of :math:`U_\gamma(p_t)\,\mathcal L_{TTM}` is the official ``WTTM.forward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param

# the official README's command: --ttm_l 0.1 (T = 10), -b 45, -r 1 (vgg13 -> vgg8, CIFAR-100)
TTM_T, TTM_BETA = 10.0, 45.0


def renyi_entropy(logits: torch.Tensor, order: float) -> torch.Tensor:
    r"""The Rényi entropy of order α of softmax(logits), per row:
    :math:`H_\alpha(p) = \frac{1}{1-\alpha}\log\sum_j p_j^\alpha`, Shannon's H at α = 1 (its
    limit). logits: (..., K) -> (...), in nats, between 0 and log K."""
    log_p = F.log_softmax(logits, dim=-1)
    if abs(order - 1.0) < 1e-9:
        return -(log_p.exp() * log_p).sum(-1)
    return torch.logsumexp(order * log_p, dim=-1) / (1.0 - order)


def power_sum(teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    r"""WTTM's weight :math:`U_{1/T}(p_t) = \sum_j p_{t,j}^{1/T}` per row, from the logits
    (exp of a log-sum-exp, as stable as the softmax). (..., K) -> (...), between 1 and
    :math:`K^{1-1/T}` for T ≥ 1."""
    return torch.logsumexp(F.log_softmax(teacher_logits, dim=-1) / T, dim=-1).exp()


def ttm_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    r"""Each example's :math:`\mathrm{KL}(\mathrm{softmax}(v/T) \,\|\, \mathrm{softmax}(z))`, as
    the official code: the teacher's probabilities to the power 1/T, renormalised (here the
    softmax at T, the same numbers), against the student's log-softmax at T = 1.
    (B, K), (B, K) -> (B,)."""
    target = F.softmax(teacher_logits / T, dim=-1)
    return F.kl_div(F.log_softmax(student_logits, dim=-1), target, reduction="none").sum(-1)


def ttm_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float, weighted: bool = False
) -> torch.Tensor:
    r""":math:`\frac1B\sum_b w_b\,\mathrm{KL}(\tilde p_t^{(b)} \,\|\, p_s^{(b)})` with
    :math:`w_b = 1` (TTM) or :math:`U_{1/T}(p_t^{(b)})` (WTTM, ``weighted``; the weight is the
    teacher's and carries no gradient). Scalar; zero only where the student's plain softmax
    equals the teacher's at T."""
    terms = ttm_terms(student_logits, teacher_logits, T)
    if weighted:
        terms = power_sum(teacher_logits.detach(), T) * terms
    return terms.mean()


def decomposition(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float
) -> dict[str, torch.Tensor]:
    r"""Each example's TTM term and the three parts it equals (module docstring):
    ``kd`` = T·KL(softmax(v/T) ‖ softmax(z/T)), ``renyi`` = :math:`H_{1/T}(p_s)`,
    ``teacher_entropy`` = :math:`H(\mathrm{softmax}(v/T))` and ``ttm``; ``ttm`` = ``kd`` −
    (T − 1)·``renyi`` + (T − 1)·``teacher_entropy``. Each (B,)."""
    log_q_s = F.log_softmax(student_logits / T, dim=-1)
    target = F.softmax(teacher_logits / T, dim=-1)
    return {
        "ttm": ttm_terms(student_logits, teacher_logits, T),
        "kd": T * F.kl_div(log_q_s, target, reduction="none").sum(-1),
        "renyi": renyi_entropy(student_logits, 1.0 / T),
        "teacher_entropy": renyi_entropy(teacher_logits / T, 1.0),
    }


@dataclass(frozen=True)
class TTMParams:
    T: float = param(TTM_T, "Teacher temperature T (γ = 1/T)", 0.05, 100.0, 0.5,
                     "On the teacher only; the official command's γ = 0.1: T = 10")  # fmt: skip
    beta: float = param(TTM_BETA, "β, weight of the TTM term", 0.0, 1000.0, 1.0,
                        "The official command's: 45 (the cross-entropy at 1)")  # fmt: skip
    ce_weight: float = param(1.0, "Weight of the cross-entropy", 0.0, 10.0, 0.1)
    weighted: bool = param(False, "Weight each image (WTTM)",
                           help="By the teacher's power sum Σ p^(1/T): its doubt")  # fmt: skip


class TTM(Distiller):
    """ce_weight·CE + β·(W)TTM, each part named (Zheng & Yang 2024)."""

    def forward(self, student, teacher, batch):
        p = self.params
        return {
            "ce": p.ce_weight * F.cross_entropy(student.logits, batch.y),
            "ttm": p.beta * ttm_loss(student.logits, teacher["logits"], p.T, p.weighted),
        }
