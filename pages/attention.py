"""Inside a transformer: MiniLM's self-attention relations, live on the shipped character-level
teacher, and students taught them in a stored run (Wang et al. 2020; 2021)."""

import streamlit as st
import torch

from app import lab_ui, lm_runs, ui
from app.attention_figures import (
    PAIR_TITLE,
    RELATION_HELP,
    kl_figure,
    pair_label,
    relation_caption,
    relation_kl_figure,
    relation_maps_figure,
)
from app.lm_figures import LABEL
from kdcore.gpt import LM_MODELS
from kdcore.language import LANGUAGE, PROMPT
from kdcore.lm import sample_texts
from kdcore.lm_distill import lm_step
from kdcore.lm_methods import RELATION_HEADS
from kdcore.losses.minilm import minilm_losses, model_relations, relation_kl
from kdcore.presets_lm import N_WORDS
from kdcore.presets_minilm import MINILM, MINILM_PRESET, map_text

PRESET = MINILM_PRESET.name
COST = (  # measured: the shipped run, 144 s (README)
    "Five 62k-parameter students of ten epochs each, the three taught relations reading the "
    "teacher's cached activations: about two and a half minutes on a quiet 2-core CPU."
)
WIDTH, BLOCKS, HEADS = LM_MODELS["lm-teacher"]
S_WIDTH, S_BLOCKS, S_HEADS = LM_MODELS["lm-student"]


@st.cache_data(max_entries=64)
def teacher_maps(doc: int, block: int, heads: int) -> tuple[str, dict[str, list]]:
    """The start of held-out document ``doc`` and the teacher's relations of ``block`` there,
    per relation head: {pair: (A_r, L, L)}."""
    text = map_text(PROMPT + LANGUAGE.text(sample_texts(doc + 1, N_WORDS, 2024).words[doc]))
    ids = torch.tensor([LANGUAGE.chars.encode(text)])
    maps = model_relations(ui.lm_teacher(), ids, heads, block - 1)
    return text, {pair: r[0].tolist() for pair, r in maps.items()}


@st.cache_data(max_entries=64)
def teacher_figure(doc: int, block: int, heads: int, pair: str):
    """The text and the teacher's maps as drawn, one panel per relation head, built once per
    setting (bench_pages: a rerun 127 -> 104 ms)."""
    text, maps = teacher_maps(doc, block, heads)
    # titles as short as a phone's quarter-width panel: the relation and the count are in the
    # caption
    panels = {f"head {a + 1}": m for a, m in enumerate(maps[pair])}
    return text, relation_maps_figure(panels, text)


st.title("Inside a transformer: MiniLM")
ui.prose(
    "Response-based distillation shows the student the teacher's answers. **MiniLM** (Wang et "
    "al. 2020) shows it how the teacher *reads*: inside a self-attention block each position "
    "asks a query, offers a key and carries a value, and the softmax of query against key is "
    "where it looks. MiniLM trains the student's last block to look where the teacher's last "
    "block looks, and to relate its values as the teacher's relate. **MiniLMv2** (Wang et al. "
    "2021) goes further: queries against queries, keys against keys, values against values, "
    "each split into *relation heads* of any number. Relations are dot products between "
    "positions, so a student of another width, with another number of heads, can match them "
    "without any projector."
)

st.header("How the teacher reads, live")
ui.lm_teacher()  # or one line, and the page stops
c1, c2 = st.columns(2)
with c1:
    doc = ui.url_int("Held-out document", "doc", 0, 199, 0)
with c2:
    block = ui.url_int(f"Teacher's block (of {BLOCKS})", "block", 1, BLOCKS, BLOCKS)
c3, c4 = st.columns(2)  # a row of their own: four buttons each, cut off in quarter columns
with c3:
    pair = ui.url_choice("Relation", list(PAIR_TITLE), "rel", "qk", format_func=pair_label,
                         help=RELATION_HELP)  # fmt: skip
with c4:
    heads = ui.url_choice("Relation heads A_r", list(RELATION_HEADS), "heads", HEADS)
text, fig = teacher_figure(doc, block, heads, pair)
ui.plot(fig, key="teacher_maps")
width = WIDTH // heads
st.caption(
    f"The teacher's block {block} on “{text}”, {PAIR_TITLE[pair]}: row i is the character "
    "being read, its probabilities over the characters up to it (a causal model looks only "
    f"back). Its "
    f"{WIDTH} query, key and value dimensions split into {heads} relation heads of {width}; "
    f"at A_r = {HEADS}, its own head count, q · k is exactly the attention it computes. The "
    f"student has {S_HEADS} heads of width {S_WIDTH // S_HEADS}; split into the same {heads} "
    f"relation heads (of {S_WIDTH // heads}), it has as many maps as the teacher, of the same "
    "size: nothing needs its heads or its width to match."
)

