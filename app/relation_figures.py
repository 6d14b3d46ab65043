"""Plotly figures for the geometry (relation-based) and DKD pages, from numpy arrays.

No Streamlit and no tensor maths here: the pages compute with :mod:`kdcore.geometry` and
:mod:`kdcore.losses.dkd` and pass plain arrays in.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from app.figures import (
    COLORS,
    LEGEND_BELOW,
    TEMPLATE,
    decade_ticks,
    epoch_ticks,
    square_cells,
    subplots,
)

DIGITS = ("#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4",
          "#0b7285", "#862e9c", "#f59f00", "#495057", "#74b816")  # fmt: skip
MODEL = {"student_hard": "#868e96", "student_kd": COLORS["teacher"], "student_rkd": "#e8590c",
         "student_dkd": "#e8590c", "student_dist": "#e8590c", "teacher": "#1f2430"}  # fmt: skip
# for the students MODEL does not name, in order
OTHERS = (COLORS["student"], COLORS["ce"], "#2f9e44", "#ae3ec9", "#1098ad")


def model_colours(names: list[str]) -> dict[str, str | None]:
    """Each model's colour in a stored run's charts: MODEL's where it names one, else the next of
    OTHERS not already taken (the theme's cycle would give a fourth model the hard-label
    student's grey), so a student has one colour in every chart of its run."""
    spare = iter(c for c in OTHERS if c not in {MODEL.get(n) for n in names})
    return {n: MODEL.get(n) or next(spare, None) for n in names}


def _fig(fig: go.Figure | None = None, **layout) -> go.Figure:
    fig = fig or go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def _mark(fig: go.Figure, n: int, sel: int, col: int) -> None:
    """Outline row and column ``sel`` of an n x n heatmap in subplot ``col``."""
    for x0, x1, y0, y1 in ((-0.5, n - 0.5, sel - 0.5, sel + 0.5), (sel - 0.5, sel + 0.5, -0.5,
                                                                    n - 0.5)):  # fmt: skip
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color="#e03131", width=2),
                      row=1, col=col)  # fmt: skip


def digit_ticks(labels: list[int], most: int = 12) -> list[int]:
    """Which rows of an n x n matrix get their image's digit as a tick: the first of each run
    of one digit (a batch sorted by class: one tick per class), or every k-th row where that
    would be more than ``most`` (a random batch: a label per row ran into its neighbours on a
    narrow screen, and 20 of them still did in a phone's 140-pixel-wide panel; the hover names
    every cell)."""
    starts = [i for i in range(len(labels)) if i == 0 or labels[i] != labels[i - 1]]
    if len(starts) <= most:
        return starts
    return list(range(0, len(labels), math.ceil(len(labels) / most)))


def heatmap_pair(
    left: np.ndarray, right: np.ndarray, titles: tuple[str, str], labels: list[int],
    selected: int | None = None, zmin: float = 0.0, zmax: float | None = None,
    colorscale: str = "Viridis",
) -> go.Figure:  # fmt: skip
    """Two n x n matrices side by side on one colour scale; ticks are the images' digits."""
    zmax = float(max(left.max(), right.max())) if zmax is None else zmax
    fig = subplots(1, 2, subplot_titles=titles, horizontal_spacing=0.08)
    text = [[f"#{i} ({labels[i]}) – #{j} ({labels[j]})" for j in range(len(labels))]
            for i in range(len(labels))]  # fmt: skip
    for col, z in ((1, left), (2, right)):
        fig.add_trace(
            go.Heatmap(z=z, zmin=zmin, zmax=zmax, colorscale=colorscale, text=text,
                       hovertemplate="%{text}<br>%{z:.3f}<extra></extra>",
                       showscale=col == 2),
            row=1, col=col,
        )  # fmt: skip
        if selected is not None:
            _mark(fig, len(labels), selected, col)
    at = digit_ticks(labels)
    ticks = dict(tickmode="array", tickvals=at, ticktext=[labels[i] for i in at],
                 tickfont=dict(size=8))  # fmt: skip
    fig.update_xaxes(**ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    square_cells(fig)
    return _fig(fig, height=420, margin=dict(l=30, r=20, t=40, b=30))


def angle_histogram_figure(edges: np.ndarray, teacher: np.ndarray, student: np.ndarray):
    centres = (edges[:-1] + edges[1:]) / 2
    fig = _fig(xaxis_title="cos of the angle at the vertex", yaxis_title="share of triplets",
               height=320, barmode="overlay")  # fmt: skip
    for name, counts, colour in (("teacher", teacher, COLORS["teacher"]),
                                 ("student", student, COLORS["student"])):  # fmt: skip
        fig.add_bar(x=centres, y=counts, name=name, marker_color=colour, opacity=0.55)
    return fig


def pca_figure(teacher: np.ndarray, student: np.ndarray, labels: list[int], selected: int):
    """Both 2-D views, points coloured by digit, the selected image ringed in both."""
    # two lines: on a phone the one-line title ran past the chart's right edge
    fig = subplots(1, 2, subplot_titles=("teacher", "student (turned<br>onto the teacher)"))
    hover = [f"#{i}: digit {d}" for i, d in enumerate(labels)]
    for col, xy in ((1, teacher), (2, student)):
        fig.add_trace(
            go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", text=[str(d) for d in labels],
                       textfont=dict(size=9, color="white"), hovertext=hover, hoverinfo="text",
                       marker=dict(size=14, color=[DIGITS[d] for d in labels]), showlegend=False),
            row=1, col=col,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=[xy[selected, 0]], y=[xy[selected, 1]], mode="markers", hoverinfo="skip",
                       marker=dict(size=26, color="rgba(0,0,0,0)",
                                   line=dict(color="#e03131", width=3)), showlegend=False),
            row=1, col=col,
        )  # fmt: skip
    square_cells(fig)  # each view's distances true to scale
    return _fig(fig, height=400)


