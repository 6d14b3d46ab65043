"""Display of a preset's result dict, beside the paper's numbers.

:func:`show_result` renders the result of *any* preset (or a stored run of one): the table of our
test errors next to the paper's with the source, the quoted claims and the differences explained,
then whatever the result carries: a bias adjustment (omitted-3, only-7-8), a sweep (temperature,
alpha), per-model training curves, the config. It decides by the keys present, not by the preset's
name, so a new preset with a ``sweep`` gets its chart for free.

The figure and table builders are plain functions of the dict (no ``st.*``), so they are usable
and testable outside a page; only :func:`show_result` talks to Streamlit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.catalog import DRAWN_ON, page
from app.figures import LEGEND_BELOW, TEMPLATE, epoch_ticks
from app.ui import MISSING, PARAMS_COLUMN, page_link, plot
from kdcore.presets import PRESETS, digits_label

PAPER_COLOUR = "#7f7f7f"
BEST_COLOUR = "#d62728"
VAL_COLOUR = "#2ca02c"
LINE_COLOUR = "#1f77b4"


def results_table(result: dict) -> pd.DataFrame:
    """One row per model: our test errors and error %, the paper's where it gives them."""
    paper = result.get("paper", {})
    p_err = paper.get("test_errors", {})
    p_pct = paper.get("test_error_percent", {})
    rows = []
    for name, m in result.get("models", {}).items():
        rows.append(
            {
                "model": name,
                "test errors": m["test_errors"],
                "error %": round(100.0 * (1.0 - m["test_accuracy"]), 2),
                "paper errors": p_err.get(name),
                "paper error %": p_pct.get(name),
                "parameters": m.get("params"),
                # a model loaded from the cache took no training time in this run
                "seconds": None if m.get("cached") else m.get("seconds"),
                "cached": bool(m.get("cached", False)),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["paper errors"] = frame["paper errors"].astype("Int64")  # blanks stay blank
    # A paper column with no figure at all (the sweeps give none per model) is only noise.
    empty = [c for c in ("paper errors", "paper error %") if frame[c].isna().all()]
    return frame.drop(columns=empty)


# ----------------------------------------------------------------------------- bias adjustment


def _logits_label(classes: list[int]) -> str:
    """[3] -> "the 3 logit", [7, 8] -> "the 7 and 8 logits"."""
    return f"the {' and '.join(str(c) for c in classes)} logit{'s' if len(classes) > 1 else ''}"


def bias_table(adj: dict, paper_adj: dict | None) -> pd.DataFrame:
    """Before/after the bias shift: ours (chosen on test, and on held-out training images) and
    the paper's (chosen on test)."""
    label = digits_label(adj["classes"])
    keys = [
        ("bias added", "bias", "bias"),
        ("test errors before", "errors_before", None),
        (f"errors on {label} before", "errors_on_classes_before", None),
        ("error % before", "error_percent_before", None),
        ("test errors after", "errors_after", "errors_after"),
        (f"errors on {label} after", "errors_on_classes_after", "errors_on_classes_after"),
        ("error % after", "error_percent_after", "error_percent_after"),
    ]
    val = adj.get("validation")
    columns: dict[str, list] = {
        "": [row for row, _, _ in keys],
        "ours: best on test": [adj.get(key) for _, key, _ in keys],
    }
    if val:
        columns["ours: chosen on held-out"] = [
            val.get(vkey) if vkey else adj.get(key) for _, key, vkey in keys
        ]
    if paper_adj:
        columns["paper: best on test"] = [paper_adj.get(key) for _, key, _ in keys]
    # A column mixes counts and percentages: show them as text so nothing is rounded away.
    for name, values in columns.items():
        if name:
            columns[name] = ["" if x is None else f"{x:g}" for x in values]
    return pd.DataFrame(columns)


def legend_entry(fig: go.Figure, name: str, colour: str, dash: str = "solid") -> None:
    """A legend line for a shape (shapes have no legend entry of their own)."""
    fig.add_trace(
        go.Scatter(
            x=[None], y=[None], mode="lines", line={"color": colour, "dash": dash}, name=name
        )
    )


def bias_figure(adj: dict, paper_adj: dict | None = None) -> go.Figure:
    """Accuracy on the shifted classes (top) and overall (bottom) against the bias, with the
    best bias on the test set, the one chosen on held-out images, and the paper's marked.

    A negative sweep (lowering the 7 and 8 biases) is drawn against the reduction, as the paper
    states it."""
    sweep = adj["sweep"]
    sign = -1.0 if sweep["bias"] and min(sweep["bias"]) < 0 else 1.0
    x = [sign * b for b in sweep["bias"]]
    label = digits_label(sweep["classes"])
    xtitle = f"{'reduction of' if sign < 0 else 'bias added to'} {_logits_label(sweep['classes'])}"
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(f"accuracy on the test {label}", "accuracy on the whole test set"),
    )
    for row, key in ((1, "accuracy_on_classes"), (2, "accuracy")):
        y = [100.0 * a for a in sweep[key]]
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", name=key, showlegend=False, line={"width": 2}),
            row=row,
            col=1,
        )
        i = sweep["bias"].index(adj["bias"])
        fig.add_trace(
            go.Scatter(
                x=[x[i]],
                y=[y[i]],
                mode="markers",
                marker={"color": BEST_COLOUR, "size": 10, "symbol": "diamond"},
                name=f"best on test: {sign * adj['bias']:g}",
                showlegend=row == 1,
            ),
            row=row,
            col=1,
        )
    fig.add_vline(x=sign * adj["bias"], line={"color": BEST_COLOUR, "width": 1})
    marks = []
    if adj.get("validation"):
        marks.append((sign * adj["validation"]["bias"], VAL_COLOUR, "dash", "chosen on held-out"))
    if paper_adj and paper_adj.get("bias") is not None:
        marks.append((sign * paper_adj["bias"], PAPER_COLOUR, "dot", "paper"))
    for value, colour, dash, text in marks:
        fig.add_vline(x=value, line={"color": colour, "dash": dash, "width": 1})
        legend_entry(fig, f"{text}: {value:g}", colour, dash)
    fig.update_yaxes(title_text="accuracy %", row=1, col=1)
    fig.update_yaxes(title_text="accuracy %", row=2, col=1)
    fig.update_xaxes(title_text=xtitle, row=2, col=1)
    fig.update_layout(
        template=TEMPLATE,
        height=520,
        margin={"t": 40, "b": 40},
        legend=LEGEND_BELOW,
    )
    return fig


