"""A user's own digit, prepared the way MNIST's digits were, so the demo models can read it.

LeCun, Cortes & Burges describe the MNIST preprocessing: each digit was size-normalised to fit a
20x20 box keeping its aspect ratio (anti-aliased, hence grey levels), then placed in a 28x28
image so that its centre of mass sits at the centre. :func:`mnist_like` repeats those steps on an
image of any size and polarity (a black-on-white drawing or photo, or white-on-black);
:func:`normalise` then applies the data set's mean and std, as :mod:`kdcore.data` does at load.
Pure torch, no Streamlit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcore.data import STATS

SIZE = 28  # MNIST's image side, pixels
BOX = 20  # the side of the box the digit is scaled to fit (LeCun et al.)
CENTRE = 14.0  # where MNIST's centres of mass sit, in pixel indices (mean 14.0, sd 0.3)
INK = 0.1  # a pixel counts as ink when above this fraction of the brightest one


class NoDigit(ValueError):
    """The image has no ink to read (blank or a single flat colour)."""


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """(H, W), (1, H, W), (3, H, W) or (4, H, W), uint8 or float in [0, 1] -> (H, W) float in
    [0, 1]. Colour uses the ITU-R 601 luma weights; transparent pixels count as white paper."""
    x = image.detach().to(torch.float32)
    if image.dtype == torch.uint8:
        x = x / 255.0
    if x.ndim == 2:
        return x
    if x.ndim != 3 or x.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"expected (H, W) or (C, H, W) with C <= 4, got {tuple(image.shape)}")
    alpha = x[-1] if x.shape[0] in (2, 4) else None
    colour = x[:-1] if alpha is not None else x
    if colour.shape[0] == 3:
        gray = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    else:
        gray = colour[0]
    if alpha is not None:
        gray = gray * alpha + (1.0 - alpha)  # composite over white
    return gray


def mnist_like(image: torch.Tensor) -> torch.Tensor:
    """Any image of one digit -> (1, 28, 28) float in [0, 1], white ink on black, as in MNIST.

    Steps: grayscale; invert when the border is brighter than the middle (dark ink on paper);
    crop to the bounding box of the ink; scale the longer side to 20 pixels, keeping the aspect
    ratio (area averaging, which anti-aliases when shrinking); paste into 28x28 so that the
    centre of mass lands on pixel (14, 14), where MNIST's do, clipped to stay inside the image.
    Raises :class:`NoDigit` when there is no ink.
    """
    gray = grayscale(image)  # (H, W)
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > gray.mean():  # paper is bright: make the ink the bright part
        gray = 1.0 - gray
    gray = (gray - gray.min()).clamp(min=0)
    peak = float(gray.max())
    if peak < 1e-3:
        raise NoDigit("the image is blank: draw or upload a digit")
    gray = gray / peak
    rows = torch.nonzero((gray > INK).any(1)).flatten()
    cols = torch.nonzero((gray > INK).any(0)).flatten()
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    mode = "area" if scale < 1 else "bilinear"
    extra = {} if mode == "area" else {"align_corners": False}
    small = F.interpolate(crop[None, None], size=(new_h, new_w), mode=mode, **extra)[0, 0]
    small = small.clamp(0, 1)
    mass = small.sum()
    ys = torch.arange(new_h, dtype=torch.float32)
    xs = torch.arange(new_w, dtype=torch.float32)
    cy = float((small.sum(1) * ys).sum() / mass)  # centre of mass inside the scaled digit
    cx = float((small.sum(0) * xs).sum() / mass)
    top = min(max(round(CENTRE - cy), 0), SIZE - new_h)
    left = min(max(round(CENTRE - cx), 0), SIZE - new_w)
    out = torch.zeros(SIZE, SIZE)
    out[top : top + new_h, left : left + new_w] = small
    return out[None]  # (1, 28, 28)


def normalise(pixels: torch.Tensor, dataset: str = "mnist") -> torch.Tensor:
    """(1, 28, 28) pixels in [0, 1] -> (1, 1, 28, 28) with the data set's mean and std, exactly
    what :mod:`kdcore.data` feeds the models (a batch of one)."""
    (mean,), (std,) = STATS[dataset]
    return ((pixels - mean) / std)[None]
