r"""Online relation distillation: peers that agree on how the images of a batch relate.

**Mutual contrastive learning** (MCL; Yang, An, Xu & Xu 2022, AAAI, arXiv:2104.12565), as the
authors' supervised CIFAR code computes it (github.com/winycg/MCL, ``Sup_MCL_Loss``). Each
network k gets an embedding head, :math:`e_k = \mathrm{normalize}(W_2\,\mathrm{ReLU}(W_1 h_k))`
(128-d, L2-normalised), and the batch's cosine similarities over a temperature :math:`\tau`
become contrastive distributions: row b of :math:`e_i e_j^\top/\tau` says which images of the
batch network j's embedding of image b is closest to, in network i's eyes. Four terms, each
summed over the networks or their ordered pairs:

* **VCL**, supervised contrastive learning within a network: with
  :math:`s = e_k e_k^\top/\tau`, :math:`-\frac{1}{|P(b)|}\sum_{p \in P(b)} \big[s_{bp} -
  \log\sum_{a \ne b} e^{s_{ba}}\big]`, averaged over anchors b; P(b) are the other images of
  b's class.
* **ICL**, the same across networks: anchors from network i, the rest from network j
  (:math:`s = e_i e_j^\top/\tau`), the image itself left out as in VCL.
* **Soft VCL**, the relational transfer: network i's similarity distribution over the batch
  matches network j's, :math:`T^2\,\mathrm{KL}(\mathrm{softmax}(s^{(j)}_b/T) \,\|\,
  \mathrm{softmax}(s^{(i)}_b/T))` with j's detached, for every i ≠ j.
* **Soft ICL**: the two cross-network distributions :math:`e_i e_j^\top` and
  :math:`e_j e_i^\top` match each other the same way.

The authors' weights: 0.1 VCL, 1 Soft VCL, 0.1 ICL, 1 Soft ICL, τ = 0.07, T = 3; no logit
distillation unless asked. Each term's name files it under the network whose anchors it scores.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import cosine_matrix
from ..train import Batch, StepOutput
from .kd import kd_loss


class EmbedHead(nn.Module):
    """A network's contrastive embedding: Linear, ReLU, Linear, then L2-normalised (B, D)."""

    def __init__(self, dim_in: int, dim_out: int = 128):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(dim_in, dim_out), nn.ReLU(), nn.Linear(dim_out, dim_out)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(h.flatten(1)), dim=1)


def sup_contrastive(sim: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Supervised contrastive loss of a (B, B) similarity matrix already over τ: for each
    anchor b, minus the mean over its positives p (same label, p ≠ b) of
    :math:`s_{bp} - \log\sum_{a \ne b} e^{s_{ba}}`; the mean over anchors with a positive
    (an anchor alone in its class in the batch has none and is left out). labels: (B,)."""
    b = len(labels)
    not_self = ~torch.eye(b, dtype=torch.bool, device=sim.device)
    positive = (labels[:, None] == labels[None, :]) & not_self  # (B, B)
    log_denominator = torch.logsumexp(sim.masked_fill(~not_self, float("-inf")), dim=1)
    log_prob = sim - log_denominator[:, None]
    count = positive.sum(1)
    has = count > 0
    if not has.any():
        raise ValueError("no image of the batch shares its class with another")
    mean_pos = (log_prob * positive).sum(1)[has] / count[has]
    return -mean_pos.mean()


def similarity_kl(sim: torch.Tensor, target: torch.Tensor, T: float = 3.0) -> torch.Tensor:
    r""":math:`T^2\,\mathrm{KL}(\mathrm{softmax}(t_b/T) \,\|\, \mathrm{softmax}(s_b/T))`,
    averaged over the rows b: the rows of ``sim`` (B, B) learn the distributions of the
    (detached) rows of ``target`` (B, B), as KD learns a teacher's classes."""
    return kd_loss(sim, target.detach(), T)


def mcl_parts(
    embeddings: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tau: float = 0.07,
    T: float = 3.0,
    weights: tuple[float, float, float, float] = (0.1, 1.0, 0.1, 1.0),
) -> dict[str, torch.Tensor]:
    """MCL's four terms for every network as named loss parts ``"<k>/vcl"``, ``"<k>/soft_vcl"``,
    ``"<k>/icl"`` and ``"<k>/soft_icl"``, weighted by ``weights`` (VCL, Soft VCL, ICL, Soft ICL).
    embeddings: {network: (B, D), L2-normalised}; labels: (B,)."""
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError("mutual contrastive learning needs at least two networks")
    w_vcl, w_soft_vcl, w_icl, w_soft_icl = weights
    e = embeddings
    intra = {k: e[k] @ e[k].T / tau for k in names}  # (B, B) each
    parts: dict[str, torch.Tensor] = {}
    for i in names:
        others = [j for j in names if j != i]
        parts[f"{i}/vcl"] = w_vcl * sup_contrastive(intra[i], labels)
        parts[f"{i}/soft_vcl"] = w_soft_vcl * sum(similarity_kl(intra[i], intra[j], T)
                                                  for j in others)  # fmt: skip
        cross = {j: e[i] @ e[j].T / tau for j in others}  # anchors from i, the rest from j
        parts[f"{i}/icl"] = w_icl * sum(sup_contrastive(cross[j], labels) for j in others)
        parts[f"{i}/soft_icl"] = w_soft_icl * sum(similarity_kl(cross[j], e[j] @ e[i].T / tau, T)
                                                  for j in others)  # fmt: skip
    return parts


def mcl_step(heads: Mapping[str, nn.Module], tau: float = 0.07, T: float = 3.0,
             weights: tuple[float, float, float, float] = (0.1, 1.0, 0.1, 1.0)):  # fmt: skip
    """The trainer's step for a dict of peers (``heads`` keyed as the peers): each peer's
    cross-entropy, and MCL's terms on its head's embedding of its last hidden layer."""

    def step(peers: dict[str, nn.Module], batch: Batch) -> StepOutput:
        outs = {name: m.forward_features(batch.x) for name, m in peers.items()}
        logits = {name: o.logits for name, o in outs.items()}  # each (B, C)
        parts = {f"{name}/ce": F.cross_entropy(z, batch.y) for name, z in logits.items()}
        emb = {name: heads[name](o.features["embedding"]) for name, o in outs.items()}
        return StepOutput(logits, parts | mcl_parts(emb, batch.y, tau, T, weights))

    return step


@torch.no_grad()
def relation_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """How differently two networks relate the same images: the mean absolute difference of
    their cosine-similarity matrices (:func:`kdcore.geometry.cosine_matrix`) over the images'
    embeddings a (N, D) and b (N, D'), off the diagonal. 0 when they see every pair alike;
    widths may differ."""
    ca, cb = cosine_matrix(a), cosine_matrix(b)  # (N, N) each
    off = ~torch.eye(len(a), dtype=torch.bool, device=a.device)
    return float((ca - cb).abs()[off].mean())
