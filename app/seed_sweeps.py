"""A sweep's seed study: the curve of test errors at every seed, their mean and spread, and
where each seed put its best value, so a dip or a bump of one run can be told from the recipe's.

:func:`sweep_seeds_figure` and :func:`sweep_seeds_table` are plain functions of
:class:`kdcore.reference.SweepSeeds`; :func:`show_sweep_seeds` draws them on a page.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.preset_views import hidden_units, legend_entry, sweep_figure
from app.ui import MISSING, plot
from kdcore.reference import SweepSeeds

SEED_LINE = "rgba(127, 127, 127, 0.45)"
BAND = "rgba(31, 119, 180, 0.15)"  # LINE_COLOUR, faint
YOURS = "#ff7f0e"  # the page's own value


def _label(parameter: str, value: float) -> str:
    return f"{parameter}={value:g}"


def sweep_seeds_figure(study: list[SweepSeeds], paper: dict | None = None) -> go.Figure:
    """The sweep figure of the mean over seeds (its best value, the mean hard-label twin and
    the paper's statements as on the shipped run's), with each seed's own curve behind it and a
    band of one standard deviation either side of the mean."""
    first, means = study[0], [s.mean() for s in study]
    rounded = [[round(m, 1) for m in mid] for mid in means]
    mean = {
        "parameter": first.parameter,
        "values": first.values,
        "errors": {s.student: r for s, r in zip(study, rounded, strict=True)},
        "baseline_errors": {
            s.student: round(statistics.fmean(s.baselines), 1) for s in study if s.baselines
        },
    }
    fig = sweep_figure(mean, paper, best="fewest mean errors")
    drawn = len(fig.data)
    for col, (s, mid) in enumerate(zip(study, means, strict=True), start=1):
        x, sd = s.values, s.sd()
        if sd is not None:
            hi = [m + d for m, d in zip(mid, sd, strict=True)]
            lo = [m - d for m, d in zip(mid, sd, strict=True)]
            band = go.Scatter(
                x=x + x[::-1],
                y=hi + lo[::-1],
                mode="lines",
                fill="toself",
                fillcolor=BAND,
                line={"width": 0},
                hoverinfo="skip",
                name="mean ± 1 sd over seeds",
                legendgroup="band",
                showlegend=col == 1,
            )
            fig.add_trace(band, row=1, col=col)
        for i, (seed, curve) in enumerate(zip(s.seeds, s.curves, strict=True)):
            line = go.Scatter(
                x=x,
                y=curve,
                mode="lines",
                line={"color": SEED_LINE, "width": 1},
                name="each seed",
                legendgroup="seeds",
                showlegend=col == 1 and i == 0,
                hovertemplate=f"seed {seed}<br>{s.parameter}=%{{x:g}}: %{{y}} errors"
                "<extra></extra>",
            )
            fig.add_trace(line, row=1, col=col)
    fig.data = fig.data[drawn:] + fig.data[:drawn]  # the seeds behind the mean, not over it
    return fig


def sweep_seeds_table(s: SweepSeeds) -> pd.DataFrame:
    """One student's test errors: a row per value swept (and on hard labels alone where the
    sweep trains that twin), a column per seed, then the mean, the standard deviation and at
    how many seeds each value beat the hard-label twin of its seed."""
    index = [_label(s.parameter, v) for v in s.values]
    cols = {f"seed {seed}": c for seed, c in zip(s.seeds, s.curves, strict=True)}
    table = pd.DataFrame(cols, index=index).astype(float)
    if s.baselines is not None:
        table.loc["hard labels only"] = [float(b) for b in s.baselines]
    seeds = table.copy()
    table["mean"] = seeds.mean(axis=1).round(1)
    if len(s.seeds) > 1:
        table["sd"] = seeds.std(axis=1).round(1)
    wins = s.wins()
    if wins is not None:
        n = len(s.seeds)
        table[f"beats hard labels (of {n})"] = [float(w) for w in wins] + [float("nan")]
    return table


def best_caption(s: SweepSeeds, paper: dict | None = None) -> str:
    """Where each seed put its fewest errors, where the mean does, and, for a student the paper
    speaks of (fewer than 300 units and a best band of temperatures), how many seeds agree."""
    best = s.best()
    each = ", ".join(
        f"{_label(s.parameter, b)} (seed {k})" for b, k in zip(best, s.seeds, strict=True)
    )
    mean = s.mean()
    shown = [round(m, 1) for m in mean]  # as the figure draws them: its diamond is the same T
    at = s.values[min(range(len(shown)), key=lambda j: (shown[j], j))]
    out = f"{s.student}: fewest errors at {each}; the mean is lowest at {_label(s.parameter, at)}."
    paper, units = paper or {}, hidden_units(s.student)
    if s.parameter != "T" or units is None:
        return out
    band, above = paper.get("best_T_range_30_units"), paper.get("similar_above_T")
    if band and units < 300:
        lo, hi = band
        k = sum(lo <= b <= hi for b in best)
        out += f" The paper's best band, T={lo:g}-{hi:g}, holds the best T at {k} of {len(best)}."
    sd = s.sd()
    high = [j for j, v in enumerate(s.values) if v >= above] if above else []
    if high and units >= 300 and sd is not None:  # "fairly similar": against the seeds' spread
        means = ", ".join(f"{mean[j]:.1f}" for j in high)
        width = max(mean[j] for j in high) - min(mean[j] for j in high)
        out += (
            f" From T={above:g} up the means are {means}, {width:.1f} apart; the standard "
            f"deviation over seeds at each is {min(sd[j] for j in high):.1f}-"
            f"{max(sd[j] for j in high):.1f}."
        )
    return out


def show_sweep_seeds(study: list[SweepSeeds], paper: dict | None, key: str) -> None:
    """The figure, then each student's table (a tab each where the sweep has several)."""
    plot(sweep_seeds_figure(study, paper), key=f"{key}-sweep-seeds")
    tabs = st.tabs([s.student for s in study]) if len(study) > 1 else [st.container()]
    for tab, s in zip(tabs, study, strict=True):
        with tab:
            table = sweep_seeds_table(s)
            style = table.style.format("{:.1f}")
            seeds = [c for c in table.columns if c.startswith("seed ") or c.startswith("beats")]
            style = style.format("{:.0f}", subset=seeds)
            wide = {"_index": st.column_config.Column(width="medium")}  # "hard labels only"
            st.dataframe(style, width="content", height="content", column_config=wide,
                         placeholder=MISSING)  # fmt: skip
            st.caption(best_caption(s, paper))


