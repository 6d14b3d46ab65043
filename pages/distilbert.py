"""Half the layers: DistilBERT's student, started from one of every two of the teacher's blocks
and trained by the triple loss, and the paper's ablation of each part (Sanh et al. 2019)."""

import itertools

import pandas as pd
import streamlit as st
import torch

from app import lab_ui, lm_runs, ui
from app.attention_figures import kl_figure
from app.distilbert_figures import (
    ablation_figure,
    blocks_label,
    curves_figure,
    init_figure,
    starts_figure,
)
from kdcore.gpt import LM_MODELS, build_lm, init_from
from kdcore.lm import floor_bits, sample_texts
from kdcore.lm_distill import Transfer, lm_step
from kdcore.lm_methods import get_lm_method
from kdcore.losses.distilbert import cosine_loss, every_other
from kdcore.presets_distilbert import (
    ARCH,
    DISTILBERT,
    DISTILBERT_PRESET,
    kl_from_truth,
    start_kls,
)
from kdcore.presets_lm import N_WORDS

PRESET = DISTILBERT_PRESET.name
COST = (  # measured: the shipped run (README)
    "Seven 0.4M-parameter students of six epochs each, the teacher's outputs cached once: about "
    "five minutes on a quiet 2-core CPU."
)
WIDTH, BLOCKS, _ = LM_MODELS["lm-teacher"]
S_BLOCKS = LM_MODELS[ARCH][1]
METHOD = get_lm_method(DISTILBERT["distilbert"][0])
CHOICES = [", ".join(map(str, b)) for b in itertools.combinations(range(1, BLOCKS + 1), S_BLOCKS)]
PAPER = ", ".join(map(str, every_other(S_BLOCKS, BLOCKS)))  # one of every two, from the first
DOCS = 200  # held-out documents the live figures read


@st.cache_data(max_entries=1, show_spinner="Starting a student from each pair of blocks…")
def starts() -> tuple[dict[tuple[int, ...], float], float, float]:
    """The KL from the truth of every start before training, of random weights, of the teacher."""
    teacher, test = ui.lm_teacher(), sample_texts(DOCS, N_WORDS, 2024)
    floor = floor_bits(test)
    torch.manual_seed(0)
    random = kl_from_truth(build_lm(ARCH, teacher.cfg.vocab, teacher.cfg.block), test, floor)
    return start_kls(teacher, test, floor), random, kl_from_truth(teacher, test, floor)


@st.cache_data(max_entries=8, show_spinner="Computing the triple loss…")
def loss_parts(keep: tuple[int, ...]) -> pd.DataFrame:
    """The triple loss's weighted terms on 64 held-out documents, as the training step computes
    them, for the student started from ``keep`` and for one from random weights."""
    teacher = ui.lm_teacher()
    transfer = Transfer(teacher, sample_texts(64, N_WORDS, 2024), N_WORDS)
    rows = torch.arange(64)
    out = {}
    for label, blocks in ((f"from {blocks_label(keep)}", keep), ("from random weights", None)):
        torch.manual_seed(0)
        student = build_lm(ARCH, teacher.cfg.vocab, teacher.cfg.block)
        if blocks is not None:
            init_from(student, teacher, blocks)
        with torch.no_grad():
            parts = lm_step(METHOD.name, None, "char", transfer, student.cfg)(student.eval(), rows)
        out[label] = {k: float(v) for k, v in parts.items()}
    names = {"kd": "α_ce·T²·KL", "ce": "α_lm·CE", "cos": "α_cos·L_cos"}  # the equation's order
    return pd.DataFrame(out).T[list(names)].rename(columns=names)


st.title("Half the layers: DistilBERT")
ui.prose(
    "TinyBERT and MiniLM shrink the student's width and need a projector or relations to "
    "compare it with the teacher. **DistilBERT** (Sanh et al. 2019) keeps the teacher's width "
    "and halves its depth, so the teacher's own weights fit the student: it **starts the "
    "student from one of every two of the teacher's blocks**, then trains it by a *triple "
    "loss*: the teacher's soft targets, the real text, and a cosine loss that turns the "
    "student's last hidden states toward the teacher's. The paper's ablation finds the start "
    "matters most."
)

st.header("Which of the teacher's blocks to start from")
ui.lm_teacher()  # or one line, and the page stops
keep = ui.url_choice("The teacher's blocks the student starts from", CHOICES, "keep", PAPER,
                     help=f"{PAPER}: the paper's one of every two, from the first")  # fmt: skip
