"""Plotly figures for the label-smoothing page, from numpy arrays.

No Streamlit and no tensor maths here: the page projects with :mod:`kdcore.smoothing` and passes
plain arrays in.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.figures import COLORS, LEGEND_BELOW, square_cells, subplots
from app.relation_figures import DIGITS, _fig

# the colours of the students' lines: from the hard teacher, from the smoothed one
LINES = (COLORS["teacher"], COLORS["student"])


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


def students_figure(
    points: dict[str, list[tuple[float, int]]], base: int | None, marked: float | None = None
) -> go.Figure:
    """The students' test errors against the temperature they were distilled at, one line per
    teacher (``points``: its title to (T, errors) pairs, as
    :func:`kdcore.presets_smoothing.sweep_points` gives them); the student on hard labels
    (``base``) as a dashed line across and ``marked``, the page's T, as a dotted one down, both
    named in the legend."""
    fig = _fig(xaxis_title="T the student was distilled at", height=380,
               yaxis_title="test errors", legend=LEGEND_BELOW)  # fmt: skip
    values = sorted({t for pts in points.values() for t, _ in pts})
    for (title, pts), colour in zip(points.items(), LINES, strict=False):
        hover = f"{title}<br>T = %{{x:g}}: %{{y}} errors<extra></extra>"
        fig.add_scatter(x=[t for t, _ in pts], y=[e for _, e in pts], name=title,
                        mode="lines+markers", line=dict(color=colour, width=3),
                        marker=dict(size=9), hovertemplate=hover)  # fmt: skip
    if base is not None:
        line = dict(color=COLORS["uniform"], dash="dash")
        fig.add_hline(y=base, line=line)
        fig.add_scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                        name=f"hard labels alone: {base}")  # fmt: skip
    if marked is not None and values and min(values) / 2 <= marked <= 2 * max(values):
        line = dict(color="#868e96", dash="dot")
        fig.add_vline(x=marked, line=line)
        fig.add_scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                        name=f"T above: {marked:g}")  # fmt: skip
    fig.update_xaxes(type="log", tickvals=values, ticktext=[f"{t:g}" for t in values])
    return fig


def sweep_sentence(points: dict[str, list[tuple[float, int]]]) -> str:
    """What the run's sweep says, in words from its own numbers: where each teacher's student
    does best, and at which temperatures the smoothed teacher's is behind or ahead."""
    if len(points) != 2 or not all(points.values()):
        return ""
    (hard_title, hard), (ls_title, ls) = points.items()
    best = [min(pts, key=lambda p: (p[1], p[0])) for pts in (hard, ls)]
    said = (f"The student {hard_title} does best at T = {best[0][0]:g} ({best[0][1]} errors), "
            f"the one {ls_title} at T = {best[1][0]:g} ({best[1][1]}).")  # fmt: skip
    mine = dict(hard)
    gaps = [(t, e - mine[t]) for t, e in ls if t in mine]
    behind = [f"{t:g}" for t, d in gaps if d > 0]
    ahead = [f"{t:g}" for t, d in gaps if d < 0]
    if behind:
        said += f" The smoothed teacher's student is behind at T = {', '.join(behind)}"
        said += f" and ahead at T = {', '.join(ahead)}." if ahead else ", every T tried."
    elif ahead:
        said += f" The smoothed teacher's student is ahead at T = {', '.join(ahead)}."
    return said + " One seed: the study below says which gaps hold."


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
