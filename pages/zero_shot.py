"""Zero-shot distillation: with no training image at all, the teacher's own last layer says how
alike its classes are, outputs are sampled from that, and noise is optimised until the teacher
gives them back: Data Impressions, a transfer set made of the teacher (Nayak et al. 2019)."""

import numpy as np
import streamlit as st
import torch

from app import lab_ui, ui
from app.feature_figures import accuracy_bars
from app.figures import COLORS
from app.relation_figures import probabilities_figure
from app.zero_shot_figures import image_grid, similarity_figure
from kdcore.checkpoint import CheckpointError
from kdcore.data import load_mnist
from kdcore.presets_zeroshot import PRESET, STUDENTS, unpack_images
from kdcore.zero_shot import (
    T_IMPRESSION,
    class_similarity,
    concentration,
    craft_impressions,
    impression_loss,
    sample_targets,
    teacher_similarity,
)

COST = (  # measured: the shipped run (README)
    "One run crafts 4,000 impressions and trains three thin CNN students on them, on noise and "
    "on real images (the teacher is cached, shared with the feature presets): about five "
    "minutes on a quiet 2-core CPU, longer on a busy one."
)
STEPS = 200  # Adam steps for the one impression crafted on this page, as the run's
BETAS = {"1 (spread)": 1.0, "0.1 (peaked)": 0.1}


@st.cache_data(max_entries=64, show_spinner=False)
def craft(path: str, digit: int, beta: float, draw: int) -> dict:
    """One impression of ``digit``: a vector sampled at β (seed ``draw``) and the noise image
    (the same seed) optimised for STEPS steps until the teacher gives it back at T = 20."""
    net = ui.saved_model(path)
    data = load_mnist()
    sim = teacher_similarity(net)
    y = sample_targets(sim, digit, beta, 1, seed=draw)

    def normalise(p):
        return (p - data.mean[0]) / data.std[0]

    gen = torch.Generator().manual_seed(draw)
    start = normalise(
        torch.rand((1, *data.image_shape), generator=torch.Generator().manual_seed(draw))
    )
    x, loss = craft_impressions(net, y, data.image_shape, normalise, STEPS, 0.05, gen)
    with torch.no_grad():
        first = float(impression_loss(net(start), y, T_IMPRESSION))
        got = torch.softmax(net(x) / T_IMPRESSION, 1)[0]
        plain = torch.softmax(net(x), 1)[0]
    pixels = (data.denormalise(x[0])[0] * 255).round().byte().numpy()
    return {
        "target": y[0].tolist(),
        "got": got.tolist(),
        "p": plain.tolist(),
        "first": first,
        "loss": loss,
        "pixels": pixels,
        "concentration": concentration(sim, digit, beta).tolist(),
    }


st.title("Zero-shot distillation: a student that never sees a training image")
ui.prose(
    "Suppose the teacher's training data is gone, or private. Nayak et al. (2019) distil "
    "anyway: the teacher's last layer says which classes it finds alike; sample outputs it "
    "might plausibly give for each class from that; then start from noise and change the "
    "pixels until the teacher gives those outputs back. These **Data Impressions** are the "
    "student's whole transfer set. Below, all of it on the real CNN teacher of the feature pages."
)
queue = lab_ui.optional_queue()
run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_zero", "run_zero")
if run is None or not run.result:
    st.stop()
res = run.result
kept = lab_ui.weights_file(queue, run, "teacher")
try:
    if kept is None:
        raise CheckpointError("this run kept no weights for its teacher")
    path = str(kept)
    net = ui.saved_model(path)
except CheckpointError as err:
    net = None
    ui.fallback(f"The teacher cannot be loaded, so the live views are off: {err}")

st.header("What the teacher's last layer says about its classes")
sim = teacher_similarity(net).numpy() if net is not None else np.array(res["similarity"])
left, right = st.columns([3, 2])
with left:
    ui.plot(similarity_figure(sim), key="similarity")
