r"""Neuron selectivity transfer: match the distribution of channel maps (Huang & Wang 2017).

Zehao Huang, Naiyan Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer",
arXiv:1707.01219. Each channel's spatial map, flattened to H·W and L2-normalised, is one sample
of "where this neuron fires"; the student's C_S maps and the teacher's C_T maps are two sets of
samples, and the loss is the squared maximum mean discrepancy (MMD) between them. The channels are
not paired, so C_S and C_T may differ and their order is irrelevant.

Kernel: the paper compares linear, polynomial and Gaussian kernels and uses the polynomial kernel
:math:`k(x, y) = (x^\top y + c)^d` with d = 2, c = 0 in its main results. With that kernel the
MMD is a distance between spatial Gram matrices (Huang & Wang note the link with style transfer):

.. math::
    \mathcal{L}_{MMD^2} = \Big\lVert \frac{F_T^\top F_T}{C_T}
        - \frac{F_S^\top F_S}{C_S} \Big\rVert_F^2

where F is the (C, H·W) matrix of normalised maps.

Normalisation, as in RepDistiller ``distiller_zoo/NST.py`` and mdistiller ``distillers/NST.py``
(identical code): each of the three MMD terms is a *mean* over its channel pairs (1/C_T², 1/C_S²,
1/(C_S C_T), as in the paper's MMD estimator) and over the batch. Departures of the code from the
paper: no λ/2 factor (the weight is left to the caller; mdistiller uses 50), the teacher-teacher
term is detached in the code (not here: pass detached teacher features), and the code pools with a
square output size (H, H); here the pool goes to (min H, min W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, param
from .kd import ce_and_kd

# Weight of the NST term against cross-entropy in mdistiller's CIFAR-100 config
# (CFG.NST.LOSS.FEAT_WEIGHT). For the caller; the loss carries no weight.
NST_WEIGHT = 50.0


def _poly2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The degree-2 polynomial kernel with c = 0 between all rows: (B, M, N) of (a_m · b_n)^2."""
    return (a @ b.transpose(1, 2)).pow(2)


def channel_maps(feat: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Each channel's spatial map, average-pooled to ``size`` if given, flattened and L2-normalised.

    feat: (B, C, H, W) -> (B, C, H'·W'). An all-zero map stays zero. Exposed for plotting.
    """
    if size is not None and tuple(feat.shape[-2:]) != tuple(size):
        feat = F.adaptive_avg_pool2d(feat, size)  # (B, C, H', W')
    return F.normalize(feat.flatten(2), dim=2)  # (B, C, H'·W')


def nst_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    r"""Squared MMD with the polynomial kernel, d = 2, c = 0 (Huang & Wang 2017, §3).

    .. math::
        \mathcal{L}_{MMD^2} = \frac{1}{C_T^2} \sum_{i,i'} k(f_T^i, f_T^{i'})
            + \frac{1}{C_S^2} \sum_{j,j'} k(f_S^j, f_S^{j'})
            - \frac{2}{C_S C_T} \sum_{i,j} k(f_S^j, f_T^i)

    averaged over the batch, :math:`f^i` the L2-normalised map of channel i. It is never negative,
    and zero when the two sets of maps coincide (as multisets, up to a positive scale per map).

    student_feat: (B, C_S, H_S, W_S), teacher_feat: (B, C_T, H_T, W_T). The larger spatial size is
    average-pooled down to the smaller, per dimension. Returns a scalar.
    """
    size = (
        min(student_feat.shape[-2], teacher_feat.shape[-2]),
        min(student_feat.shape[-1], teacher_feat.shape[-1]),
    )
    fs = channel_maps(student_feat, size)  # (B, C_S, H·W)
    ft = channel_maps(teacher_feat, size)  # (B, C_T, H·W)
    return _poly2(ft, ft).mean() + _poly2(fs, fs).mean() - 2 * _poly2(fs, ft).mean()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class NSTParams:
    student_layer: str = param(
        "conv2", "Student layer (spatial)", choices="student features",
        help="A (C, H, W) feature: NST compares the distributions of its channel maps.",
    )  # fmt: skip
    teacher_layer: str = param("conv2", "Teacher layer (spatial)", choices="teacher features")
    weight: float = param(NST_WEIGHT, "λ, weight of NST", 0.0, 1e5, 5.0, "50 in mdistiller")
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class NST(Distiller):
    """CE (and optionally KD) plus λ·MMD². Stateless: the teacher's map is cached already pooled
    to the smaller of the two spatial sizes (what nst_loss would pool it to)."""

    def __init__(self, params: NSTParams, probe: Probe):
        super().__init__(params)
        s = probe.student_shape(params.student_layer)
        t = probe.teacher_shape(params.teacher_layer)
        if len(s) != 3 or len(t) != 3:
            raise ValueError(
                f"NST needs spatial (C, H, W) features: student {params.student_layer} is {s}, "
                f"teacher {params.teacher_layer} is {t} (MLPs have none; use a cnn)"
            )
        self.size = (min(s[1], t[1]), min(s[2], t[2]))

    def teacher_targets(self, out):
        feat = out.features[self.params.teacher_layer]  # (B, C_T, H, W)
        return {"logits": out.logits, "feat": F.adaptive_avg_pool2d(feat, self.size)}

    def forward(self, student, teacher, batch):
        p = self.params
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["nst"] = p.weight * nst_loss(student.features[p.student_layer], teacher["feat"])
        return parts
