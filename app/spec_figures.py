"""Plotly figures for the speculative-decoding page: expected tokens per teacher call, the
acceptance rule on one position, a stored run's measurements and a round-by-round animation.

Plain functions of numbers and result dicts: no Streamlit, no training. The page computes with
:mod:`kdcore.speculative` and reads stored ``speculative-draft`` runs, then passes them in.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, TEMPLATE, subplots
from kdcore.speculative import expected_tokens_per_call

LABEL = {"draft_hard": "real text", "draft_hard_long": "real text, longer",
         "draft_kd": "forward KL", "draft_on_policy": "on-policy"}  # fmt: skip
LONG = {
    "draft_hard": "real text only",
    "draft_hard_long": "real text, trained as long as the distilled ones",
    "draft_kd": "forward KL to the teacher",
    "draft_on_policy": "on-policy JSD (GKD)",
}
DRAFT = {"draft_hard": "#868e96", "draft_hard_long": "#495057", "draft_kd": "#e8590c",
         "draft_on_policy": "#2b8a3e"}  # fmt: skip
MIN, RESIDUAL = "#40c057", COLORS["teacher"]
# the animation's five kinds of character: (trace name, colour, struck through)
KINDS = {
    "text": ("text so far", "#1f2430", False),
    "accepted": ("draft, accepted", "#2b8a3e", False),
    "rejected": ("draft, rejected", "#e03131", True),
    "unused": ("draft, unused", "#adb5bd", True),
    "teacher": ("teacher's token", COLORS["teacher"], False),
}
# characters per line of the animation: 24 columns of a phone's chart are 13 pixels wide, as
# wide as a glyph (monospace, 22 px); 30 overlapped there
WIDTH = 24
SPACE, PAD = "␣", "∅"


def _fig(fig: go.Figure | None = None, **layout) -> go.Figure:
    fig = fig or go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def label(name: str) -> str:
    return LABEL.get(name, name)


def visible(text: str) -> str:
    """Spaces drawn as ␣, so a proposed or rejected space can be seen; the padding token (which
    a barely trained draft may propose) as ∅, one cell wide."""
    return PAD if text == "<pad>" else text.replace(" ", SPACE)


# ----------------------------------------------------------------------------- interactive


def tokens_figure(alpha: float, gamma: int, tokens: float, gammas=(1, 2, 4, 8, 16)) -> go.Figure:
    """Eq. 1, expected tokens per teacher call against α, one curve per γ (the current γ in
    bold); ``tokens`` is the page's value at (α, γ), marked on its curve."""
    grid = [i / 100 for i in range(100)]  # α = 0 .. 0.99
    fig = _fig(
        height=360,
        xaxis=dict(title="α, probability a draft token is accepted", range=[0, 1]),
        yaxis=dict(title="tokens per teacher call"),
        legend=dict(title="γ"),
    )
    for g in sorted({*gammas, gamma}):
        bold = g == gamma
        fig.add_scatter(
            x=grid,
            y=[expected_tokens_per_call(a, g) for a in grid],
            mode="lines",
            name=str(g),
            line=dict(
                width=4 if bold else 1.5, color=COLORS["student"] if bold else COLORS["muted"]
            ),
            hovertemplate=f"γ={g}, α=%{{x:.2f}}: %{{y:.2f}}<extra></extra>",
        )
    fig.add_scatter(
        x=[alpha],
        y=[tokens],
        mode="markers",
        name="here",
        showlegend=False,
        marker=dict(size=14, color=COLORS["student"], line=dict(width=2, color="white")),
        hovertemplate="%{y:.3f} tokens per call<extra></extra>",
    )
    fig.add_hline(
        y=1,
        line=dict(color=COLORS["uniform"], dash="dot"),
        annotation_text="plain sampling: 1",
        annotation_position="top left",
    )
    return fig


