r"""Distillation losses for language models: a next-token distribution at every position.

Logits are ``(B, L, V)``: batch, positions, vocabulary. ``mask`` is an optional ``(B, L)`` bool
tensor of the positions that count (None: all of them); it marks logit positions, so for a
causal LM it is the position *before* each target token. Every loss sums over the vocabulary
inside a position and returns the mean over the counted positions. A mask with no True entry
gives 0, not NaN, and that 0 keeps a ``grad_fn`` (zero gradients) when an input requires grad,
so a training step over an all-padding batch needs no special case.

Probabilities are handled as log-softmaxes and every KL is computed from log-probabilities; the
mixture of the generalized JSD is formed in log space with ``logaddexp``. The teacher side is
never detached here: pass ``teacher_logits.detach()`` (or cached logits) when it is frozen.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _mask_or_all(mask: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """The (B, L) bool mask of counted positions; all True when ``mask`` is None."""
    if mask is None:
        return torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
    if mask.shape != logits.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match logits {tuple(logits.shape)}")
    return mask.to(device=logits.device, dtype=torch.bool)


def _masked_mean(per_position: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, L) values over the True entries of mask; 0 (with a grad_fn) when none is.
    ``where`` rather than a product, so a non-finite value at an excluded position stays out."""
    total = torch.where(mask, per_position, 0.0).sum()
    return total / mask.sum().clamp_min(1)


