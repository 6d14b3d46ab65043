"""Local logits: what each region of an image says through a ResNet teacher, what scale decoupled
distillation (Wei, Luo & Luo 2024) teaches of it, and the sdd-mnist run's students taught it."""

import numpy as np
import streamlit as st
import torch

from app import lab_ui, sdd_views, ui
from kdcore.data import load_mnist
from kdcore.losses.sdd import SCALES, complementary, region_logits, sdd_loss

st.title("Local logits: what each region says")
ui.prose(
    "A ResNet's logits are an average: its last layer reads every position of the last feature "
    "map, and the logits are the mean of those readings (plus a bias). KD teaches the student "
    "that mean alone, and a whole image can mix what its parts say: a 7 whose stem looks like "
    "a 1, a 4 whose top closes like a 9. **Scale decoupled distillation, SD-KD** (Wei, Luo & "
    "Luo 2024) pools the map into cells as well, the whole image and its 2 × 2 quarters (and "
    "4 × 4 sixteenths for networks of different kinds), and teaches every cell's softened "
    "logits. A cell whose class is not the whole image's is **complementary**: it keeps the "
    "image's ambiguity, and weighs β = 2 times as much."
)
queue = lab_ui.optional_queue()
intro = st.container()  # drawn with the run's own teacher, once the run below is known

st.header("Trained: the sdd-mnist preset")
run = lab_ui.stored_students(queue, sdd_views.PRESET, "sdd", sdd_views.COST,
                             ("ep_sdd", "run_sdd"), sdd_views.PAPER_LINE)  # fmt: skip
if run is not None and run.result:
    sdd_views.show_trained(run)

with intro:
    st.header("One image, cell by cell")
    net_path = lab_ui.kept_teacher(queue, run)
    if net_path is not None:
        ambiguous = sdd_views.most_ambiguous(net_path)
        c1, c2, c3 = st.columns(3)
        with c1:
            index = ui.url_int("Test image", "img", 0, len(load_mnist().y_test) - 1, ambiguous[0],
                               help="The default is the test image whose quarters and "
                               "sixteenths disagree most with the whole.")  # fmt: skip
        with c2:
            scales = ui.url_choice("Scales M", [s for s in SCALES if s != "1"], "scales", "1,2,4")
        with c3:
            T = ui.url_float("Temperature T", "T", 0.5, 20.0, 4.0, 0.5, slider=True)
        st.caption("Where the teacher's cells disagree most: test images "
                   + ", ".join(f"#{i}" for i in ambiguous[:8]) + ".")  # fmt: skip
        label = int(load_mnist().y_test[index])
        m = sdd_views.scales_of(scales)
        cells = sdd_views.pick(sdd_views.image_cells(net_path, index), tuple(m))
        comp = complementary(torch.from_numpy(cells)[None], torch.tensor([label]), "class")[0]
        left, right = st.columns([1, 3])
        left.image(ui.test_png(index), caption=f"test image #{index}, a {label}", width=112)
        with right:
            ui.plot(sdd_views.grid_figure(cells, tuple(m), T), key="sdd_grid")
        whole = int(np.argmax(cells[:, 0]))
        st.caption(
            f"The teacher's answer in each cell at T = {T:g}: the class it names and how sure it "
            f"is (the colour). The whole image says {whole}; {int(comp.sum())} of its "
            f"{len(comp) - 1} cells say another class (outlined in red): their KD terms weigh "
            "β = 2, the others 1. The whole image's cell is KD's own term."
        )
        ui.plot(sdd_views.targets_figure(cells, tuple(m), T), key="sdd_targets")
        st.caption(
            f"The soft targets SD-KD sends at T = {T:g}, one row per cell: the whole image's "
            "row is the one KD sends; the rows below are what SD-KD adds, each its own KD term."
        )
    st.latex(
        r"\begin{gathered}\pi(m, n) = \tfrac{1}{|C(m,n)|}\textstyle\sum_{(j,k) \in C(m,n)} "
        r"W f(j, k) + b\\ \mathcal L = \lambda\,\mathrm{CE}(y, z^S) + \alpha\,\frac{1}{BR}"
        r"\sum_{b,m,n} w_{b,m,n}\, T^2\,\mathrm{KL}\big(\sigma(\pi_T(m,n)/T)\,\big\|\,"
        r"\sigma(\pi_S(m,n)/T)\big)\end{gathered}"
    )
    st.caption(
        "f(j, k) is the last stage's feature at one position (64 channels, 7 × 7 here), W and b "
        "the head; C(m, n) the n-th of the m × m cells at scale m, so that at m = 1 π is the "
        "logits. w is β = 2 for a complementary cell, else 1; λ = 0.1, α = 0.9, T = 4 "
        "(mdistiller's KD settings); R cells per image: 5 at M = {1, 2}, 21 at {1, 2, 4}."
    )

ui.see_also(
    ("class-maps", "Class activation maps: the same logit map, cell by cell before pooling, "
     "and CAT-KD, which teaches where each class is seen."),
    ("kd-loss", "The distillation loss: KD's one term, the whole image's."),
)  # fmt: skip
ui.show_code(region_logits, complementary, sdd_loss)
