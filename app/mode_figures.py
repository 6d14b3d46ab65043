"""Plotly figures for the training-modes page, from stored run results (plain dicts and lists),
and the rows of the papers' reference tables that the presets quote.

No Streamlit and no tensor maths: the page reads a preset's result (or a run's live history)
and passes it in.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures import COLORS, LEGEND_BELOW, TEMPLATE, decade_ticks, epoch_ticks, subplots
from app.preset_views import legend_entry

PALETTE = ("#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285")


def _fig(fig: go.Figure | None = None, **layout) -> go.Figure:
    fig = fig or go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def paper_reference(paper: dict) -> tuple[str, list[dict]]:
    """The numbers a mode preset quotes from its paper, as a caption and the rows of a table.

    ``paper["table"]`` names the entry and ``paper["setting"]`` says what it holds. A list of
    rows is returned as it is, under a caption; a flat dict (name -> percent) goes into the
    caption itself, with no rows. ("", []) when the preset quotes no table."""
    table = paper.get(paper.get("table") or "")
    if not table:
        return "", []
    # The caption is Markdown: the paper's own names keep their asterisks ("Ens*2 and Ens*3"
    # set "2 and Ens" in italics)
    setting = paper.get("setting", "").replace("*", r"\*")
    if isinstance(table, dict):
        values = ", ".join(f"{k} {v}%" for k, v in table.items()).replace("*", r"\*")
        return f"Paper ({setting}): {values}.", []
    return f"Paper: {setting}.", [dict(row) for row in table]


def split_live_history(history: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """A run's history keyed by model. Peers trained in one step reach the live store under the
    step's name, each record naming its model (``record["model"]``); split them apart."""
    out: dict[str, list[dict]] = {}
    for key, records in history.items():
        for r in records:
            out.setdefault(r.get("model") or key, []).append(r)
    return out


def mutual_curves(history: dict[str, list[dict]], peers: list[str]) -> go.Figure:
    """Test accuracy per epoch: each peer (solid) and the same net trained alone (dashed), and
    on the right the peers' agreement on the test set."""
    fig = subplots(
        1,
        2,
        # two lines: the narrow right panel's title ran past a phone's edge in one
        subplot_titles=("test accuracy %", "peers agree on<br>(% of test)"),
        column_widths=[0.62, 0.38],
    )
    for i, peer in enumerate(peers):
        colour = PALETTE[i % len(PALETTE)]
        for name, dash, label in (
            (peer, "solid", f"{peer}, mutual"),
            (f"alone_{i + 1}", "dash", f"{peer}'s net alone"),
        ):
            rec = history.get(name, [])
            if rec:
                fig.add_scatter(
                    x=[r["epoch"] for r in rec],
                    y=[100 * r["test_accuracy"] for r in rec],
                    mode="lines+markers",
                    name=label,
                    line=dict(color=colour, dash=dash),
                    row=1,
                    col=1,
                )
    first = history.get(peers[0], []) if peers else []
    agree = [(r["epoch"], r.get("extra", {}).get("agreement")) for r in first]
    agree = [(e, a) for e, a in agree if a is not None]
    if agree:
        fig.add_scatter(
            x=[e for e, _ in agree],
            y=[100 * a for _, a in agree],
            mode="lines+markers",
            name="agreement",
            line=dict(color=COLORS["uniform"]),
            row=1,
            col=2,
        )
    last = max((r["epoch"] for rec in history.values() for r in rec), default=0)
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last))
    # legends under the plot in the figure's own frame (LEGEND_BELOW): one at a fraction of the
    # plot's height under it lay over the axis titles and tick labels, on a phone and wider
    return _fig(fig, height=400, legend=LEGEND_BELOW)


def generations_figure(
    generations: list[dict], ensemble: dict | None, alone: dict | None
) -> go.Figure:
    """Each generation's test accuracy, the generations' ensemble and the net trained alone for
    the same total epochs, as bars."""
    names = [g["name"].replace("generation_", "gen ") for g in generations]
    acc = [100 * g["test_accuracy"] for g in generations]
    colours = [COLORS["teacher"]] * len(names)
    if ensemble:
        names.append("ensemble")
        acc.append(100 * ensemble["test_accuracy"])
        colours.append(COLORS["student"])
    if alone:
        names.append(f"alone, {alone.get('epochs', '?')} epochs")
        acc.append(100 * alone["test_accuracy"])
        colours.append(COLORS["uniform"])
    fig = _fig(height=320, yaxis_title="test accuracy %", showlegend=False)
    fig.add_bar(
        x=names, y=acc, marker_color=colours, text=[f"{a:.2f}" for a in acc], textposition="outside"
    )
    lo = min(acc) if acc else 0
    fig.update_yaxes(range=[max(0, lo - 2), 100.5])
    return fig


