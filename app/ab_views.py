"""The features page's section on activation-boundary transfer (Heo et al. 2019): what one unit
costs against the student's response at a margin from a slider, the stored ab-mnist run's
students, and, epoch by epoch, how often the connected student's units fall on the teacher's
side of zero, against guessing each unit's usual side.

:func:`hinge_figure`, :func:`agreement_figure` and :func:`unit_figure` are plain functions of
numbers; only :func:`show_ab` talks to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig
from kdcore.losses.ab import AB_MARGIN, ab_loss, activation_transfer_loss

PRESET = "ab-mnist"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and four 30-30 students: about 10 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): hard labels 72.50%, KD 73.33%, AB 73.17% "
    "(Tian et al. 2020, Table 1)."
)
FIRES, SILENT = "the teacher's unit fires", "the teacher's unit is silent"


def unit_costs(response: np.ndarray, fires: bool, margin: float) -> tuple[list, list]:
    """AB's loss (:func:`ab_loss`) and the mismatch count (the activation transfer loss) of one
    unit at each ``response`` of the connected student, where the teacher's unit fires or is
    silent."""
    s = torch.as_tensor(response, dtype=torch.float64).view(-1, 1, 1)  # one example each
    t = torch.full((1, 1), 1.0 if fires else 0.0, dtype=torch.float64)
    t_sign = t * 2 - 1  # a response on the teacher's side, for the count
    # the real functions, mapped over the responses at once (one call each per point took
    # ~35 ms a rerun of the page while the margin slider moved)
    hinge = torch.vmap(lambda v: ab_loss(v, t, margin))(s)
    count = torch.vmap(lambda v: activation_transfer_loss(v, t_sign))(s)
    return hinge.tolist(), count.tolist()


def hinge_figure(margin: float) -> go.Figure:
    """One unit's cost against the connected student's response: the squared hinge for a unit
    the teacher fires and for one it keeps silent, each with the 0/1 count it stands in for."""
    x = np.linspace(-3, 3, 241)
    fig = _fig(xaxis_title="connected student's response r(s)", yaxis_title="one unit's cost",
               height=340, legend=LEGEND_BELOW)  # fmt: skip
    for fires, name, color in ((True, FIRES, COLORS["teacher"]),
                               (False, SILENT, COLORS["student"])):  # fmt: skip
        hinge, count = unit_costs(x, fires, margin)
        fig.add_scatter(x=x, y=hinge, mode="lines", name=f"{name}: AB", line=dict(color=color))
        fig.add_scatter(x=x, y=count, mode="lines", name="its mismatch count",
                        line=dict(color=color, dash="dot", width=1.5), showlegend=fires,
                        legendgroup="count")  # fmt: skip
    for edge in {-margin, margin}:
        fig.add_vline(x=edge, line=dict(color=COLORS["muted"], dash="dash", width=1))
    fig.update_yaxes(range=[-0.2, 6])
    return fig


def baseline(teacher_on: list[float]) -> float:
    """The agreement of a student that guessed each teacher unit's more frequent side for every
    example: the mean over units of max(p, 1 − p), p how often the unit fires."""
    p = np.asarray(teacher_on)
    return float(np.maximum(p, 1 - p).mean())


def agreement_figure(kept: dict[str, list[dict]]) -> go.Figure:
    """Each AB student's agreement over its epochs (the initialisation shaded; a student
    without one drawn from where the others start on their labels), beside what guessing each
    unit's usual side scores."""
    fig = _fig(xaxis_title="epoch", yaxis_title="units on the teacher's side", height=340,
               legend=LEGEND_BELOW)  # fmt: skip
    fig.update_yaxes(tickformat=".0%")
    colors = [COLORS["student"], COLORS["ce"], "#2f9e44", COLORS["other"]]
    # a student without an initialisation starts where the others start on their labels
    inits = {label: sum(e.get("stage") == "init" for e in epochs) for label, epochs in
             kept.items()}  # fmt: skip
    init = max(inits.values())
    for i, (label, epochs) in enumerate(kept.items()):
        x = list(range(init - inits[label] + 1, init - inits[label] + len(epochs) + 1))
        fig.add_scatter(x=x, y=[e["agreement"] for e in epochs], mode="lines+markers",
                        name=label, line=dict(color=colors[i % len(colors)]))  # fmt: skip
    first = max(kept.values(), key=len)
    x = list(range(1, len(first) + 1))
    fig.add_scatter(x=x, y=[baseline(e["teacher_on"]) for e in first], mode="lines",
                    name="guessing each unit's usual side",
                    line=dict(color=COLORS["uniform"], dash="dot"))  # fmt: skip
    if init:
        fig.add_vrect(x0=0.5, x1=init + 0.5, fillcolor=COLORS["soft"], line_width=0,
                      annotation_text="AB alone", annotation_position="top left")  # fmt: skip
    return fig


def unit_figure(unit_agreement: list[float], teacher_on: list[float], epoch: int) -> go.Figure:
    """One point per teacher unit: how often it fires (x) and how often the connected student
    falls on its side (y), with the guess line max(x, 1 − x) that knows only how often."""
    fig = _fig(xaxis_title="how often the teacher's unit fires",
               yaxis_title="student on its side", height=360, legend=LEGEND_BELOW)  # fmt: skip
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    g = np.linspace(0, 1, 101)
    fig.add_scatter(x=g, y=np.maximum(g, 1 - g), mode="lines", name="guessing its usual side",
                    line=dict(color=COLORS["uniform"], dash="dot"), hoverinfo="skip")  # fmt: skip
    hover = "%{text}: fires %{x:.0%}, student on its side %{y:.1%}<extra></extra>"
    fig.add_scatter(x=teacher_on, y=unit_agreement, mode="markers",
                    name=f"teacher units, epoch {epoch}", text=[f"unit {i}" for i in
                                                                range(len(teacher_on))],
                    marker=dict(color=COLORS["student"], size=6, opacity=0.7),
                    hovertemplate=hover)  # fmt: skip
    return fig


