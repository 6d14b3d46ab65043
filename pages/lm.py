"""Distilling language models: word-level, sequence-level and on-policy KD, forward vs reverse
KL, and a student with another tokenizer, on a language whose probabilities are known."""

import pandas as pd
import streamlit as st
import torch

from app import lab_ui, ui
from app.components.klview import kl_view, url_beta
from app.lm_figures import document_html, next_char_figure, results_figure, results_rows
from kdcore.klfit import BETAS, kl_frames
from kdcore.language import LANGUAGE, PAD, PROMPT
from kdcore.lm import sample_texts
from kdcore.lm_distill import lm_step
from kdcore.lm_methods import LM_METHODS
from kdcore.losses.lm import generalized_jsd, token_kd_loss, uld_loss
from kdcore.presets_lm import N_WORDS

VIEWS = {"word-vs-sequence-kd": "word- vs sequence-level KD", "on-policy-kd": "on-policy KD"}
COST = {"word-vs-sequence-kd": "Eight students of 62k parameters, one epoch each with the "
        "shipped teacher: about a minute on a quiet 2-core CPU.",
        "on-policy-kd": "Five students; the on-policy ones write a batch of text before every "
        "step: about a minute for one epoch of each (66 s), three for the default 4 + 4, on "
        "a quiet 2-core CPU."}  # fmt: skip
READS = {"corpus": "the true text", "teacher-greedy": "the teacher's greedy continuations",
         "teacher-sample": "the teacher's sampled continuations",
         "student": "its own samples"}  # fmt: skip


@st.cache_data(max_entries=64)
def position(doc: int, pos: int, T: float) -> dict:
    """The exact and the teacher's next-character distributions after ``pos`` characters."""
    text = PROMPT + LANGUAGE.text(sample_texts(doc + 1, N_WORDS, 2024).words[doc])
    ids = torch.tensor([LANGUAGE.chars.encode(text)])
    truth = LANGUAGE.true_next(ids)[0, pos - 1]  # (V,)
    with torch.no_grad():
        z = ui.lm_teacher()(ids[:, :-1])[0, pos - 1]  # (V,)
    p_t = torch.softmax(z / T, -1)
    kl = float((truth * (truth.clamp_min(1e-30).log() - p_t.log())).sum())
    return {"text": text, "truth": truth.tolist(), "teacher": p_t.tolist(), "kl": kl}


st.title("Distilling language models")
ui.prose(
    "A language model is a classifier applied again and again: at every position it gives a "
    "distribution over the next token. Distillation carries over, with two new questions. "
    "**Which text** does the student learn on: the real corpus, the teacher's own writing, or "
    "the student's? And **which divergence**: forward KL makes the student cover everything the "
    "teacher might say, reverse KL makes it commit to what the teacher says most. Here it all "
    "runs on a small synthetic language whose true probabilities are known exactly, so every "
    "model can be measured against the truth, not only against the teacher."
)
st.dataframe(pd.DataFrame({
    "": ["teacher's output", "transfer set", "vocabulary", "a student's mistakes"],
    "vision (the pages before)": ["one distribution per image", "images, fixed",
                                  "the classes, shared by design", "one wrong label"],
    "language models": ["one distribution per position", "text: real, the teacher's or the "
                        "student's own", "the tokenizer's, may differ", "compound as it writes"],
}), hide_index=True)  # fmt: skip

st.header("A language with known probabilities")
ui.lm_teacher()  # or one line, and the page stops
# Both tokenizers have one token that is no text: padding, which fills out the shorter
# documents of a batch and is never predicted (kdcore.language). The counts below leave it out.
n_chars, n_lexicon = LANGUAGE.chars.vocab_size - 1, LANGUAGE.wordtok.vocab_size - 1
padding = f"the padding token `{LANGUAGE.chars.chars[PAD]}`"
st.caption(
    f"Ten-word documents from a word-bigram grammar over {n_lexicon} words (the full stop is one), "
    f"written letter by letter: {n_chars} characters, the space and the full stop among them. The "
    "teacher is a 0.8M-parameter character-level transformer shipped in `assets/models/`."
)
c1, c2, c3 = st.columns(3)
with c1:
    doc = ui.url_int("Held-out document", "doc", 0, 199, 0)
text = position(doc, 2, 1.0)["text"]
with c2:
    pos = ui.url_int("Characters read", "pos", 2, len(text) - 1, 2)
with c3:
    T = ui.url_float("Teacher's temperature T", "T", 0.25, 10.0, 1.0, 0.25, slider=True)
one = position(doc, pos, T)
st.html(document_html(text, pos))
ui.plot(next_char_figure(LANGUAGE.chars.chars, one["truth"], one["teacher"], T), key="next")
st.caption(
    f"KL(truth ‖ teacher at T = {T:g}) here: {one['kl']:.4f} nats. Inside a word the next "
    "letter is nearly certain; at a space the next word is open, and that is where the "
    "teacher's dark knowledge lives. Word-level KD matches these bars at every position."
)

st.header("Whose text, which target")
# A static table: its cells wrap, where a data frame's columns cut long sentences off
st.table(pd.DataFrame([
    {"method": m.title, "the student reads": READS[m.reads(m.params())],
     "it matches": m.summary, "any tokenizer": "yes" if not m.same_vocab else "no",
     "source": m.citation} for m in LM_METHODS.values()
]), hide_index=True)  # fmt: skip
# As the code runs them (kdcore/lm_methods.py): word-level KD beside the corpus's own
# cross-entropy, every loss a mean over the counted positions, GKD's ends the plain KLs.
# KaTeX does not wrap: each line fits a phone
st.latex(r"\begin{gathered}\mathcal L_{\text{word}} = (1-\alpha)\,\mathrm{CE}(y, q)\\ + "
         r"\frac{\alpha\,T^2}{|y|}\sum_{j}\mathrm{KL}\big(p_T^{(j)}\,\|\,q_T^{(j)}\big),"
         r"\\ p^{(j)} = p(\cdot\mid y_{<j}),\ \ y \sim \text{corpus}\end{gathered}")  # fmt: skip
