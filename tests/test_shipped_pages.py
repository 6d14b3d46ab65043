"""Every concept page opens on a real run of its preset before anything trains: the run shipped
in assets/reference_runs (made by scripts/make_reference_runs.py --page-runs at the recipe
kdcore.reference.shipped_profile names: long for the quick MLP presets, else the default),
marked as shipped, with the offer to run it here folded under it. A completed run of the user's
own replaces it; one in flight shows live above it. AppTest on the real shipped files."""

from __future__ import annotations

import statistics
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.catalog import DRAWN_ON, LAB_DRAWN, page
from app.reference_ui import turn
from kdcore.presets import BIAS_ERRORS, PRESETS
from kdcore.reference import (
    load_references,
    load_seed_study,
    row_values,
    seed_wins,
    shipped_profile,
    sweep_seeds,
)
from kdcore.store import Store
from tests.apptest import PAGES, run_page

ROOT = Path(__file__).resolve().parent.parent


def _lesson_step(title: str) -> dict:
    """The guided lesson's step whose title starts with ``title``."""
    lesson = tomllib.loads((ROOT / "assets" / "lesson.toml").read_text())
    return next(s for s in lesson["step"] if s["title"].startswith(title))


def _readme_words() -> str:
    """The README with every run of whitespace made one space (its lines wrap anywhere)."""
    return " ".join((ROOT / "README.md").read_text().split())


TIMEOUT = 180  # the first run of a page loads MNIST, the demo models or the LM teacher
SHIPPED = "Shown: the run shipped with the app"
# (page file, URL parameters, the preset the section shows): where the app says each preset is
# drawn in full, the page its lab and history views link to
VIEWS = [(page(link.slug).file, dict(link.query), preset) for preset, link in DRAWN_ON.items()]
MODES = [preset for preset, link in DRAWN_ON.items() if link.slug == "modes"]


LONG = [name for name, p in PRESETS.items() if shipped_profile(p) == "long"]
# the image presets at their default recipe, a minute or two a seed, the language presets (two
# minutes), Hinton's transfer-set demonstrations (nine, their teacher included) and his sweeps
# (eight and fourteen, from those cached teachers): also shipped
# at five seeds
LM = [
    "word-vs-sequence-kd",
    "on-policy-kd",
    "speculative-draft",
    "minilm-relations",
    "tinybert-hidden",
    "distilbert",
]
SEEDED = [*LONG, "fitnets-mnist", "attention-transfer", "projector-normalisation", "deit-mnist",
          "zero-shot-mnist", "consistent-teaching", "fsp-mnist", "review-mnist", "mgd-mnist", *LM,
          "cat-mnist", "omitted-3",
          "only-7-8", "temperature-sweep", "alpha-sweep"]  # fmt: skip


def _page(name: str, **params) -> AppTest:
    return run_page(name, TIMEOUT, **params)


def test_every_preset_ships_a_run_and_every_page_section_shows_one():
    refs, problems = load_references()
    assert not problems and set(refs) == set(PRESETS), sorted(set(PRESETS) - set(refs))
    shown = {preset for _, _, preset in VIEWS}
    # the rest open in the lab: Hinton's demos, the sweeps and two relation methods
    assert not shown & set(LAB_DRAWN) and shown | set(LAB_DRAWN) == set(PRESETS)
    assert set(LAB_DRAWN) == {"hinton-mnist", "omitted-3", "only-7-8", "temperature-sweep",
                              "alpha-sweep", "similarity-mnist", "crd-mnist",
                              "fitnets-mlp"}  # fmt: skip


@pytest.mark.parametrize("page,params,preset", VIEWS, ids=lambda v: str(v))
def test_a_page_opens_on_the_shipped_run_of_its_preset(store_path, page, params, preset):
    at = _page(page, **params)
    captions = [c.value for c in at.caption]
    assert any(c.startswith(f":material/verified: {SHIPPED}") for c in captions), captions
    assert any(c.startswith("The shipped run") and f"preset {preset}," in c for c in captions)
    assert not any("No completed" in i.value for i in at.info)
    assert at.get("plotly_chart") or at.metric  # the run's own figures, drawn from its result
    # and why they differ from the paper's, in the preset's own words
    texts = captions + [m.value for m in at.markdown]
    assert any(PRESETS[preset].differences in t for t in texts), preset
    # the offer to run it here, folded away under the shipped run
    offers = [e for e in at.expander if e.label == "Run it on this machine"]
    assert offers and any(b.label == "Run it now" for b in offers[0].button)
    # and, folded too, the same recipe at other seeds: how much of the run is its seed's luck
    ref = load_references()[0][preset]
    rows = load_seed_study(ref)
    models = set(PRESETS[preset].seed_measures[0].values(ref.result))

    def of_this_preset(e) -> bool:  # a page with two sections (DKD's, DIST's) has two studies
        if not e.dataframe:
            return False
        table = e.dataframe[0].value
        return set(table.index if "mean" in table.columns else table.columns) == models

    spread = [e for e in at.expander if e.label == f"The same recipe at {len(rows)} seeds"
              and of_this_preset(e)]  # fmt: skip
    assert len(spread) == (len(rows) > 1), preset
    if spread:  # one table per measure the preset's study keeps, the headline first
        measures = PRESETS[preset].seed_measures
        assert len(spread[0].dataframe) == len(measures)
        assert [t.label for t in spread[0].tabs] == ([m.label for m in measures]
                                                     if len(measures) > 1 else [])  # fmt: skip
        for frame, measure in zip(spread[0].dataframe, measures, strict=True):
            table = frame.value
            turned = "mean" in table.columns  # a wide table turned: a column per seed
            if turned:
                table = table.T
            assert turned == turn(table, measure), preset
            for model in table.columns:
                vals = [row_values(r, measure)[model] for r in rows]
                assert table.loc["mean", model] == round(statistics.mean(vals), measure.digits)
                assert table.loc["sd", model] == round(statistics.stdev(vals), measure.digits)


@pytest.mark.parametrize("preset", SEEDED)
def test_each_quick_preset_ships_its_run_at_five_seeds(preset):
    """The long-profile presets and the image presets are cheap enough to run again at other
    seeds, and one seed is one draw: the noise is measured and shipped, seed 0 being the shipped
    run itself."""
    ref = load_references()[0][preset]
    rows = load_seed_study(ref)
    assert [r["seed"] for r in rows] == [0, 1, 2, 3, 4]
    shipped = {m: s["test_errors"] for m, s in ref.result["models"].items()}
    assert rows[0]["errors"] == shipped and rows[0]["device_name"] == ref.info["device_name"]
    for measure in PRESETS[preset].seed_measures:  # and every other figure the study keeps
        assert row_values(rows[0], measure) == measure.values(ref.result), measure.key
    if "sweep" in ref.result:  # and a sweep's every curve
        assert rows[0]["sweep"]["errors"] == ref.result["sweep"]["errors"]


def test_the_shipped_line_links_the_run_in_the_history():
    from app.reference_ui import records_by_preset

    run = records_by_preset()["dkd-mnist"]
    at = _page("dkd.py")
    line = next(c.value for c in at.caption if SHIPPED in c.value)
    assert f"(runs?show={run.id})" in line and run.id < 0
    assert run.reference.info["device_name"] in line and run.reference.info["created"] in line
    # and the history opens on it, read-only like the other shipped runs
    at = _page("runs.py", show=str(run.id))
    assert any("Reference run: dkd-mnist" in m.value for m in at.markdown)


def test_the_attention_page_draws_the_shipped_teacher_on_any_test_image(store_path):
    at = _page("hints.py", test="123")
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert not any("kept no teacher weights" in c.value for c in at.caption)
    assert any(k.endswith("-live") for k in keys), keys  # the teacher's maps of image 123
    assert at.number_input(key="test").value == 123


def test_a_users_own_run_replaces_the_shipped_one(store_path):
    ref = load_references()[0]["consistent-teaching"]  # a page of one stored section
    store = Store(store_path)
    run_id = store.create("preset", "consistent-teaching", {"epochs": 2, "seed": 0}, "own")
    store.finish(run_id, "completed", "", ref.result)
    at = _page("consistent.py")
    captions = [c.value for c in at.caption]
    assert any(c.startswith(f"Run #{run_id}: ") for c in captions)
    assert not any(SHIPPED in c for c in captions)
    assert "Run it on this machine" not in [e.label for e in at.expander]