# ----------------------------------------------------------------------------- sweeps


def hidden_units(student: str) -> int | None:
    """Hidden units per layer of a student named like ``mlp-300`` (None for other names)."""
    found = re.fullmatch(r"mlp-(\d+)", student)
    return int(found.group(1)) if found else None


def spaced_labels(values: list[float], log: bool, most: int = 5) -> list[str]:
    """Labels for ticks at ``values``: a value is named when it lies at least 1/``most`` of the
    axis from the last one named, from the left, and left blank otherwise (its tick stays, and
    the hover names it). Every value tried, named, ran together in a phone's narrow panels (2,
    2.5, 3, 4 on a log axis)."""
    axis = [math.log10(v) if log and v > 0 else float(v) for v in values]
    gap = (max(axis) - min(axis)) / most if len(axis) > 1 else 0.0
    out, last = [], None
    for v, a in zip(values, axis, strict=True):
        named = last is None or a - last >= gap - 1e-9
        out.append(f"{v:g}" if named else "")
        last = a if named else last
    return out


def panel_title(title: str, most: int = 14) -> str:
    """A panel's title broken at the space nearest its middle when longer than ``most``
    characters: side by side, two panels share a phone's 330 px ("from the smoothed teacher"
    ran into its neighbour)."""
    if len(title) <= most or " " not in title:
        return title
    spaces = [i for i, c in enumerate(title) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - len(title) / 2))
    return f"{title[:cut]}<br>{title[cut + 1 :]}"


