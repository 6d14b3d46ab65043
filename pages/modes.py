"""Training modes: peers, generations, ensembles, virtual teachers, own exits, assistants."""

import streamlit as st

from app import catalog, lab_ui, ui
from app import mode_figures as mf
from app.mode_views import SHOW
from kdcore.losses import class_wise, modes, uskd
from kdcore.losses import mutual_contrastive as contrastive
from kdcore.losses import online_features as online
from kdcore.losses.kd import kd_loss
from kdcore.presets import PRESETS
from kdcore.presets_modes import (
    run_born_again,
    run_class_wise,
    run_mutual_contrastive,
    run_mutual_learning,
    run_online_features,
)

# The views in the overview map's places (app/catalog.py): online, self, then offline
PLACED = catalog.mode_views()
VIEWS = [view for views in PLACED.values() for view in views]
WHAT = {
    "mutual-learning": "No teacher is trained first. Two peers learn **together from scratch**, "
    "each from the labels and from the other's current predictions, which it treats as fixed "
    "targets. What passes between them is each one's guess of which wrong digits look alike. "
    "It helps most where single nets overfit (CIFAR-100: every pair in Zhang et al. gained).",
    "online-features": "Mutual learning passes only predictions. AFD (Chung et al. 2020) also "
    "passes **features**, without matching them example by example: each network gets a "
    "**discriminator** that learns to tell the peer's features from its own, and the network "
    "learns to fool it, so its features come to be distributed like the peer's. Below, the "
    "same pair trained four ways from the same start, and the discriminators losing the game.",
    "mutual-contrastive": "Peers can also agree on **relations**: which images of a batch are "
    "close to which. In MCL (Yang et al. 2022) each network embeds the batch, and its "
    "similarities, softened, become a distribution per image; each network learns the other's "
    "distributions, and contrasts its own embeddings against the other's (same class close, "
    "others apart). Below, the pair with MCL, with mutual learning and alone, and how alike the "
    "two networks of each pair come to relate the same test images.",
    "class-wise": "No teacher and no copy: a network's prediction on an image is pulled towards "
    "**its own prediction on another image of the same class**, taken as a fixed target (Yun "
    "et al. 2020). What it learns to keep consistent is its view of the wrong classes: a 3 and "
    "another 3 should look alike, 8-ish or 5-ish, to the network itself. It is meant to make "
    "predictions less overconfident and images of one class less different in its eyes.",
    "uskd": "No teacher at all: USKD (Yang et al. 2023) makes both of NKD's soft labels from the "
    "network itself. The label's weight is its **own confidence, squared** and re-centred on 1 "
    "over the batch; the wrong digits get **Zipf's law**, 1/rank, in the order a weak linear "
    "classifier on an inner layer and the network rank them. Below, the student on hard labels, "
    "with USKD, and with KD from a real teacher for scale, and how each spreads its probability "
    "over the wrong digits.",
    "born-again": "A network teaches **a fresh copy of itself**: generation k is taught by "
    "generation k − 1, same architecture. It transfers the teacher's soft targets only, no "
    "extra capacity, and still helped on CIFAR-100; averaging the generations adds an ensemble.",
    "deep-supervision": "One network, one run: a classifier on a **shallow layer** learns from "
    "the labels, the deepest exit's softened prediction and its features (a hint). The shallow "
    "exit becomes a cheaper model on its own; the extra signal also shapes the early layers.",
    "ensemble": "Several teachers' **averaged soft targets** teach one small student (Hinton "
    "et al. 2015): it can carry much of the ensemble's accuracy at a fraction of its size and "
    "time per prediction. Where confident teachers disagree, the average spreads its mass over the "
    "classes they name, softer than each of them.",
    "teacher-free": "Label smoothing is KD from a **uniform teacher** that knows nothing; "
    "teacher-free KD uses a hand-made one, sure of the right digit and spreading the rest "
    "evenly. Neither carries dark knowledge, only calibration: how much it helps is a test of "
    "how much a real teacher's similarities are worth.",
    "teacher-assistant": "A tiny student cannot follow a far larger teacher's sharp targets. "
    "Mirzadeh et al. (2020) found accuracy can **fall** as the teacher grows, and that a "
    "mid-sized **assistant**, taught by the teacher, teaches the student better.",
}
EQ = {
    "mutual-learning": r"\mathcal{L}_{\Theta_k} = \mathrm{CE}(y, p_k) + \frac{1}{K-1}\sum_{l\ne k}"
    r"D_{KL}\big(\mathrm{sg}[p_l] \,\|\, p_k\big)",
    "online-features": r"\begin{aligned}\mathcal{L}_{D_k} &= [1 - D_k(G_{k-1}(x))]^2 + "
    r"[D_k(G_k(x))]^2 \\ \mathcal{L}_{k} &= \mathrm{CE}(y, p_k) + \frac{1}{K-1}\sum_{l\ne k}"
    r"D_{KL}(\mathrm{sg}[p_l] \,\|\, p_k) + \lambda\,[1 - D_k(G_k(x))]^2\end{aligned}",
    "mutual-contrastive": r"\mathcal{L}_i = \mathrm{CE}_i + 0.1\,(\mathcal{L}^{VCL}_i + "
    r"\mathcal{L}^{ICL}_{i\to j}) + T^2\,\mathrm{KL}\big(\sigma(\tfrac{e_j e_j^\top}{\tau T})"
    r" \,\|\, \sigma(\tfrac{e_i e_i^\top}{\tau T})\big) + T^2\,\mathrm{KL}\big("
    r"\sigma(\tfrac{e_j e_i^\top}{\tau T}) \,\|\, \sigma(\tfrac{e_i e_j^\top}{\tau T})\big)",
    "class-wise": r"\mathcal{L} = \mathrm{CE}(x, y; \theta) + \lambda\,T^2\,"
    r"\mathrm{KL}\big(P(y \mid x'; \tilde\theta, T) \,\|\, P(y \mid x; \theta, T)\big),"
    r"\quad y(x') = y(x)",
    "born-again": r"\mathcal{L}(\theta_k) = (1-\alpha)\,\mathrm{CE}(y, q_k) + \alpha T^2\,"
    r"\mathrm{KL}\big(q^T_{k-1} \,\|\, q^T_k\big),\quad \bar p = \tfrac1G\textstyle\sum_k q_k",
    "uskd": r"\begin{gathered}\tilde T_t = S_t^2 + 1 - \overline{S_t^2},\quad "
    r"\tilde T_{i \ne t} \propto \frac{1}{\mathrm{rank}_i}\\ \mathcal{L} = \mathrm{CE} - "
    r"\alpha\,\tilde T_t \log S_t\\ - \beta \sum_{i \ne t} \tilde T_i \log \hat S_i - "
    r"\mu \sum_i y^{0.1}_i \log W_i\end{gathered}",
    "deep-supervision": r"\mathcal{L} = \mathrm{CE}(y,q^C) + \sum_{i<C}\Big[(1-\alpha)\,"
    r"\mathrm{CE}(y,q^i) + \alpha T^2\,\mathrm{KL}(q^{C,T}\|q^{i,T}) + "
    r"\tfrac{\beta}{D}\lVert F_i-F_C\rVert^2\Big]",
    "ensemble": r"\bar p^T = \frac{1}{M}\sum_{m=1}^{M}\mathrm{softmax}(v_m/T),\quad"
    r"\mathcal{L} = (1-\alpha)\,\mathrm{CE}(y,q) + \alpha T^2\,\mathrm{KL}(\bar p^T \| q^T)",
    "teacher-free": r"p^{LS}_k = (1-\epsilon)\mathbb{1}[k=y] + \tfrac{\epsilon}{C},\qquad "
    r"p^d_k = \begin{cases} a & k = y \\ \frac{1-a}{C-1} & k \ne y\end{cases}",
    "teacher-assistant": r"\text{teacher} \xrightarrow{\;KD\;} \text{assistant} "
    r"\xrightarrow{\;KD\;} \text{student}",
}
CODE = {
    "mutual-learning": (modes.mutual_kl, modes.mutual_learning_parts, run_mutual_learning),
    "online-features": (
        online.discriminator_loss,
        online.generator_loss,
        online.frozen,
        online.adversarial_parts,
        run_online_features,
    ),
    "born-again": (kd_loss, run_born_again),
    "mutual-contrastive": (
        contrastive.sup_contrastive,
        contrastive.similarity_kl,
        contrastive.mcl_parts,
        run_mutual_contrastive,
    ),
    "class-wise": (
        class_wise.class_wise_loss,
        class_wise.PartnerSampler.__call__,
        class_wise.class_wise_step,
        run_class_wise,
    ),
    "deep-supervision": (modes.self_distillation_parts, modes.SelfDistillation),
    "uskd": (uskd.target_label, uskd.rank_scores, uskd.zipf_labels, uskd.uskd_parts),
    "ensemble": (modes.ensemble_soft_targets, modes.ensemble_kd_loss, modes.TeacherEnsemble),
    "teacher-free": (modes.uniform_teacher, modes.virtual_teacher, modes.teacher_free_loss),
    "teacher-assistant": (kd_loss,),
}
COST = "One epoch of every model on all of MNIST: small MLPs, about a minute on a 2-core CPU."


