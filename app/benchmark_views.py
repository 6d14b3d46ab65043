"""The reproductions page's benchmark: the CRD benchmark's resnet32x4 → resnet8x4 column on
CIFAR-100 (Tian et al. 2020, Table 1; DKD's and the z-score's figures for the same pair from
their own papers), beside every method this app runs on its own shared pair, the relation
presets' 300-300 MLP teacher and 30-30 student on MNIST, at the same five seeds.

:func:`benchmark`, :func:`rank_correlation` and :func:`benchmark_figure` are plain functions of
the shipped files; only :func:`show_benchmark` talks to Streamlit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import ui
from app.figures import COLORS
from app.relation_figures import _fig
from app.reproduction_views import home_url
from kdcore.methods import get_method
from kdcore.presets import PRESETS
from kdcore.presets_relation import SETTING
from kdcore.reference import Reference, load_seed_study


@dataclass(frozen=True)
class Entry:
    """One method of the benchmark: its CIFAR-100 top-1 in the paper's table, and its test errors
    here at each seed beside the hard-label student's at the same seed."""

    model: str  # the student's name in the runs
    method: str  # its method, as the run recorded it (a key of the registry)
    preset: str  # the first preset whose seed study trains it
    paper: float  # top-1 %, resnet32x4 -> resnet8x4 on CIFAR-100
    errors: tuple[float, ...]  # test errors here, one per seed
    hard: tuple[float, ...]  # the hard-label student's at the same seeds
    # the same method in the same preset with another recipe of this app's (no paper figure):
    # (student, its errors saved against hard labels, averaged over the seeds)
    variants: tuple[tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        return get_method(self.method).short

    @property
    def saved(self) -> float:
        """Test errors saved against hard labels, averaged over the seeds (positive: better)."""
        return statistics.mean(self.hard) - statistics.mean(self.errors)

    @property
    def wins(self) -> int:
        return sum(e < h for e, h in zip(self.errors, self.hard, strict=True))


def benchmark(refs: dict[str, Reference]) -> tuple[list[Entry], float]:
    """Every student of a preset quoting the benchmark's setting that the paper's table names,
    once each (KD is in all of them, trained again and identical), beside the run's baseline
    (its hard-label student, as the run's records name their roles), with the table's figure
    for that baseline; ([], nan) when no such preset ships a seed study."""
    entries: dict[str, Entry] = {}
    hard_paper = float("nan")
    for name, preset in PRESETS.items():
        table = preset.paper.get("cifar100_top1", {})
        rows = load_seed_study(refs[name]) if name in refs else []
        if preset.paper.get("setting") != SETTING or not rows:
            continue
        models = refs[name].result.get("models", {})
        base = next((m for m, rec in models.items() if rec.get("role") == "baseline"), None)
        if base not in table:
            continue
        hard_paper = table[base]

        for model, top1 in table.items():
            rec = models.get(model, {})
            new = rec.get("role") == "student" and model not in entries
            if new and all(model in r["errors"] and base in r["errors"] for r in rows):
                others = tuple(
                    (m, _saved(rows, base, m)) for m, o in models.items()
                    if o.get("method") == rec["method"] and m not in table
                    and all(m in r["errors"] for r in rows)
                )  # fmt: skip
                entries[model] = Entry(
                    model,
                    rec["method"],
                    name,
                    float(top1),
                    tuple(float(r["errors"][model]) for r in rows),
                    tuple(float(r["errors"][base]) for r in rows),
                    others,
                )
    return sorted(entries.values(), key=lambda e: -e.paper), hard_paper


def _saved(rows: list[dict], base: str, model: str) -> float:
    """Test errors ``model`` saved against ``base`` at the same seed, averaged over the seeds."""
    return statistics.mean(r["errors"][base] - r["errors"][model] for r in rows)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the two lists' ranks (nan under three items)."""
    if len(a) < 3:
        return float("nan")
    return float(np.corrcoef(_ranks(np.asarray(a)), _ranks(np.asarray(b)))[0, 1])


def floor_of(values: list[float]) -> float | None:
    """Where the chart's y axis stops when one value lies far below all the others (further
    below the next than the others spread): a little under the next, or under zero, whichever
    is lower (zero stays on the chart); None when no value lies that far."""
    v = sorted(values)
    if len(v) < 3 or v[0] >= 0 or v[1] - v[0] <= v[-1] - v[1]:
        return None
    low = min(v[1], 0.0)
    return low - 0.15 * (v[-1] - low)


def benchmark_figure(entries: list[Entry], hard_paper: float) -> go.Figure:
    """One point per method: how far the paper's table put it above hard labels (x, top-1
    points) against how many test errors it saved here, on average over the seeds (y); the
    axes through zero, so the top-right quarter is where both say it helps. Each method's other
    recipes here hollow, from its point. A value far below the rest (:func:`floor_of`) is drawn
    on the axis's floor as a downward triangle, its figure in its label and its hover."""
    # short titles, the labels of the rightmost points to their left: a phone's 390 px cut both
    fig = _fig(xaxis_title="paper: top-1 points above hard labels",
               yaxis_title="here: MNIST errors saved", height=420,
               showlegend=False)  # fmt: skip
    x = [e.paper - hard_paper for e in entries]
    right = min(x) + 0.75 * (max(x) - min(x))
    floor = floor_of([e.saved for e in entries] + [g for e in entries for _, g in e.variants])

    def shown(y: float) -> float:
        return y if floor is None else max(y, floor)

    fig.add_hline(y=0, line=dict(color=COLORS["muted"], width=1))
    fig.add_vline(x=0, line=dict(color=COLORS["muted"], width=1))
    # each method's other recipes here, hollow, joined to its benchmark recipe by a dotted line
    for e, xe in zip(entries, x, strict=True):
        for model, gain in e.variants:
            fig.add_scatter(x=[xe, xe], y=[shown(e.saved), shown(gain)], mode="lines+markers",
                            line=dict(color=COLORS["muted"], dash="dot", width=1),
                            marker=dict(size=[0, 9], symbol="circle-open",
                                        color=COLORS["uniform"]),
                            customdata=[e.saved, gain],
                            hovertemplate=f"{model}: %{{customdata:+.1f}} errors saved here, "
                            "another recipe<extra></extra>")  # fmt: skip
    cut = [floor is not None and e.saved < floor for e in entries]
    hover = ("%{text}: %{x:+.2f} points in the paper, %{customdata:+.1f} errors saved here"
             "<extra></extra>")  # fmt: skip
    fig.add_scatter(
        x=x,
        y=[shown(e.saved) for e in entries],
        customdata=[e.saved for e in entries],
        text=[
            f"{e.label} ({e.saved:+.0f}, below)" if c else e.label
            for e, c in zip(entries, cut, strict=True)
        ],
        mode="markers+text",
        textposition=["top left" if v > right else "top center" for v in x],
        marker=dict(
            size=10,
            color=[COLORS["teacher"] if e.saved > 0 else COLORS["student"] for e in entries],
            symbol=["triangle-down" if c else "circle" for c in cut],
        ),
        hovertemplate=hover,
    )
    return fig


def benchmark_rows(entries: list[Entry], hard_paper: float) -> list[dict]:
    """The table under the chart, a row per method, best in the paper first."""
    n = len(entries[0].errors) if entries else 0
    return [
        {
            "method": e.label,
            "paper top-1 %": f"{e.paper:.2f} ({e.paper - hard_paper:+.2f})",
            f"errors here, {n} seeds": f"{statistics.mean(e.errors):.1f} "
            f"({statistics.stdev(e.errors):.1f})",
            "saved": f"{e.saved:+.1f}",
            "ahead of hard labels": f"{e.wins} of {n}",
            "result": f"{home_url(e.preset)}#{e.preset}",
        }
        for e in entries
    ]


def show_benchmark(refs: dict[str, Reference]) -> None:
    """The section: the chart, the table and the ranking's agreement, in numbers."""
    entries, hard_paper = benchmark(refs)
    if len(entries) < 2:
        return
    st.header("One benchmark, one pair")
    hard = entries[0].hard
    ui.prose(
        "The CRD benchmark (Tian et al. 2020, Table 1) distils a resnet32x4 into a resnet8x4 on "
        "CIFAR-100 by one method after another. Every method here that the table names runs "
        "on one pair too, the same 300-300 teacher and 30-30 student on MNIST at the same "
        "seeds: does the table's ordering survive a change of data, networks and length?"
    )
    ui.plot(benchmark_figure(entries, hard_paper), key="benchmark")
    st.dataframe(
        benchmark_rows(entries, hard_paper),
        hide_index=True,
        column_config={"result": st.column_config.LinkColumn(
            "result", display_text=r"#(.*)$", help="Opens the page that draws its run")},
        key="benchmark_table",
    )  # fmt: skip
    both = [e for e in entries if (e.paper > hard_paper) == (e.saved > 0)]
    rho = rank_correlation([e.paper for e in entries], [e.saved for e in entries])
    moves = sorted(((abs(g - e.saved), e, m, g) for e in entries for m, g in e.variants),
                   key=lambda t: -t[0])  # fmt: skip
    st.caption(
        f"Hard labels: {hard_paper:.2f}% in the paper, {statistics.mean(hard):.1f} test errors "
        f"here over {len(hard)} seeds (blue: fewer errors than that here; orange: more; a "
        f"triangle: far below the rest, drawn on the axis's floor with its figure). Of "
        f"the {len(entries)} methods, {len(both)} land on the same side of hard labels in "
        f"both; the rank correlation (Spearman) of the paper's "
        f"ordering and ours is {rho:.2f}. DKD's and the z-score's figures are their own papers' "
        "for the same pair (Zhao et al. 2022, Table 6; Sun et al. 2024, the official code's "
        "README). Three of the table's methods cannot run on two MLPs: AT and NST compare "
        "spatial maps, and FSP needs the teacher's channel counts at every layer it pairs (the "
        "benchmark leaves it out of its table of different architectures); the features page "
        "runs AT on two CNNs and FSP on two ResNets of the same widths."
        # a preset that trained the table's recipe as another student than student_<method>
        + "".join(f" {e.label}'s point is {e.model}, the student trained as the table's own run "
                  "was (its preset says why)." for e in entries
                  if e.model != f"student_{e.method}")
    )  # fmt: skip
    if moves:
        _, e, m, g = moves[0]
        st.caption(
            f"Hollow: the same method here with another recipe of this app's ({len(moves)} "
            f"students, no paper figure). A recipe moves a method further than the benchmark's "
            f"gaps between methods: {e.label} saves {e.saved:+.1f} errors as the benchmark runs "
            f"it and {g:+.1f} as {m}."
        )
