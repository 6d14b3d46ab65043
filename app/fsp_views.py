"""The features page's section on the flow of solution procedure (Yim et al. 2017): the stored
fsp-mnist run's students, how far each one's FSP matrices are from the teacher's epoch by epoch,
how fast the FSP-initialised students learn their labels, and the matrices themselves.

:func:`flow_series`, :func:`speed_line`, :func:`flow_figure` and :func:`matrix_figure` are plain
functions of a run's records; only :func:`show_fsp` talks to Streamlit.
"""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks, log_ticks, square_cells, subplots
from app.relation_figures import _fig, model_colours
from kdcore.losses.fsp import fsp_loss, fsp_matrix

PRESET = "fsp-mnist"
COST = (
    "One epoch trains a ResNet-20 teacher (cached afterwards) and four ResNet-8 students, two "
    "of them after an epoch of FSP alone: some 3 minutes on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet56 → resnet20, the same widths): hard labels 69.06%, KD 70.66%, "
    "FSP 69.95% (Tian et al. 2020, Table 1)."
)


def flow_series(result: dict) -> dict[str, dict]:
    """For each student of a run: the x of each recorded epoch (its labels' epochs 1, 2, ...,
    those of its last stage; FSP's own epochs before them at 0, −1, ...), the FSP loss to the
    teacher on the test batch per pair and summed, and its test errors per epoch on labels."""
    out = {}
    history = result.get("history", {})
    for name, pairs in (result.get("flow") or {}).items():
        epochs = history.get(name, [])
        labels = [e for e in epochs if e.get("stage", "") == epochs[-1].get("stage", "")]
        first = len(epochs) - len(labels) if len(epochs) == len(pairs) else 0
        out[name] = {
            "x": [i - first + 1 for i in range(len(pairs))],
            "pairs": pairs,
            "total": [float(sum(p)) for p in pairs],
            "errors": [e["test_errors"] for e in labels],
        }
    return out


def speed_line(series: dict[str, dict], model: str = "student_fsp") -> str:
    """The paper's fast optimisation, in the run's figures: test errors after each epoch on
    labels, FSP's student against the hard-label one's."""
    fsp, hard = series.get(model, {}).get("errors"), series.get("student_hard", {}).get("errors")
    if not fsp or not hard:
        return ""
    pairs = ", ".join(f"{f} against {h}" for f, h in zip(fsp, hard, strict=False))
    return (f"Test errors after each epoch on labels, the FSP student against the hard-label "
            f"one: {pairs}.")  # fmt: skip


def flow_line(series: dict[str, dict], model: str = "student_fsp") -> str:
    """How near the teacher's flow FSP's own epochs bring its student, against the hard-label
    student at the end, and where the FSP student ends."""
    fsp, hard = series.get(model), series.get("student_hard")
    if not fsp or not hard or fsp["x"][0] > 0:
        return ""
    start, end, base = fsp["total"][fsp["x"].index(0)], fsp["total"][-1], hard["total"][-1]
    return (f"After FSP's own epochs its student's matrices are {base / start:.0f} times nearer "
            f"the teacher's than the hard-label student's at the end ({start:,.0f} against "
            f"{base:,.0f}); its epochs on labels take it to {end:,.0f}.")  # fmt: skip


def flow_figure(series: dict[str, dict], epoch: int) -> go.Figure:
    """The FSP loss to the teacher (the pairs summed, λ = 1) per epoch, a line per student on a
    log axis; FSP's own epochs at 0 and before, the chosen epoch dotted."""
    fig = _fig(xaxis_title="epoch on labels (FSP's own at 0 and before)", yaxis_type="log",
               yaxis_title="FSP loss to the teacher", height=340, legend=LEGEND_BELOW)  # fmt: skip
    colours = model_colours(list(series))
    for name, s in series.items():
        fig.add_scatter(x=s["x"], y=s["total"], name=name, mode="lines+markers",
                        line=dict(color=colours[name], width=3))  # fmt: skip
    fig.add_vline(x=epoch, line=dict(color="#868e96", dash="dot"))
    fig.update_xaxes(**epoch_ticks(max((len(s["x"]) for s in series.values()), default=1)))
    # 1-2-5 labels: Plotly's own within a decade and a half are the digits 2 to 9, which ran
    # into each other (presenter mode's larger type most)
    values = [v for s in series.values() for v in s["total"] if v > 0]
    ticks = log_ticks(min(values), max(values)) if values else []
    if len(ticks) >= 2:
        fig.update_yaxes(tickvals=ticks)
    return fig


