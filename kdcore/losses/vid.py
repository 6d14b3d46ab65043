"""Variational information distillation: a hint with its own uncertainty (Ahn et al. 2019).

Sungsoo Ahn, Shell Xu Hu, Andreas Damianou, Neil D. Lawrence, Zhenwen Dai, "Variational
Information Distillation for Knowledge Transfer", CVPR 2019, arXiv:1904.05835, §3. Reference
code: the authors' (ssahn0215/variational-information-distillation) as RepDistiller
``distiller_zoo/VID.py`` gives it, which this module follows.

Distillation as maximising the mutual information between the teacher's layer t and the
student's layer s, through its variational lower bound: the student's features must explain the
teacher's under a Gaussian q(t | s) whose mean a small regressor μ(s) predicts and whose
variance σ_c² is learned per channel (per unit of a flat layer). Where the student cannot
predict a channel, σ_c grows and that channel weighs less: unlike a FitNets hint, the student is
not pushed equally hard on what it cannot represent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, param
from .fitnets import _pool_to, paired_shapes
from .kd import ce_and_kd

# RepDistiller's defaults: σ² starts at 5 (init_pred_var), is softplus(α) + 1e-5, and the VID
# term is weighted 1 against cross-entropy (scripts/run_cifar_distill.sh: --distill vid -a 0 -b 1)
VID_INIT_VARIANCE = 5.0
VID_EPS = 1e-5
VID_WEIGHT = 1.0


def vid_variance(alpha: torch.Tensor, eps: float = VID_EPS) -> torch.Tensor:
    r"""The per-channel variance (Ahn et al. 2019, Eq. 5): :math:`\sigma_c^2 = \log(1 +
    e^{\alpha_c}) + \epsilon`, positive whatever α. alpha: (C,). Returns (C,)."""
    return F.softplus(alpha) + eps


def vid_alpha(variance: float, eps: float = VID_EPS) -> float:
    """The α at which :func:`vid_variance` is ``variance`` (the start RepDistiller gives it)."""
    return math.log(math.expm1(variance - eps))


def vid_loss(mean: torch.Tensor, target: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    r"""The negative log-likelihood of the teacher's features under q(t | s) (Ahn et al. 2019,
    Eq. 4), without its constant :math:`\tfrac12 \log 2\pi`:

    .. math:: -\log q(t \mid s) = \sum_{c} \sum_{h,w} \Big( \tfrac12 \log \sigma_c^2 +
        \frac{(t_{c,h,w} - \mu_{c,h,w}(s))^2}{2 \sigma_c^2} \Big)

    averaged over every element of the batch, as the reference code does (the paper sums; the
    mean only rescales the weight β). mean, target: (B, C) or (B, C, H, W), the regressor's
    prediction and the teacher's features; variance: (C,). Returns a scalar, negative when the
    student predicts its teacher more closely than σ = 1. The teacher side is not detached.
    """
    var = variance.view(1, -1, *([1] * (target.dim() - 2)))  # broadcast over B and H, W
    return (0.5 * ((mean - target) ** 2 / var + torch.log(var))).mean()


def _map(c_in: int, c_out: int, spatial: bool) -> nn.Module:
    """A bias-free linear map of channels: a 1x1 convolution on (B, C, H, W), else a Linear."""
    if spatial:
        return nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)
    return nn.Linear(c_in, c_out, bias=False)


def vid_regressor(c_s: int, c_t: int, spatial: bool) -> nn.Sequential:
    """μ(s): three bias-free channel maps with ReLUs between, C_s → C_t → C_t → C_t (the
    reference code's, whose middle width is the teacher's)."""
    return nn.Sequential(_map(c_s, c_t, spatial), nn.ReLU(), _map(c_t, c_t, spatial), nn.ReLU(),
                         _map(c_t, c_t, spatial))  # fmt: skip


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class VIDParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="Flat or spatial; a larger map is pooled to the other's size.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    weight: float = param(VID_WEIGHT, "β, weight of VID", 0.0, 1e4, 0.1, "RepDistiller: 1")
    init_variance: float = param(
        VID_INIT_VARIANCE, "σ² at the start", 0.01, 100.0, 0.5,
        help="Every channel's variance before training (the reference code's 5).",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class VID(Distiller):
    """CE (and optionally KD) plus β·VID. Owns the regressor μ and each channel's α (σ² =
    softplus(α) + ε), so they train with the student and are saved beside it. Each epoch records
    every channel's σ² (and where it started) and the mean squared error of μ on it over that
    epoch's batches: at the likelihood's optimum the two are equal."""

    def __init__(self, params: VIDParams, probe: Probe):
        super().__init__(params)
        s_shape, t_shape, self.size = paired_shapes(params, probe)  # (C,) or (C, H, W)
        self.regressor = vid_regressor(s_shape[0], t_shape[0], len(s_shape) == 3)
        self.alpha = nn.Parameter(torch.full((t_shape[0],), vid_alpha(params.init_variance)))
        self._sq = torch.zeros(t_shape[0])  # this epoch's summed squared error per channel
        self._n = 0  # and how many elements per channel went into it

    def teacher_targets(self, out):
        return {"logits": out.logits, "feat": _pool_to(out.features[self.params.teacher_layer],
                                                       self.size)}  # fmt: skip

    def forward(self, student, teacher, batch):
        p = self.params
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        mean = self.regressor(_pool_to(student.features[p.student_layer], self.size))
        target = teacher["feat"]
        parts["vid"] = p.weight * vid_loss(mean, target, vid_variance(self.alpha))
        with torch.no_grad():  # channel c's squared errors, summed over examples and positions
            dims = [0, *range(2, target.dim())]
            self._sq = self._sq.to(target.device) + ((mean - target) ** 2).sum(dim=dims)
            self._n += target.numel() // target.shape[1]
        return parts

    def variance(self) -> torch.Tensor:
        return vid_variance(self.alpha.detach())

    def epoch_summary(self) -> dict:
        mse = (self._sq / max(self._n, 1)).cpu()
        self._sq, self._n = torch.zeros_like(self._sq), 0
        return {
            "start_variance": self.params.init_variance,
            "variance": [float(f"{v:.4g}") for v in self.variance().cpu()],
            "squared_error": [float(f"{v:.4g}") for v in mse],
        }
