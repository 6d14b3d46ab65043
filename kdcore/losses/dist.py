r"""DIST: distilling the relations between predictions rather than the predictions themselves.

Tao Huang, Shan You, Fei Wang, Chen Qian and Chang Xu, "Knowledge Distillation from A Stronger
Teacher", NeurIPS 2022, arXiv:2205.10536, §3. Official code: hunto/DIST_KD (the loss in
hunto/image_classification_sota, ``lib/models/losses/dist_kd.py``).

A stronger teacher's predictions can be far from anything a small student can reach, and KL
asks for an exact match. DIST asks only that the student's probabilities go up and down with the
teacher's. With :math:`Y^S, Y^T \in \mathbb{R}^{B \times C}` the two models' class probabilities
at temperature τ for a batch, and the Pearson distance
:math:`d_p(u, v) = 1 - \rho_p(u, v)`,

.. math::
    \mathcal{L}_{inter} = \frac{\tau^2}{B} \sum_{i=1}^{B} d_p(Y^S_{i,:}, Y^T_{i,:}), \qquad
    \mathcal{L}_{intra} = \frac{\tau^2}{C} \sum_{j=1}^{C} d_p(Y^S_{:,j}, Y^T_{:,j}),

the inter-class relation (each example's probabilities over the classes, row by row) and the
intra-class relation (each class's probabilities over the batch, column by column), and the
student minimises :math:`\alpha\,\mathrm{CE} + \beta\,\mathcal{L}_{inter} +
\gamma\,\mathcal{L}_{intra}`. A Pearson correlation does not change when one side is scaled by a
positive number or shifted, so a student may be less (or more) sure than its teacher and still
match it exactly; KL cannot.

The official code adds 1e-8 to the product of the two norms, as :func:`pearson_distance` does;
its default weights are β = γ = 1 at τ = 1 (ImageNet); with a τ it multiplies both terms by τ².
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param

EPS = 1e-8  # the official code's, added to the product of the norms


def pearson_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − the Pearson correlation of each row of ``a`` with the same row of ``b``.

    a, b: (N, D). Returns (N,), in [0, 2]: 0 when a row of ``a`` is a positive multiple of the
    row of ``b`` plus a constant, 2 when a negative one.
    """
    a = a - a.mean(1, keepdim=True)  # (N, D), centred
    b = b - b.mean(1, keepdim=True)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + EPS)
    return 1 - cos


def relations(
    y_s: torch.Tensor, y_t: torch.Tensor, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_inter and L_intra (each times τ²) of two models' probabilities (B, C), as two scalars.
    The intra-class term compares columns over the batch, so it needs B ≥ 2 examples."""
    inter = pearson_distance(y_s, y_t).mean()  # over the B examples
    intra = pearson_distance(y_s.T, y_t.T).mean()  # over the C classes
    return tau * tau * inter, tau * tau * intra


def dist_parts(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_inter and L_intra (each times τ²) for a batch of logits (B, C): :func:`relations` of
    their softmaxes at τ."""
    y_s = F.softmax(student_logits / tau, dim=1)  # (B, C)
    y_t = F.softmax(teacher_logits / tau, dim=1)
    return relations(y_s, y_t, tau)


def toward_uniform(probs: torch.Tensor, a: float) -> torch.Tensor:
    """a·p + (1 − a)/C for probabilities (B, C): the same ranking of the classes, less sure for
    a < 1. Every row and every column is a positive multiple of the original plus a constant,
    so its Pearson distances to ``probs`` are 0, while its KL from them is not."""
    return a * probs + (1 - a) / probs.shape[1]


@dataclass(frozen=True)
class DISTParams:
    # the official code's ImageNet settings (β = γ = 1, τ = 1)
    beta: float = param(1.0, "β, weight of the inter-class relation", 0.0, 100.0, 0.5)
    gamma: float = param(1.0, "γ, weight of the intra-class relation", 0.0, 100.0, 0.5)
    tau: float = param(1.0, "Temperature τ", 0.05, 100.0, 0.5)


class DIST(Distiller):
    """CE + β·L_inter + γ·L_intra, each part named (Huang et al. 2022, §3); CE has weight 1 (the
    paper's α) as in the official code."""

    def forward(self, student, teacher, batch):
        p = self.params
        inter, intra = dist_parts(student.logits, teacher["logits"], p.tau)
        return {
            "ce": F.cross_entropy(student.logits, batch.y),
            "inter": p.beta * inter,
            "intra": p.gamma * intra,
        }
