"""Training-mode presets: online (mutual learning), self (born-again, deep supervision), several
teachers (ensemble), virtual teachers (teacher-free) and teacher assistants (capacity gap).

Each compares the mode with independent training at the same budget: the same architectures,
epochs, learning rate and data, so the mode's effect is read against models trained alone.
``epochs`` is every model's, teachers included, so ``--epochs 1`` is a quick run from scratch
(teachers are cached, as everywhere, by their full configuration). ``per_class`` > 0 trains on
that many images of each digit, for tests and quick looks.

The papers trained CIFAR-100 ResNets and DenseNets for hundreds of epochs; these are MLPs on
MNIST for a few. Only numbers found in the papers themselves are quoted (``paper``); where a
table could not be checked it is left out and the preset says so in ``differences``. A quoted
table is a list of rows under the key that ``paper["table"]`` names, described by
``paper["setting"]``: the modes page shows it from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .data import Dataset
from .distill import build_distiller, distill
from .losses.class_wise import (
    PartnerSampler,
    class_wise_step,
    expected_calibration_error,
    intra_class_kl,
)
from .losses.modes import TeacherEnsemble, agreement, mutual_step
from .losses.mutual_contrastive import EmbedHead, mcl_step, relation_gap
from .losses.online_features import (
    FeatureDiscriminator,
    discriminator_scores,
    online_feature_step,
)
from .method import param
from .methods import get_method
from .models import KDModel, ModelOutput, build_model
from .runner import (
    LONG_NOTE,
    LONG_PROFILE,
    TEST_ERRORS,
    Measure,
    Preset,
    RunContext,
    Trained,
    finish,
    model_summary,
    register,
    run_data,
    train_student,
    train_teacher,
)
from .train import TrainConfig, evaluate, fit, predict_logits, seed_everything

KD = {"T": 4.0, "alpha": 0.9}  # the plain-KD step of every preset here, as the feature presets'


@dataclass(frozen=True)
class ModeConfig:
    epochs: int = param(4, "Epochs per model (teachers included)", 1, 1000)
    lr: float = param(0.05, "Learning rate", 1e-5, 10.0)
    batch_size: int = param(128, "Batch size", 1, 60000)
    seed: int = param(0, "Seed", 0, 2**31 - 1)
    # Students clip their gradient norm as in the other presets (the T²-scaled terms at lr 0.05).
    grad_clip: float = param(5.0, "Gradient clipping", 0.0, 1e6)
    per_class: int = param(0, "Training images per class (0: all)", 0, 100000)
    dataset: str = "mnist"


def _train_cfg(cfg: ModeConfig, seed: int | None = None, epochs: int | None = None) -> TrainConfig:
    return TrainConfig(
        epochs=cfg.epochs if epochs is None else epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        seed=cfg.seed if seed is None else seed, grad_clip=cfg.grad_clip,
    )  # fmt: skip


def _teacher(ctx: RunContext, data: Dataset, cfg: ModeConfig, arch: str, name: str, seed: int):
    """A teacher on hard labels (cached), trained like the students but unclipped."""
    t_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed)
    return train_teacher(ctx, data, arch, t_cfg, name)


def _fresh(arch: str, data: Dataset, seed: int, device: torch.device) -> KDModel:
    """A newly initialised model; the same seed gives the same initial weights."""
    seed_everything(seed)
    return build_model(arch, data.num_classes, data.image_shape).to(device)


def _alone(ctx: RunContext, data: Dataset, model: KDModel, arch: str, cfg: TrainConfig,
           name: str) -> KDModel:  # fmt: skip
    """Train ``model`` alone on hard labels: the independent baseline of a mode."""
    result = ctx.train(name, lambda cbs: fit(model, data, cfg, callbacks=cbs, cancel=ctx.cancel))
    info = {"role": "baseline", "arch": arch, "method": "hard"}
    trained = Trained(arch, model, data.num_classes, data.image_shape, "baseline", "hard")
    ctx.done(name, model_summary(model, data, result.seconds, **info), trained)
    return model.eval()


def _entry(ctx: RunContext, name: str) -> dict:
    m = ctx.models[name]
    return {"arch": m["arch"], "test_accuracy": m["test_accuracy"], "history": ctx.history[name]}


def _fresh_peers(names: list[str], cfg: ModeConfig, data: Dataset, device) -> dict[str, KDModel]:
    """Newly initialised peers ``names`` of the architectures ``cfg.peers``, peer i from seed
    ``cfg.seed + i``: every setting of a run starts its pair from the same weights."""
    return {n: _fresh(a, data, cfg.seed + i, device)
            for i, (n, a) in enumerate(zip(names, cfg.peers, strict=True))}  # fmt: skip


def _peers_done(ctx: RunContext, data: Dataset, peers: dict[str, KDModel], archs: tuple[str, ...],
                seconds: float, **info) -> dict[str, dict]:  # fmt: skip
    """File each trained peer (its summary, its model for saving) and return their entries."""
    for (name, m), arch in zip(peers.items(), archs, strict=True):
        m.eval()
        ctx.done(name, model_summary(m, data, seconds, role="peer", arch=arch, **info),
                 Trained(arch, m, data.num_classes, data.image_shape, "peer"))  # fmt: skip
    return {n: _entry(ctx, n) for n in peers}


@torch.no_grad()
def _outputs(models: dict[str, KDModel], x: torch.Tensor) -> dict[str, ModelOutput]:
    """Each model's logits and features on ``x`` in eval mode (as :func:`predict_logits`, with
    the features), each left in the mode it was in: an epoch's measures in mid-training."""
    out = {}
    for name, m in models.items():
        was = m.training
        m.eval()
        try:
            out[name] = m.forward_features(x)
        finally:
            m.train(was)
    return out


def _alone_each(ctx: RunContext, data: Dataset, cfg: ModeConfig, t_cfg: TrainConfig):
    """Each peer's architecture trained alone from that peer's initial weights (``alone_<i>``):
    the independent baselines of a run of peers; returns the models and their entries."""
    models = [_alone(ctx, data, _fresh(arch, data, cfg.seed + i, ctx.device), arch, t_cfg,
                     f"alone_{i + 1}") for i, arch in enumerate(cfg.peers)]  # fmt: skip
    return models, {f"alone_{i + 1}": _entry(ctx, f"alone_{i + 1}") for i in range(len(models))}


