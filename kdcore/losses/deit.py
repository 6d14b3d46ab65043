r"""DeiT: distillation through a distillation token (Touvron et al. 2021).

Hugo Touvron, Matthieu Cord, Matthijs Douze, Francisco Massa, Alexandre Sablayrolles, Hervé Jégou,
"Training data-efficient image transformers & distillation through attention", ICML 2021,
arXiv:2012.12877, §4. Reference code: facebookresearch/deit, ``losses.py``
(``DistillationLoss``) and ``models.py`` (``DistilledVisionTransformer``).

With :math:`Z_s` the student's logits, :math:`Z_t` the teacher's, ψ the softmax, τ a temperature
and λ a weight, the paper's two objectives are

.. math::
    \mathcal L_{soft} = (1 - \lambda)\,\mathcal L_{CE}(\psi(Z_s), y)
        + \lambda \tau^2\, \mathrm{KL}\big(\psi(Z_s/\tau), \psi(Z_t/\tau)\big)
    \qquad \text{(Eq. 2)}

.. math::
    \mathcal L_{hard} = \tfrac12\,\mathcal L_{CE}(\psi(Z_s), y)
        + \tfrac12\,\mathcal L_{CE}(\psi(Z_s), y_t), \quad y_t = \arg\max_c Z_t(c)
    \qquad \text{(Eq. 3)}

With a distillation token the student has two heads: the label term goes to the class head's
logits and the teacher term to the distillation head's; nothing else couples them but the
attention between the two tokens. Without the token (the "usual distillation" of the paper's
ablation) both terms read the same logits, and Eq. 2 is Hinton et al.'s KD.

Where the reference code departs from the paper, and what is followed here:

* Both kinds are ``base_loss * (1 - alpha) + distillation_loss * alpha``: hard distillation
  has the weight λ too, and Eq. 3 is its default λ = 0.5 (``--distillation-alpha 0.5``; the
  default τ is ``--distillation-tau 1.0``). Followed: λ weights both kinds.
* The soft term is ``F.kl_div(log_softmax(Z_s/τ), log_softmax(Z_t/τ), reduction='sum') * τ² /
  Z_s.numel()``: the sum over the batch *and the classes* is divided by B·K, so the term is the
  per-example KL divided by K (1/1000 on ImageNet); a comment in the code calls it the "legacy
  PyTorch behaviour". Here the KL is averaged over the batch only, as the paper's equation and
  :func:`kdcore.losses.kd.kd_loss`; :func:`deit_soft_loss` with ``reference_scaling=True``
  gives the code's number.
* The code's KL is KL(teacher ‖ student) (``F.kl_div(input=student, target=teacher)``); Eq. 2
  lists the student's distribution first. The teacher-first direction, the usual one for KD,
  is the one here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, param

# facebookresearch/deit main.py defaults: --distillation-alpha 0.5, --distillation-tau 1.0.
DEIT_LAMBDA = 0.5
DEIT_TAU = 1.0


def deit_soft_loss(
    cls_logits: torch.Tensor,
    dist_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    lam: float,
    reference_scaling: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Soft distillation (Touvron et al. 2021, Eq. 2), as its two weighted terms.

    .. math::
        (1 - \lambda)\,\mathrm{CE}(Z_{cls}, y), \qquad
        \lambda \tau^2 \frac1B \sum_b \mathrm{KL}\big(\psi(Z_t/\tau) \,\|\, \psi(Z_{dist}/\tau)\big)

    cls_logits, dist_logits, teacher_logits: (B, K); labels: (B,) int64. Returns two scalars
    (batch means) whose sum is the loss. Pass the same tensor as ``cls_logits`` and
    ``dist_logits`` for a student with one head. ``reference_scaling`` divides the KL by K as
    the reference code does. The teacher side is not detached here.
    """
    label_term = (1.0 - lam) * F.cross_entropy(cls_logits, labels)
    log_q = F.log_softmax(dist_logits / tau, dim=-1)  # (B, K) student
    log_p = F.log_softmax(teacher_logits / tau, dim=-1)  # (B, K) teacher
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # KL(p ‖ q), mean over B
    if reference_scaling:
        kl = kl / dist_logits.shape[-1]
    return label_term, lam * tau * tau * kl


def deit_hard_loss(
    cls_logits: torch.Tensor,
    dist_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    lam: float = DEIT_LAMBDA,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hard-label distillation (Touvron et al. 2021, Eq. 3), as its two weighted terms.

    .. math::
        (1 - \lambda)\,\mathrm{CE}(Z_{cls}, y), \qquad
        \lambda\,\mathrm{CE}(Z_{dist}, y_t), \quad y_t = \arg\max_c Z_t(c)

    λ = ½ is Eq. 3. The teacher's argmax has no gradient: only its decision is used, whatever
    its confidence, and a temperature would change nothing. Shapes as :func:`deit_soft_loss`;
    two scalars (batch means).
    """
    y_t = teacher_logits.argmax(dim=-1)  # (B,) the teacher's hard decision
    label_term = (1.0 - lam) * F.cross_entropy(cls_logits, labels)
    return label_term, lam * F.cross_entropy(dist_logits, y_t)


@dataclass(frozen=True)
class DeiTKind:
    """One kind of DeiT distillation: its two loss terms, what it pulls the distillation head
    towards, and whether τ matters. The distiller and the page read it from :data:`KINDS`."""

    label: str  # as a control shows it
    target_name: str  # what the distillation head learns from
    uses_tau: bool
    # (cls, dist, teacher logits, labels, tau, lam) -> (label term, teacher term)
    terms: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    # (teacher logits (B, K), tau) -> the distillation head's target distribution (B, K)
    target: Callable[[torch.Tensor, float], torch.Tensor]


KINDS: dict[str, DeiTKind] = {
    "hard": DeiTKind(
        "hard (Eq. 3)", "teacher's argmax", False,
        lambda c, d, t, y, tau, lam: deit_hard_loss(c, d, t, y, lam),
        lambda t, tau: F.one_hot(t.argmax(-1), t.shape[-1]).float(),
    ),
    "soft": DeiTKind(
        "soft (Eq. 2)", "teacher at τ", True, deit_soft_loss,
        lambda t, tau: F.softmax(t / tau, dim=-1),
    ),
}  # fmt: skip


def head_logits(features: dict[str, torch.Tensor], logits: torch.Tensor):
    """(class-head logits, distillation-head logits) of a student: its ``cls_logits`` and
    ``dist_logits`` features when it has a distillation token, else its logits twice."""
    return features.get("cls_logits", logits), features.get("dist_logits", logits)


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class DeiTParams:
    kind: str = param("hard", "Kind of distillation", choices=tuple(KINDS),
                      help="hard: the teacher's argmax as a label (Eq. 3); soft: its softened "
                      "distribution (Eq. 2).")  # fmt: skip
    tau: float = param(DEIT_TAU, "τ, temperature (soft only)", 0.05, 100.0, 0.5,
                       help="The reference code's default is 1.")  # fmt: skip
    lam: float = param(DEIT_LAMBDA, "λ, the teacher's weight", 0.0, 1.0, 0.05,
                       help="(1 − λ) to the labels on the class head; λ = ½ is Eq. 3.")  # fmt: skip


class DeiT(Distiller):
    """The label term on the class head, the teacher term on the distillation head (a student
    without a distillation token takes both on its one head)."""

    def forward(self, student, teacher, batch):
        p = self.params
        cls, dist = head_logits(student.features, student.logits)
        ce, kd = KINDS[p.kind].terms(cls, dist, teacher["logits"], batch.y, p.tau, p.lam)
        return {"ce": ce, "teacher": kd}
