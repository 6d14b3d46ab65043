"""The local-logits page's figures and sections: one image's logit map through a ResNet teacher,
pooled into cells at 1 × 1, 2 × 2 and 4 × 4 as scale decoupled distillation pools it (Wei, Luo &
Luo 2024), each cell's answer and softened probabilities, which cells SD-KD weighs as
complementary; and the sdd-mnist run's students (their cells beside the teacher's, and how far
they lie from the teacher's at each scale, epoch by epoch).

The figures are functions of arrays and a run's records, each built once per input
(``st.cache_data``); only the ``show_*`` functions draw.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks, square_cells, subplots
from app.relation_figures import _fig, model_colours
from kdcore.data import load_mnist
from kdcore.losses.sdd import LAYER, complementary, region_logits
from kdcore.presets_sdd import KEPT_SCALES

PRESET = "sdd-mnist"
COST = (
    "One epoch trains a ResNet-20 teacher (cached afterwards, shared with cat-mnist) and five "
    "ResNet-8 students: some 4 minutes on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4, 240 epochs): KD 73.33%, SD-KD at M = {1, 2} "
    "76.63%, at {1, 2, 4} 75.74% (Wei, Luo & Luo 2024, Tables 6 and 7)."
)
MARK = "#e03131"  # a complementary cell
LABEL = {
    "student_hard": "hard labels",
    "student_kd": "KD",
    "student_sdd": "SD-KD, M = {1, 2}",
    "student_sdd_fine": "SD-KD, M = {1, 2, 4}",
    "student_sdd_even": "SD-KD, β = 1",
}
SCALE_NAME = {1: "whole image", 2: "2 × 2", 4: "4 × 4"}


def scales_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


@st.cache_data(max_entries=8, show_spinner="Pooling the teacher's logit maps…")
def all_cells(path: str, n: int = 1000) -> np.ndarray:
    """The first ``n`` test images' cells through the teacher at 1 × 1, 2 × 2 and 4 × 4,
    (n, K, 21)."""
    net = ui.saved_model(path)
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[:n])
        return region_logits(out.features[LAYER], out.logits, list(KEPT_SCALES)).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def image_cells(path: str, index: int) -> np.ndarray:
    """Test image ``index``'s cells through the teacher at 1 × 1, 2 × 2 and 4 × 4, (K, 21)."""
    net = ui.saved_model(path)
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[index : index + 1])
        return region_logits(out.features[LAYER], out.logits, list(KEPT_SCALES))[0].numpy()


def pick(cells: np.ndarray, scales: tuple[int, ...]) -> np.ndarray:
    """Of cells (..., K, 21) at 1 × 1, 2 × 2 and 4 × 4, those of ``scales``, scale by scale as
    the loss lays them out: (..., K, Σ m²) (M = {1, 4}: the whole image and the sixteen)."""
    start = np.cumsum([0] + [m * m for m in KEPT_SCALES])
    at = {m: start[i] for i, m in enumerate(KEPT_SCALES)}
    return np.concatenate([cells[..., at[m] : at[m] + m * m] for m in scales], axis=-1)


@st.cache_data(max_entries=4, show_spinner=False)
def most_ambiguous(path: str, count: int = 12) -> list[int]:
    """Test images (of the first 1,000) whose teacher cells most often name another class than
    the whole image does, most first: where SD-KD's β weighs most."""
    cells = torch.from_numpy(all_cells(path))
    y = load_mnist().y_test[: len(cells)]
    share = complementary(cells, y, "class").float().sum(1)
    return [int(i) for i in torch.argsort(share, descending=True, stable=True)[:count]]


def softened(cells: np.ndarray, T: float) -> np.ndarray:
    """Each cell's softmax at temperature T over the classes: (K, R) -> (K, R)."""
    return torch.softmax(torch.from_numpy(cells) / T, 0).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def grid_figure(cells: np.ndarray, scales: tuple[int, ...], T: float) -> go.Figure:
    """One panel per scale: m × m cells coloured by how sure each is of its class at T and
    labelled with that class; a cell whose class is not the whole image's outlined in red
    (complementary, by the paper's rule). ``cells``: (K, Σ m²) for one image, the cells of
    ``scales`` in order (:func:`pick`)."""
    probs = softened(cells, T)
    fig = subplots(1, len(scales), subplot_titles=[SCALE_NAME[m] for m in scales],
                   horizontal_spacing=0.06)  # fmt: skip
    whole = int(np.argmax(cells[:, 0]))
    at = 0
    for col, m in enumerate(scales, start=1):
        top = probs[:, at : at + m * m].max(0).reshape(m, m)
        cls = probs[:, at : at + m * m].argmax(0).reshape(m, m)
        fig.add_trace(go.Heatmap(z=top, zmin=0, zmax=1, colorscale="Blues", showscale=col == 1,
                                 text=cls.astype(str), texttemplate="%{text}",
                                 textfont=dict(size=22 if m < 4 else 15),
                                 colorbar=dict(thickness=12, title="p"),
                                 hovertemplate="says %{text}, p = %{z:.3f}<extra></extra>"),
                      row=1, col=col)  # fmt: skip
        for i, j in zip(*np.nonzero(cls != whole), strict=True):
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                          line=dict(color=MARK, width=3), row=1, col=col)  # fmt: skip
        at += m * m
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    square_cells(fig)
    return _fig(fig, height=250, margin=dict(l=10, r=10, t=40, b=10))


