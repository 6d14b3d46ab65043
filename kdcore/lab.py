"""A custom run from the lab: one teacher, one student, one method, chosen by the user.

It is built from the same steps as the presets (:func:`kdcore.presets.train_teacher`,
:func:`kdcore.presets.train_student`, :class:`kdcore.presets.RunContext`), so a custom run and a
preset report progress the same way and return a result dict of the same shape.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from .data import load_dataset, per_class
from .losses import METHODS
from .models import build_model
from .presets import (
    HintonMnistConfig,
    RunContext,
    Stopped,
    Trained,
    teacher_config,
    train_student,
    train_teacher,
)
from .train import TrainConfig, predict_logits


@dataclass(frozen=True)
class CustomConfig:
    dataset: str = "mnist"
    teacher: str = "mlp-1200-dropout"
    student: str = "mlp-30"
    method: str = "kd"  # a key of kdcore.losses.METHODS
    T: float = 4.0  # temperature of the soft targets
    alpha: float = 0.9  # weight of the teacher's term; (1 - alpha) goes to the hard labels
    epochs: int = 3  # per student
    lr: float = 0.05
    batch_size: int = 128
    seed: int = 0
    # The teacher trains as hinton-mnist's does (same epochs, jitter, lr, batch and seed), so with
    # the default architecture the teacher cached by any Hinton preset is loaded, not retrained.
    teacher_epochs: int = HintonMnistConfig.epochs
    teacher_shift: int = HintonMnistConfig.teacher_shift  # pixels of input jitter
    grad_clip: float = HintonMnistConfig.grad_clip  # students only; see HintonMnistConfig
    per_class: int = 0  # training images per class, for quick runs; 0 = the whole training set
    baseline: bool = True  # also train the student on hard labels, from the same seed

    def check(self) -> None:
        """Raise ValueError (one line) for a config that cannot run."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        for arch in (self.teacher, self.student):
            build_model(arch)  # raises ValueError naming the choices
        if self.epochs < 1 or self.teacher_epochs < 1:
            raise ValueError("epochs must be at least 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], not {self.alpha}")
        if self.T <= 0:
            raise ValueError(f"the temperature T must be positive, not {self.T}")
        if self.lr <= 0 or self.batch_size < 1 or self.per_class < 0:
            raise ValueError("lr and batch size must be positive and per_class at least 0")

    @property
    def model_names(self) -> list[str]:
        """The models the run trains, in order."""
        names = []
        if METHODS[self.method].uses_teacher:
            names.append("teacher")
        if self.baseline or self.method == "hard":
            names.append("student_hard")
        if self.method != "hard":
            names.append(f"student_{self.method}")
        return names


def run_custom(cfg: CustomConfig, ctx: RunContext, keep: dict[str, Trained] | None = None) -> dict:
    """Train the models of ``cfg`` and return a preset-shaped result dict.

    Trained models are added to ``keep`` as they finish, so the caller can save their weights.
    A cancelled or failed model ends the run with that status and the partial history.
    """
    cfg.check()
    t0 = time.perf_counter()
    if keep is not None:
        ctx.trained = keep  # train_teacher/train_student record each model there
    names = cfg.model_names
    ctx.count = len(names)
    status, message = "completed", ""
    try:
        data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
        if cfg.per_class:
            data = data.with_train(*per_class(data.x_train, data.y_train, cfg.per_class, cfg.seed))
        base = TrainConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=cfg.seed,
            grad_clip=cfg.grad_clip,
        )
        teacher_cfg = teacher_config(
            cfg.teacher_epochs,
            HintonMnistConfig.batch_size,
            HintonMnistConfig.lr,
            cfg.seed,
            cfg.teacher_shift,
        )
        teacher = t_logits = None
        if "teacher" in names:
            teacher = train_teacher(ctx, data, cfg.teacher, teacher_cfg)
            t_logits = predict_logits(teacher, data.x_train)
        for name in names[1:] if teacher is not None else names:
            method = name.removeprefix("student_")
            train_student(
                ctx, data, cfg.student, base, name, method, teacher, cfg.T, cfg.alpha, t_logits
            )
    except Stopped as stop:
        status, message = stop.result.status, f"{stop.name}: {stop.result.message}"
    return {
        "preset": "custom",
        "status": status,
        "message": message,
        "config": asdict(cfg),
        "device": str(ctx.device),
        "history": ctx.history,
        "models": ctx.models,
        "paper": {"source": "", "test_errors": {}},
        "seconds": round(time.perf_counter() - t0, 2),
    }
