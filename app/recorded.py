"""What a method recorded of its own at each epoch's end (its distiller's ``epoch_summary``, kept
in each epoch's ``extra``), drawn for any run the lab shows without a page of its own: CTKD's
learned temperature and λ, for one, or whatever else a method records. Only the numbers are
drawn (lists and tables are the concept pages' business); nothing here names a method.

:func:`recorded_series` and :func:`recorded_figure` are plain functions of a run's history.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.figures import LEGEND_BELOW, TEMPLATE, epoch_ticks, subplots

MOST = 6  # series drawn at most, in the order the method records them


def recorded_series(history: dict[str, list[dict]]) -> dict[str, dict[str, list[tuple]]]:
    """{key: {model: [(epoch, value)]}} for every finite number a model's epochs record in
    their ``extra`` (booleans, lists and tables left out), keys in the order first recorded."""
    out: dict[str, dict[str, list[tuple]]] = {}
    for model, epochs in history.items():
        for e in epochs:
            for key, value in (e.get("extra") or {}).items():
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if number and math.isfinite(value):
                    out.setdefault(key, {}).setdefault(model, []).append((e["epoch"], value))
    return out


def recorded_values(result: dict, key: str) -> dict[str, list[float]]:
    """{model: [its value at each epoch]} of one number a run's epochs recorded (``key``), from
    the run's result dict: :func:`recorded_series` without the epochs."""
    series = recorded_series(result.get("history") or {}).get(key, {})
    return {name: [v for _, v in points] for name, points in series.items()}


def recorded_figure(series: dict[str, dict[str, list[tuple]]], colours: dict[str, str]):
    """A small panel per recorded number (the first six), a line per model in its colour."""
    keys = list(series)[:MOST]
    rows = (len(keys) + 1) // 2
    fig = subplots(rows, 2 if len(keys) > 1 else 1, subplot_titles=keys, vertical_spacing=0.16)
    shown: set[str] = set()
    longest = 1
    for k, key in enumerate(keys):
        for model, points in series[key].items():
            x, y = zip(*points, strict=True)
            longest = max(longest, *x)
            fig.add_trace(
                go.Scatter(x=x, y=y, mode="lines+markers", name=model, legendgroup=model,
                           showlegend=model not in shown, line={"color": colours.get(model)}),
                row=k // 2 + 1, col=k % 2 + 1,
            )  # fmt: skip
            shown.add(model)
    fig.update_xaxes(**epoch_ticks(longest))
    for col in range(1, min(len(keys), 2) + 1):  # the bottom panels name the axis
        fig.update_xaxes(title_text="epoch", row=rows, col=col)
    fig.update_layout(template=TEMPLATE, height=110 + 230 * rows, legend=LEGEND_BELOW,
                      margin={"t": 50, "b": 70})  # fmt: skip
    return fig