def matrix_figure(
    teacher: np.ndarray, student: np.ndarray | None, layers: tuple[str, str]
) -> go.Figure:
    """The teacher's FSP matrix and a student's on one colour scale, and their difference
    (student − teacher) on its own (red where the student's entry is above the teacher's);
    rows are the first layer's channels, columns the second's."""
    panels = [("teacher", teacher)]  # short titles: three panels share a phone's width
    if student is not None:
        panels += [("student", student), ("difference", student - teacher)]
    fig = subplots(1, len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.06)
    both = [teacher] if student is None else [teacher, student]
    lo, hi = float(min(m.min() for m in both)), float(max(m.max() for m in both))
    for col, (_, z) in enumerate(panels, start=1):
        diff = col == 3
        span = float(np.abs(z).max()) or 1.0
        fig.add_trace(go.Heatmap(
            z=z, zmin=-span if diff else lo, zmax=span if diff else hi,
            colorscale="RdBu_r" if diff else "Viridis", showscale=col == 2 or len(panels) == 1,
            colorbar=dict(thickness=12),
            hovertemplate=f"{layers[0]} channel %{{y}}, {layers[1]} channel %{{x}}"
            "<br>%{z:.3f}<extra></extra>"), row=1, col=col)  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text=layers[0], col=1)
    fig.update_xaxes(title_text=layers[1])
    square_cells(fig)
    return _fig(fig, height=330, margin=dict(l=40, r=20, t=40, b=40))


def show_fsp(queue) -> None:
    """The section: the preset's stored (or shipped) run, its flow gaps and its matrices."""
    ui.prose(
        "**FSP** (Yim et al. 2017) teaches neither a layer's values nor where it looks, but how "
        "one layer leads to the next: for two layers of the same map size, the Gram matrix "
        "between their channels, each entry how much a channel of the first and a channel of "
        "the second respond together, averaged over positions. A shallower student of the "
        "teacher's widths is first trained to give the teacher's matrices, and only then on "
        "its labels: the paper's claim is that it learns them faster, and better."
    )
    run = lab_ui.stored_students(queue, PRESET, "fsp", COST, ("ep_fsp", "run_fsp"), PAPER_LINE)
    result = (run.result or {}) if run is not None else {}
    series, mats = flow_series(result), result.get("flow_matrices") or {}
    if series and mats.get("students"):
        st.caption(speed_line(series))
        last = max(s["x"][-1] for s in series.values())
        first = min(s["x"][0] for s in series.values())
        layers = mats["layers"]
        names = [f"{a} → {b}" for a, b in itertools.pairwise(layers)]
        c1, c2 = st.columns(2)
        with c1:
            pair = ui.url_choice("Pair of layers", names, key="fsp_pair", default=names[-1])
        with c2:
            who = ui.url_choice("Student", list(series), key="fsp_who",
                                default="student_fsp" if "student_fsp" in series else
                                next(iter(series)))  # fmt: skip
        epoch = ui.url_int("Epoch on labels (0: after FSP's own)", "fsp_ep", first, last, last)
        ui.plot(flow_figure(series, epoch), key="fsp_flow")
        st.caption(flow_line(series))
        i, s = names.index(pair), series[who]
        at = s["x"].index(epoch) if epoch in s["x"] else None
        student = None if at is None else np.array(mats["students"][who][at][i])
        ui.plot(matrix_figure(np.array(mats["teacher"][i]), student, (layers[i], layers[i + 1])),
                key="fsp_matrices")  # fmt: skip
        st.caption(
            f"{who} has no matrices at epoch {epoch}: it starts on its labels from random "
            "weights." if at is None else
            f"{who} at epoch {epoch}, FSP loss to the teacher on {len(mats['indices'])} test "
            f"images: {pair} {s['pairs'][at][i]:.3g}, all pairs {s['total'][at]:.3g}. Each "
            "matrix is the mean over those images."
        )  # fmt: skip
    st.latex(  # in lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}G_{ij}(x) = \frac{1}{hw}\sum_{s=1}^{h}\sum_{t=1}^{w} F^1_{s,t,i}(x)\,"
        r"F^2_{s,t,j}(x)\\ \mathcal L_{FSP} = \frac{1}{N}\sum_x \sum_{k} \lambda_k \big\lVert "
        r"G_k^T(x) - G_k^S(x)\big\rVert_2^2\end{gathered}"
    )
    st.caption(
        "The paper pairs two layers with maps of one size; the benchmark's code pairs each "
        "stage's output with the next, the larger map average-pooled to the smaller, as here. "
        "Its loss averages each matrix's entries where the paper sums them, so there the 16 × "
        "16 pair counts as much as the 32 × 64 one; summed, the widest pair leads. FSP needs "
        "the teacher's channel counts, so it cannot run on the relation presets' MLPs."
    )


CODE = (fsp_matrix, fsp_loss)
