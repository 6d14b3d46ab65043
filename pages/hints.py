"""Hints and attention maps: FitNets' guided layer, attention transfer, VID's learned variances,
AB's activation boundaries, FT's paraphrased factors, FSP's flow between layers and ReviewKD's
paths across levels, from stored runs."""

import streamlit as st
import torch

from app import fsp_views, ft_views, lab_ui, ofd_views, review_views, ui
from app.ab_views import show_ab
from app.feature_figures import accuracy_bars, attention_grid, hint_figure, loss_curve
from app.lab_ui import describe, optional_queue
from app.vid_views import show_vid
from kdcore.checkpoint import CheckpointError
from kdcore.data import load_mnist
from kdcore.jobs import JobQueue
from kdcore.losses.ab import ab_loss
from kdcore.losses.attention import at_loss, attention_map
from kdcore.losses.fitnets import fitnet_loss
from kdcore.losses.vid import vid_loss
from kdcore.models import build_model
from kdcore.presets_features import attention_snapshot

FITNETS, AT = "fitnets-mnist", "attention-transfer"
COST = {  # steps of B = 128 on a busy 2-core CPU (load ~8): cnn 0.85 s, cnn-8 0.7 s; 469 a epoch
    FITNETS: "One epoch trains a 32/64-channel CNN teacher (cached after the first run, and "
    "shared with attention transfer) and three 8/16-channel students, the FitNets one for a "
    "hint epoch and a KD epoch: five model-epochs, up to 5 minutes each on a busy 2-core CPU, "
    "a minute or two in all on a GPU.",
    AT: "One epoch trains the CNN teacher (or reuses the cached one) and three thin students, "
    "keeping the maps of 8 test images after every epoch: four model-epochs, up to 5 minutes "
    "each on a busy 2-core CPU, a minute or two in all on a GPU.",
}
BASELINES = ["student_hard", "student_kd"]


@st.cache_data(max_entries=16)
def feature_shape(arch: str, layer: str) -> tuple[int, ...]:
    """(C, H, W) of a named feature for one MNIST image, from an untrained model."""
    with torch.no_grad():
        out = build_model(arch, 10, (1, 28, 28)).forward_features(torch.zeros(1, 1, 28, 28))
    return tuple(out.features[layer].shape[1:])


@st.cache_data(max_entries=64)
def live_maps(path: str, index: int, layers: tuple[str, ...]) -> dict:
    x = load_mnist().x_test[index : index + 1]  # (1, 1, 28, 28)
    with torch.no_grad():
        maps = attention_snapshot(ui.saved_model(path), x, layers)  # {layer: [1][H][W]}
    return {layer: m[0] for layer, m in maps.items()}


def digit_image(index: int):
    """Test image ``index`` as an upscaled uint8 array for st.image."""
    data = load_mnist()
    pixels = data.denormalise(data.x_test[index])[0]  # (28, 28) in [0, 1]
    return (pixels.repeat_interleave(4, 0).repeat_interleave(4, 1) * 255).byte().numpy()


def stored_run(queue: JobQueue | None, name: str, key: str):
    return lab_ui.stored_or_offer(queue, name, COST[name], f"ep_{key}", f"run_{key}")


st.title("Hints & attention maps")
ui.prose(
    "Response-based KD shows the student only the teacher's last word. Feature-based methods "
    "also show it *how the teacher got there*. **FitNets** (Romero et al. 2015) picks a hidden "
    "layer of the teacher as a *hint* and trains a thinner student's *guided* layer, through a "
    "small regressor, to reproduce it, before the usual KD. **Attention transfer** (Zagoruyko & "
    "Komodakis 2017) asks for less: only *where* each layer's activations are strong, a map that "
    "ignores how many channels either network has."
)
queue = optional_queue()

st.header("FitNets: a hint for a thin student")
run = stored_run(queue, FITNETS, "fit")
if run is not None:
    res = run.result
    pair = res["pairing"]
    s_arch, s_layer = pair["student"].rsplit(".", 1)
    t_arch, t_layer = pair["teacher"].rsplit(".", 1)
    s_shape, t_shape = feature_shape(s_arch, s_layer), feature_shape(t_arch, t_layer)
    st.caption(f"{lab_ui.run_name(run)}: {describe(run)}.")
    st.markdown(
        f"The student's guided layer **{pair['student']}** {s_shape} goes through a "
        f"**{pair['projector']}** regressor ({s_shape[0]} → {t_shape[0]} channels at each of the "
        f"{s_shape[1]}×{s_shape[2]} positions) to meet the teacher's hint **{pair['teacher']}** "
        f"{t_shape}. Stage 1 trains only the layers up to the guided one and the regressor on "
        "the hint; stage 2 trains the whole student with KD."
    )
    left, right = st.columns([3, 2])
    with left:
        ui.plot(hint_figure(res["history"]["student_fitnets"]), key="hint")
    with right:
        ui.plot(accuracy_bars(res["models"], [*BASELINES, "student_fitnets"]), key="fit_acc")
    lab_ui.why_differs(FITNETS)
