"""Overhaul of feature distillation: the teacher's layer before its ReLU, its negative values
raised to a margin, and a distance that skips what the student need not match (Heo et al. 2019).

Byeongho Heo, Jeesoo Kim, Sangdoo Yun, Hyojin Park, Nojun Kwak, Jin Young Choi, "A
Comprehensive Overhaul of Feature Distillation", ICCV 2019, arXiv:1904.01866, §3. Reference
code: the authors' (clovaai/overhaul-distillation, ``CIFAR-100/distiller.py``).

The paper reviews four choices every feature method makes: where the feature is read, how the
teacher's is transformed, how the student's is, and the distance. Its answers: read both layers
before the ReLU, where the negative values still say how far below zero a unit is; transform the
teacher's by a *margin ReLU*, max(x, m), which keeps the positive values the next layer sees and
replaces the negative ones, which the ReLU discards anyway, by one per-channel value m, the
expected negative response; map the student's to the teacher's channels by a connector (a 1 × 1
convolution and BatchNorm); and measure a *partial L2* that costs nothing where the student's
response is already below a non-positive target, since the ReLU would silence both alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..method import Distiller, Probe, param
from .ab import ab_connector
from .fitnets import _pool_to, paired_shapes
from .kd import ce_and_kd

# The authors' CIFAR code: the loss summed over the map, divided by the batch size, weighted
# 1/1000 beside cross-entropy, with no KD term
OFD_WEIGHT = 1e-3
# get_margin_from_BN: where a channel is almost never negative (P(x < 0) ≤ 0.001) the
# conditional expectation is ill-conditioned, and the code takes −3σ instead
RARE = 1e-3
MARGINS = ("gaussian", "responses", "zero", "none")


def gaussian_margin(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    r"""The expected negative response of a Gaussian channel, per channel:

    .. math:: m = \mathbb{E}[x \mid x < 0] = \mu - \sigma\,
        \frac{\phi(\mu/\sigma)}{\Phi(-\mu/\sigma)}, \qquad x \sim \mathcal{N}(\mu, \sigma^2)

    (φ, Φ the standard normal density and distribution). The paper reads μ and σ from the
    BatchNorm before the ReLU (its shift and scale); −3σ where Φ(−μ/σ) ≤ 0.001, as the
    authors' code. mean, std: (C,), std > 0."""
    z = mean / std
    below = torch.special.ndtr(-z)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    m = mean - std * density / below.clamp_min(1e-30)
    return torch.where(below > RARE, m, -3 * std)


