"""Feature matching through a regressor: FitNets hints (Romero et al. 2015).

The projector (the paper's regressor r) is state and lives in :mod:`kdcore.projectors`; the pure
distance is :func:`fitnet_loss`, and :class:`FitNets` is the registered method that owns the
projector and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import Distiller, Probe, Stage, param
from ..projectors import (
    NORMALISERS,
    PROJECTORS,
    build_normaliser,
    build_projector,
    collapsed,
    singular_values,
)
from .kd import ce_and_kd
from .logsum import logsum_loss


def fitnet_loss(projected_student: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    r"""Hint loss: mean squared error between projected student and teacher features.

    Romero et al. (2015), "FitNets: Hints for Thin Deep Nets", arXiv:1412.6550, Eq. (3):

    .. math::
        \mathcal{L}_{HT} = \tfrac{1}{2} \lVert u_h(x) - r(v_g(x)) \rVert^2

    with :math:`u_h` the teacher's hint layer, :math:`v_g` the student's guided layer and r the
    regressor (here the caller's projector). This function returns the *mean* over all N elements
    of the batch, :math:`\frac{1}{N} \sum (r(v_g) - u_h)^2`, i.e. the paper's per-example
    :math:`\tfrac12\lVert\cdot\rVert^2` times :math:`2/\text{(elements per example)}`, averaged over
    the batch. The constant only rescales the learning rate or the loss weight.

    projected_student, teacher_feat: (B, ...) of equal shape, e.g. (B, C, H, W) or (B, D).
    Returns a scalar. The teacher side is not detached here.
    """
    if projected_student.shape != teacher_feat.shape:
        raise ValueError(
            f"fitnet_loss: projected student {tuple(projected_student.shape)} and teacher "
            f"{tuple(teacher_feat.shape)} shapes differ"
        )
    return F.mse_loss(projected_student, teacher_feat)


# ----------------------------------------------------------------------------- as a method


DISTANCES = ("mse", "logsum")  # fitnet_loss, or Miles & Mikolajczyk 2024's logsum_loss
TRACE_EVERY = 25  # steps between two recorded spectra (about 19 per epoch of MNIST at B=128)


@dataclass(frozen=True)
class FitNetsParams:
    student_layer: str = param(
        "embedding", "Student layer (guided)", choices="student features",
        help="The student's feature that the projector maps onto the teacher's hint.",
    )  # fmt: skip
    teacher_layer: str = param(
        "embedding", "Teacher layer (hint)", choices="teacher features",
        help="The teacher's feature the student must reproduce.",
    )  # fmt: skip
    projector: str = param("linear", "Projector", choices=PROJECTORS)
    normalise: str = param(
        "none", "Feature normalisation", choices=NORMALISERS,
        help="batchnorm/standardise: both sides after the projector (Miles & Mikolajczyk's "
        "code); whiten: the student's features before it (C_s = I).",
    )  # fmt: skip
    distance: str = param("mse", "Distance", choices=DISTANCES, help="logsum: Miles 2024")
    beta: float = param(1.0, "β, weight of the hint", 0.0, 1e5, 0.5)
    hint_epochs: int = param(
        0, "Hint-stage epochs", 0, 1000,
        help="FitNets' two stages: this many epochs of the hint alone (lower layers and "
        "projector), then KD for the rest. 0: one stage, CE + KD + β·hint together.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


def _pool_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Average-pool a (B, C, H, W) map down to ``size`` (H', W'); other shapes pass."""
    if x.dim() == 4 and tuple(x.shape[2:]) != tuple(size):
        return F.adaptive_avg_pool2d(x, size)
    return x


def paired_shapes(params, probe: Probe) -> tuple[tuple[int, ...], tuple[int, ...], tuple]:
    """The student's and the teacher's layer shapes ((C,) or (C, H, W), from ``params``'
    ``student_layer`` and ``teacher_layer``) and the spatial size both are pooled to (the
    smaller one's; () for flat layers); ValueError (one line) unless both are flat or both
    spatial."""
    s_shape = probe.student_shape(params.student_layer)
    t_shape = probe.teacher_shape(params.teacher_layer)
    if len(s_shape) != len(t_shape):
        raise ValueError(
            f"student {params.student_layer} {s_shape} and teacher {params.teacher_layer} "
            f"{t_shape} are not both flat or both spatial"
        )
    return s_shape, t_shape, tuple(min(a, b) for a, b in zip(s_shape[1:], t_shape[1:], strict=True))


class FitNets(Distiller):
    """Hint learning through a projector (the paper's regressor), with optional normalisation,
    optional KD, and FitNets' two-stage schedule. Owns the projector and the normalisers, so
    they train with the student and are saved beside it."""

    def __init__(self, params: FitNetsParams, probe: Probe):
        super().__init__(params)
        s_shape, t_shape, self.size = paired_shapes(params, probe)
        spatial = len(s_shape) == 3
        self.projector = build_projector(params.projector, s_shape[0], t_shape[0], spatial)
        before, after = "none", "none"
        if params.normalise == "whiten":
            before = "whiten"
        else:
            after = params.normalise
        self.pre = build_normaliser(before, s_shape[0], spatial)
        self.norm_s = build_normaliser(after, t_shape[0], spatial)
        self.norm_t = build_normaliser(after, t_shape[0], spatial)
        self.steps = 0
        self._trace: list[dict] = []  # the spectrum every TRACE_EVERY steps, within an epoch

    def teacher_targets(self, out):
        hint = _pool_to(out.features[self.params.teacher_layer], self.size)
        return {"logits": out.logits, "hint": hint}

    def stages(self, epochs: int) -> list[Stage]:
        h = self.params.hint_epochs
        if h <= 0:
            return [Stage("train", epochs)]
        return [Stage("hint", h), Stage("train", max(epochs - h, 1))]

    def hint(self, student, teacher) -> torch.Tensor:
        s = _pool_to(student.features[self.params.student_layer], self.size)
        s = self.norm_s(self.projector(self.pre(s)))
        t = self.norm_t(teacher["hint"])
        if self.params.distance == "logsum":
            return logsum_loss(s, t)
        return fitnet_loss(s, t)

    def forward(self, student, teacher, batch):
        p = self.params
        hint = p.beta * self.hint(student, teacher)
        if self.stage == "hint":
            return {"hint": hint}
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        if p.hint_epochs <= 0:  # the two-stage schedule drops the hint after its stage
            parts["hint"] = hint
        return parts

    def spectrum(self) -> list[float]:
        return [round(float(v), 6) for v in singular_values(self.projector.matrix())]

    def after_step(self, batch) -> None:
        if self.steps % TRACE_EVERY == 0:  # from the first step on
            self._trace.append({"step": self.steps, "spectrum": self.spectrum()})
        self.steps += 1

    def epoch_summary(self) -> dict:
        sv = self.spectrum()
        trace, self._trace = self._trace, []
        return {"spectrum": sv, "collapsed": collapsed(torch.tensor(sv)), "trace": trace}
