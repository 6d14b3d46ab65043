"""Glue between the KD-agnostic trainer and a method's :class:`~kdcore.method.Distiller`.

:func:`distill` trains a student with any registered method: it probes both models on a few
training images so the method can size its modules, builds the distiller, computes the teacher's
targets once for the whole transfer set when the inputs are not augmented (a teacher forward pass
per step would cost as much as the student's own), and runs each of the method's stages through
:func:`kdcore.train.fit` with the distiller's modules trained beside the student.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .data import STATS, Dataset
from .method import Distiller, Probe
from .methods import get_method
from .models import KDModel, ModelOutput, build_model
from .train import Batch, Callback, EpochRecord, FitResult, StepOutput, TrainConfig, fit

# The (student, teacher) inputs of a batch where they are not its own images
# (kdcore.consistency.view_for).
View = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]

# Teacher targets larger than this are computed per batch instead of cached (e.g. a wide conv
# feature map over all of MNIST would take gigabytes).
CACHE_LIMIT_MB = float(os.environ.get("KD_TARGET_CACHE_MB", "1024"))


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def predict_targets(
    teacher: KDModel,
    select: Callable[[ModelOutput], dict[str, torch.Tensor]],
    x: torch.Tensor,
    batch_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """``select(teacher.forward_features(batch))`` for every row of ``x``, concatenated."""
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(x), batch_size):
        for k, v in select(teacher.forward_features(x[i : i + batch_size])).items():
            parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def probe(student: KDModel, teacher: KDModel | None, data: Dataset, n: int = 8) -> Probe:
    """Both models' outputs on the first ``n`` training images, in eval mode."""
    x = data.x_train[:n]
    was = student.training
    student.eval()
    with torch.no_grad():
        s = student.forward_features(x)
        t = teacher.forward_features(x) if teacher is not None else None
    student.train(was)
    head = teacher.classifier() if teacher is not None else None
    return Probe(s, t, data.num_classes, len(data.y_train), teacher_head=head)


def check_fit(
    method: str, params: dict[str, Any], student: str, teacher: str, dataset: str, num_train: int
) -> None:
    """Raise ValueError (one line) where ``method`` with ``params`` cannot pair these two
    architectures on ``dataset``'s images (a layer one of them lacks, channel counts FSP needs,
    maps a spatial method needs): before anything trains, both models untrained, probed on two
    blank images. Remembered per configuration (the lab asks on every rerun)."""
    problem = _fit_problem(method, json.dumps(params, sort_keys=True), student, teacher, dataset,
                           num_train)  # fmt: skip
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=64)
def _fit_problem(method: str, params: str, student: str, teacher: str, dataset: str,
                 num_train: int) -> str:  # fmt: skip
    m = get_method(method)
    channels = len(STATS[dataset][0])
    shape = (channels, 28, 28) if channels == 1 else (channels, 32, 32)
    classes = 100 if dataset == "cifar100" else 10
    x = torch.zeros(2, *shape)
    try:
        with torch.no_grad():
            s = build_model(student, classes, shape).eval().forward_features(x)
            t, head = None, None
            if m.uses_teacher:
                t_model = build_model(teacher, classes, shape).eval()
                t, head = t_model.forward_features(x), t_model.classifier()
        m.build(m.make_params(json.loads(params)), Probe(s, t, classes, num_train, head))
    except ValueError as err:
        return " ".join(str(err).split())
    return ""


def build_distiller(
    method: str,
    params: Any,
    student: KDModel,
    teacher: KDModel | None,
    data: Dataset,
) -> Distiller:
    """The method's distiller for these models, on the data's device. Raises ValueError (one
    line) for an unknown method, a missing teacher or parameters that do not fit the models."""
    m = get_method(method)
    if m.uses_teacher and teacher is None:
        raise ValueError(f"method {method!r} needs a teacher")
    p = m.make_params(params)
    if m.uses_teacher:
        freeze(teacher)  # before the probe: a train-mode pass would move BatchNorm statistics
    return m.build(p, probe(student, teacher if m.uses_teacher else None, data)).to(data.device)


def make_step(
    distiller: Distiller,
    teacher: KDModel | None,
    cached: bool,
    view: View | None = None,
):
    """The trainer's step: the student's logits and features, the teacher's targets (sliced
    from the cache, or computed now when the inputs were augmented), the method's parts.
    ``view(batch)`` gives the student's and the teacher's inputs where they are not the batch's
    own images (:func:`kdcore.consistency.view_for`); the teacher then runs on its input."""

    def step(student: KDModel, batch: Batch) -> StepOutput:
        x_t = batch.x
        if view is not None:
            x, x_t = view(batch)
            batch = replace(batch, x=x)
        out = student.forward_features(batch.x)  # logits (B, K) and named features
        if cached or teacher is None:
            targets = {k[2:]: v for k, v in batch.extras.items() if k.startswith("t:")}
        else:
            with torch.no_grad():
                targets = distiller.teacher_targets(teacher.forward_features(x_t))
        parts = distiller(out, targets, batch)
        return StepOutput(out.logits, parts)

    return step


