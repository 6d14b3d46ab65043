"""Plotly figures and small summaries for the feature-based pages (projector, hints, attention).

Plain functions of result dicts and numpy arrays: no Streamlit, no training. The pages compute
with :mod:`kdcore.projectors` and :mod:`kdcore.losses` and pass the numbers in.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures import (
    COLORS,
    LEGEND_BELOW,
    TEMPLATE,
    decade_ticks,
    epoch_ticks,
    square_cells,
    subplots,
)

VARIANT = {"none": "#e8590c", "batchnorm": "#3b5bdb", "whitening": "#2b8a3e",
           "orthogonal": "#5f3dc4"}  # fmt: skip
MODEL = {"student_hard": "#868e96", "student_kd": COLORS["teacher"], "student_fitnets": "#e8590c",
         "student_at": "#e8590c", "teacher": "#1f2430"}  # fmt: skip
FLOOR = 1e-12  # log axes cannot show 0: an exactly collapsed σ or a converged distance sits here
ORTHO_TOL = 1e-3  # |σ − 1| below this counts as "kept at 1" (float32 parametrisation error)


def _fig(fig: go.Figure | None = None, **layout) -> go.Figure:
    fig = fig or go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def shades(n: int, colour: str) -> list[str]:
    """n opacities of one colour, faint (early) to solid (late)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return [f"rgba({r},{g},{b},{0.25 + 0.75 * (i + 1) / n:.2f})" for i in range(n)]


# ----------------------------------------------------------------------------- the projector


def flow_figure(dist: np.ndarray, sv_steps: np.ndarray, sv: np.ndarray, plateau: float | None):
    """‖W_k − C_st‖_F per step (log y) beside W_k's singular values at the sampled steps.

    dist: (steps + 1,); sv_steps: (K,); sv: (K, r). ``plateau``: where the distance settles when
    C_s ≠ I (‖C_st C_s⁻¹ − C_st‖), drawn dashed."""
    # titles in two lines: in one they ran into each other and off the chart on a phone
    fig = subplots(1, 2, subplot_titles=("‖W_p − C_st‖<br>(Frobenius)",
                                         "singular values<br>of W_p"))  # fmt: skip
    fig.add_scatter(x=np.arange(len(dist)), y=np.maximum(dist, FLOOR), name="distance",
                    line=dict(color=COLORS["teacher"], width=3), row=1, col=1)  # fmt: skip
    if plateau is not None:
        # its label at the left end: at the right it ran into the right panel's tick labels
        fig.add_hline(y=max(plateau, FLOOR), line=dict(color="#868e96", dash="dash"), row=1, col=1,
                      annotation_text="‖C_st C_s⁻¹ − C_st‖",
                      annotation_position="top left")  # fmt: skip
    for i in range(sv.shape[1]):
        fig.add_scatter(x=sv_steps, y=sv[:, i], mode="lines", name=f"σ{i + 1}", showlegend=False,
                        line=dict(color=COLORS["student"], width=1.5), row=1, col=2)  # fmt: skip
    fig.update_yaxes(type="log", row=1, col=1, **decade_ticks(np.maximum(dist, FLOOR)))
    fig.update_xaxes(title_text="step")
    return _fig(fig, height=340, showlegend=False)


