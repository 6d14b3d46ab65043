"""Every shipped result, seed by seed: the comparisons, table and figure of the reproductions page.

Each preset ships its run and the same recipe at other seeds (:mod:`kdcore.reference`). A seed
study compares each method with what it is measured against at the same seed (the same net on
hard labels, a peer trained alone, the student before a bias shift: :func:`seed_pairs`), on the
preset's headline figure. Here each such comparison is one :class:`Comparison`: both sides at
every seed, the gain, the paper's figures where it gives them. Plain functions of the shipped
files, no ``st.*``, so the page and its tests read the same numbers the lab's seed tables do.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from urllib.parse import urlencode

import plotly.graph_objects as go

from app.catalog import page, preset_home
from app.figures import TEMPLATE
from kdcore.presets import PRESETS
from kdcore.reference import Reference, load_seed_study, row_values, seed_wins
from kdcore.runner import Measure

BETTER, WORSE, TIE = "#2b8a3e", "#c92a2a", "#adb5bd"
ROW_PX = 46  # a comparison's row: two lines of label, at presenter mode's larger text too
UNITS = {1: "thousandths", 2: "millionths", 3: "billionths"}  # of the measure's unit


@dataclass(frozen=True)
class Comparison:
    """One method against what it is compared with, seed by seed, on a preset's headline."""

    preset: str
    measure: Measure
    model: str
    baseline: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # the model's figure at each seed
    base_values: tuple[float, ...]  # the baseline's, at the same seeds
    paper: str | None  # the paper's figures for the two, "74 vs 146", where it gives both
    # whether those figures have the method better than its baseline (None: no figures, a tie,
    # or a table whose better direction is not known)
    paper_better: bool | None = None

    @property
    def gains(self) -> list[float]:
        """How much better the model did than its baseline at each seed (negative: worse)."""
        sign = -1.0 if self.measure.lower_is_better else 1.0
        return [sign * (v - b) for v, b in zip(self.values, self.base_values, strict=True)]

    @property
    def wins(self) -> int:
        """At how many seeds the model did strictly better (a tie is no win)."""
        pairs = zip(self.values, self.base_values, strict=True)
        return sum(self.measure.beats(v, b) for v, b in pairs)

    @property
    def as_paper(self) -> bool | None:
        """Whether most seeds went the paper's way: the method better than its baseline at most
        seeds where the paper has it better, at most seeds worse (or level) where the paper has
        it worse; None where the paper gives no direction."""
        if self.paper_better is None:
            return None
        return (self.wins * 2 > len(self.seeds)) == self.paper_better

    @property
    def whole(self) -> bool:
        """Whether the figures are counts (test errors), shown without decimals."""
        return all(float(v).is_integer() for v in (*self.values, *self.base_values))


def comparisons(refs: dict[str, Reference]) -> list[Comparison]:
    """Every comparison the shipped seed studies make, in the presets' order; the same pairs
    and counts as the lab's seed tables (:func:`kdcore.reference.seed_wins`)."""
    out = []
    for name, preset in PRESETS.items():
        ref = refs.get(name)
        rows = load_seed_study(ref) if ref is not None else []
        if not rows:
            continue
        measure = preset.seed_measures[0]
        vals = [row_values(r, measure) for r in rows]
        for model, (base, _) in seed_wins(ref, rows, measure).items():
            out.append(
                Comparison(
                    name,
                    measure,
                    model,
                    base,
                    tuple(r["seed"] for r in rows),
                    tuple(float(v[model]) for v in vals),
                    tuple(float(v[base]) for v in vals),
                    *paper_pair(preset.paper, measure, model, base),
                )
            )
    return out


# How a paper's table other than the study's measure reads: the words of its key that say a
# higher figure is better, and those that say a lower one is.
HIGHER, LOWER = ("top1", "bleu", "score", "accuracy"), ("error", "perplexity", "seconds")


def higher_is_better(key: str) -> bool | None:
    """Which way a paper's table of figures points, from its key; None where it does not say."""
    if any(w in key for w in HIGHER):
        return True
    if any(w in key for w in LOWER):
        return False
    return None


def paper_pair(
    paper: dict, measure: Measure, model: str, base: str
) -> tuple[str | None, bool | None]:
    """The paper's own figures for a model and its baseline, "74 vs 146": in the study's measure
    where the paper gives it, else in the paper's own setting, named (DKD's CIFAR-100 top-1,
    "76.32 vs 72.5 (resnet32x4 -> resnet8x4 on CIFAR-100, top-1 accuracy %, 240 epochs)"),
    and whether they have the model better; (None, None) where it gives no figure for one of
    the two."""
    own = measure.paper_values(paper)
    if model in own and base in own:
        higher = not measure.lower_is_better
        return f"{own[model]:g} vs {own[base]:g}", _better(own[model], own[base], higher)
    for key, table in paper.items():
        if isinstance(table, dict) and all(
            isinstance(table.get(n), int | float) and not isinstance(table.get(n), bool)
            for n in (model, base)
        ):
            setting = paper.get("setting") or key.replace("_", " ")
            text = f"{table[model]:g} vs {table[base]:g} ({setting})"
            return text, _better(table[model], table[base], higher_is_better(key))
    return None, None


