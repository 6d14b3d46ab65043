"""Plotly figures for the label-smoothing page, from numpy arrays.

No Streamlit and no tensor maths here: the page projects with :mod:`kdcore.smoothing` and passes
plain arrays in.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, square_cells, subplots
from app.relation_figures import DIGITS, _fig

# (name suffix, legend) of the students distilled from each teacher
FROM = (("hard", "from the teacher on hard labels", COLORS["teacher"]),
        ("ls", "from the smoothed teacher", COLORS["student"]))  # fmt: skip


def projection_figure(
    panels: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: tuple[int, int, int],
    ringed: dict[str, np.ndarray] | None = None,
) -> go.Figure:
    """Side by side, each teacher's penultimate activations projected onto the plane through
    its three templates (Müller et al. 2019, Fig. 1): ``panels`` maps a title to (points (N, 2),
    digits (N,)); ``ringed`` optionally maps the same titles to one point (2,) drawn ringed (the
    page's chosen image). Each panel keeps its own scale, true in both directions."""
    fig = subplots(1, len(panels), subplot_titles=tuple(panels), horizontal_spacing=0.08)
    for col, (title, (xy, digits)) in enumerate(panels.items(), start=1):
        for d in classes:
            mine = digits == d
            fig.add_trace(
                go.Scattergl(x=xy[mine, 0], y=xy[mine, 1], mode="markers", name=f"digit {d}",
                             legendgroup=str(d), showlegend=col == 1,
                             marker=dict(size=4, color=DIGITS[d], opacity=0.45),
                             hovertemplate=f"digit {d}<extra></extra>"),
                row=1, col=col,
            )  # fmt: skip
        if ringed and title in ringed:
            x, y = ringed[title]
            fig.add_trace(
                go.Scatter(x=[x], y=[y], mode="markers", name="the chosen image",
                           showlegend=col == 1, hoverinfo="skip",
                           marker=dict(size=16, color="rgba(0,0,0,0)",
                                       line=dict(color="#e03131", width=3))),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    square_cells(fig)  # distances true to scale within each panel
    legend = {**LEGEND_BELOW, "itemsizing": "constant"}  # legend dots larger than the points
    return _fig(fig, height=440, legend=legend, margin=dict(l=20, r=20, t=50, b=40))


def students_figure(models: dict[str, dict], temperatures: tuple[float, float]) -> go.Figure:
    """The students' test errors, grouped by the temperature they were distilled at (the run's
    T, then its low one: the ``_low_T`` students), one bar per teacher; the student on hard
    labels as a dashed line across, named in the legend."""
    xs = [f"T = {t:g}" for t in temperatures]
    fig = _fig(yaxis_title="test errors", height=360, barmode="group", legend=LEGEND_BELOW)
    for key, label, colour in FROM:
        ys = [models.get(f"student_from_{key}{s}", {}).get("test_errors") for s in ("", "_low_T")]
        fig.add_bar(x=xs, y=ys, name=label, marker_color=colour, text=ys, textposition="outside",
                    hovertemplate="%{x}: %{y} errors<extra></extra>")  # fmt: skip
    if "student_hard" in models:
        base = models["student_hard"]["test_errors"]
        line = dict(color=COLORS["uniform"], dash="dash")
        fig.add_hline(y=base, line=line)
        # named in the legend, not by an annotation: one above the line ran into a bar's label
        fig.add_scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                        name=f"hard labels alone: {base}")  # fmt: skip
    return fig


def figures_table_rows(models: dict[str, dict], names: list[str]) -> list[dict]:
    """One row per model of a run: its test errors and the three figures the preset measures
    (missing ones left empty, as in a run made before they were)."""
    rows = []
    for n in names:
        m = models.get(n)
        if m is None:
            continue
        rows.append({
            "model": n, "architecture": m.get("arch", ""), "test errors": m.get("test_errors"),
            "cluster spread": m.get("cluster_spread"),
            "evenness over wrong digits": m.get("wrong_class_evenness"),
            "calibration error (ECE)": m.get("ece"),
        })  # fmt: skip
    return rows