def spectrum_figure(epochs: list[list[float]], trace: list[dict], variant: str) -> go.Figure:
    """One variant of a stored run: σ_i by index for every epoch (log y, later epochs darker)
    beside the recorded trace as a heatmap of log10 σ (steps down, σ index across)."""
    # Short titles (log₁₀ σ is the colour bar's title), room between the panels for the step
    # axis, a slim colour bar and the legend under the plot: the titles ran into each other on
    # a phone, the step axis's title lay on the left panel (even 0.18 of the width apart: the
    # steps are named in the panel's title instead), the legend covered the titles.
    fig = subplots(1, 2, subplot_titles=("spectrum after<br>each epoch", "during training<br>"
                                         "step by step"), horizontal_spacing=0.18)  # fmt: skip
    colours = shades(len(epochs), VARIANT.get(variant, COLORS["teacher"]))
    for e, (values, colour) in enumerate(zip(epochs, colours, strict=True)):
        y = np.maximum(np.asarray(values, dtype=float), FLOOR)
        fig.add_scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines", name=f"epoch {e + 1}",
                        line=dict(color=colour, width=2), row=1, col=1)  # fmt: skip
    if trace:
        z = np.log10(np.maximum(np.array([t["spectrum"] for t in trace], dtype=float), FLOOR))
        fig.add_trace(
            go.Heatmap(z=z, x=np.arange(1, z.shape[1] + 1), y=[t["step"] for t in trace],
                       colorscale="Viridis", colorbar=dict(title=dict(text="log₁₀ σ", side="right"),
                                                           thickness=14),
                       hovertemplate="step %{y}, σ%{x}: 10^%{z:.2f}<extra></extra>"),
            row=1, col=2,
        )  # fmt: skip
        fig.update_yaxes(autorange="reversed", row=1, col=2)
    floored = np.maximum(np.concatenate([np.ravel(e) for e in epochs]) if epochs else [1.0], FLOOR)
    fig.update_yaxes(type="log", title_text="σ", row=1, col=1, **decade_ticks(floored))
    fig.update_xaxes(title_text="σ index<br>(largest first)")  # one line each: they met
    return _fig(fig, height=420, legend=LEGEND_BELOW)


def final_spectra_figure(spectra: dict[str, list[list[float]]]) -> go.Figure:
    """The last epoch's spectrum of every variant on one log axis."""
    fig = _fig(xaxis_title="σ index (largest first)", yaxis_title="σ", yaxis_type="log",
               height=320)  # fmt: skip
    for v, epochs in spectra.items():
        y = np.maximum(np.asarray(epochs[-1], dtype=float), FLOOR)
        fig.add_scatter(x=np.arange(1, len(y) + 1), y=y, name=v, mode="lines",
                        line=dict(color=VARIANT.get(v), width=3))  # fmt: skip
    last = [np.maximum(np.asarray(e[-1], dtype=float), FLOOR) for e in spectra.values() if e]
    fig.update_yaxes(**decade_ticks(np.concatenate(last) if last else [1.0]))
    return fig


def projector_table(result: dict) -> list[dict]:
    """Rows: each projector variant (collapsed count, σ range, accuracy), then the baselines."""
    models, rows = result.get("models", {}), []
    for v, epochs in result["spectra"].items():
        last = np.asarray(epochs[-1], dtype=float)
        acc = models.get(f"projector_{v}", {}).get("test_accuracy")
        rows.append({
            "model": f"projector_{v}", "collapsed σ": result["collapsed"].get(v),
            "of": len(last), "σ_max": float(last.max()), "σ_min": float(last.min()),
            "test accuracy %": None if acc is None else round(100 * acc, 2),
        })  # fmt: skip
    for name in ("student_hard", "student_kd"):
        if name in models:
            acc = models[name].get("test_accuracy", 0.0)
            rows.append({"model": name, "test accuracy %": round(100 * acc, 2)})
    return rows


def projector_verdict(result: dict) -> str:
    """A plain sentence on whether this run agrees with the two claims of the preset's papers."""
    col, spectra, parts = result["collapsed"], result["spectra"], []
    if "none" in col and "batchnorm" in col:
        n, b = col["none"], col["batchnorm"]
        if n > b:
            said = (
                f"Without normalisation **{n}** singular values collapsed against **{b}** with "
                "BatchNorm: this run agrees with Miles & Mikolajczyk (2024)."
            )
        elif n == b:
            said = (
                f"Without normalisation and with BatchNorm alike **{n}** singular values "
                "collapsed: no difference in this run (longer training may show one)."
            )
        else:
            said = (
                f"Without normalisation **{n}** collapsed, with BatchNorm **{b}**: more with "
                "BatchNorm, against Miles & Mikolajczyk (2024), in this run."
            )
        parts.append(said)
    if "orthogonal" in spectra:
        last = np.asarray(spectra["orthogonal"][-1], dtype=float)
        gap = float(np.abs(last - 1.0).max())
        if gap < ORTHO_TOL:
            said = (
                f"The orthogonal projector kept all {len(last)} singular values at 1 (largest "
                f"deviation {gap:.1e}), as VkD's parametrisation promises."
            )
        else:
            said = (
                f"The orthogonal projector's singular values are off 1 by up to {gap:.3f}: the "
                "parametrisation did not hold in this run."
            )
        parts.append(said)
    return " ".join(parts) or "This run has none of the variants the claims are about."


