"""A method-agnostic training loop over tensors held in memory.

The trainer knows nothing about distillation: it shuffles index tensors, slices the batch (and any
per-example ``extras`` such as cached teacher logits), calls a ``loss_fn(model, batch)`` that
returns the logits and named loss parts, steps the optimiser, and reports to callbacks. There is
no DataLoader and no per-sample Python; on MNIST an epoch is a few hundred tensor slices.

Runs are seeded and reproducible, can be cancelled through a ``threading.Event`` (the partial
history is kept), and stop as ``failed`` with a one-line message when the loss stops being finite
or the device runs out of memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .cudagraph import StepGraph
from .data import Dataset, random_shift

# Torch's own intra-op thread count (one per core), read when kdcore is first imported: the
# app's page runs later set their own threads to one (app.ui.page_threads), and torch then
# reports that to threads started after them. Training workers use this (kdcore.jobs).
DEFAULT_THREADS = torch.get_num_threads()


def pick_device(device: str | None = None) -> torch.device:
    """``"auto"``/None: CUDA when present, else CPU. Anything else is passed to torch.device."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:  # "tpu", "cuda:x": torch's message lists twenty device types
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported here; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"no {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds every CUDA device


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adam"
    schedule: str = "cosine"  # "cosine" (per step, to zero) or "constant"
    warmup: float = 0.02  # fraction of all steps with a linear ramp up to lr (steadies the start)
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    augment_shift: int = 0  # pixels of random translation per training image; 0 = none
    # Max-norm constraint (Srivastava et al. 2014, §5.1): after every step, each unit's vector
    # of incoming weights (a row of every Linear layer) is scaled back onto the ball of this L2
    # radius when it leaves it. 0 = none.
    max_norm: float = 0.0
    seed: int = 0
    eval_batch_size: int = 4096


@dataclass
class Batch:
    x: torch.Tensor  # (B, C, H, W), augmented when the config says so
    y: torch.Tensor  # (B,)
    index: torch.Tensor  # (B,) positions in the training set
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-example tensors, sliced


@dataclass
class StepOutput:
    # (B, K) logits for the running train accuracy: one tensor when fit trains one model, else
    # a dict keyed like the models
    logits: torch.Tensor | dict[str, torch.Tensor]
    # Named scalar losses; their sum is optimised. With several models, a part named
    # "<model>/<part>" is that model's own and appears in its history alone.
    parts: dict[str, torch.Tensor]


# step(models, batch): ``models`` is what was passed to fit (one module, or the dict of them)
LossFn = Callable[[Any, Batch], StepOutput]


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    losses: dict[str, float]  # mean of each part over the epoch, plus "total"
    train_accuracy: float  # running accuracy on the (augmented, dropout) training batches
    test_accuracy: float
    test_errors: int
    lr: float  # learning rate at the end of the epoch
    seconds: float  # wall time of this epoch, evaluation included
    model: str = ""  # which model, when one fit trains several
    stage: str = ""  # the method's training phase (e.g. FitNets' "hint"), when it has several
    extra: dict[str, Any] = field(default_factory=dict)  # a method's figures for this epoch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    total_steps: int
    done_steps: int
    elapsed: float  # seconds since fit started

    @property
    def fraction(self) -> float:
        return self.done_steps / max(self.total_steps, 1)

    @property
    def eta(self) -> float:
        """Seconds left, extrapolated from the pace so far."""
        if self.done_steps == 0:
            return float("nan")
        return self.elapsed / self.done_steps * (self.total_steps - self.done_steps)


class Callback:
    """Override what you need. Called from the training thread; never touch a UI from here."""

    def on_step(self, progress: Progress) -> None:
        pass

    def on_epoch(self, record: EpochRecord, progress: Progress) -> None:
        pass


