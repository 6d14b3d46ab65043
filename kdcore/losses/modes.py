r"""Training modes beyond offline KD: peers, ensembles, virtual teachers and a network's own exits.

Pure losses of tensors, each with its paper, equation, shapes and reduction, and the thin
pieces that put them on the method contract:

* **Online -- deep mutual learning** (Zhang, Xiang, Hospedales & Lu 2018, arXiv:1706.00384):
  K peers trained together from scratch, each with cross-entropy plus the mean KL divergence to
  the other peers' predictions. :func:`mutual_step` is a step function for
  :func:`kdcore.train.fit` over a dict of peers (several models updated in one step).
* **Multi-teacher / ensemble compression** (Hinton, Vinyals & Dean 2015, arXiv:1503.02531, §1
  and §5): the student is taught by the arithmetic mean of K teachers' soft targets.
  :class:`TeacherEnsemble` makes K frozen models one teacher for the ``multi-teacher`` method.
* **Label smoothing as a uniform teacher** (Szegedy et al. 2016, arXiv:1512.00567, §7) and
  **teacher-free KD** (Yuan, Tay, Li, Wang & Feng 2020, arXiv:1909.11723): the student
  distilled from a hand-made distribution instead of a trained network.
* **Self-distillation through exits** ("Be Your Own Teacher", Zhang et al. 2019,
  arXiv:1905.08094): shallow classifiers on a network's own hidden layers, taught by its deepest
  exit, trained in the same run. The heads belong to the distiller, so any model works.

Born-again networks and teacher assistants need no loss of their own: they are KD (``kd``)
with a previous generation or an intermediate network as the teacher (see
:mod:`kdcore.presets_modes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param
from ..models import KDModel, ModelOutput
from ..train import Batch, StepOutput
from .kd import kd_loss

# ----------------------------------------------------------------------------- mutual learning


def mutual_kl(
    peer_logits: torch.Tensor, other_logits: Sequence[torch.Tensor], T: float = 1.0
) -> torch.Tensor:
    r"""One peer's mimicry term in deep mutual learning (Zhang et al. 2018, §3.1-3.2).

    .. math::
        \mathcal{L}_{KL}(\Theta_k) = \frac{1}{K - 1} \sum_{l \ne k}
            T^2\,D_{KL}\big(p_l^T \,\|\, p_k^T\big)

    ``other_logits`` are the other K - 1 peers' logits, each (B, C); they are **detached** here,
    so this term moves peer k only: each peer treats the others' current predictions as targets.
    The paper uses T = 1 (plain softmax); T^2 keeps the term's gradient scale for other T, as in
    KD. The paper's Algorithm 1 updates the two networks in turn within an iteration,
    recomputing predictions in between; here all peers step together from the same
    predictions (one forward pass each), the usual simplification.
    peer_logits: (B, C). Returns a scalar, mean over the batch.
    """
    if not other_logits:
        raise ValueError("mutual learning needs at least two peers")
    terms = [kd_loss(peer_logits, o.detach(), T) for o in other_logits]
    return torch.stack(terms).mean()


def mutual_learning_parts(
    logits: Mapping[str, torch.Tensor], labels: torch.Tensor, T: float = 1.0
) -> dict[str, torch.Tensor]:
    r"""Every peer's loss :math:`\mathcal{L}_{\Theta_k} = \mathrm{CE}(y, p_k) +
    \mathcal{L}_{KL}(\Theta_k)` (Zhang et al. 2018, §3.2, K peers), as named parts
    ``"<peer>/ce"`` and ``"<peer>/kl"`` (the trainer files a part named ``peer/...`` under
    that peer). logits: {peer: (B, C)}; labels: (B,). Their sum is the sum of the peers'
    losses; since each KL sees the others detached, its gradient reaches its own peer only.
    """
    parts: dict[str, torch.Tensor] = {}
    for name, z in logits.items():
        others = [o for other, o in logits.items() if other != name]
        parts[f"{name}/ce"] = F.cross_entropy(z, labels)
        parts[f"{name}/kl"] = mutual_kl(z, others, T)
    return parts


def mutual_step(T: float = 1.0):
    """The trainer's step for a dict of peers: each peer's logits, then
    :func:`mutual_learning_parts` (for :func:`kdcore.train.fit` with ``model`` a dict)."""

    def step(peers: dict[str, nn.Module], batch: Batch) -> StepOutput:
        logits = {name: m(batch.x) for name, m in peers.items()}  # each (B, C)
        return StepOutput(logits, mutual_learning_parts(logits, batch.y, T))

    return step


@torch.no_grad()
def agreement(logits: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """How alike a set of models' predictions are, from their logits {name: (N, C)}: the share
    of examples on which all predict the same class, and the mean symmetric KL (T = 1) over
    pairs. Two peers converging show the first rising and the second falling."""
    z = list(logits.values())
    preds = torch.stack([v.argmax(1) for v in z])  # (M, N)
    same = (preds == preds[0]).all(0).float().mean().item()
    kls = [
        0.5 * (kd_loss(a, b, 1.0) + kd_loss(b, a, 1.0)).item()
        for i, a in enumerate(z)
        for b in z[i + 1 :]
    ]
    return {"agreement": same, "sym_kl": sum(kls) / max(len(kls), 1)}


# ----------------------------------------------------------------------------- several teachers


def ensemble_soft_targets(member_logits: torch.Tensor, T: float) -> torch.Tensor:
    r"""The ensemble's soft targets: the arithmetic mean of the members' softened distributions
    (Hinton et al. 2015, §1: "the arithmetic or geometric mean of their individual predictive
    distributions"; §5 uses the arithmetic mean for the ensemble of specialists).

    .. math:: \bar p^T = \frac{1}{M} \sum_{m=1}^{M} \mathrm{softmax}(v_m / T)

    member_logits: (B, M, C), M teachers. Returns (B, C), rows summing to 1.
    """
    return F.softmax(member_logits / T, dim=-1).mean(dim=1)


def ensemble_kd_loss(
    student_logits: torch.Tensor, member_logits: torch.Tensor, T: float
) -> torch.Tensor:
    r""":math:`T^2\,\mathrm{KL}(\bar p^T \,\|\, q^T)`: KD from the mean of M teachers' soft
    targets (:func:`ensemble_soft_targets`). With M = 1 it is :func:`kd_loss`.

    student_logits: (B, C); member_logits: (B, M, C), constants (cached or detached). Returns a
    scalar, mean over the batch.
    """
    p = ensemble_soft_targets(member_logits, T)  # (B, C)
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, C)
    # p may hold exact zeros (a confident member at low T): xlogy gives 0·log 0 = 0.
    kl = (torch.xlogy(p, p) - p * log_q).sum(-1).mean()
    return kl * (T * T)


class TeacherEnsemble(KDModel):
    """K trained models as one teacher. ``forward_features`` returns the ensemble's prediction
    as logits, log of the members' mean probability (T = 1), so its argmax is the ensemble's
    vote, and every member's logits as the feature ``member_logits`` (B, M, C)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        z = torch.stack([m(x) for m in self.members], dim=1)  # (B, M, C)
        log_mean = torch.logsumexp(F.log_softmax(z, -1), dim=1) - math.log(z.shape[1])  # (B, C)
        return ModelOutput(log_mean, {"member_logits": z})


# ----------------------------------------------------------------------------- virtual teachers


def uniform_teacher(
    labels: torch.Tensor, num_classes: int, eps: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""Label smoothing's target (Szegedy et al. 2016, §7): the one-hot label mixed with a
    uniform "teacher" that knows nothing.

    .. math:: p^{LS}_k = (1 - \epsilon)\,\mathbb{1}[k = y] + \epsilon / C

    labels: (B,) int64. Returns (B, C) in ``dtype``.
    """
    one_hot = F.one_hot(labels, num_classes).to(dtype)
    return (1.0 - eps) * one_hot + eps / num_classes


def label_smoothing_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, eps: float
) -> torch.Tensor:
    r"""Cross-entropy to :func:`uniform_teacher`: :math:`-\sum_k p^{LS}_k \log q_k`, which is
    :math:`(1-\epsilon)\,\mathrm{CE}(y, q) + \epsilon\,(\mathrm{KL}(u \| q) + \log C)`: KD at
    T = 1 from a uniform teacher u, weighted ε (Yuan et al. 2020, who derive it). Equals
    ``F.cross_entropy(z, y, label_smoothing=eps)``. student_logits: (B, C). Scalar, batch mean.
    """
    p = uniform_teacher(labels, student_logits.shape[-1], eps, student_logits.dtype)  # (B, C)
    return -(p * F.log_softmax(student_logits, dim=-1)).sum(-1).mean()


def virtual_teacher(labels: torch.Tensor, num_classes: int, a: float) -> torch.Tensor:
    r"""Teacher-free KD's hand-designed teacher (Yuan et al. 2020, Tf-KD_reg): probability
    ``a`` on the correct class and the rest spread evenly over the other C - 1.

    .. math:: p^d_k = a \text{ if } k = y, \quad (1 - a)/(C - 1) \text{ otherwise}

    A "teacher" that is always right (for a > 1/C) and has no dark knowledge: every wrong class
    looks equally wrong. labels: (B,) int64. Returns (B, C), rows summing to 1.
    """
    off = (1.0 - a) / (num_classes - 1)
    p = torch.full((len(labels), num_classes), off, device=labels.device)
    return p.scatter(1, labels.unsqueeze(1), a)


def teacher_free_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, a: float, T: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Tf-KD_reg (Yuan et al. 2020): :math:`(1 - \alpha)\,\mathrm{CE}(y, q) + \alpha\,
    T^2\,\mathrm{KL}(p^d_T \,\|\, q^T)`, returned as its two weighted parts (ce, kd).

    :math:`p^d_T` is the virtual teacher softened at T the way Hinton softens a teacher: its
    log-probabilities divided by T, i.e. :math:`p^d_T \propto (p^d)^{1/T}`. The authors' code
    (``loss_kd_regularization``) departs from this: it takes ``softmax(p^d / T)``, a softmax of
    the probabilities themselves (nearly uniform at their T = 20), leaves the student
    unsoftened (``log_softmax(outputs)``, at T = 1 whatever T), averages the KL over all
    B x C entries instead of the batch and rescales by a ``multiplier`` (100 for ResNet-18 on
    CIFAR-100, with a = 0.99 and α = 0.1). The T² here plays the multiplier's part.
    student_logits: (B, C); labels: (B,). Scalars, batch means.
    """
    teacher_logits = virtual_teacher(labels, student_logits.shape[-1], a).log()  # (B, C)
    ce = F.cross_entropy(student_logits, labels)
    return (1.0 - alpha) * ce, alpha * kd_loss(student_logits, teacher_logits, T)


# ----------------------------------------------------------------------------- own exits


def self_distillation_parts(
    exit_logits: Sequence[torch.Tensor],
    exit_features: Sequence[torch.Tensor],
    deep_logits: torch.Tensor,
    deep_features: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
    beta: float,
) -> dict[str, torch.Tensor]:
    r"""Be Your Own Teacher (Zhang et al. 2019, §3): the deepest exit learns from the
    labels; each shallow exit i from the labels, the deepest exit's softened prediction and its
    feature (a hint).

    .. math::
        \mathcal{L} = \mathrm{CE}(y, q^C) + \sum_{i < C} \Big[(1 - \alpha)\,\mathrm{CE}(y, q^i)
            + \alpha\,T^2\,\mathrm{KL}(q^{C,T} \,\|\, q^{i,T})
            + \beta\,\lVert F_i - F_C \rVert_2^2\Big]

    exit_logits: shallow exits' logits, each (B, K); exit_features: their bottleneck outputs,
    each (B, D), already mapped to the deepest feature's size D; deep_logits (B, K) and
    deep_features (B, D) are detached here (targets only), a choice the paper does not spell
    out: without it the shallow exits would also pull the deepest one towards themselves. The
    paper writes one sum over all C classifiers, each with (1 - α)·CE, so its deepest exit
    (whose KL and hint terms vanish) has (1 - α) on its CE; here, as in the public PyTorch
    implementations, that CE has weight 1 (twice the paper's at the default α = ½). The
    squared distance is averaged over the batch and the D dimensions. Returns the named parts
    ``ce``, ``exits_ce``, ``exits_kd``, ``exits_hint`` (weights applied), each a scalar.
    """
    t_logits, t_feat = deep_logits.detach(), deep_features.detach()
    zero = deep_logits.new_zeros(())
    ce_i, kd_i, hint_i = zero, zero, zero
    for z, f in zip(exit_logits, exit_features, strict=True):
        ce_i = ce_i + (1.0 - alpha) * F.cross_entropy(z, labels)
        kd_i = kd_i + alpha * kd_loss(z, t_logits, T)
        hint_i = hint_i + beta * F.mse_loss(f, t_feat)
    return {
        "ce": F.cross_entropy(deep_logits, labels),
        "exits_ce": ce_i,
        "exits_kd": kd_i,
        "exits_hint": hint_i,
    }


# ----------------------------------------------------------------------------- as methods


@dataclass(frozen=True)
class MultiTeacherParams:
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5, "Softens every teacher.")
    alpha: float = param(
        0.9, "α, the ensemble's weight", 0.0, 1.0, 0.05, "(1 − α) goes to the hard labels."
    )


class MultiTeacher(Distiller):
    """(1 − α)·CE + α·T²·KL(mean of the teachers' soft targets ‖ student). The teacher is a
    :class:`TeacherEnsemble`; any other single model is an ensemble of one (plain KD)."""

    def teacher_targets(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        members = out.features.get("member_logits")
        return {"members": out.logits.unsqueeze(1) if members is None else members}  # (B, M, C)

    def forward(self, student, teacher, batch):
        p = self.params
        s = student.logits
        return {
            "ce": (1.0 - p.alpha) * F.cross_entropy(s, batch.y),
            "kd": p.alpha * ensemble_kd_loss(s, teacher["members"], p.T),
        }


@dataclass(frozen=True)
class LabelSmoothingParams:
    eps: float = param(
        0.1, "ε, the uniform teacher's weight", 0.0, 1.0, 0.05,
        "Szegedy et al. 2016 used 0.1 on ImageNet.",
    )  # fmt: skip


class LabelSmoothing(Distiller):
    def forward(self, student, teacher, batch):
        return {"ls": label_smoothing_loss(student.logits, batch.y, self.params.eps)}


@dataclass(frozen=True)
class TeacherFreeParams:
    a: float = param(
        0.99, "a, the virtual teacher's probability of the true class", 0.0, 1.0, 0.01,
        "The authors' code: 0.99. The other classes share 1 − a equally.",
    )  # fmt: skip
    T: float = param(20.0, "Temperature T", 0.05, 100.0, 1.0, "The authors' code: 20 (ResNet-18).")
    alpha: float = param(
        0.1, "α, the virtual teacher's weight", 0.0, 1.0, 0.05, "The authors' code: 0.1."
    )


class TeacherFree(Distiller):
    def forward(self, student, teacher, batch):
        p = self.params
        ce, kd = teacher_free_loss(student.logits, batch.y, p.a, p.T, p.alpha)
        return {"ce": ce, "kd": kd}


@dataclass(frozen=True)
class SelfDistillationParams:
    exits: str = param(
        "hidden1", "Shallow exit after", choices="student features",
        help="A hidden layer of the student that gets its own classifier (comma-separate "
        "several on the command line).",
    )  # fmt: skip
    T: float = param(3.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.5, "α, the deepest exit's weight", 0.0, 1.0, 0.05)
    beta: float = param(0.1, "β, weight of the feature hint", 0.0, 1e4, 0.05)


class ExitHead(nn.Module):
    """A shallow exit: (pool) -> linear bottleneck to the deepest feature's size -> classifier.
    BYOT's bottlenecks are convolutions; a linear map fits MLP and CNN features alike."""

    def __init__(self, in_dim: int, feat_dim: int, num_classes: int):
        super().__init__()
        self.bottleneck = nn.Linear(in_dim, feat_dim)
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if h.dim() == 4:
            h = F.adaptive_avg_pool2d(h, 1)  # (B, C, H, W) -> (B, C, 1, 1)
        f = F.relu(self.bottleneck(h.flatten(1)))  # (B, D)
        return self.classifier(f), f


class SelfDistillation(Distiller):
    """Shallow exits on the student's own layers, taught by its deepest exit (BYOT). No teacher:
    the exit heads are the distiller's, trained with the student and saved beside it."""

    def __init__(self, params: SelfDistillationParams, probe: Probe):
        super().__init__(params)
        self.layers = [s.strip() for s in params.exits.split(",") if s.strip()]
        if not self.layers:
            raise ValueError("self-distillation needs at least one exit layer")
        deep = probe.student_shape("embedding")[0]
        heads = {}
        for layer in self.layers:
            shape = probe.student_shape(layer)
            heads[layer] = ExitHead(shape[0] if len(shape) == 3 else math.prod(shape), deep,
                                    probe.num_classes)  # fmt: skip
        self.heads = nn.ModuleDict(heads)

    def exit_outputs(self, out: ModelOutput) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{layer: (logits (B, K), bottleneck feature (B, D))} for every shallow exit."""
        return {layer: self.heads[layer](out.features[layer]) for layer in self.layers}

    def forward(self, student, teacher, batch):
        p = self.params
        exits = list(self.exit_outputs(student).values())
        return self_distillation_parts(
            [z for z, _ in exits], [f for _, f in exits], student.logits,
            student.features["embedding"], batch.y, p.T, p.alpha, p.beta,
        )  # fmt: skip
