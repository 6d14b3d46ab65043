"""Presets: named, frozen configurations that reproduce published demonstrations.

A :class:`Preset` carries its configuration, the paper's numbers with their source, and a runner.
The CLI (``python -m kdcore run NAME``) and the app's lab call the same :func:`run_preset`, so a
result seen in the browser is the result the command line prints.

Every runner returns a JSON-ready dict with at least ``preset``, ``status``, ``message``,
``config``, ``device``, ``history`` (per model, per epoch), ``models`` (per model:
``test_accuracy``, ``test_errors``, ``per_class_accuracy``, ``params``, ``seconds``) and ``paper``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, cache_dir, load_model, save_model
from .data import Dataset, load_dataset
from .distill import distill
from .models import build_model
from .train import (
    Callback,
    FitResult,
    TrainConfig,
    evaluate,
    fit,
    pick_device,
    predict_logits,
    seed_everything,
)


class Monitor(Callback):
    """Progress of a multi-model run: which model is training, then the trainer's callbacks."""

    def on_model_start(self, name: str, index: int, count: int) -> None:
        pass

    def on_model_end(self, name: str, summary: dict) -> None:
        pass


@dataclass
class RunContext:
    """What a runner needs besides its config, and what it has produced so far.

    ``history`` and ``models`` fill in as models finish, so a run that is cancelled or fails
    half-way still returns everything done before it stopped.
    """

    device: torch.device
    monitor: Monitor = field(default_factory=Monitor)
    cancel: threading.Event | None = None
    use_cache: bool = True  # reuse a teacher trained earlier with the same config
    data_dir: str | None = None
    count: int = 1  # how many models the run trains, for "model 2 of 3" progress
    history: dict[str, list[dict]] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)

    def train(self, name: str, run: Callable[[list[Callback]], FitResult]) -> FitResult:
        self.monitor.on_model_start(name, len(self.history), self.count)
        result = run([self.monitor])
        self.history[name] = [r.to_dict() for r in result.history]
        if not result.ok:
            raise Stopped(name, result)
        return result

    def done(self, name: str, summary: dict) -> None:
        self.models[name] = summary
        self.monitor.on_model_end(name, summary)


class Stopped(Exception):
    """A model's training did not complete (cancelled or failed); carries the FitResult."""

    def __init__(self, name: str, result: FitResult):
        super().__init__(result.message)
        self.name = name
        self.result = result


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    summary: str
    source: str  # where the paper's numbers come from: authors, year, section/table
    paper: dict[str, Any]  # the paper's figures, keyed like our results
    config: Any  # a frozen dataclass instance with an ``epochs`` field
    runner: Callable[[Any, RunContext], dict]
    differences: str  # why our default numbers differ from the paper's


# ----------------------------------------------------------------------------- shared steps


def model_summary(model: nn.Module, data: Dataset, seconds: float, **extra) -> dict:
    report = evaluate(model, data)
    return {
        **report,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 2),
        **extra,
    }


