"""Presets: named, frozen configurations that reproduce published demonstrations.

A :class:`~kdcore.runner.Preset` carries its configuration, the paper's numbers with their
source, and a runner. The CLI (``python -m kdcore run NAME``) and the app's lab call the same
:func:`~kdcore.runner.run_preset`, so a result seen in the browser is the result the command
line prints. The run machinery (contexts, monitors, teacher and student steps) lives in
:mod:`kdcore.runner`; this module holds Hinton et al.'s demonstrations and imports the other
families' presets, so ``PRESETS`` lists them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from .bias import BiasSweep, bias_grid, bias_sweep
from .data import Dataset, class_counts, drop_classes, keep_classes, load_dataset
from .method import param
from .runner import (  # noqa: F401 - re-exported: the presets' public API since the start
    PRESETS,
    RUNNERS,
    TEST_ERRORS,
    Measure,
    Monitor,
    Preset,
    RunContext,
    Stopped,
    Trained,
    add_point,
    check_architectures,
    finish,
    kd_points,
    model_summary,
    register,
    run_preset,
    sweep_record,
    train_student,
    train_teacher,
)
from .train import TrainConfig, predict_logits

# ----------------------------------------------------------------------------- hinton-mnist


@dataclass(frozen=True)
class HintonMnistConfig:
    """Hinton, Vinyals & Dean (2015, §3): a big regularised teacher, a small plain student."""

    # the paper: far longer
    epochs: int = param(8, "Epochs (students; the teacher too if its own is 0)", 1, 1000)
    teacher: str = "mlp-1200-dropout"  # 784-1200-1200-10, dropout 30% on hidden units
    teacher_epochs: int = param(
        0, "Teacher epochs (0 = as epochs)", 0, 1000,
        help="The teacher's own schedule; 0 trains it for as many epochs as the students.",
    )  # fmt: skip
    student: str = "mlp-800"  # 784-800-800-10, no regularisation
    T: float = param(20.0, "Temperature T", 0.05, 100.0)  # the paper's T for the 800-800 net
    # weight of the soft term; the paper put "considerably lower" weight on the hard labels
    alpha: float = param(0.9, "α", 0.0, 1.0)
    lr: float = param(0.05, "Learning rate", 1e-6, 10.0)
    batch_size: int = param(128, "Batch size", 1, 60000)
    # The paper jittered the teacher's inputs by up to 2 pixels; over 8 epochs 1 pixel trains a
    # better teacher (measured: 110 vs 131 test errors), 2 pays off only in long runs.
    teacher_shift: int = param(1, "Teacher jitter (pixels)", 0, 4)
    # Max-norm radius of each teacher unit's incoming weights (Srivastava et al. 2014); 0 = none.
    teacher_max_norm: float = param(0.0, "Teacher max-norm (0 = none)", 0.0, 100.0)
    seed: int = param(0, "Seed", 0, 2**31 - 1)
    dataset: str = "mnist"
    # Students only (the teacher's cache key stays that of an unclipped run). The T^2-scaled soft
    # loss at lr 0.05 can blow up in the first epoch; clipping the global gradient norm at 5
    # removed every such failure measured on the GPU (see HintonDemoConfig).
    grad_clip: float = param(5.0, "Gradient clipping", 0.0, 1e6)


def teacher_config(
    epochs: int, batch_size: int, lr: float, seed: int, shift: int, max_norm: float = 0.0
) -> TrainConfig:
    """The one way a Hinton teacher's TrainConfig is built. Every preset and the lab go through
    here, so equal settings give equal cache keys in train_teacher and the teacher is shared."""
    return TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, augment_shift=shift,
        max_norm=max_norm,
    )  # fmt: skip


def run_hinton_mnist(cfg: HintonMnistConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    ctx.count = 3
    base = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed)
    t_cfg = teacher_config(
        cfg.teacher_epochs or cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.teacher_shift,
        cfg.teacher_max_norm,
    )  # fmt: skip
    teacher = train_teacher(ctx, data, cfg.teacher, t_cfg)
    t_logits = predict_logits(teacher, data.x_train)
    student = replace(base, grad_clip=cfg.grad_clip)
    train_student(ctx, data, cfg.student, student, "student_hard", "hard")
    kd = {"T": cfg.T, "alpha": cfg.alpha}
    train_student(
        ctx, data, cfg.student, student, "student_kd", "kd", teacher, kd, {"logits": t_logits}
    )
    return finish(PRESETS["hinton-mnist"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- Hinton's other demos
#
# The presets below reuse hinton-mnist's teacher: the same architecture, data, jitter, seed and
# number of epochs give the same cache key in train_teacher, so whichever preset runs first trains
# it and the others load it. Their ``epochs`` counts the *students'* epochs.


@dataclass(frozen=True)
class HintonDemoConfig:
    """What the demos below share: the teacher of Hinton, Vinyals & Dean (2015, §3) as
    hinton-mnist trains it by default, and the students' optimiser settings.

    The teacher's defaults are read from :class:`HintonMnistConfig` so the two never drift apart
    (a different value would silently train a second teacher instead of loading the cached one).
    """

    teacher: str = HintonMnistConfig.teacher
    teacher_epochs: int = param(
        HintonMnistConfig.epochs, "Teacher epochs", 1, 1000,
        help="The students' epochs do not change it. At the recipe's default, the teacher "
        "hinton-mnist trained with the same recipe is loaded from the cache instead of training "
        "another.",
    )  # fmt: skip
    teacher_shift: int = param(HintonMnistConfig.teacher_shift, "Teacher jitter (pixels)", 0, 4)
    teacher_max_norm: float = param(
        HintonMnistConfig.teacher_max_norm, "Teacher max-norm (0 = none)", 0.0, 100.0
    )
    # for the teacher and the students
    lr: float = param(HintonMnistConfig.lr, "Learning rate", 1e-6, 10.0)
    batch_size: int = param(HintonMnistConfig.batch_size, "Batch size", 1, 60000)
    seed: int = param(HintonMnistConfig.seed, "Seed", 0, 2**31 - 1)
    dataset: str = HintonMnistConfig.dataset
    # Students only. At lr 0.05 the T^2-scaled soft loss sometimes blows up in the first epoch
    # (measured on the GPU: only-7-8 at T=20, alpha 0.7 and 1.0, the 300-unit student at T=12);
    # clipping the global gradient norm at 3 or 10 removed every such failure and cut the
    # errors of the runs that survived (e.g. 149 -> 130 for alpha 0.9 after 3 epochs).
    grad_clip: float = param(HintonMnistConfig.grad_clip, "Gradient clipping", 0.0, 1e6)


def teacher_train_config(cfg: HintonDemoConfig) -> TrainConfig:
    """The demos' teacher TrainConfig, built as run_hinton_mnist builds its own."""
    return teacher_config(
        cfg.teacher_epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.teacher_shift,
        cfg.teacher_max_norm,
    )  # fmt: skip


