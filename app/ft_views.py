"""The features page's section on factor transfer (Kim, Park & Kwak 2018): the stored ft-mnist
run's students, and how far each FT student's translated factor stays from the paraphrased
teacher's, epoch by epoch, beside how well the paraphraser learned to reconstruct the teacher.

:func:`factor_gaps` and :func:`gap_figure` are plain functions of a run's records; only
:func:`show_ft` talks to Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, epoch_ticks
from app.relation_figures import _fig, model_colours
from kdcore.losses.ft import FT_WEIGHT, ft_loss, reconstruction_loss

PRESET = "ft-mnist"
COST = (
    "One epoch trains a 300-300 teacher (cached afterwards, shared with the relation presets) "
    "and six 30-30 students, three of them after their paraphraser's own epochs (16 for one, "
    "whatever the run's length): about 30 s on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Paper (CIFAR-100, resnet32x4 → resnet8x4): hard labels 72.50%, KD 73.33%, FT 72.86% "
    "(Tian et al. 2020, Table 1, with the benchmark's own factor loss)."
)


def factor_gaps(result: dict) -> dict[str, dict]:
    """For each FT student of a run: β, the paraphraser's reconstruction error per epoch of its
    stage (empty for an untrained paraphraser), absolute and relative to the layer's size where
    the run kept it, and L_FT itself (the recorded β·L_FT over β) per epoch on labels."""
    out = {}
    for name, rec in result.get("models", {}).items():
        params = rec.get("method_params") or {}
        if rec.get("method") != "ft" or not params.get("weight"):
            continue
        epochs = result.get("history", {}).get(name, [])
        out[name] = {
            "weight": params["weight"],
            "rec": [e["losses"]["rec"] for e in epochs if e.get("stage") == "paraphraser"],
            "relative": [
                e["extra"]["relative_reconstruction"]
                for e in epochs
                if "relative_reconstruction" in e.get("extra", {})
            ],
            "ft": [e["losses"]["ft"] / params["weight"] for e in epochs if "ft" in e["losses"]],
        }
    return out


def gap_figure(gaps: dict[str, dict]) -> go.Figure:
    """L_FT per epoch on labels, a line per FT student, from zero."""
    fig = _fig(xaxis_title="epoch (after the paraphraser's)", yaxis_title="L_FT, unweighted",
               height=340, legend=LEGEND_BELOW, yaxis_rangemode="tozero")  # fmt: skip
    colours = model_colours(list(gaps))
    for name, g in gaps.items():
        fig.add_scatter(x=list(range(1, len(g["ft"]) + 1)), y=g["ft"], mode="lines+markers",
                        name=f"{name} (β = {g['weight']:g})",
                        line=dict(color=colours[name], width=3))  # fmt: skip
    fig.update_xaxes(**epoch_ticks(max((len(g["ft"]) for g in gaps.values()), default=1)))
    return fig


def show_ft(queue) -> None:
    """The section: the preset's stored (or shipped) run, its students and their factor gaps."""
    ui.prose(
        "**Factor transfer** (Kim, Park & Kwak 2018) does not hand the student the teacher's "
        "layer. A *paraphraser*, an autoencoder trained first on that layer alone, squeezes it "
        "through a middle half as wide; what it keeps there is the teacher's *factor*. The "
        "student then learns, through a *translator* of its own, to give the same factor, "
        "compared as directions: each factor scaled to length 1, then their L1 distance."
    )
    run = lab_ui.stored_students(queue, PRESET, "ft", COST, ("ep_ft", "run_ft"), PAPER_LINE)
    gaps = factor_gaps((run.result or {}) if run is not None else {})
    if gaps:
        ui.plot(gap_figure(gaps), key="ft_gaps")
        para = next((g for g in gaps.values() if g["rec"]), None)
        said = [f"{name} {g['ft'][-1]:.4f}" for name, g in gaps.items() if g["ft"]]
        rel = (f" ({', '.join(f'{v:.0%}' for v in para['relative'])} of the layer's own size)"
               if para and para["relative"] else "")  # fmt: skip
        st.caption(
            (f"The paraphraser's reconstruction error (mean absolute) over its epochs: "
             f"{', '.join(f'{v:.3f}' for v in para['rec'])}{rel}. " if para else "")
            + "L_FT after the last epoch: " + ", ".join(said) + ". An untrained paraphraser's "
            "factor is a fixed random map of the teacher's layer."
        )  # fmt: skip
    st.latex(  # in lines: whole, a phone shrinks it below reading size
        r"\begin{gathered}F_T = \mathrm{enc}(T),\quad F_S = \mathrm{tr}(S)\\"
        r"\mathcal L_{FT} = \frac{1}{BD}\sum_i \Big\lVert \frac{F_T^{(i)}}{\lVert F_T^{(i)}"
        r"\rVert_2} - \frac{F_S^{(i)}}{\lVert F_S^{(i)}\rVert_2}\Big\rVert_1\\"
        rf"\mathcal L = \mathcal L_{{CE}} + {FT_WEIGHT:g}\,\mathcal L_{{FT}}\end{{gathered}}"
    )
    st.caption(
        "The CRD benchmark's FT row ran another factor loss: each factor map's channels squared "
        "and averaged into one spatial map per example, an attention map of the factors. On a "
        "flat layer that map is one number per example, always 1 once normalised, so only the "
        "authors' loss runs here."
    )


CODE = (reconstruction_loss, ft_loss)
