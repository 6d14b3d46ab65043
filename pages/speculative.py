"""Speculative decoding (Leviathan et al. 2023) and why a distilled draft speeds it up
(DistillSpec, Zhou et al. 2024): Eq. 1 live, the acceptance rule on one position, a stored run."""

import streamlit as st
import torch

from app import lab_ui, ui
from app.lab_ui import describe, optional_queue
from app.spec_figures import (
    LONG,
    acceptance_figure,
    first_word_figure,
    label,
    measured_figure,
    paper_rows,
    residual,
    seconds_rows,
    tokens_figure,
    trace_animation,
    visible,
)
from kdcore.presets_spec import SPEC_PRESET
from kdcore.speculative import acceptance_rate, expected_tokens_per_call, speculative_sample

PRESET = "speculative-draft"
COST = (  # measured (README): --epochs 1 in 78 s on a quiet 2-core CPU, ~3 min at load ~5
    "One epoch trains four 17k-parameter drafts (seconds each, most of a minute for the "
    "on-policy one), then 60 texts are written plainly and with each draft: about 80 s on a "
    "quiet 2-core CPU, three minutes on a busy one. Without a shipped or cached teacher, "
    "training it adds about ten minutes once."
)
# one position of the toy language: the teacher's p and a draft's q over five characters
TOKENS = ("e", "a", " ", "t", "s")
P = (0.40, 0.25, 0.15, 0.12, 0.08)
Q = (0.55, 0.10, 0.20, 0.05, 0.10)
MEASURED = ("tokens_per_teacher_call", "acceptance_rate")

st.title("Speculative decoding")
ui.prose(
    "A large model writes one token per call, and a call costs about the same whether it scores "
    "one position or five. Speculative decoding (Leviathan, Kalman & Matias 2023) lets a small "
    "**draft** model guess the next γ tokens, cheaply, one after the other; the large model, "
    "here the **teacher**, then scores all of them in **one** call. Each guess is kept with "
    "probability min(1, p/q); at the first one rejected the teacher draws a **correction** in "
    "its place, and if all γ pass it adds a **bonus** token. A round costs one teacher call "
    "and yields 1 to γ + 1 tokens, and the text that comes out has exactly the teacher's "
    "distribution, whatever the draft. The draft decides only the cost: a draft token is "
    "accepted with probability Σ min(p, q) = 1 − TV(p, q), so the closer the draft is to the "
    "teacher, the more tokens per call. That is where distillation pays off at inference time "
    "(DistillSpec, Zhou et al. 2024): a draft distilled from the teacher guesses what the "
    "teacher would say, not merely what real text says."
)

st.header("Tokens per teacher call")
c1, c2 = st.columns(2)
with c1:
    alpha = ui.url_float(
        "α, probability that a draft token is accepted", "alpha", 0.0, 0.99, 0.8, 0.01, slider=True
    )
with c2:
    gamma = ui.url_int("γ, draft tokens per round", "gamma", 1, 16, 4)
tokens = expected_tokens_per_call(alpha, gamma)  # the one number the chart and metrics show
left, right = st.columns([3, 1])
with left:
    ui.plot(tokens_figure(alpha, gamma, tokens), key="eq1")
with right:
    st.metric("tokens per teacher call", f"{tokens:.3f}")
    st.metric("teacher calls per 100 tokens", f"{100 / tokens:.1f}")
    st.metric("draft calls per token", f"{gamma / tokens:.2f}")
st.caption(
    "Eq. 1 of Leviathan et al., assuming each examined draft token is accepted independently "
    "with probability α. A longer round pays off only when α is high: the tokens after the "
    "first rejection are drafted for nothing, and however long the round, a call yields at "
    "most 1/(1 − α) tokens on average."
)

st.subheader("The rule on one position")
beta = float(acceptance_rate(torch.tensor(P), torch.tensor(Q)))
ui.plot(acceptance_figure(P, Q, TOKENS, beta), key="rule")
correction = ", ".join(
    f"'{visible(t)}' {r:.2f}" for t, r in zip(TOKENS, residual(P, Q), strict=True) if r
)
st.caption(
    f"The draft proposes x ~ q and the teacher keeps it with probability min(1, p(x)/q(x)): "
    f"over all x that is Σ min(p, q) = {beta:.2f}. Where q exceeds p the draft proposes too "
    f"often and some proposals are rejected; the teacher then draws from norm(max(0, p − q)) "
    f"({correction}), the mass the draft under-proposes. The two parts add up to p."
)