def cache_targets(
    distiller: Distiller, teacher: KDModel, data: Dataset, cfg: TrainConfig, given: dict | None
) -> dict[str, torch.Tensor] | None:
    """Teacher targets for the whole training set, or None when they must be computed live."""
    n = len(data.y_train)
    if given is not None:
        for k, v in given.items():
            if v.shape[0] != n:
                # Targets of another transfer set would be sliced by the wrong indices, silently.
                raise ValueError(
                    f"teacher targets {k!r} have {v.shape[0]} rows but the training set has"
                    f" {n} examples"
                )
        return given
    if cfg.augment_shift:
        return None
    with torch.no_grad():
        first = distiller.teacher_targets(teacher.forward_features(data.x_train[:2]))
    per_example = sum(v[0].numel() * v.element_size() for v in first.values())
    if per_example * n > CACHE_LIMIT_MB * 2**20:
        return None
    return predict_targets(teacher, distiller.teacher_targets, data.x_train, cfg.eval_batch_size)


def distill(
    student: KDModel,
    teacher: KDModel | None,
    data: Dataset,
    cfg: TrainConfig,
    method: str = "kd",
    params: Any = None,
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
    teacher_targets: dict[str, torch.Tensor] | None = None,
    distiller: Distiller | None = None,
    watch: Callable[[KDModel], dict] | None = None,
    graphs: bool = False,
    view: View | None = None,
) -> FitResult:
    """Train ``student`` on ``data`` with ``method`` (a key of :data:`kdcore.methods.METHODS`);
    the teacher stays frozen in eval mode.

    ``params`` is the method's parameter dataclass or a dict of overrides of its defaults.
    ``teacher_targets`` ({name: (N_train, ...)}) may be passed when the caller already has them
    (a sweep training many students from one teacher: ``{"logits": logits}`` for KD); otherwise
    they are computed here when the inputs are not augmented. Pass ``distiller`` to keep a
    handle on the method's modules (it is built here otherwise). ``watch(student)`` adds its
    JSON-ready figures to every epoch's record (e.g. the embedding geometry of a fixed batch, or
    attention maps), beside the distiller's own :meth:`~Distiller.epoch_summary`. The histories
    of the method's stages follow each other in the result, each record naming its stage.
    ``graphs`` replays each step as a CUDA graph on a GPU when the method's entry says its step
    can be captured (``graph_safe``); other methods train eagerly. ``view`` shows the two models
    other inputs than the batch's images (:func:`make_step`); the teacher's targets are then
    computed every step, and the step is not captured.
    """
    if distiller is None:
        distiller = build_distiller(method, params, student, teacher, data)
    student = distiller.deploy(student)  # what trains and is evaluated: the student, or more
    entry = get_method(method)
    uses_teacher = entry.uses_teacher
    extras: dict[str, torch.Tensor] = {}
    cached = True
    if view is not None and teacher_targets is not None:
        raise ValueError("teacher targets given in advance cannot follow a per-step view")
    if uses_teacher:
        freeze(teacher)
        targets = None
        if view is None:
            targets = cache_targets(distiller, teacher, data, cfg, teacher_targets)
        cached = targets is not None
        extras = {f"t:{k}": v for k, v in (targets or {}).items()}
    step = make_step(distiller, teacher if uses_teacher else None, cached, view)
    stages = distiller.stages(cfg.epochs)

    def epoch_extra() -> dict:
        extra = distiller.epoch_summary()
        if watch is not None:
            was = student.training
            student.eval()
            with torch.no_grad():
                extra = {**extra, **watch(student)}
            student.train(was)
        return extra

    history: list[EpochRecord] = []
    seconds = 0.0
    result = FitResult("completed", "", {"model": history}, 0.0)
    for stage in stages:
        distiller.stage = stage.name
        result = fit(
            student,
            data,
            replace(cfg, epochs=stage.epochs),
            step,
            extras,
            callbacks,
            cancel,
            modules=[distiller],
            first_epoch=len(history) + 1,
            stage=stage.name if len(stages) > 1 else "",
            epoch_extra=epoch_extra,
            after_step=distiller.after_step,
            graphs=graphs and entry.graph_safe and view is None,
        )
        history.extend(result.history)
        seconds += result.seconds
        if not result.ok:
            break
    return FitResult(result.status, result.message, {"model": history}, seconds)