st.subheader("The loss, as the code runs it")
# KaTeX does not wrap: each line fits a phone
st.latex(r"\begin{gathered}R_{ij,a} = \mathrm{softmax}\Big(\frac{A_{i,a} A_{j,a}^\top}"
         r"{\sqrt{d_r}}\Big),\\ A_1, A_2, A_3 = Q, K, V,\ \ d_r = \frac{d}{A_r}\\"
         r"\mathcal L_{ij} = \frac{1}{A_r |x|}\sum_{a=1}^{A_r}\sum_{t=1}^{|x|}"
         r"\mathrm{KL}\big(R^{T}_{ij,a,t}\,\big\|\,R^{S}_{ij,a,t}\big)\end{gathered}")  # fmt: skip
st.latex(r"\begin{gathered}\mathcal L = \mathrm{CE}(y, q) + \lambda \sum_{(i,j)}"
         r"\mathcal L_{ij},\\ (i,j) \in \{QQ, KK, VV\}\ \text{(MiniLMv2)},\\ "
         r"\text{or}\ \{QK, VV\}\ \text{(MiniLM)}\end{gathered}")  # fmt: skip
st.caption(
    "T is the teacher's chosen block, S the student's last; t runs over positions, a over "
    "relation heads. MiniLM and MiniLMv2 train on the relation terms alone and fine-tune "
    "afterwards; a language model here must also predict, so the terms are added to the real "
    "text's cross-entropy (this app's choice)."
)

st.header("Students taught the teacher's relations")
run = lab_ui.stored_or_offer(lab_ui.optional_queue(), PRESET, COST, "ep_minilm", "run_minilm")
if run is not None:
    res, models, floor = lm_runs.run_head(run)
    ui.plot(relation_kl_figure(models), key="relation_kls")
    st.caption(relation_caption(models))
    stored = res.get("relation_maps", {})
    students = [n for n in stored.get("models", {}) if n not in ("teacher", "hard")]
    if students and "hard" in stored["models"]:
        # a row each: four students' names, cut off in a half-width column
        # opens on the student whose attention is nearest the teacher's, the relation shown first
        near = min(students, key=lambda n: models.get(n, {}).get("relation_kls", {}).get("qk", 9e9))
        who = ui.url_choice("Student", students, "who", near,
                            format_func=lambda n: LABEL.get(n, n))  # fmt: skip
        rel = ui.url_choice("Relation shown", list(PAIR_TITLE), "srel", "qk",
                            format_func=pair_label, help=RELATION_HELP)  # fmt: skip
        panels = {
            title: stored["models"][name][rel]
            for name, title in (
                ("teacher", "teacher"),
                ("hard", LABEL["hard"]),
                (who, LABEL.get(who, who)),
            )
        }
        ui.plot(relation_maps_figure(panels, stored["text"], cols=3), key="student_maps")
        st.caption(f"The {PAIR_TITLE[rel]} relation of each model's last block on "
                   f"“{stored['text']}”, the start of the run's first held-out document (the "
                   "run keeps its maps, not the students: the teacher's above read another "
                   f"document), averaged over {stored.get('heads', HEADS)} relation "
                   "heads.")  # fmt: skip
    ui.plot(kl_figure(models), key="results")
    st.caption(f"KL from the truth: bits per character above the language's entropy "
               f"({floor:.4f}), exactly. The models' bits per character agree to the third "
               "decimal; these differences tell them apart, and the seed study below says which "
               "hold.")  # fmt: skip
    rows = [lm_runs.row(n, m, {
        "relations": ((m.get("method_params") or {}).get("relations") or "").replace(" ", " + ")
        or None,
        "teacher block read": (m.get("method_params") or {}).get("teacher_layer"),
    }, {"relation KL (q-q + k-k + v-v)": m.get("relation_kl")})
        for n, m in models.items() if n in MINILM or n == "teacher"]  # fmt: skip
    lm_runs.run_table(res, rows, {"teacher block read": "{:.0f}"}, PRESET)

ui.see_also(("hidden-states", "the hidden states themselves, through a learnt projector"))
ui.show_code(relation_kl, minilm_losses, lm_step)
