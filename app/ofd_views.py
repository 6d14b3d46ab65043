"""The features page's section on the overhaul of feature distillation (Heo et al. 2019): what
one number of the layer costs against the student's response for teacher responses above zero,
between the margin and zero, and below the margin, at a margin from a slider; the stored
ofd-mnist run's students; each teacher unit's margin both ways (the paper's Gaussian
expectation against the mean of its negative responses); and, epoch by epoch, how much of the
layer the partial L2 skips.

:func:`cost_figure`, :func:`margins_figure` and :func:`shares_figure` are plain functions of
numbers; only :func:`show_ofd` talks to Streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app import lab_ui, ui
from app.figures import COLORS, LEGEND_BELOW
from app.relation_figures import _fig, model_colours
from kdcore.losses.ofd import gaussian_margin, margin_relu, ofd_loss, partial_l2

PRESET = "ofd-mnist"
CODE = (gaussian_margin, margin_relu, partial_l2, ofd_loss)
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and six 30-30 students: about 15 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, WRN 28-4 → WRN 16-2): 27.32% top-1 error alone, 24.08% by OFD (Heo et "
    "al. 2019, the authors' README)."
)
# the expected negative response of a standard normal channel: −√(2/π)
STANDARD = -math.sqrt(2 / math.pi)
# three teacher responses: one the ReLU passes, one between the margin and zero, one below it
CASES = ((1.0, COLORS["teacher"]), (-0.3, "#2f9e44"), (-2.0, COLORS["student"]))


def unit_costs(response: np.ndarray, teacher: float, margin: float) -> list[float]:
    """OFD's cost (:func:`ofd_loss`) of one number at each ``response`` of the connected
    student, against a teacher response ``teacher`` at channel margin ``margin``."""
    s = torch.as_tensor(response, dtype=torch.float64).view(-1, 1, 1)  # one example each
    t = torch.full((1, 1), teacher, dtype=torch.float64)
    m = torch.full((1,), margin, dtype=torch.float64)
    return torch.vmap(lambda v: ofd_loss(v, t, m))(s).tolist()


def cost_figure(margin: float) -> go.Figure:
    """One number's cost against the connected student's response, for the three teacher
    responses of :data:`CASES`; dotted, the plain L2 to the raw response below the margin (what
    a hint before the ReLU asks)."""
    x = np.linspace(-3, 3, 241)
    fig = _fig(xaxis_title="connected student's response r(s)", yaxis_title="one number's cost",
               height=340, legend=LEGEND_BELOW)  # fmt: skip
    for t, color in CASES:
        fig.add_scatter(x=x, y=unit_costs(x, t, margin), mode="lines",
                        name=f"teacher {t:+g}", line=dict(color=color))  # fmt: skip
    low = CASES[-1][0]
    fig.add_scatter(x=x, y=(x - low) ** 2, mode="lines", name=f"plain L2 to {low:g}",
                    line=dict(color=CASES[-1][1], dash="dot", width=1.5))  # fmt: skip
    fig.add_vline(x=margin, line=dict(color=COLORS["muted"], dash="dash", width=1),
                  annotation_text="m", annotation_position="top")  # fmt: skip
    fig.update_yaxes(range=[-0.2, 6])
    return fig


def cost_caption(margin: float) -> str:
    """What :func:`cost_figure` shows at ``margin``, case by case."""
    mid, low = CASES[1][0], CASES[2][0]
    middle = (
        f"one of {mid:g} is kept, and any student response below it is free"
        if margin <= mid
        else f"one of {mid:g} is below the margin and becomes {margin:g}, any student below free"
    )
    return (
        f"At m = {margin:g}: a teacher response of +1 is matched from both sides; {middle}; one "
        f"of {low:g} becomes {max(low, margin):g}, and a student anywhere below that is free, "
        f"where the dotted plain L2 pulls it to {low:g} exactly. For a standard normal unit m = "
        f"−√(2/π) ≈ {STANDARD:.3f}. r: the connector (a linear map or 1 × 1 convolution and "
        "BatchNorm); β = 1/1000 on the sum over the layer, as the authors' code."
    )


@st.cache_resource(max_entries=1, show_spinner=False)
def demo_responses() -> np.ndarray:
    """The demo teacher's second hidden layer before its ReLU on the 10,000 test images,
    (N, 300) in float64: the layer ofd-mnist distils, of the model the other pages draw."""
    bundle = ui.load_demo(str(ui.models_dir()))
    with torch.no_grad():
        out = bundle.teacher.eval().forward_features(bundle.data.x_test)
    return out.features["hidden2_pre"].double().numpy()


def unit_margins(x: np.ndarray) -> dict[str, float]:
    """One unit's responses (N,): their mean and spread, the share below zero, the paper's
    margin (:func:`gaussian_margin` of that mean and spread) and the mean of the negatives."""
    mean, std = float(x.mean()), float(x.std())
    gaussian = float(gaussian_margin(torch.tensor([mean]), torch.tensor([max(std, 1e-6)]))[0])
    neg = x[x < 0]
    return {"mean": mean, "std": std, "below": float((x < 0).mean()), "gaussian": gaussian,
            "responses": float(neg.mean()) if len(neg) else 0.0}  # fmt: skip


def default_unit(responses: np.ndarray) -> int:
    """The unit whose two margins differ most: where the paper's Gaussian reading is worst."""
    gaps = [abs(m["gaussian"] - m["responses"]) for m in map(unit_margins, responses.T)]
    return int(np.argmax(gaps))


