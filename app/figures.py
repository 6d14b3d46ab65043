"""Plotly figures for the response-based pages: one template, figure builders from numpy arrays.

No Streamlit here, so the benchmark can build (and measure) the same figures the pages show.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {
    "teacher": "#3b5bdb",  # the theme's primary colour
    "other": "#91a7ff",
    "student": "#e8590c",
    "ce": "#f59f00",
    "kd": "#3b5bdb",
    "uniform": "#868e96",
    "muted": "#adb5bd",
    "soft": "rgba(232, 89, 12, 0.06)",
}

TEMPLATE = go.layout.Template(
    layout=dict(
        font=dict(family="Source Sans Pro, Helvetica, Arial, sans-serif", size=13, color="#1f2430"),
        colorway=[COLORS["teacher"], COLORS["student"], COLORS["ce"], COLORS["uniform"]],
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        margin=dict(l=60, r=20, t=50, b=50),
        # automargin: long or slanted tick labels widen the margins instead of being cut off
        xaxis=dict(
            automargin=True, gridcolor="#e9ecef", zerolinecolor="#ced4da", linecolor="#ced4da"
        ),
        yaxis=dict(
            automargin=True,
            gridcolor="#e9ecef",
            zerolinecolor="#ced4da",
            linecolor="#ced4da",
            exponentformat="power",
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, bgcolor="rgba(0,0,0,0)"),
        hoverlabel=dict(font_size=12),
        bargap=0.25,
    )
)


def decade_ticks(values) -> dict:
    """A log axis's tick settings: labels at whole decades only when the values span two or
    more (Plotly's 2 and 5 between decades ran into the decade labels in presenter mode's
    larger type), else Plotly's own."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return {"dtick": 1} if v.size and np.log10(v.max() / v.min()) >= 2 else {}


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 tick values from ``lo`` to ``hi``, labelled in full ("50", not "5" under a x10)."""
    ticks = [m * 10.0**e for e in range(-3, 5) for m in (1, 2, 5)]
    return [round(t, 6) for t in ticks if lo * 0.999 <= t <= hi * 1.001]


def log_t_axis(lo: float, hi: float, title: str = "temperature T") -> dict:
    """A log temperature axis with clean labels and a little room past both ends, so the last
    label is not cut at the edge of the plot."""
    ticks = log_ticks(lo, hi)
    pad = 0.03 * (math.log10(hi) - math.log10(lo))
    return dict(
        type="log",
        title={"text": title},  # the figure JSON's own form, for fast_figure's plain dicts too
        tickvals=ticks,
        ticktext=[f"{t:g}" for t in ticks],
        range=[math.log10(lo) - pad, math.log10(hi) + pad],
    )


def _fig(**layout) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


# A legend under the chart, below the x axis's title: placed in the figure's own frame
# ("container"), so the plot shrinks to make room however many rows the legend wraps into, where a
# legend at a fraction of the plot's height below it lands on the tick labels at some heights,
# widths and font sizes (presenter mode's larger text).
LEGEND_BELOW = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0}
# Plotly sets a panel's title on the plot's top edge, which the top tick label of the panel's y
# axis reaches a few pixels above: a title wider than its panel (on a phone) lay over that label.
SUBPLOT_TITLE_LIFT = 8


def epoch_ticks(last: int) -> dict:
    """An epoch axis's ticks: one per epoch while they fit, else Plotly's own spacing; always
    whole numbers. Sixteen ticks one apart ran into each other in a narrow panel (the shipped
    16-epoch runs in presenter mode on a projector)."""
    return {"dtick": 1, "tickformat": "d"} if last <= 12 else {"tickformat": "d"}


def square_cells(fig: go.Figure) -> go.Figure:
    """One unit on each panel's y axis as long as one on its own x axis, so a map's cells are
    square, the panel shrunk to fit rather than its range stretched. ``update_yaxes(scaleanchor=
    "x")`` would tie every panel's y axis to the *first* panel's x axis: a 7 x 7 map beside a 14 x
    14 one was drawn half as tall as wide."""
    for axis in fig.select_yaxes():
        axis.update(scaleanchor=axis.anchor or "x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def subplots(rows: int = 1, cols: int = 1, **kw) -> go.Figure:
    """``make_subplots`` with the panels' titles lifted clear of their top tick labels.

    Keep a title's lines short, about 20 characters, breaking a longer one with "<br>": the
    app draws a chart as wide as its column, some 360 pixels on a phone, where two panels side
    by side get 100-150 pixels each and longer titles run into each other or off the chart."""
    fig = make_subplots(rows, cols, **kw)
    fig.update_annotations(yshift=SUBPLOT_TITLE_LIFT)  # only the titles exist yet
    return fig


TEMPLATE_SPEC = TEMPLATE.to_plotly_json()


def fast_figure(data: list[dict], **layout) -> go.Figure:
    """A figure from plain trace and layout dicts, without plotly's per-property validation.

    Validation is what building a figure costs: 6-11 ms for a chart of the loss page against
    0.3 ms without it, and a room of 30 students reruns these charts dozens of times a second
    (``bench/bench_load.py``). The pages' hot charts are built here; ``tests/test_figures.py``
    checks each of them through the validating constructor, so a misspelt property still fails
    a test instead of reaching the browser."""
    spec = {"data": data, "layout": {"template": TEMPLATE_SPEC, **layout}}
    try:
        return go.Figure(spec, _validate=False)
    except TypeError:  # a plotly without the private switch: validate, as before
        return go.Figure(spec)


def _vline(x: float, **line) -> dict:
    """A vertical line across the whole plot at ``x`` (``add_vline`` without its axis walk)."""
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": line}  # fmt: skip


def _values(a) -> list:
    return np.asarray(a, dtype=float).tolist()


def _bar(x: list, y, name: str, hover: str | None = None, **marker) -> dict:
    bar = {"type": "bar", "x": x, "y": _values(y), "name": name, "marker": marker}
    return {**bar, "hovertemplate": hover} if hover else bar


# ----------------------------------------------------------------------------- temperature


def targets_figure(
    hard: np.ndarray, smoothed: np.ndarray, teacher: np.ndarray, eps: float, T: float
) -> go.Figure:
    """Three training targets for one image: the one-hot label, the label-smoothed target (a
    uniform teacher) and the real teacher's soft targets."""
    labels = [str(c) for c in range(len(hard))]
    hover = "class %{x}: %{y:.3f}<extra></extra>"
    return fast_figure(
        [
            _bar(labels, hard, "hard label (one-hot)", hover, color=COLORS["muted"]),
            _bar(
                labels,
                smoothed,
                f"label smoothing, ε = {eps:.2f} (uniform teacher)",
                hover,
                color=COLORS["uniform"],
            ),
            _bar(labels, teacher, f"teacher at T = {T:.2f}", hover, color=COLORS["teacher"]),
        ],
        height=320,
        barmode="group",
        xaxis={"type": "category", "title": {"text": "class"}},
        yaxis={"title": {"text": "target probability"}, "range": [0, 1.02]},
    )


