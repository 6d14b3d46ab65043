"""Plotly figures and small HTML for the language-model page: one position's next-character
distributions, and the stored runs' measurements side by side.

Plain functions of numbers: no Streamlit, no models. The page computes with :mod:`kdcore.lm` and
:mod:`kdcore.language` and passes the results in.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from app.figures import COLORS, TEMPLATE, subplots

TRUTH = "#2b8a3e"
LABEL = {
    "hard": "real text only", "word_kd": "word-level KD", "seq_kd_greedy": "seq-KD (greedy)",
    "seq_kd_sample": "seq-KD (sampled)", "seq_word_kd": "seq- + word-level KD",
    "wordtok_hard": "word tokenizer: real text", "wordtok_seq_kd": "word tokenizer: seq-KD",
    "wordtok_uld": "word tokenizer: ULD", "supervised_fkl": "forward KL on real text",
    "on_policy_fkl": "on-policy, β = 0 (forward KL)", "on_policy_jsd": "on-policy, β = 0.5 (JSD)",
    "on_policy_rkl": "on-policy, β = 1 (reverse KL)", "teacher": "teacher",
    "sft": "start: real text", "draft_hard": "draft: real text", "draft_kd": "draft: forward KL",
    "draft_on_policy": "draft: on-policy", "draft_hard_long": "draft: real text, twice as long",
    "attention_value": "MiniLM: q-k + v-v", "qkv_relations": "MiniLMv2: last block",
    "qkv_block3": "MiniLMv2: block 3", "hidden_uniform": "TinyBERT: uniform",
    "hidden_top": "TinyBERT: top", "hidden_bottom": "TinyBERT: bottom",
    "hidden_pred": "TinyBERT + predictions", "distilbert": "DistilBERT",
    "no_kd": "no soft targets", "no_cos": "no cosine loss", "no_lm": "no real-text loss",
    "random_init": "from random weights", "init_only": "teacher init, real text",
}  # fmt: skip
# result key, panel title (short lines: one ran into its neighbour on a phone), as a %; the bits
# panels' titles name their dashed line, which a label beside it would write over the last bars'
# figures
PANELS = (
    ("bits_per_char", "bits per character<br>on real text<br>(dashed: entropy)", False),
    ("sample_valid", "grammatical texts<br>it writes", True),
    ("sample_nll", "bits per character<br>of its grammatical<br>texts (dashed: entropy)", False),
    ("sample_distinct", "distinct texts<br>it writes", True),
)


def shown(char: str) -> str:
    return "␣" if char == " " else char


def next_char_figure(
    chars: Sequence[str], truth: Sequence[float], teacher: Sequence[float], T: float
) -> go.Figure:
    """The language's exact next-character distribution beside the teacher's at temperature T
    (the target of word-level KD), over the characters with any probability."""
    keep = [i for i in range(len(chars)) if truth[i] > 1e-4 or teacher[i] > 0.01]
    x = [shown(chars[i]) for i in keep]
    fig = go.Figure(layout=dict(template=TEMPLATE, barmode="group", height=300,
                                yaxis=dict(title="probability", range=[0, 1.05]),
                                xaxis=dict(title="next character", type="category"),
                                legend=dict(orientation="h", y=1.12)))  # fmt: skip
    fig.add_bar(x=x, y=[truth[i] for i in keep], name="the language (exact)", marker_color=TRUTH)
    fig.add_bar(x=x, y=[teacher[i] for i in keep], name=f"teacher at T = {T:g}",
                marker_color=COLORS["teacher"])  # fmt: skip
    return fig


def document_html(text: str, pos: int) -> str:
    """The document with the characters read so far in ink, the one to predict boxed and the
    rest faded: what the model has seen at this position."""
    seen, nxt, rest = text[:pos], text[pos : pos + 1], text[pos + 1 :]
    return (
        "<div style='font-family:monospace;font-size:1.15rem;line-height:1.8'>"
        f"<span>{html.escape(seen)}</span>"
        f"<span style='border:2px solid {COLORS['teacher']};border-radius:4px;padding:0 3px'>"
        f"{html.escape(shown(nxt) if nxt else '')}</span>"
        f"<span style='color:#adb5bd'>{html.escape(rest)}</span></div>"
    )


def results_figure(models: dict[str, dict], floor: float) -> go.Figure:
    """Four panels, one bar per model: bits per character on held-out real text (the dashed line
    is the language's entropy, the floor), the share of grammatical and of distinct texts it
    writes, and how likely its grammatical texts are under the language."""
    names = [n for n in models if n in LABEL]
    # The model names once, under the bottom row (both rows hold the same bars): on a phone the
    # top row's slanted names filled the gap between the rows and ran under the titles there. The
    # columns wide apart: the right panels' percentages spilled into the left panels' labels.
    fig = subplots(2, 2, subplot_titles=[p[1] for p in PANELS], shared_xaxes=True,
                   vertical_spacing=0.16, horizontal_spacing=0.14)  # fmt: skip
    for k, (key, _, pct) in enumerate(PANELS):
        row, col = divmod(k, 2)
        vals = [models[n].get(key) for n in names]
        colours = [COLORS["teacher"] if n == "teacher" else
                   COLORS["uniform"] if models[n].get("role") == "baseline" else
                   COLORS["student"] for n in names]  # fmt: skip
        fig.add_bar(x=[LABEL[n] for n in names], y=vals, marker_color=colours, showlegend=False,
                    text=[_fmt(v, pct) for v in vals], textposition="outside", cliponaxis=False,
                    row=row + 1, col=col + 1)  # fmt: skip
        if pct:
            fig.update_yaxes(tickformat=".0%", range=[0, 1.15], row=row + 1, col=col + 1)
        if key in ("bits_per_char", "sample_nll"):  # named in the panel's title
            fig.add_hline(y=floor, line_dash="dash", line_color=TRUTH, row=row + 1, col=col + 1)
    # slanted as far as they need, by the width they get: level, 30° or upright on a phone
    fig.update_xaxes(autotickangles=[0, -30, -90])
    fig.update_layout(template=TEMPLATE, height=740, margin=dict(t=80, b=10))  # 3-line titles
    return fig


def _fmt(v: float | None, pct: bool) -> str:
    if v is None:
        return ""
    return f"{v:.0%}" if pct else f"{v:.3f}"


def results_rows(models: dict[str, dict]) -> list[dict]:
    """One table row per model with the figures the chart leaves out."""
    rows = []
    for name, m in models.items():
        rows.append({
            "model": LABEL.get(name, name), "tokenizer": m.get("tokenizer", ""),
            "method": m.get("method", ""), "params": m.get("params"),
            "bits/char": m.get("bits_per_char"), "KL from truth (bits/char)": m.get("kl_true"),
            "KL from teacher (nats/token)": m.get("kl_teacher"),
            "greedy = teacher's greedy": m.get("greedy_match"),
            "teacher's bits/char of its greedy text": m.get("greedy_teacher_bits"),
            "seconds": m.get("seconds"),
        })  # fmt: skip
    return rows
