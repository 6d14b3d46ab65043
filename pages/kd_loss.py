"""The distillation loss: the (1 - α) CE + α T² KL mix, its gradient, and its high-T limit."""

import numpy as np
import streamlit as st
import torch

from app import ui
from app.components.tslider import log_t_control
from app.figures import gradient_figure, limit_figure, loss_mix_figure
from app.seed_sweeps import show_sweep_at
from kdcore import analysis
from kdcore.losses import distillation_loss, kd_loss, logit_matching_loss, softmax_t

TEMPS = analysis.temperature_grid(0.1, 50.0, 100)
LIMIT_TEMPS = analysis.temperature_grid(0.1, 2000.0, 120)  # far enough for T²·KL to reach it
ALPHAS = np.round(np.linspace(0.0, 1.0, 11), 2)


@st.cache_data(max_entries=256)
def compute(
    student: tuple[float, ...], teacher: tuple[float, ...], label: int, T: float, alpha: float
) -> dict:
    """Everything the page plots for one image, from kdcore.analysis (cached per view)."""
    s, t, y = torch.tensor([student]), torch.tensor([teacher]), torch.tensor([label])  # (1, K)
    alphas = np.union1d(ALPHAS, [alpha])
    sweep = analysis.loss_mix_sweep(s, t, y, T, alphas)
    return {
        "mix": analysis.loss_mix(s, t, y, T, alpha),
        "alphas": alphas,
        "ce": sweep["ce"],
        "kd": sweep["kd"],
        "grad": analysis.gradient_norms(s, t, TEMPS),
        "grad_at_T": analysis.gradient_norms(s, t, np.array([T])),
        "limit": analysis.high_temperature_limit(s, t, LIMIT_TEMPS),
        "limit_at_T": analysis.high_temperature_limit(s, t, np.array([T])),
    }


def num(x: float) -> str:
    """Four significant digits, in scientific notation only when tiny or huge (T² at T = 0.1 is
    0.01, not "0.0")."""
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.2e}"


st.title("The distillation loss")
ui.prose(
    "The student learns from two targets at once: the hard label, through the usual "
    "cross-entropy, and the teacher's soft targets at temperature T, through a KL divergence. "
    "α sets how much each counts. The KL term is multiplied by **T²**: without it, raising T "
    "would quietly shrink the teacher's gradients by 1/T² and hand the training back to the "
    "labels (Hinton, Vinyals & Dean 2015, §2). At high T the whole term turns into plain logit "
    "matching (§2.1). All numbers below are for one real test image, a real teacher "
    "(the small demo one, or the paper's from the shipped reference run) and a weak student."
)
bundle = ui.demo(ui.teacher_control())
example = ui.pick_example(bundle, default_digit=2, default_k=19)  # the student wavers: 2 or 3?
left, right = st.columns(2)
with left:
    alpha = ui.url_float("α, weight of the teacher term", "alpha", 0.0, 1.0, 0.9, 0.05, slider=True)
with right:
    T = log_t_control("Temperature T", "kd_T", 4.0)

teacher = tuple(bundle.teacher_logits[example.index].tolist())
student = tuple(bundle.student_logits[example.index].tolist())
out = compute(student, teacher, example.digit, T, alpha)
mix = out["mix"]
p1, q1 = softmax_t(torch.tensor(teacher), 1.0), softmax_t(torch.tensor(student), 1.0)
st.caption(
    f"{ui.teacher_caption(bundle)}. At T = 1 the teacher says {int(p1.argmax())} "
    f"({float(p1.max()):.3f}), the student says "
    f"{int(q1.argmax())} ({float(q1.max()):.3f}); the label is {example.digit}."
)

