"""The shipped reference runs in the app: read once per process, shown like stored runs.

A reference run (:mod:`kdcore.reference`) is a completed paper-length run that ships with the
app. The lab opens a preset on its reference before anything trains, and the run history lists
the references beside the user's own runs, marked as shipped. They are read-only: not in the
store, never deleted, rerun from the lab like any preset.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

import plotly.graph_objects as go
import streamlit as st

from app.catalog import preset_home
from app.figures import LEGEND_BELOW, TEMPLATE
from app.preset_views import LINE_COLOUR
from app.seed_sweeps import SEED_LINE, show_sweep_seeds, sweep_seeds_figure
from app.ui import MISSING, page_link, plot
from kdcore.reference import (
    Reference,
    load_references,
    load_seed_study,
    reference_dir,
    row_values,
    seed_wins,
    study_of,
    sweep_seeds,
)
from kdcore.runner import Measure
from kdcore.store import RunRecord


@dataclass
class ReferenceRecord(RunRecord):
    """A reference run dressed as a stored run, so the history's table, filters and overlays
    take it as they are. Its id is negative (never a store id) and it has no weights in the
    store."""

    reference: Reference | None = None

    @property
    def label(self) -> str:
        return f"shipped {self.name} ({self.reference.profile if self.reference else '?'})"

    def to_dict(self) -> dict:
        """As a stored run exports, with the reference block (how the run was made) under
        ``shipped`` in place of the loaded file."""
        out = RunRecord.to_dict(replace(self, reference=None))
        out.pop("reference", None)
        out["shipped"] = self.reference.info if self.reference else None
        return out


@st.cache_resource(show_spinner=False)
def _load(folder: str, stamp: float) -> tuple[dict[str, Reference], list[str]]:
    from pathlib import Path

    return load_references(Path(folder))


def references() -> tuple[dict[str, Reference], list[str]]:
    """The reference runs by preset, and one line per file that was skipped. Read once per
    process and again when the folder changes (a regenerated run)."""
    folder = reference_dir()
    stamp = folder.stat().st_mtime if folder.is_dir() else 0.0
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    stamp = max([stamp, *(p.stat().st_mtime for p in files)])
    return _load(str(folder), stamp)


def records() -> list[ReferenceRecord]:
    """Every reference run as a record, listed in the presets' order (hinton-mnist first: the
    others build on it). Its id is minus its preset's place in that order (hinton-mnist -1), so
    a link keeps naming the same run when another preset's run ships or is removed; a file of
    no known preset comes after them, by name."""
    from kdcore.presets import PRESETS

    refs, _ = references()
    order = list(PRESETS)
    names = sorted(refs, key=lambda n: (order.index(n) if n in order else len(order), n))
    out = []
    order += [n for n in names if n not in order]  # after every preset, in the order of names
    ids = {name: -(order.index(name) + 1) for name in names}
    for name in names:
        ref = refs[name]
        result = {**ref.result}
        out.append(
            ReferenceRecord(
                id=ids[name],
                created=ref.created_at,
                started=0.0,
                finished=float(ref.info["seconds"]),
                status=result.get("status", "completed"),
                kind="reference",
                name=name,
                config=result.get("config", {}),
                config_key="",
                progress=1.0,
                live={},
                history=result.get("history", {}),
                result=result,
                device=ref.info["device_name"],
                version=ref.info["code_version"],
                message="",
                owner="shipped",
                reference=ref,
            )
        )
    return out


def made_how(ref: Reference) -> str:
    """One caption: how the reference run was made and how to make it again."""
    i = ref.info
    return (
        f"Shipped reference run, {ref.label().removeprefix('shipped · ')}: `{i['command']}` on "
        f"{i['device_name']}, code {i['code_version']}, {i['created']}. The same command "
        "makes it again."
    )


def show_reference(ref: Reference, note: str = "") -> None:
    """A reference run in full: how it was made, the result beside the paper's, its weights."""
    from app import lab_ui

    st.markdown(f"### :material/verified: Reference run: {ref.preset} · {ref.profile} profile")
    st.caption(made_how(ref))
    from kdcore.presets import PRESETS

    preset = PRESETS.get(ref.preset)
    about = preset.profile_notes.get(ref.profile) if preset is not None else None
    if about:
        st.markdown(about)
    if note:
        st.markdown(note)
    lab_ui.show_result(records_by_preset()[ref.preset])
    show_seed_study(ref)
    files = [(f"{name} ({w.get('test_errors', '?')} errors)", ref.path.parent / w["file"],
              f"reference-{ref.preset}-{name}.safetensors", f"refw-{ref.preset}-{name}")
             for name, w in ref.weights.items()
             if (ref.path.parent / w["file"]).is_file()]  # fmt: skip
    lab_ui.weight_buttons(
        "Its weights as safetensors in half precision, each with its test errors at that "
        "precision, which can differ from the table's by one or two "
        "(`kdcore.reference.reference_model` loads them):",
        files,
    )


