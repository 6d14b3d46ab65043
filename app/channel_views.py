"""The channels page's figures and sections: one image's channels through a ResNet teacher's last
stage (the maps, their ICKD matrix, the channels most alike and most apart), and the ickd-mnist
run's students (the teacher's matrix against the ICKD students' through their 1 × 1 maps, every
student's channel spectrum and effective rank per epoch).

The figures are plain functions of arrays and a run's records; only the ``show_*`` functions
talk to Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import lab_ui, ui
from app.figures import LEGEND_BELOW, decade_ticks, epoch_ticks, square_cells, subplots
from app.fsp_views import matrix_figure
from app.relation_figures import _fig, model_colours

PRESET = "ickd-mnist"
COST = (
    "One epoch trains a ResNet-20 teacher (cached afterwards, shared with fsp-mnist) and five "
    "ResNet-8 students: some 4 minutes on a quiet 2-core CPU."
)
PAPER_LINE = (
    "Official table (CIFAR-100, resnet56 → resnet20): hard labels 69.06%, KD 70.66%, NST 69.60%, "
    "ICKD 71.76%, ICKD with KD 71.69% (Liu et al. 2021, the official README; the first three "
    "as Tian et al. 2020, Table 1)."
)
TEACHER = "#1f2430"


def spectral_order(m: np.ndarray) -> np.ndarray:
    """An order of a C × C matrix's channels that puts channels that go together side by side:
    the Fiedler vector (second-smallest eigenvector of the graph Laplacian) of the symmetrised
    |matrix|, sorted. The same order for every matrix of one teacher keeps the picture steady."""
    s = (np.abs(m) + np.abs(m).T) / 2
    np.fill_diagonal(s, 0.0)
    lap = np.diag(s.sum(1)) - s
    _, vecs = np.linalg.eigh(lap)
    return np.argsort(vecs[:, 1], kind="stable") if len(m) > 1 else np.arange(len(m))


def cosines(maps: np.ndarray) -> np.ndarray:
    """How alike each two channel maps are, whatever their strength: the Gram's entry divided by
    both maps' lengths, (C, H, W) -> (C, C); NaN where a map is all zeros (a channel that does
    not fire on this image)."""
    f = maps.reshape(len(maps), -1).astype(np.float64)
    norm = np.linalg.norm(f, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (f @ f.T) / np.outer(norm, norm)


def alike_and_apart(cos: np.ndarray, ch: int) -> tuple[int | None, int | None]:
    """The other firing channel most like channel ``ch``, and the one least like it (None when
    ``ch`` or every other channel is silent)."""
    row = cos[ch].copy()
    row[ch] = np.nan
    if np.all(np.isnan(row)):
        return None, None
    return int(np.nanargmax(row)), int(np.nanargmin(row))


def mosaic_figure(maps: np.ndarray, order: np.ndarray, marked: dict[int, str]) -> go.Figure:
    """Every channel's map tiled 8 a row in ``order``, one colour scale, a gap between tiles;
    ``marked`` outlines channels in a colour each. Hover names the channel."""
    c, h, w = maps.shape
    cols = 8
    rows = -(-c // cols)
    z = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    who = np.full(z.shape, -1)
    for k, ch in enumerate(order):
        r, q = divmod(k, cols)
        z[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = maps[ch]
        who[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = ch
    fig = go.Figure(go.Heatmap(z=z, customdata=who, colorscale="Viridis", zmin=0,
                               hovertemplate="channel %{customdata}<br>%{z:.3f}<extra></extra>",
                               colorbar=dict(thickness=12)))  # fmt: skip
    place = {int(ch): k for k, ch in enumerate(order)}
    for ch, colour in marked.items():
        r, q = divmod(place[ch], cols)
        fig.add_shape(type="rect", x0=q * (w + 1) - 0.6, x1=q * (w + 1) + w - 0.4,
                      y0=r * (h + 1) - 0.6, y1=r * (h + 1) + h - 0.4,
                      line=dict(color=colour, width=3))  # fmt: skip
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    square_cells(fig)
    return _fig(fig, height=360, margin=dict(l=10, r=10, t=10, b=10))


def image_matrix_figure(m: np.ndarray, order: np.ndarray, ch: int) -> go.Figure:
    """One image's ICKD matrix in ``order``, the chosen channel's row outlined."""
    z = m[np.ix_(order, order)]
    # numbers on the axes would be taken as positions: the channels go in the hover text
    text = [[f"{int(i)}, column channel {int(j)}" for j in order] for i in order]
    fig = go.Figure(go.Heatmap(z=z, text=text, colorscale="Viridis", zmin=0,
                               hovertemplate="row channel %{text}<br>%{z:.3f}<extra></extra>",
                               colorbar=dict(thickness=12)))  # fmt: skip
    k = int(np.flatnonzero(order == ch)[0])
    fig.add_shape(type="rect", x0=-0.5, x1=len(order) - 0.5, y0=k - 0.5, y1=k + 0.5,
                  line=dict(color="#e03131", width=2))  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False,
                     title_text="channel (row)")  # fmt: skip
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, title_text="channel (column)")
    square_cells(fig)
    return _fig(fig, height=360, margin=dict(l=40, r=10, t=10, b=40))


def spectrum_figure(spectra: dict, epoch: int) -> go.Figure:
    """Each model's channel spectrum at ``epoch`` (the teacher's fixed), largest first, on a log
    axis: how much of the channels' joint energy each independent pattern carries."""
    fig = _fig(xaxis_title="pattern, by size", yaxis_title="share of the energy",
               yaxis_type="log", height=340, legend=LEGEND_BELOW)  # fmt: skip
    students = spectra["students"]
    colours = model_colours(list(students))
    values = list(spectra["teacher"]["spectrum"])
    for name, per_epoch in students.items():
        s = per_epoch[min(epoch, len(per_epoch)) - 1]["spectrum"]
        values += s
        fig.add_scatter(y=[max(v, 1e-9) for v in s], name=name, mode="lines",
                        line=dict(color=colours[name], width=2))  # fmt: skip
    fig.add_scatter(y=[max(v, 1e-9) for v in spectra["teacher"]["spectrum"]], name="teacher",
                    mode="lines", line=dict(color=TEACHER, width=3, dash="dash"))  # fmt: skip
    fig.update_yaxes(**decade_ticks([v for v in values if v > 1e-9]))
    return fig


