"""The projector's spectrum: what a feature projector W_p keeps, in theory and in a stored run."""

import streamlit as st
import torch

from app import lab_ui, ui
from app.feature_figures import (
    final_spectra_figure,
    flow_figure,
    projector_table,
    projector_verdict,
    spectrum_figure,
)
from app.lab_ui import describe, optional_queue
from app.mgd_views import CODE as MGD_CODE
from app.mgd_views import show_mgd
from app.simkd_views import CODE as SIMKD_CODE
from app.simkd_views import show_simkd
from app.srrl_views import CODE as SRRL_CODE
from app.srrl_views import show_srrl
from kdcore.jobs import JobQueue
from kdcore.losses.fitnets import FitNets
from kdcore.projectors import (
    build_normaliser,
    build_projector,
    cross_covariance,
    synthetic_features,
    whitened_flow,
)

PRESET = "projector-normalisation"
SAMPLES = 4000  # synthetic feature pairs behind the covariances
COST = (  # step times measured on a busy 2-core CPU (load ~8): MLP ~0.1 s, orthogonal ~7 s
    "One epoch trains a 1200-unit MLP teacher (cached after the first run) and six 100-unit "
    "students (hard labels, KD, four projectors). The MLPs take about a minute each on a 2-core "
    "CPU, but the orthogonal projector's parametrisation computes a 1200 × 1200 matrix "
    "exponential at every step, seconds a step there: expect most of an hour. A GPU does it "
    "all in minutes."
)