def _shared_teacher(ctx: RunContext, data: Dataset, cfg: HintonDemoConfig) -> nn.Module:
    return train_teacher(ctx, data, cfg.teacher, teacher_train_config(cfg))


def _student_cfg(cfg: HintonDemoConfig) -> TrainConfig:
    return TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        grad_clip=cfg.grad_clip,
    )


def holdout(data: Dataset, n: int, seed: int) -> tuple[Dataset, torch.Tensor, torch.Tensor]:
    """Set ``n`` random training examples aside (seeded): returns the data set with the rest as
    its training set, and the held-out images and labels. The test set is unchanged."""
    if n <= 0:
        return data, data.x_train[:0], data.y_train[:0]
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    rest, held = order[n:].to(data.device), order[:n].to(data.device)
    rest = rest.sort().values  # keep the original order of the remaining examples
    return (
        data.with_train(data.x_train[rest], data.y_train[rest]),
        data.x_train[held],
        data.y_train[held],
    )


def _transfer_info(y: torch.Tensor, num_classes: int, held_out: int) -> dict:
    return {"size": len(y), "class_counts": class_counts(y, num_classes), "held_out": held_out}


def _bias_adjustment(test: BiasSweep, val: BiasSweep | None) -> dict:
    """The bias that minimises test errors (the paper's choice), and the honest alternative: the
    bias that minimises errors on held-out training images, applied to the test set."""
    b = test.best()

    def at(i: int) -> dict:
        return {
            "errors": test.errors[i],
            "errors_on_classes": test.errors_on_classes[i],
            "error_percent": round(100.0 * test.errors[i] / test.n, 3),
        }

    before, after = at(0), at(b)  # the grid starts at 0: no adjustment
    out = {
        "classes": list(test.classes),
        "bias": test.bias[b],
        "chosen_on": "test",
        "errors_before": before["errors"],
        "errors_after": after["errors"],
        "errors_on_classes_before": before["errors_on_classes"],
        "errors_on_classes_after": after["errors_on_classes"],
        "error_percent_before": before["error_percent"],
        "error_percent_after": after["error_percent"],
        "n_test": test.n,
        "n_test_classes": test.n_classes,
        "sweep": test.to_dict(),
    }
    if val is not None and val.n:
        v = val.best()
        i = test.index_of(val.bias[v])
        out["validation"] = {
            "bias": val.bias[v],
            "n": val.n,
            "n_classes": val.n_classes,
            "errors_after": test.errors[i],
            "errors_on_classes_after": test.errors_on_classes[i],
            "error_percent_after": at(i)["error_percent"],
            "sweep": val.to_dict(),
        }
    return out


