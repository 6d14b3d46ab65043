"""Distillation losses: one pure function per method, and the one table of methods.

A *method* turns a batch into named loss parts whose sum is optimised. Each entry of
:data:`METHODS` is a :class:`Method`: what it needs from the teacher and a function
``parts(student_logits, teacher_logits, labels, cfg) -> dict[str, Tensor]``. Adding a method means
one loss file, one line here, one test file, one page section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .kd import distillation_loss, kd_loss, logit_matching_loss, softmax_t

__all__ = [
    "METHODS",
    "Method",
    "distillation_loss",
    "kd_loss",
    "logit_matching_loss",
    "softmax_t",
]

Parts = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    uses_teacher: bool
    parts: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, float, float], Parts]
    citation: str


def _hard(s, t, y, T, alpha) -> Parts:
    return {"ce": F.cross_entropy(s, y)}


def _kd(s, t, y, T, alpha) -> Parts:
    # The same mix as distillation_loss, kept as two named parts so plots can show each.
    return {"ce": (1.0 - alpha) * F.cross_entropy(s, y), "kd": alpha * kd_loss(s, t, T)}


def _logits(s, t, y, T, alpha) -> Parts:
    return {"ce": (1.0 - alpha) * F.cross_entropy(s, y), "l2": alpha * logit_matching_loss(s, t)}


METHODS: dict[str, Method] = {
    "hard": Method("hard", "Hard labels only", False, _hard, "cross-entropy baseline"),
    "kd": Method("kd", "Knowledge distillation", True, _kd, "Hinton, Vinyals & Dean 2015"),
    "logits": Method(
        "logits", "Logit matching", True, _logits, "Buciluǎ, Caruana & Niculescu-Mizil 2006"
    ),
}