def sweep_figure(sweep: dict, paper: dict | None = None, best: str = "fewest errors") -> go.Figure:
    """Test errors against the swept parameter, one panel per student (their error scales
    differ), with each student's hard-label error as a dotted line where trained. For a
    temperature sweep the paper's two statements are drawn: the 2.5-4 band best for 30 units,
    and T=8, above which nets of 300 or more units did about equally well. ``best`` names the
    diamond at each student's lowest point."""
    students = list(sweep["errors"])
    param = sweep["parameter"]
    is_t = param == "T"
    paper = paper or {}
    titles = [panel_title(s) if len(students) > 1 else s for s in students]
    fig = make_subplots(rows=1, cols=max(len(students), 1), subplot_titles=titles)
    for col, student in enumerate(students, start=1):
        errs = sweep["errors"][student]
        xs = sweep["values"][: len(errs)]  # a cancelled sweep has fewer points than values
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=errs,
                mode="lines+markers",
                name=student,
                showlegend=False,
                line={"color": LINE_COLOUR},
            ),
            row=1,
            col=col,
        )
        if errs:
            i = min(range(len(errs)), key=lambda j: (errs[j], j))
            fig.add_trace(
                go.Scatter(
                    x=[xs[i]],
                    y=[errs[i]],
                    mode="markers",
                    marker={"color": BEST_COLOUR, "size": 11, "symbol": "diamond"},
                    name=f"{student}: {best} at {param}={xs[i]:g}",
                ),
                row=1,
                col=col,
            )
        base = sweep.get("baseline_errors", {}).get(student)
        if base is not None:
            fig.add_hline(y=base, line={"color": PAPER_COLOUR, "dash": "dot"}, row=1, col=col)
        fig.update_xaxes(
            title_text=param,
            type="log" if is_t else "linear",
            tickvals=sweep["values"],  # a tick at each value tried, not at log decades
            ticktext=spaced_labels(sweep["values"], is_t),
            row=1,
            col=col,
        )
    if sweep.get("baseline_errors"):
        legend_entry(fig, "same student, hard labels only", PAPER_COLOUR, "dot")
    # Each of the paper's two statements on the panels of the students it is about: the band
    # for 30 units, the line for 300 or more (units read from the name, "mlp-300").
    units = [hidden_units(s) for s in students]
    narrow = [c for c, u in enumerate(units, start=1) if u is not None and u < 300]
    wide = [c for c, u in enumerate(units, start=1) if u is not None and u >= 300]
    if is_t and "best_T_range_30_units" in paper and narrow:
        lo, hi = paper["best_T_range_30_units"]
        # Shapes take data units even on a log axis (annotations would not, so none are used).
        for col in narrow:
            fig.add_vrect(
                x0=lo, x1=hi, fillcolor=VAL_COLOUR, opacity=0.15, line_width=0, row=1, col=col
            )
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"color": VAL_COLOUR, "symbol": "square", "size": 12, "opacity": 0.4},
                name=f"paper: T={lo:g}-{hi:g} best for 30 units",
            )
        )
    if is_t and "similar_above_T" in paper and wide:
        t8 = paper["similar_above_T"]
        for col in wide:
            line = {"color": PAPER_COLOUR, "dash": "dash", "width": 1}
            fig.add_vline(x=t8, line=line, row=1, col=col)
        legend_entry(fig, f"paper: >=300 units alike for T above {t8:g}", PAPER_COLOUR, "dash")
    fig.update_yaxes(title_text="test errors", row=1, col=1)
    fig.update_layout(
        template=TEMPLATE,
        height=440,
        margin={"t": 50, "b": 40},
        legend=LEGEND_BELOW,
    )
    return fig


# ----------------------------------------------------------------------------- curves


def curves_figure(history: dict[str, list[dict]], paper: dict | None = None) -> go.Figure:
    """Test errors after each epoch, one line per model (log scale: teacher and students differ
    by a factor of several), with the paper's final errors for a model, where it gives them
    (``paper["test_errors"]``), as a dotted line in the model's colour."""
    fig = go.Figure()
    colours = TEMPLATE.layout.colorway
    paper_errors = (paper or {}).get("test_errors") or {}
    values: list[float] = []
    shown = [(name, records) for name, records in history.items() if records]
    for i, (name, records) in enumerate(shown):
        colour = colours[i % len(colours)]
        y = [r["test_errors"] for r in records]
        fig.add_trace(
            go.Scatter(
                x=[r["epoch"] for r in records],
                y=y,
                mode="lines+markers",
                name=name,
                line={"color": colour},
            )
        )
        values += [v for v in y if v and v > 0]
        if isinstance(paper_errors.get(name), int | float) and paper_errors[name] > 0:
            fig.add_hline(y=paper_errors[name], line={"color": colour, "dash": "dot", "width": 1})
            legend_entry(fig, f"paper: {name} {paper_errors[name]:g}", colour, "dot")
            values.append(paper_errors[name])
    # counts in full ("15,000", not the template's "1.5×10⁴")
    yaxis: dict = {"title": {"text": "test errors"}, "type": "log", "exponentformat": "none",
                   "separatethousands": True}  # fmt: skip
    if values:  # round ticks labelled in full, not a crowd of them near the top
        lo, hi = min(values) / 2, max(values) * 2  # plotly drops those past its range
        ticks = [m * 10.0**e for e in range(0, 6) for m in (1, 1.5, 2, 3, 5, 7)]
        yaxis.update(tickvals=[t for t in ticks if lo <= t <= hi])
    last = max((r["epoch"] for _, records in shown for r in records), default=1)
    fig.update_layout(
        template=TEMPLATE,
        xaxis={"title": {"text": "epoch"}, **epoch_ticks(last)},  # whole epochs, not 0.5
        yaxis=yaxis,
        height=380,
        margin={"t": 30, "b": 40},
    )
    return fig


# ----------------------------------------------------------------------------- the view


def _key(result: dict) -> str:
    """A stable widget-key prefix for one result, so a page may show several results (the lab
    lists runs) without Streamlit finding two identical charts."""
    ident = [result.get(k) for k in ("preset", "status", "seconds", "config", "device")]
    return (
        "pv-"
        + hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]
    )


