"""Probabilistic knowledge transfer: match who is whose neighbour (Passalis & Tefas 2018).

Nikolaos Passalis, Anastasios Tefas, "Learning Deep Representations with Probabilistic Knowledge
Transfer", ECCV 2018, arXiv:1803.10837, §3. Reference code: the authors' ``nn/pkt.py``
(``cosine_similarity_loss``), copied unchanged by RepDistiller ``distiller_zoo/PKT.py``.

Each example's features define, through a kernel, a probability distribution over the *other*
examples of the batch: how likely each one is its neighbour. The student learns the teacher's
distributions, by KL divergence, example by example. Nothing ties a dimension of the student to
one of the teacher's, so the two layers may have any sizes; the cosine kernel makes each
example's distribution blind to the length of its feature vector.

The paper's equation leaves an example out of its own distribution (k ≠ i in Eq. 5, j ≠ i in
Eq. 9). The authors' code keeps the pair of an example with itself, whose cosine kernel is 1,
the largest any pair can have; :class:`PKTParams` ``self_pairs`` chooses (the paper's by
default). Both are averaged over the B² pairs, as the authors' code does (the paper writes a
sum), so the weight β means the same in both and RepDistiller's β = 30,000 applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import param
from .similarity import BatchRelation

# β, the weight of L_PKT against cross-entropy, from RepDistiller's scripts/run_cifar_distill.sh
# (--distill pkt -a 0 -b 30000), the benchmark whose CIFAR-100 table the pkt-mnist preset quotes.
PKT_WEIGHT = 30000.0
# inside the logarithm, as in the authors' code: a kernel of 0 (two opposite vectors) stays finite
PKT_EPS = 1e-7


def cosine_kernel(feat: torch.Tensor) -> torch.Tensor:
    r"""The cosine kernel between every pair of examples (Passalis & Tefas 2018, Eq. 10).

    .. math:: K(a, b) = \tfrac12 \Big( \frac{a^\top b}{\lVert a \rVert_2 \lVert b \rVert_2}
        + 1 \Big) \in [0, 1]

    feat: (B, ...) any shape, flattened per example. Returns (B, B), symmetric, 1 on the
    diagonal. An all-zero example has cosine 0 with every example, itself included (K = ½).
    """
    q = F.normalize(feat.reshape(feat.shape[0], -1), dim=1)  # (B, D); a zero row stays zero
    return (q @ q.t() + 1.0) / 2.0


def neighbour_probabilities(feat: torch.Tensor, self_pairs: bool = False) -> torch.Tensor:
    r"""Each example's distribution over its neighbours in the batch (Eq. 5 and 7).

    .. math:: p_{j|i} = \frac{K(x_j, x_i)}{\sum_{k \ne i} K(x_k, x_i)}

    Row i is example i's distribution over j, so every row sums to 1. The diagonal is 0 as in
    the paper; with ``self_pairs`` the sum runs over every k and the diagonal is kept, as in the
    authors' code. feat: (B, ...). Returns (B, B). A row with no neighbour of any weight (a batch
    of one, or a pair of opposite vectors) stays zero rather than dividing 0 by 0.
    """
    k = cosine_kernel(feat)
    if not self_pairs:
        k = k * (1.0 - torch.eye(k.shape[0], dtype=k.dtype, device=k.device))
    total = k.sum(dim=1, keepdim=True)  # (B, 1)
    return k / torch.where(total > 0, total, torch.ones_like(total))


def pkt_loss(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    self_pairs: bool = False,
    eps: float = PKT_EPS,
) -> torch.Tensor:
    r"""The PKT loss: KL divergence from the teacher's neighbour distributions to the student's
    (Passalis & Tefas 2018, Eq. 9), averaged over the B² pairs.

    .. math:: \mathcal{L}_{PKT} = \frac{1}{B^2} \sum_{i} \sum_{j \ne i}
        p_{j|i} \log \frac{p_{j|i} + \epsilon}{q_{j|i} + \epsilon}

    p from the teacher, q from the student (:func:`neighbour_probabilities`); with
    ``self_pairs`` the sum takes j = i too. student_feat: (B, ...), teacher_feat: (B, ...);
    only B must agree. Returns a scalar. The paper's total is
    :math:`\mathcal{L}_{CE} + \beta \mathcal{L}_{PKT}` (:data:`PKT_WEIGHT`).
    """
    p = neighbour_probabilities(teacher_feat, self_pairs)  # (B, B)
    q = neighbour_probabilities(student_feat, self_pairs)  # (B, B)
    b = p.shape[0]
    # x·log y with 0·log 0 = 0: the diagonal's and an empty row's terms vanish even at eps = 0
    return (torch.xlogy(p, p + eps) - torch.xlogy(p, q + eps)).sum() / (b * b)


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class PKTParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="Any shape: only each example's cosine neighbours in the batch are compared.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    weight: float = param(
        PKT_WEIGHT, "β, weight of L_PKT", 0.0, 1e6, 1000.0, "RepDistiller: 30,000"
    )  # fmt: skip
    self_pairs: bool = param(
        False, "Self-pairs",
        help="Off: the paper's equation (k ≠ i). On: the authors' code, where each example's "
        "pair with itself has the largest kernel, 1.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class PKT(BatchRelation):
    """CE (and optionally KD) plus β·L_PKT."""

    part = "pkt"

    def relation(self, student_feat, teacher_feat):
        p = self.params
        return p.weight * pkt_loss(student_feat, teacher_feat, p.self_pairs)