def acceptance_figure(
    p: Sequence[float], q: Sequence[float], tokens: Sequence[str], beta: float
) -> go.Figure:
    """One position. Left: teacher p and draft q, with min(p, q) shaded, the mass with which a
    draft token is proposed and kept. Right: what comes out, min(p, q) from accepted drafts plus
    (1 − β)·norm(max(0, p − q)) from corrections, stacking to p exactly."""
    x = [visible(t) for t in tokens]
    overlap = [min(a, b) for a, b in zip(p, q, strict=True)]
    excess = [max(0.0, a - b) for a, b in zip(p, q, strict=True)]
    # One probability axis for both panels, its numbers on the left only: the right panel's ran
    # under the titles on a phone. The right title in two lines: in one the two titles met there.
    fig = subplots(
        1,
        2,
        shared_yaxes=True,
        subplot_titles=(f"Σ min(p, q) = β = {beta:.2f}", "what is emitted:<br>exactly p"),
    )
    # On the left every bar starts at 0 (an explicit base keeps a trace out of the stack): p and
    # q as outlines over their overlap. On the right the two parts stack up to p.
    outline = dict(color="rgba(0,0,0,0)", line=dict(width=3))
    fig.add_bar(x=x, y=overlap, base=0, name="min(p, q): proposed and accepted",
                marker_color=MIN, row=1, col=1)  # fmt: skip
    for name, y, colour, col in (
        ("p, teacher", p, COLORS["teacher"], 1),
        ("q, draft", q, DRAFT["draft_kd"], 1),
        ("p, teacher", p, COLORS["teacher"], 2),
    ):
        line = dict(outline["line"], color=colour)
        fig.add_bar(x=x, y=list(y), base=0, name=name, marker=dict(outline, line=line),
                    showlegend=col == 1, row=1, col=col)  # fmt: skip
    fig.add_bar(x=x, y=overlap, name="accepted draft", marker_color=MIN, showlegend=False,
                row=1, col=2)  # fmt: skip
    fig.add_bar(x=x, y=excess, name="corrections: (1 − β)·norm(max(0, p − q))",
                marker_color=RESIDUAL, row=1, col=2)  # fmt: skip
    fig.update_yaxes(range=[0, 1.1 * max(*p, *q)])
    fig.update_yaxes(title_text="probability", row=1, col=1)
    return _fig(fig, height=400, barmode="stack", bargap=0.15,
                legend=dict(LEGEND_BELOW, traceorder="normal"))  # fmt: skip


def residual(p: Sequence[float], q: Sequence[float]) -> list[float]:
    """norm(max(0, p − q)), the distribution a correction is drawn from."""
    excess = [max(0.0, a - b) for a, b in zip(p, q, strict=True)]
    total = sum(excess)
    return [e / total for e in excess] if total else list(p)


# ----------------------------------------------------------------------------- a stored run


def measured_figure(res: dict, drafts: Sequence[str]) -> go.Figure:
    """Per draft, expected beside measured: α (Σ min(p, q) on held-out text vs accepted over
    examined proposals) and tokens per teacher call (Eq. 1 at that α vs counted)."""
    # two lines: in one the titles met on a narrow phone (a 360-pixel screen)
    fig = subplots(1, 2, subplot_titles=("acceptance α", "tokens per<br>teacher call"))
    x = [label(d) for d in drafts]
    panels = (
        ("expected_acceptance", "acceptance_rate", 1),
        ("expected_tokens", "tokens_per_teacher_call", 2),
    )
    for expected, measured, col in panels:
        for key, name, colour in (
            (expected, "expected", COLORS["other"]),
            (measured, "measured", COLORS["teacher"]),
        ):
            y = [res.get(key, {}).get(d) for d in drafts]
            fig.add_bar(
                x=x,
                y=y,
                name=name,
                marker_color=colour,
                showlegend=col == 1,
                legendgroup=name,
                text=[f"{v:.2f}" if v is not None else "" for v in y],
                textposition="outside",
                row=1,
                col=col,
            )
    fig.add_hline(y=1, line=dict(color=COLORS["uniform"], dash="dot"), row=1, col=2)
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", row=1, col=1)
    top = max(
        [
            1.0,
            *(
                v
                for k in ("expected_tokens", "tokens_per_teacher_call")
                for v in res.get(k, {}).values()
            ),
        ]
    )
    fig.update_yaxes(range=[0, 1.15 * top], row=1, col=2)
    return _fig(fig, height=400, barmode="group", legend=LEGEND_BELOW)


