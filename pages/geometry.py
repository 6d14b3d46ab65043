"""Relations: the geometry of a batch in the teacher's and the student's embeddings (RKD), each
image's neighbours as probabilities (PKT), and each pair through a Gaussian kernel (CC)."""

import numpy as np
import streamlit as st
import torch

from app import cc_views, lab_ui, ui
from app.lab_ui import optional_queue
from app.pkt_views import PAPER_LINE, show_pkt
from app.relation_figures import (
    angle_histogram_figure,
    gap_figure,
    heatmap_pair,
    invariance_figure,
    pca_figure,
)
from kdcore import geometry
from kdcore.losses.pkt import neighbour_probabilities, pkt_loss
from kdcore.losses.rkd import rkd_angle_loss, rkd_distance_loss

ANGLES = np.linspace(0.0, 360.0, 37)  # every 10 degrees


@st.cache_data(max_entries=32)
def batch(kind: str, n: int, seed: int) -> list[int]:
    """Test-set indices: n at random, or n/10 of each digit in digit order, the first n mod 10
    digits one more (seeded), so the batch has the n images the control says."""
    bundle = ui.load_demo(str(ui.models_dir()))
    gen = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randperm(len(bundle.data.y_test), generator=gen)[:n].tolist()
    per = [n // 10 + (d < n % 10) for d in range(len(bundle.by_digit))]
    picks = [
        ix[torch.randperm(len(ix), generator=gen)[:k]]
        for ix, k in zip(bundle.by_digit, per, strict=True)
    ]
    return torch.cat(picks).tolist()


@st.cache_data(max_entries=32)
def compute(indices: tuple[int, ...]) -> dict:
    """Both demo models' embeddings of the batch and everything kdcore.geometry says of them."""
    bundle = ui.load_demo(str(ui.models_dir()))
    x = bundle.data.x_test[list(indices)]
    with torch.no_grad():
        t = bundle.teacher.forward_features(x).features["embedding"]  # (n, 300)
        s = bundle.student.forward_features(x).features["embedding"]  # (n, 30)
    hist_t, edges = geometry.angle_histogram(t)
    hist_s, _ = geometry.angle_histogram(s)
    views = geometry.pca_pair(s, t)
    return {
        "t": t, "s": s, "labels": bundle.data.y_test[list(indices)].tolist(),
        "dist": (geometry.distance_matrix(t).numpy(), geometry.distance_matrix(s).numpy()),
        "cos": (geometry.cosine_matrix(t).numpy(), geometry.cosine_matrix(s).numpy()),
        "hist": (edges.numpy(), hist_t.numpy(), hist_s.numpy()),
        "pca": (views["teacher"].numpy(), views["student"].numpy()),
        "gap": geometry.geometry_gap(s, t),
    }  # fmt: skip


@st.cache_data(max_entries=64)
def invariance(indices: tuple[int, ...], angle: float, scale: float, shift: float) -> dict:
    out = compute(indices)
    sweep = [geometry.rkd_vs_l2(out["s"], out["t"], {"angle": a, "scale": scale, "shift": shift})
             for a in ANGLES]  # fmt: skip
    now = geometry.rkd_vs_l2(out["s"], out["t"], {"angle": angle, "scale": scale, "shift": shift})
    return {"sweep": sweep, "now": now}


st.title("Relations: the shape of a batch")
ui.prose(
    "A 30-unit student cannot copy a 300-unit teacher's embedding point by point: the two "
    "spaces do not even have the same dimension. Relational KD (Park et al. 2019) asks for less "
    "and more at once: that the **distances between examples** (divided by their mean) and the "
    "**angles in every triplet** match the teacher's. Those relations do not change when the "
    "student's embedding is rotated, scaled or moved, so the student is free in everything but "
    "the shape. Below: a batch of real test images through the demo teacher and student."
)
bundle = ui.demo()
c1, c2, c3 = st.columns(3)
with c1:
    kind = ui.url_choice("Batch", ["random", "by class"], key="batch", default="by class")
with c2:
    n = ui.url_int("Images in the batch", "n", 32, 128, 40)
with c3:
    seed = ui.url_int("Seed", "seed", 0, 9999, 0)
indices = tuple(batch(kind, n, seed))
out = compute(indices)
labels = out["labels"]
sel = ui.url_int("Selected image (marked in every view)", "sel", 0, len(indices) - 1, 0)
pixels = bundle.data.denormalise(bundle.data.x_test[indices[sel]])[0]
left, right = st.columns([1, 5])
left.image((pixels * 255).byte().numpy(), width=84, caption=f"#{indices[sel]}: a {labels[sel]}")
right.metric("Geometry gap, mean |D_student − D_teacher|", f"{out['gap']:.3f}",
             help="kdcore.geometry.geometry_gap over the distinct pairs")  # fmt: skip

st.header("Distances, divided by their mean")
ui.plot(heatmap_pair(*out["dist"], ("teacher ψ_D", "student ψ_D"), labels, sel), key="dist")
st.latex(
    r"\begin{gathered}\psi_D(x_i, x_j) = \frac{\lVert x_i - x_j \rVert_2}{\mu},\\ "
    r"\mu = \frac{1}{B(B-1)} \sum_{i \ne j} \lVert x_i - x_j \rVert_2,\\ "
    r"\mathcal{L}_{RKD\text{-}D} = \frac{1}{B^2}\sum_{i,j} \ell_\delta\big(\psi_D(t_i,t_j),"
    r"\psi_D(s_i,s_j)\big)\end{gathered}"
)
st.header("Cosine similarities")
st.caption(
    "Close to what similarity-preserving KD (Tung & Mori 2019) compares: SP takes the Gram "
    "matrix of the batch and scales each row to unit length; the cosine scales each entry by "
    "both vectors' lengths."
)
cos = heatmap_pair(*out["cos"], ("teacher", "student"), labels, sel, zmin=-1.0, zmax=1.0,
                   colorscale="RdBu")  # fmt: skip
ui.plot(cos, key="cos")
st.header("Neighbours as probabilities: PKT")
show_pkt(out["t"], out["s"], labels, sel)
st.header("Pairs through a kernel: correlation congruence")
cc_views.show_cc(out["t"], out["s"], labels, sel)
st.header("Angles in all triplets")
st.markdown(
    f"RKD-A compares the cosine of the angle at x_i between x_j and x_k for all "
    f"{n * (n - 1) * (n - 2):,} ordered triplets of distinct images. ReLU embeddings are "
    "crowded in one orthant, so most angles are acute."
)
edges, h_t, h_s = out["hist"]
ui.plot(angle_histogram_figure(edges, h_t, h_s), key="angles")
st.latex(
    r"\psi_A(x_i, x_j, x_k) = \Big\langle \tfrac{x_j - x_i}{\lVert x_j - x_i \rVert},"
    r"\tfrac{x_k - x_i}{\lVert x_k - x_i \rVert} \Big\rangle"
)
st.header("The batch in two dimensions")
st.caption(
    "PCA fitted on each embedding on its own (their dimensions differ); the student's view is "
    "then turned (orthogonal Procrustes) onto the teacher's so the same image sits in the same "
    "place when the shapes agree. Hover for the image number."
)
ui.plot(pca_figure(*out["pca"], labels, sel), key="pca")

st.header("Rotate, scale, move the student: RKD does not notice")
c1, c2, c3 = st.columns(3)
with c1:
    angle = ui.url_float("Rotation (degrees)", "angle", 0.0, 360.0, 0.0, 5.0, slider=True)
with c2:
    scale = ui.url_float("Scale", "scale", 0.1, 10.0, 1.0, 0.1, slider=True)
with c3:
    shift = ui.url_float("Shift (in batch radii)", "shift", -5.0, 5.0, 0.0, 0.1, slider=True)
inv = invariance(indices, angle, scale, shift)
now = inv["now"]
m1, m2, m3 = st.columns(3)
m1.metric("RKD-D to the teacher", f"{now['rkd_distance']:.5f}")
m2.metric("RKD-A to the teacher", f"{now['rkd_angle']:.5f}")
m3.metric("L2 to the unmoved student", f"{now['l2']:.5f}")
rkd = np.array([r["rkd_distance"] + r["rkd_angle"] for r in inv["sweep"]])
l2 = np.array([r["l2"] for r in inv["sweep"]])
ui.plot(invariance_figure(ANGLES, rkd, l2, angle), key="invariance")
st.caption(
    "The rotation turns the plane of the first two principal axes; the L2 loss is what a "
    "point-matching loss (a FitNets hint) would add if the unmoved embedding were its target."
)

st.header("During training: the rkd-mnist preset")
COST = ("One epoch trains a 300-300 teacher (cached afterwards) and three 30-30 students: about "
        "a minute on a 2-core CPU.")  # fmt: skip
queue = optional_queue()  # or one line on why the store cannot be read, for both sections
run = lab_ui.stored_or_offer(queue, "rkd-mnist", COST, "ep_rkd", "run_rkd")
if run is not None and not (run.result or {}).get("geometry"):
    ui.fallback(f"{lab_ui.run_name(run)} kept no geometry (an older version's run); run it again.")
elif run is not None:
    result = run.result
    gaps, mats = result["geometry"], result["geometry_matrices"]
    epochs = max(len(v) for v in gaps.values())
    st.caption(f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}; {len(mats['indices'])} test "
               "images shown.")  # fmt: skip
    epoch = ui.url_epoch("epoch", epochs)
    ui.plot(gap_figure(gaps, epoch), key="gaps")
    names = list(mats["students"])
    default = "student_rkd" if "student_rkd" in names else names[0]
    who = ui.url_choice("Student", names, key="who", default=default)
    m = mats["students"][who]
    ep = min(epoch, len(m)) - 1
    pair = heatmap_pair(np.array(mats["teacher"]), np.array(m[ep]),
                        ("teacher", f"{who}, epoch {ep + 1}"), mats["labels"])  # fmt: skip
    ui.plot(pair, key="stored")
    lab_ui.why_differs("rkd-mnist")

st.header("Trained with PKT: the pkt-mnist preset")
lab_ui.stored_students(queue, "pkt-mnist", "pkt", COST, ("ep_pkt", "run_pkt"), PAPER_LINE)
st.header("Trained with CC: the cc-mnist preset")
cc_views.show_stored_cc(queue)

ui.show_code(geometry.distance_matrix, geometry.geometry_gap, rkd_distance_loss, rkd_angle_loss,
             geometry.apply_transform, geometry.rkd_vs_l2, neighbour_probabilities,
             pkt_loss, *cc_views.CODE)  # fmt: skip