blocks = tuple(int(b) for b in keep.split(", "))
ui.plot(init_figure(blocks, BLOCKS), key="init")
kls, random_kl, teacher_kl = starts()
ui.plot(starts_figure(kls, blocks, random_kl, teacher_kl), key="starts")
best = min(kls, key=kls.get)
st.caption(
    f"The student ({S_BLOCKS} blocks of the teacher's width {WIDTH}) copied from the teacher's "
    f"{blocks_label(blocks)} with its embeddings, final LayerNorm and head, before any training, "
    f"on {DOCS} held-out documents: {kls[blocks]:.3g} bits per character from the language's "
    f"truth, against {random_kl:.3g} from random weights and {teacher_kl:.3g} for the whole "
    f"teacher. The best of the {len(kls)} choices here is {blocks_label(best)}; every choice "
    "without block 1 starts worse than random weights: later blocks expect the first's output."
)

st.subheader("The triple loss, as the code runs it")
# KaTeX does not wrap: each line fits a phone
st.latex(r"\begin{gathered}\mathcal L = \alpha_{ce}\,T^2\,\mathrm{KL}(p^T\|q^T) + "
         r"\alpha_{lm}\,\mathrm{CE}(y, q)\\ + \alpha_{cos}\,\big(1 - \cos(h^S, h^T)\big)"
         r"\end{gathered}")  # fmt: skip
p = METHOD.make_params()
st.table(loss_parts(blocks).style.format("{:.4f}"))
st.caption(
    f"With the official code's weights α_ce = {p.alpha_ce:g}, α_lm = {p.alpha_lm:g}, α_cos = "
    f"{p.alpha_cos:g} and T = {p.T:g}, on 64 held-out documents before any training. h is "
    "the last block's output at every position; the cosine needs no projector because the "
    "widths are equal. The paper's masked-LM term is the causal LM's here, as DistilGPT2's."
)

st.header("Students started and taught each way")
run = lab_ui.stored_or_offer(lab_ui.optional_queue(), PRESET, COST, "ep_distilbert",
                             "run_distilbert")  # fmt: skip
if run is not None:
    res, models, floor = lm_runs.run_head(run)
    start = {n: (models[n].get("method_params") or {}).get("init", "random") for n in models
             if n in DISTILBERT and "start_kl_true" in models[n]}  # fmt: skip
    curves = {n: [models[n]["start_kl_true"], *lm_runs.kl_curve(res, n, floor)] for n in start}
    copied = {n for n, how in start.items() if how == "teacher"}
    ui.plot(curves_figure(curves, copied, models.get("teacher", {}).get("kl_true")), key="curves")
    st.caption(
        "KL from the truth after each epoch, epoch 0 the student before its first step: "
        "solid, started from the teacher's blocks; dotted, from random weights."
    )
    full = models.get("distilbert", {}).get("kl_true")
    if full is not None:
        ours = {n: models[n]["kl_true"] - full for n in DISTILBERT
                if n not in ("hard", "distilbert") and n in models}  # fmt: skip
        paper = res.get("paper", {}).get("ablation_glue_delta", {})
        ui.plot(ablation_figure(ours, paper), key="ablation")
        st.caption(
            "What each change to the recipe costs against the full DistilBERT student "
            "(one seed here: the seed study below says which costs hold)."
        )
    ui.plot(kl_figure(models), key="results")
    teacher, student = models.get("teacher", {}), models.get("distilbert", {})
    if teacher.get("pass_seconds") and student.get("pass_seconds"):
        size = student["params"] / teacher["params"]
        speed = teacher["pass_seconds"] / student["pass_seconds"]
        st.caption(f"Size and speed: the student has {size:.0%} of the teacher's parameters and "
                   f"reads the held-out text {speed:.2f} times as fast on this machine (the "
                   "paper: 60% of BERT-base's parameters, 1.63 times as fast on a CPU, "
                   "Table 3).")  # fmt: skip
    rows = [lm_runs.row(n, m, {
        "starts from": start.get(n, ""),
        **{f"α_{k}": (m.get("method_params") or {}).get(f"alpha_{k}") for k in ("ce", "lm", "cos")},
    }, {"KL at start (bits/char)": m.get("start_kl_true")})
        for n, m in models.items() if n in DISTILBERT or n == "teacher"]  # fmt: skip
    lm_runs.run_table(
        res, rows, dict.fromkeys(("α_ce", "α_lm", "α_cos"), "{:g}"), PRESET, cited="Paper"
    )

ui.see_also(
    ("hidden-states", "a narrower student, compared through a projector"),
    ("language-models", "word-level KD, the soft-target term alone"),
)
ui.show_code(cosine_loss, every_other, init_from, lm_step)
