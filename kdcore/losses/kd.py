"""Response-based distillation: soft targets at a temperature (Hinton, Vinyals & Dean 2015).

All functions are pure functions of tensors. Logits are ``(B, K)``; losses are scalars averaged
over the batch. They stay finite for logits up to +-1e4 and temperatures from 0.05 to 1000
because every probability is handled as a log-softmax (max-subtracted) and KL is computed from
log-probabilities, never from ratios of probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param


def softmax_t(logits: torch.Tensor, T: float) -> torch.Tensor:
    r"""Softmax at temperature T (Hinton et al. 2015, arXiv:1503.02531, Eq. 1).

    .. math:: q_i = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)}

    T = 1 is the ordinary softmax; T < 1 sharpens towards one-hot; T -> inf tends to uniform.
    logits: (..., K) -> probabilities (..., K) along the last dimension.
    """
    return F.softmax(logits / T, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    r"""The distillation term :math:`T^2 \, \mathrm{KL}(p^T \,\|\, q^T)` (Hinton et al. 2015, §2).

    .. math::
        \mathcal{L}_{KD} = \frac{T^2}{B} \sum_b \sum_i p_i^T (\log p_i^T - \log q_i^T)

    with :math:`p^T = \mathrm{softmax}(v/T)` from the teacher logits v and
    :math:`q^T = \mathrm{softmax}(z/T)` from the student logits z. The gradient with respect to z is
    :math:`T (q^T - p^T) / B`: the factor :math:`T^2` undoes the :math:`1/T^2` shrink of the soft
    gradients so that the term keeps its weight when T changes (§2, last paragraph).

    student_logits, teacher_logits: (B, K). Returns a scalar, mean over the batch. The teacher side
    is not detached here: pass ``teacher_logits.detach()`` (or cached logits) when it is frozen.
    """
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, K)
    log_p = F.log_softmax(teacher_logits / T, dim=-1)  # (B, K)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    return kl * (T * T)


def ce_and_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    alpha: float,
    T: float,
) -> dict[str, torch.Tensor]:
    """The label and response parts that feature and relation methods add to their own term:
    ``{"ce": (1 − α)·CE}`` and, when α > 0, ``"kd": α·kd_loss(·, ·, T)`` (Hinton et al. 2015).
    student_logits, teacher_logits: (B, K); labels: (B,). Scalars, batch means."""
    parts = {"ce": (1.0 - alpha) * F.cross_entropy(student_logits, labels)}
    if alpha > 0:
        parts["kd"] = alpha * kd_loss(student_logits, teacher_logits, T)
    return parts


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> torch.Tensor:
    r"""Hinton et al. (2015, §2): the weighted mix of the hard and soft objectives.

    .. math::
        \mathcal{L} = (1 - \alpha) \mathrm{CE}(y, q^1) + \alpha T^2 \mathrm{KL}(p^T \| q^T)

    alpha = 0 is training on hard labels only, alpha = 1 pure distillation. The paper found a
    "considerably lower weight" on the hard term works best. labels: (B,) int64 class indices.
    Returns a scalar, mean over the batch.
    """
    hard = F.cross_entropy(student_logits, labels)
    return (1.0 - alpha) * hard + alpha * kd_loss(student_logits, teacher_logits, T)


def logit_matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    r"""Squared error between logits (Buciluǎ, Caruana & Niculescu-Mizil 2006; Ba & Caruana 2014).

    .. math:: \mathcal{L}_{LM} = \frac{1}{B} \sum_b \frac{1}{2K} \lVert z_b - v_b \rVert^2

    Scaled by 1/(2K), K the number of classes, so that it is exactly the high-temperature limit of
    :func:`kd_loss` for zero-mean logits (Hinton et al. 2015, §2.1):
    :math:`T^2\,\mathrm{KL} \to \lVert z - v \rVert^2 / (2K)` as :math:`T \to \infty`.
    Buciluǎ et al. used the plain squared error; the constant only rescales the learning rate.
    """
    k = student_logits.shape[-1]
    return (student_logits - teacher_logits).pow(2).sum(-1).mean() / (2 * k)


# ----------------------------------------------------------------------------- as methods
#
# The registry entries of kdcore.methods wrap the pure functions above. A Distiller sees the
# student's logits and features and the teacher's targets (here: its logits), and returns the
# named parts whose sum is minimised, so the lab can plot each part.


@dataclass(frozen=True)
class HardParams:
    """Cross-entropy on the labels alone has no parameters."""


@dataclass(frozen=True)
class KDParams:
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5, "Softens both distributions.")
    alpha: float = param(
        0.9, "α, the teacher's weight", 0.0, 1.0, 0.05, "(1 − α) goes to the hard labels."
    )


@dataclass(frozen=True)
class LogitsParams:
    alpha: float = param(
        0.9, "α, the teacher's weight", 0.0, 1.0, 0.05, "(1 − α) goes to the hard labels."
    )


class HardLabels(Distiller):
    def forward(self, student, teacher, batch):
        return {"ce": F.cross_entropy(student.logits, batch.y)}


class KD(Distiller):
    """(1 − α)·CE + α·T²·KL, kept as two named parts (the same mix as distillation_loss)."""

    def forward(self, student, teacher, batch):
        p = self.params
        s = student.logits  # (B, K)
        return {
            "ce": (1.0 - p.alpha) * F.cross_entropy(s, batch.y),
            "kd": p.alpha * kd_loss(s, teacher["logits"], p.T),
        }


class LogitMatching(Distiller):
    def forward(self, student, teacher, batch):
        a = self.params.alpha
        s = student.logits
        return {
            "ce": (1.0 - a) * F.cross_entropy(s, batch.y),
            "l2": a * logit_matching_loss(s, teacher["logits"]),
        }
