r"""Curriculum temperature: KD whose temperature is learned against the student (Li et al. 2023).

Zheng Li, Xiang Li, Lingfeng Yang, Borui Zhao, Renjie Song, Lei Luo, Jun Li and Jian Yang,
"Curriculum Temperature for Knowledge Distillation", AAAI 2023, arXiv:2211.16231. Official code:
zhengli97/CTKD (``models/temp_global.py``, ``helper/loops.py``, ``train_student.py``,
``scripts/run_cifar_distill.sh``).

KD fixes the temperature by hand. CTKD makes it a parameter and lets it play against the student:
the student minimises the distillation loss, the temperature *maximises* it, through a gradient
reversal layer (Ganin & Lempitsky 2015) between the temperature and the loss,

.. math::
    \min_{\theta_s} \max_{\theta_T} \; \mathcal{L}(\theta_s, \theta_T), \qquad
    \mathcal{L} = (1-\alpha)\,\mathrm{CE} + \alpha\,T^2\,\mathrm{KL}(p^T \,\|\, q^T), \qquad
    T = T_{start} + T_{range}\,\sigma(\theta_T),

so the temperature goes wherever the student's task is hardest. How hard it pushes follows an
easy-to-hard curriculum: the reversed gradient is scaled by λ, which rises from 0 to 1 along a
half cosine over the first E epochs (the paper's cosine curriculum; at whole epochs the
official code's ``CosineDecay``, which the script runs from 0 down to −1 and the code's reversal
layer multiplies the gradient by, unnegated: the same reversal by λ from 0 to 1),

.. math::
    \lambda_n = \lambda_{min} + \tfrac12(\lambda_{max}-\lambda_{min})
        \big(1 + \cos\big((1 + \min(n, E)/E)\,\pi\big)\big).

As the official code's global temperature and its CIFAR-100 script: one scalar θ_T, starting at
1 (so T starts at 1 + 20·σ(1) ≈ 15.6), T = 1 + 20·σ(θ_T) in [1, 21], E = 10 epochs (of 240),
λ from 0 to 1, 0.1·CE + 0.9·T²·KL (``-r 0.1 -a 0.9``); θ_T is trained by the student's optimiser
(the code adds the temperature module to the SGD's parameters). The code holds λ_n through
epoch n (counting from 1); here λ moves at every step along the same curve, n the epochs done,
fractions included, reaching λ_n as epoch n ends, so that a run of a few epochs can have a
curriculum shorter than one epoch. The paper's instance-wise variant (a small net predicting
one T per example) is not built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, param
from .kd import kd_loss

THETA_START = 1.0  # the official Global_T's initial parameter, torch.ones(1)
T_INIT = 1.0 + 20.0 / (1.0 + math.exp(-THETA_START))  # its temperature, 15.62
TRACE_POINTS = 40  # temperatures kept per epoch for the trajectory, evenly spaced over its steps


class _Reverse(torch.autograd.Function):
    """The identity forwards; backwards, the incoming gradient times −λ."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): ``x`` unchanged, its gradient times −λ, so
    whatever produced ``x`` climbs the loss that the rest of the graph descends."""
    return _Reverse.apply(x, lam)


def curriculum(epochs_done: float, ramp: float, lam_min: float = 0.0, lam_max: float = 1.0):
    r"""λ after ``epochs_done`` epochs (fractions allowed) of a half-cosine ramp of ``ramp``
    epochs from ``lam_min`` to ``lam_max`` (Li et al. 2023); ``lam_max`` throughout when
    ``ramp`` is 0."""
    if ramp <= 0:
        return lam_max
    n = min(max(epochs_done, 0.0), ramp)
    return lam_min + 0.5 * (lam_max - lam_min) * (1.0 + math.cos((1.0 + n / ramp) * math.pi))


def learned_temperature(theta: torch.Tensor, t_start: float, t_range: float) -> torch.Tensor:
    r""":math:`T = T_{start} + T_{range}\,\sigma(\theta)`: any real θ gives a temperature in
    (T_start, T_start + T_range), the official code's ``t_start + t_end * sigmoid(temp)``."""
    return t_start + t_range * torch.sigmoid(theta)


def ctkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    theta: torch.Tensor,
    lam: float,
    t_start: float = 1.0,
    t_range: float = 20.0,
) -> torch.Tensor:
    r""":math:`T^2\,\mathrm{KL}(p^T \| q^T)` at the learned temperature
    :math:`T = T_{start} + T_{range}\,\sigma(\theta)`, with θ's gradient reversed and scaled by
    λ: its value is :func:`kdcore.losses.kd.kd_loss` at that T, the student's gradient is KD's,
    and θ's is −λ times the loss's, so a descent step on θ raises the loss (Li et al. 2023).

    student_logits, teacher_logits: (B, K); theta: a one-element tensor. Returns a scalar."""
    T = learned_temperature(reverse_gradient(theta, lam), t_start, t_range).reshape(())
    return kd_loss(student_logits, teacher_logits, T)


@dataclass(frozen=True)
class CTKDParams:
    # the official CIFAR-100 script: --t_start 1 --t_end 20 --decay_loops 10, λ 0 -> 1, -a 0.9
    t_start: float = param(1.0, "Lowest temperature", 0.05, 100.0, 0.5, "T = lowest + range · σ(θ)")
    t_range: float = param(
        20.0, "Temperature range", 0.0, 100.0, 1.0, "How far above the lowest the learned T may go"
    )
    ramp_epochs: float = param(
        10.0, "Curriculum epochs E", 0.0, 1000.0, 0.5,
        "λ rises from 0 to its most over these epochs (0: at once)",
    )  # fmt: skip
    lam_max: float = param(
        1.0, "Most λ", 0.0, 10.0, 0.1, "How hard the temperature pushes against the student"
    )
    t_init: float = param(
        T_INIT, "Starting temperature", 0.05, 200.0, 0.5,
        "Inside the range; the official start is 1 + 20·σ(1)",
    )  # fmt: skip
    alpha: float = param(
        0.9, "α, the teacher's weight", 0.0, 1.0, 0.05, "(1 − α) goes to the hard labels."
    )


def theta_for(t: float, t_start: float, t_range: float) -> float:
    """The θ at which :func:`learned_temperature` gives ``t``. Raises ValueError (one line) when
    ``t`` is not strictly inside (t_start, t_start + t_range), which σ never reaches."""
    if t_range <= 0 or not t_start < t < t_start + t_range:
        raise ValueError(
            f"the starting temperature must lie strictly between the lowest ({t_start:g}) and "
            f"the lowest plus the range ({t_start + t_range:g}), not {t:g}"
        )
    u = (t - t_start) / t_range
    return math.log(u / (1.0 - u))


class CTKD(Distiller):
    """(1 − α)·CE + α·T²·KL at a temperature it learns adversarially (Li et al. 2023): owns θ_T,
    counts the examples it has seen to place λ on its curriculum, and records each epoch's
    temperatures (without reading them back to the host during the epoch)."""

    def __init__(self, params: CTKDParams, num_train: int):
        super().__init__(params)
        self.theta = nn.Parameter(
            torch.full((1,), theta_for(params.t_init, params.t_start, params.t_range))
        )
        self.num_train = max(int(num_train), 1)
        self.seen = 0  # training examples seen so far, over the whole run
        self._trace: list[torch.Tensor] = []

    @property
    def epochs_done(self) -> float:
        return self.seen / self.num_train

    @property
    def lam(self) -> float:
        p = self.params
        return curriculum(self.epochs_done, p.ramp_epochs, 0.0, p.lam_max)

    def temperature(self) -> torch.Tensor:
        """The temperature now, (1,), without a gradient."""
        p = self.params
        return learned_temperature(self.theta.detach(), p.t_start, p.t_range)

    def forward(self, student, teacher, batch):
        p = self.params
        s = student.logits
        parts = {"ce": (1.0 - p.alpha) * F.cross_entropy(s, batch.y)}
        if self.training:
            self._trace.append(self.temperature())
        if p.alpha > 0:
            kd = ctkd_loss(s, teacher["logits"], self.theta, self.lam, p.t_start, p.t_range)
            parts["kd"] = p.alpha * kd
        return parts

    def after_step(self, batch) -> None:
        self.seen += int(batch.y.shape[0])

    def epoch_summary(self) -> dict[str, Any]:
        """The temperature at the epoch's end, its mean, lowest and highest over the epoch's
        steps and up to 40 of them evenly spaced (the trajectory), and λ at the epoch's end."""
        now = float(self.temperature())
        out: dict[str, Any] = {"temperature": now, "lambda": self.lam}
        if self._trace:
            trace = torch.cat(self._trace).float().cpu()
            keep = torch.linspace(0, len(trace) - 1, min(TRACE_POINTS, len(trace))).round()
            out.update(
                temperature_mean=float(trace.mean()),
                temperature_min=float(trace.min()),
                temperature_max=float(trace.max()),
                temperature_trace=[round(float(t), 4) for t in trace[keep.long()]],
            )
        self._trace = []
        return out
