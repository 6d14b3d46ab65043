"""Class activation maps: where a ResNet teacher sees each class in one image, what CAT-KD
transfers of them (Guo et al. 2023), and the cat-mnist run's students taught them."""

import numpy as np
import streamlit as st
import torch

from app import cam_views, lab_ui, ui
from kdcore.data import load_mnist
from kdcore.losses.cat import LAYER, binarize, cat_loss, transferred
from kdcore.models import class_activation_maps

RESOLUTIONS = (1, 2, 4, 7)  # 7: the maps' own size on MNIST (28 / 4)


@st.cache_data(max_entries=64)
def maps_of(path: str, index: int) -> dict:
    """Test image ``index`` through the teacher: its class maps (K, H, W), its logits, its
    softmax and its head's bias."""
    net = ui.saved_model(path)
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[index : index + 1])
    logits = out.logits[0]
    return {
        "maps": out.features[LAYER][0].numpy(),
        "logits": logits.numpy(),
        "probs": logits.softmax(0).numpy(),
        "bias": net.head.bias.detach().numpy(),
    }


st.title("Class activation maps")
ui.prose(
    "A ResNet ends by averaging its last map over the image and reading the average with one "
    "linear layer. The two steps commute: read every position with that layer first and you "
    "get one map per class, the **class activation maps** (Zhou et al. 2016), and the "
    "class's logit is its map's mean (plus the layer's bias). The map shows *where* in the "
    "image the network finds evidence for that class. **CAT-KD** (Guo et al. 2023) teaches "
    "the student the teacher's maps: both pooled to 2 × 2 and matched by squared error beside "
    "the labels. Without labels at all, the maps alone (normalised, **CAT**) still teach a "
    "student to classify; binarised, they keep only where each class is seen, not how strongly."
)
queue = lab_ui.optional_queue()
intro = st.container()  # drawn with the run's own teacher, once the run below is known

st.header("Trained: the cat-mnist preset")
run = lab_ui.stored_students(queue, cam_views.PRESET, "cat", cam_views.COST,
                             ("ep_cat", "run_cat"), cam_views.PAPER_LINE)  # fmt: skip
if run is not None and run.result:
    cam_views.show_trained(run)

with intro:
    st.header("One image through the teacher")
    net_path = lab_ui.kept_teacher(queue, run)
    if net_path is not None:
        c1, c2 = st.columns(2)
        with c1:
            index = ui.url_int("Test image", "img", 0, len(load_mnist().y_test) - 1, 0)
        with c2:
            r = ui.url_choice("Transferred maps pooled to r × r", list(RESOLUTIONS), "r", 2)
        c3, c4 = st.columns(2)
        with c3:
            norm = ui.url_toggle("Normalise each map", "norm", False,
                                 help="Scale each pooled map to length 1 (CAT alone).")  # fmt: skip
        with c4:
            bin_ = ui.url_toggle(
                "Binarise the teacher's maps",
                "bin",
                False,
                help="1 where a map exceeds its mean |value|: binarised CAT.",
            )
        got = maps_of(net_path, index)
        maps, pred = got["maps"], int(np.argmax(got["logits"]))
        left, right = st.columns([1, 3])
        left.image(ui.test_png(index), caption=f"test image #{index}", width=112)
        left.metric("teacher says", str(pred), f"{100 * got['probs'][pred]:.1f}%",
                    delta_color="off", delta_arrow="off")  # fmt: skip
        with right:
            ui.plot(cam_views.maps_figure(maps, pred), key="cat_maps")
        mean = float(maps[pred].mean())
        st.caption(
            f"The teacher's ten class maps ({maps.shape[1]} × {maps.shape[2]}) on test image "
            f"#{index}, one colour scale: red where the class is seen, blue where it is seen "
            f"against; its answer, {pred}, outlined. The mean of map {pred} is {mean:.3f}; plus "
            f"the bias {got['bias'][pred]:.3f} it is the logit, {got['logits'][pred]:.3f}."
        )
        sent = cam_views.teacher_view(maps, r, norm, bin_)
        ui.plot(cam_views.maps_figure(sent, pred, note=" (transferred)"), key="cat_sent")
        steps = ["binarised"] * bin_ + [f"pooled to {r} × {r}"] + ["then normalised"] * norm
        st.caption(
            f"What CAT-KD transfers of them: each map {', '.join(steps)}. The official configs "
            "use 2 × 2: CAT-KD's maps as they are, CAT alone's normalised. At 1 × 1, "
            "unnormalised, each map is its mean: the loss matches the logits less their biases; "
            "normalised, every 1 × 1 map is ±1: only its sign is left."
        )
    st.latex(
        r"\begin{gathered}M_k(h, w) = w_k^\top F(h, w),\quad z_k = \tfrac{1}{HW}\textstyle\sum"
        r"_{h,w} M_k(h, w) + b_k\\ \mathcal L = \lambda\,\mathrm{CE}(y, z^S) + \beta\,"
        r"\mathrm{MSE}\big(\phi(\mathrm{pool}_r M^S),\, \phi(\mathrm{pool}_r M^T)\big)"
        r"\end{gathered}"
    )
    st.caption(
        "F is the last stage's map (64 channels of 7 × 7 here), w_k and b_k the head's weights "
        "and bias for class k; φ is the identity for CAT-KD (β = 0.7 for resnet56 → resnet20, "
        "15 for resnet32x4 → resnet8x4, λ = 1) and scales each pooled map to length 1 for CAT "
        "alone (λ = 0; β = 50, binarised 300), as the official configs set them. The two "
        "models' maps may differ in size: both are pooled to r × r."
    )

ui.see_also(
    ("features", "Attention transfer: where a layer's channels fire, summed over them, with no "
     "class in it."),
    ("channels", "Which of a layer's channels fire together (ICKD) and where (NST)."),
)  # fmt: skip
ui.show_code(class_activation_maps, binarize, transferred, cat_loss)
