"""The reproductions page: every comparison the shipped seed studies make, family by family,
with the same pairs and counts as the lab's seed tables, each gain read from the rows, the
family in the URL, and the shared runs named. AppTest on the real shipped files."""

from __future__ import annotations

import json
import statistics

import pytest
from streamlit.testing.v1 import AppTest

from app.catalog import LAB_DRAWN, families, page, preset_home
from app.reproduction_views import (
    comparisons,
    grid_figure,
    home_url,
    scale_of,
    shared,
    signed,
    table_rows,
)
from kdcore.presets import PRESETS
from kdcore.reference import load_references, load_seed_study, row_values, seed_wins
from tests.apptest import PAGES, plotly_array, run_page

TIMEOUT = 120


@pytest.fixture(scope="module")
def every():
    return comparisons(load_references()[0])


def _page(**params: str) -> AppTest:
    return run_page("reproductions.py", TIMEOUT, **params)


def _grids(at: AppTest) -> list:
    """The family's seed grids (the benchmark's chart above them is not one)."""
    return [c for c in at.get("plotly_chart") if "grid-" in c.proto.id]


def test_the_comparisons_are_the_seed_studies_pairs_with_their_counts(every):
    refs = load_references()[0]
    expected = []
    for name in PRESETS:
        rows = load_seed_study(refs[name])
        measure = PRESETS[name].seed_measures[0]
        expected += [(name, m, b, k) for m, (b, k) in seed_wins(refs[name], rows, measure).items()]
    assert [(c.preset, c.model, c.baseline, c.wins) for c in every] == expected
    assert len(every) > 80  # every family has its results
    for c in every:  # each gain is the two figures of one row, better counted positive
        rows = load_seed_study(refs[c.preset])
        assert list(c.seeds) == [r["seed"] for r in rows]
        for r, g in zip(rows, c.gains, strict=True):
            v = row_values(r, c.measure)
            assert g == pytest.approx(
                (v[c.baseline] - v[c.model]) * (1 if c.measure.lower_is_better else -1)
            )
        assert c.wins == sum(g > 0 for g in c.gains)


def test_hintons_result_holds_at_all_thirteen_seeds_beside_the_papers_figures(every):
    kd = next(c for c in every if c.preset == "hinton-mnist")
    assert (kd.model, kd.baseline, kd.wins, len(kd.seeds)) == ("student_kd", "student_hard", 13, 13)
    row = table_rows([kd])[0]
    assert row["paper"] == "74 vs 146" and row["better at"] == "13 of 13 seeds"
    assert row["mean"] == "85.4" and row["its mean"] == "140.9"  # the README's 13-seed means
    # a paper that gives its figures only in its own setting: those, with the setting named
    dkd = next(c for c in every if c.model == "student_dkd")
    assert dkd.paper == f"76.32 vs 72.5 ({PRESETS['dkd-mnist'].paper['setting']})"
    # omitted-3's student after the shift against itself before it, 3s recovered at every seed
    bias = [c for c in every if c.preset == "omitted-3"]
    assert [(c.model, c.wins) for c in bias] == [
        ("after (bias chosen on held-out images)", 5),
        ("on 3s, after (held-out)", 5),
    ]


def test_every_preset_has_a_family_and_a_page_that_draws_it():
    groups = families()
    for name in PRESETS:
        link, family = preset_home(name)
        assert family in groups and page(link.slug).exists, name
    assert home_url("dist-stronger") == "/dkd"
    assert home_url("born-again") == "/modes?mode=born-again"
    assert home_url("hinton-mnist") == "/lab?preset=hinton-mnist"
    assert {preset_home(n)[1] for n in LAB_DRAWN} == {"Response-based", "Relation-based",
                                                      "Feature-based"}  # fmt: skip


def test_gains_are_written_short_enough_for_a_phone(every):
    assert [signed(g, True) for g in (12.0, -3.0, 0.0)] == ["+12", "−3", "0"]
    assert signed(-0.00052, False) == "−0.00052" and signed(2.31, False) == "+2.3"
    by = {p: [c for c in every if c.preset == p] for p in dict.fromkeys(c.preset for c in every)}
    assert scale_of(by["hinton-mnist"]) == 0
    assert scale_of(by["word-vs-sequence-kd"]) == -1  # KL gains of a thousandth of a bit
    for comps in by.values():  # five or six characters a cell, a count in full
        fig = grid_figure(comps)
        cells = [t for row in fig.data[0].text for t in row]
        assert all(len(t) <= 6 for t in cells) or all(c.whole for c in comps), cells


