"""Beyond plain KD on the logits: KD split into its target-class and non-target-class parts
(DKD, Zhao et al. 2022), and the teacher's predictions matched only up to scale and shift (DIST,
Huang et al. 2022)."""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app import lab_ui, nkd_views, ui, wsld_views
from app.dist_views import show_stronger
from app.figures import COLORS
from app.relation_figures import dkd_scatter_figure, probabilities_figure
from app.zscore_views import PAPER_LINE, show_zscore
from kdcore.losses.dist import pearson_distance, relations, toward_uniform
from kdcore.losses.dkd import dkd_loss, dkd_parts, kd_per_example, teacher_target_prob
from kdcore.losses.zscore import zscore_kd_loss

SHOWN = 2000  # test images in the scatter (all 10,000 go into the means)
PRESET = "dkd-mnist"
COST = (  # README: 9 s for one epoch on an idle 2-core CPU, 3-15 times that on a busy one
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the other relation "
    "presets) and three 30-30 students: about 10 s on a quiet 2-core CPU, up to two minutes on "
    "a busy one."
)
SURE = "the teacher, less sure"


@st.cache_data(max_entries=32)
def dist_compute(T: float, a: float) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Over the test set at T: T²·KL and DIST's two relations from the teacher, of the demo
    student and of the teacher made less sure (:func:`toward_uniform` by ``a``), and the three
    probability tables."""
    bundle = ui.load_demo(str(ui.models_dir()))
    p_t = torch.softmax(bundle.teacher_logits / T, 1)  # (N, 10)
    probs = {"teacher": p_t, "demo student": torch.softmax(bundle.student_logits / T, 1),
             SURE: toward_uniform(p_t, a)}  # fmt: skip
    rows = {}
    for name in ("demo student", SURE):
        # T·log q as logits: their softmax at T is q itself
        kl = kd_per_example(T * probs[name].log(), bundle.teacher_logits, T).mean()
        inter, intra = relations(probs[name], p_t, T)
        rows[name] = {"T²·KL": float(kl), "τ²·L_inter": float(inter), "τ²·L_intra": float(intra)}
    return pd.DataFrame(rows).T, {k: v.numpy() for k, v in probs.items()}


@st.cache_data(max_entries=32)
def compute(T: float) -> dict:
    """TCKD, NCKD, KD and p_t of the demo student against the demo teacher, per test image."""
    bundle = ui.load_demo(str(ui.models_dir()))
    s, t, y = bundle.student_logits, bundle.teacher_logits, bundle.data.y_test
    tckd, nckd = dkd_parts(s, t, y, T, reduction="none")  # (N,) each
    return {
        "tckd": tckd.numpy(),
        "nckd": nckd.numpy(),
        "kd": kd_per_example(s, t, T).numpy(),
        "p_t": teacher_target_prob(t, y, T).numpy(),
    }


st.title("Decoupled KD: which part of KD carries the knowledge")
ui.prose(
    "Split the teacher's softened distribution in two: how much it puts on the **true class** "
    "(p_t against the rest: TCKD) and how it spreads the rest **over the other classes** "
    "(renormalised: NCKD, the 'dark knowledge' of which wrong digits look alike). Zhao et al. "
    "(2022) show that KD is exactly TCKD + (1 − p_t)·NCKD: the more confident the teacher, the "
    "less of the non-target knowledge KD lets through. Decoupled KD weights the two parts "
    "freely, α·TCKD + β·NCKD, and on CIFAR-100 a β of 8 beat KD by three points."
)
bundle = ui.demo()
example = ui.pick_example(bundle, default_digit=3, default_k=0)
c1, c2, c3 = st.columns(3)
with c1:
    alpha = ui.url_float("α, weight of TCKD", "alpha", 0.0, 10.0, 1.0, 0.5, slider=True)
with c2:
    beta = ui.url_float("β, weight of NCKD", "beta", 0.0, 16.0, 8.0, 0.5, slider=True)
with c3:
    T = ui.url_float("Temperature T", "T", 0.5, 20.0, 4.0, 0.5, slider=True)

out = compute(T)
i = example.index
tckd, nckd, kd, p_t = (float(out[k][i]) for k in ("tckd", "nckd", "kd", "p_t"))

st.header("For this image: KD = TCKD + (1 − p_t) · NCKD")
cols = st.columns(4)
cols[0].metric("p_t (teacher, at T)", f"{p_t:.4f}")
cols[1].metric("T²·TCKD", f"{tckd:.4f}")
cols[2].metric("T²·NCKD", f"{nckd:.4f}")
cols[3].metric("T²·KD", f"{kd:.4f}")
st.latex(
    rf"\underbrace{{{kd:.4f}}}_{{\mathrm{{KD}}}} = \underbrace{{{tckd:.4f}}}_{{\mathrm{{TCKD}}}}"
    rf" + (1 - {p_t:.4f}) \cdot \underbrace{{{nckd:.4f}}}_{{\mathrm{{NCKD}}}}"
    rf" = {tckd + (1 - p_t) * nckd:.4f}"
)
dkd_here = alpha * tckd + beta * nckd
st.markdown(
    f"KD gives this image's non-target knowledge a weight of 1 − p_t = **{1 - p_t:.4f}**; DKD "
    f"gives it β = **{beta:g}**, {beta / max(1 - p_t, 1e-12):,.0f} times as much. "
    f"DKD here: α·TCKD + β·NCKD = **{dkd_here:.4f}**."
)

st.header("Over the test set: confident teachers silence NCKD")
mean = {k: float(np.mean(v)) for k, v in out.items()}
cols = st.columns(3)
cols[0].metric("mean T²·KD", f"{mean['kd']:.4f}")
cols[1].metric("mean DKD (α·TCKD + β·NCKD)", f"{alpha * mean['tckd'] + beta * mean['nckd']:.4f}")
cols[2].metric("images with p_t > 0.9", f"{np.mean(out['p_t'] > 0.9):.0%}")
rows = np.random.default_rng(0).choice(len(out["p_t"]), SHOWN, replace=False)
fig = dkd_scatter_figure(out["p_t"][rows], out["nckd"][rows], (p_t, nckd))
ui.plot(fig, key="scatter")
st.caption(
    f"{SHOWN:,} random test images. Orange: NCKD as DKD sees it (before β); blue: the same "
    "NCKD times 1 − p_t, as KD weighs it. Towards p_t = 1 the blue points fall by orders of "
    "magnitude: the teacher's knowledge about the wrong classes is there, KD just ignores it."
)
st.latex(
    r"\begin{gathered}\mathrm{KD} = \mathrm{KL}(\mathbf{b}^{\mathcal T}\|\mathbf{b}^{\mathcal S})"
    r" + (1 - p_t^{\mathcal T})\,"
    r"\mathrm{KL}(\hat{\mathbf p}^{\mathcal T}\|\hat{\mathbf p}^{\mathcal S}),"
    r"\\ \mathrm{DKD} = \alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}\end{gathered}"
)


st.header("Trained with DKD: the dkd-mnist preset")
queue = lab_ui.optional_queue()  # or one line on why the store cannot be read, for both sections
lab_ui.stored_students(queue, PRESET, "dkd", COST, ("ep_dkd", "run_dkd"), "Paper (CIFAR-100, "
                       "resnet32x4 → resnet8x4): KD 73.33%, DKD 76.32% (Zhao et al. 2022, "
                       "Table 6).")  # fmt: skip

st.header("DIST: match the teacher up to scale and shift")
ui.prose(
    "A much stronger teacher can be surer than a small student could ever be, and KL asks for "
    "its exact probabilities. **DIST** (Huang et al. 2022) asks only that the student's "
    "probabilities rise and fall with the teacher's: one minus their Pearson correlation, over "
    "the classes for each image (*inter-class*) and over the images for each class "
    "(*intra-class*). Make the teacher less sure below: its ranking stays, KL grows, DIST stays "
    "at zero."
)
a = ui.url_float("How sure, as a share of the teacher's spread", "sure", 0.05, 1.0, 0.5, 0.05,
                 slider=True)  # fmt: skip
table, probs = dist_compute(T, a)
ui.plot(probabilities_figure({k: v[i].tolist() for k, v in probs.items()},
                             [COLORS["teacher"], COLORS["student"], COLORS["other"]]),
        key="dist_probs")  # fmt: skip
# a distance of 0 computed as -1e-9 is still 0, not "-0.0000"
st.table(table.style.format(lambda v: f"{v:.4f}".replace("-0.0000", "0.0000")))
one = float(pearson_distance(torch.tensor(probs[SURE][i : i + 1]),
                             torch.tensor(probs["teacher"][i : i + 1]))[0])  # fmt: skip
st.caption(
    f"This image at T = {T:g} (the page's T serves as DIST's τ), and the means over the 10,000 "
    f"test images. {SURE.capitalize()}: a·p + (1 − a)/10 with a = {a:g}, the same ranking; its "
    f"Pearson distance to the teacher on this image is {one:.1e}, while its KL is not 0. The "
    "demo student (784-30-30-10) is the one this page's DKD figures use."
)
st.latex(r"\begin{gathered}\mathcal L_{inter} = \frac{\tau^2}{B}\sum_i \big(1 - \rho(Y^S_{i,:}, "
         r"Y^T_{i,:})\big)\\ \mathcal L_{intra} = \frac{\tau^2}{C}\sum_j \big(1 - \rho(Y^S_{:,j}, "
         r"Y^T_{:,j})\big)\end{gathered}")  # fmt: skip
lab_ui.stored_students(queue, "dist-mnist", "dist", COST, ("ep_dist", "run_dist"), "Paper "
                       "(ImageNet, ResNet-18 students): KD from a ResNet-34 teacher 71.21%, DIST "
                       "72.07% (Huang et al. 2022, official README).")  # fmt: skip

st.header("DIST from stronger teachers: the dist-stronger preset")
ui.prose(
    "DIST's case is the teacher much stronger than its student. So take the tiny 10-10 student "
    "of the capacity-gap view, which KD from a bigger teacher leaves *worse* than hard labels "
    "alone, and distil it by KD and by DIST from teachers of three sizes. Both panels count "
    "accuracy points gained over the student trained alone: here, and in the paper's ImageNet "
    "table."
)
show_stronger(queue)

st.header("Logit standardisation: KD on z-scores")
show_zscore(i, T, a)
lab_ui.stored_students(queue, "zscore-mnist", "zscore", COST, ("ep_zscore", "run_zscore"),
                       PAPER_LINE)  # fmt: skip

st.header("Normalized KD: the wrong digits at a constant weight")
nkd_views.show_nkd(queue, i, example.digit, T)

st.header("Weighted soft labels: less where the student is already ahead")
wsld_views.show_wsld(queue, i)

ui.show_code(dkd_parts, dkd_loss, kd_per_example, teacher_target_prob, relations, zscore_kd_loss,
             *nkd_views.CODE, *wsld_views.CODE)  # fmt: skip