def _bias_demo(
    data: Dataset,
    student: nn.Module,
    classes: tuple[int, ...],
    grid: list[float],
    x_val: torch.Tensor,
    y_val: torch.Tensor,
) -> dict:
    test = bias_sweep(predict_logits(student, data.x_test), data.y_test, classes, grid)
    val = None
    if len(y_val):
        val = bias_sweep(predict_logits(student, x_val), y_val, classes, grid)
    return _bias_adjustment(test, val)


def digits_label(classes: list[int]) -> str:
    """[3] -> "3s", [7, 8] -> "7s and 8s": the test images of those classes."""
    return " and ".join(f"{c}s" for c in classes)


def bias_columns(result: dict) -> dict[str, float]:
    """A bias demonstration's test errors, all and on the shifted classes, before the shift and
    after it (the bias chosen on the test set, as the paper did, and on held-out images): what
    its seed study keeps."""
    adj = result.get("bias_adjustment") or {}
    digits = digits_label(adj.get("classes", []))
    out = {
        "before the shift": adj.get("errors_before"),
        "after (bias chosen on test)": adj.get("errors_after"),
        f"on {digits}, before": adj.get("errors_on_classes_before"),
        f"on {digits}, after (test)": adj.get("errors_on_classes_after"),
    }
    held = adj.get("validation")
    if held:
        out["after (bias chosen on held-out images)"] = held.get("errors_after")
        out[f"on {digits}, after (held-out)"] = held.get("errors_on_classes_after")
    return {k: v for k, v in out.items() if v is not None}


BIAS_ERRORS = Measure("bias_adjustment", "test errors before and after the bias shift",
                      better="fewer test errors", digits=1, extract=bias_columns)  # fmt: skip


def bias_percent_columns(result: dict) -> dict[str, float]:
    """A bias demonstration's test error in percent, before the shift and after it (the bias
    chosen on test and on held-out images): the unit the paper reports only-7-8 in."""
    adj = result.get("bias_adjustment") or {}
    out = {
        "before the shift": adj.get("error_percent_before"),
        "after (bias chosen on test)": adj.get("error_percent_after"),
    }
    held = adj.get("validation")
    if held:
        out["after (bias chosen on held-out images)"] = held.get("error_percent_after")
    return {k: v for k, v in out.items() if v is not None}


# A bias demonstration's seed study compares the student after the shift with itself before
# it, at the bias chosen on held-out images (chosen on test, it cannot do worse). Omitted-3's
# shift raises the 3 logit to recover the 3s: it is also compared on them. Only-7-8's lowers
# the 7 and 8 logits, trading errors on 7s and 8s for the rest: the whole test set says it.
HELD_OUT_PAIR = {"after (bias chosen on held-out images)": "before the shift"}


BIAS_PERCENT = Measure(
    "bias_error_percent",
    "test error % before and after the bias shift",
    better="a lower test error",
    digits=2,
    extract=bias_percent_columns,
)


# ----------------------------------------------------------------------------- omitted-3


@dataclass(frozen=True)
class Omitted3Config(HintonDemoConfig):
    """Hinton, Vinyals & Dean (2015, §3): distil the 800-800 net on a transfer set with no 3s."""

    epochs: int = param(8, "Student epochs", 1, 1000)  # the paper trained far longer
    student: str = "mlp-800"
    T: float = param(20.0, "Temperature T", 0.05, 100.0)  # as for the paper's 800-800 net
    alpha: float = param(0.9, "α", 0.0, 1.0)  # weight of the soft term
    omitted: int = param(3, "Digit left out", 0, 9)
    # training images held out to choose the bias honestly; 0 = none
    val_size: int = param(5000, "Held-out images", 0, 30000)
    # sweep the bias added to the omitted digit's logit over 0..max
    bias_max: float = param(10.0, "Largest bias shift", 0.0, 100.0)
    bias_step: float = param(0.05, "Bias step", 0.001, 10.0)


