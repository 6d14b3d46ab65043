"""Activation-boundary transfer: the student learns where each teacher unit switches on and off
(Heo et al. 2019).

Byeongho Heo, Minsik Lee, Sangdoo Yun, Jin Young Choi, "Knowledge Transfer via Distillation of
Activation Boundaries Formed by Hidden Neurons", AAAI 2019, arXiv:1811.03233, §3. Reference
code: the authors' (bhheo/AB_distillation), which RepDistiller's ``ABLoss`` follows.

A ReLU unit splits its input space in two along a hyperplane, its activation boundary; which side
an example falls on is what the next layer sees most of. The paper transfers those sides, not
the values: the loss is zero once every teacher unit that fires is matched by a (connected)
student response above a margin μ, and every silent one by a response below −μ, whatever their
sizes. The count of mismatched sides (its activation transfer loss) has no gradient, so it is
trained through a squared hinge that is zero exactly where the sides agree with room μ. The
student is first trained on this loss alone (an initialisation, in epochs of its own before the
run's), then on its classification loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, Stage, param, stage_first
from .fitnets import _pool_to, paired_shapes
from .kd import ce_and_kd

# The authors' code: margin 1; its summed hinge, divided by the batch size, is weighted 3/1000
# (RepDistiller's ABLoss likewise), and the student is initialised by it before classification.
AB_MARGIN = 1.0
AB_WEIGHT = 3e-3


def activation_transfer_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""The count of mismatched activations (Heo et al. 2019, the activation transfer loss), per
    example, averaged over the batch:

    .. math:: \mathcal{L}(I) = \big\lVert \rho(\mathcal{T}(I)) - \rho(\mathcal{S}(I))
        \big\rVert_1, \qquad \rho(x) = \begin{cases}1 & x > 0\\ 0 & x \le 0\end{cases}

    s, t: (B, ...) the (connected) student's responses and the teacher's, before their ReLUs
    (or, for the teacher, after: a ReLU keeps the sign). Piecewise constant: a measure, not a
    loss to train on."""
    mismatched = (s > 0) != (t > 0)
    return mismatched.flatten(1).sum(1).float().mean()


def ab_loss(s: torch.Tensor, t_on: torch.Tensor, margin: float = AB_MARGIN) -> torch.Tensor:
    r"""The paper's piecewise differentiable stand-in for the activation transfer loss (with the
    connector r applied before): a squared hinge per unit, summed over units, averaged over the
    batch,

    .. math:: \mathcal{L}(I) = \big\lVert \rho(\mathcal{T}(I)) \odot \sigma(\mu \mathbf{1} -
        r(\mathcal{S}(I))) + (1 - \rho(\mathcal{T}(I))) \odot \sigma(\mu \mathbf{1} +
        r(\mathcal{S}(I))) \big\rVert_2^2

    with σ the ReLU: a unit the teacher fires costs (μ − s)² until the student's response s
    exceeds μ, a silent one (μ + s)² until s is below −μ, and nothing once past the margin
    (the authors' code's form, written with indicators). s: (B, ...) the connected student's
    responses; t_on: (B, ...) ρ of the teacher's, 1.0 where its unit fires, else 0.0."""
    on = t_on.to(s.dtype)
    per_unit = on * F.relu(margin - s) ** 2 + (1 - on) * F.relu(margin + s) ** 2
    return per_unit.flatten(1).sum(1).mean()


def ab_connector(c_s: int, c_t: int, spatial: bool) -> nn.Sequential:
    """r: the student's channels mapped to the teacher's and batch-normalised (the authors' 1x1
    convolution and BatchNorm; a Linear and BatchNorm1d on a flat layer)."""
    if spatial:
        return nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.BatchNorm2d(c_t))
    return nn.Sequential(nn.Linear(c_s, c_t, bias=False), nn.BatchNorm1d(c_t))


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class ABParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="The paper's: a layer before its ReLU (hidden<i>_pre, the CNN's conv<i>_pre).",
    )  # fmt: skip
    teacher_layer: str = param(
        "embedding", "Teacher layer", choices="teacher features",
        help="Only which units fire is read: before or after the ReLU, the same.",
    )  # fmt: skip
    margin: float = param(AB_MARGIN, "Margin μ", 0.0, 100.0, 0.25, "The authors' code: 1")
    weight: float = param(AB_WEIGHT, "β, weight of AB", 0.0, 1e4, 1e-3, "Authors' code: 0.003")
    init_epochs: int = param(
        2, "Initialisation epochs", 0, 1000,
        help="This many epochs of AB alone (student and connector) before the run's epochs "
        "on CE (and KD at α > 0) without it. 0: one stage, CE + KD + β·AB together.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class ActivationBoundaries(Distiller):
    """AB through a connector, as an initialisation stage (or, at 0 initialisation epochs,
    beside CE throughout). Owns the connector, so it trains with the student and is saved
    beside it. Each epoch records, over that epoch's batches, how often the connected student's
    units fall on the teacher's side of zero (``agreement``, and per teacher unit) and how often
    each teacher unit fires (``teacher_on``): after the initialisation the connector is frozen,
    so the figure shows how much of the transferred boundaries classification training keeps
    (each batch normalised by its own statistics in both stages, as the connector trained)."""

    def __init__(self, params: ABParams, probe: Probe):
        super().__init__(params)
        s_shape, t_shape, self.size = paired_shapes(params, probe)  # (C,) or (C, H, W)
        self.connector = ab_connector(s_shape[0], t_shape[0], len(s_shape) == 3)
        self._agree = torch.zeros(t_shape[0])  # this epoch's matched sides per teacher unit
        self._on = torch.zeros(t_shape[0])  # and how often each teacher unit fired
        self._n = 0  # elements per unit that went into both

    def teacher_targets(self, out):
        feat = _pool_to(out.features[self.params.teacher_layer], self.size)
        return {"logits": out.logits, "on": (feat > 0).float()}

    def stages(self, epochs: int) -> list[Stage]:
        return stage_first("init", self.params.init_epochs, epochs)

    def forward(self, student, teacher, batch):
        p = self.params
        s_feat = _pool_to(student.features[p.student_layer], self.size)
        t_on = teacher["on"]
        training_ab = self.stage == "init" or p.init_epochs <= 0
        if training_ab:
            s = self.connector(s_feat)
        else:  # frozen after its stage: measured as it trained (each batch normalised by its
            with torch.no_grad():  # own statistics), its running statistics left alone
                lin, bn = self.connector
                s = F.batch_norm(lin(s_feat), None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
        with torch.no_grad():
            dims = [0, *range(2, t_on.dim())]
            match = ((s > 0).float() == t_on).float().sum(dim=dims)
            self._agree = self._agree.to(s.device) + match
            self._on = self._on.to(s.device) + t_on.sum(dim=dims)
            self._n += t_on.numel() // t_on.shape[1]
        ab = p.weight * ab_loss(s, t_on, p.margin) if training_ab else None
        if self.stage == "init":
            return {"ab": ab}
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        if ab is not None:
            parts["ab"] = ab
        return parts

    def epoch_summary(self) -> dict:
        n = max(self._n, 1)
        agree, on = (self._agree / n).cpu(), (self._on / n).cpu()
        self._agree, self._on, self._n = agree.new_zeros(agree.shape), on.new_zeros(on.shape), 0
        return {
            "agreement": round(float(agree.mean()), 5),
            "unit_agreement": [round(float(v), 4) for v in agree],
            "teacher_on": [round(float(v), 4) for v in on],
        }
