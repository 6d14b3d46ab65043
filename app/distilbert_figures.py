"""Plotly figures for the DistilBERT page: which of the teacher's blocks start the student, how
good each choice is before any training, each student's distance from the truth epoch by epoch,
and the ablation beside the paper's Table 4.

Plain functions of numbers: no Streamlit, no models. The blocks come from the registry's
initialisation (:func:`kdcore.losses.distilbert.every_other`) or the page's choice, the starts
from :func:`kdcore.presets_distilbert.start_kls`, the rest from a stored run of ``distilbert``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, TEMPLATE, decade_ticks, subplots
from app.lm_figures import LABEL

SKIPPED = "#ced4da"
# a colour per student of the preset: the triple loss orange whatever its start (dotted from
# random weights), real text alone grey, each ablation its own
CURVE = {"hard": COLORS["uniform"], "distilbert": COLORS["student"],
         "random_init": COLORS["student"], "no_kd": "#f59f00", "no_cos": "#37b24d",
         "no_lm": "#7048e8", "init_only": "#1098ad"}  # fmt: skip


def blocks_label(blocks: Sequence[int]) -> str:
    return "blocks " + " and ".join(str(b) for b in blocks)


def log_line(fig: go.Figure, y: float, text: str, colour: str, below: bool = False) -> None:
    """A dashed level on a log y axis, named at its left end. Plotly's own ``add_hline`` label
    is placed at y in the axis's log units, so on a log axis it lands decades away."""
    fig.add_hline(y=y, line=dict(dash="dash", color=colour))
    fig.add_annotation(x=0, xref="paper", xanchor="left", y=math.log10(y), yref="y", text=text,
                       showarrow=False, yanchor="top" if below else "bottom",
                       font=dict(color=colour))  # fmt: skip


def init_figure(blocks: Sequence[int], t_layers: int) -> go.Figure:
    """The teacher's layers on the right (embeddings, blocks, head), the student's on the left,
    a line from every teacher layer the student starts from to the student's layer it starts;
    the teacher's blocks it leaves out in grey."""
    fig = go.Figure()
    s_names = ["embeddings", *(f"block {i + 1}" for i in range(len(blocks))), "LayerNorm, head"]
    t_names = ["embeddings", *(f"block {n}" for n in range(1, t_layers + 1)), "LayerNorm, head"]
    top = t_layers + 1
    s_y = [0, *(top * (i + 1) / (len(blocks) + 1) for i in range(len(blocks))), top]
    sources = [0, *blocks, top]  # the teacher's row each student row is copied from
    for y, n in zip(s_y, sources, strict=True):
        fig.add_scatter(x=[0, 1], y=[y, n], mode="lines", showlegend=False, hoverinfo="skip",
                        line=dict(color=COLORS["student"], width=3))  # fmt: skip
    t_colour = [COLORS["teacher"] if n in sources else SKIPPED for n in range(top + 1)]
    for x, names, ys, colour, pos in (
        (0, s_names, s_y, COLORS["student"], "middle left"),
        (1, t_names, list(range(top + 1)), t_colour, "middle right"),
    ):
        fig.add_scatter(x=[x] * len(names), y=ys, mode="markers+text", text=names,
                        textposition=pos, marker=dict(size=16, color=colour, symbol="square"),
                        hovertemplate="%{text}<extra></extra>", showlegend=False)  # fmt: skip
    fig.add_annotation(x=0, y=top + 0.55, text="<b>student</b>", showarrow=False)
    fig.add_annotation(x=1, y=top + 0.55, text="<b>teacher</b>", showarrow=False)
    fig.update_xaxes(range=[-0.95, 1.95], visible=False)
    fig.update_yaxes(range=[-0.5, top + 0.8], visible=False)
    fig.update_layout(template=TEMPLATE, height=320, margin=dict(t=10, b=10, l=10, r=10))
    return fig


