r"""Contrastive representation distillation (Tian, Krishnan & Isola 2020).

Yonglong Tian, Dilip Krishnan, Phillip Isola, "Contrastive Representation Distillation", ICLR 2020,
arXiv:1910.10699. Reference code: HobbitLong/RepDistiller, ``crd/criterion.py`` and
``crd/memory.py`` (copied into mdistiller ``distillers/CRD.py``).

Each example's student embedding should pick out the same example's teacher embedding among k
others drawn from the data set ("negatives"), and the other way round. Embeddings of the whole
training set are kept in two memory banks (N × D), one per network, refreshed by momentum, so k can
be far larger than the batch.

Which contrastive objective. The paper derives CRD from noise-contrastive estimation: a critic
:math:`h = e^{s/\tau} / (e^{s/\tau} + k/N)` trained as a binary classifier of positive against
negative pairs, and RepDistiller implements that (``ContrastLoss``, "Eq. (18)"), with
:math:`e^{s/\tau}` divided by a constant Z that ``ContrastMemory`` estimates from the *first* batch
(Z = mean · N) and then freezes in a buffer. This module implements the InfoNCE (softmax) form
instead, the alternative that the same authors' CMC code offers (HobbitLong/CMC, ``--softmax``,
``NCESoftmaxLoss``): a (k+1)-way cross-entropy whose class 0 is the positive,

.. math::
    \mathcal{L} = -\log \frac{e^{\langle s, m^{\mathcal T}_{i} \rangle / \tau}}
        {\sum_{j \in \{i\} \cup \mathrm{neg}} e^{\langle s, m^{\mathcal T}_{j} \rangle / \tau}}
    \;+\; (\text{the same with the roles of student and teacher swapped}).

Why: (1) it is a pure function of its inputs: no normaliser estimated once from whatever batch came
first; (2) it needs no data-set size and stays meaningful for the small k and N of a teaching app,
whereas the NCE form's noise ratio k/N and its estimated Z are tuned for k = 16384 on N = 50,000;
(3) it gives a readable bound, :math:`I(\mathcal T; \mathcal S) \ge \log(k+1) - \mathcal{L}_{side}`
(van den Oord et al. 2018), which the app can plot.

Everything else follows the authors' code: two symmetric terms (student anchor against the teacher
bank, teacher anchor against the student bank), summed; the positive is the *memory row* of the same
example (column 0 of the sampled indices), not the other network's current embedding; the banks
start uniform in ±√(3/D) and are updated after the loss by
``memory[idx] = normalise(m · memory[idx] + (1 - m) · new)``; negatives come, in the code's default
"exact" mode, from examples of other classes (``CIFAR100InstanceSample``), else uniformly. The code
draws other-class negatives without replacement where it can; here they are drawn with replacement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..method import Distiller, Probe, flat_feature_targets, param
from .kd import ce_and_kd

# The paper's settings (Tian et al. 2020, §4, implementation details), which are also the defaults
# of RepDistiller's train_student.py: --nce_k 16384 negatives, --nce_t 0.07, --nce_m 0.5,
# --feat_dim 128. The CRD term is weighted 0.8 against cross-entropy (RepDistiller README, -b 0.8;
# mdistiller CFG.CRD.LOSS.FEAT_WEIGHT). For the caller; the app uses a smaller k on MNIST.
CRD_NUM_NEGATIVES = 16384
CRD_TEMPERATURE = 0.07
CRD_MOMENTUM = 0.5
CRD_FEAT_DIM = 128
CRD_WEIGHT = 0.8


def crd_infonce_loss(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    memory_student: torch.Tensor,
    memory_teacher: torch.Tensor,
    idx: torch.Tensor,
    contrast_idx: torch.Tensor,
    T: float,
) -> torch.Tensor:
    r"""Symmetric InfoNCE between the embeddings and the memory banks (see the module docstring).

    student_emb, teacher_emb: (B, D), L2-normalised (the output of :class:`Embed`).
    memory_student, memory_teacher: (N, D), the banks (:class:`CRDMemory`); they carry no gradient.
    idx: (B,) int64, each example's row in the banks (its positive).
    contrast_idx: (B, k) int64, the negatives' rows (:meth:`CRDMemory.sample_negatives`).
    T: temperature τ. Returns a scalar: the sum of the two cross-entropies, each a batch mean.
    """
    rows = torch.cat([idx.unsqueeze(1), contrast_idx], dim=1)  # (B, 1+k): column 0 is positive
    from_teacher = memory_teacher[rows]  # (B, 1+k, D)
    from_student = memory_student[rows]  # (B, 1+k, D)
    logits_s = (from_teacher @ student_emb.unsqueeze(2)).squeeze(2) / T  # (B, 1+k)
    logits_t = (from_student @ teacher_emb.unsqueeze(2)).squeeze(2) / T  # (B, 1+k)
    positive = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)  # (B,)
    return F.cross_entropy(logits_s, positive) + F.cross_entropy(logits_t, positive)


class Embed(nn.Module):
    """The projection head of the reference code: flatten, Linear(dim_in, dim_out), L2-normalise.

    One for the student and one for the teacher; both are trained with the student.
    (B, ...) -> (B, dim_out), unit rows.
    """

    def __init__(self, dim_in: int, dim_out: int = CRD_FEAT_DIM):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x.reshape(x.shape[0], -1)), dim=1)  # (B, dim_out)


class CRDMemory(nn.Module):
    """The two memory banks of CRD, one row per training example (RepDistiller ``ContrastMemory``).

    n_data: N, the number of training examples; feat_dim: D. labels: optional (N,) class of each
    example; when given, negatives are drawn from other classes (the authors' "exact" mode).
    generator: seeds the random initial banks.
    """

    memory_student: torch.Tensor
    memory_teacher: torch.Tensor
    labels: torch.Tensor | None

    def __init__(
        self,
        n_data: int,
        feat_dim: int = CRD_FEAT_DIM,
        momentum: float = CRD_MOMENTUM,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_data < 2:
            raise ValueError("CRD needs at least 2 examples")
        self.momentum = momentum
        # Uniform in [-a, a] with a = 1/sqrt(D/3): each entry has variance 1/D, each row norm ~1.
        a = 1.0 / math.sqrt(feat_dim / 3)
        for name in ("memory_student", "memory_teacher"):
            bank = torch.rand(n_data, feat_dim, generator=generator) * (2 * a) - a  # (N, D)
            self.register_buffer(name, bank)
        self.register_buffer("labels", None if labels is None else labels.long().clone())

    @property
    def n_data(self) -> int:
        return self.memory_student.shape[0]

    def sample_negatives(
        self, idx: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """k negative rows for each example: (B,) -> (B, k) int64, with replacement.

        Never the example itself; with ``labels``, never an example of the same class (drawn by
        rejection: with C balanced classes about 1/C of the draws are redrawn each round).
        """
        device = self.memory_student.device
        gen_device = generator.device if generator is not None else device
        idx = idx.to(device)
        b, n = idx.shape[0], self.n_data
        if self.labels is None:
            # Uniform over the N - 1 other rows: draw from [0, N-1) and step over the positive.
            r = torch.randint(0, n - 1, (b, k), generator=generator, device=gen_device).to(device)
            return r + (r >= idx.unsqueeze(1)).long()  # (B, k)
        neg = torch.randint(0, n, (b, k), generator=generator, device=gen_device).to(device)
        own = self.labels[idx].unsqueeze(1)  # (B, 1)
        bad = self.labels[neg] == own  # (B, k)
        for _ in range(1000):
            count = int(bad.sum())
            if count == 0:
                return neg
            redraw = torch.randint(0, n, (count,), generator=generator, device=gen_device)
            neg[bad] = redraw.to(device)
            bad = self.labels[neg] == own
        raise RuntimeError("could not draw negatives of another class; is there only one class?")

    @torch.no_grad()
    def update(
        self, idx: torch.Tensor, student_emb: torch.Tensor, teacher_emb: torch.Tensor
    ) -> None:
        """Momentum update of the rows ``idx`` after a step, then re-normalise them to unit length.

        idx: (B,) int64; student_emb, teacher_emb: (B, D). Other rows are left as they are.
        """
        m = self.momentum
        for bank, new in ((self.memory_student, student_emb), (self.memory_teacher, teacher_emb)):
            mixed = bank[idx] * m + new.detach().to(bank.dtype) * (1 - m)  # (B, D)
            bank[idx] = F.normalize(mixed, dim=1)

    def forward(
        self,
        student_emb: torch.Tensor,
        teacher_emb: torch.Tensor,
        idx: torch.Tensor,
        contrast_idx: torch.Tensor,
        T: float = CRD_TEMPERATURE,
    ) -> torch.Tensor:
        """:func:`crd_infonce_loss` against this module's banks (does not update them)."""
        return crd_infonce_loss(
            student_emb,
            teacher_emb,
            self.memory_student,
            self.memory_teacher,
            idx,
            contrast_idx,
            T,
        )


def crd_infonce_loss_shared(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    memory_student: torch.Tensor,
    memory_teacher: torch.Tensor,
    idx: torch.Tensor,
    negatives: torch.Tensor,
    T: float,
) -> torch.Tensor:
    r""":func:`crd_infonce_loss` with one set of k negatives shared by the whole batch.

    The authors draw k negatives per example, which gathers B·(k+1) rows of each bank per step
    (for B = 128, k = 4,096, D = 128: 268 MB per bank, about 2.6 s a step on one CPU core). Sharing
    them, as MoCo does with its queue (He et al. 2020, arXiv:1911.05722), gathers k rows and
    turns the products into one (B, D) x (D, k) matrix product: the same objective in expectation
    over the draws, at about 1/B of the memory traffic. A shared negative that is some anchor's
    own row is masked out of that anchor's softmax (it would be a second copy of its positive).

    idx: (B,) rows of the positives; negatives: (k,) rows. Other arguments and the result as
    :func:`crd_infonce_loss`; with ``contrast_idx = negatives.expand(B, k)`` and no collisions
    the two are equal.
    """
    own = negatives.unsqueeze(0) == idx.unsqueeze(1)  # (B, k): a negative that is the positive
    total = torch.zeros((), device=student_emb.device)
    for anchor, bank in ((student_emb, memory_teacher), (teacher_emb, memory_student)):
        pos = (anchor * bank[idx]).sum(1, keepdim=True) / T  # (B, 1)
        neg = (anchor @ bank[negatives].t()) / T  # (B, k)
        logits = torch.cat([pos, neg.masked_fill(own, float("-inf"))], dim=1)  # (B, 1+k)
        target = torch.zeros(idx.shape[0], dtype=torch.long, device=idx.device)
        total = total + F.cross_entropy(logits, target)
    return total


# ----------------------------------------------------------------------------- as a method

# MNIST's 60,000 training images against CIFAR-100's 50,000, but 10 classes instead of 100: with
# uniform negatives a tenth of them are the anchor's own class whatever k is, and each step costs
# O(B·k·D) in gathers and products. 4,096 keeps a step of a batch of 128 at about the cost of the
# student's own forward and backward pass on the CPU; the paper's 16,384 quadruples it for a small
# gain in the bound log(k+1) (ln 16,385 ≈ 9.7 against ln 4,097 ≈ 8.3 nats).
CRD_MNIST_NEGATIVES = 4096


@dataclass(frozen=True)
class CRDParams:
    student_layer: str = param("embedding", "Student layer", choices="student features")
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    k: int = param(
        CRD_MNIST_NEGATIVES, "k, negatives per example", 1, 65536,
        help="The paper's 16,384 on CIFAR-100; 4,096 here (cost O(B·k·D) per step).",
    )  # fmt: skip
    shared_negatives: bool = param(
        True, "Share the negatives across the batch",
        help="One draw of k rows for the whole batch (as MoCo); off: k per example as the "
        "authors, about B times the memory traffic (2.6 s a step at k = 4,096 on one CPU core).",
    )  # fmt: skip
    # τ; named as RepDistiller's --nce_t so that T stays KD's temperature in every method
    nce_t: float = param(CRD_TEMPERATURE, "τ, contrastive temperature", 0.01, 10.0, 0.01)
    weight: float = param(CRD_WEIGHT, "β, weight of CRD", 0.0, 100.0, 0.1, "RepDistiller: 0.8")
    feat_dim: int = param(CRD_FEAT_DIM, "Embedding dimension", 2, 4096)
    momentum: float = param(CRD_MOMENTUM, "Memory momentum", 0.0, 1.0, 0.05)
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class CRD(Distiller):
    """CE (and optionally KD) plus β·(symmetric InfoNCE against the memory banks).

    Owns the two :class:`Embed` heads (trained with the student) and the :class:`CRDMemory`
    (one row per training example, ``probe.num_train``). Negatives are drawn uniformly: the probe
    does not carry the training labels, so the authors' other-class ("exact") sampling is off;
    by default they are shared by the batch (:func:`crd_infonce_loss_shared`).
    The teacher's target is its raw feature; its head is applied here, so it trains.
    """

    def __init__(self, params: CRDParams, probe: Probe):
        super().__init__(params)
        s = probe.student_shape(params.student_layer)
        t = probe.teacher_shape(params.teacher_layer)
        self.embed_s = Embed(math.prod(s), params.feat_dim)
        self.embed_t = Embed(math.prod(t), params.feat_dim)
        gen = torch.Generator().manual_seed(0)  # a fixed bank, without touching the global RNG
        self.memory = CRDMemory(probe.num_train, params.feat_dim, params.momentum, generator=gen)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def teacher_targets(self, out):
        return flat_feature_targets(out, self.params.teacher_layer)

    def forward(self, student, teacher, batch):
        p = self.params
        idx = batch.index.to(self.memory.memory_student.device)  # (B,)
        es = self.embed_s(student.features[p.student_layer])  # (B, feat_dim), unit rows
        et = self.embed_t(teacher["feat"])  # (B, feat_dim)
        mem = self.memory
        if p.shared_negatives:
            negatives = torch.randint(0, mem.n_data, (p.k,), device=idx.device)  # (k,)
            crd = crd_infonce_loss_shared(
                es, et, mem.memory_student, mem.memory_teacher, idx, negatives, p.nce_t
            )
        else:
            negatives = mem.sample_negatives(idx, p.k)  # (B, k)
            crd = mem(es, et, idx, negatives, p.nce_t)
        self._last = (idx, es.detach(), et.detach())
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["crd"] = p.weight * crd
        return parts

    def after_step(self, batch):
        """The momentum update of both banks at the batch's rows (Tian et al. 2020, §3.4)."""
        if self._last is not None:
            self.memory.update(*self._last)
            self._last = None