def soft_targets_figure(generations: list[dict], image: int, label: int, T: float) -> go.Figure:
    """One test image's softened distribution (at T) from every generation, grouped by digit."""
    fig = _fig(
        height=320,
        barmode="group",
        xaxis_title="digit",
        yaxis_title=f"probability at T = {T:g}",
        # two lines: in one it ran off a narrow phone's chart (a 360-pixel screen)
        title=f"what each generation would teach<br>for this {label}",
        margin=dict(t=75),  # the template's 50 put the second line on the top tick label
        legend=LEGEND_BELOW,  # above the plot (the template's place) it covered the title
    )
    for i, g in enumerate(generations):
        fig.add_bar(
            x=list(range(len(g["soft_targets"][image]))),
            y=g["soft_targets"][image],
            name=g["name"].replace("generation_", "gen "),
            marker_color=PALETTE[i % len(PALETTE)],
        )
    fig.update_xaxes(dtick=1)
    return fig


def comparison_figure(comparison: dict[str, dict]) -> go.Figure:
    """Accuracy (bars) and time per prediction (markers, right axis) of the teachers, their
    ensemble and the students."""
    names = list(comparison)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(
        x=names,
        y=[100 * comparison[n]["test_accuracy"] for n in names],
        name="test accuracy %",
        marker_color=COLORS["teacher"],
    )
    fig.add_scatter(
        x=names,
        y=[comparison[n]["us_per_prediction"] for n in names],
        mode="markers",
        marker=dict(size=12, color=COLORS["student"]),
        name="µs per prediction",
        secondary_y=True,
    )
    acc = [100 * comparison[n]["test_accuracy"] for n in names]
    fig.update_yaxes(
        title_text="test accuracy %", range=[max(0, min(acc) - 3), 100.5], secondary_y=False
    )
    # its own round ticks from 0: overlaid, Plotly lines them up with the accuracy axis's grid
    # (0.11, 1.47, 2.82, ...) and the grid would be drawn twice
    fig.update_yaxes(title_text="µs per prediction", rangemode="tozero", tickmode="auto",
                     showgrid=False, secondary_y=True)  # fmt: skip
    return _fig(fig, height=380, legend=LEGEND_BELOW)


def agreement_figure(models: list[str], matrix: list[list[float]]) -> go.Figure:
    text = [[f"{100 * v:.1f}%" for v in row] for row in matrix]
    fig = _fig(height=360, margin=dict(l=120, r=20, t=30, b=100))
    fig.add_heatmap(
        z=matrix,
        x=models,
        y=models,
        text=text,
        texttemplate="%{text}",
        colorscale="Blues",
        zmax=1.0,
        showscale=False,
        hovertemplate="%{y} and %{x}: %{text}<extra></extra>",
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def capacity_figure(capacity: list[dict], chain: dict | None, hard: float | None) -> go.Figure:
    """The tiny student's accuracy against its teacher's size (log scale), the teachers' own
    accuracy, the chain through the assistant, and the student on hard labels."""
    x = [c["teacher_params"] for c in capacity]
    fig = _fig(
        height=400,
        xaxis_title="teacher parameters (log scale)",
        yaxis_title="test accuracy %",
        legend=LEGEND_BELOW,
    )
    # ticks at the teachers' sizes: the automatic ones of a log axis over one decade or two (a
    # digit per step) ran into each other on a phone
    fig.update_xaxes(type="log", tickvals=x, tickformat=".3~s")
    fig.add_scatter(
        x=x,
        y=[100 * c["student_accuracy"] for c in capacity],
        mode="lines+markers",
        name="student, taught directly",
        line=dict(color=COLORS["student"]),
        text=[c["teacher"] for c in capacity],
    )
    fig.add_scatter(
        x=x,
        y=[100 * c["teacher_accuracy"] for c in capacity],
        mode="lines+markers",
        name="the teacher itself",
        line=dict(color=COLORS["teacher"], dash="dot"),
    )
    if chain:
        fig.add_scatter(
            x=[x[-1]],
            y=[100 * chain["student_accuracy"]],
            mode="markers",
            marker=dict(size=14, symbol="star", color="#2b8a3e"),
            name=f"student via a {chain['assistant']} assistant",
        )
    if hard is not None:
        fig.add_hline(
            y=100 * hard,
            line=dict(color=COLORS["uniform"], dash="dash"),
            annotation_text="student on hard labels",
        )
    return fig


def accuracy_bars(models: dict[str, dict], names: list[str]) -> go.Figure:
    names = [n for n in names if n in models]
    acc = [100 * models[n]["test_accuracy"] for n in names]
    fig = _fig(height=300, yaxis_title="test accuracy %", showlegend=False)
    fig.add_bar(
        x=names,
        y=acc,
        text=[f"{a:.2f}" for a in acc],
        textposition="outside",
        marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(names))],
    )
    fig.update_yaxes(range=[max(0, min(acc, default=0) - 3), 100.5])
    return fig


