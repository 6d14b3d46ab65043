"""Label smoothing and distillation (Müller, Kornblith & Hinton 2019): the same 300-300 teacher
trained on hard labels and with label smoothing, from the same initial weights and data order,
and the 30-30 student distilled from each at the usual T = 4 and at T = 1, beside the student on
hard labels. Chandrasegaran, Tran, Zhao & Cheung (2022) traced the harm to the high temperature:
a smoothed teacher's targets, softened further, spread evenly over the wrong classes.

Every model also gets the figures the paper's argument turns on, measured on the test set: how
tight its classes' clusters lie in the penultimate layer (:func:`kdcore.smoothing.cluster_spread`
over all ten digits), how evenly its softened prediction spreads over the wrong digits
(:func:`kdcore.smoothing.non_target_entropy` at the run's T) and its calibration error (ECE).
The page projects the two teachers' activations itself, from their weights.

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .data import Dataset
from .losses.class_wise import expected_calibration_error
from .method import param
from .presets_modes import KD, ModeConfig, _train_cfg
from .runner import (
    LONG_NOTE,
    LONG_PROFILE,
    TEST_ERRORS,
    Measure,
    Preset,
    RunContext,
    finish,
    register,
    run_data,
    train_student,
)
from .smoothing import cluster_spread, embeddings, non_target_entropy
from .train import predict_logits

PRESET = "smooth-teacher"
TEACHERS = ("teacher_hard", "teacher_ls")
STUDENTS = ("student_hard", "student_from_hard", "student_from_ls", "student_from_hard_low_T",
            "student_from_ls_low_T")  # fmt: skip


@dataclass(frozen=True)
class SmoothConfig(ModeConfig):
    teacher: str = "mlp-300"
    student: str = "mlp-30"
    # the paper's α: the target (1 − α)·y + α/K; 0.1 as in Szegedy et al. 2016
    eps: float = param(0.1, "Label smoothing α of the smoothed teacher", 0.0, 1.0)
    T: float = param(KD["T"], "Temperature T", 0.05, 100.0)
    T_low: float = param(1.0, "A second, low temperature", 0.05, 100.0)
    # the paper distils with β = 1: the teacher's targets only, the true labels ignored
    alpha: float = param(1.0, "α, the teacher's weight (1: the labels ignored)", 0.0, 1.0)


@torch.no_grad()
def model_figures(model: torch.nn.Module, data: Dataset, T: float) -> dict[str, float]:
    """What a model's test-set outputs say: cluster spread in its penultimate layer (ten
    digits), the mean evenness of its prediction over the wrong digits at T, and its ECE."""
    z = predict_logits(model, data.x_test)
    return {
        "cluster_spread": round(cluster_spread(embeddings(model, data.x_test), data.y_test), 5),
        "wrong_class_evenness": round(float(non_target_entropy(z, data.y_test, T).mean()), 5),
        "ece": round(expected_calibration_error(z, data.y_test), 5),
    }


def run_smooth_teacher(cfg: SmoothConfig, ctx: RunContext) -> dict:
    """Two teachers from one initial state (hard labels, label smoothing α), the student on hard
    labels and by KD from each at T and at T_low; every model's figures (:func:`model_figures`,
    at T) in its summary."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = len(TEACHERS) + len(STUDENTS)
    t_cfg = _train_cfg(cfg)
    hard = train_student(ctx, data, cfg.teacher, t_cfg, "teacher_hard", "hard", role="teacher")
    smooth = train_student(ctx, data, cfg.teacher, t_cfg, "teacher_ls", "label-smoothing",
                           params={"eps": cfg.eps}, role="teacher")  # fmt: skip
    train_student(ctx, data, cfg.student, t_cfg, "student_hard", "hard")
    for suffix, T in (("", cfg.T), ("_low_T", cfg.T_low)):
        kd = {"T": T, "alpha": cfg.alpha}
        for name, teacher in (("hard", hard), ("ls", smooth)):
            train_student(ctx, data, cfg.student, t_cfg, f"student_from_{name}{suffix}", "kd",
                          teacher, kd)  # fmt: skip
    for name, trained in ctx.trained.items():
        if name in ctx.models:
            ctx.models[name].update(model_figures(trained.model, data, cfg.T))
    return finish(SMOOTH_PRESET, cfg, ctx, t0)


SMOOTH_MEASURES = (
    TEST_ERRORS,
    Measure("cluster_spread", "cluster spread in the penultimate layer (within / between)",
            better="tighter clusters", digits=3),
    Measure("wrong_class_evenness", "evenness over the wrong digits at T (1: uniform)",
            better="less said about which wrong digit an image resembles",
            lower_is_better=False, digits=3),
    Measure("ece", "calibration error (ECE)", better="a lower calibration error", digits=4),
)  # fmt: skip

# each model against the one it is told apart from: the smoothed teacher against the hard one,
# the student of the hard teacher against hard labels, that of the smoothed one against it
SMOOTH_PAIRS = {"teacher_ls": "teacher_hard", "student_from_hard": "student_hard",
                "student_from_ls": "student_from_hard",
                "student_from_hard_low_T": "student_hard",
                "student_from_ls_low_T": "student_from_hard_low_T"}  # fmt: skip

SMOOTH_PRESET = register(
    Preset(
        name=PRESET,
        title="Label smoothing: a better teacher that teaches worse",
        summary="One 300-300 teacher trained on hard labels and the same one (same initial "
        "weights and data order) with label smoothing (α = 0.1); the 30-30 student on hard "
        "labels and distilled from each, with the teacher's targets only, at T = 4 and at "
        "T = 1; every model's cluster spread, evenness over the wrong digits and calibration "
        "error.",
        source="Müller, Kornblith & Hinton 2019 (arXiv:1906.02629, NeurIPS), §2 and §4; the "
        "low temperature: Chandrasegaran, Tran, Zhao & Cheung 2022 (arXiv:2206.14532, ICML)",
        paper={
            "test_errors": {},
            "claims": [
                "Label smoothing improves generalisation and calibration, yet a teacher trained "
                "with it makes knowledge distillation into a student much less effective "
                "(abstract).",
                "Label smoothing draws the penultimate-layer representations of a class's "
                "training examples into tight clusters, erasing from the logits the "
                "resemblances between examples of different classes that distillation needs "
                "(abstract, §2 and §4).",
                "The harm comes with the high temperatures distillation usually takes: "
                "practitioners should distil from a label-smoothed teacher at a low temperature "
                "(Chandrasegaran et al. 2022, abstract).",
            ],
        },
        config=SmoothConfig(),
        runner=run_smooth_teacher,
        differences="The paper shows this with image classifiers on CIFAR-10, CIFAR-100 and "
        "ImageNet (its Fig. 1: AlexNet, ResNet-56 and Inception-v4) trained for hundreds of "
        "epochs; this is a 300-300 MLP teacher and a 30-30 MLP student on MNIST for a few, "
        "so only the direction of the effect can be compared, and only where it holds at most "
        "of the seeds in the table under the run. Its tables are not quoted: we could not "
        "check them here. As in the paper the student is distilled with the teacher's targets "
        "alone (β = 1 there, α = 1 here); both teachers clip their gradient norm at 5 like the "
        "students, so that the two differ in their targets only.",
        profiles={"long": LONG_PROFILE},
        profile_notes=LONG_NOTE,
        seed_measures=SMOOTH_MEASURES,
        seed_pairs=SMOOTH_PAIRS,
    )
)