with right:
    off = sim - np.eye(len(sim)) * 2  # the diagonal out of the way
    a, b = np.unravel_index(off.argmax(), off.shape)
    st.metric("most alike, by the templates", f"{a} and {b}", f"{sim[a, b]:.3f}", delta_color="off",
              delta_arrow="off")  # fmt: skip
    st.caption(
        "The cosine similarity of each pair of digits' templates (the last layer's weight "
        "rows), scaled to [0, 1] over the matrix as in the authors' code. Each impression's "
        "target is drawn from a Dirichlet whose concentration is its digit's row: β times the "
        "row, rescaled to [0, 1]. β = 1 spreads the outputs over alike digits, β = 0.1 peaks "
        "them on one."
    )

if net is not None:
    st.header("Crafting one impression, live")
    c1, c2 = st.columns(2)
    with c1:
        digit = ui.url_choice("Digit", range(10), "digit", 3)
    with c2:
        beta_label = ui.url_choice("β", list(BETAS), "beta", "1 (spread)")
    draw = ui.url_int("Draw (the seed of the sampled output and of the starting noise)", "draw",
                      0, 9999, 0)  # fmt: skip
    one = craft(path, digit, BETAS[beta_label], draw)
    left, right = st.columns([1, 4])
    left.image(image_grid(one["pixels"][None, None], scale=4), caption="the impression",
               width=112)  # fmt: skip
    with right:
        probs = {"sampled target": one["target"], f"teacher at T = {T_IMPRESSION:g}": one["got"]}
        ui.plot(probabilities_figure(probs, [COLORS["other"], COLORS["teacher"]]), key="craft")
    st.caption(
        f"A target sampled from digit {digit}'s Dirichlet at β = {BETAS[beta_label]:g} (draw "
        f"{draw}; its largest entry is digit {int(np.argmax(one['target']))}); "
        f"{STEPS} Adam steps on the pixels took the cross-entropy from {one['first']:.3f} to "
        f"{one['loss']:.3f}. At T = 1 the teacher calls it a {int(np.argmax(one['p']))} with "
        f"probability {max(one['p']):.3f}. It need not look like a digit: it only has to make "
        "the teacher answer as a digit would."
    )

st.header("The run's impressions")
imp = res.get("impressions", {})
count = f"{imp['count']:,}" if isinstance(imp.get("count"), int) else "as many"
try:
    shown = unpack_images(imp["images"])  # (β, class, n, H, W)
except (KeyError, ValueError) as err:
    ui.fallback(f"This run kept no impressions to show: {err}")
else:
    cols = st.columns(len(shown))
    for col, pics, beta, p in zip(cols, shown, imp["betas"], imp["teacher_p"], strict=False):
        said = f"its row's digit with mean probability {np.mean(p):.3f}"
        col.image(image_grid(pics), caption=f"β = {beta:g}: row d sampled from digit d's "
                  f"Dirichlet, 0 at the top; the teacher gives each {said}")  # fmt: skip
    st.caption(
        f"The first {shown.shape[2]} of each digit and β, of {count} crafted in "
        f"{imp.get('seconds', float('nan')):.0f} s (mean final cross-entropy "
        f"{imp.get('final_loss', float('nan')):.3f})."
    )

st.header("What the students learn")
models = res.get("models", {})
ui.plot(accuracy_bars(models, ["teacher", *STUDENTS]), key="students")
st.caption(
    f"{lab_ui.run_name(run)}: {lab_ui.describe(run)} (the teacher's; each student "
    f"{res['config'].get('student_epochs', '?')}). The same thin CNN distilled, with the "
    f"teacher's targets alone at T = {res['config'].get('T', T_IMPRESSION):g}, on the {count} "
    f"impressions, on {count} images of uniform noise, and on {count} real training images; tested "
    "on MNIST's 10,000 real test images, which none of them saw."
)
lab_ui.why_differs(PRESET)
st.latex(
    r"\begin{gathered}y \sim \mathrm{Dir}(\beta\,\hat s_c)\\ "
    r"\hat s_{c,k} = \mathrm{minmax}\,\cos(w_c, w_k)"
    r"\\ x^\star = \arg\min_x\, -\textstyle\sum_k y_k \log \mathrm{softmax}(z(x)/20)_k"
    r"\end{gathered}"
)
ui.see_also(
    ("lab", "Hinton's omitted-3 preset: a transfer set without a single 3"),
    ("label-smoothing", "what a teacher's logits keep, and lose"),
)
ui.show_code(class_similarity, concentration, sample_targets, impression_loss, craft_impressions)