@torch.no_grad()
def seconds_per_prediction(model: torch.nn.Module, x: torch.Tensor, repeat: int = 3) -> float:
    """Wall time of one prediction, the fastest of ``repeat`` passes over ``x`` in batches of
    1,024 (after one warm-up pass), divided by the number of images."""
    predict_logits(model, x[:1024], 1024)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        predict_logits(model, x, 1024)
        best = min(best, time.perf_counter() - t0)
    return best / len(x)


@torch.no_grad()
def agreement_matrix(logits: dict[str, torch.Tensor]) -> list[list[float]]:
    """Share of examples on which each pair of models predicts the same class: (M, M)."""
    preds = torch.stack([z.argmax(1) for z in logits.values()])  # (M, N)
    same = (preds[:, None, :] == preds[None, :, :]).float().mean(-1)  # (M, M)
    return [[round(float(v), 4) for v in row] for row in same]


# ----------------------------------------------------------------------------- mutual learning


@dataclass(frozen=True)
class MutualConfig(ModeConfig):
    peers: tuple[str, ...] = ("mlp-100", "mlp-100")  # DML's main results pair equal networks
    T: float = param(1.0, "Temperature T", 0.05, 100.0, help="Zhang et al. 2018: 1 (none).")


def run_mutual_learning(cfg: MutualConfig, ctx: RunContext) -> dict:
    """Peers trained together (CE + mean KL to the others, one step), then each architecture
    alone from the same initial weights and data order: the same number of model-epochs.

    Every epoch records the peers' agreement on the test set (``extra``: share of equal
    predictions, symmetric KL), so their convergence shows while they train."""
    t0 = time.perf_counter()
    if len(cfg.peers) < 2:
        raise ValueError("mutual learning needs at least two peers")
    data = run_data(cfg, ctx)
    names = [f"peer_{i + 1}" for i in range(len(cfg.peers))]
    ctx.count = 2 * len(names)
    peers = _fresh_peers(names, cfg, data, ctx.device)
    t_cfg = _train_cfg(cfg)

    def epoch_extra() -> dict:
        logits = {n: predict_logits(m, data.x_test) for n, m in peers.items()}
        return {k: round(v, 5) for k, v in agreement(logits).items()}

    result = ctx.train(
        "peers",
        lambda cbs: fit(peers, data, t_cfg, mutual_step(cfg.T), callbacks=cbs, cancel=ctx.cancel,
                        epoch_extra=epoch_extra),
    )  # fmt: skip
    entries = _peers_done(ctx, data, peers, cfg.peers, result.seconds,
                          method="mutual-learning", T=cfg.T)  # fmt: skip
    _, independent = _alone_each(ctx, data, cfg, t_cfg)
    return finish(PRESETS_HERE["mutual-learning"], cfg, ctx, t0, peers=entries,
                  independent=independent)  # fmt: skip


# ----------------------------------------------------------------------------- online features


@dataclass(frozen=True)
class OnlineFeaturesConfig(ModeConfig):
    peers: tuple[str, ...] = ("mlp-100", "mlp-100")  # equal widths: features compare directly
    T: float = param(1.0, "Temperature T", 0.05, 100.0, help="Mutual learning's: 1 (none).")
    # 1 (as the L1 term's natural scale) collapsed both networks' embeddings to zero within an
    # epoch, which fools any discriminator (measured); the paper gives its adversarial
    # optimiser a smaller learning rate, here a smaller weight does the same
    weight: float = param(
        0.1, "Weight of the feature term", 0.0, 100.0,
        help="On AFD's adversarial term and on the L1 baseline's alike (our choice).",
    )  # fmt: skip
    disc_hidden: int = param(64, "Discriminator hidden units", 1, 4096)


def embedding_width(arch: str) -> int:
    """The width of a model's embedding (the features AFD compares), from shapes alone."""
    with torch.device("meta"):  # nothing allocated
        model = build_model(arch)
        return model.forward_features(torch.zeros(1, 1, 28, 28)).features["embedding"].shape[1]


def _check_online_features(cfg: OnlineFeaturesConfig) -> None:
    """Before anything trains: two peers or more, whose embeddings the discriminators and the
    L1 term compare unit by unit, so of one width."""
    if len(cfg.peers) < 2:
        raise ValueError("online feature distillation needs at least two peers")
    widths = {arch: embedding_width(arch) for arch in cfg.peers}
    if len(set(widths.values())) > 1:
        said = ", ".join(f"{a} {w}" for a, w in widths.items())
        raise ValueError(f"the peers' embeddings differ in width ({said}); pick peers of one width")


# (the prefix of the networks' names in a run, how their features are aligned)
ALIGN_SETTINGS = (("afd", "adversarial"), ("l1", "l1"), ("dml", "none"))


def run_online_features(cfg: OnlineFeaturesConfig, ctx: RunContext) -> dict:
    """The same pair of peers trained together three ways from the same initial weights and
    data order: deep mutual learning (logits only), plus an L1 pull between their embeddings,
    plus AFD's adversarial feature terms; then each alone. Every epoch records, for AFD, how
    each discriminator scores its own network's and its peer's test features."""
    t0 = time.perf_counter()
    _check_online_features(cfg)
    data = run_data(cfg, ctx)
    ctx.count = (len(ALIGN_SETTINGS) + 1) * len(cfg.peers)
    t_cfg = _train_cfg(cfg)
    settings: dict[str, dict] = {}
    for key, align in ALIGN_SETTINGS:
        names = [f"{key}_{i + 1}" for i in range(len(cfg.peers))]
        peers = _fresh_peers(names, cfg, data, ctx.device)
        width = embedding_width(cfg.peers[0])
        seed_everything(cfg.seed + 100)  # the discriminators' own initial weights
        discs = {n: FeatureDiscriminator(width, cfg.disc_hidden).to(ctx.device)
                 for n in names if align == "adversarial"}  # fmt: skip
        step = online_feature_step(discs, cfg.T, align, cfg.weight)

        @torch.no_grad()
        def epoch_extra(peers=peers, discs=discs) -> dict:
            outs = _outputs(peers, data.x_test)
            extra = {
                k: round(v, 5) for k, v in agreement({n: o.logits for n, o in outs.items()}).items()
            }
            feats = {n: o.features["embedding"] for n, o in outs.items()}
            for n, sc in (discriminator_scores(feats, discs) if discs else {}).items():
                extra |= {f"{n}_own": sc["own"], f"{n}_peer": sc["peer"]}
            return extra

        def train(cbs, peers=peers, discs=discs, step=step, extra=epoch_extra):
            return fit(
                peers,
                data,
                t_cfg,
                step,
                callbacks=cbs,
                cancel=ctx.cancel,
                modules=list(discs.values()),
                epoch_extra=extra,
            )

        result = ctx.train(key, train)
        entries = _peers_done(ctx, data, peers, cfg.peers, result.seconds,
                              method=f"online-{align}", T=cfg.T)  # fmt: skip
        settings[key] = {"align": align, "peers": entries}
    _, independent = _alone_each(ctx, data, cfg, t_cfg)
    return finish(PRESETS_HERE["online-features"], cfg, ctx, t0, settings=settings,
                  independent=independent)  # fmt: skip


