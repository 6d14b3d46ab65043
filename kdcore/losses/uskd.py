r"""Universal self-knowledge distillation: soft labels a network makes for itself, without a
teacher (Yang, Zeng, Li, Zhang, Yuan & Li 2023, the teacher-free half of the NKD paper).

Zhendong Yang, Ailing Zeng, Zhe Li, Tianke Zhang, Chun Yuan, Yu Li, "From Knowledge
Distillation to Self-Knowledge Distillation: A Unified Approach with Normalized Loss and
Customized Soft Labels", ICCV 2023, arXiv:2303.13005, §4. Official code: yzd-v/cls_KD,
``mmcls/distillation/losses/uskd.py``, with its configs (CIFAR-100 ResNet-18: α = 0.1, β = 0.1,
μ = 0.1; ImageNet ResNet-18: α = 1, β = 0.1, μ = 0.005), beside the network's own
cross-entropy at weight 1.

NKD's two parts need two soft labels, a weight for the label's log-probability and a
distribution over the other classes. USKD makes both from the network itself:

- **the target label** is the network's own probability of the label, squared and re-centred
  on 1 over the batch, :math:`\tilde T_t = S_t^2 + 1 - \overline{S_t^2}`, without gradient:
  images it is surer of weigh more than 1, the others less;
- **the non-target labels** follow Zipf's law, :math:`\tilde T_i \propto 1 / r_i` for the rank
  :math:`r_i` of class i among all K classes, normalised over the K − 1 that are not the label.
  The ranking comes from a **weak** classifier, one linear layer on an intermediate feature
  (pooled), trained on labels smoothed by 0.1 at weight μ, added to the network's own
  normalised prediction:

.. math::
    \mathcal{L}_{USKD} = -\alpha\,\tilde T_t \log S_t
        - \beta \sum_{i \ne t} \tilde T_i \log \hat S_i
        - \mu \sum_i y^{0.1}_i \log W_i ,

with :math:`\hat S` the softmax over the non-target logits and W the weak classifier's
probabilities. As the authors' code, the rank adds the weak probabilities over
:math:`1 - W_t` to the network's **log**-probabilities over :math:`1 - \log S_t` (the code
reuses one name after the log-softmax): it orders the network's own classes as its
probabilities would, and counts for little beside the weak term, whose values lie in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param

# the official configs' weights: (α, β, μ)
CIFAR = (0.1, 0.1, 0.1)
IMAGENET = (1.0, 0.1, 0.005)
SMOOTH = 0.1  # the weak classifier's labels: 0.9 on the label plus 0.1 spread over all K
EPS = 1e-6  # the code's guard in 1 − W_t and 1 − log S_t


def target_label(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""The soft target label :math:`S_t^2 + 1 - \overline{S_t^2}` of each example (B,), the
    mean over the batch, without gradient: its batch mean is exactly 1."""
    s_t = F.softmax(student_logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    sq = s_t.detach() ** 2
    return sq + 1 - sq.mean()


def rank_scores(student_logits: torch.Tensor, weak_logits: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:  # fmt: skip
    r"""What the classes are ranked by (B, K), as the authors' code:
    :math:`W_i / (1 - W_t) + \log S_i / (1 - \log S_t)`, higher first."""
    y = labels.unsqueeze(1)
    w = F.softmax(weak_logits, dim=1)
    log_s = F.log_softmax(student_logits, dim=1)
    return w / (1 - w.gather(1, y) + EPS) + log_s / (1 - log_s.gather(1, y) + EPS)


def zipf_labels(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Zipf's soft non-target labels (B, K − 1): each class's 1 / rank among all K by
    ``scores`` (rank 1 the highest), the label's column removed, normalised to sum to one."""
    order = scores.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1) + 1  # each class's place, 1 for the highest score
    z = 1.0 / rank.to(scores.dtype)
    keep = ~F.one_hot(labels, scores.shape[1]).bool()
    z = z[keep].view(len(labels), -1)
    return z / z.sum(1, keepdim=True)


def non_target_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The log-softmax over the K − 1 logits that are not the label's (B, K − 1)."""
    keep = ~F.one_hot(labels, logits.shape[1]).bool()
    return F.log_softmax(logits[keep].view(len(labels), -1), dim=1)


def uskd_parts(student_logits: torch.Tensor, weak_logits: torch.Tensor, labels: torch.Tensor,
               alpha: float, beta: float, mu: float) -> dict[str, torch.Tensor]:  # fmt: skip
    r"""USKD's three terms, each a batch mean and already weighted (the network's own
    cross-entropy is not among them):

    .. math:: \alpha\,\mathcal L_t = -\alpha\,\tilde T_t \log S_t,\quad
        \beta\,\mathcal L_{nt} = -\beta \sum_{i \ne t} \tilde T_i \log \hat S_i,\quad
        \mathcal L_w = -\mu \sum_i y^{0.1}_i \log W_i

    student_logits, weak_logits: (B, K) with K ≥ 2; labels: (B,)."""
    k = student_logits.shape[1]
    log_s_t = F.log_softmax(student_logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    target = -(target_label(student_logits, labels) * log_s_t).mean()
    smooth = F.one_hot(labels, k).to(weak_logits.dtype) * (1 - SMOOTH) + SMOOTH / k
    weak = -(mu * smooth * F.log_softmax(weak_logits, dim=1)).sum(1).mean()
    zipf = zipf_labels(rank_scores(student_logits, weak_logits, labels), labels).detach()
    non = -(zipf * non_target_log_probs(student_logits, labels)).sum(1).mean()
    return {"target": alpha * target, "non_target": beta * non, "weak": weak}


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class USKDParams:
    feature: str = param(
        "hidden1", "Weak classifier on", choices="student features",
        help="The intermediate feature the weak linear classifier reads (pooled if a map): the "
        "authors' code takes the stage before the last.",
    )  # fmt: skip
    alpha: float = param(CIFAR[0], "α, weight of the target label", 0.0, 100.0, 0.05,
                         "The official configs: 0.1 on CIFAR-100, 1 on ImageNet")  # fmt: skip
    beta: float = param(CIFAR[1], "β, weight of the Zipf labels", 0.0, 100.0, 0.05,
                        "The official configs: 0.1")  # fmt: skip
    mu: float = param(CIFAR[2], "μ, weight of the weak classifier", 0.0, 100.0, 0.005,
                      "The official configs: 0.1 on CIFAR-100, 0.005 on ImageNet")  # fmt: skip


class USKD(Distiller):
    """CE + USKD's terms. The weak classifier is the distiller's, trained with the network and
    saved beside it. Each epoch records the weak classifier's training accuracy, the range of
    the target labels, and how often the label ranks first (its Zipf labels then 1/2 ... 1/K)."""

    def __init__(self, params: USKDParams, probe: Probe):
        super().__init__(params)
        shape = probe.student_shape(params.feature)
        self.weak = nn.Linear(shape[0] if len(shape) == 3 else math.prod(shape),
                              probe.num_classes)  # fmt: skip
        # per epoch: examples seen (on the host); on the device, how many the weak classifier
        # got right and how many had the label ranked first; the lowest and highest label
        self._seen = 0
        self.register_buffer("counts", torch.zeros(2), persistent=False)
        self.register_buffer("span", torch.tensor([float("inf"), float("-inf")]),
                             persistent=False)  # fmt: skip

    def weak_logits(self, feature: torch.Tensor) -> torch.Tensor:
        if feature.dim() == 4:
            feature = F.adaptive_avg_pool2d(feature, 1)  # the code's neck: global pooling
        return self.weak(feature.flatten(1))

    def forward(self, student, teacher, batch):
        p = self.params
        s, y = student.logits, batch.y
        w = self.weak_logits(student.features[p.feature])
        with torch.no_grad():
            first = rank_scores(s, w, y).argmax(1) == y
            label = target_label(s, y)
            self._seen += len(y)
            self.counts += torch.stack([(w.argmax(1) == y).sum(), first.sum()]).float()
            self.span.copy_(torch.stack([torch.minimum(self.span[0], label.min()),
                                         torch.maximum(self.span[1], label.max())]))  # fmt: skip
        return {"ce": F.cross_entropy(s, y), **uskd_parts(s, w, y, p.alpha, p.beta, p.mu)}

    def epoch_summary(self) -> dict:
        seen, (weak, first), (lo, hi) = self._seen, self.counts.tolist(), self.span.tolist()
        self._seen = 0
        self.counts.zero_()
        self.span.copy_(torch.tensor([float("inf"), float("-inf")]))
        if not seen:
            return {}
        return {"weak_accuracy": round(weak / seen, 5), "label_first": round(first / seen, 5),
                "target_label_min": round(lo, 4), "target_label_max": round(hi, 4)}  # fmt: skip


# ----------------------------------------------------------------------------- what it shapes


def non_target_profile(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A model's distribution over the wrong classes by rank (K − 1,): for each example its
    probabilities of the classes that are not the label, normalised to sum to one and sorted
    from the highest; the mean over the examples."""
    p = non_target_log_probs(logits, labels).exp()
    return p.sort(dim=1, descending=True).values.mean(0)


def zipf_profile(num_classes: int) -> torch.Tensor:
    """USKD's non-target labels by rank where the label itself ranks first (K − 1,): 1/2, 1/3,
    ..., 1/K, normalised."""
    z = 1.0 / torch.arange(2, num_classes + 1, dtype=torch.float64)
    return (z / z.sum()).float()