@dataclass
class FitResult:
    status: str  # "completed", "cancelled" or "failed"
    message: str
    histories: dict[str, list[EpochRecord]]  # per model, in the order the models were given
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def history(self) -> list[EpochRecord]:
        """The first (for one model, the only) model's history."""
        return next(iter(self.histories.values()), [])


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits for every row of ``x`` in eval mode (dropout off, BN running stats). (N, K)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def accuracy_report(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
    """Accuracy, error count and per-class accuracy from logits (N, K) and labels (N,)."""
    pred = logits.argmax(1)
    correct = pred == y
    per_class_total = torch.bincount(y, minlength=num_classes).clamp_min(1)
    per_class_ok = torch.bincount(y[correct], minlength=num_classes)
    return {
        "test_accuracy": correct.float().mean().item(),
        "test_errors": int((~correct).sum().item()),
        "per_class_accuracy": (per_class_ok / per_class_total).tolist(),
    }


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 4096) -> dict:
    return accuracy_report(
        predict_logits(model, data.x_test, batch_size), data.y_test, data.num_classes
    )


# ----------------------------------------------------------------------------- the loop


def cross_entropy_loss(model: nn.Module, batch: Batch) -> StepOutput:
    """The plain supervised step: cross-entropy on hard labels."""
    logits = model(batch.x)
    return StepOutput(logits, {"ce": F.cross_entropy(logits, batch.y)})


