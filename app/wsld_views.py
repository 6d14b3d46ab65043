"""The DKD page's section on weighted soft labels (WSLD, Zhou et al. 2021): the weight WSLD gives
each test image's soft label, for the demo student against the demo teacher, the page's image
marked among the 10,000; the stored wsld-mnist run's students.

:func:`weights_figure` is a plain function of numbers; only :func:`show_wsld` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch.nn.functional as F

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW, decade_ticks, epoch_ticks, subplots
from app.recorded import recorded_series
from app.relation_figures import _fig, model_colours
from kdcore.losses.wsld import AHEAD, sample_weights, soft_cross_entropy, wsld_loss

CODE = (sample_weights, soft_cross_entropy, wsld_loss)
PRESET = "wsld-mnist"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and four 30-30 students: about 8 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (ImageNet, ResNet-34 → ResNet-18): 69.75% top-1 alone, 72.04% by WSLD, the teacher "
    "73.31% (Zhou et al. 2021, official README)."
)
BINS = 40


@st.cache_data(max_entries=2)
def wsld_compute() -> dict[str, np.ndarray]:
    """Per test image, the demo models' cross-entropies on the label and WSLD's weight."""
    bundle = ui.load_demo(str(ui.models_dir()))
    s, t, y = bundle.student_logits, bundle.teacher_logits, bundle.data.y_test
    return {
        "ce_s": F.cross_entropy(s, y, reduction="none").numpy(),
        "ce_t": F.cross_entropy(t, y, reduction="none").numpy(),
        "weight": sample_weights(s, t, y).numpy(),
    }


def weights_figure(weights: np.ndarray, mark: float) -> go.Figure:
    """How many test images get each weight, the line where the student draws level with the
    teacher (1 − 1/e) and the page's image."""
    fig = _fig(xaxis_title="weight of the soft label", yaxis_title="test images", height=300,
               showlegend=False, bargap=0.05)  # fmt: skip
    counts, edges = np.histogram(weights, bins=BINS, range=(0.0, 1.0))
    fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=1 / BINS,
                marker_color=COLORS["teacher"],
                hovertemplate="weight %{x:.3f}: %{y} images<extra></extra>")  # fmt: skip
    fig.update_yaxes(type="log", **decade_ticks(counts))
    fig.add_vline(x=AHEAD, line=dict(color=COLORS["muted"], dash="dash"),
                  annotation_text="level", annotation_position="top")  # fmt: skip
    side = "bottom left" if mark > 0.5 else "bottom right"  # the label inside the chart
    fig.add_vline(x=mark, line=dict(color=COLORS["student"], width=3),
                  annotation_text="this image", annotation_position=side)  # fmt: skip
    fig.update_xaxes(range=[0, 1])
    return fig


NAMES = {"student_wsld": "student_wsld", "student_wsld_plain": "student_wsld_plain, every weight 1"}
PANELS = (("mean_weight", "mean weight", 1), ("student_ahead", "student ahead (%)", 100))


def epochs_figure(series: dict[str, dict[str, list[tuple]]]) -> go.Figure:
    """Per epoch over the training images, for each student of the run: the soft labels' mean
    weight, and the share of images on which the student was ahead of the teacher (weight below
    1 − 1/e), from each epoch's records (``series``: :func:`app.recorded.recorded_series`)."""
    fig = subplots(1, 2, subplot_titles=[title for _, title, _ in PANELS])
    # the accuracy curves' colours above it (stored_students): one student, one colour
    colours = model_colours(["student_hard", "student_kd", *NAMES])
    last = 1
    for col, (key, _, scale) in enumerate(PANELS, start=1):
        for name, points in (series.get(key) or {}).items():
            x, y = zip(*points, strict=True)
            last = max(last, *x)
            fig.add_scatter(x=x, y=[scale * v for v in y], mode="lines+markers",
                            name=NAMES.get(name, name), legendgroup=name, showlegend=col == 1,
                            line=dict(color=colours[name]), row=1, col=col)  # fmt: skip
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last))
    return _fig(fig, height=320, legend=LEGEND_BELOW)


def show_wsld(queue, index: int) -> None:
    """The section for test image ``index`` of the page."""
    ui.prose(
        "KD gives every image's soft label the same weight. **WSLD** (Zhou et al. 2021) reads "
        "soft labels as trading bias for variance, and finds them hurting on the images where "
        "the teacher does worse on the label than the student. So each image's soft term is "
        "weighted by 1 − exp(−L_s / L_t), from the two models' cross-entropies on its label: "
        "near 1 where the student trails the teacher, 1 − 1/e ≈ 0.63 where they are level, "
        "towards 0 where the student is ahead."
    )
    out = wsld_compute()
    w = float(out["weight"][index])
    cols = st.columns(3)
    cols[0].metric("student's L_s on the label", f"{out['ce_s'][index]:.3g}")
    cols[1].metric("teacher's L_t on the label", f"{out['ce_t'][index]:.3g}")
    cols[2].metric("weight of its soft label", f"{w:.3f}")
    ui.plot(weights_figure(out["weight"], w), key="wsld_weights")
    ahead = float(np.mean(out["weight"] < AHEAD))
    st.caption(
        f"The demo student (784-30-30-10) against the demo teacher on the 10,000 test images: "
        f"mean weight {float(np.mean(out['weight'])):.3f}, median "
        f"{float(np.median(out['weight'])):.3f}; the student is ahead of the teacher on the "
        f"label (a weight below 0.632) on {100 * ahead:.1f}% of them, and "
        f"{100 * float(np.mean(out['weight'] > 0.99)):.1f}% get a weight above 0.99 (a log "
        "scale). Images the student has not seen: on its own training images a student can get "
        "ahead of its teacher far more often, as the run below shows."
    )
    st.latex(  # in lines: a phone's column is narrower than the sum
        r"\begin{gathered}w = 1 - \exp\!\big(-\mathcal L_s / \mathcal L_t\big)\\ "
        r"\mathcal L = \mathrm{CE} + \alpha\,T^2\,\tfrac1B \textstyle\sum_b w_b\,"
        r"\mathrm{CE}\big(T^{T}_b, S^{T}_b\big)\end{gathered}"
    )
    run = lab_ui.stored_students(queue, PRESET, "wsld", COST, ("ep_wsld", "run_wsld"),
                                 PAPER_LINE)  # fmt: skip
    series = recorded_series(((run.result or {}) if run is not None else {}).get("history") or {})
    if series.get("mean_weight"):
        ui.plot(epochs_figure(series), key="wsld_epochs")
        ends = "; ".join(
            f"{NAMES.get(n, n)}: mean weight {p[-1][1]:.3f}, ahead on "
            f"{100 * series['student_ahead'][n][-1][1]:.1f}%"
            for n, p in series["mean_weight"].items()
        )
        st.caption(
            "What the run's WSLD students met on their training images, epoch by epoch (the one "
            "with every weight 1 trains on all its soft labels but records the weights too). "
            f"After the last epoch: {ends}."
        )