def show_seed_study(ref: Reference, rows: list[dict] | None = None) -> None:
    """The same recipe at other seeds (``rows``, else read from beside the run), beside the
    paper's figures: how far one run is from the next (nothing when no study ships with it).
    One table per measure the preset's study keeps, in tabs where it keeps several."""
    rows = load_seed_study(ref) if rows is None else rows
    if not rows:
        return
    n = len(rows)
    measures, pairs = study_of(ref.preset)
    title = f"**The same recipe at {n} seed{'s' if n != 1 else ''}**"
    sweeps = sweep_seeds(ref, rows)
    only_sweep = sweeps and len(measures) == 1 and not pairs
    st.markdown(f"{title} ({measures[0].label})" if len(measures) == 1 or only_sweep else title)
    if only_sweep:  # a curve per seed: a table of twenty models in a row would hide it
        show_sweep_seeds(sweeps, ref.result["paper"], f"ref-{ref.preset}")
    else:
        if sweeps:  # a sweep inside a study of more: its curves over the seeds, then the tables
            plot(sweep_seeds_figure(sweeps, ref.result["paper"]), key=f"ref-{ref.preset}-sweep")
        if len(measures) == 1:
            _seed_table(ref, rows, measures[0])
        else:  # the tabs name the measures
            for tab, m in zip(st.tabs([m.label for m in measures]), measures, strict=True):
                with tab:
                    _seed_table(ref, rows, m)
    _seed_caption(ref, rows)
    home = preset_home(ref.preset)
    if n > 1 and home is not None:  # this result beside the others of its family
        family = home[1]
        page_link("reproductions", f"Every result, seed by seed: {family}", {"fam": family})


def _seed_caption(ref: Reference, rows: list[dict]) -> None:
    ran = sorted({r.get("device_name", "?") for r in rows})
    seed, where = ref.result["config"].get("seed", "?"), ref.info["device_name"]
    own = any(r["seed"] == seed and r.get("device_name") == where for r in rows)
    st.caption(
        f"Each seed is the whole preset run again (`{seed_command(ref)}`) on "
        f"{'; '.join(ran)}. The seed sets all the run draws at random: every model's "
        "initialisation, shuffling and dropout, and the data a preset writes itself (the "
        "language presets' documents, held-out ones included). "
        f"The shipped run is seed {seed} on {where}"
        + (
            f", the row of seed {seed}."
            if own
            else ": another thread count adds its sums in another order, which is enough to "
            "train a different teacher."
        )
    )


def seed_table(ref: Reference, rows: list[dict], measure: Measure):
    """Each seed's figures of ``measure`` by model, then their mean, standard deviation and
    the paper's own figures where it gives them for every model."""
    import pandas as pd

    values = [row_values(r, measure) for r in rows]
    models = list(measure.values(ref.result))  # the run's own order: its models, or columns
    table = pd.DataFrame(values, index=[f"seed {r['seed']}" for r in rows])[models].astype(float)
    seeds = table.copy()
    table.loc["mean"] = seeds.mean().round(measure.digits)
    if len(rows) > 1:  # how far one seed's run lies from the next: the sample standard deviation
        table.loc["sd"] = seeds.std().round(measure.digits)
    paper = measure.paper_values(ref.result["paper"])
    if any(m in paper for m in models):  # None where the paper gives no such figure
        table.loc["paper"] = [paper.get(m, float("nan")) for m in models]
    return table


def seed_figure(table, seeds: int, measure: Measure) -> go.Figure:
    """A seed table (:func:`seed_table`) drawn: each seed's run as a faint line across the
    models (one run trains them all, so a line shows what that seed did to each model beside the
    others), the mean as a diamond with one standard deviation either side, and the paper's
    figure as a black bar where it gives one. A measure spread over more than a factor of 30
    (a language model's KL from the truth) is drawn on a log axis."""
    models = [str(c) for c in table.columns]
    fig = go.Figure()
    for i, seed in enumerate(table.index[:seeds]):
        fig.add_scatter(
            x=models,
            y=table.loc[seed].tolist(),
            mode="lines+markers",
            line={"color": SEED_LINE, "width": 1},
            marker={"color": SEED_LINE, "size": 5},
            name="each seed",
            legendgroup="seeds",
            showlegend=i == 0,
            hovertemplate=f"{seed}: %{{y}}<extra>%{{x}}</extra>",
        )
    sd = table.loc["sd"].tolist() if "sd" in table.index else None
    fig.add_scatter(
        x=models,
        y=table.loc["mean"].tolist(),
        mode="markers",
        marker={"symbol": "diamond", "size": 11, "color": LINE_COLOUR},
        error_y=None if sd is None else {"array": sd, "color": LINE_COLOUR, "thickness": 1.5},
        name="mean ± 1 sd" if sd is not None else "mean",
        hovertemplate="mean: %{y}<extra>%{x}</extra>",
    )
    if "paper" in table.index:
        paper = table.loc["paper"].tolist()
        fig.add_scatter(
            x=models,
            y=paper,
            mode="markers",
            marker={"symbol": "line-ew", "size": 26, "line": {"width": 2.5, "color": "black"}},
            name="the paper's",
            hovertemplate="paper: %{y}<extra>%{x}</extra>",
        )
    drawn = table.drop(index="sd", errors="ignore").to_numpy().ravel()  # the sd is no point
    shown = [float(v) for v in drawn if v == v]  # NaN: no paper figure
    spread = bool(shown) and min(shown) > 0 and max(shown) > 30 * min(shown)
    fig.update_layout(
        template=TEMPLATE,
        height=340,
        margin={"t": 20, "b": 40},
        # a long measure ("test errors before and after the bias shift") in lines that fit
        # the plot's height, not cut off at its edge
        yaxis_title="<br>".join(textwrap.wrap(measure.label, 24)),
        yaxis_type="log" if spread else "linear",
        legend=LEGEND_BELOW,
    )
    # half a column either side: the first and last models do not sit on the plot's edges
    fig.update_xaxes(range=[-0.5, len(models) - 0.5])
    fig.update_yaxes(exponentformat="none" if not spread else "power", separatethousands=True)
    return fig