def invariance_figure(angles: np.ndarray, rkd: np.ndarray, l2: np.ndarray, current: float):
    """RKD (flat) and L2 (moving) as the student's embedding is turned, at the chosen scale and
    shift; the chosen angle marked."""
    fig = _fig(xaxis_title="rotation (degrees)", yaxis_title="loss", height=300)
    fig.add_scatter(x=angles, y=rkd, name="RKD-D + RKD-A (to the teacher)",
                    line=dict(color=COLORS["teacher"], width=3))  # fmt: skip
    fig.add_scatter(x=angles, y=l2, name="L2 (to the unmoved student)",
                    line=dict(color=COLORS["student"], width=3))  # fmt: skip
    fig.add_vline(x=current, line=dict(color="#868e96", dash="dot"))
    return fig


def gap_figure(gaps: dict[str, list[float]], epoch: int,
               title: str = "mean |D_student − D_teacher|") -> go.Figure:  # fmt: skip
    """A per-epoch gap to the teacher for each student of a stored run (rkd-mnist's geometry
    gap by default), the chosen epoch dotted."""
    fig = _fig(xaxis_title="epoch", yaxis_title=title, height=320)
    colours = model_colours(list(gaps))
    for name, values in gaps.items():
        fig.add_scatter(x=list(range(1, len(values) + 1)), y=values, name=name,
                        mode="lines+markers", line=dict(color=colours[name]))  # fmt: skip
    fig.add_vline(x=epoch, line=dict(color="#868e96", dash="dot"))
    return fig


def dkd_scatter_figure(p_t: np.ndarray, nckd: np.ndarray, chosen: tuple[float, float]):
    """NCKD per image against the teacher's p_t, raw and as KD weights it ((1 − p_t)·NCKD)."""
    # two lines: in one the title was wider than a phone's plot and cut off at both ends
    fig = _fig(xaxis_title="teacher's probability of the true class,<br>p_t (at T)",
               yaxis_title="T²·KL, per image", yaxis_type="log", height=380)  # fmt: skip
    floor = 1e-6
    fig.add_scatter(x=p_t, y=np.maximum(nckd, floor), mode="markers", name="NCKD (DKD: × β)",
                    marker=dict(size=4, color=COLORS["student"], opacity=0.45))  # fmt: skip
    fig.add_scatter(x=p_t, y=np.maximum((1 - p_t) * nckd, floor), mode="markers",
                    name="(1 − p_t)·NCKD (what KD keeps)",
                    marker=dict(size=4, color=COLORS["teacher"], opacity=0.45))  # fmt: skip
    fig.add_scatter(x=[chosen[0]], y=[max(chosen[1], floor)], mode="markers", name="this image",
                    marker=dict(size=16, color="rgba(0,0,0,0)",
                                line=dict(color="#e03131", width=3)))  # fmt: skip
    # whole decades only: Plotly's 2 and 5 between them read as values of their own
    fig.update_yaxes(**decade_ticks(np.maximum(np.concatenate([nckd, (1 - p_t) * nckd]), floor)))
    return fig


def accuracy_curves_figure(history: dict[str, list[dict]], names: list[str]) -> go.Figure:
    """Test accuracy in % per epoch of the named models of a stored run (the store keeps it as a
    fraction; every other view of a run shows %). A model whose method had a stage before its
    last (AB's initialisation, on no labels) is drawn from its last stage on, its epochs
    counted from there: every model lines up on the epochs it trained for its labels."""
    fig = _fig(xaxis_title="epoch", yaxis_title="test accuracy %", height=320)
    # whole epochs, one tick each while they fit: "d" alone labelled a 2-epoch run's 1.2, 1.4, ...
    # ticks "1 1 1 2 2 2"
    shown = {n: [r for r in history.get(n, []) if r.get("stage", "") == history[n][-1].get(
        "stage", "")] for n in names}  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max((len(recs) for recs in shown.values()), default=1)))
    colours = model_colours(names)
    for name, recs in shown.items():
        fig.add_scatter(x=list(range(1, len(recs) + 1)), y=[100 * r["test_accuracy"] for r in recs],
                        name=name, mode="lines+markers",
                        line=dict(color=colours[name], width=3))  # fmt: skip
    return fig


def probabilities_figure(probs: dict[str, list[float]], colours: list[str]) -> go.Figure:
    """One image's class probabilities from several models (or versions of one), grouped by
    digit: the teacher's, the same made less sure, a real student's."""
    fig = _fig(xaxis_title="digit", yaxis_title="probability at T", height=360, barmode="group",
               legend=LEGEND_BELOW)  # fmt: skip
    fig.update_xaxes(tickmode="linear", dtick=1)
    for (name, p), colour in zip(probs.items(), colours, strict=True):
        fig.add_bar(x=list(range(len(p))), y=p, name=name, marker_color=colour,
                    hovertemplate="digit %{x}: %{y:.4f}<extra></extra>")  # fmt: skip
    return fig
