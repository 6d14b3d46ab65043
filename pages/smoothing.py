"""Label smoothing and the teacher: a smoothed teacher is as accurate, but its penultimate layer
gathers each class into a tight cluster and its soft targets say nothing about which wrong digit
an image resembles, so it teaches worse (Müller, Kornblith & Hinton 2019)."""

import pandas as pd
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS
from app.relation_figures import probabilities_figure
from app.smoothing_figures import (
    figures_table_rows,
    projection_figure,
    students_figure,
    sweep_sentence,
)
from kdcore.checkpoint import CheckpointError, load_model
from kdcore.data import load_mnist
from kdcore.losses.modes import label_smoothing_loss
from kdcore.presets_smoothing import PRESET, STUDENTS, TEACHERS, sweep_points
from kdcore.smoothing import (
    cluster_spread,
    non_target_entropy,
    template_basis,
    template_projection,
)
from kdcore.train import predict_logits

COST = (  # measured: the shipped run (README)
    "One epoch trains two 300-300 teachers and nine 30-30 students: about 5 s on a quiet 2-core "
    "CPU (the shipped run's 16 epochs took 85 s), a few times that on a busy one."
)
SHOWN = 1000  # images of each digit drawn in a panel (every one of them goes into the spread)
TITLES = {"teacher_hard": "trained on hard labels", "teacher_ls": "with label smoothing"}
SPLITS = ("test", "training")


@st.cache_resource(max_entries=4, show_spinner="Loading the two teachers...")
def teachers(paths: tuple[str, ...]) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """Each teacher of the run and its logits on the 10,000 test images."""
    x = load_mnist().x_test
    out = {}
    for name, path in zip(TEACHERS, paths, strict=True):
        model, _ = load_model(path)
        out[name] = (model, predict_logits(model, x))
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def projection(paths: tuple[str, ...], classes: tuple[int, int, int], split: str) -> dict:
    """Per teacher: the images of ``classes`` in ``split`` projected onto the plane through
    its three templates (SHOWN of each digit; the spread over all of them)."""
    data = load_mnist()
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    keep = torch.nonzero(torch.isin(y, torch.tensor(classes))).flatten()
    shown = torch.cat([keep[y[keep] == c][:SHOWN] for c in classes])
    out = {}
    for name, (model, _) in teachers(paths).items():
        xy, _ = template_projection(model, x[keep], classes)
        drawn = torch.searchsorted(keep, shown)  # rows of xy that are drawn
        out[name] = (xy[drawn].numpy(), y[shown].numpy(), cluster_spread(xy, y[keep]))
    return out


st.title("Label smoothing: a better teacher that teaches worse")
ui.prose(
    "Train a teacher on **label-smoothed** targets, (1 − α)·one-hot + α/K, and it often "
    "generalises as well or better. Yet Müller, Kornblith & Hinton (2019) found that a student "
    "distilled from it learns much less. Their picture of why: inside the smoothed teacher, "
    "every image of a class is pulled to one tight cluster, equally far from every other class, "
    "so its logits no longer say *which* wrong class an image resembles: the dark knowledge "
    "distillation feeds on. Below, both teachers trained from the same initial weights on the "
    "same data, differing only in their targets."
)
queue = lab_ui.optional_queue()
run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_smooth", "run_smooth")
res = run.result if run is not None else None
paths = [lab_ui.weights_file(queue, run, n) for n in TEACHERS] if run is not None else []
if res is None:
    st.stop()
try:
    if not all(paths):
        raise CheckpointError("this run kept no weights for its teachers")
    key = tuple(str(p) for p in paths)
    nets = teachers(key)
except CheckpointError as err:
    nets = None
    ui.fallback(f"The teachers cannot be loaded, so the live views are off: {err}")
models = res.get("models", {})
cfg = res.get("config", {})
marked = None  # the T slider's value, marked on the students' chart where the slider is shown