def agreements(result: dict) -> dict[str, list[dict]]:
    """The AB students of a run and their epochs' records (with each epoch's stage), where they
    kept agreements, named from their own records: what followed an initialisation ("AB, then
    KD"), or, with none, what AB was kept beside ("AB beside hard labels")."""
    out = {}
    for epochs in result.get("history", {}).values():
        kept = [{**e["extra"], "stage": e.get("stage", "")} for e in epochs
                if "unit_agreement" in e.get("extra", {})]  # fmt: skip
        if kept:
            trained = [e for e in epochs if e.get("stage") != "init"]
            then = "KD" if trained and "kd" in trained[-1].get("losses", {}) else "hard labels"
            first = any(e["stage"] == "init" for e in kept)
            out[f"AB, then {then}" if first else f"AB beside {then}"] = kept
    return out


def show_ab(queue) -> None:
    """The section: the cost of one unit at a chosen margin, then the preset's stored (or
    shipped) run, its students and, where the run kept them, the AB students' agreement."""
    ui.prose(
        "**Activation boundaries** (Heo et al. 2019): a ReLU unit splits its inputs along a "
        "hyperplane into those it fires for and those it ignores, and which side an example "
        "falls on is most of what the next layer sees. AB transfers the sides, not the values: "
        "through a connector r (a linear map and BatchNorm), each student response must clear "
        "a margin μ on the side the teacher's unit is on, and costs nothing once it does. The "
        "student is initialised by this loss alone, then trained on its labels."
    )
    st.latex(  # in lines: a phone's column is narrower than the sum
        r"\begin{gathered}\mathcal{L}_{AB}(I) = \big\lVert \rho(T(I)) \odot "
        r"\sigma\big(\mu\mathbf{1} - r(S(I))\big)\\ + \big(1 - \rho(T(I))\big) \odot "
        r"\sigma\big(\mu\mathbf{1} + r(S(I))\big) \big\rVert_2^2,\\ "
        r"\rho(x) = \mathbf{1}[x > 0]\end{gathered}"
    )
    margin = ui.url_float("Margin μ", "ab_mu", 0.0, 3.0, AB_MARGIN, 0.25, slider=True)
    ui.plot(hinge_figure(margin), key="ab_hinge")
    st.caption(
        f"At μ = {margin:g} a unit costs nothing once the student's response is past "
        f"{margin:g} on the teacher's side; on the wrong side it costs at least μ² = "
        f"{margin**2:g} and grows with the square of the distance. The dotted steps are the "
        "count the hinge stands in for (the paper's activation transfer loss), which has no "
        "gradient. ρ and σ: the step and the ReLU; T(I), S(I): the layers before their ReLUs."
    )
    run = lab_ui.stored_students(queue, PRESET, "ab", COST, ("ep_ab", "run_ab"), PAPER_LINE)
    kept = agreements(run.result or {}) if run else {}
    if not kept:
        if run is not None:
            ui.fallback(f"{lab_ui.run_name(run)} kept no agreements; run it again.")
        return
    ui.plot(agreement_figure(kept), key="ab_agreement")
    labels = list(kept)
    who = (ui.url_choice("AB student", labels, key="ab_who", default=labels[0])
           if len(labels) > 1 else labels[0])  # fmt: skip
    epochs = kept[who]
    epoch = ui.url_epoch("ab_epoch", len(epochs))
    e = epochs[min(epoch, len(epochs)) - 1]
    ui.plot(unit_figure(e["unit_agreement"], e["teacher_on"], epoch), key="ab_units")
    st.caption(agreement_caption(lab_ui.run_name(run), who, epochs, epoch))


def agreement_caption(run_name: str, who: str, epochs: list[dict], epoch: int) -> str:
    """What the two charts show of one AB student at ``epoch``, in numbers from its records."""
    e = epochs[min(epoch, len(epochs)) - 1]
    agree, on = np.asarray(e["unit_agreement"]), np.asarray(e["teacher_on"])
    guess = np.maximum(on, 1 - on)
    init = [x for x in epochs if x.get("stage") == "init"]
    stage = ("AB alone" if e.get("stage") == "init" else "after the initialisation" if init
             else "AB beside its labels from the start")  # fmt: skip
    after = (
        f" At the end of the initialisation (epoch {len(init)}) it was "
        f"{init[-1]['agreement']:.1%}; at the last epoch, {epochs[-1]['agreement']:.1%}: the "
        "connector is frozen after its stage, so what is lost is how far classification moved "
        "the student's units from the teacher's boundaries."
        if init and len(epochs) > len(init)
        else ""
    )
    return (
        f"{run_name}, {who} at epoch {epoch} ({stage}): over the epoch's batches the "
        f"connected student's units fall on the teacher's side of zero {e['agreement']:.1%} "
        f"of the time, against {guess.mean():.1%} for a guess of each unit's usual side; "
        f"{int((agree > guess + 0.01).sum())} of the {len(agree)} teacher units are matched "
        f"more than a point better than that guess.{after}"
    )
