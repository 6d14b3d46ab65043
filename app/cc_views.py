"""The relations page's section on correlation congruence (Peng et al. 2019): the batch's
Gaussian-kernel matrix under the demo teacher and student, the Taylor series that stands for the
kernel, and a stored cc-mnist run, where every student is judged by the paper's loss.

:func:`cc_numbers`, :func:`series_figure` and :func:`congruence_lines` are plain functions of
tensors and records; only the ``show_`` functions talk to Streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig, gap_figure, heatmap_pair
from kdcore.geometry import cosine_matrix
from kdcore.losses.cc import (
    CC_GAMMA,
    CC_ORDER,
    CC_WEIGHT,
    benchmark_cc_loss,
    cc_loss,
    correlation_matrix,
    rbf_kernel,
    rbf_of_cosine,
    rbf_series,
)

PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): hard labels 72.50%, KD 73.33%, CC 72.97% "
    "(Tian et al. 2020, Table 1), run with RepDistiller's code for CC, the student_cc_code here."
)
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and five 30-30 students: about 6 s on a quiet 2-core CPU."
)


def cc_numbers(t: torch.Tensor, s: torch.Tensor, labels: list[int], sel: int, gamma: float,
               order: int) -> dict:  # fmt: skip
    """Teacher's and student's ψ (n, n), L_CC, the series' largest error against the exact
    kernel on the teacher's pairs, the range of the teacher's cosines off the diagonal, and for
    the selected image how much higher its kernel is with its own digit than with the others
    (teacher, student)."""
    psi_t, psi_s = correlation_matrix(t, gamma, order), correlation_matrix(s, gamma, order)
    y = torch.tensor(labels)
    same = (y == y[sel]) & (torch.arange(len(y)) != sel)  # (n,)
    other = y != y[sel]

    def contrast(psi: torch.Tensor) -> float:
        if not same.any() or not other.any():
            return float("nan")
        return float(psi[sel][same].mean() - psi[sel][other].mean())

    cos = cosine_matrix(t)[~torch.eye(len(y), dtype=torch.bool)]  # the n(n − 1) distinct pairs
    return {
        "psi_t": psi_t.numpy(), "psi_s": psi_s.numpy(),
        "loss": float(cc_loss(s, t, gamma, order)),
        "series_error": float((psi_t - rbf_kernel(t, gamma)).abs().max()),
        "cos_range": (float(cos.min()), float(cos.max())),
        "contrast": (contrast(psi_t), contrast(psi_s)),
    }  # fmt: skip


def series_figure(gamma: float, order: int, cos_range: tuple[float, float]) -> go.Figure:
    """The exact Gaussian RBF between unit vectors against their cosine, and its Taylor series
    of orders 0 to P (the chosen one bold), with the teacher's pairs' range shaded."""
    c = torch.linspace(-1.0, 1.0, 201, dtype=torch.float64)
    fig = _fig(xaxis_title="cosine of the two examples' features",
               yaxis_title="kernel value", height=340, legend=LEGEND_BELOW)  # fmt: skip
    lo, hi = cos_range
    fig.add_vrect(x0=lo, x1=hi, fillcolor=COLORS["soft"], line_width=0,
                  annotation_text="the teacher's pairs",
                  annotation_position="top left")  # fmt: skip
    fig.add_scatter(x=c.numpy(), y=rbf_of_cosine(c, gamma).numpy(), name="exact RBF",
                    line=dict(color=COLORS["teacher"], width=3))  # fmt: skip
    lower = "P = 0" if order == 1 else f"P = 0 to {order - 1}"
    for p in range(order + 1):
        chosen = p == order
        fig.add_scatter(
            x=c.numpy(), y=rbf_series(c, gamma, p).numpy(), name=f"P = {p}",
            # the lower orders share one legend entry, as they share one grey
            showlegend=chosen or p == 0, legendgroup="chosen" if chosen else "lower",
            hovertemplate=f"P = {p}: %{{y:.3f}}<extra></extra>",
            line=dict(color=COLORS["student"] if chosen else COLORS["muted"],
                      width=3 if chosen else 1, dash=None if chosen else "dot"),
        )  # fmt: skip
        if p == 0 and not chosen:
            fig.data[-1].name = lower
    return fig


def congruence_lines(gaps: dict[str, list[float]]) -> str:
    """Each student's last L_CC to the teacher, in one sentence."""
    parts = [f"{name} {values[-1]:.4f}" for name, values in gaps.items() if values]
    return "After the last epoch, L_CC to the teacher on the test batch: " + ", ".join(parts) + "."


