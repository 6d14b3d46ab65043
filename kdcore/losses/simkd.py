r"""SimKD (Chen, Mei, Zhang, Wang, Feng & Chen 2022): the student keeps the teacher's classifier.

Defang Chen, Jian-Ping Mei, Hailin Zhang, Can Wang, Yan Feng, Chun Chen, "Knowledge
Distillation with the Reused Teacher Classifier", CVPR 2022, arXiv:2203.14001. Official code:
DefangChen/SimKD, ``models/util.py`` (class ``SimKD``) and ``helper/loops.py`` (``simkd``).

The teacher's last layer is already a good classifier of the teacher's features, so the student
does not learn one: a projector :math:`P` maps the student's last feature :math:`f^s` to the
teacher's width, one squared error pulls it onto the teacher's feature :math:`f^t`, and at test
time the **teacher's frozen classifier** :math:`W_t` reads it:

.. math::
    \mathcal{L}_{SimKD} = \frac{1}{C H W}\,\lVert f^t - P(f^s) \rVert_2^2, \qquad
    p^s = \operatorname{softmax}\big(W_t\,\operatorname{pool}(P(f^s))\big).

That is the whole objective: the official command sets the cross-entropy and KL weights to 0
(``-c 0 -d 0 -b 1``). Were the features equal, the student would answer exactly as the teacher
does. The projector is a bottleneck (1 × 1 convolution to :math:`C_t / f` channels, 3 × 3, then
1 × 1 to :math:`C_t`, each followed by BatchNorm and ReLU); its factor :math:`f` trades the
deployed network's extra parameters against how closely it can match (the official table: 2,
4 and 8). On feature vectors, as an MLP's, the three layers are linear maps. Where the two maps'
sizes differ, the larger is average-pooled to the smaller, as the official code does.

The deployed network is therefore the student, the projector and the teacher's classifier
(:meth:`SimKD.deploy`): it is what trains, what is evaluated and what is counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param
from ..models import KDModel, ModelOutput

PROJECTED = "projected"  # the deployed network's feature: the student's, through the projector


def at_size(feature: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A map average-pooled to the spatial ``size`` (H, W) (the official code's pooling of the
    larger map); a vector, or a map of that size already, unchanged."""
    if feature.dim() != 4 or tuple(feature.shape[-2:]) == tuple(size):
        return feature
    return F.adaptive_avg_pool2d(feature, size)