# ----------------------------------------------------------------------------- online relations


@dataclass(frozen=True)
class MutualContrastiveConfig(ModeConfig):
    peers: tuple[str, ...] = ("mlp-100", "mlp-100")
    tau: float = param(0.07, "τ, the contrastive temperature", 0.001, 10.0,
                       help="The authors' code: 0.07.")  # fmt: skip
    T: float = param(3.0, "Temperature T of the soft terms", 0.05, 100.0,
                     help="The authors' code: 3.")  # fmt: skip
    embed_dim: int = param(128, "Embedding head width", 2, 4096, help="The authors' code: 128.")
    probe: int = param(256, "Test images whose relations are compared every epoch", 8, 10000)


def pair_relation_gaps(result: dict) -> dict[str, float]:
    """A seed study's extractor: each pair's relation gap after its last epoch, by setting."""
    out = {}
    for key, setting in (result.get("settings") or {}).items():
        history = setting["peers"][f"{key}_1"]["history"]
        if history:
            out[key] = history[-1]["extra"]["relation_gap"]
    if "alone_relation_gap" in result:
        out["alone"] = result["alone_relation_gap"]
    return out


RELATION_GAP = Measure(
    "relation_gap",
    "how differently the pair relates 256 test images",
    better="a smaller relation gap",
    digits=4,
    extract=pair_relation_gaps,
)


def _check_mutual_contrastive(cfg: MutualContrastiveConfig) -> None:
    if len(cfg.peers) < 2:
        raise ValueError("mutual contrastive learning needs at least two peers")


def run_mutual_contrastive(cfg: MutualContrastiveConfig, ctx: RunContext) -> dict:
    """The same pair of peers from the same initial weights and data order, trained with MCL
    (cross-entropy and the four contrastive terms on embedding heads) and with deep mutual
    learning (predictions only), then each alone. Every epoch records how differently the two
    networks relate a fixed set of test images (:func:`relation_gap` of their last hidden
    layers), and the pair trained alone gets the same figure once both are done."""
    t0 = time.perf_counter()
    _check_mutual_contrastive(cfg)
    data = run_data(cfg, ctx)
    ctx.count = 3 * len(cfg.peers)
    t_cfg = _train_cfg(cfg)
    x_probe = data.x_test[: cfg.probe]

    def gap(models: list[KDModel]) -> float:
        outs = _outputs(dict(enumerate(models)), x_probe)
        return round(relation_gap(outs[0].features["embedding"], outs[1].features["embedding"]), 5)

    settings: dict[str, dict] = {}
    for key in ("mcl", "dml"):
        names = [f"{key}_{i + 1}" for i in range(len(cfg.peers))]
        peers = _fresh_peers(names, cfg, data, ctx.device)
        seed_everything(cfg.seed + 100)  # the heads' own initial weights
        heads = {n: EmbedHead(embedding_width(a), cfg.embed_dim).to(ctx.device)
                 for n, a in zip(names, cfg.peers, strict=True) if key == "mcl"}  # fmt: skip
        step = mcl_step(heads, cfg.tau, cfg.T) if key == "mcl" else mutual_step(1.0)

        def extra(peers=peers) -> dict:
            return {"relation_gap": gap(list(peers.values())[:2])}

        result = ctx.train(key, lambda cbs, peers=peers, heads=heads, step=step, extra=extra: fit(
            peers, data, t_cfg, step, callbacks=cbs, cancel=ctx.cancel,
            modules=list(heads.values()), epoch_extra=extra))  # fmt: skip
        settings[key] = {"peers": _peers_done(ctx, data, peers, cfg.peers, result.seconds,
                                              method=key)}  # fmt: skip
    alone, independent = _alone_each(ctx, data, cfg, t_cfg)
    return finish(PRESETS_HERE["mutual-contrastive"], cfg, ctx, t0, settings=settings,
                  independent=independent, alone_relation_gap=gap(alone[:2]))  # fmt: skip


# ----------------------------------------------------------------------------- born-again


@dataclass(frozen=True)
class BornAgainConfig(ModeConfig):
    student: str = "mlp-100"  # every generation's architecture
    generations: int = param(3, "Generations (the first on hard labels)", 2, 10)
    T: float = param(KD["T"], "Temperature T", 0.05, 100.0)
    alpha: float = param(KD["alpha"], "α, the previous generation's weight", 0.0, 1.0)
    images: int = param(6, "Test images whose soft targets are kept", 1, 32)


def soft_target_summary(model: KDModel, data: Dataset, x_probe: torch.Tensor, T: float) -> dict:
    """What a model would teach: its softened distribution on a few test images, and over the
    whole test set the mean entropy at T and the mean probability off the top class."""
    p = F.softmax(predict_logits(model, data.x_test) / T, dim=1)  # (N, C)
    entropy = -(torch.xlogy(p, p)).sum(1).mean().item()
    dark = (1.0 - p.max(1).values).mean().item()
    probe = F.softmax(predict_logits(model, x_probe) / T, dim=1)  # (n, C)
    return {
        "entropy": round(entropy, 5),
        "dark_mass": round(dark, 5),
        "soft_targets": [[round(float(v), 5) for v in row] for row in probe],
    }


