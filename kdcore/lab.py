"""A custom run from the lab: one teacher, one student, any registered method, chosen by the user.

It is one registered runner like the presets (name ``custom``, kind ``custom``), built from the
same steps (:func:`kdcore.runner.train_teacher`, :func:`kdcore.runner.train_student`), so the job
queue, the store and the CLI treat it like any preset. The method's own parameters live in
``params``, checked against the method's dataclass; ``--set T=4`` on the command line and the
lab's controls reach them by name without this module knowing any method.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .data import DATASETS, DataUnavailable, class_counts, load_dataset, per_class
from .distill import check_fit
from .method import check_config, param
from .methods import METHODS, baseline_method, get_method
from .runner import (
    Preset,
    RunContext,
    Stopped,
    apply_changes,
    check_architectures,
    parse_value,
    register,
    teacher_cache_path,
    train_student,
    train_teacher,
)
from .train import TrainConfig, pick_device

# The teacher trains as hinton-mnist's does (same epochs, jitter, lr, batch and seed), so with the
# default architecture the teacher cached by any Hinton preset is loaded, not retrained. These
# are HintonMnistConfig's defaults, repeated as literals to keep this module below the presets;
# tests/test_presets.py checks they agree.
TEACHER_LR, TEACHER_BATCH, TEACHER_EPOCHS, TEACHER_SHIFT, STUDENT_CLIP = 0.05, 128, 8, 1, 5.0


@dataclass(frozen=True)
class CustomConfig:
    dataset: str = param("mnist", "Data set", choices=DATASETS)
    teacher: str = param("mlp-1200-dropout", "Teacher")  # the choices: the lab's architectures
    student: str = param("mlp-30", "Student")
    method: str = param("kd", "Method", choices="methods")  # a key of kdcore.methods.METHODS
    # the method's parameters, every field of its dataclass (see CustomConfig.resolved)
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int = param(3, "Student epochs", 1, 1000)
    lr: float = param(0.05, "Learning rate", 1e-5, 1000.0, 0.01, log=True)
    batch_size: int = param(128, "Batch size", 1, 60000)
    seed: int = param(0, "Seed", 0, 2**31 - 1)
    teacher_epochs: int = param(
        TEACHER_EPOCHS, "Teacher epochs", 1, 1000,
        help="Trained once and cached: with the default teacher and settings, the teacher of "
        "the Hinton presets is loaded instead of trained.",
    )  # fmt: skip
    teacher_shift: int = param(TEACHER_SHIFT, "Teacher jitter (pixels)", 0, 4)
    grad_clip: float = param(
        STUDENT_CLIP, "Gradient clipping", 0.0, 1e6, 1.0,
        help="Largest global gradient norm of the students' steps; 0 turns clipping off. The "
        "T²-scaled soft loss can blow up at lr 0.05 without it.",
    )  # fmt: skip
    # training images per class, for quick runs; 0 = the whole training set
    per_class: int = param(0, "Training images per class", 0, 100000)
    baseline: bool = param(
        True, "Hard-label baseline",
        help="Also train the same student from the same seed without a teacher: the fair "
        "comparison for the distilled one.",
    )  # fmt: skip

    def resolved(self) -> CustomConfig:
        """The same config with ``params`` completed to every field of the method's dataclass
        and checked, so two configs that train the same thing compare (and hash) equal."""
        return replace(self, params=get_method(self.method).params_dict(self.params))

    def check(self) -> None:
        """Raise ValueError (one line) for a config that cannot run."""
        check_config(self)
        check_architectures(self)
        get_method(self.method).make_params(self.params)
        # the method must fit the two models (their layers, FSP's channels) before any training
        train = 50000 if self.dataset.startswith("cifar") else 60000
        size = self.per_class * (100 if self.dataset == "cifar100" else 10) or train
        check_fit(self.method, self.params, self.student, self.teacher, self.dataset,
                  min(size, train))  # fmt: skip

    @property
    def plan(self) -> list[tuple[str, str | None]]:
        """The models the run trains, in order: (name, method), None for the teacher."""
        m, base = get_method(self.method), baseline_method()
        out: list[tuple[str, str | None]] = [("teacher", None)] if m.uses_teacher else []
        if self.baseline or m.baseline:
            out.append((f"student_{base.name}", base.name))
        if not m.baseline:
            out.append((f"student_{m.name}", m.name))
        return out

    @property
    def teacher_train_config(self) -> TrainConfig:
        """How the teacher trains: on hard labels, as hinton-mnist's teacher does."""
        return TrainConfig(
            epochs=self.teacher_epochs,
            batch_size=TEACHER_BATCH,
            lr=TEACHER_LR,
            seed=self.seed,
            augment_shift=self.teacher_shift,
        )


