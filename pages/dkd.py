"""Decoupled KD: KD split into its target-class and non-target-class parts (Zhao et al. 2022)."""

import numpy as np
import streamlit as st

from app import lab_ui, ui
from app.relation_figures import accuracy_curves_figure, dkd_scatter_figure
from kdcore.losses.dkd import dkd_loss, dkd_parts, kd_per_example, teacher_target_prob

SHOWN = 2000  # test images in the scatter (all 10,000 go into the means)
PRESET = "dkd-mnist"
COST = (  # README: 9 s for one epoch on an idle 2-core CPU, 3-15 times that on a busy one
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the other relation "
    "presets) and three 30-30 students: about 10 s on a quiet 2-core CPU, up to two minutes on "
    "a busy one."
)


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
# Queued, never trained here: while the run is in flight lab_ui polls it in a fragment and reruns
# the page when it ends, so this section fills in by itself.
run = lab_ui.stored_or_offer(lab_ui.optional_queue(), PRESET, COST, "ep_dkd", "run_dkd")
if run is not None and run.result:
    models = run.result.get("models", {})
    names = [n for n in ("student_hard", "student_kd", "student_dkd") if n in models]
    cols = st.columns(len(names) or 1)
    for col, name in zip(cols, names, strict=False):
        acc = f"{100 * models[name]['test_accuracy']:.2f}% accuracy"
        # the accuracy under the errors is a label, not a change: grey, no arrow
        col.metric(name, f"{models[name]['test_errors']} errors", acc, delta_color="off",
                   delta_arrow="off")  # fmt: skip
    ui.plot(accuracy_curves_figure(run.result.get("history", {}), names), key="curves")
    st.caption(f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}. Paper (CIFAR-100, resnet32x4 → "
               "resnet8x4): KD 73.33%, DKD 76.32% (Zhao et al. 2022, Table 6).")  # fmt: skip
    lab_ui.why_differs(PRESET)

ui.show_code(dkd_parts, dkd_loss, kd_per_example, teacher_target_prob)