def first_word_figure(first_word: dict[str, dict[str, float]], n: int | None = None) -> go.Figure:
    """The first word of the texts: the teacher's exact probabilities beside the frequencies
    from plain sampling and from speculative sampling with each draft. With ``n``, the number
    of texts behind each frequency, each sampled bar gets whiskers of ±2 standard errors (of a
    frequency from ``n`` samples of the teacher): they reach the teacher's bar 19 times in 20.
    """
    teacher = first_word.get("teacher", {})
    words = sorted(teacher, key=lambda w: -teacher[w])
    words += sorted({w for d in first_word.values() for w in d} - set(teacher))
    fig = _fig(barmode="group", height=400, xaxis=dict(type="category"),
               yaxis=dict(title="probability / frequency", tickformat=".0%"),
               legend=LEGEND_BELOW)  # fmt: skip
    p = [teacher.get(w, 0.0) for w in words]
    for who, freqs in first_word.items():
        name = {"teacher": "teacher, exact", "plain": "plain sampling"}.get(who, label(who))
        colour = {"teacher": COLORS["teacher"], "plain": COLORS["ce"]}.get(who, DRAFT.get(who))
        y = [freqs.get(w, 0.0) for w in words]
        whisker = None
        if n and who != "teacher":
            whisker = dict(type="data", array=[2 * (q * (1 - q) / n) ** 0.5 for q in p],
                           color="#495057", thickness=1.5, width=3)  # fmt: skip
        fig.add_bar(x=[visible(w) or "(empty)" for w in words], y=y, name=name,
                    marker_color=colour, error_y=whisker)  # fmt: skip
    return fig


def seconds_rows(res: dict, drafts: Sequence[str]) -> list[dict]:
    """Wall-clock cost per token: plain sampling from the teacher, then each draft."""
    per = res.get("seconds_per_token", {})

    def row(sampling: str, who: str, tokens: float | None, speedup: float | None) -> dict:
        ms = 1000 * per[who] if who in per else None
        return {"sampling": sampling, "ms per token": None if ms is None else round(ms, 2),
                "tokens per teacher call": None if tokens is None else round(tokens, 2),
                "speed-up": None if speedup is None else round(speedup, 2)}  # fmt: skip

    rows = [row("plain, teacher only", "teacher", 1.0, 1.0)]
    for d in drafts:
        rows.append(row(f"speculative, draft: {LONG.get(d, d)}", d,
                        res.get("tokens_per_teacher_call", {}).get(d),
                        res.get("speedup", {}).get(d)))  # fmt: skip
    return rows


def paper_rows(paper: dict) -> list[dict]:
    """Leviathan et al. Table 2 (T5-XXL, En→De), one row per draft and temperature."""
    return [
        {"draft, temperature": k, "γ": v[0], "α": v[1], "speed-up": v[2]}
        for k, v in paper.get("t5_xxl_en_de", {}).items()
    ]


# ----------------------------------------------------------------------------- the animation


def rounds(trace: Sequence[dict]) -> list[dict]:
    """Each round of a trace as the characters to draw, in order, each with its kind (a key of
    :data:`KINDS`), the text after the round (accepted and teacher tokens that were kept) and
    the round's title."""
    out, text = [], ""
    for i, r in enumerate(trace, 1):
        proposed = r.get("text") or [str(t) for t in r["proposed"]]
        k, kept, nxt = r["accepted"], r.get("kept", r["accepted"] + 1), r.get("next_text", "?")
        new = [*proposed[:k], nxt]
        chars = [(c, "text") for c in text]
        chars += [(c, "accepted" if j < kept else "unused") for j, c in enumerate(proposed[:k])]
        if k < len(proposed):
            chars += [(proposed[k], "rejected")] + [(c, "unused") for c in proposed[k + 1 :]]
        if kept > k:
            chars.append((nxt, "teacher"))
        text += "".join(new[:kept])
        how = f"{k} of {len(proposed)} accepted, + {r['kind']}" if proposed else "no proposal,"
        title = f"round {i} of {len(trace)}: {how} '{visible(nxt)}'"
        if kept < len(new):
            title += f" (stop: {kept} kept)"
        title += f"<br><sub>{len(text)} characters from {i} teacher call{'s' * (i > 1)}</sub>"
        out.append({"chars": chars, "text": text, "title": title})
    return out


