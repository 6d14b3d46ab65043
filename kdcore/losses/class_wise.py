r"""Class-wise self-knowledge distillation (CS-KD; Yun, Park, Lee & Shin 2020, CVPR,
arXiv:2003.13964): one network, no teacher. Its prediction on an image is taught by its own
prediction on **another image of the same class**, so that what it believes about the wrong
classes (its dark knowledge) is consistent within a class: the abstract reports fewer
overconfident predictions, smaller intra-class variation and better calibration.

.. math::
    \mathcal{L}_{cls}(x, x') = \mathrm{KL}\big(P(y \mid x'; \tilde\theta, T) \,\|\,
        P(y \mid x; \theta, T)\big),\qquad
    \mathcal{L}_{CS\text{-}KD} = \mathrm{CE}(x, y; \theta) + \lambda_{cls}\, T^2\,
        \mathcal{L}_{cls}(x, x')

where :math:`x'` is a random training image of :math:`x`'s class and :math:`\tilde\theta` a
fixed copy of the weights: no gradient flows through the partner's prediction. The authors'
code uses T = 4 and :math:`\lambda_{cls}` = 1.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..train import Batch, StepOutput
from .kd import kd_loss


def class_wise_loss(
    logits: torch.Tensor, partner_logits: torch.Tensor, T: float = 4.0
) -> torch.Tensor:
    r""":math:`T^2\,\mathcal{L}_{cls}`: the KL from the (detached) prediction on each image's
    same-class partner to the prediction on the image, both softened at T.
    logits, partner_logits: (B, C), row b's partner of row b's class. Returns a scalar, mean
    over the batch; 0 when the two predictions agree at every row."""
    return kd_loss(logits, partner_logits.detach(), T)


class PartnerSampler:
    """For each training example, a random other example of the same class, drawn afresh at
    every call (the paper's sampler pairs each image with a random one of its class). Keeps one
    tensor of example indices per class; ``generator`` makes the draws repeatable."""

    def __init__(self, labels: torch.Tensor, num_classes: int, generator: torch.Generator):
        self.generator = generator
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
        self.counts = torch.tensor([len(ix) for ix in self.by_class])
        if (self.counts[labels.unique().cpu()] < 2).any():
            raise ValueError("class-wise self-distillation needs two training images of a class")
        # every class's indices in one row, padded: a draw is a lookup, not a Python loop
        self.table = torch.zeros(num_classes, int(self.counts.max()), dtype=torch.long)
        self.slot = torch.zeros(len(labels), dtype=torch.long)  # each example's place in its row
        for c, ix in enumerate(self.by_class):
            self.table[c, : len(ix)] = ix.cpu()
            self.slot[ix.cpu()] = torch.arange(len(ix))

    def __call__(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Partners (B,) of the examples ``idx`` (B,) with labels ``y`` (B,), never themselves."""
        y, idx = y.cpu(), idx.cpu()
        n = self.counts[y]  # (B,)
        # uniform over the class's other n - 1 members: draw among n - 1 and skip the example
        r = (torch.rand(len(y), generator=self.generator) * (n - 1)).long()  # (B,) in [0, n-2]
        r = r + (r >= self.slot[idx]).long()
        return self.table[y, r]


def class_wise_step(
    sampler: PartnerSampler, x_train: torch.Tensor, T: float = 4.0, weight: float = 1.0
):
    """The trainer's step for one model (:func:`kdcore.train.fit`): cross-entropy on the batch,
    and ``weight`` × :func:`class_wise_loss` against the model's own prediction, without
    gradient, on a same-class partner of every image. ``weight`` 0 is plain cross-entropy (the
    partners are then not even drawn)."""

    def step(model: nn.Module, batch: Batch) -> StepOutput:
        logits = model(batch.x)  # (B, C)
        parts = {"ce": F.cross_entropy(logits, batch.y)}
        if weight > 0:
            partners = sampler(batch.index, batch.y).to(x_train.device)
            with torch.no_grad():  # the fixed copy: the same weights, no gradient
                partner_logits = model(x_train[partners])
            parts["cls"] = weight * class_wise_loss(logits, partner_logits, T)
        return StepOutput(logits, parts)

    return step


@torch.no_grad()
def intra_class_kl(logits: torch.Tensor, labels: torch.Tensor, pairs: torch.Tensor,
                   T: float = 4.0) -> float:  # fmt: skip
    """How differently a model sees two images of one class: the mean KL between its softened
    predictions on fixed same-class pairs ``pairs`` (P, 2) of rows of ``logits`` (N, C), nats.
    ``labels`` only checks that each pair shares its class."""
    a, b = pairs[:, 0], pairs[:, 1]
    if not torch.equal(labels[a], labels[b]):
        raise ValueError("every pair must be two images of one class")
    return float(kd_loss(logits[a], logits[b], T) / (T * T))


@torch.no_grad()
def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (Guo, Pleiss, Sun & Weinberger 2017, §2): the predictions grouped by confidence
    into ``bins`` equal-width bins, then the bins' |accuracy − mean confidence| weighted by
    their share of the examples. 0 for a perfectly calibrated model. logits (N, C), labels (N,)."""
    prob = logits.softmax(1)
    conf, pred = prob.max(1)
    right = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1, device=logits.device)
    ece = torch.zeros((), device=logits.device)
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean() * (right[inside].mean() - conf[inside].mean()).abs()
    return float(ece)
