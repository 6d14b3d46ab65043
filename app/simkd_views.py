"""The projector page's section on SimKD (Chen et al. 2022): a projector that hands the student the
teacher's classifier. The stored simkd-mnist run's students; what each deployed network costs in
parameters against its test errors, beside a plain student of the same size; and epoch by epoch
how often each student names the teacher's class, and how far the SimKD students' projected
features lie from the teacher's.

:func:`size_points`, :func:`size_figure` and :func:`agreement_figure` are plain functions of a
run's records; only :func:`show_simkd` talks to Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks
from app.relation_figures import _fig, model_colours
from kdcore.losses.simkd import ReusedClassifier, SimKD, simkd_loss
from kdcore.methods import METHODS

PRESET, METHOD = "simkd-mnist", "simkd"
WIDE = ("hard_wide", "kd_wide")  # the plain students of the deployed size, as student_<these>
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets), "
    "five 30-30 students and two 110-110 ones: about 10 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "The official CIFAR-100 table (resnet32x4 → resnet8x4, top-1): student 73.09%, KD 74.42%, "
    "SimKD 76.73% at f = 8, 77.88% at 4, 78.08% at 2, the teacher 79.42% (Chen et al. 2022, "
    "the official README); the paper counts the projector's parameters as the price."
)


def label(model: dict) -> str:
    """A student's name in the charts: its architecture and method, and a projector's factor."""
    m = model.get("method", "")
    entry = METHODS.get(m)
    short = m if entry is None else "hard labels" if entry.baseline else entry.short
    factor = model.get("method_params", {}).get("factor")
    return f"{model.get('arch', '')} · {short}" + (f" f = {factor}" if factor else "")


def size_points(result: dict) -> list[dict]:
    """Each student of a run as {"name", "label", "group", "params", "errors"}: the parameters
    of the network it deploys (a SimKD student's with its projector and the teacher's
    classifier); ``group`` its architecture and method."""
    return [
        {
            "name": n,
            "label": label(m),
            "group": f"{m.get('arch')} {m.get('method')}",
            "params": m["params"],
            "errors": m["test_errors"],
        }
        for n, m in (result.get("models") or {}).items()
        if m.get("role") != "teacher" and "params" in m and "test_errors" in m
    ]


def size_figure(points: list[dict], teacher: dict | None) -> go.Figure:
    """Test errors against deployed parameters, a point per student in its run's colour; the
    students of one method joined in order of size; the teacher's errors a dashed line."""
    fig = _fig(xaxis_title="parameters deployed", yaxis_title="test errors", height=360,
               legend=LEGEND_BELOW)  # fmt: skip
    colours = model_colours([p["name"] for p in points])
    for p in points:
        fig.add_scatter(x=[p["params"]], y=[p["errors"]], mode="markers+text", name=p["label"],
                        text=[str(p["errors"])], textposition="middle right",
                        marker=dict(size=12, color=colours[p["name"]]),
                        hovertemplate=f"{p['label']}: %{{x:,}} parameters, %{{y}} errors"
                        "<extra></extra>")  # fmt: skip
    by_method: dict[str, list[dict]] = {}
    for p in points:
        by_method.setdefault(p["group"], []).append(p)
    for group in by_method.values():
        if len(group) > 1:
            group = sorted(group, key=lambda p: p["params"])
            fig.add_scatter(x=[p["params"] for p in group], y=[p["errors"] for p in group],
                            mode="lines", line=dict(color="#adb5bd", dash="dot"),
                            showlegend=False, hoverinfo="skip")  # fmt: skip
    if teacher:
        fig.add_hline(y=teacher["test_errors"], line=dict(color="#495057", dash="dash"),
                      annotation_text=f"teacher, {teacher['params']:,} parameters",
                      annotation_position="top left")  # fmt: skip
    # room for the numbers right of the points, and above the highest
    xs = [p["params"] for p in points]
    ys = [p["errors"] for p in points] + ([teacher["test_errors"]] if teacher else [])
    if xs:
        fig.update_xaxes(range=[0.85 * min(xs), 1.1 * max(xs)])
        fig.update_yaxes(range=[min(ys) - 0.08 * (max(ys) - min(ys)) - 5,
                                max(ys) + 0.08 * (max(ys) - min(ys)) + 5])  # fmt: skip
    fig.update_xaxes(tickformat=",")
    return fig


def agreement_figure(agreement: dict[str, list[float]], labels: dict[str, str]) -> go.Figure:
    """The share of test images on which each student names the teacher's class, per epoch."""
    fig = _fig(xaxis_title="epoch", yaxis_title="as the teacher (%)", height=320,
               legend=LEGEND_BELOW)  # fmt: skip
    colours = model_colours(list(agreement))
    for name, ys in agreement.items():
        fig.add_scatter(x=list(range(1, len(ys) + 1)), y=[100 * v for v in ys],
                        mode="lines+markers", name=labels.get(name, name),
                        line=dict(color=colours[name], width=3))  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max((len(v) for v in agreement.values()), default=1)))
    return fig


def show_simkd(queue) -> None:
    """The section: the idea, the stored (or shipped) run, size against errors, agreement."""
    ui.prose(
        "SRRL's student keeps its own classifier. **SimKD** (Chen et al. 2022) drops it: the "
        "student's last feature goes through a projector and then the **teacher's frozen "
        "classifier** answers for it, at test time too. One squared error between the projected "
        "feature and the teacher's is the whole loss, no labels and no KD; were the two "
        "features equal, the student would answer exactly as the teacher does. The price is "
        "the projector, part of the network deployed: its bottleneck factor f trades size for "
        "fit. Below, f = 2, 4 and 8 against a plain student of the size SimKD deploys at f = 2."
    )
    run = lab_ui.stored_students(queue, PRESET, METHOD, COST, ("ep_simkd", "run_simkd"),
                                 PAPER_LINE, also=WIDE)  # fmt: skip
    result = (run.result or {}) if run is not None else {}
    points = size_points(result)
    if points:
        ui.plot(size_figure(points, result["models"].get("teacher")), key="simkd_size")
        st.caption(
            "Test errors against the parameters each network deploys: a SimKD student's are "
            "its own, its projector's and the teacher's classifier's (its own unused classifier "
            "too). The dotted lines join one method's students."
        )
    labels = {p["name"]: p["label"] for p in points}
    agreement = (result.get("reuse") or {}).get("agreement") or {}
    if agreement:
        ui.plot(agreement_figure(agreement, labels), key="simkd_agree")
        gaps = (result.get("reuse") or {}).get("gap") or {}
        ends = "; ".join(f"{labels.get(n, n)} {100 * v[-1]:.1f}%" for n, v in agreement.items())
        gap = "; ".join(f"{labels.get(n, n)} {v[0]:.3f} → {v[-1]:.3f}" for n, v in gaps.items())
        st.caption(
            f"On the whole test set after the last epoch, the share of images on which each "
            f"student names the teacher's class: {ends}. The SimKD loss on the test set, first "
            f"epoch → last: {gap}."
        )
    st.latex(  # in short lines: a phone's column is narrower than the sum
        r"\begin{gathered}\mathcal L_{SimKD} = \tfrac{1}{CHW}\lVert f^t - P(f^s) \rVert^2\\ "
        r"p^s = \operatorname{softmax}\big(W_t\,\operatorname{pool}(P(f^s))\big)\end{gathered}"
    )


CODE = (simkd_loss, SimKD.teacher_targets, ReusedClassifier.forward_features)
