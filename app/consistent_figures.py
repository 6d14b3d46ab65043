"""Plotly figures and words for the patient-and-consistent page, from a run's plain dicts.

No Streamlit and no tensor maths here: the page computes the views with
:mod:`kdcore.consistency` and passes numbers in.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, epoch_ticks, subplots
from app.relation_figures import _fig

# each student of the run: how its legend names it
LABELS = {
    "student_hard": "labels alone",
    "student_fixed": "fixed teacher",
    "student_independent": "independent views",
    "student_consistent": "consistent views",
    "student_function_matching": "function matching",
}
COLOURS = dict(zip(LABELS, ("#868e96", "#e8590c", "#c2255c", COLORS["teacher"], "#2b8a3e"),
                   strict=True))  # fmt: skip


def log_ticks(values: list[float]) -> dict:
    """Ticks at 1, 2 and 5 times the powers of ten that the values span (no more than about
    eight): Plotly's own log ticks label every digit of a short range, which ran together."""
    lo, hi = min(values), max(values)
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5)]  # fmt: skip
    shown = [t for t in ticks if lo / 2 <= t <= hi * 2] or [lo]
    if len(shown) > 8:  # a wide range: the powers of ten alone
        shown = [t for t in shown if math.log10(t).is_integer()]
    return {"tickvals": shown, "ticktext": [f"{t:g}" for t in shown]}


def errors_figure(history: dict[str, list[dict]], names: list[str]) -> go.Figure:
    """Test errors per epoch of each student (10,000 test images): which keep learning. A log
    scale: the first epochs' thousands of errors would flatten the hundreds that matter."""
    fig = _fig(xaxis_title="epoch", yaxis_title="test errors (log scale)", height=380,
               legend=LEGEND_BELOW)  # fmt: skip
    every = [10_000 * (1 - r["test_accuracy"]) for n in names for r in history.get(n, [])]
    fig.update_yaxes(type="log", **log_ticks([max(e, 1) for e in every] or [1]))
    fig.update_xaxes(**epoch_ticks(max((len(history.get(n, [])) for n in names), default=1)))
    for name in names:
        recs = history.get(name, [])
        fig.add_scatter(x=[r["epoch"] for r in recs],
                        y=[round(10_000 * (1 - r["test_accuracy"])) for r in recs],
                        name=LABELS.get(name, name), mode="lines",
                        line=dict(color=COLOURS.get(name), width=2.5))  # fmt: skip
    return fig


def fidelity_figure(history: dict[str, list[dict]], names: list[str]) -> go.Figure:
    """Each distilled student's KL from the teacher per epoch, on the clean transfer images it
    was taught on (left) and on the test images (right), one scale for both (log)."""
    fig = subplots(1, 2, subplot_titles=("transfer images", "test images"),
                   horizontal_spacing=0.1, shared_yaxes=True)  # fmt: skip
    for name in names:
        recs = [r for r in history.get(name, []) if "kl_train" in r.get("extra", {})]
        for col, key in enumerate(("kl_train", "kl_test"), start=1):
            fig.add_scatter(x=[r["epoch"] for r in recs], y=[r["extra"][key] for r in recs],
                            name=LABELS.get(name, name), legendgroup=name, mode="lines",
                            showlegend=col == 1, line=dict(color=COLOURS.get(name), width=2.5),
                            row=1, col=col)  # fmt: skip
    kl = [r["extra"][k] for n in names for r in history.get(n, [])
          if "kl_train" in r.get("extra", {}) for k in ("kl_train", "kl_test")]  # fmt: skip
    # both panels: they share the axis
    fig.update_yaxes(type="log", **log_ticks([max(v, 1e-6) for v in kl] or [1.0]))
    fig.update_yaxes(title_text="KL from the teacher", row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    return _fig(fig, height=380, legend=LEGEND_BELOW)


def table_rows(models: dict[str, dict], names: list[str]) -> list[dict]:
    """One row per student: its test errors, its KL from the teacher on the transfer and on the
    test images, and how often it agrees with the teacher on the test images."""
    return [
        {"student": LABELS.get(n, n), "test errors": models[n].get("test_errors"),
         "KL, transfer images": models[n].get("kl_train"),
         "KL, test images": models[n].get("kl_test"),
         "agrees with the teacher": models[n].get("agreement")}
        for n in names if n in models
    ]  # fmt: skip


def verdict(models: dict[str, dict]) -> str:
    """What the run says in words from its numbers: the best student, and how much further
    from the teacher each distilled student is on new images than on those it was taught on."""
    names = [n for n in LABELS if n in models]
    if len(names) < 2:
        return ""
    best = min(names, key=lambda n: models[n]["test_errors"])
    said = (f"After the whole schedule the best student is the one taught by "
            f"**{LABELS[best]}** ({models[best]['test_errors']} test errors).")  # fmt: skip
    moves = [
        f"{LABELS[n]} from {m['kl_train']:.3f} to {m['kl_test']:.3f} "
        f"(×{m['kl_test'] / m['kl_train']:.1f})"
        for n in names[1:]
        if (m := models[n]).get("kl_train") and m.get("kl_test") is not None
    ]
    if moves:
        said += (" From the images it was taught on to new ones, each student's KL from the "
                 f"teacher grows: {'; '.join(moves)}.")  # fmt: skip
    return said + " One seed: the study under the run says which differences hold."