def test_a_run_in_flight_shows_live_above_the_shipped_one(store_path, monkeypatch):
    from kdcore.jobs import JobQueue

    def queue_only(self, spec, reuse=True):  # the store row a real submit writes, no worker
        return self.store.create(spec.kind, spec.name, spec.config_dict(), "k")

    monkeypatch.setattr(JobQueue, "submit", queue_only)
    at = _page("modes.py", mode="born-again")
    at.button(key="run_born-again").click().run()
    assert not at.exception
    run_id = Store(store_path).list(name="born-again")[0].id
    captions = [c.value for c in at.caption]
    assert any(f"Run #{run_id} is under way" in c and "Until then" in c for c in captions)
    assert at.get("progress")  # live, and the shipped result still below it
    assert any(c.startswith("The shipped run: preset born-again,") for c in captions)


def test_a_page_without_a_store_still_shows_the_shipped_run(tmp_path, monkeypatch):
    bad = tmp_path / "store-is-a-folder"
    bad.mkdir()
    monkeypatch.setenv("KD_STORE", str(bad))
    at = _page("speculative.py")
    assert any("Stored runs are unavailable here" in w.value for w in at.warning)
    assert any(c.value.startswith("The shipped run") for c in at.caption)
    # nothing can be queued without a store
    assert "Run it on this machine" not in [e.label for e in at.expander] and not at.button


