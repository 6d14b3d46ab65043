"""Glue between the KD-agnostic trainer and the methods table.

:func:`make_loss_fn` turns a method from :data:`kdcore.losses.METHODS` into the trainer's
``loss_fn``; :func:`distill` trains a student from a frozen teacher. When the inputs are not
augmented the teacher's logits are computed once for the whole transfer set and sliced per batch
(a teacher forward pass per step would cost as much as the student's own forward pass).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch
from torch import nn

from .data import Dataset
from .losses import METHODS
from .train import Batch, Callback, FitResult, StepOutput, TrainConfig, fit, predict_logits


def make_loss_fn(method: str, T: float, alpha: float, teacher: nn.Module | None = None):
    """A trainer step for ``method``: student forward, teacher logits (cached or live), parts."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    m = METHODS[method]
    if m.uses_teacher and teacher is None:
        raise ValueError(f"method {method!r} needs a teacher")

    def loss_fn(model: nn.Module, batch: Batch) -> StepOutput:
        s = model(batch.x)  # (B, K)
        t = batch.extras.get("teacher_logits")
        if t is None and m.uses_teacher:
            with torch.no_grad():
                t = teacher(batch.x)  # (B, K), live: the inputs were augmented
        return StepOutput(s, m.parts(s, t, batch.y, T, alpha))

    return loss_fn


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def distill(
    student: nn.Module,
    teacher: nn.Module | None,
    data: Dataset,
    cfg: TrainConfig,
    method: str = "kd",
    T: float = 4.0,
    alpha: float = 0.9,
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> FitResult:
    """Train ``student`` on ``data`` with ``method``; the teacher stays frozen in eval mode.

    ``teacher_logits`` (N_train, K) may be passed when the caller already has them (a sweep
    training many students from one teacher); otherwise they are computed here when the inputs
    are not augmented.
    """
    loss_fn = make_loss_fn(method, T, alpha, teacher)  # first: checks the method and teacher
    extras: dict[str, torch.Tensor] = {}
    if METHODS[method].uses_teacher:
        freeze(teacher)
        if cfg.augment_shift == 0:
            if teacher_logits is None:
                teacher_logits = predict_logits(teacher, data.x_train, cfg.eval_batch_size)
            elif teacher_logits.shape[0] != len(data.y_train):
                # Logits of another transfer set would be sliced by the wrong indices, silently.
                raise ValueError(
                    f"teacher_logits has {teacher_logits.shape[0]} rows but the training set"
                    f" has {len(data.y_train)} examples"
                )
            extras["teacher_logits"] = teacher_logits
    return fit(student, data, cfg, loss_fn, extras, callbacks, cancel)
