"""The features page's section on variational information distillation (Ahn et al. 2019): the
stored vid-mnist run's students, and for every unit of the teacher's embedding the variance a
VID student learned against the squared error its regressor made on that unit, epoch by epoch,
for each of the run's VID students (their variances started at different values).

:func:`variance_figure` is a plain function of lists; only :func:`show_vid` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig
from kdcore.losses.vid import vid_loss

PRESET = "vid-mnist"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and three 30-30 students: about 10 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): hard labels 72.50%, KD 73.33%, VID 73.09% "
    "(Tian et al. 2020, Table 1)."
)


def variance_figure(variance: list[float], squared_error: list[float], epoch: int) -> go.Figure:
    """One point per teacher unit: its squared error under the regressor (x) against the
    variance learned for it (y), both on log scales; the diagonal, where each variance is at its
    optimum, dotted."""
    x, y = np.asarray(squared_error), np.asarray(variance)
    # short titles: a phone's 390 px cut the long one at both ends (the caption says the rest)
    fig = _fig(xaxis_title="the unit's squared error", yaxis_title="learned σ²", height=380,
               legend=LEGEND_BELOW)  # fmt: skip
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    lo = float(min(x[x > 0].min(initial=1.0), y.min()))
    hi = float(max(x.max(), y.max()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="σ² = squared error (optimum)",
                    line=dict(color=COLORS["uniform"], dash="dot"), hoverinfo="skip")  # fmt: skip
    hover = "%{text}: error %{x:.3g}, σ² %{y:.3g}<extra></extra>"
    fig.add_scatter(x=x, y=y, mode="markers", name=f"teacher units, epoch {epoch}",
                    marker=dict(color=COLORS["student"], size=6, opacity=0.7),
                    text=[f"unit {i}" for i in range(len(x))], hovertemplate=hover)  # fmt: skip
    return fig


def show_vid(queue) -> None:
    """The section: the preset's stored (or shipped) run, its students and, where the run kept
    them, the VID student's variances against its errors at an epoch chosen with a slider."""
    ui.prose(
        "**VID** (Ahn et al. 2019) reads a hint as a guess: the student's layer predicts the "
        "teacher's through a small regressor μ, as a Gaussian with a variance σ² learned for "
        "each of the teacher's units. Maximising that likelihood bounds the information the "
        "student's layer holds about the teacher's. A unit the student cannot predict may take "
        "a large σ² and weigh less; one it predicts well, a small σ² and weigh more: at its "
        "optimum each σ² equals the unit's squared error, the dotted line below."
    )
    st.latex(
        r"\begin{gathered}-\log q(t \mid s) = \sum_c \sum_{h,w} \Big(\tfrac12\log\sigma_c^2 + "
        r"\frac{(t_{c,h,w} - \mu_{c,h,w}(s))^2}{2\sigma_c^2}\Big)\\ "
        r"\sigma_c^2 = \log\big(1 + e^{\alpha_c}\big) + \epsilon\end{gathered}"
    )
    run = lab_ui.stored_students(queue, PRESET, "vid", COST, ("ep_vid", "run_vid"), PAPER_LINE)
    kept = variances(run.result or {}) if run else {}
    if not kept:
        if run is not None:
            ui.fallback(f"{lab_ui.run_name(run)} kept no variances; run it again.")
        return
    labels = {start_label(epochs[0].get("start_variance"), name): name
              for name, epochs in kept.items()}  # fmt: skip
    if len(labels) > 1:
        who = labels[ui.url_choice("VID student", list(labels), key="vid_who",
                                   default=next(iter(labels)))]  # fmt: skip
    else:
        who = next(iter(kept))
    kept = kept[who]
    epoch = ui.url_epoch("vid_epoch", len(kept))
    e = kept[min(epoch, len(kept)) - 1]
    var, err = np.asarray(e["variance"]), np.asarray(e["squared_error"])
    ui.plot(variance_figure(e["variance"], e["squared_error"], epoch), key="vid_variance")
    # the likelihood term with the learned variances against the best it could have with them
    now = float(vid_loss(_t(np.sqrt(err)), _t(np.zeros_like(err)), _t(var)))
    best = float(vid_loss(_t(np.sqrt(err)), _t(np.zeros_like(err)), _t(err)))
    above = float((var > 2 * err).mean())
    why = (  # the shipped run's case; said only where the run shows it
        "Averaged over every unit, as the reference code's loss is, each α gets a small share "
        "of the gradient: σ² moves slowly from where it started and the hint is weighed almost "
        "evenly. "
        if above > 0.9
        else ""
    )
    corr = float(np.corrcoef(np.log(var), np.log(err))[0, 1]) if len(var) > 2 else float("nan")
    st.caption(
        f"{lab_ui.run_name(run)}, {who} at epoch {epoch}: the {len(var)} units' squared "
        f"errors (the regressor's, over the epoch's batches) range "
        f"from {err.min():.3g} to {err.max():.3g}, their learned σ² from {var.min():.3g} to "
        f"{var.max():.3g}; {above:.0%} of the units have a σ² above twice their error, and "
        f"the correlation of their logarithms is {corr:.2f}. {why}VID's term at these σ² is "
        f"{now:.3f} a unit; with each σ² at its optimum it would be {best:.3f}."
    )


def variances(result: dict) -> dict[str, list[dict]]:
    """The VID students of a run and their epochs' records, where they kept variances."""
    out = {}
    for name, epochs in result.get("history", {}).items():
        kept = [e["extra"] for e in epochs if "variance" in e.get("extra", {})]
        if kept:
            out[name] = kept
    return out


def start_label(start: float | None, name: str) -> str:
    """A VID student's name in the control: where its variances started (from the run's own
    record; an older run without it is named as the run names it)."""
    return f"σ² from {start:g}" if start is not None else name


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64).view(1, -1)  # (1, units)