def test_rows_that_agree_are_named_as_the_same_runs(every):
    same = dict((names[0], (pair, names)) for pair, names in shared(every))
    pair, names = same["rkd-mnist"]
    assert pair == "student_kd vs student_hard"
    assert {"dkd-mnist", "dist-mnist", "similarity-mnist", "crd-mnist"} <= set(names)
    for pair, names in shared(every):  # the same figures at every seed, in each preset named
        ours = [c for c in every if c.preset in names and f"{c.model} vs {c.baseline}" == pair]
        assert len(ours) == len(names) and len({(c.values, c.base_values) for c in ours}) == 1


def test_the_page_opens_on_the_first_family_a_grid_per_result(every):
    at = _page()
    groups = families()
    assert at.button_group(key="fam").value == groups[0]
    mine = [c for c in every if preset_home(c.preset)[1] == groups[0]]
    shown = list(dict.fromkeys(c.preset for c in mine))
    titles = [m.value for m in at.markdown if m.value.startswith("**[")]
    assert [t.split("]")[0].removeprefix("**[") for t in titles] == shown
    charts = _grids(at)
    assert len(charts) == len(shown)
    first = json.loads(charts[0].proto.spec)["data"][0]
    kd = mine[0]  # hinton-mnist: a cell per seed, green where the student beat its twin
    assert plotly_array(first["z"]).tolist() == [[1] * len(kd.seeds)]
    table = at.dataframe[-1].value  # the family's (the benchmark's comes first)
    assert len(table) == len(mine)
    assert table["result"].tolist()[0] == "/lab?preset=hinton-mnist#hinton-mnist"
    held = sum(c.wins * 2 > len(c.seeds) for c in mine)
    assert any(f"better at most seeds in {held} of them" in m.value for m in at.markdown)
    sweeps = next(c.value for c in at.caption if c.value.startswith("Measured as curves"))
    assert "temperature-sweep" in sweeps and "alpha-sweep" in sweeps


def test_the_papers_direction_is_read_from_its_figures_and_its_tables_sense(every):
    """A comparison goes the paper's way when most seeds have the method better where the
    paper's two figures do, and worse where they do not; test errors count down, CIFAR-100's
    top-1 up. RKD's CIFAR-100 figure was below hard labels' (Tian et al. 2020, Table 1)."""
    from app.reproduction_views import Comparison, higher_is_better, paper_pair

    by = {(c.preset, c.model): c for c in every}
    hinton = by["hinton-mnist", "student_kd"]  # 74 vs 146 errors: the paper has KD better
    assert hinton.paper_better is True and hinton.as_paper is True
    rkd = by["rkd-mnist", "student_rkd"]  # 71.90 vs 72.50 top-1: the paper has RKD worse
    assert rkd.paper_better is False and rkd.as_paper is (rkd.wins * 2 <= len(rkd.seeds))
    assert higher_is_better("cifar100_top1") and higher_is_better("glue_macro_score")
    assert higher_is_better("test_errors") is False and higher_is_better("params_millions") is None
    m = PRESETS["hinton-mnist"].seed_measures[0]
    assert paper_pair({"test_errors": {"a": 5, "b": 5}}, m, "a", "b") == ("5 vs 5", None)
    assert paper_pair({}, m, "a", "b") == (None, None)
    worse = Comparison("p", m, "a", "b", (0, 1, 2), (9.0, 9.0, 1.0), (5.0, 5.0, 5.0), "9 vs 5",
                       False)  # fmt: skip
    assert worse.wins == 1 and worse.as_paper is True  # worse at most seeds, as the paper said