def test_fresh_cache_runs_train_their_teacher_so_the_seconds_include_it(tmp_path, monkeypatch):
    """The shipped default runs each start from an empty teacher cache: a teacher the shared
    cache already holds is trained again, and the command says so."""
    import json
    import sys

    sys.path.insert(0, str(PAGES.parent / "scripts"))
    from make_reference_runs import main

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "shared-cache"))  # restored after
    args = ["teacher-free", "--profile", "default", "--epochs", "1", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0  # fills the shared cache
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    cached = json.loads((tmp_path / "b" / "teacher-free.json").read_text())
    assert cached["models"]["teacher"].get("cached")
    assert main([*args, "--fresh-cache", "--out", str(tmp_path / "c")]) == 0
    fresh = json.loads((tmp_path / "c" / "teacher-free.json").read_text())
    assert not fresh["models"]["teacher"].get("cached")
    assert fresh["reference"]["command"].endswith("--fresh-cache")
    assert fresh["models"]["teacher"]["seconds"] > 0


def test_the_relation_presets_quote_their_shipped_runs_figures():
    """The relation presets' explanation quotes the shipped runs: regenerated runs with other
    figures must come with the text updated."""
    refs = load_references()[0]

    def errors(preset: str, model: str) -> int:
        return refs[preset].result["models"][model]["test_errors"]

    text = PRESETS["dkd-mnist"].differences
    gap = f"({errors('dkd-mnist', 'teacher')} against {errors('dkd-mnist', 'student_hard')} in "
    assert gap + "the shipped runs of the long profile)" in text
    quoted = {"KD": ("dkd-mnist", "student_kd"), "RKD": ("rkd-mnist", "student_rkd"),
              "similarity loss": ("similarity-mnist", "student_similarity"),
              "CRD": ("crd-mnist", "student_crd"), "DKD": ("dkd-mnist", "student_dkd")}  # fmt: skip
    for label, (preset, model) in quoted.items():
        assert f"{label} ({errors(preset, model)})" in text, label
    for preset in ("rkd-mnist", "similarity-mnist", "crd-mnist"):  # one teacher, one baseline
        assert errors(preset, "teacher") == errors("dkd-mnist", "teacher")
        assert errors(preset, "student_hard") == errors("dkd-mnist", "student_hard")
    # and the five seeds: each method's mean, the baseline's range, the seeds each one won
    rows = {p: load_seed_study(refs[p]) for p in ("rkd-mnist", "similarity-mnist", "crd-mnist",
                                                  "dkd-mnist")}  # fmt: skip
    hard = [r["errors"]["student_hard"] for r in rows["dkd-mnist"]]
    assert f"ranges from {min(hard)} to {max(hard)} errors" in text
    assert f"against hard labels' {statistics.mean(hard):.1f}" in text
    wins = {}
    for label, (preset, model) in quoted.items():
        mean = statistics.mean(r["errors"][model] for r in rows[preset])
        assert f"{label} {'makes ' if label == 'KD' else ''}{mean:.1f}" in text, label
        wins[label] = seed_wins(refs[preset], rows[preset])[model][1]
    assert wins == {"KD": 5, "RKD": 5, "similarity loss": 5, "DKD": 2, "CRD": 0}
    said = "KD, RKD and the similarity loss beat hard labels at 5 of 5 seeds, DKD at 2 of 5"
    assert said + " and CRD at none" in text


def test_the_long_profile_is_the_default_at_sixteen_epochs():
    from dataclasses import asdict

    from kdcore.reference import shipped_profile
    from kdcore.runner import resolve

    long = [name for name, p in PRESETS.items() if "long" in p.profiles]
    assert len(long) == 31
    assert {"dkd-mnist", "dist-mnist", "teacher-assistant", "smooth-teacher",
            "dist-stronger"} <= set(long)  # fmt: skip
    for name in long:
        assert asdict(resolve(name, profile="long")) == asdict(resolve(name, epochs=16)), name
        assert shipped_profile(PRESETS[name]) == "long"
        assert "16 epochs" in PRESETS[name].profile_notes["long"]


def test_the_modes_text_quotes_the_spread_of_their_five_seeds():
    refs = load_references()[0]
    sds = [
        statistics.stdev(r["errors"][model] for r in load_seed_study(refs[preset]))
        for preset in MODES
        for model in refs[preset].result["models"]
    ]
    text = PRESETS["mutual-learning"].differences
    assert f"standard deviations of {min(sds):.1f} to {max(sds):.1f} over five seeds" in text


@pytest.mark.parametrize(
    "preset, key, said",
    [
        ("word-vs-sequence-kd", "kl_true", {"hard": "hard", "word_kd": "word-level KD",
                                            "seq_kd_sample": "seq-KD on sampled text"}),
        ("on-policy-kd", "kl_true", {"hard": "real text", "sft": "start",
                                     "supervised_fkl": "forward KL on real text"}),
        ("speculative-draft", "acceptance_rate", {"draft_hard": "draft on real text",
                                                  "draft_kd": "forward KL"}),
        ("minilm-relations", "kl_true", {"hard": "real text", "word_kd": "word-level KD",
                                         "attention_value": "MiniLM's q-k + v-v",
                                         "qkv_relations": "MiniLMv2 from the last block",
                                         "qkv_block3": "from block 3"}),
        ("minilm-relations", "kl_teacher", {"hard": "real text", "word_kd": "word-level KD",
                                            "attention_value": "MiniLM", "qkv_relations":
                                            "MiniLMv2", "qkv_block3": "from block 3"}),
        ("tinybert-hidden", "kl_true", {"hard": "real text", "word_kd": "word-level KD",
                                        "hidden_uniform": "uniform", "hidden_top": "top",
                                        "hidden_bottom": "bottom",
                                        "hidden_pred": "with predictions"}),
        ("tinybert-hidden", "kl_teacher", {"hard": "real text", "word_kd": "word-level KD",
                                           "hidden_uniform": "uniform", "hidden_top": "top",
                                           "hidden_bottom": "bottom",
                                           "hidden_pred": "with predictions"}),
        ("distilbert", "kl_true", {"hard": "real text from random weights",
                                   "distilbert": "DistilBERT", "no_kd": "without the soft targets",
                                   "no_cos": "without the cosine loss",
                                   "no_lm": "without the real text",
                                   "random_init": "the triple loss from random weights",
                                   "init_only": "the teacher's blocks on real text alone"}),
        ("distilbert", "kl_teacher", {"hard": "real text from random weights",
                                      "distilbert": "DistilBERT",
                                      "no_kd": "without the soft targets",
                                      "no_cos": "without the cosine loss",
                                      "no_lm": "without the real text",
                                      "random_init": "from random weights",
                                      "init_only": "on real text alone"}),
        ("tinybert-hidden", "r2_last", {"hard": "real text", "word_kd": "word-level KD",
                                        "hidden_uniform": "uniform", "hidden_top": "top",
                                        "hidden_bottom": "bottom",
                                        "hidden_pred": "with predictions"}),
    ],
)  # fmt: skip
def test_the_readme_quotes_the_language_seed_studies(preset, key, said):
    """The README's five-seed table of the language presets is the shipped studies' arithmetic
    (a KL in thousandths of a bit, an acceptance rate as it is)."""

    readme = (ROOT / "README.md").read_text()
    measure = next(m for m in PRESETS[preset].seed_measures if m.key == key)
    rows = load_seed_study(load_references()[0][preset])
    scale, digits = (1000, 2) if key.startswith("kl") else (1, 4)
    for model, label in said.items():
        vals = [row_values(r, measure)[model] * scale for r in rows]
        quoted = f"{label} {statistics.mean(vals):.{digits}f} ({statistics.stdev(vals):.{digits}f})"
        assert quoted in readme, quoted


def test_the_language_presets_text_quotes_their_five_seeds():
    """What the pages say under the shipped language runs is what the shipped studies measure."""
    refs = load_references()[0]
    rows = load_seed_study(refs["word-vs-sequence-kd"])
    greedy = PRESETS["word-vs-sequence-kd"].seed_measures[1]
    g = {m: [row_values(r, greedy)[m] for r in rows] for m in ("hard", "word_kd", "seq_kd_greedy")}
    seq_wins = sum(s > w for s, w in zip(g["seq_kd_greedy"], g["word_kd"], strict=True))
    text = PRESETS["word-vs-sequence-kd"].differences
    said = (f"{statistics.mean(g['word_kd']):.0%} of the time against "
            f"{statistics.mean(g['hard']):.0%} on real text alone, and sequence-level KD's "
            f"{statistics.mean(g['seq_kd_greedy']):.0%}: it beats word-level KD at {seq_wins} "
            f"seeds of {len(rows)}")  # fmt: skip
    assert said in text

    ref = refs["on-policy-kd"]
    rows = load_seed_study(ref)
    kl = PRESETS["on-policy-kd"].seed_measures[0]
    wins = {m: k for m, (_, k) in seed_wins(ref, rows, kl).items()}
    assert wins == {"supervised_fkl": 4, "on_policy_fkl": 4, "on_policy_jsd": 4, "on_policy_rkl": 2}
    seed0 = row_values(rows[0], kl)
    assert all(seed0[m] > seed0["hard"] for m in wins)  # every taught student, at seed 0
    text = PRESETS["on-policy-kd"].differences
    assert (
        "end closer at 4 of 5, and reverse KL at 2" in text and "The shipped run is seed 0" in text
    )


def test_the_minilm_text_quotes_its_five_seeds():
    """What the MiniLM page says under its run: every relation student ahead of real text alone
    and of word-level KD at every seed, and the means it quotes."""
    ref = load_references()[0]["minilm-relations"]
    rows = load_seed_study(ref)
    kl, rel = PRESETS["minilm-relations"].seed_measures[:2]
    mean = {m: 1000 * statistics.mean(row_values(r, kl)[m] for r in rows)
            for m in row_values(rows[0], kl)}  # fmt: skip
    taught = ("attention_value", "qkv_relations", "qkv_block3")
    for m in taught:
        assert all(row_values(r, kl)[m] < row_values(r, kl)[b] for r in rows
                   for b in ("hard", "word_kd")), m  # fmt: skip
    text = PRESETS["minilm-relations"].differences
    said = (
        f"{mean['attention_value']:.2f}, {mean['qkv_relations']:.2f} and "
        f"{mean['qkv_block3']:.2f} thousandths of a bit per character against "
        f"{mean['hard']:.2f} and {mean['word_kd']:.2f}; the teacher's {mean['teacher']:.2f}"
    )
    assert said in text
    assert f"({mean['qkv_block3']:.2f} against {mean['qkv_relations']:.2f})" in text
    r = {m: statistics.mean(row_values(x, rel)[m] for x in rows) for m in ("qkv_relations", "hard")}
    assert f"({r['qkv_relations']:.2f} nats against {r['hard']:.2f} on real text alone)" in text
    shipped = ref.result["models"]
    qk = (shipped["qkv_relations"]["relation_kls"]["qk"], shipped["hard"]["relation_kls"]["qk"])
    assert f"in the shipped run {qk[0]:.2f} nats against {qk[1]:.2f}" in text


def test_the_tinybert_text_quotes_its_five_seeds():
    """What the TinyBERT page says under its run: the uniform and top students ahead of real
    text alone and of word-level KD at every seed, the bottom one ahead of real text only, and
    the means it quotes."""
    ref = load_references()[0]["tinybert-hidden"]
    rows = load_seed_study(ref)
    kl, r2 = PRESETS["tinybert-hidden"].seed_measures[:2]
    per = {m: [row_values(r, kl)[m] for r in rows] for m in row_values(rows[0], kl)}
    mean = {m: 1000 * statistics.mean(v) for m, v in per.items()}

    def wins(a: str, b: str) -> int:
        return sum(x < y for x, y in zip(per[a], per[b], strict=True))

    assert [wins(m, "hard") for m in ("hidden_uniform", "hidden_top", "hidden_bottom")] == [5] * 3
    assert [wins(m, "word_kd") for m in ("hidden_uniform", "hidden_top", "hidden_bottom")] == [
        5, 5, 0]  # fmt: skip
    text = PRESETS["tinybert-hidden"].differences
    said = (
        f"(KL from the truth {mean['hidden_uniform']:.2f} and {mean['hidden_top']:.2f} "
        f"thousandths of a bit per character against {mean['hard']:.2f} and "
        f"{mean['word_kd']:.2f}; the teacher's {mean['teacher']:.2f})"
    )
    assert said in text and f"word-level KD at none ({mean['hidden_bottom']:.2f})" in text
    assert f"(top ahead at {wins('hidden_top', 'hidden_uniform')} seeds of 5)" in text
    r = {m: statistics.mean(row_values(x, r2)[m] for x in rows)
         for m in ("hidden_uniform", "hidden_top", "hard")}  # fmt: skip
    assert (f"R² {r['hidden_uniform']:.4f} and {r['hidden_top']:.4f}, against {r['hard']:.4f}"
            in text)  # fmt: skip
    # the prediction-layer term: nearer the teacher at every seed, not nearer the truth
    kt = PRESETS["tinybert-hidden"].seed_measures[2]
    near = {m: [row_values(x, kt)[m] for x in rows] for m in ("hidden_pred", "hidden_uniform")}
    assert all(a < b for a, b in zip(near["hidden_pred"], near["hidden_uniform"], strict=True))
    said = (f"(KL to the teacher {1000 * statistics.mean(near['hidden_pred']):.2f} against "
            f"{1000 * statistics.mean(near['hidden_uniform']):.2f} thousandths of a nat per "
            f"character) but no nearer the truth ({mean['hidden_pred']:.2f} against "
            f"{mean['hidden_uniform']:.2f}, ahead at {wins('hidden_pred', 'hidden_uniform')} "
            "seeds of 5)")  # fmt: skip
    assert said in text


@pytest.mark.parametrize("preset", ["omitted-3", "only-7-8"])
def test_the_readme_quotes_the_bias_demonstrations_at_five_seeds(preset):

    readme = (ROOT / "README.md").read_text()
    bias = BIAS_ERRORS
    rows = load_seed_study(load_references()[0][preset])
    assert len(rows) == 5
    cols = list(row_values(rows[0], bias))  # all, then on the shifted digits: before, after...

    def said(col: str) -> str:
        vals = [row_values(r, bias)[col] for r in rows]
        return f"{statistics.mean(vals):,.1f} ({statistics.stdev(vals):.1f})"

    line = next(x for x in readme.splitlines() if x.startswith(f"| `{preset}` ("))
    for everything, on_digits in ((cols[0], cols[2]), (cols[1], cols[3]), (cols[4], cols[5])):
        assert f"{said(everything)} [{said(on_digits)}]" in line, everything


def test_the_readme_quotes_the_sweeps_at_five_seeds():
    """Each student's line of the README's five-seed sweep table: the mean (sd) at every value
    swept, then on hard labels alone where trained, and the value each seed did best at."""

    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    refs = load_references()[0]
    for preset in ("temperature-sweep", "alpha-sweep"):
        study = sweep_seeds(refs[preset], load_seed_study(refs[preset]))
        assert study and all(s.seeds == [0, 1, 2, 3, 4] for s in study), preset
        for s in study:
            line = next(x for x in lines if x.startswith(f"| `{preset}` {s.student} |"))
            sd = s.sd() or []
            curve = ", ".join(f"{m:.1f} ({d:.1f})" for m, d in zip(s.mean(), sd, strict=True))
            assert curve in line, (s.student, curve)
            if s.baselines:
                base = f"{statistics.mean(s.baselines):.1f} ({statistics.stdev(s.baselines):.1f})"
                assert base in line, (s.student, base)
            assert ", ".join(f"{b:g}" for b in s.best()) in line, (s.student, s.best())


def test_the_temperature_sweeps_text_quotes_its_five_seeds():
    """What the lab says under the shipped temperature sweep is the study's arithmetic."""
    ref = load_references()[0]["temperature-sweep"]
    wide, narrow = sweep_seeds(ref, load_seed_study(ref))
    text = PRESETS["temperature-sweep"].profile_differences["paper"]
    temps, mw, mn = wide.values, wide.mean(), narrow.mean()
    hi = [mw[j] for j, t in enumerate(temps) if t >= 6]
    assert (f"{min(hi):.1f}-{max(hi):.1f} from T=6 up, against {mw[0]:.1f} at T=1 and "
            f"{statistics.mean(wide.baselines):.1f} on hard labels") in text  # fmt: skip
    for s in (wide, narrow):
        assert "best T at each seed is " + ", ".join(f"{b:g}" for b in s.best()) in text
    a, b = sorted(sorted(range(len(temps)), key=mn.__getitem__)[:2])  # the two lowest means
    assert f"lowest at T={temps[a]:g} and {temps[b]:g} ({mn[a]:.1f}, {mn[b]:.1f})" in text
    assert f"(T=2: {mn[temps.index(2.0)]:.1f} on average)" in text
    hot, base = [mn[j] for j, t in enumerate(temps) if t >= 8], statistics.mean(narrow.baselines)
    assert min(hot) > base and f"({min(hot):.1f}-{max(hot):.1f} against {base:.1f})" in text


def test_the_alpha_sweeps_text_quotes_its_five_seeds():
    ref = load_references()[0]["alpha-sweep"]
    (s,) = sweep_seeds(ref, load_seed_study(ref))
    text = PRESETS["alpha-sweep"].profile_differences["paper"]
    mean = s.mean()
    up = [mean[j] for j, a in enumerate(s.values) if a >= 0.3]
    assert (f"{mean[0]:.1f} errors on average at alpha=0 (hard labels only), {mean[1]:.1f} at "
            f"0.1 and {min(up):.1f}-{max(up):.1f} from 0.3 up") in text  # fmt: skip
    assert "best alpha at each seed is " + ", ".join(f"{b:g}" for b in s.best()) in text
    assert all(b >= 0.5 for b in s.best()) and "at most half the weight" in text


def test_the_lessons_temperature_step_says_what_the_sweep_measured():
    """The guided lesson's words on the temperature sweep, checked against the shipped study."""

    step = _lesson_step("Which temperature")
    ref = load_references()[0]["temperature-sweep"]
    wide, narrow = sweep_seeds(ref, load_seed_study(ref))
    temps, mn, mw, sd = wide.values, narrow.mean(), wide.mean(), wide.sd()
    assert "30-30 student does best at T = 3 and 4" in step["talk"]
    assert {temps[j] for j in sorted(range(len(temps)), key=mn.__getitem__)[:2]} == {3.0, 4.0}
    assert "worse than on hard labels from T = 8 up" in step["talk"]
    assert all(mn[j] > statistics.mean(narrow.baselines) for j, t in enumerate(temps) if t >= 8)
    # "about as good anywhere from T = 6": the means there lie closer than one seed's spread
    high = [j for j, t in enumerate(temps) if t >= 6]
    assert "about as good anywhere from T = 6" in step["talk"]
    spread = statistics.mean(sd[j] for j in high)
    assert max(mw[j] for j in high) - min(mw[j] for j in high) < spread
    assert "the best T wanders" in step["talk"] and len(set(narrow.best())) > 1


def test_the_readme_quotes_the_shipped_distilbert_run():
    """The README's line on the shipped distilbert run is that run's arithmetic: the KLs in
    thousandths, the starts, the first epoch, the size and the speed."""

    res = load_references()[0]["distilbert"].result
    m, floor = res["models"], res["floor_bits"]
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("| `distilbert` ("))
    kl = {n: f"{1000 * v['kl_true']:.2f}" for n, v in m.items()}
    first = {n: res["history"][n][0]["extra"]["bits_per_char"] - floor for n in m if n != "teacher"}
    speed = m["teacher"]["pass_seconds"] / m["distilbert"]["pass_seconds"]
    for said in (
        f"| {res['reference']['seconds']:.0f} s |" if "reference" in res else "",
        f"(teacher {kl['teacher']}): real text from random weights {kl['hard']}, DistilBERT "
        f"**{kl['distilbert']}**, and without the soft targets {kl['no_kd']}, without the cosine "
        f"loss {kl['no_cos']}, without the real text {kl['no_lm']}, the triple loss from random "
        f"weights {kl['random_init']}, the teacher's blocks on real text alone {kl['init_only']}",
        f"blocks 1 and 3 are {m['distilbert']['start_kl_true']:.3f} bits per character from the "
        f"truth, random weights {m['hard']['start_kl_true']:.2f}",
        f"DistilBERT is at {first['distilbert']:.3f}, the students from random weights at "
        f"{first['hard']:.2f} (real text) and {first['random_init']:.2f} (triple loss)",
        f"KL to the teacher {1000 * m['distilbert']['kl_teacher']:.2f} ×10⁻³ nats (real text "
        f"alone {1000 * m['hard']['kl_teacher']:.2f})",
        f"{m['distilbert']['pass_seconds']:.2f} s against the teacher's "
        f"{m['teacher']['pass_seconds']:.2f} ({speed:.2f} times as fast) with "
        f"{m['distilbert']['params'] / m['teacher']['params']:.0%} of its parameters",
    ):
        assert said in line, said
    assert all(m[n]["kl_true"] > m["distilbert"]["kl_true"] for n in m if n != "distilbert")