def _optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    # On a GPU one fused kernel updates every parameter, where the default launches several per
    # step. The CPU keeps the default update: the fused one rounds differently, and the shipped
    # reference runs were made with the default.
    fused = bool(params) and all(p.is_cuda for p in params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
            fused=fused,
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'sgd' or 'adam'")


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    warm = int(cfg.warmup * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.schedule == "constant":
        return cfg.lr
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


# How often (in steps) the loop synchronises with the device to look for a non-finite loss.
# Every step would stall a GPU on each .item(); a divergence is still caught within this many.
_FINITE_CHECK_EVERY = 16


# A run can also diverge without a NaN: logits of 1e10 keep every loss finite (1.5e11 was seen
# at lr 1000, no clipping, T=100). Measured against the loss of the very first step, before any
# update: healthy runs end each epoch below it, also those whose loss starts large (FitNets
# hints, T²-scaled KD at T=20). The floor of 1 keeps a loss that starts near 0 from tripping.
_BLOWUP = 1e6  # epoch loss / first loss: diverged, whatever the accuracy
_GROWTH = 1e2  # peak epoch loss / first loss: diverged when the test accuracy is also at chance
_CHANCE_MARGIN = 0.05  # "at chance": test accuracy at most 1/K + this


def divergence(first: float, loss: float, peak: float, accuracy: float, classes: int) -> str:
    """Why a run whose loss stayed finite has diverged ("" when it has not). ``first``: the
    first step's loss; ``loss``/``peak``: this epoch's and the largest epoch-mean loss so far;
    ``accuracy``: the lowest test accuracy of the models after this epoch."""
    if not math.isfinite(first):
        return ""
    ref = max(abs(first), 1.0)
    if loss > _BLOWUP * ref:
        return f"the loss grew from {first:.3g} to {loss:.3g}"
    if peak > _GROWTH * ref and accuracy <= 1 / classes + _CHANCE_MARGIN:
        return (
            f"the loss grew from {first:.3g} to {peak:.3g} and the test accuracy fell to "
            f"chance ({accuracy:.1%})"
        )
    return ""


def max_norm_weights(modules: list[nn.Module]) -> list[torch.Tensor]:
    """The weights a max-norm constraint applies to: every Linear layer's, each once."""
    seen: dict[int, torch.Tensor] = {}
    for m in modules:
        for layer in m.modules():
            if isinstance(layer, nn.Linear):
                seen.setdefault(id(layer.weight), layer.weight)
    return list(seen.values())


@torch.no_grad()
def apply_max_norm(weights: list[torch.Tensor], radius: float) -> None:
    """Scale each row of every weight in ``weights`` (one unit's incoming weights: see
    max_norm_weights) whose L2 norm exceeds ``radius`` back to ``radius``; rows inside the ball
    are left exactly as they are."""
    for w in weights:  # (out, in): row i holds unit i's incoming weights
        w.renorm_(p=2, dim=0, maxnorm=radius)


def _parameters(modules: list[nn.Module]) -> list[nn.Parameter]:
    """Trainable parameters of all modules, each once (a distiller may hold a model too)."""
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                seen.setdefault(id(p), p)
    return list(seen.values())


def _own_parts(losses: dict[str, float], name: str, several: bool) -> dict[str, float]:
    """A model's share of the epoch's loss parts: its "<name>/..." parts and the shared ones."""
    if not several:
        return dict(losses)
    out = {}
    for k, v in losses.items():
        owner, sep, part = k.partition("/")
        if not sep:
            out[k] = v
        elif owner == name:
            out[part] = v
    return out


def fit(
    model: nn.Module | dict[str, nn.Module],
    data: Dataset,
    cfg: TrainConfig,
    loss_fn: LossFn = cross_entropy_loss,
    extras: dict[str, torch.Tensor] | None = None,
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
    modules: Iterable[nn.Module] = (),
    first_epoch: int = 1,
    stage: str = "",
    epoch_extra: Callable[[], dict] | None = None,
    after_step: Callable[[Batch], None] | None = None,
    graphs: bool = False,
) -> FitResult:
    """Train ``model`` in place on ``data.x_train`` for ``cfg.epochs`` epochs.

    ``model`` is one module or a dict of named modules updated in the same step (peers trained
    together); each is evaluated on the test set after every epoch and gets its own history.
    ``modules`` are further trainable modules (a method's projector or embedding head): the
    optimiser and gradient clipping include them, but they are not evaluated. ``extras`` are
    per-training-example tensors (first dimension N_train) sliced alongside each batch, e.g.
    teacher logits computed once. ``first_epoch`` numbers the epochs of a later training stage
    after the earlier ones; ``epoch_extra()`` adds a method's figures to each epoch's record;
    ``after_step(batch)`` runs after every optimiser step (a memory bank's update).
    ``graphs``: on a CUDA device, capture the full-size step once as a CUDA graph and replay it
    (:mod:`kdcore.cudagraph`); ignored on the CPU. Only for a ``loss_fn`` and ``after_step``
    that can be captured: no host synchronisation, no Python state that changes per step.
    Every module must already be on ``data.device``.
    """
    callbacks = list(callbacks)
    extras = extras or {}
    models = model if isinstance(model, dict) else {"model": model}
    several = len(models) > 1
    dev = data.device
    n = len(data.y_train)
    if n == 0:
        raise ValueError("the training set is empty: no examples to train on")
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)  # shuffling, on the CPU
    # The jitter's offsets are drawn where the data lives: on a GPU, offsets drawn on the CPU
    # would be copied over every step, and a copy from pageable memory waits for the device.
    jitter = gen if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(cfg.seed)
    seed_everything(cfg.seed)  # dropout
    trainable = [*models.values(), *modules]
    params = _parameters(trainable)
    opt = _optimizer(params, cfg)
    constrained = max_norm_weights(trainable) if cfg.max_norm > 0 else []
    histories: dict[str, list[EpochRecord]] = {name: [] for name in models}
    # The epoch's running sums, grown in place by every step (a replayed graph writes to the
    # same memory each time) and zeroed when an epoch starts.
    sums: dict[str, torch.Tensor] = {}
    correct = {name: torch.zeros((), device=dev) for name in models}
    bad = torch.zeros((), dtype=torch.bool, device=dev)
    use_graph = graphs and dev.type == "cuda"
    if use_graph:  # the graph reads the learning rate from a tensor filled every step
        for g in opt.param_groups:
            g["lr"] = torch.tensor(float(g["lr"]), device=dev)
            if "capturable" in g:  # Adam keeps its step count on the device, as capture needs
                g["capturable"] = True
        static_idx = torch.zeros(cfg.batch_size, dtype=torch.long, device=dev)
        static_x = data.x_train.new_empty((cfg.batch_size, *data.x_train.shape[1:]))
    t0 = time.perf_counter()
    done = 0
    first_loss: float | None = None  # the first step's, before any update (one sync)
    peak = 0.0  # the largest epoch-mean loss so far

    def update(idx: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """One optimiser step on the examples ``idx`` (inputs ``x``, already jittered, or None
        to gather them here), adding to the epoch's sums; returns the loss."""
        x = data.x_train[idx] if x is None else x
        batch = Batch(x, data.y_train[idx], idx, {k: v[idx] for k, v in extras.items()})
        out = loss_fn(model, batch)
        loss = sum(out.parts.values())
        opt.zero_grad(set_to_none=not use_graph)  # a graph's gradients stay where they are
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if constrained:
            apply_max_norm(constrained, cfg.max_norm)
        with torch.no_grad():
            if after_step is not None:
                after_step(batch)
            for k, v in out.parts.items():
                if k not in sums:
                    sums[k] = torch.zeros_like(v.detach())
                sums[k] += v.detach()
            logits = out.logits if isinstance(out.logits, dict) else {"": out.logits}
            for name, z in zip(models, logits.values(), strict=False):
                correct[name] += (z.argmax(1) == batch.y).sum()
            bad.logical_or_(~torch.isfinite(loss.detach()))
        return loss

    graph = None
    if use_graph:
        graph = StepGraph(lambda: update(static_idx, static_x if cfg.augment_shift else None))

    def set_lr(lr: float) -> None:
        for g in opt.param_groups:
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(lr)
            else:
                g["lr"] = lr

    def progress(epoch: int, step: int) -> Progress:
        elapsed = time.perf_counter() - t0
        return Progress(epoch, step, steps_per_epoch, total, done, elapsed)

    def finish(status: str, message: str) -> FitResult:
        for m in trainable:
            m.eval()
        if graph is not None:
            graph.release()
            if graph.error:
                message = f"{message} (CUDA graph capture failed, trained eagerly: {graph.error})"
        return FitResult(status, message, histories, time.perf_counter() - t0)

    try:
        for epoch in range(first_epoch, first_epoch + cfg.epochs):
            te = time.perf_counter()
            for m in trainable:
                m.train()
            order = torch.randperm(n, generator=gen).to(dev)
            for t in (*sums.values(), *correct.values(), bad):
                t.zero_()
            for step in range(1, steps_per_epoch + 1):
                if cancel is not None and cancel.is_set():
                    return finish("cancelled", f"cancelled during epoch {epoch}")
                idx = order[(step - 1) * cfg.batch_size : step * cfg.batch_size]
                x = None
                if cfg.augment_shift:
                    x = random_shift(data.x_train[idx], cfg.augment_shift, jitter)
                set_lr(_lr_at(cfg, done, total))
                if graph is not None and len(idx) == cfg.batch_size:
                    static_idx.copy_(idx)
                    if x is not None:
                        static_x.copy_(x)
                    loss = graph()
                else:  # eager, or the epoch's last, smaller batch
                    loss = update(idx, x)
                if first_loss is None and loss is not None:
                    first_loss = abs(float(loss.detach()))
                done += 1
                check = step % _FINITE_CHECK_EVERY == 0 or step == steps_per_epoch
                if check and bad.item():
                    return finish(
                        "failed",
                        f"training diverged: the loss became NaN or infinite in epoch {epoch}"
                        " (try a lower learning rate)",
                    )
                for cb in callbacks:
                    cb.on_step(progress(epoch, step))
            losses = {k: float(v) / steps_per_epoch for k, v in sums.items()}
            extra = epoch_extra() if epoch_extra is not None else {}
            for name, m in models.items():
                own = _own_parts(losses, name, several)
                own["total"] = sum(own.values())
                test = evaluate(m, data, cfg.eval_batch_size)
                record = EpochRecord(
                    epoch=epoch,
                    losses=own,
                    train_accuracy=float(correct[name]) / n,
                    test_accuracy=test["test_accuracy"],
                    test_errors=test["test_errors"],
                    lr=_lr_at(cfg, done, total),
                    seconds=time.perf_counter() - te,
                    model=name if several else "",
                    stage=stage,
                    extra=extra,
                )
                histories[name].append(record)
                for cb in callbacks:
                    cb.on_epoch(record, progress(epoch, steps_per_epoch))
            loss_now = abs(sum(losses.values()))
            peak = max(peak, loss_now)
            worst = min(h[-1].test_accuracy for h in histories.values())
            why = divergence(first_loss, loss_now, peak, worst, data.num_classes)
            if why:  # the epoch's records stay in the history
                return finish(
                    "failed",
                    f"training diverged in epoch {epoch}: {why} (try a lower learning rate or "
                    "gradient clipping)",
                )
    except torch.OutOfMemoryError:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        return finish("failed", f"out of memory on {dev}: try a smaller batch size or model")
    return finish("completed", f"finished {cfg.epochs} epochs")