def _bias_transfer_demo(
    cfg: Omitted3Config | Only78Config,
    ctx: RunContext,
    select: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    name: str,
    classes: tuple[int, ...],
    grid: list[float],
) -> tuple[float, dict]:
    """What omitted-3 and only-7-8 share: the cached teacher, a held-out set for an honest bias,
    a student distilled on the transfer set ``select`` keeps, and the bias sweep on its logits.
    Returns (start time, bias_adjustment)."""
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    ctx.count = 2
    teacher = _shared_teacher(ctx, data, cfg)
    rest, x_val, y_val = holdout(data, cfg.val_size, cfg.seed)
    x, y = select(rest.x_train, rest.y_train)
    ctx.extra["transfer_set"] = _transfer_info(y, data.num_classes, len(y_val))
    student = train_student(
        ctx, data.with_train(x, y), cfg.student, _student_cfg(cfg), name, "kd", teacher,
        {"T": cfg.T, "alpha": cfg.alpha},
    )  # fmt: skip
    return t0, _bias_demo(data, student, classes, grid, x_val, y_val)


def run_omitted_3(cfg: Omitted3Config, ctx: RunContext) -> dict:
    t0, adj = _bias_transfer_demo(
        cfg,
        ctx,
        lambda x, y: drop_classes(x, y, (cfg.omitted,)),
        "student_no3",
        (cfg.omitted,),
        bias_grid(0.0, cfg.bias_max, cfg.bias_step),
    )
    d = cfg.omitted  # the keys the issue asks for, e.g. errors_on_3_before
    adj[f"errors_on_{d}_before"] = adj["errors_on_classes_before"]
    adj[f"errors_on_{d}_after"] = adj["errors_on_classes_after"]
    return finish(PRESETS["omitted-3"], cfg, ctx, t0, bias_adjustment=adj)


# ----------------------------------------------------------------------------- only-7-8


@dataclass(frozen=True)
class Only78Config(HintonDemoConfig):
    """Hinton, Vinyals & Dean (2015, §3): distil the 800-800 net on only the 7s and 8s."""

    # The transfer set is a fifth of MNIST, so 30 epochs take about as many steps as 6 on the
    # full set.
    epochs: int = param(30, "Student epochs", 1, 1000)
    student: str = "mlp-800"
    T: float = param(20.0, "Temperature T", 0.05, 100.0)
    alpha: float = param(0.9, "α", 0.0, 1.0)
    kept: tuple[int, ...] = (7, 8)  # the only digits in the transfer set
    # training images held out to choose the bias honestly; 0 = none
    val_size: int = param(5000, "Held-out images", 0, 30000)
    # sweep the *reduction* of the kept digits' biases over 0..max
    bias_max: float = param(15.0, "Largest bias shift", 0.0, 100.0)
    bias_step: float = param(0.05, "Bias step", 0.001, 10.0)


def _check_kept(cfg: Only78Config) -> None:
    """The transfer set's digits: distinct, from 0 to 9, at least one and not all ten."""
    kept = list(cfg.kept)
    if not kept or len(set(kept)) != len(kept) or not all(0 <= d <= 9 for d in kept):
        raise ValueError(f"kept must list distinct digits from 0 to 9, not {kept}")
    if len(kept) == 10:
        raise ValueError("kept must leave some digit out of the transfer set, not all ten")


def run_only_7_8(cfg: Only78Config, ctx: RunContext) -> dict:
    t0, adj = _bias_transfer_demo(
        cfg,
        ctx,
        lambda x, y: keep_classes(x, y, tuple(cfg.kept)),
        "student_78",
        tuple(cfg.kept),
        [-b for b in bias_grid(0.0, cfg.bias_max, cfg.bias_step)],  # lowering the biases
    )
    return finish(PRESETS["only-7-8"], cfg, ctx, t0, bias_adjustment=adj)


# ----------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class TemperatureSweepConfig(HintonDemoConfig):
    """Hinton, Vinyals & Dean (2015, §3): the best temperature depends on the student's size."""

    # per student; the sweep trains len(students) x len(temperatures) of them
    epochs: int = param(3, "Student epochs", 1, 1000)
    students: tuple[str, ...] = ("mlp-300", "mlp-30")  # a wide (>=300 units) and a 30-unit net
    temperatures: tuple[float, ...] = (1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)
    alpha: float = param(0.9, "α", 0.0, 1.0)
    baseline: bool = True  # also train each student on hard labels, for reference