def _better(value: float, base: float, higher: bool | None) -> bool | None:
    if higher is None or value == base:
        return None
    return (value > base) == higher


def shared(comps: list[Comparison]) -> list[tuple[str, list[str]]]:
    """The comparisons several presets make with the same figures at every seed: the same
    recipe at the same seed, which each trains again and gets the same net (DKD's, DIST's and
    the relation presets' KD student), as ("model vs baseline", [presets]), in order."""
    seen: dict[tuple, list[Comparison]] = {}
    for c in comps:
        seen.setdefault((c.model, c.baseline, c.seeds, c.values, c.base_values), []).append(c)
    return [(f"{g[0].model} vs {g[0].baseline}", [c.preset for c in g])
            for g in seen.values() if len(g) > 1]  # fmt: skip


def signed(gain: float, whole: bool) -> str:
    """A gain with its sign, to two significant figures (a count in full): +12, −0.00052."""
    if gain == 0:
        return "0"
    if whole:
        text = f"{gain:+.0f}"
    else:
        decimals = max(0, 1 - math.floor(math.log10(abs(gain))))
        text = f"{gain:+.{decimals}f}"
    return text.replace("-", "−")


def figure_of(value: float, whole: bool, digits: int) -> str:
    return f"{value:.0f}" if whole and float(value).is_integer() else f"{value:.{digits}f}"


def home_url(preset: str) -> str:
    """The address of the page that draws the preset's run in full (the lab, opened on it, for
    Hinton's demonstrations)."""
    link, _ = preset_home(preset)
    query = dict(link.query)
    return f"/{page(link.slug).url}" + (f"?{urlencode(query)}" if query else "")


def table_rows(comps: list[Comparison]) -> list[dict]:
    """The table under the figure: a row per comparison, the means, the paper's and the count."""
    rows = []
    for c in comps:
        d = c.measure.digits
        rows.append(
            {
                "result": f"{home_url(c.preset)}#{c.preset}",
                "method": c.model,
                "compared with": c.baseline,
                "better at": f"{c.wins} of {len(c.seeds)} seeds",
                "mean": figure_of(statistics.mean(c.values), False, d),
                "its mean": figure_of(statistics.mean(c.base_values), False, d),
                "paper": c.paper,
                "as the paper": {True: "yes", False: "no", None: None}[c.as_paper],
                "gain at each seed": "  ".join(signed(g, c.whole) for g in c.gains),
                "measure": c.measure.label,
            }
        )
    return rows


def scale_of(comps: list[Comparison]) -> int:
    """The power of a thousand the gains of one preset are written in (0: as they are), so
    that a cell needs at most five or six characters on a phone: a language model's gains in
    KL, thousandths of a bit, are written in thousandths."""
    gains = [abs(g) for c in comps if not c.whole for g in c.gains if g]
    if not gains:
        return 0
    return max(-3, min(0, round(math.log10(statistics.median(gains)) / 3)))


def grid_title(comps: list[Comparison]) -> str:
    """One preset's heading over its grid: its name, linked to where its run is drawn in full,
    and its headline measure (in thousandths where :func:`scale_of` says so)."""
    c = comps[0]
    scale = scale_of(comps)
    unit = f" · gains in {UNITS[-scale]}" if scale else ""
    return f"**[{c.preset}]({home_url(c.preset)})** · {c.measure.label}{unit}"


def grid_figure(comps: list[Comparison]) -> go.Figure:
    """One preset's comparisons, a row each, a cell per seed: green where the method did better
    than what it is compared with at that seed, red where worse, grey for a tie, with the gain
    written in the cell (so the colour is never the only cue)."""
    factor = 1000.0 ** -scale_of(comps)
    seeds = max(comps, key=lambda c: len(c.seeds)).seeds
    z, text, hover = [], [], []
    for c in comps:
        digits = c.measure.digits
        z.append([(g > 0) - (g < 0) for g in c.gains])
        text.append([signed(g if c.whole else g * factor, c.whole) for g in c.gains])
        hover.append(
            [
                f"seed {s}: {c.model} {figure_of(v, c.whole, digits)}, "
                f"{c.baseline} {figure_of(b, c.whole, digits)}"
                for s, v, b in zip(c.seeds, c.values, c.base_values, strict=True)
            ]
        )
    colours = [[0, WORSE], [1 / 3, WORSE], [1 / 3, TIE], [2 / 3, TIE], [2 / 3, BETTER],
               [1, BETTER]]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=z,
            # "seed 0", then 1, 2, ...: thirteen columns of "seed 12" did not fit a projector
            x=[f"seed {s}" if i == 0 else str(s) for i, s in enumerate(seeds)],
            y=[f"{c.model}<br><span style='color:#868e96'>vs {c.baseline}</span>" for c in comps],
            text=text,
            customdata=hover,
            texttemplate="%{text}",
            textfont={"color": "white", "size": 12},
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=colours,
            zmin=-1,
            zmax=1,
            showscale=False,
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(showgrid=False, ticks="", side="top", type="category")
    fig.update_yaxes(showgrid=False, ticks="", autorange="reversed")
    fig.update_layout(
        template=TEMPLATE, height=ROW_PX * len(comps) + 44, margin={"t": 40, "b": 4, "r": 6}
    )
    return fig
