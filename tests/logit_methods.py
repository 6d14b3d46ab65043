"""What the tests of a method on logits alone (DIST, z-scored KD) share: its named parts for given
logits, and one epoch of real training."""

from __future__ import annotations

import math

import torch

from kdcore.data import Dataset
from kdcore.distill import distill, probe
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig


def parts_on_logits(
    name: str, params: dict, data: Dataset, s: torch.Tensor, t: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The registered method's loss parts for student logits ``s`` and teacher logits ``t``
    (B, K) with labels ``y`` (B,), the student's features from ``data``'s first B images."""
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    m = METHODS[name]
    d = m.build(m.make_params(params), probe(student, teacher, data))
    n = len(y)
    out = student.forward_features(data.x_train[:n])
    out.logits = s
    return d(out, {"logits": t}, Batch(data.x_train[:n], y, torch.arange(n)))


def one_epoch_losses(name: str, data: Dataset) -> dict[str, float]:
    """One epoch of a 30-30 student from a 100-100 teacher by method ``name``: it completes with
    every loss part finite; the parts of its last epoch."""
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    result = distill(student, teacher, data, cfg, name)
    assert result.ok, result.message
    losses = result.history[-1].losses
    assert all(math.isfinite(v) for v in losses.values()), losses
    return losses
