"""The temperature page's section on curriculum temperature (Li et al. 2023): the loss KD asks the
demo student to lower, as a function of T, which CTKD's temperature climbs; the stored ctkd-mnist
run's students and the temperature each CTKD student learned, step by step, with λ's curriculum.

:func:`loss_by_temperature`, :func:`trajectories` and the figures are plain functions of tensors
and a run's records; only :func:`show_ctkd` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW, epoch_ticks, subplots
from app.relation_figures import _fig
from kdcore import analysis
from kdcore.losses.ctkd import CTKD, T_INIT, ctkd_loss, curriculum

PRESET, METHOD = "ctkd-mnist", "ctkd"
GRID = np.round(np.arange(1.0, 21.01, 0.25), 2)  # the official range of the learned T
COST = (  # measured: 47 s for the long profile's 16 epochs on an idle 2-core CPU
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the other relation "
    "presets) and four 30-30 students: about 10 s on a quiet 2-core CPU, up to two minutes on "
    "a busy one."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet56 → resnet20): KD at T = 4 70.66%, with CTKD's learned "
    "temperature 71.19% (Li et al. 2023, official README)."
)
LINE_COLOURS = [COLORS["student"], "#2f9e44", "#862e9c"]


@st.cache_data(max_entries=4)
def loss_by_temperature(temps: tuple[float, ...]) -> np.ndarray:
    """T²·KL(teacher ‖ demo student) over the 10,000 test images at each T: the loss that
    CTKD's student lowers and its temperature raises."""
    bundle = ui.load_demo(str(ui.models_dir()))
    # the loss page's vectorised T²·KL over a grid (on zero-mean logits, which KL cannot tell)
    limit = analysis.high_temperature_limit(bundle.student_logits, bundle.teacher_logits, temps)
    return limit["t2_kl"]


def slope_at(temps: np.ndarray, loss: np.ndarray, T: float) -> float:
    """The loss's slope in T at ``T`` inside the grid (central differences, interpolated)."""
    return float(np.interp(T, temps, np.gradient(loss, temps)))


def curve_figure(temps: np.ndarray, loss: np.ndarray, T: float, start: float) -> go.Figure:
    """The loss against T, the page's T and CTKD's official start marked."""
    fig = _fig(xaxis_title="temperature T", yaxis_title="T² · KL(teacher ‖ student)", height=320,
               legend=LEGEND_BELOW)  # fmt: skip
    fig.add_scatter(x=temps, y=loss, mode="lines", name="the demo student's loss",
                    line=dict(color=COLORS["kd"], width=3),
                    hovertemplate="T = %{x}: %{y:.3f}<extra></extra>")  # fmt: skip
    for x, name, colour in ((T, f"your T = {T:g}", COLORS["student"]),
                            (start, f"CTKD's start, {start:.1f}", COLORS["uniform"])):  # fmt: skip
        if temps[0] <= x <= temps[-1]:
            y = float(np.interp(x, temps, loss))
            fig.add_scatter(x=[x], y=[y], mode="markers", name=name,
                            marker=dict(color=colour, size=11))  # fmt: skip
    return fig


def trajectories(result: dict) -> dict[str, dict]:
    """Each CTKD student's learned temperature: ``x`` (epochs done, fractions included) and
    ``T`` from its epochs' traces, then its last temperature at the run's end; ``start``; its
    curriculum (``ramp``, ``top``) from its parameters."""
    out = {}
    for name, rec in (result.get("models") or {}).items():
        if rec.get("method") != METHOD:
            continue
        epochs = [e for e in (result.get("history") or {}).get(name, []) if "extra" in e]
        xs, ts = [], []
        for k, e in enumerate(epochs):
            trace = e["extra"].get("temperature_trace") or []
            xs += [k + i / len(trace) for i in range(len(trace))]
            ts += trace
        if epochs and "temperature" in epochs[-1]["extra"]:
            xs.append(float(len(epochs)))
            ts.append(epochs[-1]["extra"]["temperature"])
        if ts:
            p = rec.get("method_params") or {}
            out[name] = {"x": xs, "T": ts, "start": ts[0], "ramp": p.get("ramp_epochs", 10.0),
                         "top": p.get("lam_max", 1.0)}  # fmt: skip
    return out