st.header("Trained: the speculative-draft preset")
queue = optional_queue()
run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_spec", "run_spec")
paper = {"source": SPEC_PRESET.source, **SPEC_PRESET.paper}
if run is not None:
    res = run.result
    paper = res.get("paper") or paper
    drafts = list(res.get("acceptance_rate") or res.get("traces") or {})
    models = res.get("models", {})
    size = {m: f"{models[m]['params']:,}" for m in models if "params" in models[m]}
    st.caption(
        f"{lab_ui.run_name(run)}: {describe(run)}; γ = {res.get('gamma', '?')}; teacher "
        f"{size.get('teacher', '?')} parameters, each draft "
        f"{size.get(drafts[0], '?') if drafts else '?'}."
    )
    st.markdown("Tokens per teacher call with each draft, its measured α and wall-clock speed-up:")
    cols = st.columns(len(drafts) or 1)
    for col, d in zip(cols, drafts, strict=False):
        tpc, acc, fast = (res.get(k, {}).get(d, 0) for k in (*MEASURED, "speedup"))
        col.metric(LONG.get(d, d), f"{tpc:.2f}", f"α {acc:.2f} · {fast:.2f}× faster",
                   delta_color="off", delta_arrow="off")  # fmt: skip
    ui.plot(measured_figure(res, drafts), key="measured")
    st.caption(
        "Expected: α is the mean of Σ min(p, q) over held-out text, and tokens per call is Eq. 1 "
        "at that α. Measured: accepted over examined proposals, and tokens over teacher calls, "
        "while the teacher and draft write their own text."
    )
    st.dataframe(seconds_rows(res, drafts), hide_index=True)
    st.caption(SPEC_PRESET.differences)

    st.subheader("Same text, whatever the draft")
    n = res.get("config", {}).get("first_words")
    ui.plot(first_word_figure(res.get("first_word", {}), n), key="first_word")
    st.caption(
        f"The first word of {n or '?'} short texts per sampler: the teacher's exact "
        "probability beside the frequencies from plain sampling and from speculative sampling "
        "with each draft. Whiskers: ±2 standard errors of such a frequency; one bar in twenty "
        "misses the teacher's by chance. Each sampler draws with a seed of its own. The unit "
        "tests check the distribution exactly, on models small enough to enumerate."
    )

    st.subheader("Round by round")
    traces = res.get("traces", {})
    shown = [d for d in drafts if d in traces]
    if shown:
        default = "draft_kd" if "draft_kd" in shown else shown[0]
        draft = ui.url_choice("Draft", shown, "draft", default, format_func=label)
        ui.plot(trace_animation(traces[draft], draft), key="trace")
        st.caption(
            "One text, one frame per teacher call: press play or drag the slider. Green: draft "
            "tokens accepted; red, struck: the first rejected; grey: drafted after it (or cut at "
            "the last word), never used; blue: the teacher's correction or bonus token. ␣ is a "
            "space, ∅ the padding token."
        )

st.dataframe(paper_rows(paper), hide_index=True, placeholder=ui.MISSING)
st.caption(
    f"Paper: {paper.get('source', '')}. Table 2: T5-XXL translating English to German, "
    "with T5-small, -base and -large drafts at temperature 0 and 1."
)
for claim in paper.get("claims", []):
    st.markdown(f"- {claim}")

st.header("The equations")
st.latex(
    r"\begin{gathered}x \sim q:\quad \text{keep } x \text{ with probability } "
    r"\min\Big(1, \frac{p(x)}{q(x)}\Big),\\ P(\text{keep}) = \sum_x \min\big(p(x), q(x)\big)"
    r" = 1 - \mathrm{TV}(p, q)\end{gathered}"
)
st.latex(
    r"\begin{gathered}\text{after a rejection: } x \sim \frac{\max\big(0,\, p(x) - q(x)\big)}"
    r"{\sum_{x'} \max\big(0,\, p(x') - q(x')\big)},"
    r"\\ \min(p, q) + \max(0, p - q) = p\end{gathered}"
)
st.latex(
    r"\mathbb E[\text{tokens per teacher call}] = \frac{1 - \alpha^{\gamma + 1}}{1 - \alpha}"
    r"\quad\text{(Eq. 1)}"
)

ui.show_code(speculative_sample, acceptance_rate, expected_tokens_per_call)
