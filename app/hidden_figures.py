"""Plotly figures for the TinyBERT page: which student layer learns which teacher layer, how much
of each teacher layer a linear map reads from each student layer, and the projector's singular
values epoch by epoch.

Plain functions of numbers: no Streamlit, no models. The mapping comes from the registry's entry
(:attr:`kdcore.lm_methods.LMMethod.hidden`), the rest from a stored run of ``tinybert-hidden``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.feature_figures import shades
from app.figures import COLORS, LEGEND_BELOW, TEMPLATE, decade_ticks, subplots

# a log axis's labels at 1, 2 and 5 of each decade: Plotly labelled every integer inside one
ONE_TWO_FIVE = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]


def layer_name(n: int) -> str:
    return "embeddings" if n == 0 else f"block {n}"


def short_name(n: int) -> str:
    """A heatmap's tick: five of "embeddings" and "block n" ran into each other in a half-width
    panel."""
    return "emb." if n == 0 else str(n)


def layer_map_figure(pairs: Sequence[tuple[int, int]], s_layers: int, t_layers: int) -> go.Figure:
    """The student's layers on the left, the teacher's on the right, each at its relative depth,
    and a line from student layer m to teacher layer g(m) for every mapped pair."""
    fig = go.Figure()
    depth_s = [m * t_layers / s_layers for m in range(s_layers + 1)]  # on the teacher's scale
    for m, n in pairs:
        fig.add_scatter(x=[0, 1], y=[depth_s[m], n], mode="lines", showlegend=False,
                        line=dict(color=COLORS["student"], width=3), hoverinfo="skip")  # fmt: skip
        fig.add_annotation(x=0.5, y=(depth_s[m] + n) / 2, text="W<sub>h</sub>", showarrow=False,
                           yshift=10, font=dict(color=COLORS["student"]))  # fmt: skip
    for side, x, layers, ys, colour in (
        ("student", 0, s_layers, depth_s, COLORS["student"]),
        ("teacher", 1, t_layers, list(range(t_layers + 1)), COLORS["teacher"]),
    ):
        names = [layer_name(k) for k in range(layers + 1)]
        fig.add_scatter(x=[x] * (layers + 1), y=ys, mode="markers+text", text=names,
                        textposition="middle left" if x == 0 else "middle right",
                        marker=dict(size=16, color=colour, symbol="square"), name=side,
                        hovertemplate=f"{side}: %{{text}}<extra></extra>")  # fmt: skip
    fig.update_xaxes(range=[-0.75, 1.75], visible=False)
    fig.update_yaxes(range=[-0.5, t_layers + 0.5], visible=False)
    fig.add_annotation(x=0, y=t_layers + 0.45, text="<b>student</b>", showarrow=False)
    fig.add_annotation(x=1, y=t_layers + 0.45, text="<b>teacher</b>", showarrow=False)
    fig.update_layout(template=TEMPLATE, height=300, showlegend=False, margin=dict(t=10, b=10))
    return fig


def readout_figure(panels: dict[str, Sequence[Sequence[float]]],
                   pairs: Sequence[tuple[int, int]]) -> go.Figure:  # fmt: skip
    """One heatmap per model ({title: R²[m][n]}), one above the other: rows the model's layers,
    columns the teacher's, each cell how much of that teacher layer a least-squares linear map
    reads from that layer of the model; the mapped pairs outlined."""
    # stacked, not side by side: two panels of five columns left a phone's cells too narrow for
    # their figures, and the two titles ran into one another
    n = len(panels)
    fig = subplots(n, 1, subplot_titles=list(panels), vertical_spacing=0.32 / max(n, 1),
                   shared_xaxes=True)  # fmt: skip
    for row, r2 in enumerate(panels.values(), 1):
        z = np.asarray(r2, dtype=float)
        fig.add_trace(
            go.Heatmap(z=z, x=[short_name(n) for n in range(z.shape[1])],
                       y=[short_name(m) for m in range(z.shape[0])], zmin=0.4, zmax=1.0,
                       colorscale="Blues", showscale=row == 1,
                       colorbar=dict(title=dict(text="R²", side="right"), thickness=12),
                       text=[[f"{v:.2f}" for v in line] for line in z], texttemplate="%{text}",
                       hovertemplate="student %{y} → teacher %{x}: R² %{z:.4f}<extra></extra>"),
            row=row, col=1,
        )  # fmt: skip
        for m, t in pairs:
            fig.add_shape(type="rect", x0=t - 0.5, x1=t + 0.5, y0=m - 0.5, y1=m + 0.5,
                          line=dict(color=COLORS["student"], width=3), row=row, col=1)  # fmt: skip
        fig.update_yaxes(title_text="student block", row=row, col=1)
    # "1", "2" read as numbers would make the axes linear and "emb." NaN: categories, said so
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text="teacher block", row=n, col=1)
    fig.update_yaxes(type="category")
    fig.update_layout(template=TEMPLATE, height=80 + 190 * n, margin=dict(t=50, b=10))
    return fig


def projector_figure(
    epochs: Sequence[Sequence[float]], others: dict[str, Sequence[float]] | None = None
) -> go.Figure:
    """The projector's singular values σ_i by index after each epoch (later epochs darker) and,
    dashed, the last epoch's of the ``others`` ({name: σ}) to compare; log y."""
    fig = subplots(1, 1)
    colours = shades(len(epochs), COLORS["student"])
    for e, (values, colour) in enumerate(zip(epochs, colours, strict=True)):
        y = np.asarray(values, dtype=float)
        # the first and the last epoch in the legend: twelve entries filled a phone's chart
        fig.add_scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines", name=f"epoch {e + 1}",
                        showlegend=e in (0, len(epochs) - 1),
                        line=dict(color=colour, width=2))  # fmt: skip
    for (name, values), colour in zip((others or {}).items(), (COLORS["teacher"], COLORS[
            "uniform"], COLORS["muted"]), strict=False):  # fmt: skip
        y = np.asarray(values, dtype=float)
        fig.add_scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines", name=name,
                        line=dict(color=colour, width=2, dash="dash"))  # fmt: skip
    every = np.concatenate([np.ravel(e) for e in [*epochs, *(others or {}).values()]] or [[1.0]])
    every = every[every > 0]
    lo, hi = (every.min(), every.max()) if every.size else (1.0, 1.0)
    ticks = [v for v in ONE_TWO_FIVE if lo / 2 <= v <= hi * 2]
    spread = decade_ticks(every) or {"tickvals": ticks}  # whole decades when it spans two
    fig.update_yaxes(type="log", title_text="σ", **spread)
    fig.update_xaxes(title_text="σ index (largest first)")
    fig.update_layout(template=TEMPLATE, height=380, legend=LEGEND_BELOW,
                      margin=dict(t=20, b=90))  # fmt: skip
    return fig
