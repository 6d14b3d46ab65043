r"""Inter-channel correlation (ICKD): the student learns which of the teacher's channels fire
together and which go their own way (Liu et al. 2021).

Li Liu, Qingle Huang, Sihao Lin, Hongwei Xie, Bing Wang, Xiaojun Chang, Xiaodan Liang,
"Exploring Inter-Channel Correlation for Diversity-preserved Knowledge Distillation", ICCV 2021,
arXiv:2202.03680. Reference code: the authors' CIFAR-100 code (ADLab-AutoDrive/ICKD,
``Cifar100/distiller_zoo/ICKD.py`` and ``train_student.py``, built on the CRD benchmark's), whose
figures the ickd-mnist preset quotes.

A feature map F (c channels × h·w positions) gives a c × c matrix of inner products between its
channels, F·Fᵀ: large where two channels respond at the same places (the paper's *homology*),
near zero where they do not (its *diversity*). The student's map first goes through a learned 1 ×
1 convolution and BatchNorm to the teacher's channel count (the code's ``Embed``), and then must
give the teacher's matrix. Nothing ties a student channel to a teacher channel by position but
that learned map, and the matrix does not depend on the map's size, so the two maps may differ in
width, height and channel count.

As the official code computes it (the paper's figures come from it): each row of each matrix is
L2-normalised, and the squared differences are summed and divided by c and the batch size,

.. math::
    G(F) = \mathrm{rownorm}\big(F F^\top\big), \qquad
    \mathcal L_{ICKD} = \frac{1}{c\,B} \sum_{b=1}^{B} \big\lVert G(C(F^S_b)) - G(F^T_b)
        \big\rVert_F^2

with C the student's embedding (1 × 1 convolution without bias, BatchNorm). The CIFAR runs take
the last stage's output, before pooling (the benchmark's ``feat[-2]``), and weigh the term β = 2.5
beside cross-entropy at weight 1: the README's "ICKD-C (w/o KL)" (``-a 0 -b 2.5``); with KD,
``-a 1 -b 2.5``, cross-entropy and KD (T = 4, times T²) both at weight 1. This library splits CE
and KD as (1 − α) and α, so the official balance with KD is α = 0.5 and β = 1.25: the same sum
halved (the same direction at half the step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param
from .kd import ce_and_kd

ICKD_WEIGHT = 2.5  # β in the official README's CIFAR-100 command (-b 2.5)


def icc_gram(feat: torch.Tensor) -> torch.Tensor:
    """The raw inter-channel Gram matrix F·Fᵀ of each example's map: (B, C, H, W) -> (B, C, C),
    entry (i, j) the sum over positions of channel i times channel j. A flat (B, C) layer counts
    as a single position."""
    f = feat.reshape(feat.shape[0], feat.shape[1], -1)  # (B, C, H·W)
    return f @ f.transpose(1, 2)


def icc_matrix(feat: torch.Tensor) -> torch.Tensor:
    """ICKD's inter-channel correlation of each example: :func:`icc_gram` with every row
    L2-normalised (an all-zero row, a channel that never fires, stays zero). (B, C, H, W) ->
    (B, C, C); row i is channel i's inner products with all channels, scaled to length 1."""
    return F.normalize(icc_gram(feat), dim=2)


def icc_loss(student_icc: torch.Tensor, teacher_icc: torch.Tensor) -> torch.Tensor:
    r"""The official loss between two batches of correlation matrices, (B, C, C) each:

    .. math:: \frac{1}{C\,B}\sum_b \lVert G^S_b - G^T_b \rVert_F^2

    Zero when they agree; at most 4 per row (two unit rows opposite), so at most 4 in all."""
    b, c = student_icc.shape[0], student_icc.shape[1]
    return (student_icc - teacher_icc).pow(2).sum() / (c * b)


def channel_spectrum(icc: torch.Tensor) -> torch.Tensor:
    """How many independent patterns a layer's channels carry, whatever their order: the
    eigenvalues of the symmetric Gram, each example's divided by its trace, averaged over the
    batch, sorted from largest, summing to 1. (B, C, C) raw Grams (:func:`icc_gram`) -> (C,).
    A single large value: the channels are copies of one another (homology); a flat spectrum:
    every channel its own (diversity)."""
    g = icc.double()
    trace = g.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-12)  # (B,)
    mean = (g / trace[:, None, None]).mean(0)
    vals = torch.linalg.eigvalsh((mean + mean.T) / 2).clamp_min(0.0).flip(0)
    return (vals / vals.sum().clamp_min(1e-12)).float()


def effective_rank(spectrum: torch.Tensor) -> float:
    """exp of the entropy of a spectrum that sums to 1 (Roy & Vetterli 2007): 1 when one pattern
    carries everything, the channel count when all carry the same."""
    p = spectrum[spectrum > 0].double()
    return float(torch.exp(-(p * p.log()).sum()))


class Embed(nn.Module):
    """The student's 1 × 1 convolution (no bias) and BatchNorm to the teacher's channel count, as
    the official ``Embed``; a flat (B, C) layer through a linear map and BatchNorm1d."""

    def __init__(self, c_in: int, c_out: int, spatial: bool = True):
        super().__init__()
        if spatial:
            self.map, self.norm = nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        else:
            self.map, self.norm = nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.map(x))


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class ICKDParams:
    student_layer: str = param(
        "conv2", "Student layer", choices="student features",
        help="Its channels' correlations are matched: the last stage's output in the official "
        "code (stage3 for the CIFAR ResNets here).",
    )  # fmt: skip
    teacher_layer: str = param("conv2", "Teacher layer", choices="teacher features")
    beta: float = param(ICKD_WEIGHT, "β, weight of ICKD", 0.0, 1000.0, 0.25, "2.5 officially")
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(
        0.0, "α, weight of KD", 0.0, 1.0, 0.05,
        "(1 − α) goes to CE. 0: the README's 'w/o KL'; its run with KD is α = 0.5, β = 1.25.",
    )  # fmt: skip


class ICKD(Distiller):
    """CE (and optionally KD) plus β·ICKD. Owns the student's embedding; the teacher's
    correlation matrices are its cached targets (C × C per example, whatever the map's size)."""

    def __init__(self, params: ICKDParams, probe: Probe):
        super().__init__(params)
        s = probe.student_shape(params.student_layer)
        t = probe.teacher_shape(params.teacher_layer)
        if len(s) not in (1, 3) or len(t) not in (1, 3):
            raise ValueError(f"ICKD needs (C, H, W) maps or (C,) vectors: student "
                             f"{params.student_layer} is {s}, teacher {params.teacher_layer} is "
                             f"{t}")  # fmt: skip
        self.embed = Embed(s[0], t[0], spatial=len(s) == 3)

    def teacher_targets(self, out):
        return {"logits": out.logits, "icc": icc_matrix(out.features[self.params.teacher_layer])}

    def embedded(self, student_feat: torch.Tensor) -> torch.Tensor:
        """The student's map through its embedding: what is compared with the teacher's."""
        return self.embed(student_feat)

    def forward(self, student, teacher, batch):
        p = self.params
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        s_icc = icc_matrix(self.embedded(student.features[p.student_layer]))
        parts["ickd"] = p.beta * icc_loss(s_icc, teacher["icc"])
        return parts
