"""Activation-based attention transfer (Zagoruyko & Komodakis 2017).

Sergey Zagoruyko and Nikos Komodakis, "Paying More Attention to Attention: Improving the
Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017, arXiv:1612.03928;
code: github.com/szagoruyko/attention-transfer (``at`` and ``at_loss`` in cifar.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, param
from .kd import ce_and_kd


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    r"""Spatial attention map: channel mean of the squared activations, L2-normalised.

    Zagoruyko & Komodakis (2017, §3.1) map an activation tensor A (C, H, W) to
    :math:`F^p_{sum}(A) = \sum_{c} |A_c|^p`; p = 2 here as in their experiments. The authors' code
    takes the channel *mean*, ``at(x) = F.normalize(x.pow(2).mean(1).view(x.size(0), -1))``,
    which differs by the factor 1/C that the normalisation then removes: both give this map.

    .. math:: Q = \frac{q}{\lVert q \rVert_2}, \quad q_{hw} = \frac{1}{C} \sum_c A_{c,h,w}^2

    feat: (B, C, H, W). Returns (B, H*W), each row of unit L2 norm (a zero row stays zero).
    Scaling feat by any constant leaves the map unchanged. A (B, D) feature has no positions to
    attend over, so it is rejected rather than read as (B, D, 1, 1), whose map is always 1.
    """
    if feat.dim() != 4:
        raise ValueError(
            f"attention maps need spatial features (B, C, H, W), got {tuple(feat.shape)}"
        )
    q = feat.pow(2).mean(1).flatten(1)  # (B, C, H, W) -> (B, H, W) -> (B, H*W)
    return F.normalize(q, dim=1)


def at_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    r"""Squared difference of the two attention maps, averaged over batch and positions.

    The paper (Zagoruyko & Komodakis 2017, Eq. 2) adds, per pair of layers,

    .. math::
        \frac{\beta}{2} \Big\lVert \frac{Q_S}{\lVert Q_S \rVert_2}
        - \frac{Q_T}{\lVert Q_T \rVert_2} \Big\rVert_p

    (a norm, not its square). Their code instead uses ``(at(x) - at(y)).pow(2).mean()``, the mean
    over batch and positions of the squared difference, with ``--beta 1e+3`` (README) multiplying
    the sum over layers. This function follows the code:

    .. math:: \mathcal{L}_{AT} = \frac{1}{B\,HW} \sum_{b,j} (Q_{S,bj} - Q_{T,bj})^2

    beta is *not* applied here: the caller multiplies (1e3 in the authors' CIFAR runs).

    student_feat: (B, C_s, H_s, W_s); teacher_feat: (B, C_t, H_t, W_t). Channel counts may differ
    (the map averages them away). When the spatial sizes differ, the larger map is average-pooled
    (``adaptive_avg_pool2d``) to the smaller size on each axis before the maps are taken. The
    teacher side is not detached here. Returns a scalar.
    """
    if student_feat.dim() != 4 or teacher_feat.dim() != 4:
        raise ValueError(
            f"at_loss needs spatial features (B, C, H, W), got student "
            f"{tuple(student_feat.shape)} and teacher {tuple(teacher_feat.shape)}"
        )
    if student_feat.shape[0] != teacher_feat.shape[0]:
        raise ValueError(
            f"at_loss: batch sizes differ, student {tuple(student_feat.shape)} and teacher "
            f"{tuple(teacher_feat.shape)}"
        )
    size = (
        min(student_feat.shape[2], teacher_feat.shape[2]),
        min(student_feat.shape[3], teacher_feat.shape[3]),
    )
    if tuple(student_feat.shape[2:]) != size:
        student_feat = F.adaptive_avg_pool2d(student_feat, size)  # (B, C_s, h, w)
    if tuple(teacher_feat.shape[2:]) != size:
        teacher_feat = F.adaptive_avg_pool2d(teacher_feat, size)  # (B, C_t, h, w)
    return (attention_map(student_feat) - attention_map(teacher_feat)).pow(2).mean()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class ATParams:
    layers: str = param(
        "conv1,conv2", "Layers", help="Comma-separated spatial features that the student and "
        "the teacher both have, paired by name.",
    )  # fmt: skip
    # β = 1000 as in the authors' code (README, --beta 1e+3), which applies it to the squared
    # difference of the maps averaged over positions; the paper writes β/2 on the p-norm.
    beta: float = param(1000.0, "β, weight of AT", 0.0, 1e6, 100.0)
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class AttentionTransfer(Distiller):
    """CE (and optionally KD) plus β·Σ_layers at_loss. Stateless: the teacher's attention maps
    are small, (B, H·W) per layer, so they are what is cached, at the smaller spatial size of
    each pair (the size at_loss pools to)."""

    def __init__(self, params: ATParams, probe: Probe):
        super().__init__(params)
        self.layers = [name.strip() for name in params.layers.split(",") if name.strip()]
        if not self.layers:
            raise ValueError("attention transfer needs at least one layer")
        self.sizes = {}
        for name in self.layers:
            s, t = probe.student_shape(name), probe.teacher_shape(name)
            if len(s) != 3 or len(t) != 3:
                raise ValueError(f"layer {name!r} is not spatial (C, H, W) in both models")
            self.sizes[name] = (min(s[1], t[1]), min(s[2], t[2]))

    def teacher_targets(self, out):
        maps = {"logits": out.logits}
        for name in self.layers:
            feat = out.features[name]  # (B, C, H, W)
            maps[f"at:{name}"] = attention_map(F.adaptive_avg_pool2d(feat, self.sizes[name]))
        return maps

    def forward(self, student, teacher, batch):
        p = self.params
        at = 0.0
        for name in self.layers:
            s = F.adaptive_avg_pool2d(student.features[name], self.sizes[name])
            at = at + (attention_map(s) - teacher[f"at:{name}"]).pow(2).mean()
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["at"] = p.beta * at
        return parts
