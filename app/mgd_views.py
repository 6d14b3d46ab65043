"""The projector page's section on masked generative distillation (Yang et al. 2022): the two
masks MGD draws on a map of the run's shape, the stored mgd-mnist run's students, and how well
each MGD student's generator rebuilt the teacher's map, epoch by epoch.

:func:`mask_figure`, :func:`reconstruction` and :func:`reconstruction_figure` are plain
functions of tensors and a run's records; only :func:`show_mgd` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks, square_cells, subplots
from app.recorded import recorded_values
from app.relation_figures import _fig
from kdcore.losses.mgd import MGDGenerator, mgd_loss, mgd_mask
from kdcore.presets_mgd import MGDConfig

PRESET, METHOD = "mgd-mnist", "mgd"
SHAPE = (64, 7, 7)  # the CNN teacher's conv2, which the preset's generator rebuilds
COST = (
    "One epoch trains the CNN teacher (cached afterwards) and four thin-CNN students, the two "
    "MGD ones beside the teacher's live maps (too large to cache): about 50 s on a quiet 2-core "
    "CPU."
)
PAPER_LINE = (
    "Paper (ImageNet, ResNet-34 → ResNet-18): 69.90% on hard labels, 71.69% with MGD (Yang et "
    "al. 2022, official README)."
)
COLOURS = {"student_mgd": "#2f9e44", "student_mgd_pixels": "#862e9c"}


def masks(draw: int, channel_ratio: float, pixel_ratio: float) -> dict[str, np.ndarray]:
    """One image's two masks on a map of :data:`SHAPE`, from draw number ``draw``: which of the
    64 channels are kept (as an 8 × 8 grid, channel 0 top left) and which of the 7 × 7
    positions."""
    g = torch.Generator().manual_seed(draw)
    c, h, w = SHAPE
    ch = mgd_mask((1, c, h, w), channel_ratio, "channels", generator=g).reshape(8, 8)
    px = mgd_mask((1, c, h, w), pixel_ratio, "pixels", generator=g).reshape(h, w)
    return {"channels": ch.numpy(), "pixels": px.numpy()}


def mask_figure(m: dict[str, np.ndarray], ratios: dict[str, float]) -> go.Figure:
    """The two masks side by side, kept cells light, masked ones dark."""
    # two lines each: side by side on a phone, one line each ran into the other
    titles = [f"{k}: {int((1 - v).sum())} of {v.size}<br>masked ({ratios[k]:.0%} drawn)"
              for k, v in m.items()]  # fmt: skip
    fig = subplots(1, 2, subplot_titles=titles, horizontal_spacing=0.12)
    for col, v in enumerate(m.values(), start=1):
        fig.add_trace(go.Heatmap(z=v, zmin=0, zmax=1, colorscale=[[0, "#343a40"], [1, "#dbe4ff"]],
                                 showscale=False, xgap=2, ygap=2,
                                 hovertemplate="%{z:.0f} (1: kept)<extra></extra>"),
                      row=1, col=col)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False,
                     zeroline=False)  # fmt: skip
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False)
    square_cells(fig)
    return _fig(fig, height=300, margin=dict(l=20, r=20, t=60, b=10))


def reconstruction(result: dict) -> dict[str, list[float]]:
    """Each MGD student's generator error per epoch (relative to the teacher's map), as its
    epochs recorded it."""
    return recorded_values(result, "reconstruction")


def reconstruction_figure(series: dict[str, list[float]]) -> go.Figure:
    fig = _fig(xaxis_title="epoch", yaxis_title="generator's error", height=300,
               legend=LEGEND_BELOW)  # fmt: skip
    for name, ys in series.items():
        fig.add_scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=name,
                        line=dict(color=COLOURS.get(name), width=3))  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max(len(v) for v in series.values())))
    fig.update_yaxes(rangemode="tozero")
    return fig


def show_mgd(queue) -> None:
    """The section: the masks, the stored (or shipped) run, its generators' errors."""
    ui.prose(
        "A projector can be asked to do more than carry the student's map over to the "
        "teacher's. **Masked generative distillation** (Yang et al. 2022) hides a random part of "
        "the student's map first and asks a small generator, two 3 × 3 convolutions, to rebuild "
        "the teacher's *whole* map from the rest: the student is pushed to carry features from "
        "which the teacher's can be regenerated, not to copy them. The paper masks positions; "
        "the authors' classification code masks channels. Below, one draw of each on a map of "
        "the shape the run rebuilds, the teacher's 64 × 7 × 7 conv2."
    )
    draw = ui.url_int("Draw", "mgd_draw", 0, 999, 0, help="Another draw of both masks")
    cfg = MGDConfig()  # the preset's shares
    ratios = {"channels": cfg.channel_ratio, "pixels": cfg.pixel_ratio}
    ui.plot(mask_figure(masks(draw, ratios["channels"], ratios["pixels"]), ratios), key="mgd_mask")
    run = lab_ui.stored_students(queue, PRESET, METHOD, COST, ("ep_mgd", "run_mgd"), PAPER_LINE)
    result = (run.result or {}) if run is not None else {}
    series = reconstruction(result)
    if series:
        ui.plot(reconstruction_figure(series), key="mgd_rebuild")
        ends = "; ".join(f"{n} {v[0]:.3f} → {v[-1]:.3f}" for n, v in series.items())
        st.caption(
            "How far each generator's rebuilt map is from the teacher's, ‖T − G‖² / ‖T‖²: a "
            f"share of the map's own size, over each epoch's training batches: {ends}."
        )
    st.latex(  # in short lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}M = [\,u \ge \lambda\,],\quad u \sim U(0,1)\\ "
        r"G = W_2 * \mathrm{ReLU}\big(W_1 * (f_{align}(S) \odot M)\big)\\ "
        r"\mathcal L = \mathrm{CE} + \frac{\alpha}{N} \sum_n \lVert T_n - G_n \rVert^2"
        r"\end{gathered}"
    )


CODE = (mgd_mask, MGDGenerator.forward, mgd_loss)
