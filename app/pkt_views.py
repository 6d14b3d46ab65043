"""The relations page's section on probabilistic knowledge transfer (Passalis & Tefas 2018): each
image's distribution over its neighbours in the batch, for the demo teacher and student, as a
table and as the chosen image's row, with how much of it falls on the image's own digit.

:func:`pkt_numbers` and :func:`row_figure` are plain functions of tensors and arrays; only
:func:`show_pkt` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig, digit_ticks, heatmap_pair
from kdcore.losses.pkt import PKT_WEIGHT, neighbour_probabilities, pkt_loss

PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): hard labels 72.50%, KD 73.33%, PKT 73.64% "
    "(Tian et al. 2020, Table 1)."
)


def pkt_numbers(t: torch.Tensor, s: torch.Tensor, labels: list[int], sel: int,
                self_pairs: bool) -> dict:  # fmt: skip
    """The teacher's p and the student's q (n, n), L_PKT, the selected image's own KL, and the
    share of its row on images of its digit (itself left out) under each model."""
    p, q = neighbour_probabilities(t, self_pairs), neighbour_probabilities(s, self_pairs)
    y = torch.tensor(labels)
    same = (y == y[sel]) & (torch.arange(len(y)) != sel)  # (n,)
    row_kl = float((torch.xlogy(p[sel], p[sel]) - torch.xlogy(p[sel], q[sel])).sum())
    off = [j for j in range(len(y)) if self_pairs or j != sel]
    return {
        "p": p.numpy(), "q": q.numpy(), "loss": float(pkt_loss(s, t, self_pairs)),
        "row_kl": row_kl,
        "own_digit": (float(p[sel][same].sum()), float(q[sel][same].sum())),
        "uniform_own": float(same.sum()) / max(len(off), 1),  # the same share if p were flat
        "spread": float(p[sel][off].max() / p[sel][off].min()),
    }  # fmt: skip


def row_figure(p: np.ndarray, q: np.ndarray, labels: list[int], sel: int) -> go.Figure:
    """The selected image's distribution over the batch under teacher and student, bars at each
    image's place in the batch; the uniform share 1/(n − 1) dotted."""
    n = len(labels)
    fig = _fig(xaxis_title="images of the batch (ticks: their digits)",
               yaxis_title="probability of being its neighbour", height=340, barmode="group",
               legend=LEGEND_BELOW)  # fmt: skip
    text = [f"#{j} ({labels[j]})" for j in range(n)]
    for name, row, colour in (("teacher p", p[sel], COLORS["teacher"]),
                              ("student q", q[sel], COLORS["student"])):  # fmt: skip
        fig.add_bar(x=list(range(n)), y=row, name=name, marker_color=colour, text=text,
                    textposition="none",
                    hovertemplate=f"{name}: %{{text}}<br>%{{y:.4f}}<extra></extra>")  # fmt: skip
    fig.add_hline(y=1.0 / max(n - 1, 1), line=dict(color=COLORS["uniform"], dash="dot"))
    at = digit_ticks(labels)
    fig.update_xaxes(tickmode="array", tickvals=at, ticktext=[labels[i] for i in at])
    return fig


def show_pkt(t: torch.Tensor, s: torch.Tensor, labels: list[int], sel: int) -> None:
    """The section for the page's batch: ``t``, ``s`` the demo teacher's and student's embeddings
    (n, D), ``sel`` the image marked in every view."""
    ui.prose(
        "Probabilistic knowledge transfer (Passalis & Tefas 2018) turns the cosines into "
        "probabilities: for each image, a distribution over the **other images of the batch**, "
        "how likely each one is its neighbour. The student learns each image's distribution by "
        "KL divergence. Like the cosine, it is blind to the length of every vector and to "
        "rotations; unlike RKD's distances, it sees where the origin is."
    )
    self_pairs = ui.url_toggle("Count each image as its own neighbour (the authors' code)",
                               "self")  # fmt: skip
    out = pkt_numbers(t, s, labels, sel, self_pairs)
    ui.plot(heatmap_pair(out["p"], out["q"], ("teacher p(j | i)", "student q(j | i)"), labels,
                         sel), key="pkt")  # fmt: skip
    ui.plot(row_figure(out["p"], out["q"], labels, sel), key="pkt_row")
    c1, c2, c3 = st.columns(3)
    c1.metric("L_PKT, demo student", f"{out['loss']:.2e}",
              f"β·L_PKT = {PKT_WEIGHT * out['loss']:.3f}", delta_color="off",
              delta_arrow="off")  # fmt: skip
    c2.metric("This image's KL(p ‖ q)", f"{out['row_kl']:.2e}")
    own_t, own_s = out["own_digit"]
    c3.metric(f"Its row's share on other {labels[sel]}s", f"{own_t:.0%} teacher",
              f"{own_s:.0%} student", delta_color="off", delta_arrow="off")  # fmt: skip
    why = (  # true of ReLU embeddings (the demo models'); said only where it holds
        " These embeddings come out of a ReLU, so no two point in opposite directions: every "
        "cosine is at least 0, every kernel between ½ and 1, and no row can spread further than "
        "2 to 1."
        if min(float(t.min()), float(s.min())) >= 0
        else ""
    )
    st.caption(
        f"The selected image's row: its most likely neighbour under the teacher is "
        f"{out['spread']:.2f} times as likely as its least likely.{why} The targets are close "
        "to uniform (dotted: 1/(n − 1)) and their KL tiny, which is why the benchmark weights "
        f"it by β = {PKT_WEIGHT:,.0f}. Its row's share on the other images of its digit would "
        f"be {out['uniform_own']:.0%} if the row were uniform."
    )
    st.latex(  # in lines, as the other equations: whole, a phone shrinks it below reading size
        r"\begin{gathered}K(a, b) = \tfrac12\Big(\frac{a^\top b}{\lVert a\rVert\,\lVert b\rVert}"
        r" + 1\Big)\\ p_{j|i} = \frac{K(t_j, t_i)}{\sum_{k \ne i} K(t_k, t_i)},\quad "
        r"q_{j|i} = \frac{K(s_j, s_i)}{\sum_{k \ne i} K(s_k, s_i)}\\"
        r"\mathcal L_{PKT} = \frac{1}{B^2}\sum_i \sum_{j \ne i} p_{j|i}"
        r"\log\frac{p_{j|i}}{q_{j|i}}\end{gathered}"
    )
