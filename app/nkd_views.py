"""The DKD page's section on normalized KD (Yang et al. 2023): for the page's test image, the demo
teacher's and student's distributions over the nine other digits, normalised, at the page's T
as λ; KD's cross-entropy split exactly in three beside NKD's two parts, for the image and over
the test set, at a γ from a slider; the stored nkd-mnist run's students.

:func:`non_target_figure` and :func:`parts_table` are plain functions of numbers; only
:func:`show_nkd` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig
from kdcore.losses.dkd import non_target_log_probs
from kdcore.losses.nkd import NKD_GAMMA, kd_split, non_target_part, target_part

CODE = (target_part, non_target_part, kd_split)
PRESET = "nkd-mnist"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and three 30-30 students: about 8 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (ImageNet, ResNet-34 → ResNet-18): 69.90% top-1 alone, 71.96% by NKD (Yang et al. "
    "2023, official README)."
)
KD_ROW, NKD_ROW = "KD (T = 1)", "NKD"
COLUMNS = ("label term", "rest term", "wrong digits", "total")


@st.cache_data(max_entries=32)
def nkd_compute(lam: float) -> dict[str, np.ndarray]:
    """Per test image, the demo student against the demo teacher: KD's three parts at T = 1
    (:func:`kd_split`), NKD's non-target cross-entropy at λ before γ, and both models' normalised
    non-target distributions at λ (N, 9)."""
    bundle = ui.load_demo(str(ui.models_dir()))
    s, t, y = bundle.student_logits, bundle.teacher_logits, bundle.data.y_test
    out = {k: v.numpy() for k, v in kd_split(s, t, y).items()}
    out["nkd_non_target"] = non_target_part(s, t, y, lam, "none").numpy()
    out["teacher_hat"] = non_target_log_probs(t, y, lam).exp().numpy()
    out["student_hat"] = non_target_log_probs(s, y, lam).exp().numpy()
    return out


def parts_table(out: dict[str, np.ndarray], rows, gamma: float) -> pd.DataFrame:
    """KD's three parts and NKD's two (its non-target one times γ), summed over ``rows`` (an
    index or a slice) and averaged: one image, or the test set."""
    mean = {k: float(np.mean(np.atleast_1d(v[rows]))) for k, v in out.items()}
    kd = (mean["target"], mean["rest"], mean["non_target"])
    nkd = (mean["target"], 0.0, gamma * mean["nkd_non_target"])
    return pd.DataFrame([[*kd, sum(kd)], [*nkd, sum(nkd)]], index=[KD_ROW, NKD_ROW],
                        columns=COLUMNS)  # fmt: skip


def non_target_figure(digits: list[int], teacher: np.ndarray, student: np.ndarray) -> go.Figure:
    """One image's two normalised distributions over the digits that are not its label."""
    fig = _fig(xaxis_title="digit (not the label)", yaxis_title="share of the rest", height=320,
               barmode="group", legend=LEGEND_BELOW)  # fmt: skip
    fig.update_xaxes(type="category")
    for name, p, colour in (("teacher", teacher, COLORS["teacher"]),
                            ("demo student", student, COLORS["student"])):  # fmt: skip
        fig.add_bar(x=[str(d) for d in digits], y=p, name=name, marker_color=colour,
                    hovertemplate=f"{name}, digit %{{x}}: %{{y:.4f}}<extra></extra>")  # fmt: skip
    return fig


def show_nkd(queue, index: int, label: int, T: float) -> None:
    """The section for test image ``index`` (its label ``label``) at the page's T as λ."""
    ui.prose(
        "KD's cross-entropy splits exactly in three: the label's term, the *rest* as one lump, "
        "and how the rest spreads over the wrong digits, normalised to sum to one and weighted "
        "by 1 − T_t. **NKD** (Yang et al. 2023) keeps the label's term with the teacher's "
        "probability as its weight, drops the lump and gives the normalised wrong digits a "
        "constant weight γ: the teacher's ranking of the wrong digits counts as much on an "
        "image it is sure of as on one it doubts."
    )
    gamma = ui.url_float("γ, weight of the wrong digits", "nkd_gamma", 0.0, 8.0, NKD_GAMMA, 0.5,
                         slider=True)  # fmt: skip
    out = nkd_compute(T)
    digits = [d for d in range(out["teacher_hat"].shape[1] + 1) if d != label]
    ui.plot(non_target_figure(digits, out["teacher_hat"][index], out["student_hat"][index]),
            key="nkd_non_target")  # fmt: skip
    left, right = st.columns(2)
    fmt = "{:.4f}"
    with left:
        st.caption("This image")
        st.table(parts_table(out, index, gamma).style.format(fmt))
    with right:
        st.caption("Mean over the 10,000 test images")
        st.table(parts_table(out, slice(None), gamma).style.format(fmt))
    w = float(out["weight"][index])
    st.caption(
        f"At T = {T:g} as λ (the page's; the official runs use 1), and KD at T = 1, the split's "
        f"own. On this image the teacher gives the other digits 1 − T_t = {w:.2e} of its "
        f"probability, so KD lets their ranking through at that weight; NKD at γ = {gamma:g}, "
        f"{gamma / max(w, 1e-12):,.0f} times as much. Over the test set the median weight is "
        f"{float(np.median(out['weight'])):.2e}."
    )
    st.latex(  # in lines: a phone's column is narrower than the sum
        r"\begin{gathered}\mathrm{CE} = -T_t \log S_t - (1 - T_t)\log(1 - S_t)\\ "
        r"- (1 - T_t)\sum_{i \ne t} \hat T_i \log \hat S_i,\\ "
        r"\mathcal L_{NKD} = -T_t \log S_t - \gamma\lambda^2 \sum_{i \ne t} \hat T^{\lambda}_i "
        r"\log \hat S^{\lambda}_i\end{gathered}"
    )
    lab_ui.stored_students(queue, PRESET, "nkd", COST, ("ep_nkd", "run_nkd"), PAPER_LINE)
    ui.page_link("modes", "The same paper without a teacher: USKD's own soft labels",
                 {"mode": "uskd"})  # fmt: skip
