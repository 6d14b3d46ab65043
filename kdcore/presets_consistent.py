"""A good teacher is patient and consistent (Beyer et al. 2022) on MNIST: the relation presets'
300-300 teacher (trained on every training image, cached and shared with them) teaches a 30-30
student on a small transfer set (100 images a digit) whose images are jittered every step, the
teacher's targets taken four ways (:mod:`kdcore.consistency`): fixed on the clean image,
on an independent view, on the student's own view, and on mixed views (function matching),
beside the student on the jittered labels alone. Long schedules over the small set, so the
curves show which students keep learning ("patient") and which stop or overfit.

Every student is watched each epoch: its KL from the teacher on the clean transfer images and on
the test images (the gap between the two is how much of the teacher it learnt only where it was
taught), and its summary adds how often it agrees with the teacher on the test set.

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .consistency import KINDS, view_for
from .data import Dataset, class_counts, per_class
from .method import param
from .presets import _shared_teacher
from .presets_relation import RelationConfig
from .runner import Preset, RunContext, finish, register, run_data, train_student
from .train import TrainConfig, predict_logits

PRESET = "consistent-teaching"
STUDENTS = ("student_hard", *(f"student_{k.replace('-', '_')}" for k in KINDS))


@dataclass(frozen=True)
class ConsistentConfig(RelationConfig):
    # patience: at 200 epochs the ordering of the four ways is already there; from 200 to 800
    # only function matching keeps gaining (measured: 384 -> 289 test errors, the others
    # within 40 of where they were)
    epochs: int = param(800, "Epochs per student, over the small transfer set", 1, 100000)
    transfer_per_class: int = param(100, "Transfer images per digit (the teacher saw all)", 1,
                                    6000)  # fmt: skip
    shift: int = param(2, "Jitter of every view (pixels)", 1, 4)
    T: float = param(1.0, "Temperature T", 0.05, 100.0)


def _kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float) -> float:
    """Mean KL(teacher ‖ student) at T over the rows."""
    p_log = F.log_softmax(teacher_logits / T, 1)
    q_log = F.log_softmax(student_logits / T, 1)
    return float((p_log.exp() * (p_log - q_log)).sum(1).mean())


def fidelity(model: torch.nn.Module, x_train: torch.Tensor, t_train: torch.Tensor,
             x_test: torch.Tensor, t_test: torch.Tensor, T: float) -> dict[str, float]:  # fmt: skip
    """How closely ``model`` matches the teacher (logits ``t_*``) on the clean transfer images
    and on the test images: KL at T on each, and top-1 agreement on the test images."""
    s_train, s_test = predict_logits(model, x_train), predict_logits(model, x_test)
    return {
        "kl_train": round(_kl(t_train, s_train, T), 5),
        "kl_test": round(_kl(t_test, s_test, T), 5),
        "agreement": round(float((s_test.argmax(1) == t_test.argmax(1)).float().mean()), 5),
    }


def run_consistent(cfg: ConsistentConfig, ctx: RunContext) -> dict:
    """The shared teacher, the small jittered transfer set, the student on its labels and by KD
    (α = 1: the teacher's targets alone, as in the paper) with each teacher view; each student's
    fidelity per epoch and in its summary."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = 1 + len(STUDENTS)
    teacher = _shared_teacher(ctx, data, cfg)
    small: Dataset = data.with_train(
        *per_class(data.x_train, data.y_train, cfg.transfer_per_class, cfg.seed)
    )
    t_train = predict_logits(teacher, small.x_train)  # the fixed targets, on clean images
    t_test = predict_logits(teacher, small.x_test)

    def watch(model: torch.nn.Module) -> dict:
        return fidelity(model, small.x_train, t_train, small.x_test, t_test, cfg.T)

    s_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                        grad_clip=cfg.grad_clip, augment_shift=cfg.shift)  # fmt: skip
    train_student(ctx, small, cfg.student, s_cfg, STUDENTS[0], "hard", watch=watch)
    kd = {"T": cfg.T, "alpha": 1.0}
    for kind, name in zip(KINDS, STUDENTS[1:], strict=True):
        targets = {"logits": t_train} if kind == "fixed" else None
        view = view_for(kind, small.x_train, cfg.shift, cfg.seed)
        train_student(ctx, small, cfg.student, s_cfg, name, "kd", teacher, kd, targets,
                      watch=watch, view=view)  # fmt: skip
    for name in STUDENTS:
        if name in ctx.trained:
            ctx.models[name].update(watch(ctx.trained[name].model))
    counts = class_counts(small.y_train, small.num_classes)
    ctx.extra["transfer_set"] = {"size": len(small.y_train), "class_counts": counts}
    return finish(CONSISTENT_PRESET, cfg, ctx, t0)


# in the seed table, each way against the one before it, the labels alone first
PAIRS = {b: a for a, b in itertools.pairwise(STUDENTS)}

CONSISTENT_PRESET = register(
    Preset(
        name=PRESET,
        title="A good teacher is patient and consistent",
        summary="A 30-30 student taught by the 300-300 teacher on 100 jittered images a digit "
        "for 800 epochs, the teacher's targets taken four ways: fixed on the clean image, on "
        "an independent view, on the student's own view, and on mixed views (function "
        "matching); beside the student on the labels alone.",
        source="Beyer, Zhai, Royer, Markeeva, Anil & Kolesnikov 2022 (arXiv:2106.05237, "
        "CVPR), §3 and §4",
        paper={
            "test_errors": {},
            "claims": [
                "Certain implicit design choices may drastically affect the effectiveness of "
                "distillation: the teacher and the student should see the same view of an "
                "image (consistent), and training should run far longer than usual (patient) "
                "(abstract, §3).",
                "With the teacher's predictions fixed in advance the student overfits; with "
                "consistent views, and best with mixup on top (function matching), it keeps "
                "improving over long schedules (§4).",
                "The recipe gives a ResNet-50 student 82.8% top-1 on ImageNet (abstract).",
            ],
        },
        config=ConsistentConfig(),
        runner=run_consistent,
        differences="The paper distils big vision models (BiT ResNet-152x2 teachers, ResNet-50 "
        "students) on Flowers102, Pets, Food101, SUN397 and ImageNet with inception crops and "
        "schedules of thousands of epochs; this is a 300-300 MLP teacher and a 30-30 MLP "
        "student on 1,000 MNIST images jittered by up to two pixels, for 800 epochs, so only "
        "the ordering of the four ways can be compared, and only where it holds at most of "
        "the five seeds in the table under the run. Mixup draws one λ ~ U(0, 1) per image (our "
        "choice); the KL is taken at T = 1 with the labels unused (α = 1), as the paper "
        "distils on the teacher's predictions alone. Its tables are not quoted: we could not "
        "check them here. In the shipped run (seed 0) the student makes 721 test errors on its "
        "labels alone, 645 from the fixed teacher, 539 from independent views, 424 from "
        "consistent views and 289 by function matching; over five seeds (the table under the "
        "run) 715.8, 605.4, 546.4, 446.6 and 284.6, each way ahead of the one before it at 5 "
        "seeds of 5, the paper's ordering. Patience, measured on the same seed: the whole recipe "
        "at 200 epochs (its cosine schedule run to the end) gives 741, 655, 533, 461 and 384; "
        "from 200 to 800 epochs function matching gains 95 errors, the others at most 37.",
        seed_pairs=PAIRS,
    )
)