@st.cache_data(max_entries=64)
def flow(d_s: int, d_t: int, lr: float, steps: int, whitened: bool) -> dict:
    """The projector's gradient flow on synthetic features, from kdcore.projectors."""
    # (N, D_s), (N, D_t)
    zs, zt = synthetic_features(SAMPLES, d_s, d_t, seed=0, dtype=torch.float64)
    if whitened:
        zs = build_normaliser("whiten", d_s, spatial=False)(zs)  # batch ZCA: C_s = I
    c_st, c_s = cross_covariance(zs, zt), cross_covariance(zs, zs)  # (D_t, D_s), (D_s, D_s)
    torch.manual_seed(0)
    w0 = build_projector("linear", d_s, d_t, spatial=False).matrix()  # nn.Linear's own init
    bound = 2.0 / float(torch.linalg.eigvalsh(c_s)[-1])  # each step scales by 1 - η λ(C_s)
    try:
        out = whitened_flow(c_st, steps, lr, w0, None if whitened else c_s, max(steps // 150, 1))
    except torch.linalg.LinAlgError:  # the weights overflowed to inf: η far above the bound
        return {"bound": bound}
    fixed = torch.linalg.solve(c_s, c_st.T).T  # C_st C_s^-1 (C_s symmetric): the fixed point
    return {
        "bound": bound,
        "dist": out["dist"].numpy(), "sv_steps": out["sv_steps"].numpy(), "sv": out["sv"].numpy(),
        "plateau": None if whitened else float(torch.linalg.norm(fixed - c_st)),
        "gap": float(torch.linalg.norm(out["w"] - fixed)),
        "cond": float(torch.linalg.cond(c_s)),
    }  # fmt: skip


def stored_run(queue: JobQueue | None, name: str):
    return lab_ui.stored_or_offer(
        queue, name, COST, "epochs", "run_now", help="Each epoch adds its cost."
    )


st.title("The projector's spectrum")
ui.prose(
    "A feature loss cannot compare a 100-d student feature $z_s$ with a 1200-d teacher feature "
    "directly, so a trainable **projector** $W_p$ maps $z_s$ into the teacher's space first "
    "(FitNets' regressor; Romero et al. 2015). $W_p$ is more than plumbing: its **singular "
    "values** say which directions of the student's feature it keeps (large σ) and which it "
    "throws away (σ near 0, a *collapsed* direction whose content the loss never sees). Miles & "
    "Mikolajczyk (2024) show how the normalisation of the features steers what $W_p$ becomes."
)

st.header("The theory, computed live")
st.markdown(
    "Trained on the squared error, a linear projector follows $\\dot W_p = C_{st} - C_s W_p$. "
    "With **whitened** student features ($C_s = I$) it moves straight to the teacher-student "
    "cross-covariance $C_{st}$: the projector ends up *storing the relations* between the two "
    "models' features over all examples seen. Without whitening it settles on "
    "$C_s^{-1} C_{st}$ instead, each direction at its own speed. Synthetic correlated features "
    "below; the weight starts from a freshly built `nn.Linear`."
)
c1, c2, c3, c4 = st.columns(4)
with c1:
    d_s = ui.url_int("Student dimension D_s", "ds", 2, 64, 8)
with c2:
    d_t = ui.url_int("Teacher dimension D_t", "dt", 2, 128, 16)
with c3:
    lr = ui.url_float("Learning rate η", "lr", 0.001, 1.0, 0.1, 0.01, format="%g")
with c4:
    steps = ui.url_int("Steps", "steps", 10, 2000, 100)
whitened = not ui.url_toggle("Unwhitened student features (C_s ≠ I)", "raw")
out = flow(d_s, d_t, lr, steps, whitened)
if lr >= out["bound"]:
    ui.fallback(
        f"η = {lr:g} diverges: each step multiplies the error along the top eigenvector of C_s "
        f"by |1 − η λ_max| > 1. Stay below 2 / λ_max = {out['bound']:.3f}."
    )
if "dist" in out:
    ui.plot(flow_figure(out["dist"], out["sv_steps"], out["sv"], out["plateau"]), key="flow")
    m1, m2, m3 = st.columns(3)
    m1.metric("‖W_p − C_st‖ after the last step", f"{out['dist'][-1]:.2e}")
    m2.metric("‖W_p − C_st C_s⁻¹‖ (the fixed point)", f"{out['gap']:.2e}")
    m3.metric("condition number of C_s", f"{out['cond']:.1f}")
st.latex(
    r"\begin{gathered}\dot W_p = C_{st} - C_s W_p \\ \Rightarrow\quad W_p(t) - C_{st} = "
    r"e^{-t}\,(W_p(0) - C_{st})\ \ (C_s = I),\\ C_s = \tfrac1N Z_s^\top Z_s,\ \ "
    r"C_{st} = \tfrac1N Z_s^\top Z_t\end{gathered}"
)
st.caption(
    "Miles & Mikolajczyk 2024 (arXiv:2303.11098), with the projector on the right, $Z_s W_p$; "
    "kdcore stores the transpose, as `nn.Linear` does, and steps $W \\leftarrow W + "
    "\\eta (C_{st} - W C_s)$."
)

st.header("In a real run: four projectors on MNIST")
st.markdown(
    "The `projector-normalisation` preset trains the same 100-unit student with CE + β·MSE to "
    "the 1200-unit teacher's embedding through a linear projector, four ways: no "
    "normalisation, BatchNorm on both sides, whitened student features, and an orthogonal "
    "projector (VkD; Miles, Elezi & Deng 2024). The projector's spectrum is recorded every 25 "
    "steps."
)
queue = optional_queue()
run = stored_run(queue, PRESET)
if run is not None:
    res = run.result
    spectra = res["spectra"]
    st.caption(f"{lab_ui.run_name(run)}: {describe(run)}.")
    ui.plot(final_spectra_figure(spectra), key="final")
    variants = list(spectra)
    variant = ui.url_choice("Variant", variants, key="variant", default=variants[0])
    ui.plot(spectrum_figure(spectra[variant], res.get("trace", {}).get(variant, []), variant),
            key="spectrum")  # fmt: skip
    st.dataframe(projector_table(res), hide_index=True, key="collapse", placeholder=ui.MISSING)
    st.caption("Collapsed: σ below 1% of σ_max at the end of the last epoch.")
    st.markdown(projector_verdict(res))
    lab_ui.why_differs(PRESET)

st.header("A projector that must fill in: masked generative distillation")
show_mgd(queue)
st.header("A projector graded by the teacher's classifier: SRRL")
show_srrl(queue)
st.header("A projector that hands the student the teacher's classifier: SimKD")
show_simkd(queue)

ui.see_also(("hidden-states", "a projector inside a transformer, layer by layer (TinyBERT)"))
ui.show_code(FitNets, build_projector, whitened_flow, *MGD_CODE, *SRRL_CODE, *SIMKD_CODE)