@st.fragment(run_every=lab_ui.POLL_S)
def live(queue, run_id: int) -> None:
    """A run in flight: its progress and curves, redrawn as epochs arrive."""
    run = queue.store.get(run_id)
    if run is None or not run.active:
        st.rerun()
    st.progress(run.progress, text=lab_ui.progress_line(run))
    hist = mf.split_live_history(run.history)
    peers = [k for k in hist if k.startswith("peer_")]
    if peers:
        ui.plot(mf.mutual_curves(hist, peers), key=f"live-{run_id}")
    elif any(hist.values()):
        ui.plot(lab_ui.live_figure(hist), key=f"live-{run_id}")


def stored(queue, name: str):
    """The newest completed run (else the shipped one), with one in flight shown live above it;
    with none of the user's own, an offer to start one."""
    return lab_ui.stored_or_offer(queue, name, COST, f"ep_{name}", f"run_{name}", live=live)


st.title("Training modes: who teaches whom")
ui.prose(
    "Offline KD trains a teacher first and then freezes it. The teacher can also learn **with** "
    "the student (online: peers passing predictions, features or relations), **be** the student "
    "(self: a later generation, another image of the class, a deeper exit), be **several** "
    "models, a **hand-made** distribution, or hand over to an **assistant**. Each view below is "
    "a real run of a preset on MNIST, beside the same networks trained alone at the same budget."
)
# No format_func: the URL keeps the option's label, and ?mode=born-again reads well in a link.
mode = ui.url_choice("Mode", VIEWS, key="mode", default="mutual-learning")
places = (f"**{m}**: " + ", ".join(f"{v} ({k.lower()})" for v, k in views.items())
          for m, views in PLACED.items())  # fmt: skip
st.caption(" · ".join(places) + ". In brackets, the knowledge passed on, as in the overview's map.")
preset = PRESETS[mode]
st.header(preset.title)
st.markdown(WHAT[mode])
st.latex(EQ[mode])
queue = lab_ui.optional_queue()
run = stored(queue, mode)
if run is not None and run.result:
    st.caption(f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}.")
    try:
        SHOW[mode](run.result)
    except (KeyError, IndexError, TypeError) as err:  # a result from an older version
        ui.fallback(f"This run's result has another shape ({type(err).__name__}: {err}).")
        lab_ui.results_table(run)
caption, rows = mf.paper_reference(preset.paper)  # the preset's paper dict, not retyped here
if rows:
    st.dataframe(rows, hide_index=True, key=f"paper-{mode}", placeholder=ui.MISSING)
if caption:
    st.caption(caption)
st.caption(f"Source: {preset.source}. Why ours differ: {preset.differences}")
ui.show_code(*CODE[mode])
