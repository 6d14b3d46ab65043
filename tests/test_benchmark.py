"""The reproductions page's benchmark: the CRD table's column beside the same methods on the
relation presets' MNIST pair. Spearman's ρ against a reference written from its definition, the
entries against the shipped seed studies, and the page's chart, table and words against them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.benchmark_views import benchmark, floor_of, rank_correlation
from kdcore.presets import PRESETS
from kdcore.presets_relation import SETTING
from kdcore.reference import load_references, load_seed_study
from tests.apptest import plotly_array, run_page


def ref_spearman(a: list[float], b: list[float]) -> float:
    """ρ from its definition for lists without ties: 1 − 6 Σ d² / (n (n² − 1)), d the rank
    differences."""
    n = len(a)
    ra = {v: i for i, v in enumerate(sorted(a))}
    rb = {v: i for i, v in enumerate(sorted(b))}
    d2 = sum((ra[x] - rb[y]) ** 2 for x, y in zip(a, b, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)), min_size=3,
                max_size=12, unique_by=(lambda t: t[0], lambda t: t[1])))  # fmt: skip
def test_rank_correlation_is_spearmans_rho(pairs):
    a, b = [float(x) for x, _ in pairs], [float(y) for _, y in pairs]
    assert rank_correlation(a, b) == pytest.approx(ref_spearman(a, b), abs=1e-12)


def test_the_floor_cuts_only_a_value_far_below_the_rest():
    assert floor_of([10.0, 0.0, -10.0]) is None  # an even spread
    assert floor_of([40.0, 20.0, -50.0, -200.0]) == pytest.approx(-50 - 0.15 * 90)
    assert floor_of([40.0, 20.0, -200.0]) == pytest.approx(-0.15 * 40)  # zero stays on
    assert floor_of([5.0, 1.0]) is None and floor_of([300.0, 20.0, 10.0]) is None


def test_rank_correlation_gives_ties_their_mean_rank():
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson of those
    want = float(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert rank_correlation([0, 5, 5, 9], [10, 20, 30, 40]) == pytest.approx(want)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation([1, 2], [2, 1]))


@pytest.fixture(scope="module")
def shipped():
    refs = load_references()[0]
    return refs, *benchmark(refs)


def test_every_method_of_the_benchmarks_setting_is_in_once_with_its_seeds(shipped):
    refs, entries, hard_paper = shipped
    same = [n for n, p in PRESETS.items() if p.paper.get("setting") == SETTING]
    want = {m for n in same for m in PRESETS[n].paper["cifar100_top1"]
            if m.startswith("student_") and m != "student_hard"}  # fmt: skip
    assert {e.model for e in entries} == want and len(entries) == len(want) >= 9
    assert hard_paper == 72.5
    # the hard-label student is the same at every seed in every such preset (one recipe)
    hards = {tuple(r["errors"]["student_hard"] for r in load_seed_study(refs[n])) for n in same}
    assert len(hards) == 1
    for e in entries:
        rows = load_seed_study(refs[e.preset])
        assert e.errors == tuple(r["errors"][e.model] for r in rows)
        assert e.paper == PRESETS[e.preset].paper["cifar100_top1"][e.model]
        assert e.saved == pytest.approx(statistics.mean(e.hard) - statistics.mean(e.errors))
    assert [e.paper for e in entries] == sorted((e.paper for e in entries), reverse=True)
    # a method's other recipes: every student of its preset with its method and no paper figure
    for e in entries:
        ref = refs[e.preset]
        table = PRESETS[e.preset].paper["cifar100_top1"]
        mine = [m for m, rec in ref.result["models"].items()
                if rec.get("method") == e.method and m not in table]  # fmt: skip
        assert [m for m, _ in e.variants] == mine
        rows = load_seed_study(ref)
        for m, gain in e.variants:
            assert gain == pytest.approx(statistics.mean(
                r["errors"]["student_hard"] - r["errors"][m] for r in rows))  # fmt: skip
    assert {m for e in entries for m, _ in e.variants} == {
        "student_fitnets_light",
        "student_ab_kd",
        "student_ab_throughout",
        "student_vid_near",
        "student_cc",  # CC's own loss: the table's CC is RepDistiller's code (student_cc_code)
        "student_cc_kd",
        "student_ft_random",
        "student_ft_long",
        "student_ft_light",
    }
    # KD in every such preset, trained again and identical
    kd = {tuple(r["errors"]["student_kd"] for r in load_seed_study(refs[n])) for n in same}
    assert len(kd) == 1


def test_the_page_draws_it_and_says_what_it_shows(shipped):
    _, entries, hard_paper = shipped
    at = run_page("reproductions.py", 180)
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "benchmark" in c.proto.id)  # fmt: skip
    points = next(t for t in chart["data"] if t["mode"] == "markers+text")
    floor = floor_of([e.saved for e in entries] + [g for e in entries for _, g in e.variants])
    cut = [e.saved < floor for e in entries]  # FitNets at the benchmark's weight, far below
    assert sum(cut) == 1 and floor == pytest.approx(-55.6 - 0.15 * (47.2 + 55.6))
    assert list(points["text"]) == [f"{e.label} ({e.saved:+.0f}, below)" if c else e.label
                                    for e, c in zip(entries, cut, strict=True)]  # fmt: skip
    assert list(plotly_array(points["x"])) == pytest.approx([e.paper - hard_paper for e in entries])
    assert list(plotly_array(points["y"])) == pytest.approx([max(e.saved, floor) for e in entries])
    assert list(plotly_array(points["customdata"])) == pytest.approx([e.saved for e in entries])
    assert points["marker"]["symbol"] == ["triangle-down" if c else "circle" for c in cut]
    table = next(f.value for f in at.dataframe if "method" in f.value.columns)
    assert table["method"].tolist() == [e.label for e in entries]
    assert table["ahead of hard labels"].tolist() == [f"{e.wins} of 5" for e in entries]
    both = sum((e.paper > hard_paper) == (e.saved > 0) for e in entries)
    rho = rank_correlation([e.paper for e in entries], [e.saved for e in entries])
    caption = next(c.value for c in at.caption if c.value.startswith("Hard labels:"))
    assert f"Of the {len(entries)} methods, {both} land on the same side" in caption
    assert f"ordering and ours is {rho:.2f}." in caption
    assert "CC's point is student_cc_code, the student trained as the table's own run" in caption
    # each other recipe of a method, hollow, at its method's x, from its benchmark point
    hollow = [t for t in chart["data"] if t["mode"] == "lines+markers"]
    want = [v for e in entries for _, g in e.variants
            for v in (e.paper - hard_paper, max(e.saved, floor), g)]  # fmt: skip
    got = [v for t in hollow for v in (plotly_array(t["x"])[0], *plotly_array(t["y"]))]
    assert got == pytest.approx(want) and len(want) >= 12
    said = next(c.value for c in at.caption if c.value.startswith("Hollow:"))
    _, e, m, g = max(((abs(g - e.saved), e, m, g) for e in entries for m, g in e.variants),
                     key=lambda t: t[0])  # fmt: skip
    assert (
        f"{e.label} saves {e.saved:+.1f} errors as the benchmark runs it and {g:+.1f} as {m}"
        in (said)
    )


def test_the_readme_quotes_the_benchmark(shipped):
    _, entries, hard_paper = shipped
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    both = sum((e.paper > hard_paper) == (e.saved > 0) for e in entries)
    rho = rank_correlation([e.paper for e in entries], [e.saved for e in entries])
    assert f"beside the same {len(entries)} methods on the relation presets' MNIST pair" in readme
    assert f"{both} of the {len(entries)} land on the same side of hard labels in both" in readme
    assert f"rank correlation of the two orderings is {rho:.2f}" in readme
    paper = [e.label for e in entries]
    here = [e.label for e in sorted(entries, key=lambda e: -e.saved)]
    assert paper.index("CRD") == 2 and here.index("CRD") == 10 and here[-1] == "FitNets"
    assert paper[-1] == "RKD" and here.index("RKD") == 2
    assert ("(CRD, third in the paper, is eleventh here; RKD, last there, is third here; FitNets, "
            "at the benchmark's hint weight, last)") in readme  # fmt: skip
    by = {e.label: e for e in entries}
    fit, ab, ft = by["FitNets"], by["AB"], by["FT"]
    light = dict(fit.variants)["student_fitnets_light"]
    kept = dict(ab.variants)["student_ab_throughout"]
    assert f"other recipes here ({sum(len(e.variants) for e in entries)} students)" in readme
    assert (
        f"FitNets goes from {fit.saved:.1f} errors saved to {light:+.1f} with the hint "
        f"weighted 1, AB from {ab.saved:.1f} to {kept:+.1f} kept beside CE from the start, FT "
        f"from {ft.saved:.1f} to {dict(ft.variants)['student_ft_long']:+.1f} with its paraphraser "
        "trained 16 epochs"
    ) in readme


def test_the_lessons_benchmark_step_says_what_the_files_show(shipped):
    import tomllib

    _, entries, hard_paper = shipped
    lesson = tomllib.loads((Path(__file__).resolve().parent.parent / "assets" / "lesson.toml")
                           .read_text())  # fmt: skip
    step = next(s for s in lesson["step"] if s["title"].startswith("Does a benchmark"))
    talk = " ".join(step["talk"].split())
    both = sum((e.paper > hard_paper) == (e.saved > 0) for e in entries)
    rho = rank_correlation([e.paper for e in entries], [e.saved for e in entries])
    assert "ranks twelve methods" in talk and "the same twelve" in talk and len(entries) == 12
    assert f"{both} of the {len(entries)} land on the same side" in talk
    assert f"(Spearman {rho:.2f})" in talk and abs(rho) < 0.3  # "uncorrelated"
    here = [e.label for e in sorted(entries, key=lambda e: -e.saved)]
    assert here.index("CRD") == 10 and here.index("RKD") == 2 and here[-1] == "FitNets"
