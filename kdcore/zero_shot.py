"""Zero-shot (data-free) distillation: Data Impressions crafted from the teacher alone.

Nayak, Mopuri, Shaj, Babu & Chakraborty (ICML 2019, arXiv:1905.08114) distil without a single
training image. From the teacher's last layer they read how alike the classes are, sample
plausible softmax outputs for each class from a Dirichlet distribution shaped by it, and
optimise random-noise images until the teacher's softened output (at T = 20) matches each
sampled vector: the *Data Impressions*. The student is then distilled on those impressions
alone. Following the authors' released code (``dirichmat.py`` and the impression script of
github.com/vcl-iisc/ZSKD):

1. class similarity: the cosine similarity of the last layer's class templates (its weight
   rows), min-max normalised over the whole matrix;
2. concentration for class c: β times row c min-max normalised, plus 1e-4, with half the
   impressions at β = 1 and half at β = 0.1 (the paper's two scales: spread out and peaked);
3. impressions: images initialised uniform in [0, 1], Adam on the cross-entropy between the
   sampled vector and the teacher's softmax at T = 20, kept in [0, 1] (the authors rescale each
   step; here each pixel is clamped), then normalised as the data set's images are.

Pure torch; no Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .smoothing import head_of

T_IMPRESSION = 20.0  # the temperature the authors match the sampled vectors at
BETAS = (1.0, 0.1)  # the paper's two concentration scales, half of the impressions each


def class_similarity(weight: torch.Tensor) -> torch.Tensor:
    """(K, K): the cosine similarity of the class templates ``weight`` (K, D), min-max
    normalised over the whole matrix to [0, 1] (the authors' ``dirichmat.py``)."""
    w = weight.detach().to(torch.float64)
    wn = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = wn @ wn.T
    return (sim - sim.min()) / (sim.max() - sim.min()).clamp_min(1e-12)


def concentration(similarity: torch.Tensor, cls: int, beta: float) -> torch.Tensor:
    """The Dirichlet concentration (K,) for impressions of class ``cls``: β times its row of
    ``similarity`` min-max normalised, plus 1e-4 so every entry is positive. The class itself
    (similarity 1 with itself) gets the most mass."""
    if beta <= 0:
        raise ValueError(f"β must be positive, got {beta}")
    row = similarity[cls]
    span = (row.max() - row.min()).clamp_min(1e-12)
    return beta * (row - row.min()) / span + 1e-4


def sample_targets(
    similarity: torch.Tensor, cls: int, beta: float, n: int, seed: int
) -> torch.Tensor:
    """``n`` softmax vectors (n, K) for class ``cls`` drawn from Dir(concentration), float32;
    the same seed gives the same vectors (torch's Dirichlet takes no generator: it draws under
    a forked, seeded global generator, which is left as it was)."""
    alpha = concentration(similarity, cls, beta)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Dirichlet(alpha).sample((n,)).float()


def impression_loss(teacher_logits: torch.Tensor, targets: torch.Tensor, T: float) -> torch.Tensor:
    """Cross-entropy between each sampled vector y (B, K) and the teacher's softmax at T:
    −Σ_k y_k log softmax(z / T)_k, averaged over the batch (the authors' impression loss)."""
    return -(targets * F.log_softmax(teacher_logits / T, dim=1)).sum(1).mean()


def craft_impressions(
    teacher: torch.nn.Module,
    targets: torch.Tensor,
    shape: tuple[int, int, int],
    normalise: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    generator: torch.Generator,
    T: float = T_IMPRESSION,
) -> tuple[torch.Tensor, float]:
    """Images (B, *shape), normalised by ``normalise``, whose teacher output at T matches
    ``targets`` (B, K): uniform noise in [0, 1] optimised by Adam for ``steps`` steps, clamped
    to [0, 1] after each. The teacher is used in eval mode, its weights frozen meanwhile, and
    left as it was. Returns the images and the last step's loss."""
    was = teacher.training
    teacher.eval()
    params = list(teacher.parameters())
    wanted = [q.requires_grad for q in params]
    for q in params:  # the backward pass then reaches the pixels only: no weight gradients
        q.requires_grad_(False)
    pixels = torch.rand((len(targets), *shape), generator=generator, device=targets.device)
    pixels.requires_grad_(True)
    opt = torch.optim.Adam([pixels], lr=lr)
    loss = torch.tensor(float("nan"))
    try:
        for _ in range(steps):
            loss = impression_loss(teacher(normalise(pixels)), targets, T)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                pixels.clamp_(0.0, 1.0)
    finally:
        teacher.train(was)
        for q, w in zip(params, wanted, strict=True):
            q.requires_grad_(w)
    return normalise(pixels.detach()), float(loss.detach())


def teacher_similarity(teacher: torch.nn.Module) -> torch.Tensor:
    """:func:`class_similarity` of ``teacher``'s last layer (every classifier here has one)."""
    return class_similarity(head_of(teacher).weight)