def exits_figure(exits: dict[str, list[float]]) -> go.Figure:
    """Each exit's test accuracy per epoch (the shallow ones and the deepest)."""
    fig = _fig(height=320, xaxis_title="epoch", yaxis_title="test accuracy %")
    for i, (name, acc) in enumerate(exits.items()):
        fig.add_scatter(
            x=list(range(1, len(acc) + 1)),
            y=[100 * a for a in acc],
            mode="lines+markers",
            name=f"exit after {name}" if name != "deepest" else "deepest exit",
            line=dict(color=PALETTE[i % len(PALETTE)]),
        )
    fig.update_xaxes(**epoch_ticks(max((len(a) for a in exits.values()), default=0)))
    return fig


ONLINE_SETTINGS = {"alone": "alone", "dml": "mutual learning", "l1": "+ L1 on features",
                   "afd": "+ AFD (adversarial)"}  # fmt: skip


def online_errors_figure(
    models: dict[str, dict], peers: int, settings: dict[str, str] = ONLINE_SETTINGS
) -> go.Figure:
    """Test errors of each network (a group of bars) in each of ``settings`` (the models'
    name prefix -> legend label): ``<setting>_<i>`` models, by default trained alone, with
    mutual learning, with the L1 pull between embeddings and with AFD's discriminators."""
    fig = _fig(height=320, yaxis_title="test errors", barmode="group", legend=LEGEND_BELOW)
    groups = [f"network {i}" for i in range(1, peers + 1)]
    for j, (key, label) in enumerate(settings.items()):
        errs = [models.get(f"{key}_{i}", {}).get("test_errors") for i in range(1, peers + 1)]
        fig.add_bar(x=groups, y=errs, name=label, text=errs, textposition="outside",
                    marker_color=PALETTE[j % len(PALETTE)])  # fmt: skip
    top = max((m.get("test_errors", 0) for m in models.values()), default=0)
    fig.update_yaxes(range=[0, 1.15 * top if top else 1])
    return fig


def discriminator_figure(history: list[dict], networks: list[str]) -> go.Figure:
    """Each discriminator's mean score per epoch on the test set: of its peer's features
    (solid, its target 1) and its own network's (dashed, target 0). Apart, it tells the two
    networks' features apart; together, the network has learnt its peer's distribution."""
    fig = _fig(height=320, xaxis_title="epoch", yaxis_title="mean score", legend=LEGEND_BELOW)
    for i, net in enumerate(networks):
        colour = PALETTE[i % len(PALETTE)]
        for side, dash, label in (("peer", "solid", "its peer's"), ("own", "dash", "its own")):
            points = [(r["epoch"], r.get("extra", {}).get(f"{net}_{side}")) for r in history]
            points = [(e, v) for e, v in points if v is not None]
            fig.add_scatter(x=[e for e, _ in points], y=[v for _, v in points],
                            mode="lines+markers", name=f"D of {net}: {label} features",
                            line=dict(color=colour, dash=dash))  # fmt: skip
    fig.add_hline(y=0.5, line=dict(color="#adb5bd", dash="dot"))
    fig.update_xaxes(**epoch_ticks(max((r["epoch"] for r in history), default=0)))
    return fig


CLASS_WISE_PANELS = (("intra_class_kl", "two images of a class<br>seen apart (KL, nats)"),
                     ("ece", "calibration error<br>(ECE)"),
                     ("confidence", "mean confidence"))  # fmt: skip


def class_wise_figure(history: dict[str, list[dict]], names: dict[str, str]) -> go.Figure:
    """Per epoch on the test set, for each model (``names``: model -> legend label): how
    differently it sees two test images of one class, its calibration error and its mean
    confidence, from each record's ``extra``."""
    fig = subplots(1, len(CLASS_WISE_PANELS), subplot_titles=[t for _, t in CLASS_WISE_PANELS])
    for i, (model, label) in enumerate(names.items()):
        rec = history.get(model, [])
        for col, (key, _) in enumerate(CLASS_WISE_PANELS, start=1):
            points = [(r["epoch"], r.get("extra", {}).get(key)) for r in rec]
            points = [(e, v) for e, v in points if v is not None]
            fig.add_scatter(x=[e for e, _ in points], y=[v for _, v in points],
                            mode="lines+markers", name=label, legendgroup=model,
                            showlegend=col == 1, line=dict(color=PALETTE[i % len(PALETTE)]),
                            row=1, col=col)  # fmt: skip
    last = max((r["epoch"] for rec in history.values() for r in rec), default=0)
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last))
    return _fig(fig, height=360, legend=LEGEND_BELOW)


