"""Vision transformers: DeiT's distillation token (Touvron et al. 2021), from a stored run."""

import streamlit as st

from app import lab_ui, ui
from app.deit_figures import (
    HEAD,
    LABEL,
    predictions_figure,
    predictions_table,
    targets_figure,
    token_curves,
)
from app.lab_ui import describe, optional_queue
from kdcore.data import load_mnist
from kdcore.losses.deit import KINDS, DeiT, deit_hard_loss, deit_soft_loss
from kdcore.presets_deit import DEIT_PRESET
from kdcore.vit import TinyViT

PRESET = "deit-mnist"
COST = (
    "One epoch trains the CNN teacher on 10,000 images (cached afterwards) and three tiny ViTs: "
    "about a minute and a half on a quiet 2-core CPU, up to four minutes on a busy one."
)


@st.cache_data(max_entries=64)
def one_image(index: int, kind: str, tau: float, lam: float) -> dict:
    """The demo teacher's target for test image ``index`` and both DeiT terms for the demo
    student, read as a one-head student (its logits stand in for both heads)."""
    bundle = ui.load_demo(str(ui.models_dir()))
    t = bundle.teacher_logits[index : index + 1]  # (1, K)
    s = bundle.student_logits[index : index + 1]  # (1, K)
    y = bundle.data.y_test[index : index + 1]  # (1,)
    ce, kd = KINDS[kind].terms(s, s, t, y, tau, lam)
    target = KINDS[kind].target(t, tau)[0]  # (K,)
    return {"label": int(y), "target": target.tolist(), "ce": float(ce), "kd": float(kd),
            "teacher_pred": int(t.argmax())}  # fmt: skip


def student_slug(name: str) -> str:
    """``vit_deit_soft`` -> ``soft``: how the student control shows a stored ViT, and its URL."""
    return name.removeprefix("vit_deit_")


def digit_image(index: int):
    data = load_mnist()
    pixels = data.denormalise(data.x_test[index])[0]  # (28, 28) in [0, 1]
    return (pixels.repeat_interleave(4, 0).repeat_interleave(4, 1) * 255).byte().numpy()


st.title("Vision transformers: DeiT")
ui.prose(
    "A vision transformer cuts the image into patches and lets them attend to each other; "
    "a learned **class token** travels with them and its final state is classified. It has no "
    "built-in notion of locality, which is why ViTs need so much data. DeiT (Touvron et al. "
    "2021) adds a second learned token, the **distillation token**, with its own head: the "
    "class head is taught by the label, the distillation head by a teacher, and the two tokens "
    "only meet through attention. A convnet teacher then passes on what its convolutions know "
    "through the token, and at test time the two heads vote together."
)
st.caption(
    "Here: 28×28 digits in 16 patches of 7×7 pixels, width 64, two blocks of four heads "
    "(`vit-tiny`, 73k parameters), taught by the 0.4M-parameter `cnn`."
)

st.header("Two heads, two targets")
bundle = ui.demo()
example = ui.pick_example(bundle, default_digit=4, default_k=0)
c1, c2, c3 = st.columns(3)
with c1:
    # The buttons show the keys of KINDS, so the URL holds a slug (``?kind=soft``): url_choice
    # keeps what a button shows. The labels, with their equations, go above them.
    kind = ui.url_choice(
        "Distillation: " + ", ".join(k.label for k in KINDS.values()), list(KINDS), "kind",
        "hard", help=" ".join(f"{k.label}: the distillation head learns from the "
                              f"{k.target_name}." for k in KINDS.values()),
    )  # fmt: skip
with c2:
    tau = ui.url_float("τ, temperature (soft)", "tau", 0.5, 10.0, 1.0, 0.5, slider=True,
                       disabled=not KINDS[kind].uses_tau)  # fmt: skip
with c3:
    lam = ui.url_float("λ, the teacher's weight", "lam", 0.0, 1.0, 0.5, 0.05, slider=True)
one = one_image(example.index, kind, tau, lam)
ui.plot(targets_figure(one["label"], one["target"], KINDS[kind].target_name), key="targets")
cols = st.columns(3)
cols[0].metric("teacher's decision", one["teacher_pred"], f"label {one['label']}",
               delta_color="off", delta_arrow="off")  # fmt: skip
