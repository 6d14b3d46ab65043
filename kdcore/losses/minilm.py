r"""Self-attention relation distillation: MiniLM and MiniLMv2.

Wenhui Wang, Furu Wei, Li Dong, Hangbo Bao, Nan Yang and Ming Zhou, "MiniLM: Deep Self-Attention
Distillation for Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020,
arXiv:2002.10957, §3: the student mimics the self-attention of the teacher's *last* layer,
its attention distributions (queries against keys) and its value relation (values against
values), each a row-wise softmax of scaled dot products compared by KL.

Wenhui Wang, Hangbo Bao, Shaohan Huang, Li Dong and Furu Wei, "MiniLMv2: Multi-Head
Self-Attention Relation Distillation for Compressing Pretrained Transformers", Findings of ACL
2021, arXiv:2012.15828, §3: queries, keys and values of all heads are concatenated and split
again into :math:`A_r` *relation heads*, so teacher and student may have any number of attention
heads and any widths; only the query-query, key-key and value-value relations are distilled, from
a teacher layer that need not be the last.

Inputs are one block's queries, keys and values with the heads side by side, ``(B, L, D)`` each
(``TinyGPT.forward(idx, keep=[])`` hands them back). The models here are causal: position i
attends only to positions j <= i, so each relation row is a softmax over those positions, as the
model's own attention is (the papers distil bidirectional BERT-style encoders, whose rows cover
the whole sequence). ``mask`` (B, L) marks the rows (positions) that count; a counted row's
earlier positions are real tokens, since padding only ever follows the text.
"""

from __future__ import annotations

import math

import torch

# the relations a method may distil: MiniLMv2's three, and MiniLM's attention distributions
# (queries against keys) with its value relation
PAIRS = {"q-q k-k v-v": ("qq", "kk", "vv"), "q-k v-v": ("qk", "vv")}
_INDEX = {"q": 0, "k": 1, "v": 2}


def relation_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, A_r, L, D / A_r): the concatenated heads split into ``heads`` relation
    heads (MiniLMv2, §3). Raises ValueError when D is not a multiple of ``heads``."""
    b, n, d = x.shape
    if heads < 1 or d % heads:
        raise ValueError(f"{heads} relation heads do not divide a width of {d}")
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def log_relations(a: torch.Tensor, b: torch.Tensor, heads: int) -> torch.Tensor:
    r"""Log of the self-attention relation of ``a`` to ``b``, (B, A_r, L, L):

    .. math:: R_{a} = \mathrm{softmax}\Big(\frac{A_{a} B_{a}^\top}{\sqrt{d_r}}\Big),
        \quad d_r = D / A_r

    row i a distribution over the positions j <= i (causal); entries j > i are -inf.
    a, b: (B, L, D). With a = queries and b = keys this is the model's own attention
    distribution when ``heads`` is its head count.
    """
    ha, hb = relation_heads(a, heads), relation_heads(b, heads)  # (B, A, L, d_r)
    scores = ha @ hb.transpose(-1, -2) / math.sqrt(ha.shape[-1])  # (B, A, L, L)
    n = scores.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=a.device).tril()
    return scores.masked_fill(~causal, float("-inf")).log_softmax(-1)


def relation_kl(
    teacher: tuple[torch.Tensor, torch.Tensor],
    student: tuple[torch.Tensor, torch.Tensor],
    heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""One relation's KL, teacher to student, per relation head and position (MiniLMv2):

    .. math:: \mathcal L_{ij} = \frac{1}{A_r\,|x|} \sum_{a=1}^{A_r} \sum_{t=1}^{|x|}
        \mathrm{KL}\big(R^T_{ij,a,t} \,\big\|\, R^S_{ij,a,t}\big)

    teacher, student: the pair (A_i, A_j) of each, (B, L, D_t) and (B, L, D_s); the widths may
    differ, the positions must align (same tokenization). mask: (B, L) bool or None (all rows).
    Returns a scalar: the mean over relation heads and counted rows (0 when none is counted).
    The teacher side is not detached here.
    """
    log_t = log_relations(*teacher, heads)  # (B, A, L, L)
    log_s = log_relations(*student, heads)
    # the entries j > i are -inf on both sides: zero them before the difference, so that no
    # inf - inf reaches the sum or the gradient (their probability is exactly 0)
    seen = log_t.isfinite()
    diff = torch.where(seen, log_t, 0.0) - torch.where(seen, log_s, 0.0)
    kl = (log_t.exp() * diff).sum(-1).mean(1)  # (B, L): mean over relation heads
    keep = torch.ones_like(kl, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if keep.shape != kl.shape:
        raise ValueError(f"mask {tuple(keep.shape)} does not match {tuple(kl.shape)} positions")
    return torch.where(keep, kl, 0.0).sum() / keep.sum().clamp_min(1)


def minilm_losses(
    teacher_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    student_qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    heads: int,
    pairs: tuple[str, ...] = PAIRS["q-q k-k v-v"],
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    r"""The relation terms MiniLMv2 adds up (every weight 1), one per pair:

    .. math:: \mathcal L = \sum_{(i,j)} \mathcal L_{ij}, \quad
        (i, j) \in \{(Q,Q), (K,K), (V,V)\}

    or MiniLM's two, ``pairs = ("qk", "vv")``: the attention distributions and the value
    relation (Wang et al. 2020, §3; there over the models' own heads, which must then be as
    many in both; here over ``heads`` relation heads, the same thing when both models have
    ``heads`` heads). teacher_qkv, student_qkv: (queries, keys, values) of one block each.
    Returns {pair: scalar}; the loss is their sum.
    """
    out = {}
    for pair in pairs:
        i, j = (_INDEX[c] for c in pair)
        out[pair] = relation_kl(
            (teacher_qkv[i], teacher_qkv[j]), (student_qkv[i], student_qkv[j]), heads, mask
        )
    return out


@torch.no_grad()
def model_relations(model, ids: torch.Tensor, heads: int, block: int = -1) -> dict:
    """Every relation of one block of a ``TinyGPT`` on ``ids`` (B, L): {"qq", "kk", "vv", "qk"
    -> probabilities (B, A_r, L, L)}, 0 above the diagonal. What the pages draw and the presets
    measure; ``block`` indexes the model's blocks (-1: the last)."""
    keep: list = []
    model.eval()
    model(ids, keep=keep)
    qkv = keep[block]
    return {
        pair: log_relations(qkv[_INDEX[pair[0]]], qkv[_INDEX[pair[1]]], heads).exp()
        for pair in ("qq", "kk", "vv", "qk")
    }
