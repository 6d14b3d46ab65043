"""Relational knowledge distillation: match the batch's shape, not its points (Park et al. 2019).

Wonpyo Park, Dongju Kim, Yan Lu, Minsu Cho, "Relational Knowledge Distillation", CVPR 2019,
arXiv:1904.05068. Reference code: github.com/lenscloth/RKD (``metric/loss.py``: ``RkdDistance``,
``RKdAngle``), also used unchanged by RepDistiller and mdistiller.

The student is not asked to reproduce the teacher's embedding, only its relations: the distances
between pairs of examples (scaled by their mean) and the angles in triplets. Both are unchanged by
rotating, translating or uniformly scaling either embedding, so the student and the teacher may live
in spaces of different dimension.

Where the reference code departs from the paper, this module follows the code, since the published
weights (25 and 50) were tuned with it:

* The paper sums the Huber loss over distinct pairs and triplets (Eq. 5 and 8); the code averages
  ``F.smooth_l1_loss`` over all B² (resp. B³) entries, degenerate ones (i = j, ...) included. Both
  are zero on those entries, so the two differ by a factor that depends only on B.
* The code puts the vertex of the angle at the *first* index, ``angle[i, j, k]`` =
  cos∠(x_j, x_i, x_k); the paper puts it in the middle, ψ_A(t_i, t_j, t_k) = cos∠t_i t_j t_k.
  The set of triplets is the same; only the order of the entries differs.
* The code's mean distance uses the positive entries (``d[d > 0]``); here it is the mean over the
  pairs i ≠ j as in Eq. 4. They differ only when two embeddings coincide exactly.

Zero distances (the diagonal, duplicated examples) are handled with a masked square root and a
masked division, so values and gradients stay finite where the norm is not differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..method import param
from .kd import ce_and_kd
from .similarity import BatchRelation

# λ_RKD-D and λ_RKD-A as used for image classification (CIFAR-100) by RepDistiller's RKDLoss
# (w_d=25, w_a=50) and mdistiller (CFG.RKD.DISTANCE_WEIGHT, ANGLE_WEIGHT); Park et al. 2019 use 1
# and 2 in their metric-learning runs (lenscloth/RKD examples: --dist_ratio 1 --angle_ratio 2).
# They weight the losses below; the losses themselves carry no weight.
RKD_DISTANCE_WEIGHT = 25.0
RKD_ANGLE_WEIGHT = 50.0


def _flatten(emb: torch.Tensor) -> torch.Tensor:
    if emb.shape[0] < 2:
        raise ValueError(f"RKD needs at least 2 examples in the batch, got {emb.shape[0]}")
    return emb.reshape(emb.shape[0], -1)  # (B, D)


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dimension, 0 with a zero gradient at the zero vector (where the
    norm has no derivative); the clamp keeps the unused branch of ``where`` finite."""
    sq = x.pow(2).sum(-1)
    tiny = torch.finfo(sq.dtype).tiny
    return torch.where(sq > 0, sq.clamp_min(tiny).sqrt(), torch.zeros_like(sq))


def pairwise_distances(emb: torch.Tensor) -> torch.Tensor:
    r"""All Euclidean distances :math:`d_{ij} = \lVert x_i - x_j \rVert_2` within a batch.

    emb: (B, D), or (B, ...) flattened to (B, D). Returns (B, B), symmetric with a zero diagonal.
    Computed from explicit differences rather than :math:`\lVert a \rVert^2 + \lVert b \rVert^2 -
    2 a^\top b` (the reference code's ``pdist``), which loses small distances to cancellation.
    """
    x = _flatten(emb)
    diff = x.unsqueeze(1) - x.unsqueeze(0)  # (B, B, D): x_i - x_j
    return _safe_norm(diff)


