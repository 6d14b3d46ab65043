"""A good teacher is patient and consistent: when the student's inputs are augmented, the
teacher's target must be its answer for the very view the student sees, and distillation then
needs a long schedule (Beyer et al. 2022)."""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app import lab_ui, ui
from app.consistent_figures import errors_figure, fidelity_figure, table_rows, verdict
from app.figures import COLORS
from app.relation_figures import probabilities_figure
from app.zero_shot_figures import image_grid
from kdcore.consistency import KINDS, mixup, teacher_views, view_for
from kdcore.presets_consistent import PRESET, STUDENTS, fidelity

COST = (  # measured: the shipped run (README)
    "One run trains five 30-30 students for 800 epochs over 1,000 images (the 300-300 teacher "
    "is cached, shared with the relation presets): about two minutes on a quiet 2-core CPU, "
    "longer on a busy one."
)
SHIFT = 2  # pixels, as the run's jitter
TITLES = {"fixed": "fixed: the clean image", "independent": "independent: another view",
          "consistent": "consistent: the same view",
          "function-matching": "function matching: mixed views"}  # fmt: skip
COLOURS = [COLORS["other"], "#c2255c", COLORS["teacher"], "#2b8a3e"]


@st.cache_data(max_entries=64, show_spinner=False)
def views(index: int, draw: int) -> dict:
    """For test image ``index``: each kind's student and teacher inputs (uint8 pixels), the
    teacher's target from its input, and that target's KL from what the teacher says about the
    student's own input (0: the target is the teacher's answer for what the student sees)."""
    bundle = ui.load_demo(str(ui.models_dir()))
    data, net = bundle.data, bundle.teacher
    partner = int(torch.randint(len(data.y_test), (1,), generator=torch.Generator().manual_seed(
        draw + 1)))  # fmt: skip
    out = {}
    with torch.no_grad():
        for kind, (seen, shown) in teacher_views(
            data.x_test[index : index + 1], data.x_test[partner : partner + 1], SHIFT, draw
        ).items():
            target = torch.softmax(net(shown), 1)[0]
            own = torch.softmax(net(seen), 1)[0]
            pixels = [(data.denormalise(v[0])[0].clamp(0, 1) * 255).round().byte().numpy()
                      for v in (seen, shown)]  # fmt: skip
            kl = float((own * (own.log() - target.clamp_min(1e-12).log())).sum())
            out[kind] = {"pixels": np.stack(pixels), "target": target.tolist(), "kl": kl}
    return out


st.title("A good teacher is patient and consistent")
ui.prose(
    "Distillation is usually run with the student's images augmented, shifted or cropped "
    "anew every step, and the teacher's targets computed once on the clean images and cached. "
    "Beyer et al. (2022) found that this quietly breaks it: the target is then the teacher's "
    "answer for an image the student is not looking at. Show both models the *same* view, and "
    "better still, mixtures of views (**function matching**), and the student learns the "
    "teacher's function itself; it then needs a long, **patient**, schedule to do so."
)
bundle = ui.demo()
example = ui.pick_example(bundle, default_digit=7, default_k=0)
draw = ui.url_int("Draw (the seed of the views of one training step)", "draw", 0, 9999, 0)
shown = views(example.index, draw)

st.header("Four ways to pick the teacher's target")
cols = st.columns(len(KINDS))
for col, kind in zip(cols, KINDS, strict=True):
    col.image(image_grid(shown[kind]["pixels"][None], scale=3), caption=TITLES[kind],
              width="stretch")  # fmt: skip
    col.metric("target off by (KL)", f"{shown[kind]['kl']:.3f}")
st.caption(
    f"Test image #{example.index}, a {example.digit}, shifted by up to {SHIFT} pixels each way "
    f"(draw {draw}); in each pair the student's input on the left, the teacher's on the right. "
    "For function matching both see the student's view mixed with another image's. Off by: "
    "the KL of each target from what the teacher says about the image the student is shown. "
    "Teacher: the demo 300-300 MLP."
)
targets = {TITLES[k]: shown[k]["target"] for k in KINDS}
ui.plot(probabilities_figure(targets, COLOURS), key="targets")
st.latex(
    r"\begin{gathered}\mathcal L = \mathrm{KL}\big(p_T(v_T)\,\|\,p_S(v_S)\big),\quad "
    r"v_S = a(x)\\ v_T \in \{\,x,\ a'(x),\ a(x)\,\},\quad"
    r"\\ \text{or } v_S = v_T = \lambda\,a(x_i) + (1-\lambda)\,a(x_j)\end{gathered}"
)

st.header("Patience: the stored consistent-teaching run")
queue = lab_ui.optional_queue()
# patience is the point: the epochs box offers the preset's own 800 and up to 2,000
run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_consistent", "run_consistent", most=2000,
                             first=800)  # fmt: skip
if run is not None and run.result:
    res = run.result
    models, history = res.get("models", {}), res.get("history", {})
    names = [n for n in STUDENTS if n in models]
    ui.plot(errors_figure(history, names), key="patience")
    ui.prose(verdict(models))
    ui.plot(fidelity_figure(history, names[1:]), key="fidelity")
    st.dataframe(pd.DataFrame(table_rows(models, names)), hide_index=True,
                 placeholder=ui.MISSING)  # fmt: skip
    size = res.get("transfer_set", {}).get("size")
    st.caption(
        f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}. "
        f"Each student sees {f'{size:,}' if size else 'a few'} training images, jittered "
        "anew every step, and the teacher's targets alone (the labels only for the first); "
        "the teacher (300-300, cached) was trained on all 60,000. KL from the teacher at T = "
        f"{res.get('config', {}).get('T', 1.0):g}; agreement: the share of the 10,000 test "
        "images on which the student's top digit is the teacher's."
    )
    lab_ui.why_differs(PRESET)
ui.see_also(
    ("kd-loss", "the loss itself, and why T² scales it"),
    ("modes", "a teacher's answers on mixed images: the ensemble and teacher-free views"),
)
ui.show_code(teacher_views, view_for, mixup, fidelity)