def starts_figure(
    starts: dict[tuple[int, ...], float], chosen: Sequence[int], random_kl: float,
    teacher_kl: float,
) -> go.Figure:  # fmt: skip
    """Each choice of the teacher's blocks against the KL from the truth of the student it
    starts, before any training, on a log axis; the chosen choice in the student's colour, the
    student from random weights and the whole teacher as dashed lines."""
    names = [", ".join(map(str, b)) for b in starts]
    vals = list(starts.values())
    colours = [COLORS["student"] if tuple(b) == tuple(chosen) else SKIPPED for b in starts]
    hover = "blocks %{x}: %{y:.4g} bits/char<extra></extra>"
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colours, hovertemplate=hover,
                           text=[f"{v:.3g}" for v in vals], textposition="outside",
                           cliponaxis=False))  # fmt: skip
    log_line(fig, random_kl, "random weights", COLORS["uniform"])
    log_line(fig, teacher_kl, "the whole teacher", COLORS["teacher"])
    fig.update_yaxes(type="log", title="KL from truth before training<br>(bits/char)",
                     **decade_ticks([*vals, random_kl, teacher_kl]))  # fmt: skip
    # the choices are labels ("1, 3"), never numbers Plotly may read them as
    fig.update_xaxes(title="the teacher's blocks copied", type="category")
    fig.update_layout(template=TEMPLATE, height=380, showlegend=False, margin=dict(t=20))
    return fig


def curves_figure(
    curves: dict[str, list[float]], copied: set[str], teacher_kl: float | None = None
) -> go.Figure:
    """Each student's KL from the truth after each epoch, epoch 0 its start, on a log axis:
    the students in ``copied`` (started from the teacher's blocks) solid, the others dotted."""
    fig = go.Figure()
    for name, ys in curves.items():
        dash = "solid" if name in copied else "dot"
        fig.add_scatter(x=list(range(len(ys))), y=ys, mode="lines+markers",
                        name=LABEL.get(name, name), line=dict(dash=dash, color=CURVE.get(name)),
                        hovertemplate="epoch %{x}: %{y:.4g} bits/char<extra></extra>")  # fmt: skip
    if teacher_kl is not None:
        log_line(fig, teacher_kl, "teacher", COLORS["teacher"], below=True)
    every = [y for ys in curves.values() for y in ys] + ([teacher_kl] if teacher_kl else [])
    fig.update_yaxes(type="log", title="KL from truth (bits/char)", **decade_ticks(every))
    fig.update_xaxes(title="epoch (0: before training)", dtick=1)
    fig.update_layout(template=TEMPLATE, height=440, legend=LEGEND_BELOW, margin=dict(t=20))
    return fig


def ablation_figure(ours: dict[str, float], paper: dict[str, float]) -> go.Figure:
    """What each ablation costs against the full recipe, one panel above the other (side by side
    they left a phone's labels no room): here the extra KL from the truth in thousandths of a bit
    per character, in the paper the GLUE points lost (Table 4), for the rows it has; a bar to the
    right is worse in both."""
    names = [n for n in ours if n in paper] + [n for n in ours if n not in paper]
    cited = [n for n in names if n in paper]
    fig = subplots(2, 1, subplot_titles=["here: extra KL from truth<br>(×10⁻³ bits/char)",
                                         "paper: GLUE points lost<br>(Table 4)"],
                   row_heights=[len(names), max(1, len(cited))], vertical_spacing=0.2)  # fmt: skip
    for row, shown, xs, colour, fmt in (
        (1, names, [1000 * ours[n] for n in names], COLORS["student"], "{:+.2f}"),
        (2, cited, [-paper[n] for n in cited], COLORS["teacher"], "{:.2f}"),
    ):
        fig.add_bar(y=[LABEL.get(n, n) for n in shown], x=xs, orientation="h", marker_color=colour,
                    text=[fmt.format(v) for v in xs], textposition="outside", cliponaxis=False,
                    showlegend=False, row=row, col=1)  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    # room on the right for the longest bar's figure, written outside it
    fig.update_layout(template=TEMPLATE, height=200 + 40 * (len(names) + len(cited)),
                      margin=dict(t=60, r=50))  # fmt: skip
    return fig
