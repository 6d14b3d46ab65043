"""Relations between channels: which of a layer's channels fire together (ICKD's correlation
matrix) and where they fire (NST's distributions), on one image through a ResNet teacher's last
stage, then in the ickd-mnist run's students."""

import numpy as np
import streamlit as st
import torch

from app import channel_views, lab_ui, ui
from kdcore.data import load_mnist
from kdcore.losses.ickd import (
    channel_spectrum,
    effective_rank,
    icc_gram,
    icc_loss,
    icc_matrix,
)
from kdcore.losses.nst import nst_loss
from kdcore.presets_ickd import LAYER

CHOSEN, ALIKE, APART = "#e03131", "#2f9e44", "#1c7ed6"


@st.cache_data(max_entries=64)
def channels_of(path: str, index: int) -> dict:
    """Test image ``index`` through the teacher's last stage: its channel maps (C, H, W), their
    ICKD matrix (C, C), the cosines between maps and the effective rank of their Gram."""
    x = load_mnist().x_test[index : index + 1]
    with torch.no_grad():
        feat = ui.saved_model(path).forward_features(x).features[LAYER]  # (1, C, H, W)
    maps = feat[0].numpy()
    return {"maps": maps, "icc": icc_matrix(feat)[0].numpy(), "cos": channel_views.cosines(maps),
            "rank": effective_rank(channel_spectrum(icc_gram(feat)))}  # fmt: skip


st.title("Relations between channels")
ui.prose(
    "A convolutional layer is a stack of channels, each a map of where one pattern was found. A "
    "student's channels need not be the teacher's in number or order, so matching them map by "
    "map asks for a pairing nobody chose. Two methods compare what the channels do *together* "
    "instead. **ICKD** (Liu et al. 2021) takes the C × C matrix of each two channels' inner "
    "product over the positions: which fire together (the paper's *homology*) and which go "
    "their own way (*diversity*), and asks a learned 1 × 1 map of the student's channels for "
    "the teacher's matrix. **NST** (Huang & Wang 2017) treats the maps as samples and matches "
    "their distribution: *where* the channels fire, whichever channel it is."
)
queue = lab_ui.optional_queue()
intro = st.container()  # drawn with the run's own teacher, once the run below is known

st.header("Trained: the ickd-mnist preset")
run = lab_ui.stored_students(
    queue, channel_views.PRESET, "ickd", channel_views.COST, ("ep_ickd", "run_ickd"),
    channel_views.PAPER_LINE, also=("nst",),
)  # fmt: skip
if run is not None and run.result:
    channel_views.show_trained(run)

with intro:
    st.header("One image through the teacher's last stage")
    net_path = lab_ui.kept_teacher(queue, run)
    if net_path is not None:
        c1, c2 = st.columns(2)
        with c1:
            index = ui.url_int("Test image", "img", 0, len(load_mnist().y_test) - 1, 0)
        got = channels_of(net_path, index)
        maps, cos = got["maps"], got["cos"]
        with c2:
            ch = ui.url_int("Channel", "ch", 0, len(maps) - 1, 10)
        mats = ((run.result or {}).get("channel_matrices") or {}).get("teacher")
        order = channel_views.spectral_order(np.array(mats) if mats else got["icc"])
        alike, apart = channel_views.alike_and_apart(cos, ch)
        marked = {ch: CHOSEN, **({alike: ALIKE, apart: APART} if alike is not None else {})}
        left, mid, right = st.columns([1, 3, 3])
        left.image(ui.test_png(index), caption=f"test image #{index}", width=112)
        left.metric("effective rank", f"{got['rank']:.1f}", help="of this image's 64 channels")
        with mid:
            ui.plot(channel_views.mosaic_figure(maps, order, marked), key="ickd_mosaic")
        with right:
            matrix = channel_views.image_matrix_figure(got["icc"], order, ch)
            ui.plot(matrix, key="ickd_image_matrix")
        if alike is None:
            st.caption(f"Channel {ch} does not fire on this image: its map is all zeros, and so "
                       "is its row of the matrix.")  # fmt: skip
        else:
            pair = [(ch, f"channel {ch}<br>(chosen)")] + [  # short: three share a phone
                (c, f"{word}: {c}<br>cos {cos[ch, c]:.2f}")
                for c, word in ((alike, "alike"), (apart, "apart"))
            ]
            ui.plot(channel_views.pair_figure(maps, pair), key="ickd_pair")
        silent = int(np.isnan(np.diag(cos)).sum())
        st.caption(
            f"The {len(maps)} maps ({maps.shape[1]} × {maps.shape[2]}) of the teacher's {LAYER} "
            f"on test image #{index}, in an order that puts channels firing together side by "
            f"side (the same for every image); {silent} do not fire on it. Red: channel {ch}; "
            "green and blue: the firing channels most and least like it (the cosine of the two "
            "maps), drawn large below. Beside them, the image's ICKD matrix in the same order: "
            f"row i is channel i's inner products with every channel, scaled to length 1; "
            f"channel {ch}'s row outlined."
        )
    st.latex(
        r"\begin{gathered}G(F) = \mathrm{rownorm}\big(F F^\top\big) \in \mathbb R^{C\times C}"
        r"\\ \mathcal L_{ICKD} = \frac{1}{C\,B}\sum_{b} \big\lVert G\big(\mathcal C(F^S_b)\big) - "
        r"G(F^T_b)\big\rVert_F^2\end{gathered}"
    )
    st.caption(
        "F is a map's C × HW matrix, 𝒞 the student's 1 × 1 convolution and BatchNorm to the "
        "teacher's channel count, as the official CIFAR-100 code computes it. The matrix does "
        "not depend on the map's size, so the two models' maps may differ in width and height. "
        "NST instead pools both maps to one size and compares the sets of normalised maps by "
        "maximum mean discrepancy."
    )

ui.see_also(
    ("features", "FSP's Gram matrices between two layers' channels, and the maps themselves: "
     "hints and attention transfer."),
    ("relations", "Relations between images rather than channels: RKD, PKT and CC."),
)  # fmt: skip
ui.show_code(icc_matrix, icc_loss, channel_spectrum, nst_loss)