def trajectory_figure(paths: dict[str, dict], kd_T: float | None, T: float) -> go.Figure:
    """Top: each CTKD student's temperature over its training, KD's fixed T dashed, the page's T
    dotted. Bottom: λ, how hard the temperature pushed against the student."""
    fig = subplots(2, 1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.08)
    last = max((max(p["x"]) for p in paths.values()), default=1.0)
    for k, (name, p) in enumerate(paths.items()):
        colour = LINE_COLOURS[k % len(LINE_COLOURS)]
        fig.add_scatter(x=p["x"], y=p["T"], mode="lines", name=f"{name} (from {p['start']:.1f})",
                        line=dict(color=colour, width=3), row=1, col=1,
                        hovertemplate="epoch %{x:.2f}: T = %{y:.2f}<extra></extra>")  # fmt: skip
    for y, name, dash, colour in ((kd_T, "KD's fixed T", "dash", COLORS["kd"]),
                                  (T, "your T", "dot", COLORS["uniform"])):  # fmt: skip
        if y is not None:
            fig.add_scatter(x=[0, last], y=[y, y], mode="lines", name=f"{name} = {y:g}",
                            line=dict(color=colour, dash=dash, width=2), row=1, col=1)  # fmt: skip
    if paths:
        p = next(iter(paths.values()))
        xs = np.linspace(0, last, 200)
        fig.add_scatter(x=xs, y=[curriculum(x, p["ramp"], 0.0, p["top"]) for x in xs],
                        mode="lines", name="λ", line=dict(color="#495057", width=2),
                        hovertemplate="epoch %{x:.2f}: λ = %{y:.2f}<extra></extra>", row=2,
                        col=1)  # fmt: skip
    fig.update_yaxes(title_text="learned T", row=1, col=1)
    fig.update_yaxes(title_text="λ", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1, **epoch_ticks(round(last)))
    return _fig(fig, height=440, legend=LEGEND_BELOW)


def show_ctkd(queue, T: float) -> None:
    """The section, at the page's ``T``."""
    ui.prose(
        "So far T is set by hand. **Curriculum temperature** (Li et al. 2023) learns it, "
        "*against* the student: the student lowers the distillation loss, and a reversed "
        "gradient makes the temperature raise it, so T goes wherever the student's task is "
        "hardest. How hard it pushes, λ, grows from 0 to 1 along a half cosine: easy first, "
        "hard later. Below, the loss the demo student would be asked to lower at each T."
    )
    loss = loss_by_temperature(tuple(GRID))
    ui.plot(curve_figure(GRID, loss, T, T_INIT), key="ctkd_curve")
    at_T = float(loss_by_temperature((T,))[0])
    if GRID[0] <= T <= GRID[-1]:
        slope = slope_at(GRID, loss, T)
        way = f"its slope is {slope:+.3f}: the reversed gradient moves T "
        way += "up" if slope > 0 else "down"
    else:
        way = "CTKD's temperature never goes there"
    st.caption(
        f"Means over the 10,000 test images, the demo teacher and student. At your T = {T:g} "
        f"the loss is {at_T:.3f} and {way}. It is highest at T = {GRID[int(np.argmax(loss))]:g}, "
        "where a temperature that climbs it comes to rest. CTKD's T lies between 1 and 21 and "
        f"starts at {T_INIT:.1f} (the official code's)."
    )
    run = lab_ui.stored_students(queue, PRESET, METHOD, COST, ("ep_ctkd", "run_ctkd"),
                                 PAPER_LINE)  # fmt: skip
    result = (run.result or {}) if run is not None else {}
    paths = trajectories(result)
    if paths:
        kd_params = (result.get("models") or {}).get("student_kd", {}).get("method_params") or {}
        ui.plot(trajectory_figure(paths, kd_params.get("T"), T), key="ctkd_paths")
        ends = "; ".join(
            f"{n} from {p['start']:.1f} to {p['T'][-1]:.1f} (lowest {min(p['T']):.1f}, highest "
            f"{max(p['T']):.1f})"
            for n, p in paths.items()
        )
        st.caption(f"The temperature each CTKD student learned, 40 steps an epoch: {ends}.")
    st.latex(  # in short lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}T = T_{start} + T_{range}\,\sigma(\theta_T)\\ "
        r"\mathcal L = (1-\alpha)\,\mathrm{CE} + \alpha\,T^2\,\mathrm{KL}(p^T\,\|\,q^T)\\ "
        r"\min_{\theta_s}\,\max_{\theta_T}\,\mathcal L\ \text{(gradient reversed, times }\lambda)"
        r"\\ \lambda_n = \tfrac12\big(1 - \cos(\pi \min(n, E)/E)\big)\end{gathered}"
    )


CODE = (ctkd_loss, CTKD.forward)
