"""The features page's section on knowledge review (Chen et al. 2021): the stored review-mnist
run's students, the hierarchical context loss at each level epoch by epoch, and the review's
paths: how much each of the student's levels weighs in the fused sum that predicts each of the
teacher's levels, from the attention the fusion modules learned.

:func:`level_series`, :func:`path_weights`, :func:`level_figure` and :func:`paths_figure` are
plain functions of a run's records; only :func:`show_review` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks, log_ticks, square_cells
from app.relation_figures import _fig
from kdcore.losses.review import (
    ABF,
    REVIEW_LAYERS,
    REVIEW_TEACHER_LAYERS,
    hcl_level,
    level_names,
)

PRESET, MODEL = "review-mnist", "student_review"
COST = (
    "One epoch trains a ResNet-20 teacher (cached afterwards) and three ResNet-8 students, the "
    "ReviewKD one beside the teacher's live features (too large to cache) and its four fusion "
    "modules: some 6 minutes on a 2-core CPU, half of them the ReviewKD student's."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet56 → resnet20): hard labels 69.06%, KD 70.66%, ReviewKD 71.89% "
    "(Chen et al. 2021, Table 1)."
)
LEVEL_COLOURS = ["#1c7ed6", "#2f9e44", "#e8590c", "#862e9c", "#495057"]


def levels_of(result: dict) -> tuple[list[str], list[str]]:
    """The student's and the teacher's levels the run paired, shallow to deep."""
    params = (result.get("models") or {}).get(MODEL, {}).get("method_params") or {}
    return (level_names(params.get("layers", REVIEW_LAYERS)),
            level_names(params.get("teacher_layers", REVIEW_TEACHER_LAYERS)))  # fmt: skip


def level_series(result: dict) -> dict:
    """The ReviewKD student's epochs: HCL per level (``levels``: [[per level] per epoch]) and
    the fusion's mean attention (``fusion``: [[[own, residual] per fusing level] per epoch]),
    both over each epoch's training batches; empty where the run has none."""
    epochs = (result.get("history") or {}).get(MODEL) or []
    kept = [e["extra"] for e in epochs if "level_loss" in e.get("extra", {})]
    return {"levels": [k["level_loss"] for k in kept], "fusion": [k["fusion"] for k in kept]}


def path_weights(fusion: list[list[float]]) -> np.ndarray:
    """W[i, j]: the weight of the student's level j in the sum that predicts the teacher's level
    i, from the mean attention of each fusing level k, (own_k, residual_k). The sum at level i is
    own_i · (level i) + residual_i · (the sum at level i + 1), so level j ≥ i comes in with
    residual_i ⋯ residual_{j−1} · own_j (own = 1 at the deepest level, which does not fuse);
    NaN where j < i (a shallower level never reaches a deeper prediction)."""
    n = len(fusion) + 1
    own = [row[0] for row in fusion] + [1.0]
    out = np.full((n, n), np.nan)
    for i in range(n):
        carried = 1.0
        for j in range(i, n):
            out[i, j] = carried * own[j]
            if j < n - 1:
                carried *= fusion[j][1]
    return out


def level_figure(levels: list[list[float]], names: list[str], epoch: int) -> go.Figure:
    """HCL per level (the ReviewKD student's training batches) per epoch, a line per level on a
    log axis, the chosen epoch dotted."""
    fig = _fig(xaxis_title="epoch", yaxis_title="hierarchical context loss", yaxis_type="log",
               height=320, legend=LEGEND_BELOW)  # fmt: skip
    x = list(range(1, len(levels) + 1))
    for k, name in enumerate(names):
        colour = LEVEL_COLOURS[k % len(LEVEL_COLOURS)]
        fig.add_scatter(x=x, y=[row[k] for row in levels], name=name, mode="lines+markers",
                        line=dict(color=colour, width=3))  # fmt: skip
    fig.add_vline(x=epoch, line=dict(color="#868e96", dash="dot"))
    fig.update_xaxes(**epoch_ticks(len(levels)))
    values = [v for row in levels for v in row if v > 0]
    ticks = log_ticks(min(values), max(values)) if values else []
    if len(ticks) >= 2:  # 1-2-5 labels: Plotly's own digits 2 to 9 run into each other
        fig.update_yaxes(tickvals=ticks)
    return fig