def align(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two maps at one spatial size: the larger average-pooled to the smaller (the official
    ``SimKD.forward``); vectors, and maps of one size, unchanged. (B, C, H, W) or (B, C) each."""
    if student.dim() == 4 and student.shape[-1] > teacher.shape[-1]:
        return at_size(student, teacher.shape[-2:]), teacher
    return student, at_size(teacher, student.shape[-2:]) if student.dim() == 4 else teacher


def simkd_loss(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal{L}_{SimKD}`: the mean squared difference between the projected student
    feature and the teacher's, over the batch and every element (``nn.MSELoss``). Same shapes,
    (B, C, H, W) or (B, C); the teacher's is a target (no gradient)."""
    return F.mse_loss(projected, teacher.detach())


def pooled(feature: torch.Tensor) -> torch.Tensor:
    """What the teacher's classifier reads: a map's spatial mean (B, C); a vector as it is."""
    return feature.mean((2, 3)) if feature.dim() == 4 else feature


def reused_logits(head: nn.Module, projected: torch.Tensor) -> torch.Tensor:
    r""":math:`W_t\,\operatorname{pool}(P(f^s))`: the teacher's classifier on the student's
    projected feature, (B, K)."""
    return head(pooled(projected))


class Projector(nn.Module):
    """The official bottleneck: C_s → C_t/f → C_t/f → C_t, BatchNorm and ReLU after each layer,
    no biases; 1 × 1, 3 × 3, 1 × 1 convolutions on maps, linear maps on vectors."""

    def __init__(self, c_in: int, c_out: int, factor: int, spatial: bool):
        super().__init__()
        mid = max(1, c_out // factor)
        if spatial:
            layers = [nn.Conv2d(c_in, mid, 1, bias=False), nn.Conv2d(mid, mid, 3, padding=1,
                      bias=False), nn.Conv2d(mid, c_out, 1, bias=False)]  # fmt: skip
            norm = nn.BatchNorm2d
        else:
            layers = [nn.Linear(c_in, mid, bias=False), nn.Linear(mid, mid, bias=False),
                      nn.Linear(mid, c_out, bias=False)]  # fmt: skip
            norm = nn.BatchNorm1d
        parts: list[nn.Module] = []
        for layer in layers:
            parts += [layer, norm(layer.weight.shape[0]), nn.ReLU()]
        self.net = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ReusedClassifier(KDModel):
    """The deployed SimKD student: the student's network up to ``layer``, the projector and the
    teacher's frozen classifier. Its features are the student's, plus ``"projected"``; its
    logits the teacher's classifier's reading of the projected feature."""

    def __init__(self, student: KDModel, projector: Projector, head: nn.Module, layer: str,
                 size: tuple[int, ...]):  # fmt: skip
        super().__init__()
        self.student, self.projector, self.head = student, projector, head
        self.layer, self.size = layer, size  # the spatial size the projector works at

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        out = self.student.forward_features(x)
        projected = self.projector(at_size(out.features[self.layer], self.size))
        return ModelOutput(
            reused_logits(self.head, projected), {**out.features, PROJECTED: projected}
        )

    def classifier(self) -> nn.Module:
        return self.head

    def train(self, mode: bool = True):
        super().train(mode)
        self.head.eval()  # frozen, as the teacher is
        return self


@dataclass(frozen=True)
class SimKDParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="The student's last feature: the last stage's map in the official code (stage3 for "
        "the CIFAR ResNets here), the penultimate vector for an MLP.",
    )  # fmt: skip
    teacher_layer: str = param(
        "embedding", "Teacher layer", choices="teacher features",
        help="The feature the teacher's classifier reads (pooled, for a map).",
    )  # fmt: skip
    factor: int = param(2, "f, the projector's bottleneck factor", 1, 64, 1,
                        "Its middle width is the teacher's width / f: 2 officially; 4 and 8 "
                        "make the deployed network smaller")  # fmt: skip
    beta: float = param(1.0, "β, weight of the feature loss", 0.0, 1e4, 0.1,
                        "The official command: 1, with no cross-entropy and no KD")  # fmt: skip


class SimKD(Distiller):
    """β·L_SimKD and nothing else. Owns the projector and a frozen copy of the teacher's
    classifier; :meth:`deploy` wraps the student with both, and that network trains and answers
    at test time. Each epoch records how often the deployed student names the teacher's own
    choice on the training images."""

    def __init__(self, params: SimKDParams, probe: Probe):
        super().__init__(params)
        head = probe.teacher_head
        if head is None:
            raise ValueError("SimKD reuses the teacher's classifier: this teacher has no single "
                             "last layer that reads one feature")  # fmt: skip
        s = probe.student_shape(params.student_layer)
        t = probe.teacher_shape(params.teacher_layer)
        if len(s) != len(t) or len(s) not in (1, 3):
            raise ValueError(f"SimKD projects a map onto a map or a vector onto a vector: student "
                             f"{params.student_layer} is {s}, teacher {params.teacher_layer} is "
                             f"{t}")  # fmt: skip
        t_feat = probe.teacher.features[params.teacher_layer]
        try:
            with torch.no_grad():
                read = head(pooled(t_feat))
        except RuntimeError:  # a width the classifier does not take
            read = torch.empty(0)
        if read.shape != probe.teacher.logits.shape or not torch.allclose(
            read, probe.teacher.logits, atol=1e-4, rtol=1e-4
        ):
            raise ValueError(f"the teacher's classifier does not read {params.teacher_layer}: "
                             "choose the feature its last layer reads (embedding, or the map "
                             "that is pooled into it)")  # fmt: skip
        self.size = tuple(min(a, b) for a, b in zip(s[1:], t[1:], strict=True))
        self.projector = Projector(s[0], t[0], params.factor, spatial=len(s) == 3)
        self.head = copy.deepcopy(head).requires_grad_(False)
        self._nets: dict[int, ReusedClassifier] = {}  # not a submodule: the student is not ours
        self._seen = 0
        self.register_buffer("agree", torch.zeros(()), persistent=False)

    def deploy(self, student: KDModel) -> KDModel:
        if id(student) not in self._nets:
            self._nets[id(student)] = ReusedClassifier(
                student, self.projector, self.head, self.params.student_layer, self.size
            )
        return self._nets[id(student)]

    def train(self, mode: bool = True):
        super().train(mode)
        self.head.eval()
        return self

    def teacher_targets(self, out):
        """The teacher's logits and its feature at the size the projector works at (a larger
        map pooled once here, not at every step)."""
        return {"logits": out.logits, "feat": at_size(out.features[self.params.teacher_layer],
                                                      self.size)}  # fmt: skip

    def forward(self, student, teacher, batch):
        if PROJECTED not in student.features:
            raise ValueError("SimKD trains the deployed network (SimKD.deploy), not the bare "
                             "student")  # fmt: skip
        projected, target = student.features[PROJECTED], teacher["feat"]  # one size: aligned
        with torch.no_grad():
            self._seen += len(batch.y)
            self.agree += (student.logits.argmax(1) == teacher["logits"].argmax(1)).sum()
        return {"simkd": self.params.beta * simkd_loss(projected, target)}

    def epoch_summary(self) -> dict:
        seen, agree = self._seen, float(self.agree)
        self._seen = 0
        self.agree.zero_()
        return {"train_agreement": round(agree / seen, 5)} if seen else {}
