"""Similarity-preserving distillation: match which examples look alike (Tung & Mori 2019).

Frederick Tung, Greg Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019,
arXiv:1907.09682, §3. Reference implementation: RepDistiller ``distiller_zoo/SP.py`` ("verified by
original author"), which this module follows exactly.

The student is never compared with the teacher's activations, only with the teacher's B × B table
of how similar each pair of examples in the batch is. Channels, their number and their order do not
matter: any layer of the student can be matched with any layer of the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..method import Distiller, Probe, flat_feature_targets, param
from .kd import ce_and_kd

# γ, the weight of L_SP against cross-entropy (Tung & Mori 2019, §4.1, CIFAR-10 experiments; also
# mdistiller's CFG.SP.LOSS.FEAT_WEIGHT). For the caller; the loss carries no weight.
SP_GAMMA = 3000.0


def similarity_matrix(feat: torch.Tensor) -> torch.Tensor:
    r"""The row-normalised batch similarity :math:`G` (Tung & Mori 2019, §3, Eq. 1–2).

    .. math::
        \tilde G = Q Q^\top, \qquad G_{[i,:]} = \tilde G_{[i,:]} / \lVert \tilde G_{[i,:]} \rVert_2

    Q is the activation map reshaped to (B, C·H·W). Each *row of* :math:`\tilde G` (not of Q) is
    L2-normalised, so G is not symmetric in general. feat: (B, ...) any shape. Returns (B, B).
    A row of an all-zero example stays zero (its norm is replaced by 1 rather than divided by 0).
    """
    q = feat.reshape(feat.shape[0], -1)  # (B, C·H·W)
    g = q @ q.t()  # (B, B)
    norm = g.norm(dim=1, keepdim=True)  # (B, 1)
    return g / torch.where(norm > 0, norm, torch.ones_like(norm))


def similarity_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    r"""The similarity-preserving loss (Tung & Mori 2019, §3):

    .. math:: \mathcal{L}_{SP} = \frac{1}{B^2} \lVert G_T - G_S \rVert_F^2

    The paper's total is :math:`\mathcal{L}_{CE} + \gamma \mathcal{L}_{SP}` (:data:`SP_GAMMA`).
    student_feat: (B, ...), teacher_feat: (B, ...); only B must agree. Returns a scalar. The
    teacher side is not detached here.
    """
    b = student_feat.shape[0]
    diff = similarity_matrix(teacher_feat) - similarity_matrix(student_feat)  # (B, B)
    return diff.pow(2).sum() / (b * b)


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class SimilarityParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="Any shape: only the B × B similarities of the batch are compared.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    gamma: float = param(SP_GAMMA, "γ, weight of L_SP", 0.0, 1e6, 100.0, "Tung & Mori 2019, §4.1")
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class BatchRelation(Distiller):
    """CE (and optionally KD) plus one weighted term on how the examples of the batch relate in
    one pair of layers (``student_layer``, ``teacher_layer`` of the parameters). Stateless: the
    teacher's flattened features are cached; its relations depend on which examples share the
    batch, so they are computed per step. Subclasses name the part and compute it."""

    part = ""  # the loss part's name

    def __init__(self, params, probe: Probe):
        super().__init__(params)
        probe.student_shape(params.student_layer)  # fail early on a missing layer
        probe.teacher_shape(params.teacher_layer)

    def teacher_targets(self, out):
        return flat_feature_targets(out, self.params.teacher_layer)

    def relation(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        """The weighted term: student_feat (B, ...) as the layer gives it, teacher_feat (B, D)."""
        raise NotImplementedError

    def forward(self, student, teacher, batch):
        p = self.params
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts[self.part] = self.relation(student.features[p.student_layer], teacher["feat"])
        return parts


class SimilarityPreserving(BatchRelation):
    """CE (and optionally KD) plus γ·L_SP."""

    part = "sp"

    def relation(self, student_feat, teacher_feat):
        return self.params.gamma * similarity_loss(student_feat, teacher_feat)
