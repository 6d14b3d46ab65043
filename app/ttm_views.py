"""The temperature page's section on transformed teacher matching (Zheng & Yang 2024): for the
page's image and T, the teacher's target and the two student distributions KD and TTM hold it
against, TTM split into KD and the Rényi entropy it rewards; WTTM's weights over the test set;
the stored ttm-mnist run's students and their entropy epoch by epoch.

:func:`targets_figure`, :func:`weights_figure` and :func:`entropy_figure` are plain functions of
arrays and a run's records; only :func:`show_ttm` talks to Streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW, decade_ticks, epoch_ticks, subplots
from app.relation_figures import _fig, model_colours
from kdcore.losses import softmax_t
from kdcore.losses.ttm import TTM, decomposition, power_sum, ttm_loss

PRESET, METHOD = "ttm-mnist", "ttm"
BINS = 60
COST = (  # measured: 49 to 51 s for the long profile (16 epochs), 2-core CPU, teacher cached
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the other relation "
    "presets) and five 30-30 students: about 10 s on a quiet 2-core CPU, up to two minutes on "
    "a busy one."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): KD 73.33%, TTM 76.17%, weighted TTM 76.06% "
    "(Zheng & Yang 2024, official README)."
)


def softmax(z: np.ndarray, T: float) -> np.ndarray:
    """:func:`kdcore.losses.softmax_t` of one row of logits, in float64."""
    return softmax_t(torch.as_tensor(z, dtype=torch.float64), T).numpy()


def targets_figure(teacher: np.ndarray, student: np.ndarray, T: float) -> go.Figure:
    """Per digit: the teacher at T (the target of both), the student at T (what KD holds
    against it) and at 1 (what TTM does)."""
    fig = _fig(xaxis_title="digit", yaxis_title="probability", height=340, barmode="group",
               legend=LEGEND_BELOW)  # fmt: skip
    bars = (
        (softmax(teacher, T), f"teacher at T = {T:g}", COLORS["teacher"]),
        (softmax(student, T), f"student at T = {T:g} (KD)", COLORS["other"]),
        (softmax(student, 1.0), "student at 1 (TTM)", COLORS["student"]),
    )
    for y, name, colour in bars:
        fig.add_bar(x=list(range(len(y))), y=y, name=name, marker_color=colour,
                    hovertemplate=f"{name}, %{{x}}: %{{y:.3g}}<extra></extra>")  # fmt: skip
    fig.update_xaxes(tickmode="linear", dtick=1)
    return fig


@st.cache_data(max_entries=16)
def test_weights(T: float) -> np.ndarray:
    """WTTM's weight Σ p^(1/T) of the demo teacher on each of the 10,000 test images."""
    return power_sum(ui.load_demo(str(ui.models_dir())).teacher_logits, T).numpy()


def weights_figure(weights: np.ndarray, marked: float, T: float) -> go.Figure:
    """How many test images get each WTTM weight (60 bins from 1 to 10^(1 − 1/T), its two ends,
    for T ≥ 1; the weights' own range below), the page's image marked."""
    lo, hi = (1.0, 10 ** (1 - 1 / T)) if T >= 1 else (float(weights.min()), float(weights.max()))
    hi = max(hi, lo + 0.1)  # at T = 1 every weight is 1: one bar, not sixty of no width
    fig = _fig(xaxis_title=f"weight Σ p^(1/T) at T = {T:g}", yaxis_title="test images",
               height=300, showlegend=False, bargap=0.05)  # fmt: skip
    counts, edges = np.histogram(weights, bins=BINS, range=(lo, hi))
    fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=(hi - lo) / BINS,
                marker_color=COLORS["teacher"],
                hovertemplate="weight %{x:.3f}: %{y} images<extra></extra>")  # fmt: skip
    ticks = decade_ticks(counts)
    if ticks:  # counts over two decades or more; closer, Plotly's minor log labels collide
        fig.update_yaxes(type="log", **ticks)
    side = "bottom left" if marked > (lo + hi) / 2 else "bottom right"  # inside the chart
    fig.add_vline(x=marked, line=dict(color=COLORS["student"], width=3),
                  annotation_text="this image", annotation_position=side)  # fmt: skip
    fig.update_xaxes(range=[lo, hi])
    return fig


