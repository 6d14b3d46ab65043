"""The class-maps page's figures and sections: one image's class activation maps through a ResNet
teacher and what CAT transfers of them (pooled, normalised, binarised), and the cat-mnist run's
students (their maps beside the teacher's on the same images, and how far they lie from the
teacher's in where each class is seen, epoch by epoch).

The figures are functions of arrays and a run's records, each built once per input
(``st.cache_data``: fifty heat maps cost some 300 ms to lay out, a cached copy a tenth of it);
only the ``show_*`` functions draw.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks, square_cells, subplots
from app.relation_figures import _fig, model_colours
from kdcore.losses.cat import binarize, transferred

PRESET = "cat-mnist"
COST = (
    "One epoch trains a ResNet-20 teacher (cached afterwards, shared with fsp-mnist) and five "
    "ResNet-8 students: some 4 minutes on a quiet 2-core CPU."
)
PAPER_LINE = (
    "The paper reports CAT-KD ahead of KD and of the feature methods on CIFAR-100 and ImageNet "
    "(Guo et al. 2023); its tables are not quoted here: we could not check them."
)
MARK = "#e03131"
LABEL = {
    "student_hard": "hard labels",
    "student_kd": "KD",
    "student_cat": "CAT-KD",
    "student_cat_alone": "CAT alone",
    "student_cat_binary": "binarised CAT alone",
}


def teacher_view(maps: np.ndarray, resolution: int, normalize: bool, binarized: bool):
    """What CAT transfers of one image's teacher maps (K, H, W): (K, r, r), after the teacher's
    binarisation where asked, pooling and normalisation, by the loss's own functions."""
    m = torch.from_numpy(maps)[None]
    if binarized:
        m = binarize(m)
    return transferred(m, resolution, normalize)[0].numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def maps_figure(maps: np.ndarray, marked: int | None, note: str = "", cols: int = 5) -> go.Figure:
    """K class maps on one colour scale centred on zero (red where the class is seen, blue where
    it is seen against), ``cols`` a row, titled by digit; ``marked`` outlined. ``note`` is each
    panel's hover line."""
    k = len(maps)
    rows = -(-k // cols)
    fig = subplots(rows, cols, subplot_titles=[str(c) for c in range(k)], horizontal_spacing=0.02,
                   vertical_spacing=0.1)  # fmt: skip
    hi = float(np.abs(maps).max()) or 1.0
    for c in range(k):
        r, q = divmod(c, cols)
        fig.add_trace(go.Heatmap(z=maps[c], zmin=-hi, zmax=hi, colorscale="RdBu", reversescale=True,
                                 showscale=c == k - 1, colorbar=dict(thickness=12),
                                 hovertemplate=f"digit {c}{note}<br>%{{z:.3f}}<extra></extra>"),
                      row=r + 1, col=q + 1)  # fmt: skip
        if c == marked:
            h, w = maps[c].shape
            fig.add_shape(type="rect", x0=-0.5, x1=w - 0.5, y0=-0.5, y1=h - 0.5,
                          line=dict(color=MARK, width=3), row=r + 1, col=q + 1)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    square_cells(fig)
    return _fig(fig, height=150 * rows + 40, margin=dict(l=10, r=10, t=40, b=10))


@st.cache_data(max_entries=64, show_spinner=False)
def pair_figure(teacher: np.ndarray, student: np.ndarray, marked: int) -> go.Figure:
    """The teacher's ten maps of one image above a student's, each row on its own colour scale
    (a student's maps may be weaker or stronger; CAT's normalised distance asks only where)."""
    k = len(teacher)
    # the rows' names short enough to stand beside a row on a phone: the caption names the student
    fig = subplots(2, k, subplot_titles=[str(c) for c in range(k)], horizontal_spacing=0.01,
                   vertical_spacing=0.06, row_titles=["teacher", "student"])  # fmt: skip
    for row, maps in ((1, teacher), (2, student)):
        hi = float(np.abs(maps).max()) or 1.0
        for c in range(k):
            fig.add_trace(go.Heatmap(z=maps[c], zmin=-hi, zmax=hi, colorscale="RdBu",
                                     reversescale=True, showscale=False,
                                     hovertemplate=f"digit {c}<br>%{{z:.3f}}<extra></extra>"),
                          row=row, col=c + 1)  # fmt: skip
    h, w = teacher[marked].shape
    for row in (1, 2):
        fig.add_shape(type="rect", x0=-0.5, x1=w - 0.5, y0=-0.5, y1=h - 0.5,
                      line=dict(color=MARK, width=2), row=row, col=marked + 1)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    square_cells(fig)
    return _fig(fig, height=230, margin=dict(l=10, r=40, t=40, b=10))


@st.cache_data(max_entries=64, show_spinner=False)
def gap_figure(gaps: dict[str, list[dict]], which: str, size: int = 7) -> go.Figure:
    """Each student's normalised CAT distance to the teacher's maps per epoch (``which``:
    "pooled", at CAT's 2 × 2, or "full", at the maps' own ``size``)."""
    title = "distance at 2 × 2" if which == "pooled" else f"distance at {size} × {size}"
    fig = _fig(xaxis_title="epoch", yaxis_title=title, height=320, legend=LEGEND_BELOW)
    colours = model_colours(list(gaps))
    for name, per_epoch in gaps.items():
        fig.add_scatter(x=list(range(1, len(per_epoch) + 1)), y=[e[which] for e in per_epoch],
                        name=LABEL.get(name, name), mode="lines+markers",
                        line=dict(color=colours[name], width=3))  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max((len(v) for v in gaps.values()), default=1)))
    fig.update_yaxes(rangemode="tozero")
    return fig