st.header("The mix for this image")
cols = st.columns(4)
cols[0].metric("CE(y, q)", f"{mix['raw_ce']:.4f}", help="cross-entropy with the label, at T = 1")
cols[1].metric("T² · KL(p‖q)", f"{mix['raw_kd']:.4f}", help="kd_loss: the soft term")
cols[2].metric("(1 − α) · CE + α · T² · KL", f"{mix['total']:.4f}")
cols[3].metric("teacher's share", f"{mix['kd'] / mix['total']:.0%}" if mix["total"] else "–")
# two lines: on one, the numbers ran past the column's right edge at 1280 px
st.latex(
    r"\begin{gathered}\mathcal{L} = (1-\alpha)\,\mathrm{CE}\big(y,\ \mathrm{softmax}(z)\big)"
    r"\\ + \alpha\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(v/T)\ \|\ \mathrm{softmax}(z/T)"
    r"\big)\end{gathered}"
)
st.latex(
    rf"\mathcal{{L}} = {1 - alpha:.2f} \cdot {mix['raw_ce']:.3f} + "
    rf"{alpha:.2f} \cdot {mix['raw_kd']:.3f} = {mix['total']:.3f}"
)
ui.plot(loss_mix_figure(out["alphas"], out["ce"], out["kd"], alpha, T), key="mix_chart")

st.header("Why T²: the gradient across temperatures")
g_with, g_without = out["grad_at_T"]["with_t2"][0], out["grad_at_T"]["without_t2"][0]
st.markdown(
    f"The gradient of the soft term with respect to the student's logits z is "
    f"T·(q − p) with T², and (q − p)/T without it. For this image at T = {T:.2f}: "
    f"‖∂/∂z‖ = **{num(g_with)}** with T², **{num(g_without)}** without, a factor T² = "
    f"{num(T * T)}. Without the correction, every doubling of T would cut the teacher's say "
    "by four."
)
ui.plot(
    gradient_figure(TEMPS, out["grad"]["with_t2"], out["grad"]["without_t2"], T), key="grad_chart"
)
st.latex(
    r"\begin{gathered}\frac{\partial}{\partial z_i}\, T^2\,\mathrm{KL}(p^T \| q^T) = "
    r"T\,(q_i^T - p_i^T)\\ \approx\ \frac{1}{N}\,(z_i - v_i) \quad (T \to \infty,\ "
    r"\textstyle\sum_j z_j = \sum_j v_j = 0)\end{gathered}"
)

st.header("The high-temperature limit: logit matching")
lim = out["limit"]
st.markdown(
    "Subtract each logit vector's mean (the softmax does not change). As T grows, T²·KL "
    "approaches the squared distance between the logits, ‖z − v‖²/(2N) with N = 10 classes: "
    "KD at high temperature *is* logit matching (Buciluǎ et al. 2006). At lower T the loss "
    f"pays less attention to logits far below the top. Here the limit is **{lim['limit']:.4f}**; "
    f"at T = {T:.2f}, T²·KL = **{num(out['limit_at_T']['t2_kl'][0])}** "
    f"({out['limit_at_T']['ratio'][0]:.1%} of it)."
)
ui.plot(limit_figure(LIMIT_TEMPS, lim["t2_kl"], lim["limit"], T), key="limit_chart")
st.latex(
    r"T^2\,\mathrm{KL}(p^T \| q^T)\ \xrightarrow[T \to \infty]{}\ "
    r"\frac{1}{2N} \sum_i (z_i - v_i)^2"
)
st.header("Which α trains the best student")
ui.prose(
    "Hinton et al. (2015, §2) found the best results with a considerably lower weight on the "
    "hard labels than on the soft targets, once the soft term is scaled by T². The shipped alpha "
    "sweep trains the paper's 800-800 student from its paper-length teacher at T = 20 with "
    "seven values of α, at five seeds. Your α is the orange line."
)
if not show_sweep_at("alpha-sweep", alpha, key="sweep_at_alpha"):
    st.caption("The shipped alpha sweep is not here to show.")
st.markdown("[Open the sweep in the lab, or run it again](lab?preset=alpha-sweep)")
ui.show_code(
    kd_loss,
    distillation_loss,
    logit_matching_loss,
    analysis.loss_mix_sweep,
    analysis.kd_gradient,
    analysis.high_temperature_limit,
)
