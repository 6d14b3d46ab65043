r"""Masked generative distillation: rebuild the teacher's map from a masked student's (Yang et al.
2022).

Zhendong Yang, Zhe Li, Mingqi Shao, Dachuan Shi, Zehuan Yuan and Chun Yuan, "Masked Generative
Distillation", ECCV 2022, arXiv:2205.01529. Official code: yzd-v/MGD
(``cls/mmcls/distillation/losses/mgd.py``, ``cls/configs/distillers/res34_distill_res18_img.py``,
``det/configs/distillers/mgd/``).

Feature distillation usually asks the student's map to *imitate* the teacher's. MGD asks it to
carry enough to *regenerate* it: a random part of the student's map is zeroed, and a small
generator G (two 3 × 3 convolutions around a ReLU) must rebuild the teacher's whole map from
what is left,

.. math::
    \mathcal{L}_{MGD} = \frac{\alpha}{N} \sum_{n=1}^{N} \sum_{c,h,w}
        \big(T^{n}_{c,h,w} - \mathcal{G}\big(f_{align}(S^{n}) \odot M^{n}\big)_{c,h,w}\big)^2,
    \qquad M^{n} = [\,u \ge \lambda\,],\ u \sim U(0, 1),

with f_align a 1 × 1 convolution to the teacher's channels (none when they agree), λ the masked
share, and the student also trained on its labels: CE + L_MGD, no KD. The generator is thrown
away after training.

The paper says it masks random *pixels* (one draw per position, all channels together); the
official classification code masks random *channels* (one draw per channel, all positions
together; its pixel line is commented out) at λ = 0.15 and α = 7e-5 (ResNet-34 → ResNet-18 on
ImageNet), while its detection configs mask pixels at λ = 0.65 and α = 2e-5. Both masks are
here (``mask``), the classification code's the default. The squared error is summed over the
map and averaged over the batch as the code's ``MSELoss(reduction='sum') / N``, so α's effect
grows with the map's size (ResNet-18's last map has 25,088 numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..method import Distiller, Probe, param
from .fsp import as_map
from .kd import ce_and_kd

MASKS = ("channels", "pixels")  # the official classification code's, the paper's (and detection's)


def mgd_mask(
    shape: tuple[int, int, int, int],
    ratio: float,
    on: str,
    device: Any = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random keep-mask for maps of ``shape`` (N, C, H, W): 0 with probability ``ratio`` per
    image and channel (``on="channels"``: (N, C, 1, 1)) or per image and position
    (``"pixels"``: (N, 1, H, W)), else 1, as the official ``where(mat < lambda_mgd, 0, 1)``.
    ``generator``: draw from it rather than torch's global stream (a page's illustration)."""
    if on not in MASKS:
        raise ValueError(f"MGD masks channels or pixels, not {on!r}")
    n, c, h, w = shape
    size = (n, c, 1, 1) if on == "channels" else (n, 1, h, w)
    return (torch.rand(size, device=device, generator=generator) >= ratio).float()


def mgd_loss(generated: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1N \sum_n \lVert T^n - G^n \rVert^2`, the squared error summed over each map
    and averaged over the batch (the official ``MSELoss(reduction='sum') / N``). Both
    (N, C, H, W). Returns a scalar."""
    return (generated - teacher).pow(2).sum() / teacher.shape[0]


class MGDGenerator(nn.Module):
    """f_align (a 1 × 1 convolution to the teacher's channels, or nothing when they agree), the
    mask, then the generator: 3 × 3 convolution, ReLU, 3 × 3 convolution, at the teacher's
    width (the official ``align`` and ``generation``)."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        c = teacher_channels
        self.align = nn.Conv2d(student_channels, c, 1) if student_channels != c else nn.Identity()
        self.generation = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1)
        )

    def forward(self, student: torch.Tensor, ratio: float, on: str) -> torch.Tensor:
        """The student's map aligned, masked by a fresh :func:`mgd_mask` of its aligned shape
        (the official code masks after aligning), and regenerated: (N, C_t, H, W)."""
        aligned = self.align(student)
        return self.generation(aligned * mgd_mask(tuple(aligned.shape), ratio, on, aligned.device))


@dataclass(frozen=True)
class MGDParams:
    student_layer: str = param("conv2", "Student layer (masked)", choices="student features")
    teacher_layer: str = param("conv2", "Teacher layer (generated)", choices="teacher features")
    mask: str = param("channels", "What is masked", choices=MASKS,
                      help="channels: the official classification code; pixels: the paper's "
                      "text and its detection code")  # fmt: skip
    ratio: float = param(0.15, "Masked share λ", 0.0, 0.99, 0.05)
    alpha_mgd: float = param(7e-5, "α, weight of the generation loss", 0.0, 1e3, log=True)
    T: float = param(4.0, "Temperature T (for α_KD > 0)", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α_KD, the teacher's logits' weight", 0.0, 1.0, 0.05,
                         "0: cross-entropy alone, as the official code")  # fmt: skip


class MGD(Distiller):
    """CE (and KD where α_KD > 0) + α·L_MGD through its own generator; records each epoch the
    generator's relative error, ‖T − G‖² / ‖T‖² over the epoch's batches."""

    def __init__(self, params: MGDParams, probe: Probe):
        super().__init__(params)
        probe.student_shape(params.student_layer)  # each layer in its model, or one line
        probe.teacher_shape(params.teacher_layer)
        s = as_map(probe.student.features[params.student_layer])
        t = as_map(probe.teacher.features[params.teacher_layer])
        if s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f"MGD needs maps of one size: the student's {params.student_layer} is "
                f"{s.shape[2]} × {s.shape[3]}, the teacher's {params.teacher_layer} "
                f"{t.shape[2]} × {t.shape[3]}"
            )
        self.generator = MGDGenerator(s.shape[1], t.shape[1])
        self._err: list[torch.Tensor] = []

    def teacher_targets(self, out):
        return {"logits": out.logits, "feat": as_map(out.features[self.params.teacher_layer])}

    def forward(self, student, teacher, batch):
        p = self.params
        s = as_map(student.features[p.student_layer])
        t = teacher["feat"]
        generated = self.generator(s, p.ratio, p.mask)
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        loss = mgd_loss(generated, t)
        parts["mgd"] = p.alpha_mgd * loss
        if self.training:
            self._err.append((loss.detach() / (t.pow(2).sum() / t.shape[0])).reshape(1))
        return parts

    def epoch_summary(self) -> dict[str, Any]:
        """The generator's relative error over the epoch's batches (their mean)."""
        out = {}
        if self._err:
            out["reconstruction"] = float(torch.cat(self._err).mean())
        self._err = []
        return out