def normalised_distances(emb: torch.Tensor) -> torch.Tensor:
    r"""The distance potential :math:`\psi_D(x_i, x_j) = d_{ij} / \mu` (Park et al. 2019, Eq. 3–4).

    .. math:: \mu = \frac{1}{B(B-1)} \sum_{i \ne j} \lVert x_i - x_j \rVert_2

    Dividing by the mean distance makes the matrix scale-free, so a student whose embedding is ten
    times smaller than the teacher's is not penalised for it. emb: (B, D) or (B, ...). Returns
    (B, B), zero diagonal, off-diagonal mean 1 (all zeros when every embedding is the same).
    """
    d = pairwise_distances(emb)  # (B, B)
    b = d.shape[0]
    mu = d.sum() / (b * (b - 1))
    return d / mu.clamp_min(torch.finfo(d.dtype).tiny)


def triplet_angles(emb: torch.Tensor) -> torch.Tensor:
    r"""The angle potential: cosines of all angles in the batch (Park et al. 2019, Eq. 7).

    .. math::
        A_{ijk} = \langle e_{ij}, e_{ik} \rangle, \qquad
        e_{ij} = \frac{x_j - x_i}{\lVert x_j - x_i \rVert_2}

    :math:`A_{ijk}` is the cosine of the angle at vertex :math:`x_i` between :math:`x_j` and
    :math:`x_k`, indexed as in the reference code (``e = x.unsqueeze(0) - x.unsqueeze(1)``, then
    ``bmm(e, e^T)``). Entries with j = i or k = i, and any with coincident points, are 0.
    emb: (B, D) or (B, ...). Returns (B, B, B).
    """
    x = _flatten(emb)
    e = x.unsqueeze(0) - x.unsqueeze(1)  # (B, B, D): e[i, j] = x_j - x_i
    norm = _safe_norm(e)  # (B, B)
    unit = e / torch.where(norm > 0, norm, torch.ones_like(norm)).unsqueeze(-1)  # (B, B, D)
    return unit @ unit.transpose(1, 2)  # (B, B, B)


def rkd_distance_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    r"""Distance-wise RKD (Park et al. 2019, Eq. 5 with the Huber loss of Eq. 6, δ = 1).

    .. math::
        \mathcal{L}_{RKD\text{-}D} = \frac{1}{B^2} \sum_{i,j}
            \ell_\delta\big(\psi_D(t_i, t_j), \psi_D(s_i, s_j)\big)

    with :math:`\ell_1(a, b) = \tfrac12 (a-b)^2` if :math:`|a-b| \le 1`, else
    :math:`|a-b| - \tfrac12` (``F.smooth_l1_loss``, as the reference code). The mean runs over all
    B² entries as in the code (see the module docstring). student_emb: (B, D_s), teacher_emb:
    (B, D_t), or (B, ...) each; D_s and D_t may differ. Returns a scalar. The teacher side is not
    detached here.
    """
    return F.smooth_l1_loss(
        normalised_distances(student_emb), normalised_distances(teacher_emb), reduction="mean"
    )


def rkd_angle_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    r"""Angle-wise RKD (Park et al. 2019, Eq. 8): Huber loss between all triplet-angle cosines.

    .. math::
        \mathcal{L}_{RKD\text{-}A} = \frac{1}{B^3} \sum_{i,j,k}
            \ell_\delta\big(\psi_A(t_i, t_j, t_k), \psi_A(s_i, s_j, s_k)\big)

    Angles need no normalisation: they are already free of scale. The mean runs over all B³
    entries as in the reference code. student_emb: (B, D_s), teacher_emb: (B, D_t), or (B, ...).
    Returns a scalar; equal to ``F.smooth_l1_loss(triplet_angles(s), triplet_angles(t))``.

    Computed by :class:`_AngleLoss`, which never holds the (B, B, B) angle tensors nor the
    (B, B, D) difference vectors: the reference code's form stores both for autograd and costs
    about 2·B³·D multiply-adds per step in ``bmm``; the Gram form below costs O(B²·D + B³) and
    works through the vertices in cache-sized blocks.
    """
    s, t = _flatten(student_emb), _flatten(teacher_emb)
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"student and teacher batches differ: {s.shape[0]} vs {t.shape[0]}")
    return _AngleLoss.apply(s, t)