def too_wide(labels: list[str], cells: int = 6, room_px: float = 760) -> bool:
    """Whether a table with these column labels, and figures of up to ``cells`` characters,
    overflows the page's column (about 780 px beside the sidebar at 1280 px). A column takes
    some 6.6 px a character of its header or its widest figure, plus 16, and at least 56, as do
    the row labels (measured in Chromium). Such a table reads better turned, its long labels
    down the side."""
    width = lambda n: max(6.6 * n + 16, 56)  # noqa: E731
    return width(6) + sum(width(max(len(label), cells)) for label in labels) > room_px


def turn(table, measure: Measure) -> bool:
    """Whether a seed table (:func:`seed_table`) is shown turned: too wide for the page."""
    figures = table.loc[[table.index[0], "mean"]].to_numpy().ravel()  # as the style shows them
    cells = max(len(f"{v:.{measure.digits}f}") for v in figures)
    return too_wide([str(c) for c in table.columns], cells)


def _seed_table(ref: Reference, rows: list[dict], measure: Measure) -> None:
    import pandas as pd

    table = seed_table(ref, rows, measure)
    if len(rows) > 1:  # the spread at a glance, the figures below
        plot(seed_figure(table, len(rows), measure), key=f"seeds-{ref.preset}-{measure.key}")
    seeds = list(table.index[: len(rows)])
    paper = ["paper"] if "paper" in table.index else []
    whole = all(float(v).is_integer() for v in table.loc[seeds].to_numpy().ravel())
    turned = turn(table, measure)  # omitted-3's six long columns, teacher-assistant's nine models
    if turned:  # a row per figure, a column per seed, then the mean, sd and paper
        table = table.T

    def cells(which: list[str]):
        return pd.IndexSlice[:, which] if turned else pd.IndexSlice[which, :]

    # every seed as run (test errors are counts), the mean, the sd and the paper to the
    # measure's decimals (Streamlit's own format cut a KL of 0.00288 to 0.0029)
    style = table.style.format(f"{{:.{measure.digits}f}}")
    if whole:
        style = style.format("{:.0f}", subset=cells(seeds))
    if paper:  # the paper's figures as it gives them (47.3, not 47.30)
        style = style.format("{:g}", subset=cells(paper))
    st.dataframe(style, width="content", height="content", placeholder=MISSING)
    wins = seed_wins(ref, rows, measure) if len(rows) > 1 else {}
    if wins:
        n, bases = len(rows), {b for b, _ in wins.values()}
        better = measure.better[:1].upper() + measure.better[1:]
        if len(bases) == 1:  # one baseline for all: name it once
            said = ", ".join(f"{m} at {k} of {n}" for m, (_, k) in wins.items())
            st.caption(f"{better} than {bases.pop()} at the same seed: {said}.")
        else:
            said = ", ".join(f"{m} than {b} at {k} of {n}" for m, (b, k) in wins.items())
            st.caption(f"{better} at the same seed: {said}.")


def seed_command(ref: Reference) -> str:
    """The command that makes ``ref``'s seed study (hinton-mnist's is the script's default)."""
    own = "" if ref.preset == "hinton-mnist" else f" --preset {ref.preset}"
    return f"python scripts/paper_seeds.py{own}"


def records_by_preset() -> dict[str, ReferenceRecord]:
    return {r.name: r for r in records()}


def skipped_notice() -> None:
    """One line per shipped file that could not be read (the others are shown)."""
    _, problems = references()
    for line in problems:
        st.caption(f":material/warning: A reference run was skipped: {line}")