def drawn_on(name: str) -> None:
    """A link to the page that draws the preset's run in full (:data:`app.catalog.DRAWN_ON`),
    with the figures the tables here leave out; nothing for a preset drawn only here."""
    link = DRAWN_ON.get(name)
    if link is not None:
        title = page(link.slug).title
        page_link(link.slug, f"Explained and drawn in full: {title}", dict(link.query))


def show_result(result: dict, key: str | None = None, profile: str | None = None) -> None:
    """Render one preset result (as returned by ``kdcore.presets.run_preset``).

    ``key`` prefixes the charts' keys; by default it is derived from the result, which is
    enough unless the same result is shown twice on one page. ``profile`` is the recipe the run
    started from when known (a shipped run's); otherwise it is read from the run's config.
    """
    key = key or _key(result)
    preset = PRESETS.get(result.get("preset", ""))
    paper = result.get("paper", {})
    status = result.get("status", "completed")
    if status != "completed":
        st.warning(
            f"This run ended **{status}**: {result.get('message', '')}. "
            "Shown below is what finished before it stopped."
        )
    if preset is not None:
        st.markdown(f"**{preset.title}**  \n{preset.summary}")
        drawn_on(preset.name)

    table = results_table(result)
    with_paper = any(c in table for c in ("paper errors", "paper error %"))
    st.markdown("#### Test errors" + (", ours beside the paper's" if with_paper else ""))
    if table.empty:
        st.info("No model finished, so there is nothing to compare yet.")
    else:
        # The grid shows a missing number as "None", which under "paper errors" reads as "no
        # errors": a column with gaps is shown as right-aligned text (67, not 67.0), the gaps a
        # dash like any other missing figure (a cached model's seconds).
        gaps = [
            c for c in ("paper errors", "paper error %") if c in table and table[c].isna().any()
        ]
        config = {c: st.column_config.TextColumn(c, alignment="right") for c in gaps}
        config["error %"] = st.column_config.NumberColumn("error %", format="%.2f")
        config["seconds"] = st.column_config.NumberColumn("seconds", format="%.1f")
        config["parameters"] = PARAMS_COLUMN
        for c in gaps:
            table[c] = [MISSING if pd.isna(v) else f"{v:g}" for v in table[c]]
        st.dataframe(
            table, hide_index=True, column_config=config, key=f"{key}-table", placeholder=MISSING
        )
    cap = f"Paper: {paper.get('source', 'not given')}. Ours on {result.get('device', '?')}"
    cached = [
        f"{n} (trained in {m['seconds']:.0f} s when it was first made)"
        for n, m in result.get("models", {}).items()
        if m.get("cached") and m.get("seconds")
    ]
    loaded = f" Loaded from the cache, not trained in this run: {', '.join(cached)}." * bool(cached)
    st.caption(f"{cap}, {result.get('seconds', 0):.0f} s in all.{loaded}")
    for claim in paper.get("claims", []):
        st.markdown(f"> {claim}  \n> — {paper.get('source', '')}")
    if preset is not None:
        profile = profile or preset.profile_of(result.get("config", {}))
        why = preset.differences_for(profile)
        st.markdown(f"**Why our numbers differ.** {why}")

    adj = result.get("bias_adjustment")
    if adj:
        st.markdown(f"#### Shifting the bias of {_logits_label(adj['classes'])}")
        plot(bias_figure(adj, paper.get("bias_adjustment")), key=f"{key}-bias")
        st.dataframe(
            bias_table(adj, paper.get("bias_adjustment")),
            hide_index=True,
            key=f"{key}-biastable",
            placeholder=MISSING,
        )
        held = adj.get("validation", {}).get("n")
        held = f"{held:,} " if held else ""
        st.caption(
            "The paper, like our first column, picks the bias that does best on the test set "
            f"itself, which flatters the result. The held-out column picks it on {held}training "
            "images the student never saw, then reports the test errors at that bias."
        )
    ts = result.get("transfer_set")
    if ts:
        counts = ", ".join(f"{c}: {n:,}" for c, n in enumerate(ts["class_counts"]))
        st.caption(f"Transfer set: {ts['size']:,} images (per digit {counts}).")

    sweep = result.get("sweep")
    if sweep:
        fixed = ", ".join(f"{k}={v:g}" for k, v in sweep.get("fixed", {}).items())
        st.markdown(f"#### Test errors against {sweep['parameter']} ({fixed})")
        plot(sweep_figure(sweep, paper), key=f"{key}-sweep")

    history = {k: v for k, v in result.get("history", {}).items() if v}
    if history:
        with st.expander("Training curves per model", expanded=len(history) <= 4):
            plot(curves_figure(history, paper), key=f"{key}-curves")
    with st.expander("Configuration"):
        st.json(result.get("config", {}))