def test_the_distilbert_text_quotes_its_five_seeds():
    """What the page says under the shipped distilbert run is what its seed study measures:
    DistilBERT ahead of real text alone at every seed, the two changes that cost at every seed,
    the two within the noise, and the soft targets' pull toward the teacher."""
    ref = load_references()[0]["distilbert"]
    rows = load_seed_study(ref)
    kl, kt = PRESETS["distilbert"].seed_measures
    wins = {m: k for m, (_, k) in seed_wins(ref, rows, kl).items()}
    assert wins["distilbert"] == 5 and wins["no_lm"] == wins["random_init"] == 0
    mean = {m: 1000 * statistics.mean(row_values(r, kl)[m] for r in rows)
            for m in row_values(rows[0], kl)}  # fmt: skip
    near = {m: 1000 * statistics.mean(row_values(r, kt)[m] for r in rows)
            for m in ("distilbert", "no_kd")}  # fmt: skip
    assert all(row_values(r, kt)["no_kd"] > row_values(r, kt)["distilbert"] for r in rows)
    text = " ".join(PRESETS["distilbert"].differences.split())
    for said in (
        f"(KL from the truth {mean['distilbert']:.2f} thousandths of a bit per character "
        f"against {mean['hard']:.2f}; the teacher's {mean['teacher']:.2f})",
        f"starting from random weights ({mean['random_init']:.2f})",
        f"dropping the real text's loss ({mean['no_lm']:.2f})",
        f"Dropping the soft targets ({mean['no_kd']:.2f}, ahead at {wins['no_kd']} seeds of 5)",
        f"the cosine loss ({mean['no_cos']:.2f}, ahead at {wins['no_cos']})",
        f"(KL to the teacher {near['no_kd']:.2f} against {near['distilbert']:.2f} thousandths",
    ):
        assert said in text, said