def margin_relu(t: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    r"""The teacher transform, :math:`\sigma_m(x) = \max(x, m)`: positive responses kept, every
    negative one raised to (at least) its channel's margin m ≤ 0. t: (B, C, ...); margin: (C,)."""
    return torch.maximum(t, margin.view(1, -1, *[1] * (t.dim() - 2)).to(t.dtype))


def partial_l2(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""The partial L2 distance, summed over the layer's numbers, averaged over the batch:

    .. math:: d_p(T, S) = \sum_i \begin{cases} 0 & S_i \le T_i \le 0 \\
        (T_i - S_i)^2 & \text{otherwise} \end{cases}

    A student response below a non-positive target costs nothing: after the ReLU both are 0.
    s, t: (B, ...), the connected student's layer and the transformed teacher's."""
    keep = (s > t) | (t > 0)
    return ((s - t) ** 2 * keep).flatten(1).sum(1).mean()


def ofd_loss(s: torch.Tensor, t: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    r"""OFD's distillation loss (Heo et al. 2019, Eq. 6, one layer):

    .. math:: \mathcal{L}_{distill} = d_p\big(\sigma_m(F_t),\ r(F_s)\big)

    s: the connected student's layer r(F_s), (B, C, ...); t: the teacher's before its ReLU;
    margin: (C,), each channel's m."""
    return partial_l2(s, margin_relu(t, margin))


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class OFDParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="The paper's: before its ReLU (hidden<i>_pre, conv<i>_pre, stage<i>_pre).",
    )  # fmt: skip
    teacher_layer: str = param(
        "embedding", "Teacher layer", choices="teacher features",
        help="The paper's: before its ReLU; after it, no value is below 0 and the margin is moot.",
    )  # fmt: skip
    margin: str = param(
        "gaussian", "Margin m", choices=MARGINS,
        help="gaussian: E[x | x < 0] of a normal with each teacher channel's mean and spread "
        "(the paper, from its BatchNorm); responses: the mean of its negative responses; "
        "zero: the teacher's own ReLU; none: its raw responses. Measured over the batches seen.",
    )  # fmt: skip
    partial: bool = param(True, "Partial L2", help="Off: every number costs its squared error.")
    weight: float = param(OFD_WEIGHT, "β, weight of OFD", 0.0, 1e4, 1e-3, "Authors' code: 0.001")
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class OFD(Distiller):
    """OFD through a connector, beside CE (and KD at α > 0). Owns the connector, so it trains
    with the student and is saved beside it. Each teacher channel's margin comes from its
    responses over every batch seen so far (the teacher is frozen: after one epoch, the whole
    training set's), where the paper reads it from the trained teacher's BatchNorm; both
    margins are kept, and each epoch records them per channel, with the share of the layer's
    numbers below the margin (raised to it), below zero, and skipped by the partial L2."""

    def __init__(self, params: OFDParams, probe: Probe):
        super().__init__(params)
        if params.margin not in MARGINS:
            raise ValueError(f"margin must be one of {', '.join(MARGINS)}, not {params.margin!r}")
        s_shape, t_shape, self.size = paired_shapes(params, probe)
        c = t_shape[0]
        self.connector = ab_connector(s_shape[0], c, len(s_shape) == 3)
        # running sums per teacher channel: count, Σx, Σx², Σ of negatives and their count
        self.register_buffer("stats", torch.zeros(5, c, dtype=torch.float64))
        # this epoch's counts: raised to the margin, below zero, skipped; and of numbers seen
        self.register_buffer("shares", torch.zeros(3, dtype=torch.float64), persistent=False)
        self._seen = 0

    def teacher_targets(self, out):
        feat = _pool_to(out.features[self.params.teacher_layer], self.size)
        return {"logits": out.logits, "feat": feat}

    def margins(self) -> dict[str, torch.Tensor]:
        """Both margins per channel from the responses seen so far, (C,) each: the Gaussian's
        conditional expectation and the mean of the negative responses (0 where none yet)."""
        n, total, sq, neg, n_neg = self.stats
        n = n.clamp_min(1)
        mean = total / n
        std = (sq / n - mean**2).clamp_min(0).sqrt().clamp_min(1e-6)
        responses = torch.where(n_neg > 0, neg / n_neg.clamp_min(1), torch.zeros_like(neg))
        seen = self.stats[0] > 0
        gaussian = torch.where(seen, gaussian_margin(mean, std), torch.zeros_like(mean))
        return {"gaussian": gaussian, "responses": responses}

    def margin(self) -> torch.Tensor:
        """The margin in use per channel: one of :meth:`margins`, 0 (the teacher's ReLU) or −∞
        (no transform: the raw responses, as a hint at this position would read them)."""
        fixed = {"zero": 0.0, "none": -math.inf}.get(self.params.margin)
        if fixed is None:
            return self.margins()[self.params.margin]
        return torch.full_like(self.stats[0], fixed)

    @torch.no_grad()
    def _observe(self, t: torch.Tensor) -> None:
        x = t.transpose(0, 1).reshape(t.shape[1], -1).double()  # (C, B·H·W)
        neg = x.clamp(max=0)
        self.stats += torch.stack(
            [torch.full_like(x[:, 0], x.shape[1]), x.sum(1), (x * x).sum(1), neg.sum(1),
             (x < 0).sum(1).double()]
        )  # fmt: skip

    def forward(self, student, teacher, batch):
        p = self.params
        t = teacher["feat"]
        self._observe(t)
        m = self.margin()
        target = margin_relu(t, m)
        s = self.connector(_pool_to(student.features[p.student_layer], self.size))
        ofd = partial_l2(s, target) if p.partial else (s - target).pow(2).flatten(1).sum(1).mean()
        with torch.no_grad():
            self.shares += torch.stack([
                (t < m.view(1, -1, *[1] * (t.dim() - 2))).sum(),
                (t < 0).sum(), ((s <= target) & (target <= 0)).sum(),
            ]).double()  # fmt: skip
        self._seen += t.numel()  # a shape, known on the host: no tensor made each step
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["ofd"] = p.weight * ofd
        return parts

    def epoch_summary(self) -> dict:
        raised, negative, skipped = (self.shares / max(self._seen, 1)).tolist()
        self.shares.zero_()
        self._seen = 0
        margins = self.margins()
        out = {
            "margin_gaussian": [round(float(v), 4) for v in margins["gaussian"].cpu()],
            "margin_responses": [round(float(v), 4) for v in margins["responses"].cpu()],
            "raised": round(raised, 5),
            "negative": round(negative, 5),
            "skipped": round(skipped, 5),
        }
        used = self.margin().cpu()
        if torch.isfinite(used).all():  # JSON has no −∞: no transform keeps none
            out["margin"] = [round(float(v), 4) for v in used]
        return out