@st.cache_resource(max_entries=1, show_spinner=False)
def demo_default_unit() -> int:
    """:func:`default_unit` of the demo teacher, once (300 units' margins: 0.1 s a rerun)."""
    return default_unit(demo_responses())


def unit_figure(x: np.ndarray, m: dict[str, float], unit: int) -> go.Figure:
    """One teacher unit's responses before its ReLU as a density, the normal with their mean and
    spread, and the margins: the paper's (that normal's expected negative value) and the mean
    of the negative responses themselves."""
    fig = _fig(xaxis_title=f"unit {unit}'s response before its ReLU", yaxis_title="density",
               height=340, legend=LEGEND_BELOW, bargap=0.02)  # fmt: skip
    hover = "%{x}: %{y:.3f}<extra></extra>"
    fig.add_histogram(x=x, histnorm="probability density", nbinsx=80, name="test images",
                      marker_color=COLORS["muted"], hovertemplate=hover)  # fmt: skip
    g = np.linspace(float(x.min()), float(x.max()), 241)
    pdf = np.exp(-0.5 * ((g - m["mean"]) / m["std"]) ** 2) / (m["std"] * math.sqrt(2 * math.pi))
    fig.add_scatter(x=g, y=pdf, mode="lines", name="normal, same mean and spread",
                    line=dict(color=COLORS["teacher"]))  # fmt: skip
    marks = ((m["gaussian"], "Gaussian margin", COLORS["teacher"]),
             (m["responses"], "negatives' mean", COLORS["student"]))  # fmt: skip
    for value, name, colour in marks:
        fig.add_scatter(x=[value, value], y=[0, float(pdf.max())], mode="lines", name=name,
                        line=dict(color=colour, dash="dash", width=2))  # fmt: skip
    return fig


def ofd_students(result: dict) -> dict[str, list[dict]]:
    """The run's students that kept OFD's records, each with its epochs' records."""
    out = {}
    for name, epochs in result.get("history", {}).items():
        kept = [e["extra"] for e in epochs if "skipped" in e.get("extra", {})]
        if kept:
            out[name] = kept
    return out


def margins_figure(gaussian: list[float], responses: list[float]) -> go.Figure:
    """One point per teacher unit: the mean of its negative responses (x) and the Gaussian's
    expectation from its mean and spread (y), the paper's margin, with the diagonal."""
    g, r = np.asarray(gaussian), np.asarray(responses)
    lo = float(min(g.min(), r.min(), -0.1)) * 1.05
    fig = _fig(xaxis_title="mean negative response", yaxis_title="Gaussian margin", height=360,
               legend=LEGEND_BELOW)  # fmt: skip
    fig.add_scatter(x=[lo, 0], y=[lo, 0], mode="lines", name="equal", hoverinfo="skip",
                    line=dict(color=COLORS["uniform"], dash="dot"))  # fmt: skip
    hover = "unit %{text}: negatives' mean %{x:.3f}, Gaussian %{y:.3f}<extra></extra>"
    fig.add_scatter(x=r, y=g, mode="markers", name="teacher units", text=list(range(len(g))),
                    marker=dict(color=COLORS["teacher"], size=6, opacity=0.7),
                    hovertemplate=hover)  # fmt: skip
    fig.update_xaxes(range=[lo, 0.05])
    fig.update_yaxes(range=[lo, 0.05])
    return fig