st.latex(
    r"\begin{gathered}\mathcal{L}_{HT}(W_{guided}, W_r)\\ = \tfrac12 \big\lVert u_h(x; W_{hint}) "
    r"- r\big(v_g(x; W_{guided}); W_r\big) \big\rVert^2"
    r"\\ \longrightarrow\quad \frac{1}{B\,CHW}\sum_{b,c,h,w}\big(r(v_g) - u_h\big)^2"
    r"\end{gathered}"
)
st.caption(
    "Left, Romero et al.'s Eq. 3 for one image; right, what `fitnet_loss` computes: the mean "
    "squared error over the batch and every feature element, the same loss times 2 / CHW, a "
    "constant that only rescales the hint's learning rate."
)

st.header("Attention transfer: where the network looks")
run = stored_run(queue, AT, "at")
if run is not None:
    res, maps = run.result, run.result["maps"]
    layers, shown = maps["layers"], maps["test_index"]
    hist_at, hist_hard = res["history"]["student_at"], res["history"]["student_hard"]
    st.caption(
        f"{lab_ui.run_name(run)}: {describe(run)}. Maps of {len(shown)} test images were kept."
    )
    c1, c2 = st.columns(2)
    with c1:
        img = ui.url_int("Stored image", "img", 0, len(shown) - 1, 0,
                         help="Which of the run's kept test images")  # fmt: skip
    with c2:
        n = len(hist_at)
        epoch = ui.url_epoch("epoch", n)
    left, right = st.columns([1, 5])
    left.image(digit_image(shown[img]), caption=f"test image #{shown[img]}", width=112)
    columns = {
        "teacher": {layer: maps["teacher"][layer][img] for layer in layers},
        f"AT student, epoch {epoch}": {
            layer: hist_at[min(epoch, n) - 1]["extra"]["maps"][layer][img] for layer in layers
        },
        f"hard-label student, epoch {epoch}": {
            layer: hist_hard[min(epoch, len(hist_hard)) - 1]["extra"]["maps"][layer][img]
            for layer in layers
        },
    }
    with right:
        ui.plot(attention_grid(columns, layers), key="maps")
    left, right = st.columns([3, 2])
    with left:
        ui.plot(loss_curve(hist_at, "at", "student_at"), key="at_loss")
    with right:
        ui.plot(accuracy_bars(res["models"], [*BASELINES, "student_at"]), key="at_acc")
    lab_ui.why_differs(AT)

    st.subheader("The run's teacher on any test image")
    kept = lab_ui.weights_file(queue, run, "teacher")
    if kept is not None:
        path = str(kept)
        # its own control from the first stored image on: a default that followed "Stored
        # image" was the one in force on a reload only, not after a change
        index = ui.url_int("Test image", "test", 0, len(load_mnist().y_test) - 1, shown[0])
        try:
            live = live_maps(path, index, tuple(layers))
        except CheckpointError as err:
            ui.fallback(f"The teacher's weights cannot be read: {err}")
        else:
            left, right = st.columns([1, 5])
            left.image(digit_image(index), caption=f"test image #{index}", width=112)
            with right:
                ui.plot(attention_grid({"teacher": live}, layers), key="live")
    else:
        st.caption("This run kept no teacher weights, so no maps beyond the stored images.")
else:
    st.caption(
        "The demo models of the other pages are MLPs: they have no spatial layers and so no "
        "attention maps. A run of the preset trains the CNN teacher whose maps appear here."
    )
st.latex(
    r"\begin{gathered}Q^j = \frac{\mathrm{vec}\big(\tfrac1C \sum_c A_c^{j\,2}\big)}"
    r"{\big\lVert \mathrm{vec}\big(\tfrac1C \sum_c A_c^{j\,2}\big) \big\rVert_2},\\ "
    r"\mathcal{L} = \mathrm{CE} + \beta \sum_{j} \frac{1}{HW}"
    r"\big\lVert Q_S^j - Q_T^j \big\rVert_2^2\end{gathered}"
)
st.caption(
    "As the authors' code computes it, and this app: the squared difference averaged over the "
    "HW positions, β = 1000. The paper's Eq. 2 writes (β/2) times the norm of the difference, "
    "not its square."
)

st.header("VID: a hint with its own uncertainty")
show_vid(queue)
st.header("Activation boundaries: fire where the teacher fires")
show_ab(queue)
st.header("Overhaul of feature distillation: before the ReLU, with a margin")
ofd_views.show_ofd(queue)
st.header("Factor transfer: the teacher's layer, paraphrased")
ft_views.show_ft(queue)
st.header("FSP: the flow from one layer to the next")
fsp_views.show_fsp(queue)
st.header("Knowledge review: every level taught by the deeper ones too")
review_views.show_review(queue)
ui.show_code(attention_map, at_loss, fitnet_loss, vid_loss, ab_loss, *ofd_views.CODE,
             *ft_views.CODE, *fsp_views.CODE, *review_views.CODE)  # fmt: skip
