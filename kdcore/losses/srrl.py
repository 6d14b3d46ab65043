r"""Softmax regression representation learning, SRRL (Yang, Martinez, Bulat & Tzimiropoulos 2021):
the student's penultimate feature, read by the teacher's own classifier.

Jing Yang, Brais Martinez, Adrian Bulat, Georgios Tzimiropoulos, "Knowledge distillation via
softmax regression representation learning", ICLR 2021. Official code: jingyang2017/KD_SRRL,
``train_imagenet_distillation.py`` with ``distiller_zoo/AIN.py``.

A connector maps the student's penultimate feature :math:`f_s` to the teacher's width (the
code's ``transfer_conv``: a 1×1 convolution, BatchNorm and a ReLU; on a feature vector, a
linear map, BatchNorm and a ReLU). Two losses train it and the student:

.. math::
    \mathcal{L}_{FM} = \frac{1}{D}\lVert \bar c(f_s) - \bar f_t \rVert^2, \qquad
    \mathcal{L}_{SR} = \frac{1}{K}\lVert W_t\, c(f_s) - z_t \rVert^2,

the first matching the connected feature's channel means to the teacher's (the code's
``statm_loss``; on a vector the means are the values), the second asking the **teacher's
frozen classifier** :math:`W_t` to give the same logits :math:`z_t` for the student's connected
feature as for its own: the feature is judged by what the teacher's decision makes of it, not
coordinate by coordinate. The official ImageNet run adds both, weight 1, to the student's
cross-entropy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, flat_feature_targets, param

LAYER = "embedding"  # the penultimate feature, the classifier's input


def feature_statistics_loss(connected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal{L}_{FM}`: the squared difference of the two features' channel means
    (a map's spatial mean per channel; a vector's values), averaged over channels and the batch.
    (B, C, ...) each."""
    x = connected.reshape(connected.shape[0], connected.shape[1], -1).mean(2)
    y = teacher.reshape(teacher.shape[0], teacher.shape[1], -1).mean(2)
    return (x - y).pow(2).mean()


def softmax_regression_loss(teacher_head: nn.Module, connected: torch.Tensor,
                            teacher_logits: torch.Tensor) -> torch.Tensor:  # fmt: skip
    r""":math:`\mathcal{L}_{SR}`: the mean squared difference between the teacher's classifier
    applied to the student's connected feature and the teacher's own logits. The classifier is
    frozen; the gradient reaches the connector and the student through it."""
    return F.mse_loss(teacher_head(connected), teacher_logits)


class Connector(nn.Module):
    """The code's ``transfer_conv`` for a feature vector: linear (no bias), BatchNorm, ReLU, the
    linear weights drawn as the code draws its convolution's (He, fan-out)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=False)
        self.bn = nn.BatchNorm1d(d_out)
        nn.init.normal_(self.linear.weight, 0.0, math.sqrt(2.0 / d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.linear(x)))


@dataclass(frozen=True)
class SRRLParams:
    alpha: float = param(1.0, "α, weight of the feature statistics", 0.0, 1e4, 0.1,
                         "The official ImageNet run: 1")  # fmt: skip
    beta: float = param(1.0, "β, weight of the softmax regression", 0.0, 1e4, 0.1,
                        "The official ImageNet run: 1")  # fmt: skip


class SRRL(Distiller):
    """CE + α·L_FM + β·L_SR on the two models' penultimate features. Owns the connector and a
    frozen copy of the teacher's classifier (:attr:`Probe.teacher_head`); each epoch records how
    often the teacher's classifier, reading the student's connected feature, names the label and
    the teacher's own choice on the training images."""

    def __init__(self, params: SRRLParams, probe: Probe):
        super().__init__(params)
        if probe.teacher_head is None:
            raise ValueError("SRRL needs the teacher's classifier (a model with a head)")
        d_s, d_t = probe.student_shape(LAYER), probe.teacher_shape(LAYER)
        if len(d_s) != 1 or len(d_t) != 1:
            raise ValueError("SRRL reads the penultimate feature vectors (embedding) of both "
                             f"models, not maps of shape {d_s} and {d_t}")  # fmt: skip
        self.connector = Connector(d_s[0], d_t[0])
        self.teacher_head = copy.deepcopy(probe.teacher_head).requires_grad_(False)
        self._seen = 0
        self.register_buffer("counts", torch.zeros(2), persistent=False)

    def teacher_targets(self, out):
        return flat_feature_targets(out, LAYER)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher_head.eval()  # frozen, as the teacher is
        return self

    def forward(self, student, teacher, batch):
        p = self.params
        connected = self.connector(student.features[LAYER].flatten(1))
        with torch.no_grad():
            read = self.teacher_head(connected).argmax(1)
            self._seen += len(batch.y)
            self.counts += torch.stack(
                [(read == batch.y).sum(), (read == teacher["logits"].argmax(1)).sum()]
            ).float()
        return {
            "ce": F.cross_entropy(student.logits, batch.y),
            "fm": p.alpha * feature_statistics_loss(connected, teacher["feat"]),
            "sr": p.beta * softmax_regression_loss(self.teacher_head, connected, teacher["logits"]),
        }

    def epoch_summary(self) -> dict:
        seen, (right, agree) = self._seen, self.counts.tolist()
        self._seen = 0
        self.counts.zero_()
        if not seen:
            return {}
        return {"read_accuracy": round(right / seen, 5), "read_agreement": round(agree / seen, 5)}
