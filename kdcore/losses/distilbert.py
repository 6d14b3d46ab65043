r"""DistilBERT: a student of half the teacher's depth, started from the teacher's own layers and
trained by a triple loss.

Victor Sanh, Lysandre Debut, Julien Chaumond and Thomas Wolf, "DistilBERT, a distilled version
of BERT: smaller, faster, cheaper and lighter", NeurIPS 2019 EMC² workshop, arXiv:1910.01108,
§2 and §3. The student keeps the teacher's width and has half its layers, and it is initialised
"from the teacher by taking one layer out of two" (the widths are equal, so the weights fit). Its
objective is a linear combination of three terms,

.. math::
    \mathcal{L} = \alpha_{ce} T^2\, \mathrm{KL}(p^T \| q^T) + \alpha_{lm}\, \mathcal{L}_{lm}
    + \alpha_{cos}\, \mathcal{L}_{cos},
    \qquad \mathcal{L}_{cos} = \frac{1}{N} \sum_{(b,l):\, m_{b,l}}
    \Big(1 - \frac{h^S_{b,l} \cdot h^T_{b,l}}
    {\lVert h^S_{b,l} \rVert\, \lVert h^T_{b,l} \rVert}\Big),

the distillation loss on the teacher's soft targets at temperature T (the paper's
:math:`L_{ce} = \sum_i t_i \log s_i`; its KL has the same gradient), the language-modelling loss
on the true text (the paper's masked LM; DistilGPT2, from the same code, uses the causal LM as
here) and a cosine embedding loss that aligns the directions of the two models' hidden states.
The weights are the official code's defaults (``alpha_ce`` 5, ``alpha_mlm`` 2, ``alpha_cos`` 1,
temperature 2); the paper gives none. The code compares the last layer's hidden states with
``nn.CosineEmbeddingLoss`` (target 1, the mean over the counted tokens), as :func:`cosine_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def every_other(student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """The teacher's blocks (1 = first) whose weights start the student's blocks, in order: one
    of every two from the first, the paper's initialisation when the student has half the
    teacher's depth (more generally one of every N/M). Raises ValueError (one line) when the
    teacher's depth is not a multiple of the student's."""
    m, n = student_layers, teacher_layers
    if not 1 <= m <= n or n % m:
        raise ValueError(f"a student of {m} blocks cannot take one block of every n/m from a "
                         f"teacher of {n}: n must be a multiple of m")  # fmt: skip
    return tuple(1 + i * (n // m) for i in range(m))


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_cos: 1 − cos(h^S, h^T), averaged over the counted positions.

    student, teacher (B, L, D) hidden states of equal width (no projector: DistilBERT's student
    has the teacher's width), mask (B, L) bool. Returns a scalar in [0, 2]; 0 when every student
    vector points the teacher's way, whatever its length.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"the cosine loss compares states of one shape, not "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")  # fmt: skip
    cos = F.cosine_similarity(student, teacher, dim=-1)  # (B, L)
    mask = mask.to(cos.dtype)
    return ((1 - cos) * mask).sum() / mask.sum().clamp_min(1.0)
