"""Temperature and soft targets: what T does to a real teacher's output, live while dragging."""

import numpy as np
import streamlit as st
import torch

from app import ui
from app.components.tslider import temperature_slider, url_temperature
from app.ctkd_views import CODE as CTKD_CODE
from app.ctkd_views import show_ctkd
from app.figures import targets_figure
from app.lab_ui import optional_queue
from app.own_digit import own_digit
from app.seed_sweeps import show_sweep_at
from app.ttm_views import CODE as TTM_CODE
from app.ttm_views import show_ttm
from kdcore import analysis
from kdcore.losses import softmax_t

DEFAULT_LOGITS = "-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2"  # the teacher on a "2"
SOURCES = ("test image", "your digit", "by hand")


def parse_logits(text: str) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(","))
    except ValueError:
        return None
    ok = len(values) == 10 and all(np.isfinite(v) and abs(v) <= 100 for v in values)
    return values if ok else None


st.title("Temperature and soft targets")
ui.prose(
    "A trained teacher is almost sure of its answer: on a typical *2* it gives the 2 a "
    "probability of 0.99999 and everything else crumbs. Those crumbs are not noise. The teacher "
    "ranks **3** and **7** far above **4** or **6**, because that is what this 2 looks like. "
    "Hinton, Vinyals & Dean (2015) call this *dark knowledge* and raise the temperature T of the "
    "softmax to bring it into view, so a student can learn from it. Drag the temperature "
    "slider: the bars, the numbers and the sentence below move in your browser while you drag, "
    "and the rest of the page follows when you let go."
)
bundle = ui.demo(ui.teacher_control())

source = ui.url_choice("Logits from", SOURCES, key="src", default="test image")
mine = own_digit(bundle) if source == "your digit" else None
if source == "by hand":
    text = ui.url_text("Ten logits z_0 ... z_9, comma-separated", key="z", default=DEFAULT_LOGITS,
                       ok=lambda raw: parse_logits(raw) is not None)  # fmt: skip
    parsed = parse_logits(text)
    if parsed is None:
        ui.fallback("Need ten numbers between -100 and 100; showing the default logits instead.")
        parsed = parse_logits(DEFAULT_LOGITS)
    logits = parsed
    label, student = int(np.argmax(logits)), torch.tensor(logits)
elif mine is not None:
    logits, label, student = mine.teacher_logits, mine.label, mine.student_logits
    st.caption(
        f"The teacher reads your digit as a **{label}**. Its logits: "
        + ", ".join(f"{v:.1f}" for v in logits)
    )
else:
    example = ui.pick_example(bundle, default_digit=2, default_k=7)
    logits = tuple(bundle.teacher_logits[example.index].tolist())
    label, student = example.digit, bundle.student_logits[example.index]
    st.caption(f"{ui.teacher_caption(bundle)} logits: " + ", ".join(f"{v:.1f}" for v in logits))

log_y = ui.url_toggle("Log scale", "log", help="Show the crumbs: probabilities down to 1e-12")
T = url_temperature()  # the one T of the page: the slider writes it to the URL on release
temperature_slider(logits, T, log_y)
st.latex(
    r"\begin{gathered}p_i(T) = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)} \\ "
    r"H(p) = -\sum_i p_i \log p_i \le \log N \qquad \text{dark} = 1 - \max_i p_i"
    r"\end{gathered}"
)

st.header("Label smoothing is distillation from a uniform teacher")
st.markdown(
    "Label smoothing (Szegedy et al. 2016) trains on $(1-\\epsilon)$ one-hot $+\\ \\epsilon/N$ "
    "on every class, the true one included. That is exactly the KD loss with a teacher whose "
    "logits are all equal: it softens the target like a temperature would, but it spreads the "
    "mass evenly, so it carries no kinship between classes (Yuan et al. 2020). Compare it with "
    "the teacher at your T."
)
eps = ui.url_float("Smoothing ε", "eps", 0.0, 0.5, 0.1, 0.01, slider=True)
smoothed = analysis.label_smoothing_target(label, 10, eps).numpy()
teacher_T = softmax_t(torch.tensor(logits, dtype=torch.float64), T).numpy()
ui.plot(targets_figure(np.eye(10)[label], smoothed, teacher_T, eps, T), key="targets_chart")
ls = analysis.label_smoothing_as_kd(student[None], torch.tensor([label]), eps)
who = "your logits" if source == "by hand" else "the weak demo student on this image"
st.markdown(
    f"For {who} with label {label}: label-smoothed cross-entropy **{ls['label_smoothing']:.4f}** "
    f"= distillation_loss from a uniform teacher at T = 1, α = ε: **{ls['distillation']:.4f}** "
    f"+ (ε log N = {ls['entropy_of_uniform']:.4f}), each to four places."
)
st.latex(
    r"\begin{gathered}\mathrm{CE}\big((1-\epsilon)\,y + \epsilon\,u,\; q\big)\\ = "
    r"(1-\epsilon)\,\mathrm{CE}(y, q) + \epsilon\,\mathrm{KL}(u \,\|\, q) + \epsilon \log N"
    r"\end{gathered}"
)
st.header("Which T trains the best student")
ui.prose(
    "A higher T hands the student more of the dark knowledge, and asks it to match differences "
    "between small logits that a small net may have no room for. Hinton et al. (2015, §3) found "
    "every T above 8 about equally good for students of 300 or more units per layer, and T = "
    "2.5-4 best for a student of 30. The shipped temperature sweep trains both from the same "
    "paper-length teacher at nine temperatures, at five seeds, so you can see which of those "
    "findings outlast the luck of one run. Your T is the orange line, where the sweep reaches it."
)
if not show_sweep_at("temperature-sweep", T, key="sweep_at_T"):
    st.caption("The shipped temperature sweep is not here to show.")
st.markdown("[Open the sweep in the lab, or run it again](lab?preset=temperature-sweep)")

queue = optional_queue()
st.header("A temperature that learns: curriculum temperature")
show_ctkd(queue, T)
st.header("The temperature on the teacher alone: TTM")
show_ttm(queue, np.asarray(logits), np.asarray(student), T)
ui.show_code(softmax_t, analysis.temperature_sweep, analysis.label_smoothing_as_kd, *CTKD_CODE,
             *TTM_CODE)  # fmt: skip
