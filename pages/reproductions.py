"""Every shipped result, seed by seed: at how many seeds each method did better than what it is
compared with, family by family of the field, beside the papers' figures."""

import streamlit as st

from app import reference_ui, ui
from app.benchmark_views import show_benchmark
from app.catalog import families, preset_home
from app.reproduction_views import (
    comparisons,
    grid_figure,
    grid_title,
    home_url,
    shared,
    table_rows,
)
from kdcore.presets import PRESETS

st.title("Every result, seed by seed")
ui.prose(
    "Every demonstration in this app ships with its run and with the same recipe run again at "
    "other seeds: five, and thirteen for Hinton's MNIST result. One seed is one draw. It sets "
    "every initialisation, every shuffle and every dropout mask, and on MNIST that alone moves "
    "a model by about ten test errors (the median standard deviation of the studies below). "
    "So each method is compared with what it is measured against *at the same seed*, which "
    "shares the data order and the teacher: the same net on hard labels, a peer trained alone, "
    "the student before a bias shift. A result that holds at five seeds of five is a result; "
    "one that holds at three is a coin still in the air."
)

refs, _ = reference_ui.references()
reference_ui.skipped_notice()
every = comparisons(refs)
show_benchmark(refs)
st.header("Family by family")
st.caption(
    "Green: the method did better than what it is compared with at that seed; red: worse; the "
    "number: by how much, on the preset's headline figure. Better is not always what the paper "
    "predicts: a label-smoothed teacher's student should do worse, so should an ablation. Where "
    "the paper gives both figures, the table says whether most seeds went its way."
)
groups = families()
family = ui.url_choice("Family", groups, "fam", groups[0])
comps = [c for c in every if preset_home(c.preset)[1] == family]
if not comps:
    st.info("No shipped seed study in this family.", icon=":material/info:")
    st.stop()

shown = list(dict.fromkeys(c.preset for c in comps))
held = sum(c.wins * 2 > len(c.seeds) for c in comps)
st.markdown(
    f"**{family}**: {len(comps)} comparisons from {len(shown)} demonstrations; the method did "
    f"better at most seeds in {held} of them, at every seed in "
    f"{sum(c.wins == len(c.seeds) for c in comps)}, at none in "
    f"{sum(c.wins == 0 for c in comps)}."
)
told = [c for c in comps if c.as_paper is not None]
if told:
    against = [f"{c.model} vs {c.baseline} in {c.preset}" for c in told if not c.as_paper]
    st.markdown(
        f"Where the paper gives figures for both ({len(told)} of the comparisons), most seeds "
        f"went the paper's way in {len(told) - len(against)}"
        + (f"; against it: {', '.join(against)}." if against else ".")
    )
same = shared(comps)
if same:
    said = "; ".join(f"{pair} in {', '.join(names)}" for pair, names in same)
    st.caption(
        f"Rows that agree are the same recipe at the same seed, trained again by each preset "
        f"and coming out the same to the last figure: {said}."
    )
for preset in shown:
    mine = [c for c in comps if c.preset == preset]
    st.markdown(grid_title(mine))
    ui.plot(grid_figure(mine), key=f"grid-{preset}")

st.dataframe(
    table_rows(comps),
    hide_index=True,
    placeholder=ui.MISSING,
    column_config={
        "result": st.column_config.LinkColumn(
            "result", display_text=r"#(.*)$", help="Opens the page that draws its run in full"
        ),
        "paper": st.column_config.TextColumn(
            "paper", help="The paper's figures for the two, where it gives both"
        ),
        "as the paper": st.column_config.TextColumn(
            "as the paper",
            help="Whether most seeds went the way of the paper's two figures (better or worse)",
        ),
        "gain at each seed": st.column_config.TextColumn(
            "gain at each seed", help="Positive: the method did better at that seed"
        ),
    },
    key=f"table-{family}",
)
st.caption(
    "Means over the seeds; the paper's figures are its own setting's (often ImageNet or CIFAR, "
    "so only the direction compares), quoted where the paper gives both. Each page shows the "
    "seed table in full, each seed's run as the lab made it."
)

# The demonstrations of this family whose study compares nothing pairwise: the sweeps, drawn
# as curves where the shape is the result
rest = [n for n in PRESETS if preset_home(n)[1] == family and n not in shown]
if rest:
    links = ", ".join(f"[{n}]({home_url(n)})" for n in rest)
    st.caption(f"Measured as curves rather than pairs, on their own pages: {links}.")
