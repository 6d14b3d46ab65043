"""The geometry of a batch of embeddings, as relation-based distillation sees it.

Pure tensor functions for the geometry page and the ``rkd-mnist`` preset: the RKD-normalised
distance matrix, cosine similarities, the distribution of triplet angles, a 2-D PCA view, one
number for how far a student's geometry is from its teacher's, and the transforms (rotation,
scale, translation) under which RKD does not change while a point-wise L2 loss does. Embeddings
are (B, D); the student's D and the teacher's may differ. Nothing here plots.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses.rkd import normalised_distances, rkd_angle_loss, rkd_distance_loss, triplet_angles


def distance_matrix(emb: torch.Tensor) -> torch.Tensor:
    """RKD's distance potential: pairwise distances over their mean (Park et al. 2019, Eq. 3-4).

    (B, D) -> (B, B), zero diagonal, off-diagonal mean 1.
    """
    return normalised_distances(emb.detach().float())


def cosine_matrix(emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows: (B, D) -> (B, B), ones on the diagonal (a zero row
    gives zeros)."""
    x = F.normalize(emb.detach().float().reshape(emb.shape[0], -1), dim=1)  # (B, D), unit rows
    return x @ x.t()


def angle_histogram(emb: torch.Tensor, bins: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution of RKD's angle potential: cos∠(x_j, x_i, x_k) over all triplets of
    distinct i, j, k (the vertex i first, as :func:`kdcore.losses.rkd.triplet_angles`).

    (B, D) -> (counts (bins,) as fractions summing to 1, edges (bins + 1,) over [-1, 1]).
    B(B-1)(B-2) triplets, all at once: 2 million for B = 128.
    """
    a = triplet_angles(emb.detach().float())  # (B, B, B)
    b = a.shape[0]
    i, j, k = torch.meshgrid(torch.arange(b), torch.arange(b), torch.arange(b), indexing="ij")
    distinct = (i != j) & (i != k) & (j != k)  # (B, B, B)
    values = a[distinct.to(a.device)].clamp(-1.0, 1.0).cpu()
    counts = torch.histc(values, bins=bins, min=-1.0, max=1.0)
    return counts / counts.sum().clamp_min(1.0), torch.linspace(-1.0, 1.0, bins + 1)


def pca_2d(emb: torch.Tensor) -> torch.Tensor:
    """The batch on its first two principal axes, centred: (B, D) -> (B, 2), by SVD. Signs are
    fixed so that each axis's largest coordinate is positive (SVD leaves them arbitrary)."""
    x = emb.detach().float().reshape(emb.shape[0], -1)
    x = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)  # vh (min(B, D), D)
    proj = x @ vh[:2].t()  # (B, 2) (B, 1) if D = 1: padded below
    if proj.shape[1] < 2:
        proj = F.pad(proj, (0, 2 - proj.shape[1]))
    flip = torch.sign(proj.gather(0, proj.abs().argmax(0, keepdim=True)))  # (1, 2)
    return proj * torch.where(flip == 0, torch.ones_like(flip), flip)


def pca_pair(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> dict[str, torch.Tensor]:
    """2-D views of both embeddings, side by side.

    Each is fitted on **its own** embedding: the two live in spaces of different dimension, so
    the teacher's axes cannot be applied to the student. The student's view is then turned by
    the 2x2 orthogonal map (orthogonal Procrustes) that best lays it over the teacher's, and
    both are scaled to unit RMS radius, so the same example sits in the same place when the
    geometries agree. Returns {"student": (B, 2), "teacher": (B, 2)}.
    """
    t, s = pca_2d(teacher_emb), pca_2d(student_emb)
    t = t / t.pow(2).sum(1).mean().sqrt().clamp_min(1e-12)
    s = s / s.pow(2).sum(1).mean().sqrt().clamp_min(1e-12)
    u, _, vh = torch.linalg.svd(s.t() @ t)  # argmin_R ||s R - t||, R orthogonal: R = U V^T
    return {"student": s @ (u @ vh), "teacher": t}


def geometry_gap(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> float:
    """Mean |ψ_D(student) - ψ_D(teacher)| over the distinct pairs i ≠ j: how far apart the two
    normalised distance matrices are (0 when the geometries agree up to rotation, translation
    and scale). (B, D_s), (B, D_t) -> a float."""
    ds, dt = distance_matrix(student_emb), distance_matrix(teacher_emb)  # (B, B) each
    b = ds.shape[0]
    off = ~torch.eye(b, dtype=torch.bool, device=ds.device)
    return float((ds - dt).abs()[off].mean())


def apply_transform(
    emb: torch.Tensor,
    angle: float = 0.0,
    scale: float = 1.0,
    shift: float = 0.0,
    random_rotation: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Rotate, scale and translate a batch of embeddings, as a whole.

    The rotation turns the plane of the batch's first two principal axes by ``angle`` degrees
    (the rest of the space is left as it is), or, with ``random_rotation``, applies one random
    orthogonal map of the whole space (fixed by ``seed``). Then every row is multiplied by
    ``scale`` and moved by ``shift`` times the batch's RMS radius along the first principal axis.
    RKD's distances and angles are unchanged by all three (scale > 0). (B, D) -> (B, D).
    """
    x = emb.detach().float().reshape(emb.shape[0], -1)
    centre = x.mean(0, keepdim=True)  # (1, D)
    xc = x - centre
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    axis = vh[0]  # (D,) first principal direction
    if random_rotation:
        gen = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=gen))
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # Haar-distributed (Mezzadri 2007)
        xc = xc @ q.to(x.device)
    elif angle and x.shape[1] >= 2:
        a, b = vh[0], vh[1]  # (D,) each: the plane to turn
        pa, pb = xc @ a, xc @ b  # (B,) coordinates in the plane
        th = math.radians(angle)
        na = math.cos(th) * pa - math.sin(th) * pb
        nb = math.sin(th) * pa + math.cos(th) * pb
        xc = xc + (na - pa).unsqueeze(1) * a + (nb - pb).unsqueeze(1) * b
    radius = x.sub(centre).pow(2).sum(1).mean().sqrt()
    return (centre + xc) * scale + shift * radius * axis


def rkd_vs_l2(
    student_emb: torch.Tensor, teacher_emb: torch.Tensor, transform: dict
) -> dict[str, float]:
    """The invariance demo: RKD's two losses to the teacher, and a point-wise L2 loss, after
    ``apply_transform(student_emb, **transform)``.

    The teacher's embedding has another dimension than the student's, so no L2 loss can compare
    them without a projector; the L2 here is the mean squared error between the transformed
    student and the untransformed one, i.e. what a point-matching loss (FitNets' hint) would add
    if the untransformed embedding were its target. RKD stays put while L2 grows.
    Returns {"rkd_distance", "rkd_angle", "l2"} as floats (unweighted).
    """
    moved = apply_transform(student_emb, **transform)
    s = student_emb.detach().float().reshape(student_emb.shape[0], -1)
    t = teacher_emb.detach().float()
    return {
        "rkd_distance": float(rkd_distance_loss(moved, t)),
        "rkd_angle": float(rkd_angle_loss(moved, t)),
        "l2": float(F.mse_loss(moved, s)),
    }