def test_the_dist_text_quotes_its_shipped_run_and_five_seeds():
    """What the DKD page says under the shipped dist-mnist run, and the README's lines on it, are
    that run's and its seed study's arithmetic."""

    ref = load_references()[0]["dist-mnist"]
    rows = load_seed_study(ref)
    errors = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    wins = {
        m: k for m, (_, k) in seed_wins(ref, rows, PRESETS["dist-mnist"].seed_measures[0]).items()
    }
    beat_kd = sum(r["errors"]["student_dist"] < r["errors"]["student_kd"] for r in rows)
    text = " ".join(PRESETS["dist-mnist"].differences.split())
    said = (f"DIST makes {errors['student_dist']} test errors against {errors['student_hard']} on "
            f"hard labels and {errors['student_kd']} by KD; over five seeds (the table under the "
            f"run) {mean['student_dist']:.1f} against {mean['student_hard']:.1f} and "
            f"{mean['student_kd']:.1f}, ahead of hard labels at {wins['student_dist']} seeds of 5 "
            f"and of KD at {'none' if beat_kd == 0 else beat_kd}")  # fmt: skip
    assert said in text
    readme = (ROOT / "README.md").read_text()
    assert f"| `dist-mnist` | DIST {mean['student_dist']:.1f} (" in readme
    assert f"DIST **{errors['student_dist']}** (the same teacher {errors['teacher']}" in readme


def test_the_dist_stronger_text_quotes_its_shipped_run_and_five_seeds():
    """What the preset says under its shipped run (DKD page, lab) and the README's lines on it
    are that run's and its seed study's arithmetic."""

    from kdcore.presets_stronger import student_name

    ref = load_references()[0]["dist-stronger"]
    rows = load_seed_study(ref)
    errors = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    teachers = [r["teacher"] for r in ref.result["stronger"]]
    kd = [student_name("kd", a) for a in teachers]
    dist = [student_name("dist", a) for a in teachers]
    pairs = zip(dist, kd, strict=True)
    ahead = [sum(r["errors"][d] < r["errors"][k] for r in rows) for d, k in pairs]
    beat_hard = sum(r["errors"][d] < r["errors"]["student_hard"] for r in rows for d in dist)
    text = " ".join(PRESETS["dist-stronger"].differences.split())

    said = (
        f"the student makes {errors['student_hard']} test errors on hard labels; from the three "
        f"teachers, by KD {errors[kd[0]]}, {errors[kd[1]]} and {errors[kd[2]]}, by DIST "
        f"{errors[dist[0]]}, {errors[dist[1]]} and {errors[dist[2]]}. Over five seeds (the "
        f"table under the run) hard labels {mean['student_hard']:.1f}; KD {mean[kd[0]]:.1f}, "
        f"{mean[kd[1]]:.1f} and {mean[kd[2]]:.1f}; DIST {mean[dist[0]]:.1f}, "
        f"{mean[dist[1]]:.1f} and {mean[dist[2]]:.1f}: DIST ahead of KD at {ahead[0]}, "
        f"{ahead[1]} and {ahead[2]} seeds of 5, and ahead of hard labels at "
        f"{'none' if beat_hard == 0 else beat_hard}"
    )
    assert said in text
    readme = (ROOT / "README.md").read_text()
    sd = statistics.stdev(r["errors"][dist[0]] for r in rows)
    assert f"by DIST {mean[dist[0]]:.1f} ({sd:.1f})" in readme
    assert f"by DIST **{errors[dist[0]]} / {errors[dist[1]]} / {errors[dist[2]]}**" in readme


def test_the_consistent_teaching_text_quotes_its_shipped_run_and_five_seeds():
    """The preset's words under its shipped run and the README's rows are that run's and its
    seed study's arithmetic, the ordering included."""
    import itertools

    from kdcore.presets_consistent import STUDENTS

    ref = load_references()[0]["consistent-teaching"]
    rows = load_seed_study(ref)
    errors = [ref.result["models"][n]["test_errors"] for n in STUDENTS]
    mean = [statistics.mean(r["errors"][n] for r in rows) for n in STUDENTS]
    ahead = {sum(r["errors"][b] < r["errors"][a] for r in rows)
             for a, b in itertools.pairwise(STUDENTS)}  # fmt: skip
    text = " ".join(PRESETS["consistent-teaching"].differences.split())
    said = (f"the student makes {errors[0]} test errors on its labels alone, {errors[1]} from the "
            f"fixed teacher, {errors[2]} from independent views, {errors[3]} from consistent "
            f"views and {errors[4]} by function matching; over five seeds (the table under the "
            f"run) {mean[0]:.1f}, {mean[1]:.1f}, {mean[2]:.1f}, {mean[3]:.1f} and {mean[4]:.1f}, "
            f"each way ahead of the one before it at {min(ahead)} seeds of 5")  # fmt: skip
    assert said in text and ahead == {5}
    readme = (ROOT / "README.md").read_text()
    assert f"function matching **{errors[4]}**;" in readme
    assert f"function matching **{mean[4]:.1f} (" in readme


def test_the_uskd_text_and_readme_quote_its_shipped_run_and_five_seeds():
    """USKD's words under its shipped run (the modes page, the lab) and the README's rows are
    the run's and its seed study's arithmetic: no teacher, ahead of hard labels, not of KD."""
    ref = load_references()[0]["uskd"]
    rows = load_seed_study(ref)
    e = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in e}
    sd = {m: statistics.stdev(r["errors"][m] for r in rows) for m in e}
    own = ("student_uskd", "student_uskd_imagenet")
    hard = [sum(r["errors"][m] < r["errors"]["student_hard"] for r in rows) for m in own]
    kd = {sum(r["errors"][m] < r["errors"]["student_kd"] for r in rows) for m in own}
    share = (mean["student_hard"] - mean["student_uskd"]) / (
        mean["student_hard"] - mean["student_kd"]
    )
    text = " ".join(PRESETS["uskd"].differences.split())
    said = (f"the student makes {e['student_hard']} test errors on hard labels, "
            f"{e['student_uskd']} with USKD at the CIFAR weights and {e['student_uskd_imagenet']} "
            f"at the ImageNet ones, and {e['student_kd']} by KD from the teacher ({e['teacher']}); "
            f"over five seeds (the table under the run) USKD makes {mean['student_uskd']:.1f} and "
            f"{mean['student_uskd_imagenet']:.1f} against hard labels' {mean['student_hard']:.1f} "
            f"and KD's {mean['student_kd']:.1f}: ahead of hard labels at {hard[0]} and {hard[1]} "
            f"seeds of 5, of KD at none")  # fmt: skip
    assert said in text and kd == {0}
    assert "two fifths of the way" in text and 0.35 <= share < 0.45
    readme = _readme_words()
    assert (f"| `uskd` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
            f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
            f"({sd['student_kd']:.1f}), USKD {mean['student_uskd']:.1f} "
            f"({sd['student_uskd']:.1f}) | {hard[0]} of 5 (beat KD at 0); at the ImageNet "
            f"weights, {mean['student_uskd_imagenet']:.1f} ({sd['student_uskd_imagenet']:.1f}), "
            f"{hard[1]} of 5 (beat KD at 0) |") in readme  # fmt: skip
    assert (f"USKD **{e['student_uskd']}**, at the ImageNet weights **"
            f"{e['student_uskd_imagenet']}**, with no teacher") in readme  # fmt: skip


