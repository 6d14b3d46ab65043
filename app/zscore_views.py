"""The DKD page's section on logit standardisation (Sun et al. 2024): one image's logits from the
demo teacher and student, as they are and z-scored; each image's logit spread over the test
set; KD and KD on z-scores of the demo student and of the teacher's own logits resized.

:func:`logits_figure` and :func:`spread_figure` are plain functions of arrays; only
:func:`show_zscore` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from app import ui
from app.figures import COLORS, LEGEND_BELOW, subplots
from app.relation_figures import _fig
from kdcore.losses.kd import kd_loss
from kdcore.losses.zscore import standardise, zscore_kd_loss

WHO = {"teacher": COLORS["teacher"], "demo student": COLORS["student"]}
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): KD 73.33%, on z-scores 76.62% (Sun et al. "
    "2024, official README)."
)


@st.cache_data(max_entries=32)
def zscore_compute(T: float, a: float) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Over the test set at T: T²·KL and τ²·KL on z-scores (τ = T) from the teacher, of the demo
    student and of the teacher's logits times ``a``; and each model's logits (N, 10)."""
    bundle = ui.load_demo(str(ui.models_dir()))
    t = bundle.teacher_logits
    rows = {}
    for name, z in (("demo student", bundle.student_logits), (resized(a), a * t)):
        rows[name] = {"T²·KL": float(kd_loss(z, t, T)), "τ²·KL, z-scored": float(
            zscore_kd_loss(z, t, T))}  # fmt: skip
    logits = {"teacher": t.numpy(), "demo student": bundle.student_logits.numpy()}
    return pd.DataFrame(rows).T, logits


def resized(a: float) -> str:
    return f"the teacher's logits × {a:g}"


def logits_figure(rows: dict[str, np.ndarray]) -> go.Figure:
    """One image's logits per model, grouped by digit: as they are, and z-scored (each row less
    its mean, over its standard deviation) side by side."""
    fig = subplots(1, 2, subplot_titles=("logits", "z-scored"), horizontal_spacing=0.1)
    for col, f in enumerate((np.asarray, standardise_np), start=1):
        for name, z in rows.items():
            fig.add_bar(x=list(range(len(z))), y=f(z), name=name, marker_color=WHO[name],
                        legendgroup=name, showlegend=col == 1, row=1, col=col,
                        hovertemplate=f"{name}, %{{x}}: %{{y:.2f}}<extra></extra>")  # fmt: skip
    fig.update_xaxes(tickmode="linear", dtick=1, title_text="digit")
    return _fig(fig, height=360, barmode="group", legend=LEGEND_BELOW)


def standardise_np(z: np.ndarray) -> np.ndarray:
    """:func:`kdcore.losses.zscore.standardise` of one row of logits."""
    return standardise(torch.as_tensor(z, dtype=torch.float64)).numpy()


def spread_figure(logits: dict[str, np.ndarray], marked: int) -> go.Figure:
    """Each test image's logit standard deviation, per model: the size KD asks the student to
    match and z-scoring removes; the chosen image marked."""
    fig = _fig(xaxis_title="standard deviation of an image's 10 logits", yaxis_title="images",
               height=320, barmode="overlay", legend=LEGEND_BELOW)  # fmt: skip
    for name, z in logits.items():
        sd = z.std(axis=1, ddof=1)
        # one set of bins for both models (bingroup), so their bars line up
        fig.add_histogram(x=sd, name=name, marker_color=WHO[name], opacity=0.6, nbinsx=60,
                          bingroup=1, hovertemplate="σ %{x}: %{y}<extra></extra>")  # fmt: skip
        fig.add_vline(x=float(sd[marked]), line=dict(color=WHO[name], width=2, dash="dot"))
    return fig


def show_zscore(index: int, T: float, a: float) -> None:
    """The section's intuition: the chosen test image ``index``, the page's T as τ and its
    "how sure" share ``a`` as the factor the teacher's logits are resized by."""
    ui.prose(
        "KD softens both models with one T, so matching the teacher exactly means matching the "
        "*size* of its logits too. Sun et al. (2024) z-score each image's logits first, minus "
        "their mean, over their standard deviation σ: each model in effect gets its own "
        "temperature τ·σ, and only the relations between the logits are taught."
    )
    table, logits = zscore_compute(T, a)
    rows = {name: z[index] for name, z in logits.items()}
    sd = {name: float(np.std(z, ddof=1)) for name, z in rows.items()}
    ui.plot(logits_figure(rows), key="zscore_logits")
    cols = st.columns(2)
    for col, name in zip(cols, rows, strict=True):
        col.metric(f"σ of the {name}'s logits", f"{sd[name]:.2f}",
                   f"temperature τ·σ = {T * sd[name]:.2f}", delta_color="off",
                   delta_arrow="off")  # fmt: skip
    ui.plot(spread_figure(logits, index), key="zscore_spread")
    st.table(table.style.format(lambda v: f"{v:.4f}".replace("-0.0000", "0.0000")))
    st.caption(
        f"This image, and the means over the 10,000 test images at T = {T:g} (the page's T "
        f"serves as τ). Dotted: this image's σ. {resized(a).capitalize()} ({a:g}: the DIST "
        "section's share) rank the digits as the teacher does, only less surely: KD still "
        "counts it a miss, the z-scored loss does not."
    )
    st.latex(  # in lines: written whole it was shrunk below a readable size on a phone
        r"\begin{gathered}\mathcal Z(z) = \frac{z - \bar z}{\sigma(z)}\\"
        r"p = \mathrm{softmax}\big(\mathcal Z(v)/\tau\big),\quad "
        r"q = \mathrm{softmax}\big(\mathcal Z(z)/\tau\big)\\"
        r"\mathcal L = \tau^2\,\mathrm{KL}(p\,\|\,q)\end{gathered}"
    )
