"""Knowledge review (ReviewKD): each of the teacher's levels is taught by the student's own level
*and every deeper one*, fused on the way down (Chen et al. 2021).

Pengguang Chen, Shu Liu, Hengshuang Zhao, Jiaya Jia, "Distilling Knowledge via Knowledge
Review", CVPR 2021 (arXiv:2104.09044), §3. Reference code: the authors' (dvlab-research/ReviewKD,
``CIFAR-100/model/reviewkd.py`` and ``train.py``), also mdistiller's ``ReviewKD.py``.

Earlier feature methods pair a student layer with the teacher layer at the same depth. The paper
lets a shallow teacher level be "reviewed" by the student's deeper levels too: going from the
deepest level up, an *attention-based fusion* (ABF) module merges the student's level i with
what the deeper levels passed down, and a 3 × 3 convolution turns the merge into level i's
prediction of the teacher's. Each prediction is compared with the teacher's level by a
*hierarchical context loss* (HCL): the squared error of the maps and of their average-pooled
4 × 4, 2 × 2 and 1 × 1 pyramids, so that context at several scales counts. The loss is added to
the student's cross-entropy; the modules are dropped after training.

As the authors' code: the levels of a CIFAR ResNet are its three stages and its pooled
embedding (a 1 × 1 map); the teacher's stages are taken before their last ReLU (its
pre-activations), the student's after; ABF's middle width is min(512, the deepest student
level's channels); each prediction is resized to the teacher's map (nearest) before its
convolution. The code weights the pyramid's levels 1, 1/2, 1/4, 1/8 and divides by their sum
(levels not smaller than the map are skipped). Its CIFAR runs ramp the loss's weight up over the
first 20 of 240 epochs; the short runs here, as DKD's, have no warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param
from .fsp import as_map
from .kd import ce_and_kd

REVIEW_LAYERS = "stage1,stage2,stage3,embedding"  # a CIFAR ResNet's levels, shallow to deep
REVIEW_TEACHER_LAYERS = "stage1_pre,stage2_pre,stage3_pre,embedding"
REVIEW_WEIGHT = 1.0  # the authors' default --kd-loss-weight (0.6 for resnet56 -> resnet20)
PYRAMID = (4, 2, 1)  # HCL's pooled sizes, after the map itself
MAX_MID = 512  # the code's cap on ABF's middle width


def hcl_level(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r"""The hierarchical context loss of one level, (B, C, H, W) each, a scalar:

    .. math:: D(F_s, F_t) = \frac{\sum_k w_k \,\mathrm{MSE}\big(P_k(F_s), P_k(F_t)\big)}
        {\sum_k w_k}, \quad w_0 = 1,\ w_{k} = w_{k-1}/2

    where :math:`P_0` is the identity and :math:`P_k` average-pools to the pyramid's k-th size
    (4 × 4, 2 × 2, 1 × 1), each used only where it is smaller than the map's height; MSE is the
    mean over the batch and every element."""
    loss, w, total = F.mse_loss(student, teacher), 1.0, 1.0
    for size in PYRAMID:
        if size >= student.shape[2]:
            continue
        w /= 2
        pooled = F.mse_loss(F.adaptive_avg_pool2d(student, size),
                            F.adaptive_avg_pool2d(teacher, size))  # fmt: skip
        loss, total = loss + w * pooled, total + w
    return loss / total


def hcl_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """HCL summed over the levels, paired in order (the code's ``hcl``)."""
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student levels against {len(teacher)} teacher levels")
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher, strict=True):
        total = total + hcl_level(s, t)
    return total


class ABF(nn.Module):
    """Attention-based fusion of one level: a 1 × 1 convolution (+BN) of the student's level to
    the middle width; where a deeper level's residual comes down, two spatial attention maps
    (1 × 1 convolution of both, sigmoid) weigh the level and the residual, resized to it, in
    their sum; a 3 × 3 convolution (+BN) of the sum, resized to the teacher's map, predicts the
    teacher's level. Returns (prediction, the sum passed up to the next level, attention or None
    for the deepest level: (B, 2, H, W), own weight then residual weight)."""

    def __init__(self, c_in: int, mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(nn.Conv2d(mid, c_out, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c_out))  # fmt: skip
        self.att = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)  # as the code
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None, out_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x = self.conv1(x)
        z = None
        if self.att is not None:
            if residual is None:
                raise ValueError("a fusing level needs the deeper levels' residual")
            residual = F.interpolate(residual, x.shape[2:], mode="nearest")
            z = self.att(torch.cat([x, residual], dim=1))  # (B, 2, H, W)
            x = x * z[:, :1] + residual * z[:, 1:]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, out_size, mode="nearest")
        return self.conv2(x), x, z