def forward_kl_per_token(
    p_logits: torch.Tensor, q_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \,\|\, q)` at every position, 0 where the mask is False.

    .. math:: \mathrm{KL}(p_{b,l} \| q_{b,l}) = \sum_v p_{b,l,v} (\log p_{b,l,v} - \log q_{b,l,v})

    with p the softmax of p_logits and q the softmax of q_logits over the vocabulary.
    p_logits, q_logits: (B, L, V); mask: (B, L) bool or None.
    Returns (B, L), no reduction: an evaluation helper (where along a sequence the student
    departs from the teacher) and the building block of the losses below.
    """
    log_p = F.log_softmax(p_logits, dim=-1)  # (B, L, V)
    log_q = F.log_softmax(q_logits, dim=-1)  # (B, L, V)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)  # (B, L)
    return torch.where(_mask_or_all(mask, p_logits), kl, 0.0)


def sequence_log_prob(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Log-probability of whole target sequences: :math:`\sum_l \log p(y_{b,l} \mid \cdot)`.

    .. math:: \log p(y_b) = \sum_{l:\, m_{b,l}} \log \mathrm{softmax}(z_{b,l})_{y_{b,l}}

    logits: (B, L, V), position l scoring the token ``targets[:, l]``; targets: (B, L) int64;
    mask: (B, L) bool or None. Returns (B,), a sum (not a mean) over the counted positions, so
    that it is the log-likelihood of the sequence; 0 for a row with no counted position.
    Masked targets may hold any value (e.g. -100): they are never used as indices.
    """
    keep = _mask_or_all(mask, logits)
    log_p = F.log_softmax(logits, dim=-1)  # (B, L, V)
    safe = torch.where(keep, targets, 0)  # (B, L) valid indices everywhere
    picked = log_p.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, L)
    return torch.where(keep, picked, 0.0).sum(-1)


def token_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Word-level knowledge distillation (Kim & Rush 2016, §3.1), softened at temperature T.

    Yoon Kim, Alexander M. Rush, "Sequence-Level Knowledge Distillation", EMNLP 2016,
    arXiv:1606.07947. At every position the student's next-token distribution is pulled towards
    the teacher's:

    .. math::
        \mathcal{L} = \frac{T^2}{N} \sum_{(b,l):\, m_{b,l}}
            \mathrm{KL}\big(p^T_{b,l} \,\|\, q^T_{b,l}\big),
        \qquad N = \sum_{b,l} m_{b,l}

    with :math:`p^T = \mathrm{softmax}(v/T)` from the teacher logits v and
    :math:`q^T = \mathrm{softmax}(z/T)` from the student logits z. The factor :math:`T^2` is
    Hinton et al.'s (2015, arXiv:1503.02531, §2): it keeps the gradient's size when T changes.

    Kim & Rush write the loss as the cross-entropy :math:`-\sum_j \sum_k q(t_j{=}k)\log p(t_j{=}k)`
    against the teacher's distribution, summed over the positions, with no temperature. It
    differs from the KL by the teacher's entropy, which does not depend on the student, so the
    gradient is the same; the KL is 0 when the student matches. Here T = 1 is their loss per
    position (a mean over positions rather than a sum, so its size does not grow with length).

    student_logits, teacher_logits: (B, L, V); mask: (B, L) bool or None. Returns a scalar, the
    mean over counted positions.
    """
    kl = forward_kl_per_token(teacher_logits / T, student_logits / T, mask)  # (B, L)
    return _masked_mean(kl, _mask_or_all(mask, student_logits)) * (T * T)


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float,
    T: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The generalized Jensen–Shannon divergence of GKD (Agarwal et al. 2024, Eq. 1).

    Rishabh Agarwal, Nino Vieillard, Yongchao Zhou, Piotr Stanczyk, Sabela Ramos, Matthieu Geist,
    Olivier Bachem, "On-Policy Distillation of Language Models: Learning from Self-Generated
    Mistakes", ICLR 2024, arXiv:2306.13649. With :math:`p_T` the teacher's and :math:`p_S` the
    student's next-token distribution at temperature T, and :math:`0 < \beta < 1`:

    .. math::
        M = \beta\, p_T + (1 - \beta)\, p_S, \qquad
        \mathrm{JSD}(\beta) = \beta\, \mathrm{KL}(p_T \,\|\, M)
            + (1 - \beta)\, \mathrm{KL}(p_S \,\|\, M)

    and at the ends, by definition,

    .. math::
        \mathrm{JSD}(0) = \mathrm{KL}(p_T \| p_S) = \lim_{\beta \to 0} \mathrm{JSD}(\beta)/\beta,
        \qquad
        \mathrm{JSD}(1) = \mathrm{KL}(p_S \| p_T) = \lim_{\beta \to 1} \mathrm{JSD}(\beta)/(1-\beta)

    So β = 0 is the forward KL (mode-covering, the usual KD direction), β = 1 the reverse KL
    (mode-seeking), β = ½ the ordinary JSD. The value is summed over the vocabulary, averaged
    over the counted positions; there is no :math:`T^2` factor, so the ends are exactly the two
    KLs (β = 0 equals ``token_kd_loss(..., T) / T**2``).

    Convention followed: the paper's Eq. (1) with P the teacher and Q the student (its
    divergence is :math:`D(p_T \| p_S^\theta)`), and the endpoint definitions of HuggingFace
    TRL's ``GKDTrainer.generalized_jsd_loss`` (since TRL PR #3043, which also fixed a mixture
    with swapped weights; earlier TRL mixed log-probabilities, issue #2202). Paper and TRL agree
    on the interior; the ends are TRL's, and are the limits above. Note what this implies: inside
    (0, 1) the value tends to 0 at both ends
    (:math:`\mathrm{JSD}(\beta) \approx \beta\,\mathrm{KL}(p_T\|p_S)` near 0), so it jumps to the
    full KL at β = 0 and β = 1. Near the ends β turns the gradient's *direction* towards that of
    the KL while shrinking its size by about β (or 1 − β). The continuous
    variant with swapped weights, :math:`(1-\beta)\mathrm{KL}(p_T\|M) + \beta\,\mathrm{KL}(p_S\|M)`
    (proposed in ms-swift PR #10213), is not the paper's divergence and is not used here.

    Swapping student and teacher while replacing β by 1 − β gives the same value.
    student_logits, teacher_logits: (B, L, V); beta in [0, 1]; mask: (B, L) bool or None.
    Returns a scalar, the mean over counted positions.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    keep = _mask_or_all(mask, student_logits)
    s, t = student_logits / T, teacher_logits / T
    if beta == 0.0:
        return _masked_mean(forward_kl_per_token(t, s, keep), keep)
    if beta == 1.0:
        return _masked_mean(forward_kl_per_token(s, t, keep), keep)
    log_s = F.log_softmax(s, dim=-1)  # (B, L, V)
    log_t = F.log_softmax(t, dim=-1)  # (B, L, V)
    # log M = log(β p_T + (1 − β) p_S), without leaving log space.
    log_m = torch.logaddexp(log_t + math.log(beta), log_s + math.log1p(-beta))
    kl_t = F.kl_div(log_m, log_t, log_target=True, reduction="none").sum(-1)  # KL(p_T ‖ M)
    kl_s = F.kl_div(log_m, log_s, log_target=True, reduction="none").sum(-1)  # KL(p_S ‖ M)
    return _masked_mean(beta * kl_t + (1.0 - beta) * kl_s, keep)


def _first_counted(mask: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) indices of the first k counted positions of each row, in order (rows with fewer
    are filled with uncounted positions, which the caller drops)."""
    pos = torch.arange(mask.shape[1], device=mask.device)
    key = torch.where(mask, pos, pos + mask.shape[1])  # counted first, order kept within each
    return key.argsort(dim=1)[:, :k]


def uld_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_mask: torch.Tensor | None = None,
    teacher_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Universal Logit Distillation for different tokenizers (Boizard et al. 2024).

    Nicolas Boizard, Kevin El Haddad, Céline Hudelot, Pierre Colombo, "Towards Cross-Tokenizer
    Distillation: the Universal Logit Distillation Loss for LLMs", arXiv:2402.12030 (TMLR 2025).
    Reference code: Nicolas-BZRD/llm-recipes, ``models/distillation_model.py``
    (``DistillationLoss``).

    Student and teacher need not share a vocabulary (:math:`V_s \ne V_t`) nor a tokenization
    (:math:`L_s \ne L_t`). No token is matched to a token: each position's probabilities are
    sorted in decreasing order, the shorter vector is padded with zeros to
    :math:`V = \max(V_s, V_t)`, and the two are compared entry by entry,

    .. math::
        \mathcal{L}_{ULD} = \frac{1}{N} \sum_b \sum_{k=1}^{n_b} \sum_{i=1}^{V}
            \big| p^S_{b,k,(i)} - p^T_{b,k,(i)} \big|,
        \qquad n_b = \min(n^S_b, n^T_b), \quad N = \sum_b n_b

    where :math:`p_{(i)}` is the i-th largest probability (0 for i beyond the vocabulary) and
    :math:`n^S_b, n^T_b` count the student's and teacher's masked-in positions of row b. The
    paper derives this sum as a closed form of its optimal-transport (Wasserstein) distance
    (Appendix A). Relabelling a vocabulary changes nothing, which is what lets the tokenizers
    differ; the price is that the loss only sees the *shape* of each distribution, not which
    token carries the mass (a cross-entropy on the labels supplies that in the paper).

    Alignment, as in the reference code: the k-th counted student position is paired with the
    k-th counted teacher position, and each row is cut to its first :math:`n_b` pairs (the
    code keeps the answer tokens, aligns their first tokens, and takes
    ``min(student_answer_size, teacher_answer_size)``). Reduction: the code averages over each
    row's pairs and then over the rows; here the pairs of the whole batch are pooled, like the
    other losses of this module; the two agree when every row has the same :math:`n_b`. Rows
    with no pair add nothing (the code would give NaN). No temperature: the paper's τ (1 in
    the code by default) is applied by dividing the logits before the call.

    student_logits: (B, Ls, Vs); teacher_logits: (B, Lt, Vt); student_mask: (B, Ls) and
    teacher_mask: (B, Lt), bool or None. Returns a scalar, the mean over aligned pairs.
    """
    keep_s = _mask_or_all(student_mask, student_logits)
    keep_t = _mask_or_all(teacher_mask, teacher_logits)
    n = torch.minimum(keep_s.sum(1), keep_t.sum(1))  # (B,) aligned pairs per row
    k = int(n.max()) if n.numel() else 0
    idx_s = _first_counted(keep_s, k)  # (B, k)
    idx_t = _first_counted(keep_t, k)  # (B, k)
    vs, vt = student_logits.shape[-1], teacher_logits.shape[-1]
    z_s = student_logits.gather(1, idx_s.unsqueeze(-1).expand(-1, -1, vs))  # (B, k, Vs)
    z_t = teacher_logits.gather(1, idx_t.unsqueeze(-1).expand(-1, -1, vt))  # (B, k, Vt)
    p_s = F.softmax(z_s, dim=-1).sort(dim=-1, descending=True).values
    p_t = F.softmax(z_t, dim=-1).sort(dim=-1, descending=True).values
    v = max(vs, vt)
    p_s = F.pad(p_s, (0, v - vs))  # (B, k, V) zeros after the smallest probabilities
    p_t = F.pad(p_t, (0, v - vt))  # (B, k, V)
    l1 = (p_s - p_t).abs().sum(-1)  # (B, k)
    paired = torch.arange(k, device=n.device) < n.unsqueeze(1)  # (B, k)
    return _masked_mean(l1, paired)