def run_born_again(
    cfg: BornAgainConfig,
    ctx: RunContext,
    on_teacher: Callable[[int, KDModel], None] | None = None,
) -> dict:
    """Generation 0 on hard labels, then each generation the same architecture, freshly
    initialised (seed + k), taught by the previous one with KD; the generations' ensemble (mean
    of their probabilities); and one model trained alone for all generations' epochs together
    (the same total budget). ``on_teacher(k, teacher)`` sees each generation's teacher."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = cfg.generations + 1
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data.y_test), generator=gen)[: cfg.images].sort().values
    x_probe = data.x_test[idx.to(data.device)]
    generations: list[dict] = []
    ctx.extra.update(generations=generations, probe={
        "test_index": idx.tolist(), "labels": data.y_test[idx.to(data.device)].tolist(), "T": cfg.T,
    })  # fmt: skip
    models: list[KDModel] = []
    for k in range(cfg.generations):
        name = f"generation_{k}"
        s_cfg = _train_cfg(cfg, seed=cfg.seed + k)
        if k == 0:
            model = train_student(ctx, data, cfg.student, s_cfg, name, "hard", role="generation")
        else:
            if on_teacher is not None:
                on_teacher(k, models[-1])
            params = {"T": cfg.T, "alpha": cfg.alpha}
            model = train_student(ctx, data, cfg.student, s_cfg, name, "kd", models[-1], params,
                                  role="generation")  # fmt: skip
        models.append(model)
        generations.append({
            "name": name, "teacher": f"generation_{k - 1}" if k else None,
            "test_accuracy": ctx.models[name]["test_accuracy"],
            "test_errors": ctx.models[name]["test_errors"],
            **soft_target_summary(model, data, x_probe, cfg.T),
        })  # fmt: skip
    ensemble = TeacherEnsemble(models).eval()
    report = evaluate(ensemble, data)
    ctx.extra["ensemble"] = {
        "members": [g["name"] for g in generations],
        "test_accuracy": report["test_accuracy"], "test_errors": report["test_errors"],
    }  # fmt: skip
    epochs = cfg.epochs * cfg.generations
    model = _fresh(cfg.student, data, cfg.seed + 1, ctx.device)  # train_student's seed
    _alone(ctx, data, model, cfg.student, _train_cfg(cfg, epochs=epochs), "alone_long")
    alone = {"alone_long": {**_entry(ctx, "alone_long"), "epochs": epochs}}
    return finish(PRESETS_HERE["born-again"], cfg, ctx, t0, independent=alone)


# ----------------------------------------------------------------------------- deep supervision


@dataclass(frozen=True)
class DeepSupervisionConfig(ModeConfig):
    student: str = "mlp-100"
    exits: str = "hidden1"  # the student's layers that get a shallow classifier
    T: float = param(3.0, "Temperature T", 0.05, 100.0)
    alpha: float = param(0.5, "α, the deepest exit's weight", 0.0, 1.0)
    beta: float = param(0.1, "β, weight of the feature hint", 0.0, 1e4)


def run_deep_supervision(cfg: DeepSupervisionConfig, ctx: RunContext) -> dict:
    """The student on hard labels, and the same student (same seed) with shallow exits taught
    by its deepest one; every epoch each exit's test accuracy (``exits``)."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = 2
    s_cfg = _train_cfg(cfg)
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard")
    method = get_method("self-distillation")
    p = method.make_params({"exits": cfg.exits, "T": cfg.T, "alpha": cfg.alpha, "beta": cfg.beta})
    seed_everything(s_cfg.seed + 1)  # the same initial weights as student_hard (train_student)
    model = build_model(cfg.student, data.num_classes, data.image_shape).to(ctx.device)
    d = build_distiller(method.name, p, model, None, data)
    exits: dict[str, list[float]] = {layer: [] for layer in (*d.layers, "deepest")}
    ctx.extra["exits"] = exits

    def watch(student: KDModel) -> dict:
        d.eval()
        correct = dict.fromkeys(exits, 0)
        for i in range(0, len(data.y_test), 4096):
            out = student.forward_features(data.x_test[i : i + 4096])
            y = data.y_test[i : i + 4096]
            logits = {k: z for k, (z, _) in d.exit_outputs(out).items()} | {"deepest": out.logits}
            for k, z in logits.items():
                correct[k] += int((z.argmax(1) == y).sum())
        d.train()
        acc = {k: round(c / len(data.y_test), 5) for k, c in correct.items()}
        for k, v in acc.items():
            exits[k].append(v)
        return {"exit_accuracy": acc}

    name = "student_self"
    result = ctx.train(name, lambda cbs: distill(model, None, data, s_cfg, method.name, p, cbs,
                                                 ctx.cancel, None, d, watch))  # fmt: skip
    info = {"role": "student", "arch": cfg.student, "method": method.name,
            "method_params": asdict(p)}  # fmt: skip
    ctx.done(name, model_summary(model, data, result.seconds, **info),
             Trained(cfg.student, model, data.num_classes, data.image_shape, "student",
                     method.name, d))  # fmt: skip
    return finish(PRESETS_HERE["deep-supervision"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- class-wise


@dataclass(frozen=True)
class ClassWiseConfig(ModeConfig):
    student: str = "mlp-100"
    T: float = param(4.0, "Temperature T", 0.05, 100.0, help="The authors' code: 4.")
    weight: float = param(1.0, "λ, weight of the class-wise term", 0.0, 100.0,
                          help="The authors' code: 1.")  # fmt: skip
    pairs: int = param(2000, "Same-class test pairs measured every epoch", 10, 100000)


def same_class_pairs(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` fixed pairs (n, 2) of different test images of one class, drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    sampler = PartnerSampler(labels.cpu(), int(labels.max()) + 1, gen)
    first = torch.randint(len(labels), (n,), generator=gen)
    return torch.stack([first, sampler(first, labels.cpu()[first])], 1).to(labels.device)


def last_epoch(key: str):
    """A seed study's extractor: each model's ``key`` of its last epoch's record (``extra``)."""

    def extract(result: dict) -> dict[str, float]:
        return {m: h[-1]["extra"][key] for m, h in (result.get("history") or {}).items()
                if h and key in h[-1].get("extra", {})}  # fmt: skip

    return extract


# what CS-KD is meant to change, kept at every seed of its study beside the test errors
CLASS_WISE_MEASURES = (
    TEST_ERRORS,
    Measure("intra_class_kl", "KL between two test images of a class (nats, T = 4)",
            better="two images of a class seen more alike", digits=4,
            extract=last_epoch("intra_class_kl")),
    Measure("ece", "calibration error (ECE)", better="a lower calibration error", digits=4,
            extract=last_epoch("ece")),
    Measure("confidence", "mean confidence on the test set", better="less confident",
            digits=4, extract=last_epoch("confidence")),
)  # fmt: skip


def _check_class_wise(cfg: ClassWiseConfig) -> None:
    """Before anything trains: every image needs another of its class to be taught by."""
    if cfg.per_class == 1:
        raise ValueError("class-wise self-distillation needs two training images of a class "
                         "(per_class 0, all, or 2 and more)")  # fmt: skip


def run_class_wise(cfg: ClassWiseConfig, ctx: RunContext) -> dict:
    """The same net from the same initial weights and data order, on hard labels and with
    CS-KD; every epoch, for both, how differently it sees two test images of one class (the
    mean KL at T over fixed pairs), its calibration error and its mean confidence."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = 2
    t_cfg = _train_cfg(cfg)
    pairs = same_class_pairs(data.y_test, cfg.pairs, cfg.seed)
    for name, weight in (("student_hard", 0.0), ("student_cskd", cfg.weight)):
        model = _fresh(cfg.student, data, cfg.seed, ctx.device)
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # the partners' draws
        sampler = PartnerSampler(data.y_train.cpu(), data.num_classes, gen)
        step = class_wise_step(sampler, data.x_train, cfg.T, weight)

        def measures(model=model) -> dict:
            z = predict_logits(model, data.x_test)  # in eval mode, back to training after
            conf = z.softmax(1).max(1).values.mean()
            return {"intra_class_kl": round(intra_class_kl(z, data.y_test, pairs, cfg.T), 6),
                    "ece": round(expected_calibration_error(z, data.y_test), 5),
                    "confidence": round(float(conf), 5)}  # fmt: skip

        result = ctx.train(name, lambda cbs, m=model, step=step, extra=measures: fit(
            m, data, t_cfg, step, callbacks=cbs, cancel=ctx.cancel, epoch_extra=extra))  # fmt: skip
        method = "cs-kd" if weight > 0 else "hard"
        info = {"role": "student", "arch": cfg.student, "method": method}
        ctx.done(name, model_summary(model.eval(), data, result.seconds, **info),
                 Trained(cfg.student, model, data.num_classes, data.image_shape, "student",
                         method))  # fmt: skip
    return finish(PRESETS_HERE["class-wise"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- ensemble


@dataclass(frozen=True)
class EnsembleConfig(ModeConfig):
    teachers: tuple[str, ...] = ("mlp-300", "mlp-300", "mlp-100")  # seeds 0, 1, 2
    student: str = "mlp-30"
    T: float = param(KD["T"], "Temperature T", 0.05, 100.0)
    alpha: float = param(KD["alpha"], "α, the teachers' weight", 0.0, 1.0)


def run_ensemble(cfg: EnsembleConfig, ctx: RunContext) -> dict:
    """K teachers (seed + i), their ensemble (mean probability), and the student on hard
    labels, with KD from the first teacher alone and from the ensemble's mean soft targets.
    ``comparison``: size, accuracy and time per prediction of each; ``agreement``: the share
    of test images on which each pair predicts the same digit."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = len(cfg.teachers) + 3
    names = [f"teacher_{i + 1}" for i in range(len(cfg.teachers))]
    teachers = [_teacher(ctx, data, cfg, a, n, cfg.seed + i)
                for i, (n, a) in enumerate(zip(names, cfg.teachers, strict=True))]  # fmt: skip
    ensemble = TeacherEnsemble(teachers).eval()
    s_cfg = _train_cfg(cfg)
    params = {"T": cfg.T, "alpha": cfg.alpha}
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard")
    train_student(ctx, data, cfg.student, s_cfg, "student_kd", "kd", teachers[0], params)
    train_student(ctx, data, cfg.student, s_cfg, "student_ensemble", "multi-teacher", ensemble,
                  params)  # fmt: skip
    shown = {**dict(zip(names, teachers, strict=True)), "ensemble": ensemble,
             **{n: ctx.trained[n].model for n in ("student_hard", "student_kd",
                                                  "student_ensemble")}}  # fmt: skip
    comparison = {}
    for name, model in shown.items():
        report = evaluate(model, data)
        comparison[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "test_accuracy": report["test_accuracy"],
            "test_errors": report["test_errors"],
            "us_per_prediction": round(1e6 * seconds_per_prediction(model, data.x_test), 3),
        }
    logits = {n: predict_logits(m, data.x_test) for n, m in shown.items()}
    return finish(
        PRESETS_HERE["ensemble"], cfg, ctx, t0, comparison=comparison,
        ensemble=comparison["ensemble"],
        agreement={"models": list(logits), "matrix": agreement_matrix(logits)},
    )  # fmt: skip


# ----------------------------------------------------------------------------- teacher-free


@dataclass(frozen=True)
class TeacherFreeConfig(ModeConfig):
    teacher: str = "mlp-300"  # the real teacher, for KD beside the virtual one
    student: str = "mlp-30"
    eps: float = param(0.1, "Label smoothing ε", 0.0, 1.0)
    a: float = param(0.99, "Virtual teacher's probability of the true class", 0.0, 1.0)
    T: float = param(20.0, "Virtual teacher's temperature T", 0.05, 100.0)
    alpha: float = param(0.1, "α, the virtual teacher's weight", 0.0, 1.0)


def run_teacher_free(cfg: TeacherFreeConfig, ctx: RunContext) -> dict:
    """The same student (same seed) on hard labels, with label smoothing, with the virtual
    teacher and with KD from a real trained teacher."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = 5
    teacher = _teacher(ctx, data, cfg, cfg.teacher, "teacher", cfg.seed)
    s_cfg = _train_cfg(cfg)
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard")
    train_student(ctx, data, cfg.student, s_cfg, "student_ls", "label-smoothing",
                  params={"eps": cfg.eps})  # fmt: skip
    tf = {"a": cfg.a, "T": cfg.T, "alpha": cfg.alpha}
    train_student(ctx, data, cfg.student, s_cfg, "student_tf", "teacher-free", params=tf)
    train_student(ctx, data, cfg.student, s_cfg, "student_kd", "kd", teacher, KD)
    return finish(PRESETS_HERE["teacher-free"], cfg, ctx, t0)


# ----------------------------------------------------------------------------- teacher assistant


@dataclass(frozen=True)
class AssistantConfig(ModeConfig):
    teachers: tuple[str, ...] = ("mlp-30", "mlp-100", "mlp-300")  # smallest to largest
    assistant: str = "mlp-30"  # distilled from the largest teacher, then teaches the student
    student: str = "mlp-10"  # a tiny student: 784-10-10-10, about 8k parameters
    T: float = param(KD["T"], "Temperature T", 0.05, 100.0)
    alpha: float = param(KD["alpha"], "α, the teacher's weight", 0.0, 1.0)


def run_teacher_assistant(cfg: AssistantConfig, ctx: RunContext) -> dict:
    """Teachers of growing size (hard labels), the tiny student distilled from each, and the
    chain largest teacher → assistant → student; the student on hard labels for reference.
    ``capacity``: per teacher, its size and accuracy and the student's; ``chain``: the three
    links' accuracies."""
    t0 = time.perf_counter()
    data = run_data(cfg, ctx)
    ctx.count = 2 * len(cfg.teachers) + 3
    s_cfg = _train_cfg(cfg)
    params = {"T": cfg.T, "alpha": cfg.alpha}
    teachers = [_teacher(ctx, data, cfg, a, f"teacher_{a}", cfg.seed) for a in cfg.teachers]
    train_student(ctx, data, cfg.student, s_cfg, "student_hard", "hard")
    capacity = []
    for arch, teacher in zip(cfg.teachers, teachers, strict=True):
        name = f"student_from_{arch}"
        train_student(ctx, data, cfg.student, s_cfg, name, "kd", teacher, params)
        capacity.append({
            "teacher": arch, "teacher_params": ctx.models[f"teacher_{arch}"]["params"],
            "teacher_accuracy": ctx.models[f"teacher_{arch}"]["test_accuracy"],
            "student_accuracy": ctx.models[name]["test_accuracy"],
        })  # fmt: skip
    ctx.extra["capacity"] = capacity
    assistant = train_student(ctx, data, cfg.assistant, s_cfg, "assistant", "kd", teachers[-1],
                              params, role="assistant")  # fmt: skip
    train_student(ctx, data, cfg.student, s_cfg, "student_via_assistant", "kd", assistant, params)
    chain = {
        "teacher": cfg.teachers[-1], "assistant": cfg.assistant, "student": cfg.student,
        "teacher_accuracy": capacity[-1]["teacher_accuracy"],
        "assistant_accuracy": ctx.models["assistant"]["test_accuracy"],
        "student_accuracy": ctx.models["student_via_assistant"]["test_accuracy"],
        "student_direct_accuracy": capacity[-1]["student_accuracy"],
        "student_hard_accuracy": ctx.models["student_hard"]["test_accuracy"],
    }  # fmt: skip
    return finish(PRESETS_HERE["teacher-assistant"], cfg, ctx, t0, chain=chain)


# ----------------------------------------------------------------------------- the papers' tables

# Furlanello et al. 2018, Table 2: CIFAR-100 test error %. Left: a DenseNet teacher and its
# BAN student (teacher loss only; BAN+L adds the label loss; CWTM and DKPP are the paper's two
# variants of the teacher's dark knowledge). Right: a sequence of generations BAN-1..3 and the
# ensembles of the first two and three. None: no BAN-3 was trained for DenseNet-80-120 (its
# Ens*3 includes the teacher instead).
BAN_TABLE2 = [
    {"network": net, "teacher": t, "BAN": ban, "BAN+L": ban_l, "CWTM": cwtm, "DKPP": dkpp,
     "BAN-1": b1, "BAN-2": b2, "BAN-3": b3, "Ens*2": e2, "Ens*3": e3}
    for net, t, ban, ban_l, cwtm, dkpp, b1, b2, b3, e2, e3 in (
        ("DenseNet-112-33", 18.25, 16.95, 17.68, 17.84, 17.84, 17.61, 17.22, 16.59, 15.77, 15.68),
        ("DenseNet-90-60", 17.69, 16.69, 16.93, 17.42, 17.43, 16.62, 16.44, 16.72, 15.39, 15.74),
        ("DenseNet-80-80", 17.16, 16.36, 16.5, 17.16, 16.84, 16.26, 16.30, 15.5, 15.46, 15.14),
        ("DenseNet-80-120", 16.87, 16.00, 16.41, 17.12, 16.34, 16.13, 16.13, None, 15.13, 14.9),
    )
]  # fmt: skip

# Mirzadeh et al. 2020, Table 1: top-1 test accuracy %; NOKD: the student alone, BLKD: KD from
# the teacher, TAKD: through a teacher assistant. Plain CNNs with S=2, TA=4, T=10 layers;
# ResNets with S=8, TA=20, T=110 on CIFAR and S=14, TA=20, T=50 on ImageNet.
TAKD_TABLE1 = [
    {"model": model, "dataset": dataset, "NOKD": nokd, "BLKD": blkd, "TAKD": takd}
    for model, dataset, nokd, blkd, takd in (
        ("CNN", "CIFAR-10", 70.16, 72.57, 73.51),
        ("CNN", "CIFAR-100", 41.09, 44.57, 44.92),
        ("ResNet", "CIFAR-10", 88.52, 88.65, 88.98),
        ("ResNet", "CIFAR-100", 61.37, 61.41, 61.82),
        ("ResNet", "ImageNet", 65.20, 66.60, 67.36),
    )
]  # fmt: skip

# Mirzadeh et al. 2020, Table 3: the ResNet-8 student's accuracy % through assistants of
# different depths, teacher ResNet-110.
TAKD_TABLE3 = {
    "CIFAR-10": {"TA=56": 88.70, "TA=32": 88.73, "TA=20": 88.90, "TA=14": 88.98},
    "CIFAR-100": {"TA=56": 61.47, "TA=32": 61.55, "TA=20": 61.82, "TA=14": 61.5},
}

# Hinton, Vinyals & Dean 2015, Table 1: the speech model (8 hidden layers of 2560 ReLUs, 14,000
# targets), test frame accuracy % and word error rate %.
HINTON_TABLE1 = [
    {"system": "baseline", "test frame accuracy %": 58.9, "WER %": 10.9},
    {"system": "10x ensemble", "test frame accuracy %": 61.1, "WER %": 10.7},
    {"system": "distilled single model", "test frame accuracy %": 60.8, "WER %": 10.7},
]


# ----------------------------------------------------------------------------- the table

_BUDGET = (
    "MLPs on MNIST for a few epochs against the papers' CIFAR-100 networks trained for hundreds; "
    "every MNIST model here is within a few points of the others, and one seed's run differs "
    "from the next by a few to some forty test errors (standard deviations of 2.6 to 41.2 over "
    "five seeds of these presets' long runs), so only the direction of an effect can be "
    "compared, and only where it holds at most of the five seeds in the table under the run. "
)


def _preset(name, title, summary, source, paper, config, runner, differences, **more) -> Preset:
    return Preset(name=name, title=title, summary=summary, source=source, paper=paper,
                  config=config, runner=runner, differences=_BUDGET + differences,
                  profiles={"long": LONG_PROFILE}, profile_notes=LONG_NOTE, **more)  # fmt: skip


PRESETS_HERE: dict[str, Preset] = {
    p.name: register(p)
    for p in (
        _preset(
            "mutual-learning",
            "Deep mutual learning: two peers teach each other from scratch",
            "Two 100-100 MLPs trained together, each with cross-entropy plus the KL divergence "
            "to the other's current prediction, against the same two nets (same initial "
            "weights) trained alone for the same epochs.",
            "Zhang, Xiang, Hospedales & Lu 2018 (arXiv:1706.00384), Table 2",
            {
                "test_errors": {},
                "setting": "ResNet-32 pair on CIFAR-100, top-1 accuracy %",
                "table": "cifar100_top1",
                "cifar100_top1": {"alone": 68.99, "mutual": 71.19},
            },
            MutualConfig(),
            run_mutual_learning,
            "The peers here step together from the same predictions; the paper updates the two "
            "networks in turn within each iteration.",
            seed_pairs={"peer_1": "alone_1", "peer_2": "alone_2"},  # each with its own twin
        ),
        _preset(
            "online-features",
            "Online feature distillation: peers that learn each other's features",
            "Two 100-100 MLPs trained together three ways from the same initial weights: deep "
            "mutual learning (logits only), plus an L1 pull between their embeddings, plus "
            "AFD's discriminators, one per network, which the other's features must fool; "
            "against the same two nets trained alone for the same epochs.",
            "Chung, Park, Kim & Kwak 2020 (arXiv:2002.01775, ICML)",
            {
                "test_errors": {},
                "claims": [
                    "Transferring the feature-map distribution adversarially, besides the "
                    "class probabilities, performs better than the conventional direct "
                    "alignment such as L1 and is more suitable for online distillation; the "
                    "improvement is largest when a small network is trained with a large one "
                    "(abstract).",
                ],
            },
            OnlineFeaturesConfig(),
            run_online_features,
            "The paper's networks are CNNs whose last feature maps its convolutional "
            "discriminators compare; here the 100-unit embeddings of two equal MLPs and a "
            "two-layer MLP discriminator (equal widths need no transfer layer). The paper "
            "alternates two optimisers within each mini-batch, the adversarial one with a "
            "smaller learning rate; here one step over the sum, the feature term weighted 0.1 "
            "(as the L1 baseline's: our choice; at 1 both embeddings collapsed to zero, which "
            "fools any discriminator), and the least-squares form of the adversarial terms is "
            "ours too. The weight trades matching for accuracy (seed 0, 16 epochs): at 0.1 the "
            "discriminators' scores of the two networks' features end 0.12 and 0.22 apart and "
            "AFD makes 205 / 216 errors, at 0.03 0.54 apart and 169 / 184, at 0.01 0.97 apart "
            "(the features told apart every time) and 154 / 177. Its tables are not quoted: we "
            "could not check them here.",
            seed_pairs={f"{k}_{i}": f"alone_{i}" for k, _ in ALIGN_SETTINGS for i in (1, 2)},
            check=_check_online_features,
        ),
        _preset(
            "mutual-contrastive",
            "Mutual contrastive learning: peers that agree on how the images of a batch relate",
            "Two 100-100 MLPs trained together with MCL: each with cross-entropy and, on an "
            "embedding head, supervised contrastive learning within itself and across to the "
            "other, and each matching the other's distributions of similarities over the batch; "
            "beside the same pair with deep mutual learning (predictions only) and each net "
            "alone, from the same initial weights.",
            "Yang, An, Xu & Xu 2022 (arXiv:2104.12565, AAAI); the authors' supervised CIFAR code",
            {
                "test_errors": {},
                "claims": [
                    "Mutual contrastive learning transfers contrastive distributions among a "
                    "cohort of networks, so that each learns the others' relations between "
                    "images: its online variant improves every network of the cohort over "
                    "training alone on CIFAR-100 and ImageNet (abstract).",
                ],
            },
            MutualContrastiveConfig(),
            run_mutual_contrastive,
            "The weights (0.1 for the two contrastive losses, 1 for the two soft ones), τ = "
            "0.07, T = 3 and the 128-d heads are the authors' code's. Their sampler puts two "
            "images of each class in every batch, so every image has a positive; MNIST's ten "
            "classes give each image some twelve in a random batch of 128, and an image alone "
            "in its class would simply be left out of the contrastive terms. Their code's "
            "distributions keep each image's similarity to itself, as here. Its tables are not "
            "quoted: we could not check them here.",
            seed_pairs={f"{k}_{i}": f"alone_{i}" for k in ("mcl", "dml") for i in (1, 2)},
            seed_measures=(TEST_ERRORS, RELATION_GAP),
            check=_check_mutual_contrastive,
        ),
        _preset(
            "born-again",
            "Born-again networks: generations of one architecture, each taught by the last",
            "A 100-100 MLP on hard labels, then two more generations of the same net, each "
            "taught by the previous one with KD (T = 4, α = 0.9); the generations' ensemble; "
            "and the same net trained alone for all their epochs together.",
            "Furlanello, Lipton, Tschannen, Itti & Anandkumar 2018 (arXiv:1805.04770), Table 2",
            {
                "test_errors": {},
                "setting": "Furlanello et al. 2018, Table 2: DenseNets on CIFAR-100, test "
                "error % (lower is better); BAN-1..3 are successive generations, Ens*2 and "
                "Ens*3 their ensembles (the DenseNet-80-120 Ens*3 includes the teacher, as no "
                "BAN-3 was trained for it)",
                "table": "cifar100_test_error",
                "cifar100_test_error": BAN_TABLE2,
                "claims": [
                    "Students parameterised identically to their teachers outperform them: "
                    "every DenseNet's BAN student has a lower CIFAR-100 test error than its "
                    "teacher (Table 2).",
                    "More generations help inconsistently and saturate; the third generation "
                    "BAN-3-DenseNet-80-80 is the best single model at 15.5% test error, and the "
                    "largest ensemble, of DenseNet-80-120s, reaches 14.9% (Table 2).",
                ],
            },
            BornAgainConfig(),
            run_born_again,
            "The generations use this project's KD (T = 4, α = 0.9); BAN trains on the teacher "
            "loss alone (BAN+L adds the labels). Table 2's numbers are CIFAR-100 test errors of "
            "DenseNets, for the direction of the effect only.",
        ),
        _preset(
            "deep-supervision",
            "Be your own teacher: a network's shallow exit taught by its deepest",
            "A 100-100 MLP with a classifier after its first layer, trained in one run with the "
            "labels, the last layer's softened prediction and its features as a hint; beside "
            "the same net on hard labels. Each exit's test accuracy every epoch.",
            "Zhang, Song, Gao, Chen, Bao & Ma 2019 (arXiv:1905.08094)",
            {
                "test_errors": {},
                "claims": [
                    "Self-distillation improves the deepest classifier over the plain network "
                    "and makes the shallow classifiers usable on their own."
                ],
            },
            DeepSupervisionConfig(),
            run_deep_supervision,
            "BYOT's exits are convolutional bottlenecks on ResNet stages; here a linear one on "
            "an MLP layer. Its tables are not quoted: we could not check them here. T, α and β "
            "are this preset's choices, not the paper's. The paper's sum runs over every exit, "
            "the deepest included, each CE weighted (1 − α); here the deepest exit's CE has "
            "weight 1, as in the public PyTorch implementations.",
        ),
        _preset(
            "class-wise",
            "Class-wise self-distillation: a net taught by itself on another image of the class",
            "A 100-100 MLP on hard labels, and the same net (same initial weights and data "
            "order) whose prediction on every image is also pulled towards its own prediction, "
            "without gradient, on a random other training image of the same class (CS-KD, "
            "T = 4, λ = 1); every epoch, how differently each sees two test images of a class, "
            "its calibration error and its confidence.",
            "Yun, Park, Lee & Shin 2020 (arXiv:2003.13964, CVPR)",
            {
                "test_errors": {},
                "claims": [
                    "Distilling the predictive distribution between different samples of the "
                    "same label regularises a single network's dark knowledge: it mitigates "
                    "overconfident predictions and reduces intra-class variations, and improves "
                    "both generalisation and calibration (abstract).",
                ],
            },
            ClassWiseConfig(),
            run_class_wise,
            "The authors' sampler fills half of each batch with the partners and takes the "
            "cross-entropy on the other half; here every image of the batch gets the "
            "cross-entropy and a partner of its own, drawn afresh each step, at a second "
            "forward pass without gradient (in training mode, as their code). T = 4 and λ = 1 "
            "are their code's. Its tables are not quoted: we could not check them here.",
            seed_pairs={"student_cskd": "student_hard"},
            seed_measures=CLASS_WISE_MEASURES,
            check=_check_class_wise,
        ),
        _preset(
            "ensemble",
            "Ensemble compression: one small student taught by several teachers",
            "Three teachers (two 300-300 MLPs of different seeds and a 100-100), their mean "
            "prediction, and a 30-30 student on hard labels, with KD from one teacher and from "
            "the ensemble's mean soft targets: size, accuracy, time per prediction, agreement.",
            "Hinton, Vinyals & Dean 2015 (arXiv:1503.02531), §1, §4 (Table 1), §5",
            {
                "test_errors": {},
                "setting": "Hinton et al. 2015, Table 1: speech recognition (§4), an ensemble "
                "of 10 models and one model distilled from it, beside the same model trained "
                "alone",
                "table": "speech",
                "speech": HINTON_TABLE1,
                "claims": [
                    "An ensemble's knowledge can be distilled into a single model that is much "
                    "easier to deploy (§1); on a speech model the baseline reached 58.9% test "
                    "frame accuracy, 10 models averaged 61.1% and the single model distilled "
                    "from them 60.8%, with word error rates of 10.9%, 10.7% and 10.7% "
                    "(Table 1): more than 80% of the ensemble's gain in frame accuracy "
                    "transferred (§4.1)."
                ],
            },
            EnsembleConfig(),
            run_ensemble,
            "The paper distils a speech-recognition ensemble; here three MNIST MLPs.",
        ),
        _preset(
            "teacher-free",
            "Teacher-free KD: a virtual teacher, label smoothing and a real teacher",
            "A 30-30 student on hard labels, with label smoothing (ε = 0.1), with the virtual "
            "teacher (a = 0.99, T = 20, α = 0.1) and with KD from a trained 300-300 teacher.",
            "Yuan, Tay, Li, Wang & Feng 2020 (arXiv:1909.11723); label smoothing: Szegedy et "
            "al. 2016 (arXiv:1512.00567)",
            {
                "test_errors": {},
                "claims": [
                    "Label smoothing is a special case of KD with a uniform teacher, and a "
                    "hand-designed virtual teacher with 100% accuracy can stand in for a "
                    "trained one (abstract)."
                ],
            },
            TeacherFreeConfig(),
            run_teacher_free,
            "The virtual teacher is softened as a teacher's log-probabilities at T (see "
            "kdcore.losses.modes.teacher_free_loss), not as the authors' code does; a, T and α "
            "are their code's ResNet-18 settings. Their tables are not quoted: we could not "
            "check them here.",
        ),
        _preset(
            "teacher-assistant",
            "The capacity gap: teachers of growing size, and a teacher assistant",
            "A tiny 10-10 student distilled from 30-30, 100-100 and 300-300 teachers, and "
            "through a 30-30 assistant itself distilled from the 300-300 teacher; beside the "
            "student on hard labels.",
            "Mirzadeh, Farajtabar, Li, Levine, Matsukawa & Ghasemzadeh 2020 (arXiv:1902.03393), "
            "Tables 1 and 3",
            {
                "test_errors": {},
                "setting": "Mirzadeh et al. 2020, Table 1: top-1 test accuracy % of the student "
                "alone (NOKD), distilled from the teacher (BLKD) and through an assistant "
                "(TAKD); plain CNNs with 2 / 4 / 10 layers (student / assistant / teacher), "
                "ResNets 8 / 20 / 110 on CIFAR and 14 / 20 / 50 on ImageNet",
                "table": "top1",
                "top1": TAKD_TABLE1,
                "assistant_depth": TAKD_TABLE3,
                "claims": [
                    "The student's performance degrades when the gap between student and "
                    "teacher is large; an intermediate-sized teacher assistant bridges it "
                    "(abstract). TAKD beat plain KD in every row of Table 1.",
                    "The best assistant depth depends on the data: for the ResNet-8 student of "
                    "a ResNet-110, TA=14 on CIFAR-10 (88.98%) and TA=20 on CIFAR-100 (61.82%) "
                    "(Table 3).",
                ],
            },
            AssistantConfig(),
            run_teacher_assistant,
            "TAKD's numbers are CIFAR and ImageNet networks' accuracies, quoted for the direction "
            "of the effect; Table 1 labels its ResNet CIFAR-10 assistant TA=20, but its TAKD "
            "value, 88.98%, is Table 3's TA=14 entry. With MNIST's easy digits and a few epochs "
            "the gap may not open at all; raise --epochs.",
        ),
    )
}
