"""Plotly figures for the DeiT page: the two heads' targets, their accuracy and agreement per
epoch, and their predictions beside the teacher's.

Plain functions of result dicts and arrays: no Streamlit, no training. The page computes with
:mod:`kdcore.losses.deit` and reads stored ``deit-mnist`` runs, then passes the numbers in.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, TEMPLATE, epoch_ticks, subplots

MODEL = {"vit_no_teacher": "#868e96", "vit_deit_hard": "#e8590c", "vit_deit_soft": "#2b8a3e"}
LABEL = {"vit_no_teacher": "no teacher", "vit_deit_hard": "hard distillation",
         "vit_deit_soft": "soft distillation"}  # fmt: skip
HEAD = {"cls": "class head", "dist": "distillation head"}
DASH = {"cls": "solid", "dist": "dash"}
SOURCE = {"label": "#f59f00", "teacher": COLORS["teacher"], "cls": "#e8590c", "dist": "#5f3dc4"}


def _fig(fig: go.Figure | None = None, **layout) -> go.Figure:
    fig = fig or go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def targets_figure(label: int, target: Sequence[float], target_name: str) -> go.Figure:
    """What each head is pulled towards for one image: the one-hot label (class head) beside the
    distillation head's target (``target_name``: the teacher's argmax, or its softened
    distribution)."""
    digits = list(range(len(target)))
    fig = _fig(barmode="group", height=300, xaxis=dict(tickmode="array", tickvals=digits,
               title="digit"), yaxis=dict(title="target probability", range=[0, 1.05]))  # fmt: skip
    fig.add_bar(x=digits, y=[float(d == label) for d in digits], name="class head ← the label",
                marker_color=SOURCE["label"])  # fmt: skip
    fig.add_bar(x=digits, y=list(target), name=f"distillation head ← {target_name}",
                marker_color=SOURCE["teacher"])  # fmt: skip
    return fig


def token_curves(tokens: dict[str, dict[str, list[float]]]) -> go.Figure:
    """Left: each head's test accuracy per epoch (class heads solid, distillation heads dashed);
    right: how often the two heads agree, and how often the distillation head agrees with the
    teacher, per epoch."""
    # Titles in two lines, "by epoch" as the axes' title: in one line the titles ran into each
    # other and past the chart's edges on a phone. (The legend, two to eight rows by the page's
    # width, is drawn under the axis titles: LEGEND_BELOW.)
    fig = subplots(1, 2, subplot_titles=("test accuracy<br>of each head",
                                         "agreement<br>on the test set"))  # fmt: skip
    for name, rec in tokens.items():
        colour, label = MODEL.get(name, COLORS["uniform"]), LABEL.get(name, name)
        for head in ("cls", "dist"):
            acc = rec.get(f"{head}_accuracy")
            if acc:
                fig.add_scatter(x=list(range(1, len(acc) + 1)), y=acc, mode="lines+markers",
                                name=f"{label}: {HEAD[head]}", legendgroup=name,
                                line=dict(color=colour, dash=DASH[head], width=3),
                                row=1, col=1)  # fmt: skip
        for key, dash, what in (
            ("agreement", "solid", "class = distillation head"),
            ("dist_teacher", "dot", "distillation head = teacher"),
        ):
            vals = rec.get(key)
            if vals:
                fig.add_scatter(x=list(range(1, len(vals) + 1)), y=vals, mode="lines+markers",
                                name=f"{label}: {what}", legendgroup=name,
                                line=dict(color=colour, dash=dash, width=2),
                                row=1, col=2)  # fmt: skip
    last = max((len(v) for rec in tokens.values() for v in rec.values() if isinstance(v, list)),
               default=0)  # fmt: skip
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last))
    fig.update_yaxes(tickformat=".0%")
    return _fig(fig, height=480, legend=LEGEND_BELOW)


def predictions_figure(
    teacher: Sequence[float], heads: dict[str, Sequence[float]], label: int
) -> go.Figure:
    """One image's class probabilities from the teacher and each head of one student, grouped
    by digit; the true label is marked."""
    digits = list(range(len(teacher)))
    fig = _fig(barmode="group", height=300, xaxis=dict(tickmode="array", tickvals=digits,
               title="digit"), yaxis=dict(title="probability", range=[0, 1.05]))  # fmt: skip
    fig.add_bar(x=digits, y=list(teacher), name="teacher (CNN)", marker_color=SOURCE["teacher"])
    for head, probs in heads.items():
        fig.add_bar(x=digits, y=list(probs), name=HEAD.get(head, head),
                    marker_color=SOURCE.get(head))  # fmt: skip
    fig.add_vline(x=label, line=dict(color="#1f2430", dash="dot"),
                  annotation_text=f"label {label}")  # fmt: skip
    return fig


def predictions_table(examples: dict, model: str) -> list[dict]:
    """One row per kept test image: its label, the teacher's prediction and each head's, with a
    mark where a head disagrees with the teacher."""

    def top(p: Sequence[float]) -> int:
        return max(range(len(p)), key=p.__getitem__)

    rows = []
    heads = examples["models"][model]
    for i, index in enumerate(examples["test_index"]):
        t = top(examples["teacher"][i])
        row = {"test image": index, "label": examples["labels"][i], "teacher": t}
        for head, probs in heads.items():
            p = top(probs[i])
            row[HEAD[head]] = f"{p}" if p == t else f"{p} ≠ teacher"
        rows.append(row)
    return rows
