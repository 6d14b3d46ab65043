"""What the teacher sees while the student learns (Beyer, Zhai, Royer, Markeeva, Anil &
Kolesnikov 2022, "Knowledge distillation: A good teacher is patient and consistent", §3).

The student's input is augmented every step. The teacher's target for it can come from:

- ``fixed``: the teacher's prediction on the clean image, computed once and cached (the usual
  shortcut, and what :mod:`kdcore.distill` does without augmentation);
- ``independent``: the teacher's prediction on its own random view of the image (another shift);
- ``consistent``: the teacher's prediction on the very view the student sees;
- ``function-matching``: consistent, on views mixed by mixup, so both models are compared on
  images between the training images as well.

The paper's finding: only the consistent views let the student match the teacher's *function*
rather than a few fixed targets, and they need a long ("patient") schedule to do it.

:func:`view_for` gives the per-batch inputs of the two models for each kind; the distillation
step (:func:`kdcore.distill.make_step`) calls it, so any registered method can be taught this way.
"""

from __future__ import annotations

import torch

from .data import random_shift
from .distill import View
from .train import Batch

KINDS = ("fixed", "independent", "consistent", "function-matching")


def mixup(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mixed with another of the batch (a random pairing): λ·x_i + (1 − λ)·x_j, one
    λ ~ U(0, 1) per image (mixup's Beta(1, 1); Zhang et al. 2018 draw one λ per batch). Drawn
    from ``generator`` (on the CPU), so a seed gives the same mixes. x: (B, C, H, W)."""
    b = x.shape[0]
    pair = torch.randperm(b, generator=generator).to(x.device)
    lam = torch.rand(b, generator=generator).to(x.device).view(b, *([1] * (x.dim() - 1)))
    return lam * x + (1 - lam) * x[pair]


def view_for(kind: str, x_train: torch.Tensor, shift: int, seed: int) -> View | None:
    """The (student, teacher) inputs of a batch for ``kind`` (:data:`KINDS`), or None where the
    trainer's own path already does it: ``fixed`` (targets cached on the clean images, passed to
    :func:`kdcore.distill.distill`) and ``consistent`` (the teacher run on the student's jittered
    batch). ``x_train`` is the clean transfer set the batch indexes; ``shift`` the trainer's
    jitter (``TrainConfig.augment_shift``); the teacher's own draws use a generator of ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown teacher view {kind!r}; choose one of {', '.join(KINDS)}")
    if kind in ("fixed", "consistent"):
        return None
    gen = torch.Generator(device="cpu").manual_seed(seed + 7919)  # not the trainer's stream
    if kind == "independent":
        if shift <= 0:
            raise ValueError("an independent view needs the inputs jittered (augment_shift > 0)")
        return lambda batch: (batch.x, random_shift(x_train[batch.index], shift, gen))

    def matched(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mixed = mixup(batch.x, gen)
        return mixed, mixed

    return matched


def teacher_views(
    x: torch.Tensor, partner: torch.Tensor, shift: int, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """For one image ``x`` (1, C, H, W), what the student and the teacher are shown under each
    kind (:data:`KINDS`), drawn as one training step would draw them from ``seed``: the
    student's jittered view, the teacher's input (the clean image, another view, the same view)
    and, for function matching, the student's view mixed with ``partner``'s (another training
    image, jittered too), shown to both."""
    gen = torch.Generator().manual_seed(seed)
    seen = random_shift(x, shift, gen)
    other = random_shift(x, shift, gen)
    lam = float(torch.rand(1, generator=gen))
    mixed = lam * seen + (1 - lam) * random_shift(partner, shift, gen)
    return {
        "fixed": (seen, x),
        "independent": (seen, other),
        "consistent": (seen, seen),
        "function-matching": (mixed, mixed),
    }
