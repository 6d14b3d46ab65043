"""Feature-based distillation presets: the projector's spectrum, FitNets hints, attention maps.

Each trains a teacher, the student on hard labels and with plain KD, and the student with the
feature method, all from the same seed and for the same number of epochs, so the method's
effect is read against both baselines. Here ``epochs`` is every model's, the teacher's included
(``teacher_epochs`` > 0 overrides it), so ``--epochs 1`` is a quick run from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .data import load_dataset
from .distill import build_distiller, cache_targets
from .losses.attention import attention_map
from .method import param
from .models import build_model
from .runner import Preset, RunContext, finish, register, train_student, train_teacher
from .train import TrainConfig, predict_logits

KD = {"T": 4.0, "alpha": 0.9}  # the plain-KD baseline of every preset here


@dataclass(frozen=True)
class FeatureConfig:
    epochs: int = param(4, "Epochs per model (teacher too, unless set apart)", 1, 1000)
    teacher_epochs: int = param(0, "Teacher epochs (0: as epochs)", 0, 1000)
    lr: float = param(0.05, "Learning rate", 1e-5, 10.0)
    batch_size: int = param(128, "Batch size", 1, 60000)
    seed: int = param(0, "Seed", 0, 2**31 - 1)
    # Students clip their gradient norm, as the Hinton presets' do: with β = 1000 attention
    # transfer at lr 0.05 blew up in its first epoch without it (measured on a 1,000-image run).
    grad_clip: float = param(5.0, "Gradient clipping", 0.0, 1e6)
    dataset: str = "mnist"


def _setup(cfg, ctx: RunContext, count: int):
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    ctx.count = count
    epochs = cfg.teacher_epochs or cfg.epochs
    t_cfg = TrainConfig(
        epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, augment_shift=1
    )
    teacher = train_teacher(ctx, data, cfg.teacher, t_cfg)
    s_cfg = TrainConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
        grad_clip=cfg.grad_clip,
    )  # fmt: skip
    return data, teacher, s_cfg


def _baselines(ctx, data, cfg, s_cfg, teacher, targets: dict | None = None) -> None:
    """The student on hard labels and with plain KD; ``targets`` are the method's cached teacher
    targets, whose logits KD reuses instead of another pass of the teacher."""
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard")
    if targets is not None and "logits" in targets:
        logits = {"logits": targets["logits"]}
    else:
        logits = {"logits": predict_logits(teacher, data.x_train)}
    train_student(ctx, data, cfg.student, s_cfg, "student_kd", "kd", teacher, KD, logits)


def _method_targets(data, cfg, s_cfg, teacher, method: str, params: dict) -> dict | None:
    """The method's teacher targets for the whole training set, computed once for the preset
    (None when they would exceed the cache limit): one pass of the CNN teacher over MNIST's
    60,000 images costs about 20 s on the 2-core CPU, and KD's logits come with it."""
    student = build_model(cfg.student, data.num_classes, data.image_shape).to(data.device)
    distiller = build_distiller(method, params, student, teacher, data)
    return cache_targets(distiller, teacher, data, s_cfg, None)


# ----------------------------------------------------------------------------- projectors

VARIANTS = {  # variant -> the FitNets parameters that make it
    "none": {"projector": "linear", "normalise": "none"},
    "batchnorm": {"projector": "linear", "normalise": "batchnorm"},
    "whitening": {"projector": "linear", "normalise": "whiten"},
    "orthogonal": {"projector": "orthogonal", "normalise": "none"},
}


@dataclass(frozen=True)
class ProjectorConfig(FeatureConfig):
    """A linear projector from the student's 100-d embedding to the teacher's 1200-d one."""

    teacher: str = "mlp-1200-dropout"
    student: str = "mlp-100"
    layer: str = "embedding"  # the same named feature on both sides
    beta: float = param(1.0, "β, weight of the feature loss", 0.0, 1e5)
    distance: str = param("mse", "Distance", choices=("mse", "logsum"))
    variants: tuple[str, ...] = tuple(VARIANTS)
    collapse_rel: float = param(0.01, "Collapsed below (× σ_max)", 1e-6, 1.0)


