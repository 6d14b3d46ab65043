r"""Class attention transfer, CAT-KD (Guo, Yan, Li & Lin 2023): the student learns *where* the
teacher sees each class, from the teacher's class activation maps.

Ziyao Guo, Haonan Yan, Hui Li, Xiaodong Lin, "Class Attention Transfer Based Knowledge
Distillation", CVPR 2023, arXiv:2304.12777. Official code: GzyAftermath/CAT-KD (built on
mdistiller), ``mdistiller/distillers/CAT_KD.py`` with the configs under ``configs/cifar100``.

A network that ends in global average pooling and a linear head can swap the two: the head's
weights applied at every position of the last feature map F (C × H × W) give K maps, one per
class,

.. math::
    M_k(h, w) = w_k^\top F(h, w), \qquad z_k = \frac{1}{HW}\sum_{h,w} M_k(h, w) + b_k,

the class activation maps (CAMs; Zhou et al. 2016), whose means are the logits less the head's
bias. (The official code converts its networks so that a 1 × 1 convolution makes the maps and
pooling the logits, copying the teacher's weights and not its bias, its students without one;
the models here keep their head and bias and compute the same maps from it,
:func:`kdcore.models.class_activation_maps`, as :class:`kdcore.models.ResNet`'s ``cam``
feature.) CAT-KD average-pools both models' maps to a small resolution r (2 in every official
config) and matches them by mean squared error:

.. math::
    \mathcal L = \mathrm{CE}(y, z^S) + \beta\,
        \mathrm{MSE}\big(\phi(\mathrm{pool}_r M^S),\ \phi(\mathrm{pool}_r M^T)\big),

with φ the identity in the CAT-KD configs, or each pooled map scaled to unit length (the
``IF_NORMALIZE`` option, used by the configs of CAT alone). Pooled to r × r, the maps still
average to the logits (less the bias), so without normalisation the loss holds a
logit-matching term; with it, only *where* within the image each class is seen. The paper's
CAT trains on the maps alone (cross-entropy weight 0); its binarised variant replaces each
teacher map by where it exceeds its own mean absolute value (1 there, 0 elsewhere) before
pooling, so that only the place, not the strength, is taught.

Official weights β: 0.7 for resnet56 → resnet20, 15 for resnet32x4 → resnet8x4 (both CAT-KD, no
normalisation); 50 for CAT alone and 300 for binarised CAT alone (both normalised, CE weight 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, param

LAYER = "cam"  # the models' class activation maps (B, K, H, W)
CAT_WEIGHT = 0.7  # β of the official resnet56 -> resnet20 config (res56_res20.yaml)


def binarize(maps: torch.Tensor) -> torch.Tensor:
    """Each map (B, K, H, W) as 1 where it exceeds its own mean absolute value, 0 elsewhere
    (the official ``IF_BINARIZE``: the threshold is the map's L1 norm over its H·W cells)."""
    threshold = maps.abs().mean((2, 3), keepdim=True)
    return (maps > threshold).to(maps.dtype)


def transferred(maps: torch.Tensor, resolution: int, normalize: bool) -> torch.Tensor:
    """What CAT compares: the maps (B, K, H, W) average-pooled to (B, K, r, r) and, if
    ``normalize``, each pooled map scaled to unit length (an all-zero map stays zero)."""
    pooled = F.adaptive_avg_pool2d(maps, resolution)
    return F.normalize(pooled, dim=(2, 3)) if normalize else pooled


def cat_loss(
    student_maps: torch.Tensor, teacher_maps: torch.Tensor, resolution: int = 2,
    normalize: bool = False,
) -> torch.Tensor:  # fmt: skip
    r"""The class attention transfer term, before its weight β: the mean squared difference of
    :func:`transferred` student and teacher maps, (B, K, H, W) each (the two models' map sizes
    may differ; both are pooled to r × r)."""
    return F.mse_loss(
        transferred(student_maps, resolution, normalize),
        transferred(teacher_maps, resolution, normalize),
    )


def require_maps(probe: Probe, need: str) -> None:
    """Refuse, in one line beginning with ``need``, a pair whose student or teacher has no class
    activation maps (the ``cam`` feature, (K, H, W) an example)."""
    for who, shape in (("student", probe.student_shape), ("teacher", probe.teacher_shape)):
        try:
            dims = shape(LAYER)
        except ValueError:
            raise ValueError(f"{need}, which the {who} does not have: a model ending in average "
                             "pooling and a linear head (the ResNets)") from None  # fmt: skip
        if len(dims) != 3:
            raise ValueError(f"{need} of (K, H, W); the {who}'s are {dims}")


@dataclass(frozen=True)
class CATParams:
    beta: float = param(
        CAT_WEIGHT, "β, weight of CAT", 0.0, 1e4, 0.1,
        "Officially 0.7 (resnet56 → resnet20), 15 (resnet32x4 → resnet8x4); 50 for CAT alone, "
        "300 binarised.",
    )  # fmt: skip
    resolution: int = param(
        2, "Resolution r of the transferred maps", 1, 64, 1,
        "Both models' maps are average-pooled to r × r before they are compared: 2 in every "
        "official config; at 1, unnormalised, it compares the logits alone.",
    )  # fmt: skip
    normalize: bool = param(
        False, "Normalise each map",
        help="Scale each pooled map to unit length: where a class is seen, not how strongly. "
        "Off for CAT-KD, on for CAT alone.",
    )  # fmt: skip
    binarize: bool = param(
        False, "Binarise the teacher's maps",
        help="Teach 1 where a teacher map exceeds its mean absolute value and 0 elsewhere.",
    )  # fmt: skip
    ce_weight: float = param(
        1.0, "Cross-entropy weight", 0.0, 10.0, 0.1,
        "1 for CAT-KD; 0 trains on the teacher's maps alone (the paper's CAT).",
    )  # fmt: skip


class CAT(Distiller):
    """CE at its weight plus β·CAT on the two models' class activation maps (the ``cam``
    feature). Owns nothing: the teacher's transferred maps, K × r × r per example, are its cached
    targets."""

    def __init__(self, params: CATParams, probe: Probe):
        super().__init__(params)
        require_maps(probe, "CAT-KD needs class activation maps")

    def teacher_targets(self, out):
        p = self.params
        maps = out.features[LAYER]
        if p.binarize:
            maps = binarize(maps)
        return {"logits": out.logits, "maps": transferred(maps, p.resolution, p.normalize)}

    def forward(self, student, teacher, batch):
        p = self.params
        s = transferred(student.features[LAYER], p.resolution, p.normalize)
        return {
            "ce": p.ce_weight * F.cross_entropy(student.logits, batch.y),
            "cat": p.beta * F.mse_loss(s, teacher["maps"]),
        }