# ----------------------------------------------------------------------------- FitNets


def hint_figure(history: list[dict]) -> go.Figure:
    """Every loss part of the FitNets student per epoch; the hint stage shaded, markers by stage."""
    fig = _fig(xaxis_title="epoch", yaxis_title="loss (epoch mean)", height=320)
    x = [r["epoch"] for r in history]
    fig.update_xaxes(**epoch_ticks(max(x, default=0)))
    parts = dict.fromkeys(k for r in history for k in r["losses"] if k != "total")
    symbols = ["diamond" if r.get("stage") == "hint" else "circle" for r in history]
    for part, colour in zip(parts, ("#e8590c", "#f59f00", COLORS["teacher"], "#2b8a3e"),
                            strict=False):  # fmt: skip
        fig.add_scatter(x=x, y=[r["losses"].get(part) for r in history], name=part,
                        mode="lines+markers", marker=dict(symbol=symbols, size=10),
                        line=dict(color=colour, width=3))  # fmt: skip
    hint = [r["epoch"] for r in history if r.get("stage") == "hint"]
    if hint:
        fig.add_vrect(x0=min(hint) - 0.5, x1=max(hint) + 0.5, fillcolor=COLORS["soft"],
                      line_width=0, annotation_text="hint stage",
                      annotation_position="top left")  # fmt: skip
    return fig


def accuracy_bars(models: dict[str, dict], names: list[str]) -> go.Figure:
    """Final test accuracy of the named models, with the error count on each bar."""
    shown = [n for n in names if n in models]
    acc = [100 * models[n]["test_accuracy"] for n in shown]
    fig = _fig(yaxis_title="test accuracy %", height=300,
               yaxis_range=[max(min(acc, default=0) - 2, 0), 100])  # fmt: skip
    fig.add_bar(x=shown, y=acc, marker_color=[MODEL.get(n, COLORS["uniform"]) for n in shown],
                text=[f"{models[n].get('test_errors', '?')} errors" for n in shown])  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- attention maps


def attention_grid(columns: dict[str, dict[str, list]], layers: list[str]) -> go.Figure:
    """Attention maps: one row per layer, one column per model ({title: {layer: (H, W)}}); one
    colour scale per row, so a row compares like with like."""
    # a line per part (a model, its epoch, the layer): in fewer, a phone's narrow columns ran
    # into each other and past the chart's edge
    titles = [f"{'<br>'.join(c.split(', '))}<br>{layer}" for layer in layers for c in columns]
    fig = make_subplots(len(layers), len(columns), subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.14)  # fmt: skip
    fig.update_annotations(font_size=12)
    for r, layer in enumerate(layers, 1):
        zmax = max(float(np.max(maps[layer])) for maps in columns.values())
        for c, maps in enumerate(columns.values(), 1):
            fig.add_trace(go.Heatmap(z=np.asarray(maps[layer]), zmin=0.0, zmax=zmax,
                                     colorscale="Inferno", showscale=False,
                                     hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"),
                          row=r, col=c)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    square_cells(fig)
    return _fig(fig, height=250 * len(layers), margin=dict(l=10, r=10, t=50, b=10))


def loss_curve(history: list[dict], part: str, name: str) -> go.Figure:
    """One loss part of one model per epoch (e.g. β·AT of student_at)."""
    fig = _fig(xaxis_title="epoch", yaxis_title=part, height=280)
    fig.update_xaxes(**epoch_ticks(max((r["epoch"] for r in history), default=0)))
    fig.add_scatter(x=[r["epoch"] for r in history], y=[r["losses"].get(part) for r in history],
                    mode="lines+markers", name=name,
                    line=dict(color=MODEL.get(name, COLORS["student"]), width=3))  # fmt: skip
    return fig