def teacher_cached(cfg: CustomConfig, device: str, data_dir: str | Path | None = None) -> bool:
    """Whether a run of ``cfg`` on ``device`` would load its teacher from the cache instead of
    training it (False when the data set cannot be read here, without downloading it)."""
    if not get_method(cfg.method).uses_teacher:
        return False
    try:
        data = load_dataset(cfg.dataset, "cpu", data_dir, download=False)
        kind = pick_device(device).type
    except (DataUnavailable, ValueError):
        return False
    counts = class_counts(data.y_train, data.num_classes)
    n = sum(min(c, cfg.per_class) for c in counts) if cfg.per_class else len(data.y_train)
    path, _ = teacher_cache_path(cfg.teacher, data.name, n, cfg.teacher_train_config, kind)
    return path.is_file()


def configure(cfg: CustomConfig, changes: dict[str, Any]) -> CustomConfig:
    """Apply overrides by name: the run's own fields, then the chosen method's parameters
    (``T=4`` reaches ``params["T"]`` when the method has a T). Text values are parsed."""
    own = {f.name for f in fields(CustomConfig)}
    top = {k: v for k, v in changes.items() if k in own}
    rest = {k: v for k, v in changes.items() if k not in own}
    previous = cfg.method
    cfg = apply_changes(cfg, top)
    method = get_method(cfg.method)
    known = {f.name for f in fields(method.params)}
    if cfg.method != previous:  # another method starts from its own defaults
        cfg = replace(cfg, params={})
    if rest:
        unknown = sorted(set(rest) - known)
        if unknown:
            raise ValueError(
                f"no setting {', '.join(unknown)} for a custom run with method {method.name}; "
                f"its parameters are {', '.join(sorted(known)) or 'none'}"
            )
        base = method.params(**{k: v for k, v in cfg.params.items() if k in known})
        typed = {k: parse_value(base, k, v) for k, v in rest.items()}
        cfg = replace(cfg, params={**cfg.params, **typed})
    return cfg.resolved()


def run_custom(cfg: CustomConfig, ctx: RunContext) -> dict:
    """Train the models of ``cfg`` and return a preset-shaped result dict.

    A cancelled or failed model ends the run with that status and the partial history.
    """
    cfg = cfg.resolved()
    t0 = time.perf_counter()
    plan = cfg.plan
    ctx.count = len(plan)
    status, message = "completed", ""
    method = get_method(cfg.method)
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
        teacher = None
        if method.uses_teacher:
            teacher = train_teacher(ctx, data, cfg.teacher, cfg.teacher_train_config)
        for name, m in ((n, METHODS[k]) for n, k in plan if k is not None):
            train_student(
                ctx, data, cfg.student, base, name, m.name,
                teacher if m.uses_teacher else None, cfg.params if m is method else None,
            )  # fmt: skip
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


register(
    Preset(
        name="custom",
        title="Your own run: a teacher, a student and a method of your choice",
        summary="One teacher, one student, any registered method with its parameters, and the "
        "same student on hard labels from the same seed for comparison.",
        source="",
        paper={},
        config=CustomConfig().resolved(),
        runner=run_custom,
        differences="",
        kind="custom",
        configure=configure,
        check=lambda cfg: cfg.check(),
    )
)
