"""Zero-shot distillation on MNIST (Nayak et al. 2019): the CNN teacher of the feature presets
(cached, shared with them), Data Impressions crafted from it alone (:mod:`kdcore.zero_shot`),
and the thin CNN student distilled on those impressions, on as many images of uniform noise, and
on as many real training images, with the same recipe and seed: what the impressions carry,
against nothing and against real data.

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import numpy as np
import torch

from .method import param
from .presets_features import FeatureConfig, _setup
from .runner import Preset, RunContext, Stopped, finish, register, train_student
from .train import FitResult, TrainConfig, predict_logits
from .zero_shot import BETAS, T_IMPRESSION, craft_impressions, sample_targets, teacher_similarity

PRESET = "zero-shot-mnist"
STUDENTS = ("student_zero_shot", "student_noise", "student_real")
SHOWN = 6  # impressions of each class and β kept in the result, for the page


@dataclass(frozen=True)
class ZeroShotConfig(FeatureConfig):
    teacher: str = "cnn"
    student: str = "cnn-8"
    per_class: int = param(200, "Impressions per class and β", 1, 100000)
    steps: int = param(200, "Optimisation steps per impression", 1, 100000)
    impression_lr: float = param(0.05, "Adam's learning rate on the pixels", 1e-5, 10.0)
    student_epochs: int = param(20, "Student epochs over its transfer set", 1, 1000)
    T: float = param(T_IMPRESSION, "Distillation temperature T", 0.05, 100.0)


def pack_images(images: np.ndarray) -> dict:
    """uint8 images of any shape as a JSON-ready block: their shape and bytes in base64."""
    a = np.ascontiguousarray(images, dtype=np.uint8)
    return {"shape": list(a.shape), "uint8_base64": base64.b64encode(a.tobytes()).decode()}


def unpack_images(block: dict) -> np.ndarray:
    """The inverse of :func:`pack_images`; ValueError (one line) when the block does not hold
    as many bytes as its shape says."""
    raw = base64.b64decode(block["uint8_base64"])
    shape = tuple(int(n) for n in block["shape"])
    if len(raw) != int(np.prod(shape)):
        raise ValueError(f"the stored impressions hold {len(raw)} bytes, not {shape}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def run_zero_shot(cfg: ZeroShotConfig, ctx: RunContext) -> dict:
    """The teacher, then per β and class ``per_class`` impressions; the student distilled at T
    (the teacher's targets alone) on the impressions, on uniform noise and on real training
    images, as many of each. ``impressions``: the first SHOWN of each β and class as pixels,
    with the teacher's probability of the class on each; ``similarity``: the class similarity."""
    t0 = time.perf_counter()
    data, teacher, _ = _setup(cfg, ctx, 1 + len(STUDENTS))
    teacher.eval()
    k, shape, dev = data.num_classes, data.image_shape, data.device
    mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1)

    def normalise(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - mean) / std

    sim = teacher_similarity(teacher)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    xs, losses, t1 = [], [], time.perf_counter()
    for b, beta in enumerate(BETAS):
        for c in range(k):
            if ctx.cancel is not None and ctx.cancel.is_set():
                stop = FitResult("cancelled", "cancelled while crafting impressions", {},
                                 time.perf_counter() - t1)  # fmt: skip
                raise Stopped("impressions", stop)
            y = sample_targets(sim, c, beta, cfg.per_class, seed=cfg.seed * 100 + b * k + c)
            x, loss = craft_impressions(teacher, y.to(dev), shape, normalise, cfg.steps,
                                        cfg.impression_lr, gen)  # fmt: skip
            xs.append(x)
            losses.append(loss)
    seconds = time.perf_counter() - t1
    impressions = torch.cat(xs)  # (2·K·per_class, C, H, W), by β then class
    z = predict_logits(teacher, impressions)
    n = len(impressions)
    picked = torch.randperm(len(data.x_train), generator=gen, device=dev)[:n]
    noise = normalise(torch.rand(impressions.shape, generator=gen, device=dev))
    sets = {
        "student_zero_shot": (impressions, z.argmax(1)),
        "student_noise": (noise, predict_logits(teacher, noise).argmax(1)),
        "student_real": (data.x_train[picked], data.y_train[picked]),
    }
    s_cfg = TrainConfig(epochs=cfg.student_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                        seed=cfg.seed, grad_clip=cfg.grad_clip)  # fmt: skip
    kd = {"T": cfg.T, "alpha": 1.0}  # the teacher's targets alone: the impressions have no label
    for name, (x, labels) in sets.items():
        train_student(ctx, data.with_train(x, labels), cfg.student, s_cfg, name, "kd", teacher,
                      kd, eval_data=data)  # fmt: skip
    # the first SHOWN of each β and class, as pixels, and the teacher's belief in their class
    shown = impressions.view(len(BETAS), k, cfg.per_class, *shape)[:, :, :SHOWN]
    p = torch.softmax(z, 1).view(len(BETAS), k, cfg.per_class, k)[:, :, :SHOWN]
    own = p.gather(3, torch.arange(k, device=dev).view(1, k, 1, 1).expand(*p.shape[:3], 1))
    pixels = (data.denormalise(shown.flatten(0, 2)) * 255).round().byte()
    return finish(
        ZERO_SHOT_PRESET, cfg, ctx, t0,
        impressions={
            "betas": list(BETAS), "count": n, "seconds": round(seconds, 1),
            "final_loss": round(float(np.mean(losses)), 4),
            "images": pack_images(pixels.view(*shown.shape).squeeze(3).cpu().numpy()),
            "teacher_p": own.squeeze(3).cpu().tolist(),
        },
        similarity=sim.tolist(),
    )  # fmt: skip


ZERO_SHOT_PRESET = register(
    Preset(
        name=PRESET,
        title="Zero-shot distillation: a student that never sees a training image",
        summary="The feature presets' CNN teacher; 4,000 Data Impressions crafted from it alone "
        "(200 per class at each of β = 1 and 0.1, 200 Adam steps from uniform noise to match a "
        "Dirichlet-sampled output at T = 20); the thin CNN student distilled on them, on as "
        "many noise images, and on as many real training images.",
        source="Nayak, Mopuri, Shaj, Babu & Chakraborty 2019 (arXiv:1905.08114, ICML), §3; "
        "the authors' code (github.com/vcl-iisc/ZSKD)",
        paper={
            "test_errors": {},
            "claims": [
                "Data Impressions synthesised from the teacher's parameters alone, with no "
                "training data and no meta-data, serve as a transfer set: a student distilled "
                "on them reaches generalisation competitive with distillation on the actual "
                "training data, on several benchmarks (abstract).",
            ],
        },
        config=ZeroShotConfig(),
        runner=run_zero_shot,
        differences="The paper crafts 24,000 impressions for MNIST over 1,500 Adam steps each "
        "(the authors' code: batches of 100 at learning rate 0.001) for a LeNet-5 teacher; "
        "this run crafts 4,000 over 200 steps at 0.05, a few minutes on a 2-core CPU, from a "
        "two-layer CNN teacher, so the student sees fewer and rougher impressions. The "
        "authors' code rescales each image to [0, 1] after every step; here each pixel is "
        "clamped. Their script's Dirichlet rows are renormalised after the 0.1 scaling, which "
        "undoes it; here β scales the concentration as the paper writes it. The paper's "
        "tables are not quoted: we could not check them here.",
        seed_pairs={"student_zero_shot": "student_noise", "student_real": "student_zero_shot"},
    )
)