cols[1].metric("label term (class head)", f"{one['ce']:.4f}")
cols[2].metric("teacher term (distillation head)", f"{one['kd']:.4f}")
st.caption(
    "Terms for the demo MLP student, which has one head: without a distillation token both "
    "terms pull the same logits (the paper's 'usual distillation'). Hard distillation keeps "
    "only the teacher's decision, so τ changes nothing there."
)
st.latex(
    r"\begin{gathered}\mathcal L_{\text{soft}} = (1-\lambda)\,\mathcal L_{CE}\big(\psi(Z_{cls}),"
    r" y\big)\\ + \lambda\tau^2\,\mathrm{KL}\big(\psi(Z_t/\tau)\,\|\,\psi(Z_{dist}/\tau)"
    r"\big)\end{gathered}"
)
st.latex(
    r"\begin{gathered}\mathcal L_{\text{hard}} = (1-\lambda)\,\mathcal L_{CE}\big(\psi(Z_{cls}),"
    r" y\big)\\ + \lambda\,\mathcal L_{CE}\big(\psi(Z_{dist}), y_t\big),\quad"
    r" y_t = \arg\max_c Z_t(c)\end{gathered}"
)
st.markdown(
    "At test time the model's logits are the mean of the two heads' logits, as in the authors' "
    "code; the paper describes adding the two softmax outputs. The paper's Eq. 3 fixes the hard "
    "kind's weights at ½ and ½; the authors' code weights it by λ, as here (λ = ½ is Eq. 3). "
    "The code also divides the soft KL by the number of classes as well as the batch; here it "
    "is averaged over the batch, as in the equation. Eq. 2 writes the student's distribution "
    "first in the KL; the code, and this page, put the teacher first, as KD does."
)

st.header("Trained: the deit-mnist preset")
queue = optional_queue()
run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_deit", "run_deit")
if run is not None:
    res = run.result
    models, tokens = res.get("models", {}), res.get("tokens", {})
    st.caption(f"{lab_ui.run_name(run)}: {describe(run)}; "
               f"{res.get('training_images', '?'):,} training images for every model.")  # fmt: skip
    shown = [n for n in ("teacher", *LABEL) if n in models]
    cols = st.columns(len(shown) or 1)
    for col, name in zip(cols, shown, strict=False):
        acc = f"{100 * models[name]['test_accuracy']:.2f}% accuracy"
        # the accuracy under the errors is a label, not a change: grey, no arrow
        col.metric(LABEL.get(name, name), f"{models[name]['test_errors']} errors", acc,
                   delta_color="off", delta_arrow="off")  # fmt: skip
    ui.plot(token_curves(tokens), key="tokens")
    st.caption(
        "Left: each head alone (solid: class head, dashed: distillation head). Right: how often "
        "the two heads of a student give the same digit, and how often the distillation head "
        "gives the teacher's."
    )

    examples = res.get("examples")
    if examples and examples.get("test_index"):
        st.subheader("The heads beside the teacher, image by image")
        students = [n for n in examples["models"] if n != "vit_no_teacher"]
        c1, c2 = st.columns(2)
        with c1:
            # ``?student=soft``, a slug as for ``kind``: the student by its kind of distillation
            model = ui.url_choice("Student, by its distillation", students, "student",
                                  students[0], format_func=student_slug)  # fmt: skip
        with c2:
            img = ui.url_int("Stored image", "img", 0, len(examples["test_index"]) - 1, 0,
                             help="Which of the run's kept test images")  # fmt: skip
        heads = {h: p[img] for h, p in examples["models"][model].items()}
        left, right = st.columns([1, 5])
        index = examples["test_index"][img]
        left.image(digit_image(index), caption=f"test image #{index}", width=112)
        with right:
            ui.plot(predictions_figure(examples["teacher"][img], heads, examples["labels"][img]),
                    key="preds")  # fmt: skip
        st.dataframe(predictions_table(examples, model), hide_index=True)
        st.caption(
            "Kept images: some the teacher gets wrong, some where the hard student's heads "
            f"disagree, the rest at random. The {HEAD['dist']} learns the teacher's answers, "
            "mistakes included."
        )

paper = DEIT_PRESET.paper
st.dataframe(paper["imagenet_top1"], hide_index=True)
st.caption(
    f"Paper: {paper['setting']}. The usual (soft) distillation goes into the class token; "
    "hard distillation and the token rows use the teacher's argmax. A reference for the "
    "direction of the effects: ImageNet models at 300 epochs, not these MNIST ones."
)
if run is not None:
    lab_ui.why_differs(PRESET)

ui.show_code(deit_hard_loss, deit_soft_loss, DeiT, TinyViT.forward_features)