def test_the_zscore_text_and_readme_quote_its_shipped_run_and_five_seeds():

    ref = load_references()[0]["zscore-mnist"]
    rows = load_seed_study(ref)
    errors = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    sd = statistics.stdev(r["errors"]["student_zscore"] for r in rows)
    beat_hard = sum(r["errors"]["student_zscore"] < r["errors"]["student_hard"] for r in rows)
    level = sum(r["errors"]["student_zscore"] == r["errors"]["student_hard"] for r in rows)
    beat_kd = dict(seed_wins(ref, rows))["student_zscore"][1]  # its study compares it with KD
    text = " ".join(PRESETS["zscore-mnist"].differences.split())
    said = (f"the z-scored KD makes {errors['student_zscore']} test errors against "
            f"{errors['student_hard']} on hard labels and {errors['student_kd']} by KD; over five "
            f"seeds (the table under the run) {mean['student_zscore']:.1f} against "
            f"{mean['student_hard']:.1f} and {mean['student_kd']:.1f}: ahead of hard labels at "
            f"{beat_hard} seeds of 5 (level at the fifth) and of KD at {beat_kd}")  # fmt: skip
    assert said in text and level == 1
    readme = (ROOT / "README.md").read_text()
    assert f"| `zscore-mnist` | z-scored KD {mean['student_zscore']:.1f} ({sd:.1f}) |" in readme
    assert f"z-scored KD **{errors['student_zscore']}** (the same teacher {errors['teacher']}" in (
        readme
    )


@pytest.mark.parametrize("preset, label", [("pkt-mnist", "PKT"), ("vid-mnist", "VID")])
def test_a_relation_students_text_and_readme_quote_its_shipped_run_and_five_seeds(preset, label):
    """The words under the shipped run (its student against hard labels and KD, once and over
    five seeds) and the README's rows are the files' arithmetic."""

    ref = load_references()[0][preset]
    rows = load_seed_study(ref)
    errors = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    student = f"student_{preset.split('-')[0]}"
    sd = statistics.stdev(r["errors"][student] for r in rows)
    beat_hard = dict(seed_wins(ref, rows))[student][1]
    beat_kd = sum(r["errors"][student] < r["errors"]["student_kd"] for r in rows)
    text = " ".join(PRESETS[preset].differences.split())
    said = (f"{label} makes {errors[student]} test errors against {errors['student_hard']} on "
            f"hard labels and {errors['student_kd']} by KD; over five seeds (the table under the "
            f"run) {mean[student]:.1f} against {mean['student_hard']:.1f} and "
            f"{mean['student_kd']:.1f}: ahead of hard labels at {beat_hard} seeds of 5 and of KD "
            f"at {'none' if beat_kd == 0 else beat_kd}")  # fmt: skip
    assert said in text
    readme = _readme_words()
    assert f"| `{preset}` | {label} {mean[student]:.1f} ({sd:.1f}) | {beat_hard} of 5" in readme
    assert f"{label} **{errors[student]}** (the same teacher {errors['teacher']}" in readme
    assert f"({mean[student]:.1f} errors" in readme


def test_the_vid_text_quotes_its_shipped_variances_and_errors():
    ref = load_references()[0]["vid-mnist"]
    last = ref.result["history"]["student_vid"][-1]["extra"]
    var, err = last["variance"], last["squared_error"]
    text = " ".join(PRESETS["vid-mnist"].differences.split())
    assert f"between {min(var):.2f} and {max(var):.2f} at the end" in text
    assert f"range from {min(err):.2g} to {max(err):.2g}" in text
    # the second VID student, from 0.05: its errors, how closely its variances follow, its seeds
    near = ref.result["history"]["student_vid_near"][-1]["extra"]
    assert near["start_variance"] == 0.05 and last["start_variance"] == 5.0
    corr = [float(np.corrcoef(np.log(e["variance"]), np.log(e["squared_error"]))[0, 1])
            for e in (near, last)]  # fmt: skip
    rows = load_seed_study(ref)
    mean = statistics.mean(r["errors"]["student_vid_near"] for r in rows)
    ahead = dict(seed_wins(ref, rows))["student_vid_near"][1]
    beat_hard = sum(r["errors"]["student_vid_near"] < r["errors"]["student_hard"] for r in rows)
    errors = ref.result["models"]["student_vid_near"]["test_errors"]
    assert (f"is {corr[0]:.2f} at the end, {corr[1]:.2f} from 5) and makes {errors} errors; "
            f"over five seeds {mean:.1f}, ahead of the first VID student at {ahead} seeds of 5, "
            f"of hard labels at {beat_hard} and of KD at none") in text  # fmt: skip


def test_the_ab_text_and_readme_quote_its_shipped_errors_seeds_and_agreements():

    from app.ab_views import agreements, baseline

    ref = load_references()[0]["ab-mnist"]
    models = ref.result["models"]
    text = " ".join(PRESETS["ab-mnist"].differences.split())
    errs = {n: models[n]["test_errors"] for n in models}
    assert (f"AB makes {errs['student_ab']} test errors against {errs['student_hard']} on hard "
            f"labels and {errs['student_kd']} by KD, and AB then KD {errs['student_ab_kd']}"
            ) in text  # fmt: skip
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in rows[0]["errors"]}
    wins = dict(seed_wins(ref, rows))
    assert (f"AB makes {mean['student_ab']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f}, ahead at {wins['student_ab'][1]} seeds of 5, and AB "
            f"then KD {mean['student_ab_kd']:.1f} against KD's {mean['student_kd']:.1f}, ahead "
            f"at {wins['student_ab_kd'][1]}:") in text  # fmt: skip
    kept = agreements(ref.result)
    hard, kd = kept["AB, then hard labels"], kept["AB, then KD"]
    init = [e for e in hard if e["stage"] == "init"]
    assert (f"after the {len(init)} epochs the connected student's units fall on the teacher's "
            f"side of zero {init[-1]['agreement']:.1%} of the time, where guessing each unit's "
            f"usual side scores {baseline(init[-1]['teacher_on']):.1%}") in text  # fmt: skip
    assert (f"{hard[-1]['agreement']:.1%} at the end on hard labels and "
            f"{kd[-1]['agreement']:.1%} by KD") in text  # fmt: skip
    readme = _readme_words()
    sd = statistics.stdev(r["errors"]["student_ab"] for r in rows)
    assert (
        f"| `ab-mnist` | AB {mean['student_ab']:.1f} ({sd:.1f}) | {wins['student_ab'][1]} of 5"
        in (readme)
    )
    assert f"AB **{errs['student_ab']}** (the same teacher {errs['teacher']}" in readme
    assert f"{init[-1]['agreement']:.1%} after the initialisation" in readme
    # the third AB student, kept beside CE from the start: its agreement, errors and seeds
    kept_on = kept["AB beside hard labels"]
    assert not any(e["stage"] == "init" for e in kept_on)
    through = errs["student_ab_throughout"]
    sd = statistics.stdev(r["errors"]["student_ab_throughout"] for r in rows)
    assert (f"AB holds them at {kept_on[-1]['agreement']:.1%} and the student makes {through}; "
            f"over five seeds {mean['student_ab_throughout']:.1f}, ahead of hard labels at "
            f"{wins['student_ab_throughout'][1]} seeds of 5") in text  # fmt: skip
    assert (f"AB kept beside CE {mean['student_ab_throughout']:.1f} ({sd:.1f}), ahead of hard "
            f"labels at {wins['student_ab_throughout'][1]} of 5") in readme  # fmt: skip
    assert f"AB kept beside CE from the start **{through}**, its units at " in readme
    assert f"{kept_on[-1]['agreement']:.1%} for the student that keeps AB beside CE" in readme


def test_the_lessons_ab_step_says_what_the_shipped_run_measured():
    """The AB step's figures: the shipped run's agreement at the end of the initialisation (the
    step's epoch), the guess beside it, and that over five seeds AB does not beat hard labels
    on average."""

    from app.ab_views import agreements, baseline

    step = _lesson_step("AB:")
    ref = load_references()[0]["ab-mnist"]
    epochs = agreements(ref.result)["AB, then hard labels"]
    at = epochs[int(step["params"]["ab_epoch"]) - 1]
    assert at["stage"] == "init" and epochs[int(step["params"]["ab_epoch"])]["stage"] == "train"
    talk = " ".join(step["talk"].split())
    assert (f"teacher's side {at['agreement']:.1%} of the time, against "
            f"{baseline(at['teacher_on']):.1%} for guessing") in talk  # fmt: skip
    rows = load_seed_study(ref)
    means = {n: statistics.mean(r["errors"][n] for r in rows) for n in ("student_ab",
                                                                       "student_hard")}  # fmt: skip
    assert "no better than on hard labels" in talk and means["student_ab"] >= means["student_hard"]
    kept_on = agreements(ref.result)["AB beside hard labels"]
    ahead = dict(seed_wins(ref, rows))["student_ab_throughout"][1]
    assert (f"its units stay at {kept_on[-1]['agreement']:.1%}, and it beats hard labels at "
            f"{ahead} seeds of 5") in talk  # fmt: skip


