"""Plotly figures and pictures for the zero-shot distillation page, from numpy arrays.

No Streamlit and no tensor maths here: the page crafts with :mod:`kdcore.zero_shot` and passes
plain arrays in.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.figures import square_cells
from app.relation_figures import _fig


def similarity_figure(sim: np.ndarray) -> go.Figure:
    """The teacher's class similarity (K, K) as a heatmap, digits on both axes, square cells."""
    k = len(sim)
    fig = go.Figure(go.Heatmap(z=sim, x=list(range(k)), y=list(range(k)), zmin=0, zmax=1,
                               colorscale="Blues", colorbar=dict(thickness=12),
                               hovertemplate="%{y} and %{x}: %{z:.3f}<extra></extra>"))  # fmt: skip
    fig.update_xaxes(tickmode="linear", dtick=1, title="digit")
    fig.update_yaxes(tickmode="linear", dtick=1, title="digit", autorange="reversed")
    return square_cells(_fig(fig, height=380, margin=dict(l=50, r=20, t=20, b=50)))


def image_grid(images: np.ndarray, scale: int = 2, gap: int = 2) -> np.ndarray:
    """uint8 images (rows, cols, H, W) tiled into one (rows·(H·scale + gap), ...) uint8 picture,
    each upscaled ``scale`` times, white gaps between them."""
    rows, cols, h, w = images.shape
    big = images.repeat(scale, axis=2).repeat(scale, axis=3)
    hh, ww = h * scale + gap, w * scale + gap
    out = np.full((rows * hh - gap, cols * ww - gap), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * hh : r * hh + h * scale, c * ww : c * ww + w * scale] = big[r, c]
    return out