def shipped_sweep(preset: str) -> tuple[dict, list[SweepSeeds]]:
    """A shipped sweep's result and its seed study by student ({} and [] when either is not
    shipped or not readable)."""
    from app.reference_ui import references
    from kdcore.reference import load_seed_study, sweep_seeds

    ref = references()[0].get(preset)
    if ref is None:
        return {}, []
    return ref.result, sweep_seeds(ref, load_seed_study(ref))


def nearest(values: list[float], value: float, log: bool) -> float:
    """The value swept nearest ``value`` (on a log scale for a temperature)."""
    if log and value > 0:
        return min(values, key=lambda v: abs(math.log(v / value)))
    return min(values, key=lambda v: abs(v - value))


def show_sweep_at(preset: str, value: float, key: str) -> bool:
    """A shipped sweep's seed study with a page's own value marked on it, and the mean errors
    at the value swept nearest it. False (nothing drawn) when the study is not shipped."""
    result, study = shipped_sweep(preset)
    if not study:
        return False
    first, paper = study[0], result.get("paper", {})
    fig = sweep_seeds_figure(study, paper)
    # a line outside the values swept would stretch the axis past every point
    if min(first.values) <= value <= max(first.values):
        for col in range(1, len(study) + 1):
            fig.add_vline(x=value, line={"color": YOURS, "width": 2}, row=1, col=col)
        legend_entry(fig, f"yours: {first.parameter} = {value:g}", YOURS)
    plot(fig, key=key)
    st.caption(at_value(study, value, result.get("sweep", {}).get("fixed", {})))
    for s in study:
        st.caption(best_caption(s, paper))
    return True


def at_value(study: list[SweepSeeds], value: float, fixed: dict | None = None) -> str:
    """What the study says at the value swept nearest ``value``: each student's mean test
    errors over the seeds, with their standard deviation where there are several seeds, and
    the settings the sweep held fixed (``fixed``: its alpha, or its T)."""
    first = study[0]
    at = nearest(first.values, value, first.parameter == "T")
    j, n = first.values.index(at), len(first.seeds)
    lo, hi = min(first.values), max(first.values)
    name = f"{first.parameter} = {value:g}"
    if at == value:
        head = f"Your {name} is one the sweep trained"
    else:
        where = f", outside the {lo:g}-{hi:g} swept," if not lo <= value <= hi else ""
        head = f"Your {name}{where} is not one the sweep trained; nearest it is {at:g}"
    said = []
    for s in study:
        sd = s.sd()
        said.append(f"{s.student} {s.mean()[j]:.1f}" + (f" (sd {sd[j]:.1f})" if sd else ""))
    seeds = f"{n} seeds" if n > 1 else "one seed"
    held = ", ".join(f"{k} = {v:g}" for k, v in (fixed or {}).items())
    held = f" (at {held})" if held else ""
    return f"{head}{held}: mean test errors over {seeds}, " + ", ".join(said) + "."
