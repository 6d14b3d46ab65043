"""Plotly figures for the MiniLM page: self-attention relation maps over a document's
characters, and each student's relation KLs to the teacher.

Plain functions of numbers: no Streamlit, no models. The page computes the relations with
:func:`kdcore.losses.minilm.model_relations` (live, for the shipped teacher) or reads them from a
stored run, and passes them in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.figures import COLORS, TEMPLATE, square_cells, subplots
from app.lm_figures import LABEL, shown

# what each relation is, in words: a panel title and the chart's legend
PAIR_TITLE = {
    "qk": "attention (q · k)",
    "qq": "query–query",
    "kk": "key–key",
    "vv": "value–value",
}
RELATION_HELP = (
    "q-k: where each position looks, the attention itself (MiniLM); q-q, k-k, "
    "v-v: how its queries, keys or values resemble the earlier ones' (MiniLMv2)"
)


def pair_label(pair: str) -> str:
    """A relation's button and URL value: "q-k" for "qk"."""
    return f"{pair[0]}-{pair[1]}"


def relation_maps_figure(
    maps: dict[str, Sequence], text: str, cols: int = 4, height: int | None = None
) -> go.Figure:
    """One L x L map per panel ({title: rows}), on one colour scale from 0: row i, the
    character being read, spreads its probability over the characters j <= i it relates to.
    Ticks are the document's characters (the space drawn as ␣)."""
    n = len(text)
    chars = [shown(c) for c in text]
    # categories, one per position (a zero-width space apiece keeps repeated letters apart), so
    # that Plotly thins the labels where a panel is too narrow for all of them: every character
    # labelled ran them into each other on a phone
    cats = [c + "\u200b" * i for i, c in enumerate(chars)]
    rows = -(-len(maps) // cols)
    cols = min(cols, len(maps))
    # one line per part of a title: a phone's narrow panels ran longer ones into each other
    titles = [t.replace(", ", "<br>").replace(": ", ":<br>") for t in maps]
    fig = subplots(rows, cols, subplot_titles=titles,
                   horizontal_spacing=0.05, vertical_spacing=0.12)  # fmt: skip
    fig.update_annotations(font_size=12)
    zmax = max(float(np.max(np.asarray(m)[:n, :n])) for m in maps.values())
    hover = [[f"reading “{chars[i]}” (#{i}), relating to “{chars[j]}” (#{j})" for j in range(n)]
             for i in range(n)]  # fmt: skip
    for k, z in enumerate(maps.values()):
        r, c = divmod(k, cols)
        z = np.asarray(z, dtype=float)[:n, :n]
        fig.add_trace(go.Heatmap(z=np.where(np.tri(n, dtype=bool), z, np.nan), x=cats, y=cats,
                                 zmin=0.0,
                                 zmax=zmax, colorscale="Viridis", showscale=k == len(maps) - 1,
                                 text=hover, hovertemplate="%{text}: %{z:.3f}<extra></extra>",
                                 colorbar=dict(thickness=10, len=0.8)),
                      row=r + 1, col=c + 1)  # fmt: skip
    ticks = dict(type="category", tickfont=dict(size=9), showgrid=False, ticks="")
    fig.update_xaxes(tickangle=0, **ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    square_cells(fig)
    # a row as tall as a square panel is wide in a desktop's column, and its title
    fig.update_layout(template=TEMPLATE, height=height or 60 + rows * min(440, 30 + 680 // cols),
                      margin=dict(l=10, r=10, t=25 + 15 * max(t.count("<br>") + 1 for t in titles),
                                  b=10))  # fmt: skip
    return fig


def relation_kl_figure(models: dict[str, dict]) -> go.Figure:
    """Grouped bars: for every student, the KL of each relation of its last block from the
    teacher's last block on held-out text (0 would be the teacher's own geometry)."""
    names = [n for n, m in models.items() if "relation_kls" in m and n in LABEL]
    fig = go.Figure(layout=dict(
        template=TEMPLATE, barmode="group", height=360,
        yaxis=dict(title="KL from the teacher's<br>relations, nats"),
        legend=dict(orientation="h", y=1.15), margin=dict(t=40, b=10),
    ))  # fmt: skip
    shades = {"qk": COLORS["teacher"], "qq": COLORS["student"], "kk": COLORS["ce"],
              "vv": COLORS["uniform"]}  # fmt: skip
    for pair, title in PAIR_TITLE.items():
        vals = [models[n]["relation_kls"].get(pair) for n in names]
        fig.add_bar(x=[LABEL[n] for n in names], y=vals, name=title, marker_color=shades[pair],
                    hovertemplate="%{x}: %{y:.4f} nats<extra>" + title + "</extra>")  # fmt: skip
    fig.update_xaxes(autotickangles=[0, -30, -90])
    return fig


def relation_caption(models: dict[str, dict]) -> str:
    """What the relation-KL chart shows, read from the run: the student nearest the teacher's
    last block, and how far real text alone leaves one."""
    kls = {n: m["relation_kl"] for n, m in models.items() if "relation_kl" in m and n in LABEL}
    if not kls:
        return "This run kept no relation KLs."
    best = min(kls, key=kls.get)
    text = (f"Relation KLs on held-out text, from the teacher's last block to each student's "
            f"(0: the same geometry). Nearest on q-q + k-k + v-v: {LABEL[best]}, "
            f"{kls[best]:.3f} nats")  # fmt: skip
    if "hard" in kls:
        text += f", against {kls['hard']:.3f} for real text alone"
    return text + (
        ". Queries against keys is a relation between two different vectors, which matching "
        "q-q, k-k and v-v does not fix: a student can match those three and still look "
        "elsewhere."
    )


# result key, panel title (short lines, for a phone's half-width panel), unit scale
KL_PANELS = (
    ("kl_true", "KL from the truth<br>×10⁻³ bits<br>per character"),
    ("kl_teacher", "KL to the teacher<br>×10⁻³ nats<br>per token"),
)


def kl_figure(models: dict[str, dict]) -> go.Figure:
    """Each model's exact KL from the language's truth and its KL to the teacher on held-out
    text, in thousandths: where the students differ (their bits per character agree to the third
    decimal). The teacher's bar is blue, the student on real text alone grey."""
    names = [n for n in models if n in LABEL]
    fig = subplots(1, 2, subplot_titles=[t for _, t in KL_PANELS], horizontal_spacing=0.14)
    for col, (key, _) in enumerate(KL_PANELS, 1):
        shown = [n for n in names if models[n].get(key) is not None]
        vals = [1000 * models[n][key] for n in shown]
        colours = [COLORS["teacher"] if n == "teacher" else
                   COLORS["uniform"] if models[n].get("role") == "baseline" else
                   COLORS["student"] for n in shown]  # fmt: skip
        fig.add_bar(x=[LABEL[n] for n in shown], y=vals, marker_color=colours, showlegend=False,
                    text=[f"{v:.2f}" for v in vals], textposition="outside", cliponaxis=False,
                    row=1, col=col)  # fmt: skip
    fig.update_xaxes(autotickangles=[0, -30, -90])
    fig.update_layout(template=TEMPLATE, height=440, margin=dict(t=90, b=10))  # 3-line titles
    return fig