if nets is not None:
    st.header("Inside each teacher: the penultimate layer, seen through three templates")
    ui.prose(
        "Each digit k has a *template* in the last layer, the row w_k of its weights: logit k "
        "is w_k · h + b_k for the penultimate activations h. Take three digits, the plane "
        "through their templates, and project every image of those digits onto it: where an "
        "image lands is exactly what the three logits say about it (Müller et al. 2019, §2)."
    )
    picked = ui.url_pills("Three digits", list(range(10)), "digits", [4, 7, 9])
    split = ui.url_choice("Images", SPLITS, "split", "test")
    example = ui.pick_example(ui.demo(), default_digit=4, default_k=0)
    if len(picked) != 3:
        st.info(f"Pick exactly three digits ({len(picked)} picked now).",
                icon=":material/touch_app:")  # fmt: skip
    else:
        classes = tuple(picked)
        proj = projection(key, classes, split)
        ring = {}
        x_one = load_mnist().x_test[example.index : example.index + 1]
        for name, (model, _) in nets.items():
            ring[TITLES[name]] = template_projection(model, x_one, classes)[0][0].numpy()
        panels = {TITLES[n]: proj[n][:2] for n in TEACHERS}
        ui.plot(projection_figure(panels, classes, ring), key="projection")
        cols = st.columns(2)
        for col, name in zip(cols, TEACHERS, strict=True):
            col.metric(f"cluster spread, {TITLES[name]}", f"{proj[name][2]:.3f}")
        st.caption(
            f"{split.capitalize()} images of digits {', '.join(map(str, classes))} ({SHOWN:,} "
            "of each drawn). Cluster spread: each digit's RMS distance to its centre, over the "
            "mean distance between centres, in this plane (0: every digit one point). Ringed: "
            f"test image #{example.index}, a {example.digit}. Each panel has its own scale."
        )

    st.header("What each teacher says about one image")
    T_at = min(max(round(2 * float(cfg.get("T", 4.0))) / 2, 0.5), 20.0)  # on the slider
    T = ui.url_float("Temperature T", "T", 0.5, 20.0, T_at, 0.5, slider=True)
    marked = T
    y = load_mnist().y_test
    i = example.index
    probs = {TITLES[n]: torch.softmax(z[i] / T, 0).tolist() for n, (_, z) in nets.items()}
    ui.plot(probabilities_figure(probs, [COLORS["teacher"], COLORS["student"]]), key="targets")
    even = {n: non_target_entropy(z, y, T) for n, (_, z) in nets.items()}
    cols = st.columns(2)
    for col, name in zip(cols, TEACHERS, strict=True):
        col.metric(f"evenness over the wrong digits, {TITLES[name]}",
                   f"{float(even[name][i]):.3f}", f"test-set mean {float(even[name].mean()):.3f}",
                   delta_color="off", delta_arrow="off")  # fmt: skip
    st.caption(
        f"Test image #{i} at T = {T:g}. Evenness: the entropy of the teacher's softened "
        "prediction over the nine wrong digits, renormalised, over log 9: 1 when it spreads "
        "them evenly (nothing said about which one the image resembles), lower when it singles "
        "some out. This is the distribution distillation's loss asks the student to copy."
    )

st.header("What the students learn, at each temperature")
cols = st.columns(2)
for col, name in zip(cols, TEACHERS, strict=True):
    if name in models:
        col.metric(f"teacher {TITLES[name]}", f"{models[name]['test_errors']} test errors")
points = sweep_points(models)
base = models.get("student_hard", {}).get("test_errors")
ui.plot(students_figure(points, base, marked), key="students")
ui.prose(sweep_sentence(points))
names = [n for n in (*TEACHERS, *STUDENTS) if n in models]
st.dataframe(pd.DataFrame(figures_table_rows(models, names)), hide_index=True,
             placeholder=ui.MISSING)  # fmt: skip
st.caption(
    f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}. The students are distilled with the "
    f"teacher's targets alone (α = {cfg.get('alpha', 1.0):g}, the paper's β = 1) at each "
    f"T; cluster spread over all ten digits in the full penultimate layer, evenness at "
    f"T = {cfg.get('T', 4.0):g}, ECE at T = 1. Paper: "
    "no student accuracies quoted here (see why below); its claim is the direction."
)
lab_ui.why_differs(PRESET)
if nets is not None and all(n in models for n in TEACHERS):
    sure = {n: float(torch.softmax(z, 1).max(1).values.mean()) for n, (_, z) in nets.items()}
    right = {n: 1 - models[n]["test_errors"] / len(y) for n in TEACHERS}
    off = {n: 100 * (sure[n] - right[n]) for n in TEACHERS}  # points over-confident
    verdict = (
        "smoothing overshot: the smoothed teacher is under-confident by more than the other was "
        "over-confident"
        if off["teacher_ls"] < 0 and -off["teacher_ls"] > abs(off["teacher_hard"])
        else "here too smoothing brought confidence closer to accuracy"
    )
    ui.prose(
        "Calibration, measured: in the paper label smoothing also made networks *better "
        "calibrated*, their confidence closer to their accuracy. Here the teacher on hard labels "
        f"is {sure['teacher_hard']:.1%} sure on average and right on {right['teacher_hard']:.1%} "
        f"of the test images ({off['teacher_hard']:+.1f} points); the smoothed one "
        f"{sure['teacher_ls']:.1%} sure and right on {right['teacher_ls']:.1%} "
        f"({off['teacher_ls']:+.1f}): {verdict} (the ECE column)."
    )
st.latex(
    r"\begin{gathered}y^{LS}_k = (1-\alpha)\,y_k + \frac{\alpha}{K}\\ z_k = w_k^\top h + b_k"
    r"\\ (u, v) = \big((h - w_a)^\top e_1,\ (h - w_a)^\top e_2\big)"
    r"\\ e_1, e_2 \text{ orthonormal, spanning}\\ w_b - w_a \text{ and } w_c - w_a"
    r"\end{gathered}"
)
ui.see_also(
    ("temperature", "label smoothing as a uniform teacher, beside the soft targets"),
    ("modes", "label smoothing and a virtual teacher for a student (teacher-free KD)"),
)
ui.show_code(template_basis, template_projection, cluster_spread, non_target_entropy,
             label_smoothing_loss)  # fmt: skip