def _gram_parts(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(centred x, Gram G, squared norms n, inverse distances inv) for a (B, D) embedding.

    Centring first (angles do not see translations) keeps the Gram form's cancellation small:
    d²_ij = n_i + n_j − 2 G_ij loses digits when the points sit far from the origin relative to
    their spread. A pair closer than a few float rounding errors of the norms counts as
    coincident: inv = 0, so its angles are 0 as in :func:`triplet_angles`.
    """
    c = x - x.mean(0, keepdim=True)  # (B, D)
    g = c @ c.T  # (B, B)
    n = g.diagonal()  # (B,)
    scale = n.unsqueeze(1) + n.unsqueeze(0)  # (B, B)
    d2 = scale - 2 * g  # (B, B), zero on the diagonal exactly
    valid = d2 > 64 * torch.finfo(x.dtype).eps * scale
    inv = torch.where(valid, d2.clamp_min(torch.finfo(x.dtype).tiny).rsqrt(), torch.zeros_like(d2))
    return c, g, n, inv


def _angles_block(g: torch.Tensor, n: torch.Tensor, inv: torch.Tensor, rows: slice):
    """(dot, A) for the vertices ``rows``: dot_ijk = ⟨x_j − x_i, x_k − x_i⟩ = G_jk − G_ij − G_ik
    + n_i and A_ijk = dot_ijk / (d_ij d_ik). Returns two (b, B, B) tensors."""
    gi = g[rows]  # (b, B)
    dot = g.unsqueeze(0) - gi.unsqueeze(2) - gi.unsqueeze(1) + n[rows].view(-1, 1, 1)
    return dot, dot * inv[rows].unsqueeze(2) * inv[rows].unsqueeze(1)


def _block_rows(b: int) -> int:
    """Vertices per block: about 2^17 entries (512 KiB in float32) per (b, B, B) tensor."""
    return max(1, (1 << 17) // (b * b))


class _AngleLoss(torch.autograd.Function):
    r"""RKD-A with a hand-written backward, over blocks of vertices.

    With P_ijk = R_ijk / (d_ij d_ik), R_ijk = ∂L/∂A_ijk = clamp(A^s − A^t, −1, 1) / B³ (the Huber
    derivative, δ = 1), and S_ij = Σ_k R_ijk A_ijk, the chain rule through A = dot·inv_ij·inv_ik,
    dot_ijk = G_jk − G_ij − G_ik + n_i, inv_ij = (n_i + n_j − 2 G_ij)^(−1/2) and G = c cᵀ gives

        ∂L/∂G_jk += Σ_i P_ijk,   ∂L/∂G_ij −= Σ_k P_ijk + Σ_k P_ikj,   ∂L/∂n_i += Σ_jk P_ijk,
        ∂L/∂(d²_ij) = −inv_ij² S_ij  (A is symmetric in j, k, so both factors give S_ij),
        ∂L/∂c = (∂L/∂G + ∂L/∂Gᵀ) c,  with ∂L/∂G += diag(∂L/∂n),

    checked against autograd on :func:`triplet_angles` in the tests. The backward recomputes the
    angles block by block instead of saving B³ entries.
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ps, pt = _gram_parts(s), _gram_parts(t)
        b = s.shape[0]
        step = _block_rows(b)
        total = s.new_zeros(())
        for lo in range(0, b, step):
            rows = slice(lo, min(lo + step, b))
            a_s = _angles_block(*ps[1:], rows)[1]
            a_t = _angles_block(*pt[1:], rows)[1].to(a_s)
            total = total + F.smooth_l1_loss(a_s, a_t, reduction="sum")
        ctx.save_for_backward(*ps, *pt)
        return total / b**3

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        parts = {"s": saved[:4], "t": saved[4:]}  # (c, G, n, inv) of each side
        b = saved[0].shape[0]
        step = _block_rows(b)
        # ∂L/∂G, ∂L/∂n and ∂L/∂d² of each side that needs a gradient; the teacher's is -R.
        want = [k for k, needed in zip(parts, ctx.needs_input_grad, strict=True) if needed]
        acc = {k: (torch.zeros_like(parts[k][1]), torch.zeros_like(parts[k][2]),
                   torch.zeros_like(parts[k][1])) for k in want}  # fmt: skip
        for lo in range(0, b, step):
            rows = slice(lo, min(lo + step, b))
            a = {k: _angles_block(*parts[k][1:], rows)[1] for k in parts}
            r = (a["s"] - a["t"].to(a["s"])).clamp(-1.0, 1.0) * (grad / b**3)  # ∂L/∂A^s
            for k in want:
                dg, dn, m = acc[k]
                rk = r if k == "s" else -r
                inv = parts[k][3][rows]  # (b, B)
                p = rk * inv.unsqueeze(2) * inv.unsqueeze(1)  # (b, B, B)
                dg += p.sum(0)  # through G_jk
                dg[rows] -= p.sum(2) + p.sum(1)  # through G_ij and G_ik
                dn[rows] += p.sum((1, 2))  # through n_i
                m[rows] = -inv.pow(2) * (rk * a[k]).sum(2)  # ∂L/∂d²_ij
        grads = {}
        for k in want:
            dg, dn, m = acc[k]
            c = parts[k][0]
            dn = dn + m.sum(1) + m.sum(0)  # d²_ij = n_i + n_j − 2 G_ij
            dg = dg - 2 * m + torch.diag(dn)  # and n_i = G_ii
            dc = (dg + dg.T) @ c  # (B, D), G = c cᵀ
            grads[k] = dc - dc.mean(0, keepdim=True)  # through the centring
        return grads.get("s"), grads.get("t")


# ----------------------------------------------------------------------------- as a method


@dataclass(frozen=True)
class RKDParams:
    student_layer: str = param(
        "embedding", "Student layer", choices="student features",
        help="Flattened; its dimension need not match the teacher's.",
    )  # fmt: skip
    teacher_layer: str = param("embedding", "Teacher layer", choices="teacher features")
    distance_weight: float = param(
        RKD_DISTANCE_WEIGHT, "λ_D, weight of RKD-D", 0.0, 1e4, 5.0,
        help="25 in RepDistiller and mdistiller (Park et al. 2019 use 1 for metric learning).",
    )  # fmt: skip
    angle_weight: float = param(
        RKD_ANGLE_WEIGHT, "λ_A, weight of RKD-A", 0.0, 1e4, 5.0,
        help="50 in RepDistiller and mdistiller (Park et al. 2019 use 2 for metric learning).",
    )  # fmt: skip
    group: int = param(
        64, "Relations within groups of", 0, 100000,
        help="Distances and angles are taken among this many examples of the batch at a time: "
        "64 is RepDistiller's and mdistiller's batch size. 0: the whole batch (RKD-A costs B³).",
    )  # fmt: skip
    T: float = param(4.0, "Temperature T", 0.05, 100.0, 0.5)
    alpha: float = param(0.0, "α, weight of KD", 0.0, 1.0, 0.05, "(1 − α) goes to CE.")


class RKD(BatchRelation):
    """CE (and optionally KD) plus λ_D·RKD-D + λ_A·RKD-A on one pair of layers, two parts.

    The relations are taken within consecutive groups of ``group`` examples of the (shuffled)
    batch and the losses averaged over the groups: the reference code's batches of 64 see
    64³ triplets, and a batch of 128 in one piece would cost eight times as much in RKD-A.
    """

    def forward(self, student, teacher, batch):
        p = self.params
        s_all = student.features[p.student_layer]
        b = s_all.shape[0]
        size = p.group if 0 < p.group < b else b
        groups = [(i, min(i + size, b)) for i in range(0, b, size)]
        groups = [g for g in groups if g[1] - g[0] >= 2] or [(0, b)]  # a lone example: no pairs
        dist, angle = 0.0, 0.0
        for lo, hi in groups:
            s, t = s_all[lo:hi], teacher["feat"][lo:hi]
            if p.distance_weight > 0:
                dist = dist + rkd_distance_loss(s, t) / len(groups)
            if p.angle_weight > 0:
                angle = angle + rkd_angle_loss(s, t) / len(groups)
        parts = ce_and_kd(student.logits, teacher.get("logits"), batch.y, p.alpha, p.T)
        if p.distance_weight > 0:
            parts["rkd_d"] = p.distance_weight * dist
        if p.angle_weight > 0:
            parts["rkd_a"] = p.angle_weight * angle
        return parts