def paths_figure(weights: np.ndarray, student: list[str], teacher: list[str]) -> go.Figure:
    """The review's paths as a grid: a row per teacher level, a column per student level, each
    cell the weight that level carries in that prediction, written in it (blank below the
    diagonal)."""
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in weights]
    fig = go.Figure(go.Heatmap(
        z=weights, x=student, y=teacher, zmin=0, zmax=1, colorscale="Blues", text=text,
        texttemplate="%{text}", showscale=False, hoverongaps=False,
        hovertemplate="student's %{x} → teacher's %{y}: %{z:.3f}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(autorange="reversed", title_text="teacher level")
    fig.update_xaxes(title_text="student level", side="top")
    square_cells(fig)
    return _fig(fig, height=340, margin=dict(l=40, r=20, t=60, b=20))


def review_share(weights: np.ndarray) -> float:
    """The deeper levels' share of the weights behind the shallowest prediction."""
    total = float(np.nansum(weights[0]))
    return float(np.nansum(weights[0][1:])) / total if total > 0 else 0.0


def paths_line(weights: np.ndarray, student: list[str], teacher: list[str]) -> str:
    """In words: how much of the shallowest prediction comes from deeper levels."""
    row, share = weights[0], review_share(weights)
    deeper = float(np.nansum(row[1:]))
    return (f"The teacher's {teacher[0]} is predicted from the student's {student[0]} at weight "
            f"{row[0]:.2f} and from its deeper levels at {deeper:.2f} in all: {share:.0%} of "
            "the sum is review.")  # fmt: skip


def show_review(queue) -> None:
    """The section: the preset's stored (or shipped) run, its losses per level and its paths."""
    ui.prose(
        "**Knowledge review** (Chen et al. 2021) pairs each of the teacher's levels not only "
        "with the student's level at the same depth but with every deeper one too. From the "
        "deepest level up, a fusion module merges the student's level with what the levels "
        "below it passed down, two learned attention maps weighing the two, and a convolution "
        "turns the merge into a prediction of the teacher's level. Each prediction is compared "
        "with the teacher's by a *hierarchical context loss*: the squared error of the maps and "
        "of their 4 × 4, 2 × 2 and 1 × 1 averages. The modules are thrown away after training."
    )
    run = lab_ui.stored_students(queue, PRESET, "review", COST, ("ep_review", "run_review"),
                                 PAPER_LINE)  # fmt: skip
    result = (run.result or {}) if run is not None else {}
    series = level_series(result)
    if series["levels"]:
        student, teacher = levels_of(result)
        n = len(series["levels"])
        epoch = ui.url_int("Epoch of the ReviewKD student", "review_ep", 1, n, n)
        left, right = st.columns(2)
        with left:
            ui.plot(level_figure(series["levels"], student, epoch), key="review_levels")
        weights = path_weights(series["fusion"][epoch - 1])
        with right:
            ui.plot(paths_figure(weights, student, teacher), key="review_paths")
        st.caption(
            f"Epoch {epoch}, means over its training batches. Right: the weight each student "
            "level carries in the sum behind each prediction, the product of the mean "
            f"attention along its path. {paths_line(weights, student, teacher)}"
        )
    st.latex(  # in short lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}R_n = C_n S^n\\ R_i = a_i \odot C_i S^i + b_i \odot \mathrm{up}\,R_{i+1}"
        r"\\ (a_i, b_i) = \sigma\big(W_i\,[C_i S^i;\ \mathrm{up}\,R_{i+1}]\big)\\ "
        r"D_i = \frac{\sum_k w_k\, \mathrm{MSE}(P_k Q_i R_i,\ P_k T^i)}{\sum_k w_k}\\ "
        r"\mathcal L = \mathrm{CE} + \lambda \sum_{i=1}^{n} D_i,\quad w_k = 2^{-k}"
        r"\end{gathered}"
    )
    st.caption(
        "S^i, T^i: the student's and the teacher's level i (the teacher's stages before their "
        "last ReLU, as the authors' code takes them); C_i a 1 × 1 convolution, Q_i a 3 × 3 one "
        "to the teacher's channels; P_0 the map itself and P_1, P_2, P_3 its 4 × 4, 2 × 2, "
        "1 × 1 averages, each where smaller than the map. The paper ramps λ up over its first "
        "20 of 240 epochs; these 3-epoch runs use it from the start."
    )


CODE = (hcl_level, ABF.forward)