# ----------------------------------------------------------------------------- the KD loss


def loss_mix_figure(
    alphas: np.ndarray, ce: np.ndarray, kd: np.ndarray, alpha: float, T: float
) -> go.Figure:
    """Stacked bars of (1 - α) CE and α T² KL for a range of α; the chosen α is opaque."""
    opacity = np.where(np.isclose(alphas, alpha), 1.0, 0.35).tolist()
    x = [f"{a:.2f}" for a in alphas]
    return fast_figure(
        [
            _bar(x, ce, "(1 − α) · CE(y, q)", color=COLORS["ce"], opacity=opacity),
            _bar(x, kd, f"α · T² · KL(p‖q), T = {T:.2f}", color=COLORS["kd"], opacity=opacity),
        ],
        height=340,
        barmode="stack",
        xaxis={"title": {"text": "α (weight of the teacher)"}, "type": "category"},
        yaxis={"title": {"text": "loss for this image"}},
    )


def _line(x, y, name: str, **line) -> dict:
    return {"type": "scatter", "x": _values(x), "y": _values(y), "name": name, "mode": "lines",
            "line": line}  # fmt: skip


def gradient_figure(
    temps: np.ndarray, with_t2: np.ndarray, without_t2: np.ndarray, T: float
) -> go.Figure:
    """‖∂L/∂z‖ across T on log-log axes, with a 1/T² guide through the plain-KL curve at T = 1."""
    # The 1/T² guide runs through the plain-KL curve at the largest T, where the §2.1 limit holds.
    guide = without_t2[-1] * (temps / temps[-1]) ** -2.0
    high = temps >= 1
    # Below T ~ 0.5 both softmaxes are one-hot and the gradients vanish; do not let that
    # underflow stretch the axis over twenty decades.
    shown = temps >= 0.5
    lo = max(float(min(without_t2[shown].min(), with_t2[shown].min())) / 3, 1e-12)
    return fast_figure(
        [
            _line(temps, with_t2, "T² · KL (what kd_loss returns)", color=COLORS["kd"], width=3),
            _line(temps, without_t2, "KL alone", color=COLORS["student"], width=3),
            _line(temps[high], guide[high], "∝ 1/T²", color=COLORS["muted"], dash="dot"),
        ],
        height=360,
        xaxis=log_t_axis(float(temps[0]), float(temps[-1])),
        # one label per decade: the minor "2 5" labels of a log axis read as noise
        yaxis={
            "type": "log",
            "title": {"text": "‖∂L/∂z‖ (student logits)"},
            "dtick": 1,
            "range": [math.log10(lo), math.log10(float(with_t2.max()) * 3)],
        },
        shapes=[_vline(T, color="#495057", dash="dash")],
    )


def limit_figure(temps: np.ndarray, t2_kl: np.ndarray, limit: float, T: float) -> go.Figure:
    """T² KL on zero-mean logits converging to ‖z − v‖² / (2N) as T grows."""
    return fast_figure(
        [
            _line(temps, t2_kl, "T² · KL(p‖q)", color=COLORS["kd"], width=3),
            _line(
                [temps[0], temps[-1]],
                [limit, limit],
                "‖z − v‖² / (2N)",
                color=COLORS["student"],
                dash="dash",
                width=2,
            ),
        ],
        height=360,
        xaxis=log_t_axis(float(temps[0]), float(temps[-1])),
        yaxis={"title": {"text": "loss"}},
        shapes=[_vline(T, color="#495057", dash="dash")],
    )
