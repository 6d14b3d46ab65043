"""Flow of solution procedure (FSP): the student learns how the teacher's features change from
one layer to the next, not the features themselves (Yim et al. 2017).

Junho Yim, Donggyu Joo, Jihoon Bae, Junmo Kim, "A Gift from Knowledge Distillation: Fast
Optimization, Network Minimization and Transfer Learning", CVPR 2017, §3. Reference code: the
CRD benchmark's (RepDistiller's ``distiller_zoo/FSP.py`` and ``helper/pretrain.py``), whose
FSP figures the fsp-mnist preset quotes.

Two layers of a network, with maps F¹ (h × w × m) and F² (h × w × n) of the same size, give an
m × n Gram matrix between their channels, the *FSP matrix*: how each channel of the later layer
goes with each channel of the earlier one, averaged over positions. The paper reads it as the
flow from one layer to the next, the way the network solves the problem, and asks the student
for the teacher's, pair of layers by pair of layers. The student must have the teacher's channel
counts at those layers (a shallower net of the same widths, the paper's ResNet-8 taught by a
ResNet-26); its depth between them is free. Training has two stages: the student is first
trained on the FSP loss alone (its layers up to the last paired one; the classifier gets no
gradient), then on its task (CE), from those weights; the paper adds nothing to the second
stage, and the benchmark's code lets KD in where α > 0.

Where the two layers' maps differ in size (a ResNet stage halves the map), the benchmark's code
average-pools the larger one to the smaller's size, as here. The paper sums the squared
differences of each matrix's entries; the benchmark's code takes their mean (the paper's sum
divided by m·n, so its pairs of wider layers count for less). The paper gives every pair the same
weight λ, and no value for it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, Stage, param, stage_first
from .kd import ce_and_kd

FSP_LAYERS = "stem,stage1,stage2,stage3"  # a CIFAR ResNet's stem and stage outputs, in order
FSP_WEIGHT = 1.0  # λ for every pair (the paper's are equal; it gives no value)


def as_map(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) as it is; a flat (B, C) layer as a 1 × 1 map."""
    return f if f.dim() == 4 else f.reshape(*f.shape[:2], 1, 1)


def fsp_matrix(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    r"""The FSP matrix of two layers (Yim et al. 2017, §3.2), per example:

    .. math:: G_{i,j}(x; W) = \sum_{s=1}^{h} \sum_{t=1}^{w}
        \frac{F^1_{s,t,i}(x; W) \times F^2_{s,t,j}(x; W)}{h \times w}

    f1: (B, m, H1, W1), f2: (B, n, H2, W2) (a flat (B, C) layer counts as 1 × 1); the larger
    map is average-pooled to the smaller's size first (the benchmark's code; the paper pairs
    maps of one size). Returns (B, m, n)."""
    a, b = as_map(f1), as_map(f2)
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    if tuple(a.shape[2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    if tuple(b.shape[2:]) != size:
        b = F.adaptive_avg_pool2d(b, size)
    a, b = a.flatten(2), b.flatten(2)  # (B, m, h·w), (B, n, h·w)
    return torch.bmm(a, b.transpose(1, 2)) / a.shape[2]


def fsp_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], weight: float = FSP_WEIGHT
) -> torch.Tensor:
    r"""The paper's FSP loss (§3.3) on one batch of N examples, with every λ_i = ``weight``:

    .. math:: L_{FSP}(W_t, W_s) = \frac{1}{N} \sum_x \sum_{i=1}^{n} \lambda_i \big\lVert
        G_i^T(x; W_t) - G_i^S(x; W_s) \big\rVert_2^2

    student, teacher: the n FSP matrices of each, (B, m_i, n_i) each, paired in order. The
    squared norm sums the entries (the benchmark's code averages them)."""
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student FSP matrices against {len(teacher)} teacher's")
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher, strict=True):
        total = total + (s - t).pow(2).flatten(1).sum(1).mean()
    return weight * total


def fsp_matrices(features: dict[str, torch.Tensor], layers: list[str]) -> list[torch.Tensor]:
    """The FSP matrices of each consecutive pair of ``layers`` (the benchmark pairs each stage's
    output with the next one's)."""
    return [fsp_matrix(features[a], features[b]) for a, b in itertools.pairwise(layers)]


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class FSPParams:
    layers: str = param(
        FSP_LAYERS, "Layers", help="Comma-separated features that the student and the teacher "
        "both have, in forward order, with the same channels in both: each one and the next "
        "make a pair. A CIFAR ResNet's: its stem and its three stages.",
    )  # fmt: skip
    weight: float = param(FSP_WEIGHT, "λ, weight of each pair", 0.0, 1e5, 0.5,
                          "Equal for every pair, as the paper's; it gives no value")  # fmt: skip
    init_epochs: int = param(
        1, "FSP epochs", 0, 1000,
        help="This many epochs of the FSP loss alone (the student's layers, not its "
        "classifier) before the run's epochs on CE (and KD at α > 0) without it. 0: one "
        "stage, CE + KD + the FSP loss together.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class FSP(Distiller):
    """The FSP stage, then CE (and optionally KD). Stateless apart from its measures: the
    teacher's FSP matrices are what is cached (m × n per pair and example). Each epoch records,
    over that epoch's batches, the FSP loss per pair (``pair_loss``, λ = 1), in both stages, so
    the figure shows how much of the teacher's flow classification training keeps."""

    def __init__(self, params: FSPParams, probe: Probe):
        super().__init__(params)
        self.layers = [name.strip() for name in params.layers.split(",") if name.strip()]
        if len(self.layers) < 2:
            raise ValueError("FSP needs at least two layers: each one and the next make a pair")
        for name in self.layers:
            s, t = probe.student_shape(name), probe.teacher_shape(name)
            if s[0] != t[0]:
                raise ValueError(
                    f"FSP needs the teacher's channels: the student's {name} has {s[0]}, the "
                    f"teacher's {t[0]}"
                )
        self._sums = torch.zeros(len(self.layers) - 1)
        self._n = 0

    def teacher_targets(self, out):
        mats = fsp_matrices(out.features, self.layers)
        return {"logits": out.logits, **{f"fsp:{i}": g for i, g in enumerate(mats)}}

    def stages(self, epochs: int) -> list[Stage]:
        return stage_first("init", self.params.init_epochs, epochs)

    def forward(self, student, teacher, batch):
        p = self.params
        training_fsp = self.stage == "init" or p.init_epochs <= 0
        with torch.set_grad_enabled(training_fsp and torch.is_grad_enabled()):
            s_mats = fsp_matrices(student.features, self.layers)
            t_mats = [teacher[f"fsp:{i}"] for i in range(len(s_mats))]
            # each pair's loss once: the measure (λ = 1) and, where it trains, the loss itself
            pairs = torch.stack(
                [fsp_loss([s], [t], 1.0) for s, t in zip(s_mats, t_mats, strict=True)]
            )
        self._sums = self._sums.to(pairs.device) + pairs.detach() * len(batch.y)
        self._n += len(batch.y)
        fsp = p.weight * pairs.sum() if training_fsp else None
        if self.stage == "init":
            return {"fsp": fsp}
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        if fsp is not None:
            parts["fsp"] = fsp
        return parts

    def epoch_summary(self) -> dict:
        per = (self._sums / max(self._n, 1)).cpu()
        self._sums, self._n = per.new_zeros(per.shape), 0
        return {"fsp_loss": round(float(per.sum()), 6),
                "pair_loss": [round(float(v), 6) for v in per]}  # fmt: skip