st.latex(r"\begin{gathered}\mathcal L_{\text{seq}} = -\tfrac{1}{|\hat y|}\log q(\hat y),\\ "
         r"\hat y \approx \arg\max_y p(y)\ \ \text{(Kim \& Rush 2016)}\end{gathered}")  # fmt: skip
st.latex(r"\begin{gathered}D_{JSD(\beta)}(p\|q) = \beta\,\mathrm{KL}(p\|m)\\ + (1-\beta)\,"
         r"\mathrm{KL}(q\|m),\ \ m = \beta p + (1-\beta) q,\\ D_{JSD(0)} = \mathrm{KL}(p\|q),"
         r"\ \ D_{JSD(1)} = \mathrm{KL}(q\|p),\\ y \sim q\ \ \text{(on-policy, GKD)}"
         r"\end{gathered}")  # fmt: skip
st.caption(
    "p is the teacher, q the student. Sequence-level KD trains on the teacher's greedy or "
    "sampled continuations, with the word-level term too in the combined student. Inside "
    "0 < β < 1 the divergence tends to 0 at both ends, so β = 0 and β = 1 are defined as the "
    "two KLs (as in TRL's GKD trainer): the β = ½ student trains on a loss no larger than "
    "log 2 per token, at the same learning rate as the β = 0 and β = 1 students."
)

st.subheader("Another tokenizer")
words = LANGUAGE.wordtok.encode(text)
st.markdown(
    f"The same document, {len(LANGUAGE.chars.encode(text))} character tokens from a vocabulary "
    f"of {LANGUAGE.chars.vocab_size} for the teacher (the {n_chars} characters and {padding}, "
    f"which fills out the shorter documents of a batch), {len(words)} word tokens from a "
    f"vocabulary of {LANGUAGE.wordtok.vocab_size} for the word student (the {n_lexicon} words and "
    "the same padding token): "
    + " ".join(f"`{LANGUAGE.wordtok.words[i]}`" for i in words)
    + ". Position j of one is not position j of the other and entry v of one distribution is "
    "not entry v of the other, so word-level KD has nothing to compare. Sequence-level KD "
    "needs only the teacher's text; ULD compares the two distributions sorted, whatever the "
    "tokens (Boizard et al. 2024)."
)

st.header("Forward or reverse KL")
ui.prose(
    "A small student cannot copy a teacher that spreads its mass over two answers. Under forward "
    "KL(teacher ‖ student) every place the teacher puts mass must be covered, so the student "
    "stretches over both modes and puts mass in the gap, where the teacher says nothing. Under "
    "reverse KL(student ‖ teacher) the student is punished for mass where the teacher has none, "
    "so it picks one mode. Drag β: the best single Gaussian is recomputed for each divergence."
)
c1, c2 = st.columns(2)
with c1:
    sep = ui.url_float("Distance between the modes", "sep", 1.0, 8.0, 5.0, 0.5, slider=True)
with c2:
    weight = ui.url_float("Weight of the left mode", "weight", 0.1, 0.9, 0.6, 0.05, slider=True)
frames = st.cache_data(max_entries=32)(kl_frames)(sep, weight, 1.0, BETAS)
kl_view(frames, url_beta())

st.header("Trained students")
# The buttons show the preset names, so the URL holds them (``?view=on-policy-kd``): url_choice
# keeps what a button shows, and a slug stays stable where a label may be reworded.
view = ui.url_choice("Run (a preset of the lab)", list(VIEWS), "view", "word-vs-sequence-kd",
                     help="; ".join(f"{k}: {v}" for k, v in VIEWS.items()))  # fmt: skip
run = lab_ui.stored_or_offer(lab_ui.optional_queue(), view, COST[view], "ep_lm", "run_lm")
if run is not None:
    res = run.result
    st.caption(f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}; {res.get('training_docs', '?'):,} "
               f"training documents; the language's entropy on the held-out ones is "
               f"{res.get('floor_bits', 0):.4f} bits per character.")  # fmt: skip
    ui.plot(results_figure(res.get("models", {}), res.get("floor_bits", 0.0)), key="results")
    rows = pd.DataFrame(results_rows(res.get("models", {})))
    # static, as the methods' table: ten columns of a data frame run off the right edge
    st.table(rows.style.format(precision=3, thousands=",", na_rep="–"), hide_index=True)
    st.caption(
        "KL from truth: bits per character above the language's entropy, the sequence-level KL "
        "exactly. Greedy over characters is not greedy over words (after 'the', 'b' leads with "
        "bird and boat together although 'cat' is the likeliest word), so a word-tokenizer "
        "student's greedy text rarely equals the character teacher's."
    )
    if res.get("tokenizer_mismatch"):
        st.info(f"Word-level KD for the word-tokenizer student: {res['tokenizer_mismatch']}.",
                icon=":material/block:")  # fmt: skip
    for kind, texts in res.get("teacher_texts", {}).items():
        st.caption(f"Training text, {kind}: " + " / ".join(f"`{t.strip()}`" for t in texts[:3]))
    claims = res.get("paper", {}).get("claims", [])
    if claims:
        st.caption("Papers: " + " ".join(claims))
    lab_ui.why_differs(view)

ui.show_code(token_kd_loss, generalized_jsd, uld_loss, lm_step)
