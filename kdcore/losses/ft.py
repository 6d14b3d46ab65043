"""Factor transfer: the student learns the teacher's layer as a paraphraser rephrased it (Kim,
Park & Kwak 2018).

Jangho Kim, SeongUk Park, Nojun Kwak, "Paraphrasing Complex Network: Network Compression via
Factor Transfer", NeurIPS 2018, arXiv:1802.04977. Reference code: the authors'
(Jangho-Kim/Factor-Transfer-pytorch: ``Models/FeatureProjection.py``, ``train_Paraphraser.py``,
``train_student.py``), which this module follows.

First a *paraphraser*, an autoencoder on the teacher's layer, is trained alone to reconstruct it
through a narrower middle: its encoder's output, k times the layer's width (the paraphrase rate,
0.5), is the teacher's *factor*. The teacher and its paraphraser then stay fixed, and a
*translator* on the student's layer, trained with the student, is asked for the same factor:
both are L2-normalised per example and compared by their L1 distance, beside CE. The student
never sees the teacher's layer itself, only what survives the paraphraser's bottleneck.

The authors' layers are three 3 × 3 convolutions each way with LeakyReLU(0.1) and no BatchNorm;
on a flat layer (an MLP's) each is a Linear of the same widths. Their reconstruction is by L1,
and their FT loss is ``nn.L1Loss`` (the mean over the batch and the factor's elements) weighted
β = 500. The paper's text was not reachable from this machine, so this module names its terms
as the code does.

The CRD benchmark (Tian et al. 2020, Table 1), whose FT figure the ft-mnist preset quotes, ran
another factor loss (RepDistiller's ``distiller_zoo/FT.py``): each factor map's channels squared
and averaged into one spatial map per example before the comparison, an attention map of the
factors. A flat layer has no spatial positions, so on an MLP that map is a single number per
example and its normalised value always 1: nothing to transfer. Only the authors' form runs here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..method import Distiller, Probe, Stage, param, stage_first
from .fitnets import _pool_to, paired_shapes
from .kd import ce_and_kd

FT_RATE = 0.5  # the paraphrase rate k (the authors' code's --rate)
FT_WEIGHT = 500.0  # β (the authors' train_student.py --beta)
LEAK = 0.1  # LeakyReLU's slope in both modules


def _layer(c_in: int, c_out: int, spatial: bool, transpose: bool = False) -> nn.Module:
    """One of the authors' layers: a 3 × 3 (transposed) convolution keeping the map's size, or a
    Linear on a flat layer."""
    if not spatial:
        return nn.Linear(c_in, c_out)
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return conv(c_in, c_out, 3, 1, 1)


def _stack(widths: list[int], spatial: bool, transpose: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [_layer(a, b, spatial, transpose), nn.LeakyReLU(LEAK)]
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """The teacher's autoencoder: encoder c → c → f → f, decoder f → f → c → c, f = round(k·c),
    each layer followed by LeakyReLU(0.1) (the authors' ``Paraphraser``). (B, c, ...) in."""

    def __init__(self, channels: int, rate: float = FT_RATE, spatial: bool = False):
        super().__init__()
        f = factor_width(channels, rate)
        self.encoder = _stack([channels, channels, f, f], spatial)
        self.decoder = _stack([f, f, channels, channels], spatial, transpose=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(factor, reconstruction)."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


def translator(c_s: int, f: int, spatial: bool = False) -> nn.Sequential:
    """The student's side: c_s → c_s → f → f, each layer followed by LeakyReLU(0.1) (the
    authors' ``Translator``)."""
    return _stack([c_s, c_s, f, f], spatial)


def factor_width(channels: int, rate: float) -> int:
    """The factor's channels: the teacher's, times the rate, rounded (at least 1)."""
    return max(1, round(channels * rate))


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paraphraser's training loss in the authors' code: the mean absolute error between its
    reconstruction and the teacher's layer, over every element. rec, x: (B, ...)."""
    return (rec - x).abs().mean()


def ft_loss(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    r"""The factor transfer loss: each example's factors flattened and L2-normalised, then their
    L1 distance, as the authors' ``nn.L1Loss`` takes it (the mean over the B examples and the D
    elements of a factor):

    .. math:: \mathcal{L}_{FT} = \frac{1}{B\,D} \sum_{i=1}^{B}
        \Big\lVert \frac{F_T^{(i)}}{\lVert F_T^{(i)} \rVert_2}
        - \frac{F_S^{(i)}}{\lVert F_S^{(i)} \rVert_2} \Big\rVert_1

    factor_s: (B, ...) the translated student's, factor_t: (B, ...) the paraphrased teacher's,
    the same shape. Returns a scalar. An all-zero factor stays zero. The student's total is
    :math:`\mathcal{L}_{CE} + \beta\mathcal{L}_{FT}` (:data:`FT_WEIGHT`).
    """
    s = F.normalize(factor_s.reshape(factor_s.shape[0], -1), dim=1)  # (B, D)
    t = F.normalize(factor_t.reshape(factor_t.shape[0], -1), dim=1)
    return (s - t).abs().mean()


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class FTParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="The authors': the student's last group, before pooling.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    rate: float = param(FT_RATE, "k, the paraphrase rate", 0.05, 4.0, 0.05,
                        "The factor's width over the layer's; the authors': 0.5")  # fmt: skip
    weight: float = param(FT_WEIGHT, "β, weight of L_FT", 0.0, 1e5, 50.0, "Authors' code: 500")
    init_epochs: int = param(
        2, "Paraphraser epochs", 0, 1000,
        help="This many epochs of the paraphraser alone, reconstructing the teacher's layer, "
        "before the run's epochs (the student does not train in them). 0: an untrained "
        "paraphraser, its factors a fixed random map of the teacher's layer.",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T (KD)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class FactorTransfer(Distiller):
    """The paraphraser's stage, then CE (and optionally KD) plus β·L_FT through the translator.
    Owns both modules, so they train and save with the student; after its stage the paraphraser
    is fixed (no gradient; its factors computed without one)."""

    def __init__(self, params: FTParams, probe: Probe):
        super().__init__(params)
        s_shape, t_shape, self.size = paired_shapes(params, probe)  # (C,) or (C, H, W)
        spatial = len(t_shape) == 3
        self.paraphraser = Paraphraser(t_shape[0], params.rate, spatial)
        self.translator = translator(s_shape[0], factor_width(t_shape[0], params.rate), spatial)
        self._err = self._size = 0.0  # this epoch's summed |reconstruction − layer| and |layer|

    def teacher_targets(self, out):
        return {"logits": out.logits,
                "feat": _pool_to(out.features[self.params.teacher_layer], self.size)}  # fmt: skip

    def stages(self, epochs: int) -> list[Stage]:
        # the authors train the paraphraser first (train_Paraphraser.py), as RepDistiller does
        return stage_first("paraphraser", self.params.init_epochs, epochs)

    def forward(self, student, teacher, batch):
        p = self.params
        if self.stage == "paraphraser":
            _, rec = self.paraphraser(teacher["feat"])
            loss = reconstruction_loss(rec, teacher["feat"])
            with torch.no_grad():
                self._err += float(loss) * rec.numel()
                self._size += float(teacher["feat"].abs().sum())
            return {"rec": loss}
        with torch.no_grad():  # fixed after its stage, as the authors' factor_t.detach()
            factor_t = self.paraphraser.encoder(teacher["feat"])
        factor_s = self.translator(_pool_to(student.features[p.student_layer], self.size))
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        parts["ft"] = p.weight * ft_loss(factor_s, factor_t)
        return parts

    def epoch_summary(self) -> dict:
        """In the paraphraser's epochs, its reconstruction error relative to the layer's size:
        Σ|reconstruction − layer| / Σ|layer| over the epoch's batches (0: perfect, 1: no better
        than reconstructing zeros)."""
        if self._size <= 0:
            return {}
        out = {"relative_reconstruction": round(self._err / self._size, 5)}
        self._err = self._size = 0.0
        return out
