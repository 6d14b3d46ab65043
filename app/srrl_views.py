"""The projector page's section on SRRL (Yang et al. 2021): a projector judged by the teacher's
own classifier. The stored srrl-mnist run's students, and epoch by epoch how often the teacher's
frozen classifier, reading each SRRL student's projected feature, names the label.

:func:`reading` and :func:`reading_figure` are plain functions of a run's records; only
:func:`show_srrl` talks to Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks
from app.recorded import recorded_values
from app.relation_figures import _fig
from kdcore.losses.srrl import Connector, feature_statistics_loss, softmax_regression_loss

PRESET, METHOD = "srrl-mnist", "srrl"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and five 30-30 students: about 10 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "The paper reports SRRL consistently ahead of earlier methods across architectures, "
    "teacher-student capacities, data sets and domains (Yang et al. 2021, abstract); its tables "
    "are not quoted here: we could not check them."
)
NAMES = {"student_srrl": "both losses", "student_srrl_fm": "feature statistics only",
         "student_srrl_sr": "softmax regression only"}  # fmt: skip
COLOURS = {"student_srrl": "#2f9e44", "student_srrl_fm": "#862e9c", "student_srrl_sr": "#e8590c"}
# the two with the softmax regression read alike: the one alone dotted over the other
DASH = {"student_srrl_sr": "dot"}


def reading(result: dict) -> dict[str, list[float]]:
    """Each SRRL student's share of training images whose projected feature the teacher's
    classifier reads as the label, per epoch, as its epochs recorded it."""
    return recorded_values(result, "read_accuracy")


def reading_figure(series: dict[str, list[float]]) -> go.Figure:
    fig = _fig(xaxis_title="epoch", yaxis_title="read right (%)", height=300,
               legend=LEGEND_BELOW)  # fmt: skip
    for name, ys in series.items():
        fig.add_scatter(x=list(range(1, len(ys) + 1)), y=[100 * v for v in ys],
                        mode="lines+markers", name=NAMES.get(name, name),
                        line=dict(color=COLOURS.get(name), width=3,
                                  dash=DASH.get(name, "solid")))  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max(len(v) for v in series.values())))
    return fig


def show_srrl(queue) -> None:
    """The section: the idea, the stored (or shipped) run, what the teacher's classifier reads."""
    ui.prose(
        "A projector is usually judged coordinate by coordinate: how far the student's projected "
        "feature is from the teacher's. **SRRL** (Yang et al. 2021) judges it by what the "
        "teacher's own **frozen classifier** makes of it: the projected penultimate feature of "
        "the student, passed through the teacher's last layer, should give the teacher's logits "
        "(softmax regression), besides matching the teacher's feature on average. The student "
        "keeps its own classifier; the teacher's only grades its features. Below, both losses, "
        "each alone, and how often the teacher's classifier reads each student's feature right."
    )
    run = lab_ui.stored_students(queue, PRESET, METHOD, COST, ("ep_srrl", "run_srrl"), PAPER_LINE)
    series = reading((run.result or {}) if run is not None else {})
    if series:
        ui.plot(reading_figure(series), key="srrl_read")
        ends = "; ".join(f"{NAMES.get(n, n)} {100 * v[-1]:.1f}%" for n, v in series.items())
        st.caption(
            "The share of each epoch's training images whose projected student feature the "
            f"teacher's classifier reads as the label, after the last epoch: {ends}."
        )
    st.latex(  # in short lines: a phone's column is narrower than the sum
        r"\begin{gathered}\mathcal L_{FM} = \tfrac{1}{D}\lVert c(f_s) - f_t \rVert^2,\quad "
        r"\mathcal L_{SR} = \tfrac{1}{K}\lVert W_t\, c(f_s) - z_t \rVert^2\\ "
        r"\mathcal L = \mathrm{CE} + \alpha\,\mathcal L_{FM} + \beta\,\mathcal L_{SR}"
        r"\end{gathered}"
    )


CODE = (Connector.forward, feature_statistics_loss, softmax_regression_loss)
