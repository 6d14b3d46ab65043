"""Label smoothing and distillation (Müller, Kornblith & Hinton 2019): the same 300-300 teacher
trained on hard labels and with label smoothing, from the same initial weights and data order,
and the 30-30 student distilled from each at the usual T = 4 and at T = 1, beside the student on
hard labels. Chandrasegaran, Tran, Zhao & Cheung (2022) traced the harm to the high temperature:
a smoothed teacher's targets, softened further, spread evenly over the wrong classes. So each
teacher's student is distilled at a sweep of temperatures, from T = 1 to the usual 4 and past it,
and the run's ``sweep`` gives both students' errors against T.

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
    add_point,
    finish,
    kd_points,
    register,
    run_data,
    sweep_record,
    train_student,
)
from .smoothing import cluster_spread, embeddings, non_target_entropy
from .train import predict_logits

PRESET = "smooth-teacher"
TEACHERS = ("teacher_hard", "teacher_ls")
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
# the sweep's two lines: (name stem of its students, its title) per teacher
FROM = (("student_from_hard", "from the hard teacher"),
        ("student_from_ls", "from the smoothed teacher"))  # fmt: skip


def student_name(stem: str, T: float) -> str:
    return f"{stem} T={T:g}"


STUDENTS = ("student_hard", *(student_name(stem, T) for T in TEMPERATURES for stem, _ in FROM))


@dataclass(frozen=True)
class SmoothConfig(ModeConfig):
    teacher: str = "mlp-300"
    student: str = "mlp-30"
    # the paper's α: the target (1 − α)·y + α/K; 0.1 as in Szegedy et al. 2016
    eps: float = param(0.1, "Label smoothing α of the smoothed teacher", 0.0, 1.0)
    # the temperature of the evenness figure: the one distillation usually takes
    T: float = param(KD["T"], "Temperature T of the evenness figure", 0.05, 100.0)
    # each teacher's student is distilled at every one of them
    temperatures: tuple[float, ...] = TEMPERATURES
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


def sweep_points(models: dict[str, dict]) -> dict[str, list[tuple[float, int]]]:
    """Per teacher (the titles of :data:`FROM`), its students' (T, test errors), by T, read
    from each student's own KD parameters: a run with other temperatures, or one made before
    the sweep (one student at T = 4 and one at T = 1 per teacher), gives its own points."""
    out = {}
    for stem, title in FROM:
        found = {
            float(m["method_params"]["T"]): m["test_errors"]
            for name, m in models.items()
            if name.startswith(stem) and "T" in m.get("method_params", {})
        }
        out[title] = sorted(found.items())
    return out


def run_smooth_teacher(cfg: SmoothConfig, ctx: RunContext) -> dict:
    """Two teachers from one initial state (hard labels, label smoothing α), the student on hard
    labels and by KD from each at every temperature of the sweep; every model's figures
    (:func:`model_figures`, at T) in its summary."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = len(TEACHERS) + 1 + len(FROM) * len(cfg.temperatures)
    t_cfg = _train_cfg(cfg)
    hard = train_student(ctx, data, cfg.teacher, t_cfg, "teacher_hard", "hard", role="teacher")
    smooth = train_student(ctx, data, cfg.teacher, t_cfg, "teacher_ls", "label-smoothing",
                           params={"eps": cfg.eps}, role="teacher")  # fmt: skip
    train_student(ctx, data, cfg.student, t_cfg, "student_hard", "hard")
    lines = [title for _, title in FROM]
    sweep = sweep_record("T", cfg.temperatures, tuple(lines), alpha=cfg.alpha)
    sweep["baseline_errors"] = dict.fromkeys(lines, ctx.models["student_hard"]["test_errors"])
    ctx.extra["sweep"] = sweep
    for T in cfg.temperatures:
        kd = {"T": T, "alpha": cfg.alpha}
        for (stem, title), teacher in zip(FROM, (hard, smooth), strict=True):
            name = student_name(stem, T)
            train_student(ctx, data, cfg.student, t_cfg, name, "kd", teacher, kd)
            add_point(ctx, sweep, title, name)
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
# at each T the student of the hard teacher against hard labels, that of the smoothed one
# against the hard teacher's
SMOOTH_PAIRS = {"teacher_ls": "teacher_hard"}
for _T in TEMPERATURES:
    SMOOTH_PAIRS[student_name("student_from_hard", _T)] = "student_hard"
    SMOOTH_PAIRS[student_name("student_from_ls", _T)] = student_name("student_from_hard", _T)

SMOOTH_PRESET = register(
    Preset(
        name=PRESET,
        title="Label smoothing: a better teacher that teaches worse",
        summary="One 300-300 teacher trained on hard labels and the same one (same initial "
        "weights and data order) with label smoothing (α = 0.1); the 30-30 student on hard "
        "labels and distilled from each, with the teacher's targets only, at T = 1, 2, 4 and "
        "8; every model's cluster spread, evenness over the wrong digits and calibration "
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
        check=lambda cfg: kd_points("temperatures", cfg.temperatures, (cfg.alpha,)),
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
