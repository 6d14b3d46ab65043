"""The DKD page's last section: DIST against KD as the teacher grows, the stored
``dist-stronger`` run beside the DIST paper's ImageNet table, both as accuracy points gained over
the student trained alone.

:func:`gains` and :func:`stronger_figure` are plain functions of the run's dict and the paper's
table; only :func:`show_stronger` talks to Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW, subplots
from app.relation_figures import _fig
from kdcore.presets_dist import DIST_IMAGENET
from kdcore.presets_stronger import METHODS, PRESET

COST = (  # measured: the shipped run (README)
    "One epoch trains three teachers (30-30, 100-100, 300-300; cached afterwards, shared with "
    "the capacity-gap preset) and seven 10-10 students: about 5 s on a quiet 2-core CPU, a few "
    "times that on a busy one."
)
LABELS = {"kd": "KD", "dist": "DIST"}
LINES = {"kd": COLORS["teacher"], "dist": COLORS["student"]}


def gains(rows: list[dict], hard_errors: int, n_test: int = 10_000) -> dict[str, list[float]]:
    """Per method, the accuracy points each teacher's student gained over the student on hard
    labels (negative: lost), from the run's test errors on ``n_test`` images."""
    return {m: [100 * (hard_errors - r[m]) / n_test for r in rows] for m in METHODS}


def paper_gains(table: dict = DIST_IMAGENET) -> dict[str, list[float]]:
    """The same from the paper's ImageNet table: top-1 points over the ResNet-18 alone."""
    alone = table["student_hard"]
    return {m: [round(a - alone, 2) for a in table[f"student_{m}"]] for m in METHODS}


def stronger_figure(rows: list[dict], hard_errors: int, table: dict = DIST_IMAGENET) -> go.Figure:
    """Side by side, the points each method's student gains over the student alone as the
    teacher grows: here (teacher parameters, log scale) and in the paper (its four teachers)."""
    # short titles: two panels side by side share a phone's 330 px (the caption says the rest)
    fig = subplots(1, 2, subplot_titles=("here (MNIST)", "paper (ImageNet)"),
                   horizontal_spacing=0.12)  # fmt: skip
    x = [r["teacher_params"] for r in rows]
    for col, (xs, ys) in enumerate(((x, gains(rows, hard_errors)),
                                    (table["teachers"], paper_gains(table))), start=1):  # fmt: skip
        for m in METHODS:
            fig.add_scatter(x=xs, y=ys[m], mode="lines+markers", name=LABELS[m],
                            legendgroup=m, showlegend=col == 1,
                            line=dict(color=LINES[m], width=3), marker=dict(size=9),
                            hovertemplate=f"{LABELS[m]}: %{{y:+.2f}} points<extra></extra>",
                            row=1, col=col)  # fmt: skip
        fig.add_hline(y=0, line=dict(color=COLORS["uniform"], dash="dash"), row=1, col=col)
    fig.add_scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                    line=dict(color=COLORS["uniform"], dash="dash"),
                    name="the student alone (hard labels)")  # fmt: skip
    fig.update_xaxes(type="log", tickvals=x, tickformat=".3~s", title_text="teacher parameters",
                     row=1, col=1)  # fmt: skip
    fig.update_yaxes(title_text="accuracy gain, points", row=1, col=1)
    return _fig(fig, height=400, legend=LEGEND_BELOW)


def verdict(rows: list[dict], hard_errors: int) -> str:
    """What the run says, in words from its own numbers."""
    if not rows:
        return ""
    big, g = rows[-1], gains(rows, hard_errors)
    ahead = sum(r["dist"] < r["kd"] for r in rows)
    return (
        f"From the largest teacher ({big['teacher']}, {big['teacher_errors']} errors), the "
        f"10-10 student makes {big['kd']} errors by KD and {big['dist']} by DIST, against "
        f"{hard_errors} on hard labels alone: {g['kd'][-1]:+.2f} and {g['dist'][-1]:+.2f} points. "
        f"DIST's student is ahead of KD's under {ahead} of the {len(rows)} teachers. One seed: "
        "the study under the run says which of these hold."
    )


def show_stronger(queue) -> None:
    """The section: the stored (or shipped) run, its figure, table and verdict, and a button
    that queues one where none is stored."""
    run = lab_ui.stored_or_offer(queue, PRESET, COST, "ep_stronger", "run_stronger")
    if run is None or not run.result:
        return
    res = run.result
    rows = res.get("stronger", [])
    hard = res.get("models", {}).get("student_hard", {}).get("test_errors")
    if not rows or hard is None:
        return
    ui.plot(stronger_figure(rows, hard), key="stronger")
    ui.prose(verdict(rows, hard))
    st.dataframe(
        [{"teacher": r["teacher"], "parameters": f"{r['teacher_params']:,}",
          "teacher errors": r["teacher_errors"], "student by KD": r["kd"],
          "student by DIST": r["dist"]} for r in rows],
        hide_index=True,
    )  # fmt: skip
    st.caption(
        f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}. Test errors of 10,000 images; the "
        f"student alone: {hard}. The chart: accuracy points each student gains over the student "
        f"alone, here a 10-10 MLP under MLP teachers on MNIST; in the paper (Huang et al. 2022, "
        f"official README) ImageNet top-1 of a ResNet-18 ({DIST_IMAGENET['student_hard']}% "
        "alone) under ResNet-34 to ResNet-152 teachers."
    )
    lab_ui.why_differs(PRESET)