def _span(kind: str, text: str) -> str:
    _, colour, struck = KINDS[kind]
    text = f"<s>{text}</s>" if struck else text
    return f"<span style='color:{colour}'>{text}</span>"


def _frame_data(chars: list[tuple[str, str]]) -> list[dict]:
    """One text trace per kind; character j sits at column j % WIDTH of line j // WIDTH."""
    data = []
    for kind, (name, colour, struck) in KINDS.items():
        at = [j for j, (_, k) in enumerate(chars) if k == kind]
        text = [visible(chars[j][0]) for j in at]
        data.append(
            dict(
                type="scatter",
                mode="text",
                name=name,
                x=[j % WIDTH for j in at],
                y=[-(j // WIDTH) for j in at],
                text=[f"<s>{t}</s>" if struck else t for t in text],
                textfont=dict(color=colour, size=22, family="monospace"),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    return data


def trace_animation(trace: Sequence[dict], draft: str = "") -> go.Figure:
    """One frame per speculative round: the text so far, the round's proposals (accepted in
    green, the first rejected in red and struck, later or cut ones grey), then the teacher's
    correction or bonus token in blue. Play and the slider run in the browser; each frame's
    title carries its own numbers."""
    steps = rounds(trace)
    lines = max([1, *((len(s["chars"]) - 1) // WIDTH + 1 for s in steps)])
    fig = _fig(
        height=250 + 42 * lines,
        margin=dict(l=20, r=20, t=115, b=145),
        xaxis=dict(visible=False, range=[-0.7, WIDTH - 0.3], fixedrange=True),
        yaxis=dict(visible=False, range=[-lines + 0.4, 0.6], fixedrange=True),
    )
    # A fixed key rather than Plotly's legend, which drops (and then miscolours) the kinds that a
    # frame happens to leave empty. Two lines: in one it ran past a phone's right edge.
    spans = [_span(kind, name) for kind, (name, *_) in KINDS.items()]
    key = " · ".join(spans[:3]) + "<br>" + " · ".join(spans[3:])
    fig.add_annotation(text=key, x=0, y=1, xref="paper", yref="paper", yanchor="bottom",
                       xanchor="left", align="left", showarrow=False, yshift=6)  # fmt: skip
    if not steps:
        fig.update_layout(title=f"no rounds recorded for {label(draft)}")
        return fig
    for d in _frame_data(steps[0]["chars"]):
        fig.add_trace(go.Scatter(d))
    names = [str(i) for i in range(1, len(steps) + 1)]
    fig.frames = [
        go.Frame(
            name=n,
            data=_frame_data(s["chars"]),
            traces=list(range(len(KINDS))),
            layout=dict(title=dict(text=s["title"])),
        )
        for n, s in zip(names, steps, strict=True)
    ]
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    play = dict(
        frame=dict(duration=900, redraw=True),
        transition=dict(duration=0),
        fromcurrent=True,
        mode="immediate",
    )
    fig.update_layout(
        # at the top of the chart, clear of the key's two lines under it
        title=dict(
            text=steps[0]["title"],
            x=0,
            font=dict(size=15),
            yref="container",
            y=1,
            yanchor="top",
            pad=dict(t=24),
        ),
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                xanchor="left",
                y=0,
                yanchor="top",
                pad=dict(t=36),
                buttons=[
                    dict(label="▶ play", method="animate", args=[None, play]),
                    dict(label="❚❚ pause", method="animate", args=[[None], still]),
                ],
            )
        ],
        # the slider under the buttons, not beside them: there it ran under them on a phone
        sliders=[
            dict(
                active=0,
                x=0,
                len=1,
                y=0,
                yanchor="top",
                pad=dict(t=70),
                currentvalue=dict(prefix="round "),
                steps=[dict(label=n, method="animate", args=[[n], still]) for n in names],
            )
        ],
    )
    return fig