def test_the_fitnets_mlp_text_quotes_its_shipped_run_and_seeds():
    ref = load_references()[0]["fitnets-mlp"]
    models, history = ref.result["models"], ref.result["history"]
    text = " ".join(PRESETS["fitnets-mlp"].differences.split())
    last = history["student_fitnets"][-1]["losses"]
    assert (f"the weighted hint is {last['hint']:.0f} against CE's {last['ce']:.2f} at the end "
            "of the shipped run") in text  # fmt: skip
    errs = {n: m["test_errors"] for n, m in models.items()}
    assert (
        f"FitNets makes {errs['student_fitnets']} test errors against "
        f"{errs['student_hard']} on hard labels and {errs['student_kd']} by KD"
    ) in text
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in errs if n != "teacher"}
    assert (f"over five seeds (the table under the run) {mean['student_fitnets']:.1f} against "
            f"{mean['student_hard']:.1f} and {mean['student_kd']:.1f}, behind hard labels at "
            "every seed") in text  # fmt: skip
    assert all(r["errors"]["student_fitnets"] > r["errors"]["student_hard"] for r in rows)
    light = [r["errors"]["student_fitnets_light"] for r in rows]
    assert (f"the second FitNets student makes {errs['student_fitnets_light']}, and "
            f"{mean['student_fitnets_light']:.1f} over five seeds: ahead of hard labels at "
            f"{sum(v < r['errors']['student_hard'] for v, r in zip(light, rows, strict=True))} "
            "seeds of 5, behind KD at every seed") in text  # fmt: skip
    assert all(v > r["errors"]["student_kd"] for v, r in zip(light, rows, strict=True))


def test_the_cc_text_and_readme_quote_its_shipped_run_seeds_and_congruence():

    ref = load_references()[0]["cc-mnist"]
    errs = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    text = " ".join(PRESETS["cc-mnist"].differences.split())
    assert (f"CC makes {errs['student_cc']} test errors against {errs['student_hard']} on hard "
            f"labels and {errs['student_kd']} by KD, CC with KD {errs['student_cc_kd']}, and the "
            f"benchmark's code {errs['student_cc_code']};") in text  # fmt: skip
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in errs if n != "teacher"}
    wins = dict(seed_wins(ref, rows))
    assert (
        f"CC makes {mean['student_cc']:.1f} against hard labels' {mean['student_hard']:.1f}, "
        f"ahead at {wins['student_cc'][1]} seeds of 5, CC with KD "
        f"{mean['student_cc_kd']:.1f} against KD's {mean['student_kd']:.1f}, ahead at "
        f"{wins['student_cc_kd'][1]}, and the benchmark's code "
        f"{mean['student_cc_code']:.1f}, ahead of hard labels at "
        f"{wins['student_cc_code'][1]} and behind the paper's form at every seed"
    ) in text
    assert all(r["errors"]["student_cc_code"] > r["errors"]["student_cc"] for r in rows)
    last = {n: v[-1] for n, v in ref.result["congruence"].items()}
    assert (
        f"the paper's form ends with L_CC {last['student_cc']:.2g} to the teacher, against "
        f"{last['student_hard']:.2g} on hard labels and {last['student_kd']:.2g} by KD; the "
        f"benchmark code's student ends at {last['student_cc_code']:.2g}"
    ) in text
    assert last["student_cc"] < last["student_kd"] < last["student_cc_code"] < last["student_hard"]
    readme = _readme_words()
    sd = statistics.stdev(r["errors"]["student_cc"] for r in rows)
    assert (f"| `cc-mnist` | CC {mean['student_cc']:.1f} ({sd:.1f}) | "
            f"{wins['student_cc'][1]} of 5") in readme  # fmt: skip
    assert (f"CC **{errs['student_cc']}** (the same teacher {errs['teacher']}, hard "
            f"{errs['student_hard']}, KD {errs['student_kd']}), with KD {errs['student_cc_kd']}, "
            f"the benchmark's code {errs['student_cc_code']}") in readme  # fmt: skip
    assert f"L_CC to the teacher at the end {last['student_cc']:.2g}" in readme


def test_the_lessons_cc_step_says_what_the_shipped_run_measured():

    step = _lesson_step("CC:")
    assert step["params"]["cc_who"] == "student_cc_code"
    ref = load_references()[0]["cc-mnist"]
    last = {n: v[-1] for n, v in ref.result["congruence"].items()}
    talk = " ".join(step["talk"].split())
    assert (f"the CC student ends {last['student_cc']:.2g} from the teacher, hard labels "
            f"{last['student_hard']:.2g}, and the student trained with the code the CRD "
            f"benchmark ran as CC {last['student_cc_code']:.2g}") in talk  # fmt: skip
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in last}
    assert (
        f"the paper's loss makes {mean['student_cc']:.1f} errors, the benchmark's code "
        f"{mean['student_cc_code']:.1f}, hard labels {mean['student_hard']:.1f}"
    ) in talk


def test_the_ft_text_quotes_its_shipped_run_seeds_and_paraphraser():

    from app.ft_views import factor_gaps

    ref = load_references()[0]["ft-mnist"]
    errs = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    text = " ".join(PRESETS["ft-mnist"].differences.split())
    assert (f"FT makes {errs['student_ft']} test errors against {errs['student_hard']} on hard "
            f"labels and {errs['student_kd']} by KD") in text  # fmt: skip
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in errs if n != "teacher"}
    wins = dict(seed_wins(ref, rows))
    assert (f"{mean['student_ft']:.1f} against {mean['student_hard']:.1f}, ahead of hard labels "
            f"at {wins['student_ft'][1]} seeds of 5") in text  # fmt: skip
    gaps = factor_gaps(ref.result)
    short, long = gaps["student_ft"]["relative"][-1], gaps["student_ft_long"]["relative"][-1]
    assert f"still {short:.0%} of the layer's own size" in text and f"({long:.0%} left)" in text
    assert (f"an untrained paraphraser does as badly ({mean['student_ft_random']:.1f}, ahead at "
            f"{wins['student_ft_random'][1]})") in text  # fmt: skip
    assert (
        f"{errs['student_ft_long']} errors, and {mean['student_ft_long']:.1f} over five "
        f"seeds, ahead of hard labels at {wins['student_ft_long'][1]} seeds of 5"
    ) in text
    assert all(r["errors"]["student_ft_long"] < r["errors"]["student_ft"] for r in rows)
    assert (f"{errs['student_ft_light']} and {mean['student_ft_light']:.1f}, ahead at "
            f"{wins['student_ft_light'][1]} of 5") in text  # fmt: skip
    assert all(mean[n] > mean["student_kd"] for n in mean if n.startswith("student_ft"))
    readme = _readme_words()
    sd = statistics.stdev(r["errors"]["student_ft"] for r in rows)
    assert (f"| `ft-mnist` | FT {mean['student_ft']:.1f} ({sd:.1f}) | "
            f"{wins['student_ft'][1]} of 5") in readme  # fmt: skip
    assert (f"FT **{errs['student_ft']}** (the same teacher {errs['teacher']}, hard "
            f"{errs['student_hard']}, KD {errs['student_kd']}); from an untrained paraphraser "
            f"{errs['student_ft_random']}, after 16 paraphraser epochs {errs['student_ft_long']}, "
            f"at β = 50 {errs['student_ft_light']}") in readme  # fmt: skip
    assert f"reconstruction error {short:.0%} of the layer's size after 2 epochs" in readme


def test_the_lessons_ft_step_says_what_the_shipped_run_measured():

    from app.ft_views import factor_gaps

    step = _lesson_step("FT:")
    ref = load_references()[0]["ft-mnist"]
    gaps = factor_gaps(ref.result)
    rows = load_seed_study(ref)
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in rows[0]["errors"]}
    talk = " ".join(step["talk"].split())
    assert (f"the paraphraser still misses {gaps['student_ft']['relative'][-1]:.0%} of the layer"
            ) in talk  # fmt: skip
    assert (f"FT makes {mean['student_ft']:.1f} errors over five seeds against hard labels' "
            f"{mean['student_hard']:.1f}") in talk  # fmt: skip
    assert f"Trained 16 epochs ({gaps['student_ft_long']['relative'][-1]:.0%} missed)" in talk
    assert f"makes {mean['student_ft_long']:.1f} and beats the 2-epoch student at every" in talk
    assert all(r["errors"]["student_ft_long"] < r["errors"]["student_ft"] for r in rows)
    assert abs(mean["student_ft_random"] - mean["student_ft"]) < 10  # "does as well"