def run_temperature_sweep(cfg: TemperatureSweepConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    per_student = len(cfg.temperatures) + int(cfg.baseline)
    ctx.count = 1 + len(cfg.students) * per_student
    teacher = _shared_teacher(ctx, data, cfg)
    t_logits = predict_logits(teacher, data.x_train)  # (N, K), once for every student
    sweep = sweep_record("T", cfg.temperatures, cfg.students, alpha=cfg.alpha)
    ctx.extra["sweep"] = sweep
    scfg = _student_cfg(cfg)
    for arch in cfg.students:
        if cfg.baseline:
            name = f"{arch} hard"
            train_student(ctx, data, arch, scfg, name, "hard")
            sweep["baseline_errors"][arch] = ctx.models[name]["test_errors"]
        for T in cfg.temperatures:
            name = f"{arch} T={T:g}"
            kd = {"T": T, "alpha": cfg.alpha}
            train_student(ctx, data, arch, scfg, name, "kd", teacher, kd, {"logits": t_logits})
            add_point(ctx, sweep, arch, name)
    return finish(PRESETS["temperature-sweep"], cfg, ctx, t0)


@dataclass(frozen=True)
class AlphaSweepConfig(HintonDemoConfig):
    """The weight of the soft term against the hard labels, at the paper's T=20."""

    epochs: int = param(3, "Student epochs", 1, 1000)
    student: str = "mlp-800"
    T: float = param(20.0, "Temperature T", 0.05, 100.0)
    alphas: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)  # 0 = hard labels only