def run_projector(cfg: ProjectorConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    unknown = sorted(set(cfg.variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    data, teacher, s_cfg = _setup(cfg, ctx, 3 + len(cfg.variants))
    _baselines(ctx, data, cfg, s_cfg, teacher)
    spectra, collapsed, trace = {}, {}, {}
    ctx.extra.update(spectra=spectra, collapsed=collapsed, trace=trace)
    for v in cfg.variants:
        name = f"projector_{v}"
        params = {
            **VARIANTS[v], "student_layer": cfg.layer, "teacher_layer": cfg.layer,
            "beta": cfg.beta, "distance": cfg.distance, "alpha": 0.0,
        }  # fmt: skip
        train_student(ctx, data, cfg.student, s_cfg, name, "fitnets", teacher, params)
        epochs = [e["extra"] for e in ctx.history[name]]
        spectra[v] = [e["spectrum"] for e in epochs]
        last = torch.tensor(spectra[v][-1])
        collapsed[v] = int((last < cfg.collapse_rel * last.max()).sum())
        trace[v] = [t for e in epochs for t in e.get("trace", [])]
    return finish(PRESETS_HERE["projector-normalisation"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- FitNets


@dataclass(frozen=True)
class FitNetsConfig(FeatureConfig):
    """A thin CNN (8 and 16 channels) guided by a 4x wider one at its second conv layer."""

    teacher: str = "cnn"
    student: str = "cnn-8"
    student_layer: str = "conv2"  # (16, 7, 7)
    teacher_layer: str = "conv2"  # (64, 7, 7)
    projector: str = param("conv-bn-relu", "Projector", choices=("conv1x1", "conv-bn-relu"))
    hint_epochs: int = param(1, "Hint-stage epochs", 0, 1000)
    beta: float = param(1.0, "β, weight of the hint", 0.0, 1e5)


def run_fitnets(cfg: FitNetsConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data, teacher, s_cfg = _setup(cfg, ctx, 4)
    params = {
        "student_layer": cfg.student_layer, "teacher_layer": cfg.teacher_layer,
        "projector": cfg.projector, "hint_epochs": cfg.hint_epochs, "beta": cfg.beta, **KD,
    }  # fmt: skip
    targets = _method_targets(data, cfg, s_cfg, teacher, "fitnets", params)
    _baselines(ctx, data, cfg, s_cfg, teacher, targets)
    train_student(ctx, data, cfg.student, s_cfg, "student_fitnets", "fitnets", teacher, params,
                  targets)  # fmt: skip
    ctx.extra["pairing"] = {
        "student": f"{cfg.student}.{cfg.student_layer}",
        "teacher": f"{cfg.teacher}.{cfg.teacher_layer}",
        "projector": cfg.projector,
    }
    return finish(PRESETS_HERE["fitnets-mnist"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- attention


@dataclass(frozen=True)
class ATConfig(FeatureConfig):
    teacher: str = "cnn"
    student: str = "cnn-8"
    layers: str = "conv1,conv2"
    beta: float = param(1000.0, "β, weight of AT", 0.0, 1e6)
    images: int = param(8, "Test images whose maps are kept", 1, 64)


def attention_snapshot(model, x: torch.Tensor, layers: list[str]) -> dict:
    """Attention maps of ``x`` at each layer, as nested lists rounded for JSON: {layer:
    [image][row][col]}."""
    out = model.forward_features(x)
    maps = {}
    for name in layers:
        feat = out.features[name]  # (B, C, H, W)
        h, w = feat.shape[2:]
        a = attention_map(feat).reshape(-1, h, w)  # (B, H, W), unit norm per image
        maps[name] = [[[round(float(v), 4) for v in row] for row in img] for img in a]
    return maps


def run_attention(cfg: ATConfig, ctx: RunContext) -> dict:
    t0 = time.perf_counter()
    data, teacher, s_cfg = _setup(cfg, ctx, 4)
    layers = [n.strip() for n in cfg.layers.split(",") if n.strip()]
    pick = torch.randperm(len(data.y_test), generator=torch.Generator().manual_seed(cfg.seed))
    idx = pick[: cfg.images].sort().values
    x = data.x_test[idx.to(data.device)]
    with torch.no_grad():
        teacher_maps = attention_snapshot(teacher, x, layers)
    ctx.extra["maps"] = {"test_index": idx.tolist(), "layers": layers, "teacher": teacher_maps}

    def watch(model):
        return {"maps": attention_snapshot(model, x, layers)}

    params = {"layers": cfg.layers, "beta": cfg.beta, "alpha": 0.0}
    targets = _method_targets(data, cfg, s_cfg, teacher, "at", params)
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard", watch=watch)
    logits = {"logits": targets["logits"] if targets else predict_logits(teacher, data.x_train)}
    train_student(ctx, data, cfg.student, s_cfg, "student_kd", "kd", teacher, KD, logits)
    train_student(ctx, data, cfg.student, s_cfg, "student_at", "at", teacher, params, targets,
                  watch=watch)  # fmt: skip
    return finish(PRESETS_HERE["attention-transfer"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- the table

_SAME_BUDGET = (
    "Every model trains the same number of epochs from the same seed on MNIST; the papers "
    "trained CIFAR and ImageNet networks for hundreds of epochs, so only the direction of an "
    "effect can be compared, not its size."
)

PRESETS_HERE = {
    p.name: register(p)
    for p in (
        Preset(
            name="projector-normalisation",
            title="The projector's singular values with and without normalisation",
            summary="A 100-d student embedding mapped onto the 1200-d teacher embedding by a "
            "linear projector trained with the student (CE + β·MSE): the projector's singular "
            "values per epoch and how many collapse, for no normalisation, BatchNorm, "
            "whitened student features and an orthogonal projector; beside hard labels and KD.",
            source="Miles & Mikolajczyk 2024 (arXiv:2303.11098); Miles, Elezi & Deng 2024, "
            "VkD (arXiv:2403.06213)",
            paper={
                "claims": [
                    "Without normalisation the projector's singular values collapse; "
                    "normalising the features (BatchNorm) keeps more of them (Miles & "
                    "Mikolajczyk 2024).",
                    "An orthogonal projector keeps every singular value at 1 (VkD, Miles et "
                    "al. 2024).",
                ],
            },
            config=ProjectorConfig(),
            runner=run_projector,
            differences="The papers study ResNet and ViT features on CIFAR-100 and ImageNet; "
            "here MLP embeddings on MNIST, a few epochs. " + _SAME_BUDGET,
        ),
        Preset(
            name="fitnets-mnist",
            title="FitNets: a thin CNN guided by a wide one's hidden layer",
            summary="Stage 1 trains the thin student's lower layers and a regressor to "
            "reproduce the teacher's conv2 maps (the hint); stage 2 trains the whole student "
            "with KD. Beside the same student on hard labels and with KD alone.",
            source="Romero et al. 2015 (arXiv:1412.6550), §2.2-2.3",
            paper={
                "claims": [
                    "Hint-based training lets a thinner and deeper student outperform its "
                    "teacher on CIFAR-10 (FitNet 91.61% against the teacher's 90.18%, Table 1)."
                ],
            },
            config=FitNetsConfig(),
            runner=run_fitnets,
            differences="The hint stage counts towards the budget: with the default 4 epochs "
            "the FitNets student has 1 hint epoch and 3 KD epochs (with --epochs 1, one of "
            "each). " + _SAME_BUDGET,
        ),
        Preset(
            name="attention-transfer",
            title="Attention transfer: where a thin CNN looks, taught by a wide one",
            summary="The student's spatial attention maps at conv1 and conv2 pulled towards "
            "the teacher's (CE + β·AT, β = 1000), beside hard labels and KD; the maps of a few "
            "test images are kept for every epoch.",
            source="Zagoruyko & Komodakis 2017 (arXiv:1612.03928)",
            paper={
                "claims": [
                    "Activation-based AT improves a WRN-16-1 student taught by WRN-16-2 on "
                    "CIFAR-10 from 8.77% to 8.25% error (Table 1)."
                ],
            },
            config=ATConfig(),
            runner=run_attention,
            differences=_SAME_BUDGET,
        ),
    )
}
