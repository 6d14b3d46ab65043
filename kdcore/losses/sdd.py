r"""Scale decoupled distillation, SD-KD (Wei, Luo & Luo 2024): KD on the logits of every region of
the image, not only of the whole.

Shicai Wei, Chunbo Luo, Yang Luo, "Scale Decoupled Distillation", CVPR 2024, arXiv:2403.13512.
Official code: shicaiwei123/SDD-CVPR2024 (built on mdistiller): ``mdistiller/distillers/KD.py``
(``sdd_kd_loss``), the models' ``SPP`` (``mdistiller/models/cifar/utils.py``) and the commands in
``teacher_resnet32x4.sh``.

A network that ends in global average pooling and a linear head has a logit *map*: the head read
at every position of the last feature map, :math:`L(j, k) = W f(j, k)`, the class activation
maps (:func:`kdcore.models.class_activation_maps`), whose mean over the map is the logit less the
head's bias. KD matches only that mean; a whole image mixes what its parts say (a 7 half-drawn
like a 1, a 4 whose top looks like a 9). SDD average-pools the logit map at several scales
M = {1, 2, 4, ...}, m × m cells at scale m, and gives every cell's logits their own KD term
(§3.2, eqs. 6-9):

.. math::
    \pi(m, n) = \mathrm{mean}_{(j,k) \in C(m,n)} L(j, k) + b, \qquad
    \mathcal D(m, n) = T^2\,\mathrm{KL}\big(\sigma(\pi_T(m,n)/T) \,\|\,
        \sigma(\pi_S(m,n)/T)\big),

so that at m = 1 the single cell is the whole image and its term is KD. A cell whose teacher
logits name another class than the teacher's whole-image logits is *complementary*, the others
*consistent*; the complementary terms weigh β (2 in the paper), the consistent ones 1 (eq. 10),
and the student minimises

.. math::
    \mathcal L = \lambda_{CE}\,\mathrm{CE}(y, z^S) + \alpha\,
        \frac{1}{B\,R} \sum_{b} \sum_{m, n} w_{b,m,n}\,\mathcal D_b(m, n),

the mean over the B images and R cells (the official ``sdd_kd_loss``, where eq. 9 writes a sum).
λ_CE = 0.1, α = 0.9 and T = 4 are mdistiller's KD settings, which the SDD commands keep; M is
{1, 2} for a teacher and student of one kind and {1, 2, 4} for different kinds (§4.1, Table 7).

Two choices of ours, each said where it is made: (1) each scale is pooled from the full logit
map, so the 1 × 1 cell's logits are the model's own; the official ``SPP`` pools to 4 × 4 first
and the coarser scales from that, which is the same on CIFAR's 8 × 8 maps and not on MNIST's
7 × 7. (2) The rule for *complementary*: the paper's (the cell's class differs from the whole
image's, ``rule="class"``, the default) or the official code's (the cell's teacher prediction is
right where the whole image's is wrong or the other way round, ``rule="label"``); they differ only
where both are wrong, about different classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, param
from .cat import LAYER, require_maps  # LAYER: the class maps, the logit map less the bias

SCALES = ("1", "1,2", "1,4", "1,2,4")  # the paper's Table 7
RULES = ("class", "label")  # complementary by the paper's rule or the official code's


def scale_list(scales: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]."""
    return [int(s) for s in scales.split(",")]


def region_logits(maps: torch.Tensor, logits: torch.Tensor, scales: list[int]) -> torch.Tensor:
    """Every cell's logits at every scale, (B, K, R) with R = Σ m², scale by scale in the order
    given and row by row within a scale: the logit map (B, K, H, W) average-pooled to m × m plus
    the head's bias, recovered per example as the logits less the map's mean (exact: the map's
    mean is the logit less the bias). A 1 × 1 cell's logits are ``logits`` themselves."""
    bias = logits - maps.mean((2, 3))  # (B, K)
    cells = [F.adaptive_avg_pool2d(maps, m).flatten(2) for m in scales]
    return torch.cat(cells, 2) + bias[:, :, None]