def shares_figure(students: dict[str, list[dict]]) -> go.Figure:
    """Each OFD student's share of the layer's numbers that cost nothing (below a non-positive
    target) over its epochs, beside the share of the teacher's responses below zero."""
    fig = _fig(xaxis_title="epoch", yaxis_title="share of the layer", height=340,
               legend=LEGEND_BELOW)  # fmt: skip
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    # each student in its colour of the accuracy curves above; the first drawn wider, so a
    # student on the same shares (OFD beside KD) leaves it visible
    colours = model_colours(["student_hard", "student_kd", *students])
    for i, (name, epochs) in enumerate(students.items()):
        x = list(range(1, len(epochs) + 1))
        line = dict(color=colours[name], width=5 if i == 0 else 2)
        fig.add_scatter(x=x, y=[e["skipped"] for e in epochs], mode="lines+markers", name=name,
                        line=line)  # fmt: skip
    first = next(iter(students.values()))
    fig.add_scatter(x=list(range(1, len(first) + 1)), y=[e["negative"] for e in first],
                    mode="lines", name="teacher below zero",
                    line=dict(color=COLORS["uniform"], dash="dot"))  # fmt: skip
    return fig


def margins_caption(run_name: str, e: dict) -> str:
    """What the margins chart shows, in numbers from one epoch's record."""
    g, r = np.asarray(e["margin_gaussian"]), np.asarray(e["margin_responses"])
    rho = float(np.corrcoef(g, r)[0, 1]) if g.std() > 0 and r.std() > 0 else float("nan")
    return (
        f"{run_name}: the teacher's {len(g)} units. The paper's margin, the expectation of a "
        f"normal with each unit's mean and spread, averages {g.mean():.3f}; the mean of the "
        f"negative responses themselves {r.mean():.3f} (correlation {rho:.3f}, the widest gap "
        f"{np.abs(g - r).max():.3f}): a unit whose responses are not Gaussian gets a margin "
        f"off its own. Of the layer's numbers, {e['negative']:.1%} are below zero and "
        f"{e['raised']:.1%} below their unit's margin, raised to it."
    )


def show_ofd(queue) -> None:
    """The section: the cost of one number at a chosen margin, then the preset's stored (or
    shipped) run, its students, the teacher's margins and the skipped shares."""
    ui.prose(
        "**The overhaul of feature distillation** (Heo et al. 2019) reads both layers before "
        "their ReLUs, where a negative value still says how far below zero a unit is, and then "
        "decides what of that the student should copy. The teacher's positive values, which "
        "the next layer sees, are kept. Its negative ones, which the ReLU discards, become one "
        "per unit: the margin m, the unit's expected negative response. And a student already "
        "below a non-positive target costs nothing: after the ReLU both are zero."
    )
    st.latex(  # in lines: a phone's column is narrower than the sum
        r"\begin{gathered}\sigma_m(x) = \max(x, m),\quad m = \mathbb{E}[x \mid x < 0],\\ "
        r"d_p(T, S) = \sum_i \begin{cases} 0 & S_i \le T_i \le 0\\ (T_i - S_i)^2 & "
        r"\text{otherwise}\end{cases},\\ \mathcal{L} = \mathrm{CE} + \beta\, "
        r"d_p\big(\sigma_m(F_t), r(F_s)\big)\end{gathered}"
    )
    margin = ui.url_float("Margin m", "ofd_m", -3.0, 0.0, round(STANDARD, 1), 0.1, slider=True)
    ui.plot(cost_figure(margin), key="ofd_cost")
    st.caption(cost_caption(margin))
    responses = demo_responses()
    unit = ui.url_int("Unit of the demo teacher", "ofd_unit", 0, responses.shape[1] - 1,
                      demo_default_unit())  # fmt: skip
    m = unit_margins(responses[:, unit])
    ui.plot(unit_figure(responses[:, unit], m, unit), key="ofd_unit_chart")
    st.caption(
        f"The demo teacher (784-300-300-10) on the 10,000 test images: unit {unit} of its "
        f"second hidden layer is below zero on {m['below']:.1%} of them. A normal with its "
        f"mean {m['mean']:.3f} and spread {m['std']:.3f} expects a negative value of "
        f"{m['gaussian']:.3f}, the paper's margin; its negative responses average "
        f"{m['responses']:.3f}. The default unit is the one where the two differ most."
    )
    run = lab_ui.stored_students(queue, PRESET, "ofd", COST, ("ep_ofd", "run_ofd"), PAPER_LINE)
    students = ofd_students(run.result or {}) if run else {}
    if not students:
        if run is not None:
            ui.fallback(f"{lab_ui.run_name(run)} kept no margins; run it again.")
        return
    last = next(iter(students.values()))[-1]
    ui.plot(margins_figure(last["margin_gaussian"], last["margin_responses"]), key="ofd_margins")
    st.caption(margins_caption(lab_ui.run_name(run), last))
    ui.plot(shares_figure(students), key="ofd_shares")
    st.caption(
        "The share of the layer's numbers each student costs nothing on, because its connected "
        "response is below a target at or under zero; the partial L2 skips them (the students "
        "on plain L2 are counted too, where they pay for them). The dotted line: the teacher's "
        "responses below zero, the most that can be skipped."
    )