# ----------------------------------------------------------------------------- as a method


def level_names(text: str) -> list[str]:
    """A comma-separated list of features, as names."""
    return [name.strip() for name in text.split(",") if name.strip()]


@dataclass(frozen=True)
class ReviewParams:
    layers: str = param(
        REVIEW_LAYERS, "Student levels",
        help="Comma-separated student features, shallow to deep (a flat one counts as a 1 × 1 "
        "map). A CIFAR ResNet's: its three stages and its pooled embedding.",
    )  # fmt: skip
    teacher_layers: str = param(
        REVIEW_TEACHER_LAYERS, "Teacher levels",
        help="As many teacher features, paired in order. The authors' code takes the teacher's "
        "stages before their last ReLU.",
    )  # fmt: skip
    weight: float = param(
        REVIEW_WEIGHT, "λ, weight of the review loss", 0.0, 1e4, 0.1,
        help="The authors' scripts: 0.6 for resnet56 → resnet20, 1 for resnet110 → resnet32, "
        "5 for resnet32x4 → resnet8x4.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class ReviewKD(Distiller):
    """CE (and KD at α > 0) plus λ·HCL between the fused student levels and the teacher's. Owns
    one ABF per level (trained with the student, dropped after). Each epoch records, over its
    batches, HCL per level (``level_loss``) and each fusing level's mean attention on its own
    features and on the residual from below (``fusion``)."""

    def __init__(self, params: ReviewParams, probe: Probe):
        super().__init__(params)
        self.layers = level_names(params.layers)
        self.teacher_layers = level_names(params.teacher_layers)
        if not self.layers:
            raise ValueError("ReviewKD needs at least one level: the student's features, shallow "
                             "to deep, comma-separated")  # fmt: skip
        if len(self.layers) != len(self.teacher_layers):
            raise ValueError(
                f"ReviewKD pairs levels in order: {len(self.layers)} student levels against "
                f"{len(self.teacher_layers)} teacher levels"
            )
        s_shapes = [as_shape(probe.student_shape(n)) for n in self.layers]
        t_shapes = [as_shape(probe.teacher_shape(n)) for n in self.teacher_layers]
        mid = min(MAX_MID, s_shapes[-1][0])
        last = len(self.layers) - 1
        pairs = enumerate(zip(s_shapes, t_shapes, strict=True))
        self.abfs = nn.ModuleList(ABF(s[0], mid, t[0], fuse=i < last) for i, (s, t) in pairs)
        self.out_sizes = [t[1:] for t in t_shapes]
        self._sums = torch.zeros(len(self.layers))
        self._att = torch.zeros(max(last, 0), 2)
        self._n = 0

    def review(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The student's predictions of the teacher's levels (shallow to deep), from the deepest
        level up, and the attention maps of each fusing level (shallow to deep)."""
        residual, outs, atts = None, [], []
        for i in reversed(range(len(self.layers))):
            out, residual, z = self.abfs[i](as_map(features[self.layers[i]]), residual,
                                            self.out_sizes[i])  # fmt: skip
            outs.insert(0, out)
            if z is not None:
                atts.insert(0, z)
        return outs, atts

    def teacher_targets(self, out):
        feats = {f"level:{i}": as_map(out.features[n]) for i, n in enumerate(self.teacher_layers)}
        return {"logits": out.logits, **feats}

    def forward(self, student, teacher, batch):
        p = self.params
        outs, atts = self.review(student.features)
        levels = torch.stack([hcl_level(s, teacher[f"level:{i}"]) for i, s in enumerate(outs)])
        n = len(batch.y)
        self._sums = self._sums.to(levels.device) + levels.detach() * n
        if atts:
            means = torch.stack([z.detach().mean(dim=(0, 2, 3)) for z in atts])  # (L-1, 2)
            self._att = self._att.to(means.device) + means * n
        self._n += n
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["review"] = p.weight * levels.sum()
        return parts

    def epoch_summary(self) -> dict:
        per, att = (self._sums / max(self._n, 1)).cpu(), (self._att / max(self._n, 1)).cpu()
        self._sums, self._att, self._n = per.new_zeros(per.shape), att.new_zeros(att.shape), 0
        return {"review_loss": round(float(per.sum()), 6),
                "level_loss": [round(float(v), 6) for v in per],
                "fusion": [[round(float(v), 4) for v in row] for row in att]}  # fmt: skip


def as_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A feature's per-example shape as (C, H, W); a flat (C,) one as (C, 1, 1)."""
    return (shape[0], 1, 1) if len(shape) == 1 else (shape[0], shape[1], shape[2])