def run_alpha_sweep(cfg: AlphaSweepConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    ctx.count = 1 + len(cfg.alphas)
    teacher = _shared_teacher(ctx, data, cfg)
    t_logits = predict_logits(teacher, data.x_train)
    sweep = sweep_record("alpha", cfg.alphas, (cfg.student,), T=cfg.T)
    ctx.extra["sweep"] = sweep
    scfg = _student_cfg(cfg)
    for a in cfg.alphas:
        name = f"{cfg.student} alpha={a:g}"
        kd = {"T": cfg.T, "alpha": a}
        train_student(ctx, data, cfg.student, scfg, name, "kd", teacher, kd, {"logits": t_logits})
        add_point(ctx, sweep, cfg.student, name)
    return finish(PRESETS["alpha-sweep"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- the paper profile
#
# `--profile paper`: the recipe of Hinton, Vinyals & Dean (2015, §3) at full length. What is the
# paper's and what is ours:
# - the paper's: the architectures (784-1200-1200-10 teacher, 784-800-800-10 student, ReLU);
#   the teacher "strongly regularized using dropout and weight-constraints as described in [5]"
#   with its inputs "jittered by up to two pixels in any direction"; the student with no
#   regularisation but the soft targets, on the unjittered training set ("the transfer set
#   does not contain any translations"); T = 20 for the 800-800 student.
# - from the dropout recipe the paper cites (Srivastava et al. 2014, §5.1 and Appendix B.1):
#   a max-norm constraint on each unit's incoming weights.
# - ours: the teacher's dropout, 30% of the hidden units and none of the inputs, instead of the
#   dropout recipe's 20% of the inputs and 50% of the hidden units: that recipe trained for
#   thousands of epochs, and in 150 of ours it reached 81 test errors where 30% on the hidden
#   units reaches 72 in 60 (both measured on the 2-core CPU; see the README). The radius 3.5
#   (the dropout paper tuned it per task; our inputs are normalised to unit variance). SGD with
#   Nesterov momentum 0.9 at lr 0.05 with a cosine decay (lr 0.1 made a dropout teacher's loss
#   climb from 0.40 to 1.6 by epoch 5, measured), batches of 128, 60 epochs for the teacher
#   (120 moved it by 1.2 test errors on average over five seeds, some up, some down, and its
#   distilled students by one or two: converged within the seeds' noise, measured) and 20 for
#   each student: the students' test errors are flat after about 12 epochs (a distilled
#   student trained 40 epochs ended where the one trained 20 did, 76 errors), and only-7-8's
#   100 epochs on its fifth of MNIST take as many steps. alpha 0.9 (the paper: "a considerably
#   lower weight" on the hard labels), and the students' gradient clipping at 5.
PAPER_TEACHER = {
    "teacher": "mlp-1200-dropout",
    "teacher_epochs": 60,
    "teacher_shift": 2,
    "teacher_max_norm": 3.5,
}
PAPER_EPOCHS = 20  # every student's
# hinton-mnist and the demos alike: the demos then load hinton-mnist's paper teacher from the
# cache (the same settings, the same key)
PAPER_PROFILE = {"epochs": PAPER_EPOCHS, **PAPER_TEACHER}
# only-7-8's transfer set is a fifth of MNIST: five times the epochs, the same number of steps
PAPER_78_PROFILE = {**PAPER_PROFILE, "epochs": 5 * PAPER_EPOCHS}


def _paper_note(ours: str) -> dict[str, str]:
    """What the paper profile is, ending with the choices that are ours for this preset."""
    return {
        "paper": "The paper profile: the paper's nets, the teacher regularised with dropout, "
        "max-norm weights and 2-pixel jitter for 60 epochs, each student 20 epochs (only-7-8: "
        "100 on its smaller transfer set) with a cosine decay. The teacher's dropout (30% of "
        "the hidden units rather than the cited recipe's 20% of inputs and 50% of hidden "
        f"units), the schedule, the max-norm radius and {ours} are our choices."
    }


PAPER_NOTE = _paper_note("alpha 0.9")


# ----------------------------------------------------------------------------- the table

# Shared by the demos' "differences": the one training change the paper did not make.
_STUDENT_NOTE = (
    "Students clip the gradient norm at 5: without it, the soft loss at lr 0.05 blew up in "
    "some runs (only-7-8, alpha 0.7 and 1.0, T=12)."
)
# The paper profile's schedule, as the demos' paper-profile "differences" open.
_PAPER_SCHEDULE = (
    "The paper gives no schedule; its teacher is trained here as in hinton-mnist's paper "
    "profile (60 epochs, our choice of dropout), "
)
_OMITTED3_BIAS = (
    "The paper chose the +3.5 bias to optimise the test set itself, and `bias` here does the "
    "same, so it is an optimistic figure; `validation` instead picks the bias on 5,000 "
    "held-out training images the student never saw and reports the test errors at that "
    "bias. Holding them out leaves the student 5,000 fewer transfer images than the paper's. "
    "The loss keeps a 10% hard-label term (no label is ever 3), as in hinton-mnist. "
    "Our student misses far fewer 3s before the shift than the paper's, so it needs a "
    "smaller one; the paper gives no training details for this run, and we have not "
    "established what accounts for the gap. " + _STUDENT_NOTE
)
_ONLY78_BIAS = (
    "As for omitted-3, `bias` is chosen on the test set like the paper's -7.6, and "
    "`validation` chooses it on 5,000 held-out training images instead. The 10% hard-label "
    "term only ever sees the labels 7 and 8, which pushes those two biases up. Our student "
    "errs far less than the paper's before the shift (so a smaller shift is best); the paper "
    "gives no training details for this run, and we have not established what accounts for "
    "the gap. " + _STUDENT_NOTE
)


register(
    Preset(
        name="hinton-mnist",
        title="Hinton et al. 2015: distilling a 1200-1200 net into an 800-800 net on MNIST",
        summary="A dropout-regularised 1200-1200 teacher, the 800-800 student trained on hard "
        "labels only, and the same student distilled at T=20 from the same seed.",
        source="Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §3",
        paper={
            "test_errors": {"teacher": 67, "student_hard": 146, "student_kd": 74},
        },
        config=HintonMnistConfig(),
        runner=run_hinton_mnist,
        profiles={"paper": PAPER_PROFILE},
        profile_notes=PAPER_NOTE,
        differences="The paper gives its nets and its regularisation but no schedule, and "
        "trained far longer than this default, which trains every net 8 epochs (the teacher "
        "with 1-pixel jitter and no max-norm constraint) so that it finishes in minutes on a "
        "laptop CPU. The ordering (teacher < distilled < hard) is what to look for; more "
        "epochs, or the paper recipe, close most of the gap (the lab shows its shipped run).",
        profile_differences={
            "paper": "The paper gives its nets and its regularisation but no schedule. Here the "
            "teacher trains 60 epochs with 30% dropout on its hidden units and none on its "
            "inputs (the cited recipe's 20% and 50% trained a worse teacher in our budget), and "
            "each student 20 epochs with its gradient norm clipped at 5. The paper reports one "
            "run; one run here is one draw, and the distilled student's errors move by a dozen "
            "or so with the seed (the seed study beside the shipped run)."
        },
    )
)


register(
    Preset(
        name="omitted-3",
        title="Hinton et al. 2015: a student that never saw a 3",
        summary="The 800-800 student distilled at T=20 from the hinton-mnist teacher on a "
        "transfer set with every 3 removed. Its errors on the 1010 test 3s, then the same "
        "student with the bias of its 3 logit raised: accuracy against the bias.",
        source="Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §3",
        paper={
            "test_errors": {"teacher": 67, "student_no3": 206},
            "bias_adjustment": {
                "classes": [3],
                "bias": 3.5,
                "chosen_on": "test",
                "errors_before": 206,
                "errors_on_3_before": 133,
                "errors_after": 109,
                "errors_on_3_after": 14,
                "errors_on_classes_before": 133,
                "errors_on_classes_after": 14,
            },
        },
        config=Omitted3Config(),
        runner=run_omitted_3,
        seed_measures=(BIAS_ERRORS, TEST_ERRORS),
        seed_pairs={**HELD_OUT_PAIR, "on 3s, after (held-out)": "on 3s, before"},
        profiles={"paper": PAPER_PROFILE},
        profile_notes=PAPER_NOTE,
        differences="The paper trained to convergence; the student here trains 8 epochs. "
        + _OMITTED3_BIAS,
        profile_differences={
            "paper": _PAPER_SCHEDULE + "and the student 20 epochs. " + _OMITTED3_BIAS
        },
    )
)

register(
    Preset(
        name="only-7-8",
        title="Hinton et al. 2015: a student taught only on 7s and 8s",
        summary="The 800-800 student distilled at T=20 on a transfer set of only the 7s and 8s, "
        "then the same student with the biases of its 7 and 8 logits lowered: test error "
        "against the reduction.",
        source="Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §3",
        paper={
            "test_errors": {"teacher": 67},
            "test_error_percent": {"teacher": 0.67, "student_78": 47.3},
            "bias_adjustment": {
                "classes": [7, 8],
                "bias": -7.6,
                "chosen_on": "test",
                "error_percent_before": 47.3,
                "error_percent_after": 13.2,
            },
        },
        config=Only78Config(),
        runner=run_only_7_8,
        seed_measures=(BIAS_PERCENT, BIAS_ERRORS, TEST_ERRORS),
        seed_pairs=HELD_OUT_PAIR,
        check=_check_kept,
        profiles={"paper": PAPER_78_PROFILE},
        profile_notes=PAPER_NOTE,
        differences="The paper trained to convergence; the student here trains 30 epochs of "
        "the ~11,000 7s and 8s (about as many steps as 6 epochs of MNIST). " + _ONLY78_BIAS,
        profile_differences={
            "paper": _PAPER_SCHEDULE + "and the student 100 epochs of the ~11,000 7s and 8s "
            "(about as many steps as 20 epochs of MNIST). " + _ONLY78_BIAS
        },
    )
)

register(
    Preset(
        name="temperature-sweep",
        title="Hinton et al. 2015: which temperature, for a wide and a 30-unit student",
        summary="Distilled test errors against T for a 300-300 and a 30-30 student, each from "
        "the same seed and the same cached teacher logits, beside each student on hard labels.",
        source="Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §3",
        paper={
            "test_errors": {"teacher": 67},
            "claims": [
                "When the distilled net had 300 or more units in each of its two hidden "
                "layers, all temperatures above 8 gave fairly similar results.",
                "When this was radically reduced to 30 units per layer, temperatures in the "
                "range 2.5 to 4 worked significantly better than higher or lower temperatures.",
            ],
            "similar_above_T": 8.0,  # for >= 300 units
            "best_T_range_30_units": [2.5, 4.0],
        },
        config=TemperatureSweepConfig(),
        runner=run_temperature_sweep,
        check=lambda cfg: kd_points("temperatures", cfg.temperatures, (cfg.alpha,)),
        profiles={"paper": PAPER_PROFILE},
        profile_notes=_paper_note(
            "alpha 0.9 and the temperatures tried (the student sizes are the paper's)"
        ),
        differences="The paper gives no table for this, only the two statements quoted. Each "
        "student here trains 3 epochs (the paper trained to convergence), so differences of a "
        "few errors between temperatures are within seed-to-seed noise; raise `epochs` or "
        "change `seed` to see which trends hold. " + _STUDENT_NOTE,
        profile_differences={
            "paper": "The paper gives no table for this, only the two statements quoted. "
            + _PAPER_SCHEDULE
            + "and each student 20 epochs. One run per point moves by several errors with its "
            "seed; over five seeds (the table under the shipped run) both statements hold on "
            "average. The 300-300 student's mean errors are 92.8-96.6 from T=6 up, against "
            "144.8 at T=1 and 149.2 on hard labels, and its best T at each seed is 12, 6, 8, "
            "12, 6. The 30-30 student's means are lowest at T=3 and 4 (241.0, 244.0), but its "
            "best T at each seed is 4, 2, 2.5, 2, 4 (T=2: 247.6 on average), and from T=8 up it "
            "does worse than on hard labels (271.4-292.8 against 268.4). " + _STUDENT_NOTE
        },
    )
)

register(
    Preset(
        name="alpha-sweep",
        title="How much weight on the soft targets: test error against alpha at T=20",
        summary="The 800-800 student distilled from the same teacher at T=20 with the soft "
        "term weighted alpha and the hard-label term 1-alpha; alpha=0 is hard labels only.",
        source="Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §2",
        paper={
            "test_errors": {"teacher": 67},
            "claims": [
                "The best results were generally obtained by using a considerably lower "
                "weight on the second objective function (cross-entropy with the correct "
                "labels).",
            ],
        },
        config=AlphaSweepConfig(),
        runner=run_alpha_sweep,
        check=lambda cfg: kd_points("alphas", (cfg.T,), cfg.alphas),
        profiles={"paper": PAPER_PROFILE},
        profile_notes=_paper_note("the alphas tried (T = 20 is the paper's)"),
        differences="The paper reports no numbers for this sweep, only the statement quoted, "
        "so there is nothing to match point by point. Each student trains 3 epochs here; the "
        "soft term is multiplied by T^2 as the paper prescribes, so alpha is a true share. "
        + _STUDENT_NOTE,
        profile_differences={
            "paper": "The paper reports no numbers for this sweep, only the statement quoted. "
            + _PAPER_SCHEDULE
            + "and each student 20 epochs; the soft term is multiplied by "
            "T^2 as the paper prescribes, so alpha is a true share. Over five seeds (the table "
            "under the shipped run) the student makes 142.2 errors on average at alpha=0 (hard "
            "labels only), 93.0 at 0.1 and 83.4-86.0 from 0.3 up, and its best alpha at each "
            "seed is 0.5, 1, 0.7, 0.9, 0.9: at most half the weight on the hard labels, as the "
            "paper found. " + _STUDENT_NOTE
        },
    )
)


# The other families' presets and the lab's custom runner register themselves on import.
from . import (  # noqa: E402, F401, I001 (the order below is kept)
    lab,
    presets_deit,
    presets_features,
    presets_lm,
    presets_minilm,
    presets_modes,
    presets_relation,
    presets_spec,
    presets_tinybert,
)

# Registered after the others: a shipped run's id is minus its preset's place in this order, so a
# new preset comes last and every earlier link keeps naming the same run.
from . import presets_distilbert  # noqa: E402, F401
from . import presets_dist  # noqa: E402, F401
from . import presets_smoothing  # noqa: E402, F401
from . import presets_zeroshot  # noqa: E402, F401
from . import presets_stronger  # noqa: E402, F401
from . import presets_consistent  # noqa: E402, F401
from . import presets_zscore  # noqa: E402, F401
from . import presets_pkt  # noqa: E402, F401
from . import presets_vid  # noqa: E402, F401
from . import presets_ab  # noqa: E402, F401
from . import presets_fitnets_mlp  # noqa: E402, F401
from . import presets_cc  # noqa: E402, F401
from . import presets_ft  # noqa: E402, F401
from . import presets_fsp  # noqa: E402, F401
from . import presets_review  # noqa: E402, F401
from . import presets_ctkd  # noqa: E402, F401
from . import presets_mgd  # noqa: E402, F401
from . import presets_ofd  # noqa: E402, F401
from . import presets_nkd  # noqa: E402, F401
from . import presets_uskd  # noqa: E402, F401
from . import presets_srrl  # noqa: E402, F401
from . import presets_wsld  # noqa: E402, F401
from . import presets_ickd  # noqa: E402, F401
from . import presets_simkd  # noqa: E402, F401
from . import presets_ttm  # noqa: E402, F401
from . import presets_cat  # noqa: E402, F401
from . import presets_sdd  # noqa: E402, F401
