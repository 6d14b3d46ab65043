r"""Online feature distillation: peers that learn each other's features while both train.

**Online adversarial feature-map distillation** (AFD; Chung, Park, Kim & Kwak 2020, ICML,
arXiv:2002.01775). Deep mutual learning (:mod:`kdcore.losses.modes`) passes only class
probabilities between peers; AFD adds their features. Each network k is split into a feature
extractor :math:`G_k` and a classifier, and has a discriminator :math:`D_k` that scores a feature
vector between 0 ("fake": this network's own) and 1 ("real": its peer's). :math:`D_k` is trained
to tell the two apart; :math:`G_k` is trained to fool it, so its features come to be distributed
like the peer's. Matching distributions, not example by example, is the point: the paper reports
that this works better online than aligning the features directly with an L1 distance
(abstract), which :func:`l1_alignment_parts` computes as the baseline. With more than two
networks the paper trains them in a cycle, each learning from the one before it
(1 → 2 → ... → K → 1), which needs K discriminators instead of one per ordered pair; with two
networks the cycle is the two directions, and :func:`adversarial_parts` does the same.

Pure functions of tensors and the modules they name; :func:`online_feature_step` puts them on
the trainer (:func:`kdcore.train.fit` over a dict of peers).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from ..train import Batch, StepOutput
from .modes import mutual_learning_parts

ALIGNMENTS = ("adversarial", "l1", "none")  # AFD, the direct baseline, plain mutual learning


class FeatureDiscriminator(nn.Module):
    """:math:`D_k`: a feature vector (B, D) to a score (B,), 1 for "the peer's", 0 for "my own".

    The paper's discriminators are small convolutional nets over feature maps; the features
    here are MLP embeddings, so a two-layer MLP with a leaky ReLU. Its score is not squashed:
    a least-squares discriminator (LSGAN; Mao et al. 2017, arXiv:1611.04076) regresses it onto
    its targets, and a sigmoid would saturate on the embeddings' large activations and stop
    both players' gradients within an epoch (measured: every score pinned at 0 or 1)."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f.flatten(1)).squeeze(1)


def discriminator_loss(d_peer: torch.Tensor, d_own: torch.Tensor) -> torch.Tensor:
    r""":math:`D_k`'s loss, least squares:

    .. math::
        \mathcal{L}_{D_k} = \big[1 - D_k(G_{k-1}(x))\big]^2 + \big[D_k(G_k(x))\big]^2

    minimised when :math:`D_k` scores the peer's features 1 (real) and its own network's 0
    (fake). d_peer, d_own: :math:`D_k`'s scores (B,). Returns a scalar, each square
    averaged over the batch. The squared (least-squares GAN) form is how this project writes
    the paper's discriminator objective."""
    return (1 - d_peer).pow(2).mean() + d_own.pow(2).mean()


def generator_loss(d_own: torch.Tensor) -> torch.Tensor:
    r"""Network k's adversarial loss: fool its own discriminator,

    .. math::  \mathcal{L}_{G_k} = \big[1 - D_k(G_k(x))\big]^2

    d_own: :math:`D_k`'s scores (B,) of network k's features. Returns a scalar, mean over the
    batch; 0 when :math:`D_k` takes every one of them for the peer's."""
    return (1 - d_own).pow(2).mean()