def _fsp_figures() -> dict:
    """The fsp-mnist shipped run's and seed study's figures every text about it quotes."""
    from app.fsp_views import flow_series
    from kdcore.presets_fsp import FIRST_EPOCH

    ref = load_references()[0]["fsp-mnist"]
    rows = load_seed_study(ref)
    errs = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    first = FIRST_EPOCH.values(ref.result)
    students = [n for n in errs if n != "teacher"]
    mean = {n: statistics.mean(r["errors"][n] for r in rows) for n in errs}
    first_mean = {n: statistics.mean(row_values(r, FIRST_EPOCH)[n] for r in rows)
                  for n in students}  # fmt: skip
    series = flow_series(ref.result)
    fsp, hard = series["student_fsp"], series["student_hard"]
    return {
        "errs": errs, "first": first, "mean": mean, "first_mean": first_mean,
        "sd": statistics.stdev(r["errors"]["student_fsp"] for r in rows),
        "wins": dict(seed_wins(ref, rows)), "first_wins": dict(seed_wins(ref, rows, FIRST_EPOCH)),
        "start": fsp["total"][fsp["x"].index(0)], "end": fsp["total"][-1],
        "hard_end": hard["total"][-1],
    }  # fmt: skip


def test_the_fsp_text_and_readme_quote_its_shipped_run_seeds_and_flow():
    f = _fsp_figures()
    errs, mean, wins, first = f["errs"], f["mean"], f["wins"], f["first"]
    text = " ".join(PRESETS["fsp-mnist"].differences.split())
    assert (f"the teacher makes {errs['teacher']} test errors, the student {errs['student_hard']} "
            f"on hard labels, {errs['student_kd']} by KD, {errs['student_fsp']} after FSP and "
            f"{errs['student_fsp_kd']} after FSP then KD") in text  # fmt: skip
    assert (f"FSP makes {mean['student_fsp']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f}, ahead at {wins['student_fsp'][1]} seeds of 5, and FSP "
            f"then KD {mean['student_fsp_kd']:.1f} against KD's {mean['student_kd']:.1f}, ahead "
            f"at {wins['student_fsp_kd'][1]}") in text  # fmt: skip
    fm, fw = f["first_mean"], f["first_wins"]
    assert (f"after one epoch on labels the FSP student makes {first['student_fsp']} errors "
            f"against {first['student_hard']} on hard labels ({fm['student_fsp']:.1f} against "
            f"{fm['student_hard']:.1f} over five seeds, ahead at {fw['student_fsp'][1]} of 5)"
            ) in text  # fmt: skip
    assert (f"{f['start']:,.0f} after FSP's epoch, against {f['hard_end']:,.0f} for the "
            f"hard-label student at the end; its epochs on labels take it to {f['end']:,.0f}"
            ) in text  # fmt: skip
    readme = _readme_words()
    assert (f"| `fsp-mnist` | FSP {mean['student_fsp']:.1f} ({f['sd']:.1f}) | "
            f"{wins['student_fsp'][1]} of 5") in readme  # fmt: skip
    assert (f"ResNet-20 teacher {errs['teacher']}; ResNet-8 hard {errs['student_hard']}, KD "
            f"{errs['student_kd']}, **FSP {errs['student_fsp']}**, FSP then KD "
            f"{errs['student_fsp_kd']}; after one epoch on labels hard {first['student_hard']}, "
            f"**FSP {first['student_fsp']}**") in readme  # fmt: skip
    assert (f"{f['start']:,.0f} after FSP's epoch and {f['end']:,.0f} at the end, against "
            f"{f['hard_end']:,.0f} for the hard-label student") in readme  # fmt: skip
    assert (f"optimisation: {first['student_fsp']} against {first['student_hard']} after the "
            "first)") in readme  # fmt: skip


def test_the_lessons_fsp_step_says_what_the_shipped_run_measured():
    f = _fsp_figures()
    talk = " ".join(_lesson_step("FSP:")["talk"].split())
    assert (f"{f['hard_end'] / f['start']:.0f} times nearer the teacher's than the hard-label "
            f"student's ({f['start']:,.0f} against {f['hard_end']:,.0f})") in talk  # fmt: skip
    assert (f"it makes {f['first']['student_fsp']} errors against hard labels' "
            f"{f['first']['student_hard']}") in talk  # fmt: skip
    assert (f"over five seeds FSP ends at {f['mean']['student_fsp']:.1f} errors against "
            f"{f['mean']['student_hard']:.1f}") in talk  # fmt: skip


def _review_figures() -> dict:
    """The review-mnist shipped run's and seed study's figures every text about it quotes: the
    errors, the five seeds, and the deeper levels' share of the shallowest prediction."""
    from app.review_views import level_series, path_weights, review_share

    ref = load_references()[0]["review-mnist"]
    rows = load_seed_study(ref)
    errs = {n: m["test_errors"] for n, m in ref.result["models"].items()}
    first = {n: h[0]["test_errors"] for n, h in ref.result["history"].items()}
    fusion = level_series(ref.result)["fusion"]
    return {
        "errs": errs, "first": first,
        "mean": {n: statistics.mean(r["errors"][n] for r in rows) for n in errs},
        "sd": statistics.stdev(r["errors"]["student_review"] for r in rows),
        "wins": {m: k for m, (_, k) in seed_wins(ref, rows).items()},
        "shares": [review_share(path_weights(f)) for f in (fusion[0], fusion[-1])],
    }  # fmt: skip


def test_the_review_text_readme_and_lesson_quote_its_shipped_run_and_seeds():
    f = _review_figures()
    errs, mean, wins, (start, end) = f["errs"], f["mean"], f["wins"], f["shares"]
    text = " ".join(PRESETS["review-mnist"].differences.split())
    assert (f"the teacher makes {errs['teacher']} test errors, the student {errs['student_hard']} "
            f"on hard labels, {errs['student_kd']} by KD and {errs['student_review']} by "
            "ReviewKD") in text  # fmt: skip
    assert (f"ReviewKD makes {mean['student_review']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f}, ahead at {wins['student_review']} seeds of 5, and KD "
            f"{mean['student_kd']:.1f}, ahead at {wins['student_kd']}") in text  # fmt: skip
    shares = (f"{start:.0%} of the sum behind the shallowest prediction comes from the deeper "
              f"levels after the first epoch, {end:.0%} at the end")  # fmt: skip
    assert shares in text
    readme = _readme_words()
    assert (f"| `review-mnist` | ReviewKD {mean['student_review']:.1f} ({f['sd']:.1f}) | "
            f"{wins['student_review']} of 5") in readme  # fmt: skip
    first = f["first"]
    assert (f"ResNet-20 teacher {errs['teacher']}; ResNet-8 hard {errs['student_hard']}, KD "
            f"{errs['student_kd']}, **ReviewKD {errs['student_review']}**; after the first epoch "
            f"hard {first['student_hard']}, KD {first['student_kd']}, ReviewKD "
            f"{first['student_review']}") in readme  # fmt: skip
    assert (f"{start:.0%} of the shallowest prediction comes from deeper levels after the first "
            f"epoch, {end:.0%} at the end") in readme  # fmt: skip
    talk = " ".join(_lesson_step("ReviewKD:")["talk"].split())
    assert f"{start:.0%} of the sum behind the shallowest prediction" in talk
    assert f"{end:.0%} at the end" in talk
    assert (f"ends at {errs['student_review']} errors against hard labels' "
            f"{errs['student_hard']} and KD's {errs['student_kd']}; over five seeds ReviewKD "
            f"makes {mean['student_review']:.1f} against {mean['student_hard']:.1f} and KD "
            f"{mean['student_kd']:.1f}") in talk  # fmt: skip
