"""The soft-maximum ("LogSum") feature distance of Miles & Mikolajczyk (2024).

Roy Miles and Krystian Mikolajczyk, "Understanding the Role of the Projector in Knowledge
Distillation", AAAI 2024, arXiv:2303.11098; code: github.com/roymiles/Simple-Recipe-Distillation.
Their recipe is: a linear projector on the student's pooled features, BatchNorm without affine
parameters on *both* the projected student and the teacher features, then this distance. The
projector and the normalisers are modules (:mod:`kdcore.projectors`); this file is the distance.
"""

from __future__ import annotations

import torch

# Authors' code (imagenet/torchdistill/losses/single.py, OurDistillationLoss.forward_loss, and
# deit/models.py, DistillationLoss.forward): c_diff.pow(4.0) in both.
LOGSUM_ALPHA = 4.0
# deit/models.py adds eps = 1e-5 inside the log; it keeps the loss finite when the features agree.
LOGSUM_EPS = 1e-5


def logsum_loss(
    projected_student: torch.Tensor,
    teacher_feat: torch.Tensor,
    alpha: float = LOGSUM_ALPHA,
    eps: float = LOGSUM_EPS,
) -> torch.Tensor:
    r"""Log of the summed alpha-th powers of the feature differences, a soft maximum.

    Miles & Mikolajczyk (2024, arXiv:2303.11098): the "soft maximum function" their abstract offers
    against a large teacher-student capacity gap, as their ImageNet code computes it
    (``OurDistillationLoss.forward_loss``):

    .. math::
        \mathcal{L}_{LogSum} = \log\Big(\sum_{b,i} \lvert z^s_{b,i} - z^t_{b,i} \rvert^{\alpha}
        + \epsilon\Big)

    Why a soft maximum: :math:`\tfrac{1}{\alpha}\mathcal{L} \to \log \max_{b,i} |z^s - z^t|` as
    alpha grows, and :math:`\alpha \log m \le \mathcal{L} \le \alpha \log m + \log N` with m the
    largest difference and N the number of elements. A larger alpha puts the gradient on the
    worst-matched entries rather than spreading it over the many nearly matched ones.
    Scaling both inputs by c adds :math:`\alpha \log c` (for eps = 0), so the gradient does not
    grow with the feature scale the way the squared error's does.

    Reduction: a *sum* over the batch and features inside the log, as in the authors' code (no
    batch mean). Averaging instead would subtract the constant log N and leave the gradient
    unchanged. Departures from the code: ``eps`` (their DeiT variant adds 1e-5, the ImageNet one
    adds nothing) is kept so that equal features give a finite value. Their DeiT variant applies
    the same function to a different quantity, the per-dimension cross-correlation of the
    batch-normalised features minus one; that variant is not this function.

    projected_student, teacher_feat: (B, ...) of equal shape, usually (B, D) after BatchNorm.
    alpha: the power (> 0); 4 in the authors' code. Returns a scalar (it may be negative).
    """
    if projected_student.shape != teacher_feat.shape:
        raise ValueError(
            f"logsum_loss: projected student {tuple(projected_student.shape)} and teacher "
            f"{tuple(teacher_feat.shape)} shapes differ"
        )
    diff = (projected_student - teacher_feat).abs()  # (B, ...)
    return torch.log(diff.pow(alpha).sum() + eps)