def rank_figure(spectra: dict, epoch: int) -> go.Figure:
    """Each student's effective rank per epoch, the teacher's as a dashed line."""
    fig = _fig(xaxis_title="epoch", yaxis_title="effective rank", height=340,
               legend=LEGEND_BELOW)  # fmt: skip
    students = spectra["students"]
    colours = model_colours(list(students))
    for name, per_epoch in students.items():
        fig.add_scatter(x=list(range(1, len(per_epoch) + 1)), y=[e["rank"] for e in per_epoch],
                        name=name, mode="lines+markers",
                        line=dict(color=colours[name], width=3))  # fmt: skip
    fig.add_hline(y=spectra["teacher"]["rank"], line=dict(color=TEACHER, dash="dash"),
                  annotation_text="teacher", annotation_position="top left")  # fmt: skip
    fig.add_vline(x=epoch, line=dict(color="#868e96", dash="dot"))
    fig.update_xaxes(**epoch_ticks(max((len(v) for v in students.values()), default=1)))
    return fig


def pair_figure(maps: np.ndarray, chosen: list[tuple[int, str]]) -> go.Figure:
    """The chosen channels' maps side by side on one colour scale, titled."""
    fig = subplots(1, len(chosen), subplot_titles=[t for _, t in chosen], horizontal_spacing=0.05)
    hi = float(max(maps[c].max() for c, _ in chosen)) or 1.0
    for col, (c, _) in enumerate(chosen, start=1):
        heat = go.Heatmap(z=maps[c], zmin=0, zmax=hi, colorscale="Viridis",
                          showscale=col == len(chosen), colorbar=dict(thickness=12),
                          hovertemplate="%{z:.3f}<extra></extra>")  # fmt: skip
        fig.add_trace(heat, row=1, col=col)
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False)
    square_cells(fig)
    return _fig(fig, height=230, margin=dict(l=10, r=10, t=50, b=10))


def show_trained(run) -> None:
    """The stored run's ICKD students against the teacher entry by entry, and every student's
    spectrum and effective rank, at an epoch chosen in the URL."""
    result = run.result or {}
    spectra, mats = result.get("channel_spectrum"), result.get("channel_matrices") or {}
    if not spectra or not spectra.get("students"):
        ui.fallback(f"{lab_ui.run_name(run)} kept no channel figures; run it again.")
        return
    last = max(len(v) for v in spectra["students"].values())
    epoch = ui.url_int("Epoch", "ickd_ep", 1, last, last)
    names = list(mats.get("students") or {})
    if names:
        who = ui.url_choice("ICKD student", names, key="ickd_who", default=names[0])
        teacher = np.array(mats["teacher"])
        per_epoch = mats["students"][who]
        ep = min(epoch, len(per_epoch)) - 1
        student = np.array(per_epoch[ep])
        layer = mats.get("layer", "channel")
        ui.plot(matrix_figure(teacher, student, (layer, layer)), key="ickd_matrices")
        gaps = ", ".join(f"{g:.3g}" for g in mats["gap"][who])
        st.caption(
            f"{who} at epoch {ep + 1}, its channels through its own 1 × 1 map, against the "
            f"teacher's on {len(mats['indices'])} test images (each matrix their mean; row i is "
            "the teacher's channel i, and the map's output i for the student). ICKD loss to the "
            f"teacher after each epoch: {gaps}."
        )
    left, right = st.columns(2)
    with left:
        ui.plot(spectrum_figure(spectra, epoch), key="ickd_spectrum")
    with right:
        ui.plot(rank_figure(spectra, epoch), key="ickd_rank")
    ranks = {n: v[min(epoch, len(v)) - 1]["rank"] for n, v in spectra["students"].items()}
    said = ", ".join(f"{n} {r:.1f}" for n, r in ranks.items())
    t_rank = spectra["teacher"]["rank"]
    near = min(ranks, key=lambda n: abs(ranks[n] - t_rank))
    st.caption(
        f"Order-free: the eigenvalues of each model's own channel Gram (64 channels, no map "
        f"between models). Effective rank at epoch {epoch}: teacher {t_rank:.1f}; {said}. "
        f"Nearest the teacher's: {near}. ICKD asks the student's channels *through its map* for "
        "the teacher's matrix; its own channels need not share the teacher's spectrum."
    )