def show_cc(t: torch.Tensor, s: torch.Tensor, labels: list[int], sel: int) -> None:
    """The section for the page's batch: ``t``, ``s`` the demo teacher's and student's embeddings
    (n, D), ``sel`` the image marked in every view."""
    ui.prose(
        "Correlation congruence (Peng et al. 2019) puts every pair of the batch through a "
        "**Gaussian kernel**, exp(−γ‖a − b‖²) between the two normalised feature vectors, and "
        "asks the student's n × n matrix to equal the teacher's, entry by entry. The kernel is "
        "taken as a short Taylor series in the pair's cosine: with P = 2 a quadratic, so a "
        "pair that is already alike counts for more than a straight cosine would give it."
    )
    c1, c2 = st.columns(2)
    with c1:
        gamma = ui.url_float("γ, the kernel's width", "cc_g", 0.05, 2.0, CC_GAMMA, 0.05,
                             slider=True)  # fmt: skip
    with c2:
        order = ui.url_int("P, terms of the series after the first", "cc_p", 0, 8, CC_ORDER)
    out = cc_numbers(t, s, labels, sel, gamma, order)
    low = float(min(out["psi_t"].min(), out["psi_s"].min()))
    ui.plot(heatmap_pair(out["psi_t"], out["psi_s"], ("teacher ψ(F_t)", "student ψ(F_s)"),
                         labels, sel, zmin=low), key="cc")  # fmt: skip
    m1, m2, m3 = st.columns(3)
    m1.metric("L_CC, demo student", f"{out['loss']:.2e}",
              f"β·L_CC = {CC_WEIGHT * out['loss']:.3f}", delta_color="off",
              delta_arrow="off")  # fmt: skip
    own_t, own_s = out["contrast"]
    if own_t == own_t:  # not NaN: the batch has other images of its digit, and others
        m2.metric(f"Its kernel with other {labels[sel]}s, above the rest",
                  f"{own_t:+.3f} teacher", f"{own_s:+.3f} student", delta_color="off",
                  delta_arrow="off")  # fmt: skip
    else:
        m2.metric(
            f"Its kernel with other {labels[sel]}s",
            "—",
            help="No other image of its digit (or no other digit) in this batch",
        )
    m3.metric(
        "The series' largest error",
        f"{out['series_error']:.1e}",
        help="Against the exact Gaussian kernel, over the teacher's pairs of this batch",
    )
    ui.plot(series_figure(gamma, order, out["cos_range"]), key="cc_series")
    lo, hi = out["cos_range"]
    st.caption(
        f"The teacher's pairs have cosines from {lo:.2f} to {hi:.2f} (shaded). P = 0 is the "
        f"constant e^(−2γ) = {math.exp(-2 * gamma):.3f}, the same for every pair: nothing to "
        "learn. Each further term bends the curve towards the exact kernel; the benchmark "
        "configurations use P = 2 and γ = 0.4."
    )
    st.latex(  # in lines, as the other equations: whole, a phone shrinks it below reading size
        r"\begin{gathered}\psi(F)_{ij} = \sum_{p=0}^{P} e^{-2\gamma}\frac{(2\gamma)^p}{p!}"
        r"\big(\hat F_i^\top \hat F_j\big)^p \approx e^{-\gamma\lVert \hat F_i - \hat F_j"
        r"\rVert^2}\\ \mathcal L_{CC} = \frac{1}{B^2}\big\lVert \psi(F_t) - \psi(F_s)"
        r"\big\rVert_F^2\end{gathered}"
    )
    st.caption(
        "The CRD benchmark's CC row was not this loss. RepDistiller's code for CC (sent to it by "
        "the paper's first author) maps both models' features through trained 128-d heads and "
        "multiplies each example's absolute difference with the **next** example's: no kernel, "
        "no matrix, and a loss that changes when the batch is shuffled. The cc-mnist preset "
        "below trains both."
    )


def show_stored_cc(queue, cost: str = COST) -> None:
    """The cc-mnist preset's stored run: the students' errors and curves, each one's L_CC to the
    teacher per epoch on a fixed test batch, and the last epoch's matrices of one of them."""
    run = lab_ui.stored_students(queue, "cc-mnist", "cc", cost, ("ep_cc", "run_cc"), PAPER_LINE)
    result = (run.result or {}) if run is not None else {}
    gaps, mats = result.get("congruence"), result.get("correlation_matrices")
    if not gaps or not mats or not mats.get("students"):
        return
    n = max(len(v) for v in gaps.values())
    ui.plot(gap_figure(gaps, n, "L_CC to the teacher, test batch"), key="cc_congruence")
    st.caption(congruence_lines(gaps))
    names = list(mats["students"])
    who = ui.url_choice("Student", names, key="cc_who",
                        default="student_cc" if "student_cc" in names else names[0])  # fmt: skip
    left, right = np.array(mats["teacher"]), np.array(mats["students"][who])
    pair = heatmap_pair(left, right, ("teacher", f"{who}, last epoch"), mats["labels"],
                        zmin=float(min(left.min(), right.min())))  # fmt: skip
    ui.plot(pair, key="cc_stored")


CODE = (rbf_series, correlation_matrix, cc_loss, benchmark_cc_loss)
