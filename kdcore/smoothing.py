"""What label smoothing does to a teacher, as Müller, Kornblith & Hinton (2019) look at it.

"When does label smoothing help?" (NeurIPS 2019, arXiv:1906.02629) train the same network with
hard labels and with label smoothing (the target (1 − α)·y + α/K) and find that the smoothed one
generalises as well or better and is better calibrated, yet teaches a student worse by
distillation. To see why they project the penultimate layer's activations onto a plane (§2):

1. pick three classes;
2. find an orthonormal basis of the plane through the three classes' *templates*, the rows of
   the last layer's weight matrix (logit k = w_k · h + b_k);
3. project the activations h of examples of those classes onto that plane.

The plane holds exactly the directions that set the three logits' differences, (w_b − w_a) · h
and (w_c − w_a) · h, so where an example lands in it is what the three logits say about it.
With label smoothing each class gathers into a tight cluster, all at the same distance from the
others: the differences among a class's examples, and how much each looks like another class,
are erased from the logits, and that is what a student learns by distillation.

Pure torch (no Streamlit). The label-smoothing loss itself is
:func:`kdcore.losses.modes.label_smoothing_loss`; the non-target distribution is NCKD's
(:func:`kdcore.losses.dkd.non_target_log_probs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .losses.dkd import non_target_log_probs
from .models import KDModel


def head_of(model: KDModel) -> nn.Linear:
    """The last layer, logits = head(embedding): every classifier here names it ``head``;
    ValueError (one line) for a model without one."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear head whose rows are templates")
    return head


def template_basis(weight: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """An orthonormal basis (2, D) of the plane through the templates ``weight[classes]`` of
    three classes (Müller et al. 2019, §2): Gram-Schmidt on w_b − w_a and w_c − w_a, in float64.

    weight: (K, D), the last layer's weight. ValueError when the classes are not three distinct
    valid ones, or their templates lie on one line (no plane through them)."""
    k = weight.shape[0]
    if len(classes) != 3 or len(set(classes)) != 3 or not all(0 <= c < k for c in classes):
        raise ValueError(f"need three different classes of 0..{k - 1}, got {list(classes)}")
    w = weight.detach().to(torch.float64)[list(classes)]  # (3, D)
    diffs = torch.stack([w[1] - w[0], w[2] - w[0]], dim=1)  # (D, 2)
    q, r = torch.linalg.qr(diffs)  # q: (D, 2) orthonormal columns, r: (2, 2) upper triangular
    if r.diagonal().abs().min() <= 1e-9 * max(float(diffs.abs().max()), 1e-30):
        raise ValueError(f"the templates of classes {list(classes)} lie on one line")
    return q.T.contiguous()  # (2, D)


@torch.no_grad()
def embeddings(model: KDModel, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """The penultimate layer's activations (N, D) of ``x`` (N, ...), the ``embedding`` feature
    the head reads, in eval mode; the model is left in the mode it was in."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model.forward_features(x[i : i + batch]).features["embedding"]
                          for i in range(0, len(x), batch)]).flatten(1)  # fmt: skip
    finally:
        model.train(was)


@torch.no_grad()
def template_projection(
    model: KDModel, x: torch.Tensor, classes: Sequence[int], batch: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """The penultimate activations of ``x`` (N, ...) projected onto the plane through the
    templates of ``classes``, as coordinates (N, 2) from the first class's template, and the
    three templates' own coordinates (3, 2) (the first at the origin)."""
    head = head_of(model)
    basis = template_basis(head.weight, classes)  # (2, D)
    w = head.weight.detach().to(torch.float64)[list(classes)]  # (3, D)
    points = (embeddings(model, x, batch).to(torch.float64) - w[0]) @ basis.T  # (N, 2)
    return points, (w - w[0]) @ basis.T


def cluster_spread(points: torch.Tensor, labels: torch.Tensor) -> float:
    """How tight the classes' clusters are against how far apart they lie: the mean over classes
    of each cluster's RMS distance to its centroid, over the mean distance between centroids.
    points: (N, d); labels: (N,), at least two classes with points. 0: every class a point."""
    classes = labels.unique()
    if len(classes) < 2:
        raise ValueError("need points of at least two classes")
    p = points.to(torch.float64)
    centroids = torch.stack([p[labels == c].mean(0) for c in classes])  # (C, d)
    spread = torch.stack([
        (p[labels == c] - centroids[i]).pow(2).sum(1).mean().sqrt() for i, c in enumerate(classes)
    ]).mean()  # fmt: skip
    gaps = torch.pdist(centroids)  # (C(C-1)/2,)
    return float(spread / gaps.mean().clamp_min(1e-30))


def non_target_entropy(logits: torch.Tensor, labels: torch.Tensor, T: float) -> torch.Tensor:
    """How evenly the softened prediction (at T) spreads over the K − 1 wrong classes, per
    example: the entropy of NCKD's non-target distribution over log(K − 1), from 0 (all on one
    wrong class: "this 4 looks like a 9") to 1 (uniform: nothing said about which wrong class it
    resembles). logits: (N, K), K >= 3; labels: (N,). Returns (N,) float64."""
    k = logits.shape[-1]
    if k < 3:
        raise ValueError("need at least three classes (two wrong ones to compare)")
    log_p = non_target_log_probs(logits.detach().to(torch.float64), labels, T)  # (N, K-1)
    return -(log_p.exp() * log_p).sum(1) / math.log(k - 1)