def frozen(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with its parameters detached: the gradient reaches ``x`` and stops there,
    so a generator's loss trains the generator and not the discriminator it tries to fool."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, (x,))


def previous(names: list[str]) -> dict[str, str]:
    """Whom each network learns from in the paper's cycle: the one before it (the first from
    the last). With two networks: each other."""
    return {name: names[i - 1] for i, name in enumerate(names)}


def adversarial_parts(
    features: Mapping[str, torch.Tensor],
    discriminators: Mapping[str, nn.Module],
    weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    r"""AFD's feature terms for every network, as named loss parts: ``"<k>/adv"``,
    ``weight`` × :math:`\mathcal{L}_{G_k}` (its gradient reaches network k's features only,
    :math:`D_k` frozen), and ``"<k>/disc"``, :math:`\mathcal{L}_{D_k}` (the features detached,
    so it trains :math:`D_k` only). Both sums go into one optimiser step.

    features: {network: (B, D)}, every D equal (the paper adds a transfer layer where channel
    counts differ; the peers here have equal widths). discriminators: {network: its
    :math:`D_k`}. Network k's peer is the one before it in the cycle (:func:`previous`).
    """
    if len(features) < 2:
        raise ValueError("online feature distillation needs at least two networks")
    dims = {f.shape[1:] for f in features.values()}
    if len(dims) > 1:
        raise ValueError(f"the networks' features differ in shape ({sorted(map(tuple, dims))})")
    parts: dict[str, torch.Tensor] = {}
    for name, peer in previous(list(features)).items():
        d = discriminators[name]
        f, f_peer = features[name], features[peer].detach()
        parts[f"{name}/adv"] = weight * generator_loss(frozen(d, f))
        parts[f"{name}/disc"] = discriminator_loss(d(f_peer), d(f.detach()))
    return parts


def l1_alignment_parts(
    features: Mapping[str, torch.Tensor], weight: float = 1.0
) -> dict[str, torch.Tensor]:
    r"""The direct alignment AFD is compared with: each network's features pulled towards its
    peer's (detached), example by example,

    .. math::  \mathcal{L}_{L1,k} = \frac{1}{BD}\sum_{b,d} \big|G_k(x_b)_d - G_{k-1}(x_b)_d\big|

    as ``"<k>/l1"`` (× ``weight``). features: {network: (B, D)}, every D equal."""
    if len(features) < 2:
        raise ValueError("online feature distillation needs at least two networks")
    return {
        f"{name}/l1": weight * (features[name] - features[peer].detach()).abs().mean()
        for name, peer in previous(list(features)).items()
    }


def online_feature_step(
    discriminators: Mapping[str, nn.Module],
    T: float = 1.0,
    align: str = "adversarial",
    weight: float = 1.0,
):
    """The trainer's step for a dict of peers (``discriminators`` keyed as the peers): each
    peer's logits and embedding, deep mutual learning's CE + KL to every other peer
    (:func:`~kdcore.losses.modes.mutual_learning_parts`), then the features' term, from the
    peer before it in the cycle: AFD's adversarial pair, the L1 baseline, or nothing
    (``align``: "adversarial", "l1", "none"). With two peers both run both ways."""
    if align not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {align!r}; choose one of {', '.join(ALIGNMENTS)}")

    def step(peers: dict[str, nn.Module], batch: Batch) -> StepOutput:
        outs = {name: m.forward_features(batch.x) for name, m in peers.items()}
        logits = {name: o.logits for name, o in outs.items()}  # each (B, C)
        parts = mutual_learning_parts(logits, batch.y, T)
        feats = {name: o.features["embedding"] for name, o in outs.items()}  # each (B, D)
        if align == "adversarial":
            parts |= adversarial_parts(feats, discriminators, weight)
        elif align == "l1":
            parts |= l1_alignment_parts(feats, weight)
        return StepOutput(logits, parts)

    return step


@torch.no_grad()
def discriminator_scores(
    features: Mapping[str, torch.Tensor], discriminators: Mapping[str, nn.Module]
) -> dict[str, dict[str, float]]:
    """How each :math:`D_k` scores its own network's and its peer's features (means over the
    examples): near 0 and 1 while it tells them apart, closer together once it cannot.
    features: {network: (N, D)}."""
    out = {}
    for name, peer in previous(list(features)).items():
        d = discriminators[name]
        out[name] = {
            "own": round(float(d(features[name]).mean()), 4),
            "peer": round(float(d(features[peer]).mean()), 4),
        }
    return out
