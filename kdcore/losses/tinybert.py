r"""Hidden-state distillation inside a transformer: TinyBERT's layer-to-layer loss.

Xiaoqi Jiao, Yichun Yin, Lifeng Shang, Xin Jiang, Xiao Chen, Linlin Li, Fang Wang and Qun Liu,
"TinyBERT: Distilling BERT for Natural Language Understanding", Findings of EMNLP 2020,
arXiv:1909.10351, §3.1. A student of M blocks learns from a teacher of N through a mapping
:math:`n = g(m)` of student layers onto teacher layers, :math:`g(0) = 0` the embeddings. Its
hidden-state loss, eq. (7), is

.. math:: \mathcal{L}_{hidn} = \mathrm{MSE}(H^S W_h,\; H^T),

with :math:`H^S \in \mathbb{R}^{l \times d'}` the student's hidden states (the output of a
block, at every position), :math:`H^T \in \mathbb{R}^{l \times d}` the teacher's and
:math:`W_h \in \mathbb{R}^{d' \times d}` a learnable linear map from the student's narrower
space into the teacher's; the embedding loss, eq. (8), is the same with :math:`E^S W_e` and
:math:`E^T`. The model's objective sums the layers' losses over :math:`m = 0 \dots M`. The paper's
mapping study compares three functions: *uniform* :math:`g(m) = m N / M`, *top*
:math:`g(m) = m + N - M` and *bottom* :math:`g(m) = m` (the embeddings always map to the
embeddings).

Inputs here are lists of (B, L, D) tensors: the residual stream after the embeddings and after
each mapped block (``TinyGPT.forward(idx, hidden=[])`` hands the student's back,
``TinyGPT.stream`` the teacher's). ``mask`` (B, L) marks the positions that count; MSE averages
over them and over the teacher's width, as ``torch.nn.functional.mse_loss`` averages over
elements.
"""

from __future__ import annotations

import torch

# the paper's three mapping functions of student layer m (0 = embeddings) onto the teacher's
MAPPINGS = ("uniform", "top", "bottom")


def layer_map(
    mapping: str, student_layers: int, teacher_layers: int
) -> tuple[tuple[int, int], ...]:
    """The pairs (m, g(m)) for m = 0 .. M: student layer m (0 = the embeddings, m = the output of
    block m) learns teacher layer g(m). Raises ValueError (one line) for an unknown mapping, or a
    uniform one when N is not a multiple of M."""
    m_, n_ = student_layers, teacher_layers
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown layer mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    if not 1 <= m_ <= n_:
        raise ValueError(f"a student of {m_} blocks cannot map onto a teacher of {n_}")
    if mapping == "uniform" and n_ % m_:
        raise ValueError(f"the uniform mapping needs the teacher's {n_} blocks to be a multiple "
                         f"of the student's {m_}")  # fmt: skip
    g = {"uniform": lambda m: m * n_ // m_, "top": lambda m: m + n_ - m_, "bottom": lambda m: m}
    return tuple((m, 0 if m == 0 else g[mapping](m)) for m in range(m_ + 1))


def hidden_mse(
    student: torch.Tensor, teacher: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None,
    mask: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Eq. (7) for one pair of layers: MSE(H^S W_h, H^T) over the counted positions.

    student (B, L, D'), teacher (B, L, D), W (D, D') as ``nn.Linear`` stores it (so H^S W_h is
    ``student @ W.T``), b (D,) its bias or None (the official code's ``fit_dense`` has one), mask
    (B, L). The mean runs over counted positions and the D teacher dimensions.
    """
    proj = student @ W.T
    if b is not None:
        proj = proj + b
    err = (proj - teacher).pow(2).mean(-1)  # (B, L)
    mask = mask.to(err.dtype)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def hidden_losses(
    student: list[torch.Tensor], teacher: list[torch.Tensor], projector: torch.nn.Linear,
    mask: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """The hidden-state losses of all mapped layer pairs (the i-th of ``student`` against the
    i-th of ``teacher``), summed as the paper sums its layers (λ_m = 1), through one shared
    projector as the official code's ``fit_dense`` serves every layer (the paper writes a
    separate W_e for the embeddings)."""
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student layers against {len(teacher)} teacher layers")
    return sum(hidden_mse(s, t, projector.weight, projector.bias, mask)
               for s, t in zip(student, teacher, strict=True))  # fmt: skip


def linear_fit_r2(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> float:
    """How much of the teacher's hidden states a linear map (with bias) can read from the
    student's: the least-squares fit's R², 1 - SSE / SST over the counted positions, pooled over
    the teacher's dimensions. student (B, L, D'), teacher (B, L, D), mask (B, L). A student that
    carries the teacher's layer up to a linear map scores 1; one that carries none of it 0."""
    keep = mask.bool()
    s = student[keep].double()  # (P, D')
    t = teacher[keep].double()  # (P, D)
    x = torch.cat([s, torch.ones(len(s), 1, dtype=s.dtype, device=s.device)], 1)
    coef = torch.linalg.lstsq(x.cpu(), t.cpu()).solution.to(t.device)
    sse = (x @ coef - t).pow(2).sum()
    sst = (t - t.mean(0)).pow(2).sum()
    return float(1 - sse / sst)