def show_trained(run) -> None:
    """The stored run's students: each one's maps of a kept test image beside the teacher's, and
    every student's distance to the teacher's maps per epoch."""
    result = run.result or {}
    gaps, kept = result.get("class_map_gap") or {}, result.get("class_maps") or {}
    if not gaps or not kept.get("students"):
        ui.fallback(f"{lab_ui.run_name(run)} kept no class maps; run it again.")
        return
    names = list(kept["students"])
    best = min(names, key=lambda n: gaps.get(n, [{"pooled": 9e9}])[-1]["pooled"])
    c1, c2 = st.columns(2)
    with c1:
        who = ui.url_choice("Student", names, "cat_who", best,
                            format_func=lambda n: LABEL.get(n, n))  # fmt: skip
    with c2:  # the kept images by their number in the test set, as the URL names them
        image = ui.url_choice("Test image", kept["indices"], "cat_img", kept["indices"][0])
    at = kept["indices"].index(image)
    label = kept["labels"][at]
    teacher, student = np.array(kept["teacher"][at]), np.array(kept["students"][who][at])
    size = teacher.shape[-1]  # 7 on MNIST (28 / 4), 8 on CIFAR
    thumb, maps_col = st.columns([1, 7])
    thumb.image(ui.test_png(image), caption=f"#{image}", width=56)
    with maps_col:
        ui.plot(pair_figure(teacher, student, label), key="cat_pair")
    said = ", ".join(f"{LABEL.get(n, n)} {v[-1]['pooled']:.3f}" for n, v in gaps.items())
    probe = (result.get("config") or {}).get("probe_batch", 128)
    st.caption(
        f"Test image #{image}, a {label} (outlined): the teacher's ten class maps above the "
        f"student's ({LABEL.get(who, who)}) at its last epoch, red where "
        "the class is seen, blue where it is seen against, each row on its own scale. Distance "
        f"to the teacher's maps at CAT's 2 × 2, normalised, on {probe} test images after the "
        f"last epoch: {said}."
    )
    left, right = st.columns(2)
    with left:
        ui.plot(gap_figure(gaps, "pooled"), key="cat_gap_pooled")
    with right:
        ui.plot(gap_figure(gaps, "full", size), key="cat_gap_full")
    end = {n: v[-1] for n, v in gaps.items()}
    near = min(end, key=lambda n: end[n]["full"])
    st.caption(
        "How far each student's maps lie from the teacher's in *where* each class is seen, after "
        "each epoch: CAT's loss with every map scaled to length 1, at CAT's 2 × 2 (left) and at "
        f"the maps' full {size} × {size} (right), 0 when every map is the teacher's at some "
        f"strength. The nearest at {size} × {size} at the end: {LABEL.get(near, near)} "
        f"({end[near]['full']:.4f}). The "
        "hard-label and KD students never see a map: theirs come from the labels or the "
        "teacher's probabilities alone."
    )