@st.cache_data(max_entries=64, show_spinner=False)
def targets_figure(cells: np.ndarray, scales: tuple[int, ...], T: float) -> go.Figure:
    """The soft targets each cell sends at T: a row per cell (the whole image first, then each
    scale's cells row by row), a column per class. ``cells`` as :func:`grid_figure` takes them."""
    names = [f"{SCALE_NAME[m]}" + (f", cell {k + 1}" if m > 1 else "") for m in scales
             for k in range(m * m)]  # fmt: skip
    probs = softened(cells, T).T  # (R, K)
    hover = "%{y}: p(%{x}) = %{z:.3f}<extra></extra>"
    fig = go.Figure(go.Heatmap(z=probs, x=[str(k) for k in range(probs.shape[1])], y=names,
                               zmin=0, zmax=1, colorscale="Blues", colorbar=dict(thickness=12),
                               hovertemplate=hover))  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category")
    return _fig(fig, xaxis_title="class", height=60 + 22 * len(names),
                margin=dict(l=10, r=10, t=10, b=40))  # fmt: skip


@st.cache_data(max_entries=64, show_spinner=False)
def gap_figure(gaps: dict[str, list[dict]]) -> go.Figure:
    """Each student's T² KL(teacher ‖ student) at T = 4 per epoch, averaged over each scale's
    cells, one panel per scale."""
    fig = subplots(1, 3, subplot_titles=[SCALE_NAME[m] for m in KEPT_SCALES],
                   horizontal_spacing=0.08)  # fmt: skip
    colours = model_colours(list(gaps))
    for col, m in enumerate(KEPT_SCALES, start=1):
        for name, per_epoch in gaps.items():
            fig.add_scatter(x=list(range(1, len(per_epoch) + 1)), y=[e[str(m)] for e in per_epoch],
                            name=LABEL.get(name, name), mode="lines+markers", showlegend=col == 1,
                            line=dict(color=colours[name], width=3), row=1, col=col)  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max((len(v) for v in gaps.values()), default=1)))
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(title_text="T² KL to the teacher", row=1, col=1)
    return _fig(fig, height=330, legend=LEGEND_BELOW, margin=dict(l=40, r=10, t=40, b=10))


def show_trained(run) -> None:
    """The stored run's students: one's cells on a kept test image beside the teacher's, and every
    student's distance to the teacher's cells at each scale per epoch."""
    result = run.result or {}
    gaps, kept = result.get("cell_gap") or {}, result.get("cells") or {}
    if not gaps or not kept.get("students"):
        ui.fallback(f"{lab_ui.run_name(run)} kept no cells; run it again.")
        return
    names = list(kept["students"])
    # the kept image whose teacher cells most often name another class than the whole
    teacher = torch.tensor(kept["teacher"])
    disagree = complementary(teacher, torch.tensor(kept["labels"]), "class").sum(1)
    first = kept["indices"][int(torch.argmax(disagree))]
    c1, c2 = st.columns(2)
    with c1:
        who = ui.url_choice("Student", names, "sdd_who", names[min(2, len(names) - 1)],
                            format_func=lambda n: LABEL.get(n, n))  # fmt: skip
    with c2:  # the kept images by their number in the test set, as the URL names them
        image = ui.url_choice("Test image", kept["indices"], "sdd_img", first)
    at = kept["indices"].index(image)
    thumb, grids = st.columns([1, 7])
    thumb.image(ui.test_png(image), caption=f"#{image}, a {kept['labels'][at]}", width=56)
    with grids:
        for who_name, cells in (("teacher", kept["teacher"][at]),
                                (LABEL.get(who, who), kept["students"][who][at])):  # fmt: skip
            st.caption(who_name)
            ui.plot(grid_figure(np.array(cells), KEPT_SCALES, 4.0), key=f"sdd_{who_name[:7]}")
    st.caption(
        f"Test image #{image}: the class each cell names at T = 4 and how sure it is, the "
        f"teacher's above the student's ({LABEL.get(who, who)}) at its last epoch; a cell that "
        "names another class than its own model's whole image outlined."
    )
    ui.plot(gap_figure(gaps), key="sdd_gaps")
    end = {n: v[-1] for n, v in gaps.items()}
    said = "; ".join(f"{LABEL.get(n, n)} {e['1']:.3f}, {e['2']:.3f}, {e['4']:.3f}"
                     for n, e in end.items())  # fmt: skip
    history = result.get("history") or {}
    shares = {n: h[-1]["extra"]["complementary"] for n, h in history.items()
              if h and "complementary" in h[-1].get("extra", {})}  # fmt: skip
    st.caption(
        "How far each student's cells lie from the teacher's after each epoch: T² KL(teacher ‖ "
        "student) at T = 4, averaged over each scale's cells, on the run's probe images. After "
        f"the last epoch, at 1 × 1, 2 × 2 and 4 × 4: {said}. KD is taught the whole image "
        "alone; SD-KD at M = {1, 2} the whole and its four quarters; at {1, 2, 4} sixteen cells "
        "more."
        + (" The teacher's cells SD-KD weighed as complementary in the last epoch: "
           + ", ".join(f"{LABEL.get(n, n)} {100 * v:.1f}%" for n, v in shares.items()) + "."
           if shares else "")
    )  # fmt: skip