CONTRASTIVE_SETTINGS = {"alone": "alone", "dml": "mutual learning (predictions)",
                        "mcl": "MCL (relations)"}  # fmt: skip


def relation_gap_figure(history: dict[str, list[dict]], alone_gap: float | None) -> go.Figure:
    """Per epoch, how differently the two networks of a pair relate the same test images (the
    mean |difference| of their cosine-similarity matrices), from each setting's first network's
    records (``history``: a key of :data:`CONTRASTIVE_SETTINGS` -> records), in the colours of
    :func:`online_errors_figure`'s bars; the pair trained alone as a dashed line."""
    fig = _fig(height=320, xaxis_title="epoch", yaxis_title="relation gap", legend=LEGEND_BELOW)
    colour = {k: PALETTE[j % len(PALETTE)] for j, k in enumerate(CONTRASTIVE_SETTINGS)}
    for key, rec in history.items():
        points = [(r["epoch"], r.get("extra", {}).get("relation_gap")) for r in rec]
        points = [(e, v) for e, v in points if v is not None]
        fig.add_scatter(x=[e for e, _ in points], y=[v for _, v in points], mode="lines+markers",
                        name=CONTRASTIVE_SETTINGS[key], line=dict(color=colour[key]))  # fmt: skip
    if alone_gap is not None:
        # named in the legend: a label on the line lay under the first epochs' points
        fig.add_hline(y=alone_gap, line=dict(color=colour["alone"], dash="dash"))
        legend_entry(fig, "alone, after its last epoch", colour["alone"], "dash")
    last = max((r["epoch"] for rec in history.values() for r in rec), default=0)
    fig.update_xaxes(**epoch_ticks(last))
    fig.update_yaxes(rangemode="tozero")
    return fig


# the baseline grey, then the students; the teacher keeps the app's blue (dashed)
PROFILE_COLOURS = (COLORS["uniform"], COLORS["student"], "#2b8a3e", "#c2255c", "#5f3dc4")


def rank_profile_figure(
    history: dict[str, list[dict]], names: dict[str, str], teacher: list[float] | None,
    zipf: list[float],
) -> go.Figure:  # fmt: skip
    """Left: each model's distribution over the wrong digits by rank after its last epoch (each
    record's ``extra["rank_profile"]``; ``names``: model -> legend label), the teacher's and
    USKD's Zipf labels (the label ranked first) dashed, on a log scale. Right: the top wrong
    digit's share per epoch."""
    # two lines each: side by side on a phone, one line each ran into the other
    fig = subplots(1, 2, subplot_titles=("by rank,<br>at the end", "top wrong digit,<br>per epoch"),
                   column_widths=[0.55, 0.45])  # fmt: skip
    ranks = list(range(1, len(zipf) + 1))
    for i, (model, label) in enumerate(names.items()):
        rec = [r for r in history.get(model, []) if "rank_profile" in r.get("extra", {})]
        if not rec:
            continue
        line = dict(color=PROFILE_COLOURS[i % len(PROFILE_COLOURS)])
        fig.add_scatter(x=ranks, y=rec[-1]["extra"]["rank_profile"], mode="lines+markers",
                        name=label, legendgroup=model, line=line, row=1, col=1)  # fmt: skip
        fig.add_scatter(x=[r["epoch"] for r in rec], y=[r["extra"]["rank_profile"][0] for r in rec],
                        mode="lines+markers", name=label, legendgroup=model, showlegend=False,
                        line=line, row=1, col=2)  # fmt: skip
    for label, values, colour in (("teacher", teacher, COLORS["teacher"]),
                                  ("Zipf labels", zipf, "#212529")):  # fmt: skip
        if values:
            fig.add_scatter(x=ranks, y=values, mode="lines", name=label,
                            line=dict(color=colour, dash="dash"), row=1, col=1)  # fmt: skip
    fig.update_xaxes(title_text="rank", dtick=1, row=1, col=1)
    shares = [v for rec in history.values() for r in rec
              for v in r.get("extra", {}).get("rank_profile", [])] + list(zipf)  # fmt: skip
    fig.update_yaxes(title_text="share", type="log", row=1, col=1, **decade_ticks(shares))
    last = max((r["epoch"] for rec in history.values() for r in rec), default=0)
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last), row=1, col=2)
    return _fig(fig, height=380, legend=LEGEND_BELOW)