def test_the_table_and_the_summary_say_where_seeds_went_against_the_paper(every):
    at = _page(fam="Relation-based")
    mine = [c for c in every if preset_home(c.preset)[1] == "Relation-based"]
    told = [c for c in mine if c.as_paper is not None]
    table = at.dataframe[-1].value
    # a cell with no paper figure is empty: None, or NaN where pandas made the column's None so
    shown = [None if v != v else v for v in table["as the paper"].tolist()]
    assert shown == [{True: "yes", False: "no", None: None}[c.as_paper] for c in mine]
    against = [f"{c.model} vs {c.baseline} in {c.preset}" for c in told if not c.as_paper]
    line = next(m.value for m in at.markdown if m.value.startswith("Where the paper gives"))
    assert f"({len(told)} of the comparisons)" in line
    way = len(told) - len(against)
    assert f"the paper's way in {way}; against it: {', '.join(against)}." in line
    assert "student_rkd vs student_hard in rkd-mnist" in against


@pytest.mark.parametrize("family", ["Transformer era", "Training modes"])
def test_a_family_from_the_link(every, family):
    at = _page(fam=family)
    assert at.button_group(key="fam").value == family
    mine = [c for c in every if preset_home(c.preset)[1] == family]
    assert len(at.dataframe[-1].value) == len(mine)
    assert len(_grids(at)) == len({c.preset for c in mine})


def test_an_odd_family_in_the_link_falls_back_with_a_notice():
    at = _page(fam="<b>")
    assert at.button_group(key="fam").value == families()[0]
    assert any("fam=" in t.value for t in at.toast)


def test_the_pages_prose_says_how_far_one_seed_moves_a_model():
    """ "About ten test errors": the median standard deviation over the shipped studies'
    models whose figure is a count of test errors."""
    refs = load_references()[0]
    sds = []
    for ref in refs.values():
        rows = load_seed_study(ref)
        if len(rows) > 1:
            for model in rows[0]["errors"]:
                sds.append(statistics.stdev(r["errors"][model] for r in rows))
    assert 8 <= statistics.median(sds) <= 13
    at = _page()
    assert any("about ten test errors" in m.value for m in at.markdown)


def test_the_readme_counts_the_comparisons_shipped(every):
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    most = sum(c.wins * 2 > len(c.seeds) for c in every)
    whole = sum(c.wins == len(c.seeds) for c in every)
    assert (
        f"Of the {len(every)} comparisons shipped, the method did better at most seeds in {most} "
        f"and at every seed in {whole}."
    ) in readme
    told = [c for c in every if c.as_paper is not None]
    against = {c.model.removeprefix("student_").upper() for c in told if not c.as_paper}
    assert f"Where the paper gives figures for both sides ({len(told)} comparisons)" in readme
    assert (
        f"they did in {sum(c.as_paper for c in told)}; not for RKD, CRD, DKD, AB, FitNets, FT, "
        "WSLD, ICKD and NST against hard labels" in (readme)
    )
    assert against == {"RKD", "CRD", "DKD", "AB", "FITNETS", "FT", "CTKD", "WSLD", "ICKD",
                       "ICKD_KD", "NST", "SIMKD", "SIMKD_F4", "SIMKD_F8", "TTM",
                       "TTM_WEIGHTED"}  # fmt: skip
    # CTKD's paper compares it with KD, not hard labels; ICKD with KD, SimKD and TTM are set
    # against KD here
    for model in ("student_ctkd", "student_ickd_kd", "student_simkd", "student_simkd_f4",
                  "student_simkd_f8", "student_ttm", "student_ttm_weighted"):  # fmt: skip
        assert [c.baseline for c in told if c.model == model] == ["student_kd"]
    assert ("nor for CTKD, ICKD with KD, SimKD (at f = 2, 4 and 8) and TTM (and weighted TTM) "
            "against KD.") in readme  # fmt: skip


def test_without_shipped_runs_the_page_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_REFERENCE_DIR", str(tmp_path / "nothing-here"))
    at = _page()
    assert [i.value for i in at.info] == ["No shipped seed study in this family."]
    assert not at.get("plotly_chart") and not at.dataframe


def test_a_seed_study_links_its_family_on_this_page(store_path, monkeypatch):
    monkeypatch.delenv("KD_REFERENCE_DIR", raising=False)  # the shipped runs
    at = AppTest.from_file(str(PAGES / "lab.py"), default_timeout=TIMEOUT)
    at.query_params["preset"] = "born-again"
    at.run()
    assert not at.exception
    links = [m.value for m in at.markdown if m.value.startswith("[Every result, seed by seed")]
    assert links == [
        "[Every result, seed by seed: Training modes](/reproductions?fam=Training+modes)"
    ]