def entropy_figure(entropy: dict) -> go.Figure:
    """Each student's mean entropy over the test images after every epoch, Shannon's (top) and
    the Rényi entropy of order 1/T (bottom); the teacher's and log 10 (uniform) as lines."""
    order = entropy.get("order", 0.1)
    fig = subplots(2, 1, shared_xaxes=True, vertical_spacing=0.1,
                   subplot_titles=("Shannon H(p)", f"Rényi H of order {order:g}"))  # fmt: skip
    epochs = 1
    # each student in the colour the run's accuracy curves give it
    colours = model_colours(list(entropy.get("shannon") or {}))
    for row, key in ((1, "shannon"), (2, "renyi")):
        for name, ys in (entropy.get(key) or {}).items():
            epochs = max(epochs, len(ys))
            tip = f"{name}, epoch %{{x}}: %{{y:.3f}} nats<extra></extra>"
            fig.add_scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=name,
                            line=dict(color=colours.get(name), width=2), hovertemplate=tip,
                            legendgroup=name, showlegend=row == 1, row=row, col=1)  # fmt: skip
        teacher = entropy.get("teacher") or {}
        target = teacher.get("target") if key == "shannon" else None
        for y, name, dash, colour in (
            (teacher.get(key), "teacher", "dot", COLORS["teacher"]),
            (target, f"teacher at T = {1 / order:g}, TTM's target", "dashdot", COLORS["other"]),
            (math.log(10), "uniform, log 10", "dash", COLORS["muted"]),
        ):
            if y is not None:
                fig.add_scatter(x=[1, epochs], y=[y, y], mode="lines", name=name, row=row, col=1,
                                line=dict(color=colour, dash=dash, width=2), legendgroup=name,
                                showlegend=row == 1)  # fmt: skip
    fig.update_yaxes(title_text="nats")
    fig.update_xaxes(title_text="epoch", row=2, col=1, **epoch_ticks(epochs))
    return _fig(fig, height=480, legend=LEGEND_BELOW)


def show_ttm(queue, teacher: np.ndarray, student: np.ndarray, T: float) -> None:
    """The section, for the page's image (its ``teacher`` and ``student`` logits) at its ``T``."""
    ui.prose(
        "KD softens both sides with T. **Transformed teacher matching** (Zheng & Yang 2024) "
        "softens only the teacher, and holds the student's plain softmax against it. Since "
        "softmax(z/T) is p raised to the power 1/T and renormalised, the difference from KD "
        "can be written out exactly: TTM is T times KD's KL, less (T − 1) times the Rényi "
        "entropy of the student's own prediction, plus a constant. Above T = 1 it pays the "
        "student to stay unsure."
    )
    ui.plot(targets_figure(teacher, student, T), key="ttm_targets")
    s, t = (torch.as_tensor(np.asarray(z)[None], dtype=torch.float64) for z in (student, teacher))
    d = {k: float(v[0]) for k, v in decomposition(s, t, T).items()}
    w = float(power_sum(t, T)[0])
    cols = st.columns(4)
    for col, (label, value) in zip(cols, (
        ("T · KL, KD's part", d["kd"]), ("− (T − 1) · Rényi", -(T - 1) * d["renyi"]),
        ("+ (T − 1) · H(teacher)", (T - 1) * d["teacher_entropy"]), ("= TTM", d["ttm"]),
    ), strict=True):  # fmt: skip
        col.metric(label, f"{value:.4f}".replace("-0.0000", "0.0000"))
    st.caption(
        f"This image at T = {T:g}: the student's Rényi entropy of order 1/T is "
        f"{d['renyi']:.4f} nats (at most log 10 = {math.log(10):.4f}); KD's own loss, T²·KL, is "
        f"T times its part: {T * d['kd']:.4f}. WTTM weighs this image {w:.3f}."
    )
    st.latex(  # in short lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}\tilde p_t = \mathrm{softmax}(v/T) = p_t^{1/T} \big/ "
        r"\textstyle\sum_j p_{t,j}^{1/T}\\ \mathcal L_{TTM} = \mathrm{KL}(\tilde p_t\,\|\,p_s)"
        r"\\ = T\,\mathrm{KL}\big(\tilde p_t\,\|\,\mathrm{softmax}(z/T)\big)\\ - (T-1)\,"
        r"H_{1/T}(p_s) + (T-1)\,H(\tilde p_t)\\ \mathcal L_{WTTM} = "
        r"\textstyle\sum_j p_{t,j}^{1/T}\cdot \mathcal L_{TTM}\end{gathered}"
    )
    ui.prose(
        "Weighted TTM multiplies each image's term by that normaliser, Σ p^(1/T): above T = 1, "
        "1 where the teacher is certain, up to 10^(1 − 1/T) where it is torn, so the images it "
        "hesitates on weigh more. The demo teacher's weights over the test set at your T:"
    )
    ui.plot(weights_figure(test_weights(T), w, T), key="ttm_weights")
    run = lab_ui.stored_students(queue, PRESET, METHOD, COST, ("ep_ttm", "run_ttm"), PAPER_LINE)
    entropy = ((run.result or {}) if run is not None else {}).get("entropy")
    if entropy and entropy.get("shannon"):
        ui.plot(entropy_figure(entropy), key="ttm_entropy")
        last = {n: ys[-1] for n, ys in entropy["shannon"].items() if ys}
        held = entropy.get("teacher") or {}  # the run's teacher's entropies
        said = f"; the teacher {held.get('shannon', float('nan')):.3f}"
        if "target" in held:
            said += f", at T = {1 / entropy.get('order', 0.1):g} {held['target']:.3f}"
        st.caption(
            "Each student's mean entropy over the 10,000 test images after every epoch. At the "
            "end, Shannon's: "
            + ", ".join(f"{n} {v:.3f}" for n, v in last.items())
            + said
            + f" nats (uniform: log 10 = {math.log(10):.3f}). TTM's student is drawn towards "
            "the teacher's softmax at T, not its own: far less sure of the digit it names."
        )


CODE = (ttm_loss, decomposition, TTM.forward)