def complementary(teacher_regions: torch.Tensor, labels: torch.Tensor, rule: str = "class"):
    """Which cells are complementary, (B, R) bool, from the teacher's cells (B, K, R) whose first
    is the whole image (scale 1 first): ``"class"``, the paper's, where a cell's predicted class
    differs from the whole image's; ``"label"``, the official code's, where exactly one of the two
    predictions is the label. The whole image's own cell is never complementary."""
    pred = teacher_regions.argmax(1)  # (B, R)
    whole = pred[:, :1]
    if rule == "class":
        return pred != whole
    if rule == "label":
        right = pred == labels[:, None]
        return right != right[:, :1]
    raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")


def sdd_loss(
    student_regions: torch.Tensor, teacher_regions: torch.Tensor, labels: torch.Tensor,
    T: float = 4.0, beta: float = 2.0, rule: str = "class", comp: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    r"""The SD-KD term before its weight α: :math:`T^2` KL(teacher ‖ student) at temperature T in
    every cell, (B, K, R) each, the complementary cells' terms times β, averaged over the B·R
    cells (the official ``sdd_kd_loss``). ``comp``: the cells :func:`complementary` marks by
    ``rule``, where the caller has them already."""
    log_q = F.log_softmax(student_regions / T, dim=1)
    log_p = F.log_softmax(teacher_regions / T, dim=1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(1) * (T * T)  # (B, R)
    if comp is None:
        comp = complementary(teacher_regions, labels, rule)
    weight = 1.0 + (beta - 1.0) * comp.to(kl.dtype)
    return (kl * weight).mean()


@dataclass(frozen=True)
class SDDParams:
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5, "mdistiller's KD setting, 4.")
    scales: str = param(
        "1,2", "Scales M", choices=SCALES,
        help="The grids whose cells get a KD term each: {1, 2} for a teacher and student of one "
        "kind, {1, 2, 4} for different kinds (the paper); {1} is KD.",
    )  # fmt: skip
    beta: float = param(
        2.0, "β, weight of complementary cells", 0.0, 100.0, 0.5,
        "The weight of a cell whose teacher logits name another class than the whole image's: "
        "2 in the paper; 1 weighs every cell alike.",
    )  # fmt: skip
    rule: str = param(
        "class", "Complementary when", choices=RULES,
        help="class: the cell's class differs from the whole image's (the paper); label: one of "
        "the two is right and the other wrong (the official code).",
    )  # fmt: skip
    kd_weight: float = param(0.9, "α, weight of SD-KD", 0.0, 100.0, 0.1, "mdistiller's 0.9.")
    ce_weight: float = param(0.1, "Cross-entropy weight", 0.0, 10.0, 0.05, "mdistiller's 0.1.")


class SDD(Distiller):
    """ce_weight·CE + α·SD-KD on both models' cell logits; the teacher's (B, K, R) are its cached
    targets. Records each epoch the share of cells the loss counted as complementary."""

    def __init__(self, params: SDDParams, probe: Probe):
        super().__init__(params)
        require_maps(probe, "SD-KD needs a logit map")
        self.scales = scale_list(params.scales)
        self._complementary = torch.zeros(())
        self._cells = 0

    def teacher_targets(self, out):
        return {"regions": region_logits(out.features[LAYER], out.logits, self.scales)}

    def forward(self, student, teacher, batch):
        p, t = self.params, teacher["regions"]
        s = region_logits(student.features[LAYER], student.logits, self.scales)
        comp = complementary(t, batch.y, p.rule)  # of the cached teacher cells: no gradient
        self._complementary = self._complementary.to(comp.device) + comp.sum()
        self._cells += t.shape[0] * t.shape[2]
        return {
            "ce": p.ce_weight * F.cross_entropy(student.logits, batch.y),
            "sdd": p.kd_weight * sdd_loss(s, t, batch.y, p.T, p.beta, p.rule, comp),
        }

    def epoch_summary(self) -> dict:
        """The share of the epoch's cells whose teacher logits were complementary."""
        if not self._cells:
            return {}
        out = {"complementary": round(float(self._complementary) / self._cells, 5)}
        self._complementary, self._cells = torch.zeros(()), 0
        return out