def _config_key(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def train_teacher(
    ctx: RunContext, data: Dataset, arch: str, cfg: TrainConfig, name: str = "teacher"
) -> nn.Module:
    """Train a teacher, or load the one trained earlier with exactly this config and device type.

    Teachers are cached under ``cache_dir()/teachers`` as safetensors (never pickles), so a sweep
    or a second preset on the same teacher does not train it again.
    """
    key_src = {
        "arch": arch,
        "data": data.name,
        "n": len(data.y_train),
        "cfg": asdict(cfg),
        "device": ctx.device.type,
        "torch": torch.__version__.split("+")[0],
    }
    path = cache_dir() / "teachers" / f"{arch}-{data.name}-{_config_key(key_src)}.safetensors"
    if ctx.use_cache and path.is_file():
        try:
            model, meta = load_model(path, ctx.device)
            ctx.monitor.on_model_start(name, len(ctx.history), ctx.count)
            ctx.history[name] = meta.get("history", [])
            ctx.done(name, model_summary(model, data, meta.get("seconds", 0.0), cached=True))
            return model
        except CheckpointError:
            pass  # a damaged cache entry is simply retrained and overwritten
    seed_everything(cfg.seed)
    model = build_model(arch, data.num_classes, data.image_shape).to(ctx.device)
    result = ctx.train(name, lambda cbs: fit(model, data, cfg, callbacks=cbs, cancel=ctx.cancel))
    meta = {"history": ctx.history[name], "seconds": result.seconds, "config": key_src}
    save_model(model, path, arch, data.num_classes, data.image_shape, meta)
    ctx.done(name, model_summary(model, data, result.seconds, cached=False))
    return model.eval()


def train_student(
    ctx: RunContext,
    data: Dataset,
    arch: str,
    cfg: TrainConfig,
    name: str,
    method: str,
    teacher: nn.Module | None = None,
    T: float = 1.0,
    alpha: float = 0.0,
    teacher_logits: torch.Tensor | None = None,
    eval_data: Dataset | None = None,
) -> nn.Module:
    """Train a student from the same seed as every other student of the run (a fair comparison).

    ``data`` is the transfer set; the summary is measured on ``eval_data`` (default ``data``).
    """
    seed_everything(cfg.seed + 1)
    model = build_model(arch, data.num_classes, data.image_shape).to(ctx.device)
    result = ctx.train(
        name,
        lambda cbs: distill(
            model, teacher, data, cfg, method, T, alpha, cbs, ctx.cancel, teacher_logits
        ),
    )
    ctx.done(name, model_summary(model, eval_data or data, result.seconds))
    return model.eval()


def _finish(preset: Preset, cfg: Any, ctx: RunContext, t0: float, **extra) -> dict:
    return {
        "preset": preset.name,
        "status": "completed",
        "message": "",
        "config": asdict(cfg),
        "device": str(ctx.device),
        "history": ctx.history,
        "models": ctx.models,
        "paper": {"source": preset.source, **preset.paper},
        "seconds": round(time.perf_counter() - t0, 2),
        **extra,
    }


# ----------------------------------------------------------------------------- hinton-mnist


@dataclass(frozen=True)
class HintonMnistConfig:
    """Hinton, Vinyals & Dean (2015, §3): a big regularised teacher, a small plain student."""

    epochs: int = 8  # per model; the paper trained far longer
    teacher: str = "mlp-1200-dropout"  # 784-1200-1200-10, dropout 20% in / 50% hidden
    student: str = "mlp-800"  # 784-800-800-10, no regularisation
    T: float = 20.0  # the paper's temperature for the 800-800 student
    alpha: float = 0.9  # weight of the soft term; the paper put "considerably lower" on hard
    lr: float = 0.05
    batch_size: int = 128
    teacher_shift: int = 2  # the paper jittered the teacher's inputs by up to 2 pixels
    seed: int = 0
    dataset: str = "mnist"


def run_hinton_mnist(cfg: HintonMnistConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    ctx.count = 3
    base = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed)
    teacher = train_teacher(ctx, data, cfg.teacher, replace(base, augment_shift=cfg.teacher_shift))
    t_logits = predict_logits(teacher, data.x_train)
    train_student(ctx, data, cfg.student, base, "student_hard", "hard")
    train_student(
        ctx, data, cfg.student, base, "student_kd", "kd", teacher, cfg.T, cfg.alpha, t_logits
    )
    return _finish(PRESETS["hinton-mnist"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- the table

PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


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
        differences="The paper trained each net to convergence (far more epochs) with "
        "weight-norm constraints and a tuned schedule; the default here is a few epochs so "
        "it finishes in minutes on a laptop CPU. The ordering (teacher < distilled < hard) is "
        "what to look for; raise --epochs to close the gap.",
    )
)


def run_preset(
    name: str,
    epochs: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    monitor: Monitor | None = None,
    cancel: threading.Event | None = None,
    use_cache: bool = True,
    data_dir: str | None = None,
    **overrides: Any,
) -> dict:
    """Run a preset. A model that is cancelled or fails ends the run with that status; the
    models finished before it and the partial history are kept in the returned dict."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    changes = dict(overrides)
    if epochs is not None:
        changes["epochs"] = epochs
    if seed is not None:
        changes["seed"] = seed
    cfg = replace(preset.config, **changes)
    ctx = RunContext(pick_device(device), monitor or Monitor(), cancel, use_cache, data_dir)
    t0 = time.perf_counter()
    try:
        return preset.runner(cfg, ctx)
    except Stopped as stop:
        out = _finish(preset, cfg, ctx, t0)
        out.update(status=stop.result.status, message=f"{stop.name}: {stop.result.message}")
        return out
