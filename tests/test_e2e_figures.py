"""Chart text a reader can read whole, checked in a real headless Chromium.

A figure builder's margins and spacing decide whether its longest labels fit: Plotly draws a tick
label past the chart's edge, or under a subplot's title, without any error. Each chart here is
built from real inputs (the shipped reference runs) or the longest labels it can be given, drawn
by Plotly in Chromium at a narrow and a wide width, and its text boxes checked
(:data:`tests.browser.LABEL_PROBLEMS`); the charts that once ran together on a phone are drawn at
a phone's width too. No server: the chart is the page.
"""

from __future__ import annotations

import pytest

from tests.browser import CHART_DRAWN, CHROMIUM, CHROMIUM_ARGS, LABEL_PROBLEMS, require_browser

pytestmark = pytest.mark.browser
WIDTHS = (700, 1100)  # a column of the centred layout, and the wide one


def lab_charts():
    from app import lab_ui, preset_views
    from app.reference_ui import records

    runs = records()  # every shipped run: the sweeps' model names are the longest
    charts = {
        "history curves": lab_ui.overlay_figure(runs),
        "history bars": lab_ui.errors_figure(runs),
    }
    for run in runs:  # each shipped run's own charts, as the lab shows them
        res, paper = run.result, run.result.get("paper", {})
        if res.get("bias_adjustment"):
            adj = preset_views.bias_figure(res["bias_adjustment"], paper.get("bias_adjustment"))
            charts[f"{run.name} bias"] = adj
        if res.get("sweep"):
            # on a phone too: its panels are the narrowest, one per student
            sweep = preset_views.sweep_figure(res["sweep"], paper)
            charts[f"{run.name} sweep"] = (sweep, (358, *WIDTHS))
        charts[f"{run.name} curves"] = preset_views.curves_figure(run.history, paper)
        charts[f"{run.name} live"] = lab_ui.live_figure(run.history)  # a run's progress chart
    return charts


def lm_charts():
    from app.lm_figures import LABEL, results_figure

    longest = sorted(LABEL, key=lambda k: len(LABEL[k]))[-6:]
    models = {
        k: {"bits_per_char": 1.2, "sample_valid": 0.8, "sample_nll": 1.1, "sample_distinct": 0.9}
        for k in ["teacher", *longest]
    }
    charts = {"language-model results": results_figure(models, 1.0)}
    from app.reference_ui import records

    for run in records():  # the shipped language runs as drawn: bars near their dashed line
        if run.result.get("floor_bits") is not None:
            res = run.result
            charts[f"{run.name} results"] = results_figure(res["models"], res["floor_bits"])
    return charts


def feature_and_mode_charts():
    """The hints and modes pages' charts with the labels their presets give them (the numbers
    are stand-ins: only the layout is under test here)."""
    import numpy as np

    from app import feature_figures as ff
    from app import mode_figures as mf

    rng = np.random.default_rng(0)
    maps = {"conv1": rng.random((14, 14)), "conv2": rng.random((7, 7))}
    columns = {name: maps for name in
               ("teacher", "AT student, epoch 12", "hard-label student, epoch 12")}  # fmt: skip
    models = {n: {"test_accuracy": 0.97, "test_errors": 300} for n in
              ("student_hard", "student_kd", "student_at", "student_ensemble", "teacher_1",
               "teacher_2", "teacher_3", "ensemble")}  # fmt: skip
    agree = ["teacher_1", "teacher_2", "teacher_3", "ensemble", "student_hard", "student_kd",
             "student_ensemble"]  # fmt: skip
    from app.relation_figures import heatmap_pair

    digits = rng.integers(0, 10, 64).tolist()  # a random batch: a different digit most rows
    dist = rng.random((64, 64))
    return {
        "relations heatmaps": (heatmap_pair(dist, dist, ("t", "s"), digits), (560, 900)),
        "attention maps": (ff.attention_grid(columns, list(maps)), (560, 900)),
        "hints bars": (ff.accuracy_bars(models, [*models][:3]), (280, 420)),
        "agreement": (mf.agreement_figure(agree, rng.random((7, 7)).tolist()), (700, 1100)),
        "modes bars": (mf.accuracy_bars(models, agree), (700, 1100)),
    }


def stored_run_charts():
    """The speculative, DeiT, label-smoothing, DIST and TTM stored-run charts, legends under the
    plot (stand-in numbers: only the layout is under test here; TTM's entropies the shipped
    run's)."""
    from app import deit_figures as df
    from app import spec_figures as sf
    from kdcore.presets_spec import DRAFTS

    drafts = list(DRAFTS)
    res = {k: {d: v for d in drafts} for k, v in (("expected_acceptance", 0.99),
           ("acceptance_rate", 0.98), ("expected_tokens", 4.7),
           ("tokens_per_teacher_call", 4.6))}  # fmt: skip
    words = {"the": 0.5, "a": 0.3, "my": 0.2}
    first = {"teacher": words, "plain": words, **{d: words for d in drafts}}
    curve = [0.5, 0.8, 0.9, 0.95, 0.96]
    tokens = {m: {"cls_accuracy": curve, "dist_accuracy": curve, "agreement": curve,
                  "dist_teacher": curve} for m in df.LABEL}  # fmt: skip
    from app import consistent_figures as cf
    from app.dist_views import stronger_figure
    from app.smoothing_figures import students_figure
    from kdcore.presets_smoothing import FROM, TEMPERATURES

    points = {title: [(t, 9999) for t in TEMPERATURES] for _, title in FROM}
    rows = [{"teacher": f"mlp-{w}", "teacher_params": p, "teacher_errors": 9999, "kd": 9999,
             "dist": 9999} for w, p in ((30, 24_790), (100, 89_610), (300, 328_810))]  # fmt: skip
    epochs = [{"epoch": e, "test_accuracy": 0.9, "extra": {"kl_train": 0.01, "kl_test": 0.2}}
              for e in range(1, 801)]  # fmt: skip
    history = dict.fromkeys(cf.LABELS, epochs)
    import numpy as np

    from app import ttm_views as tv
    from app.reference_ui import references

    entropy = references()[0]["ttm-mnist"].result["entropy"]  # the shipped run's, as drawn
    z = np.array([-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2])
    rng = np.random.default_rng(0)
    return {
        "ttm targets": tv.targets_figure(z, 0.3 * z, 12.5),
        "ttm weights": tv.weights_figure(1 + 6 * rng.random(10_000), 3.3, 50.0),
        "ttm weights, a log axis": tv.weights_figure(1 + 6 * rng.random(10_000) ** 9, 3.3, 50.0),
        "ttm weights at T = 1": tv.weights_figure(np.ones(100), 1.0, 1.0),
        "ttm entropy": tv.entropy_figure(entropy),
        **cat_charts(),
        **sdd_charts(),
        "consistent errors": cf.errors_figure(history, list(cf.LABELS)),
        "consistent fidelity": cf.fidelity_figure(history, list(cf.LABELS)[1:]),
        "label smoothing students": students_figure(points, 9999, 2.5),
        "dist from stronger teachers": stronger_figure(rows, 9000),
        "speculative measured": sf.measured_figure(res, drafts),
        "speculative first word": sf.first_word_figure(first, 400),
        "speculative acceptance": sf.acceptance_figure(
            [0.5, 0.3, 0.2], [0.4, 0.4, 0.2], ["e", "a", " "], 0.9
        ),
        "deit token curves": df.token_curves(tokens),
    }


def cat_charts():
    """The class-maps page's charts from the shipped cat-mnist run: ten maps a grid, the
    teacher's above a student's with the longest name, and the distance lines."""
    import numpy as np

    from app import cam_views as cv
    from app.reference_ui import references

    result = references()[0]["cat-mnist"].result
    kept, gaps = result["class_maps"], result["class_map_gap"]
    teacher = np.array(kept["teacher"][0])
    binary = np.array(kept["students"]["student_cat_binary"][0])
    return {
        "cat maps": cv.maps_figure(teacher, 1),
        "cat transferred": cv.maps_figure(cv.teacher_view(teacher, 2, True, True), 1),
        "cat pair": cv.pair_figure(teacher, binary, 1),
        "cat distance": cv.gap_figure(gaps, "pooled"),
    }


def sdd_charts():
    """The local-logits page's charts from the shipped sdd-mnist run: the teacher's cells at
    three scales, the soft targets of 21 cells (the longest row names) and the distance lines
    with the longest student names."""
    import numpy as np

    from app import sdd_views as sv
    from app.reference_ui import references

    result = references()[0]["sdd-mnist"].result
    cells = np.array(result["cells"]["teacher"][0])
    return {
        "sdd cells": sv.grid_figure(cells, (1, 2, 4), 4.0),
        "sdd targets": sv.targets_figure(cells, (1, 2, 4), 4.0),
        "sdd distance": sv.gap_figure(result["cell_gap"]),
    }


def seed_charts():
    """The seed-study charts with the longest labels: omitted-3's six columns before and after
    the bias shift (and the longest measure), teacher-assistant's nine models, the language
    presets' log axis, class-wise's wordiest measure, smooth-teacher's seven models and its
    evenness."""
    from app.reference_ui import references, seed_figure, seed_table
    from app.seed_sweeps import sweep_seeds_figure
    from kdcore.reference import load_seed_study, study_of, sweep_seeds

    refs, charts = references()[0], {}
    for preset, which in (("omitted-3", 0), ("teacher-assistant", 0),
                          ("word-vs-sequence-kd", 0), ("class-wise", 1),
                          ("smooth-teacher", 2)):  # fmt: skip
        ref, measure = refs[preset], study_of(preset)[0][which]
        rows = load_seed_study(ref)
        charts[f"{preset} seeds"] = seed_figure(seed_table(ref, rows, measure), len(rows), measure)
    # a sweep inside a study of more measures: its curves over the seeds, above the tables
    ref = refs["smooth-teacher"]
    sweeps = sweep_seeds(ref, load_seed_study(ref))
    charts["smooth-teacher sweep seeds"] = sweep_seeds_figure(sweeps, ref.result["paper"])
    return charts


@pytest.fixture(scope="module")
def page():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


@pytest.mark.parametrize(
    "charts",
    [lab_charts, lm_charts, feature_and_mode_charts, stored_run_charts, seed_charts],
    ids=["lab", "lm", "features-modes", "stored-runs", "seeds"],
)
def test_every_label_is_drawn_whole(page, charts):
    problems = []
    for name, chart in charts().items():
        fig, widths = chart if isinstance(chart, tuple) else (chart, WIDTHS)
        for width in widths:
            fig.update_layout(width=width)
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True))
            page.wait_for_function(CHART_DRAWN)
            problems += [f"{name} at {width} px: {p}" for p in page.evaluate(LABEL_PROBLEMS)]
    assert problems == [], "\n".join(problems)


# ----------------------------------------------------------------------------- on a phone

# The app draws a chart as wide as its column, so the same figure must read whole on a phone
# and on a desktop: the column of a 390- and of a 360-pixel-wide phone (Streamlit keeps 16 px
# each side), and the wide layout's column on a 1280-pixel screen.
PHONE_WIDTHS = (358, 328, 820)


# the stored-run charts drawn at a phone's width too (two panels, long axis titles)
STORED_ON_PHONE = ("label smoothing students", "dist from stronger teachers", "consistent errors",
                   "consistent fidelity", "ttm targets", "ttm weights", "ttm weights, a log axis",
                   "ttm entropy", "cat maps", "cat transferred", "cat pair",
                   "cat distance")  # fmt: skip


def phone_charts():
    """The charts whose text once ran together on a phone, from the speculative, projector,
    relations, DKD, DeiT, language-model, hints and modes pages: two panels' titles side by side,
    long axis titles, a legend over the ticks, a key past the edge. Built as the pages build
    them, with the longest labels they are given (stand-in numbers: only the layout is tested)."""
    import numpy as np

    from app import deit_figures as df
    from app import feature_figures as ff
    from app import mode_figures as mf
    from app import relation_figures as rf
    from app import spec_figures as sf
    from app.lm_figures import LABEL, results_figure
    from kdcore.presets_spec import DRAFTS

    rng = np.random.default_rng(0)
    drafts = list(DRAFTS)
    res = {k: {d: v for d in drafts} for k, v in (("expected_acceptance", 0.99),
           ("acceptance_rate", 0.98), ("expected_tokens", 4.7),
           ("tokens_per_teacher_call", 4.6))}  # fmt: skip
    words = {"the": 0.5, "a": 0.3, "my": 0.2}

    def spec_round(proposed: str, accepted: int, nxt: str) -> dict:
        return {"proposed": [ord(c) for c in proposed], "accepted": accepted, "next": ord(nxt),
                "kind": "bonus" if accepted == len(proposed) else "correction",
                "kept": accepted + 1, "text": list(proposed), "next_text": nxt}  # fmt: skip

    trace = [spec_round("the ", 4, "c"), spec_round("at s", 2, "x"), spec_round("ees ", 1, "a")]
    dist = np.geomspace(5.0, 1e-4, 101)  # the flow's distance, falling over four decades
    sv = np.linspace(0.2, 3.8, 8)[None, :] * (1 - np.exp(-np.arange(0, 101, 5) / 10))[:, None]
    spectra = [[3.0, 1.0, 0.5, 0.1, 0.05], [3.0, 1.0, 0.2, 0.01, 1e-4]]
    steps = [{"step": 25 * i, "spectrum": s} for i, s in enumerate(spectra)]
    xy = rng.normal(size=(32, 2))
    digits = rng.integers(0, 10, 64).tolist()  # a random batch: the most digit ticks
    pair = rng.random((64, 64))
    psi, stored = ("teacher ψ_D", "student ψ_D"), ("teacher", "student_hard, epoch 12")
    kept = pair[:32, :32]  # a stored rkd-mnist run keeps 32 of its 64 images' distances
    p_t = rng.random(2000)
    curve = [0.5, 0.8, 0.9, 0.95, 0.96]
    tokens = {m: {"cls_accuracy": curve, "dist_accuracy": curve, "agreement": curve,
                  "dist_teacher": curve} for m in df.LABEL}  # fmt: skip
    maps = {"conv1": rng.random((14, 14)), "conv2": rng.random((7, 7))}
    columns = {name: maps for name in
               ("teacher", "AT student, epoch 12", "hard-label student, epoch 12")}  # fmt: skip
    longest = sorted(LABEL, key=lambda k: len(LABEL[k]))[-4:]
    models = {k: {"bits_per_char": 0.9, "sample_valid": 0.9, "sample_nll": 0.7,
                  "sample_distinct": 0.8} for k in ["teacher", "hard", *longest]}  # fmt: skip
    record = [{"epoch": e, "test_accuracy": 0.9 + e / 100, "extra": {"agreement": 0.95}}
              for e in (1, 2, 3)]  # fmt: skip
    history = {"peer_1": record, "peer_2": record, "alone_1": record, "alone_2": record}
    generations = [{"name": f"generation_{g}", "test_accuracy": 0.97,
                    "soft_targets": [rng.dirichlet(np.ones(10)).tolist()]}
                   for g in range(3)]  # fmt: skip
    comparison = {n: {"test_accuracy": 0.97, "us_per_prediction": 1.0 + i} for i, n in
                  enumerate(("teacher_1", "teacher_2", "teacher_3", "ensemble", "student_hard",
                             "student_kd", "student_ensemble"))}  # fmt: skip
    capacity = [{"teacher": a, "teacher_params": n, "teacher_accuracy": 0.97,
                 "student_accuracy": 0.9} for a, n in (("mlp-30", 24790), ("mlp-100", 89610),
                                                       ("mlp-300", 328810))]  # fmt: skip
    chain = {"student_accuracy": 0.91, "assistant": "mlp-30"}
    return {
        **{f"{n} (phone)": f for n, f in stored_run_charts().items() if n in STORED_ON_PHONE},
        "speculative Eq. 1": sf.tokens_figure(0.8, 4, 3.36),
        "speculative rule": sf.acceptance_figure(
            [0.40, 0.25, 0.15, 0.12, 0.08],
            [0.55, 0.10, 0.20, 0.05, 0.10],
            ["e", "a", " ", "t", "s"],
            0.78,
        ),
        "speculative measured": sf.measured_figure(res, drafts),
        "speculative first word": sf.first_word_figure(
            {"teacher": words, "plain": words, **{d: words for d in drafts}}, 400
        ),
        "speculative animation": sf.trace_animation(trace, "draft_kd"),
        "projector flow": ff.flow_figure(dist, np.arange(0, 101, 5), sv, 0.05),
        "projector spectrum": ff.spectrum_figure(spectra, steps, "none"),
        "projector final spectra": ff.final_spectra_figure({"none": spectra, "whitening": spectra}),
        "relations distances": rf.heatmap_pair(pair, pair, psi, digits, selected=5),
        "relations stored run": rf.heatmap_pair(kept, kept, stored, digits[:32]),
        "relations PCA": rf.pca_figure(xy, xy, digits[:32], 0),
        "DKD scatter": rf.dkd_scatter_figure(p_t, rng.random(2000) * 10, (0.5, 1.0)),
        "DIST probabilities": rf.probabilities_figure(
            {
                n: rng.dirichlet(np.ones(10)).tolist()
                for n in ("teacher", "demo student", "the teacher, less sure")
            },
            ["#3b5bdb", "#e8590c", "#91a7ff"],
        ),
        "DeiT token curves": df.token_curves(tokens),
        "attention maps": ff.attention_grid(columns, list(maps)),
        "language-model results": results_figure(models, 0.65),
        "modes: mutual learning": mf.mutual_curves(history, ["peer_1", "peer_2"]),
        "modes: born-again targets": mf.soft_targets_figure(generations, 0, 7, 4.0),
        "modes: ensemble": mf.comparison_figure(comparison),
        "modes: teacher assistant": mf.capacity_figure(capacity, chain, 0.88),
        **attention_charts(),
        **hidden_charts(),
        **distilbert_charts(),
    }


def attention_charts():
    """The MiniLM page's charts as it draws them from its shipped run: the relation KLs of
    every student, and a teacher's maps beside two students' (titles of two or three lines)."""
    from app import attention_figures as af
    from app.reference_ui import records_by_preset

    res = records_by_preset()["minilm-relations"].result
    stored = res["relation_maps"]
    names = ("teacher", "hard", "attention_value")
    panels = {af.LABEL.get(n, n): stored["models"][n]["qk"] for n in names}
    live = {f"head {a + 1}": stored["models"]["teacher"]["vv"] for a in range(4)}
    return {
        "MiniLM teacher's heads": af.relation_maps_figure(live, stored["text"]),
        "MiniLM relation KLs": af.relation_kl_figure(res["models"]),
        "MiniLM KLs from the truth and the teacher": af.kl_figure(res["models"]),
        "MiniLM students' maps": af.relation_maps_figure(panels, stored["text"], cols=3),
    }


def hidden_charts():
    """The TinyBERT page's charts as it draws them from its shipped run: the layer mapping, the
    read-out R² of two models stacked, the projector's spectrum per epoch and the KL bars."""
    from app import attention_figures as af
    from app import hidden_figures as hf
    from app.reference_ui import records_by_preset
    from kdcore.losses.tinybert import layer_map

    res = records_by_preset()["tinybert-hidden"].result
    models = res["models"]
    pairs = layer_map("top", 2, 4)
    panels = {af.LABEL[n]: models[n]["readout_r2"] for n in ("hard", "hidden_top")}
    spectra = [r["extra"]["projector_sv"] for r in res["history"]["hidden_top"]]
    others = {f"{k}, last epoch": res["history"][f"hidden_{k}"][-1]["extra"]["projector_sv"]
              for k in ("uniform", "bottom")}  # fmt: skip
    return {
        "TinyBERT layer map": hf.layer_map_figure(pairs, 2, 4),
        "TinyBERT read-out R²": hf.readout_figure(panels, pairs),
        "TinyBERT projector spectrum": hf.projector_figure(spectra, others),
        "TinyBERT KLs from the truth and the teacher": af.kl_figure(models),
    }


def distilbert_charts():
    """The DistilBERT page's charts as it draws them from its shipped run: the blocks copied,
    every start before training (made up: the page computes them live), the students' curves
    and the ablation beside the paper's Table 4."""
    from app import distilbert_figures as bf
    from app.reference_ui import records_by_preset
    from kdcore.presets_distilbert import DISTILBERT

    res = records_by_preset()["distilbert"].result
    models, floor = res["models"], res["floor_bits"]
    starts = {(1, 2): 0.28, (1, 3): 0.15, (1, 4): 0.36, (2, 3): 5.6, (2, 4): 6.6, (3, 4): 7.1}
    curves = {
        n: [
            models[n]["start_kl_true"],
            *(r["extra"]["bits_per_char"] - floor for r in res["history"][n]),
        ]
        for n in DISTILBERT
    }
    copied = {n for n in DISTILBERT if models[n]["method_params"].get("init") == "teacher"}
    full = models["distilbert"]["kl_true"]
    ours = {n: models[n]["kl_true"] - full for n in DISTILBERT if n not in ("hard", "distilbert")}
    return {
        "DistilBERT blocks copied": bf.init_figure((1, 3), 4),
        "DistilBERT starts": bf.starts_figure(starts, (1, 3), 3.97, 0.0033),
        "DistilBERT curves": bf.curves_figure(curves, copied, models["teacher"]["kl_true"]),
        "DistilBERT ablation": bf.ablation_figure(ours, res["paper"]["ablation_glue_delta"]),
    }  # fmt: skip


def test_every_label_is_drawn_whole_on_a_phone(page):
    """The charts of :func:`phone_charts` at a phone's width and a desktop's: every title, tick
    label and legend entry whole and on its own. Plotly.js is loaded once and each chart drawn
    into the same page (reloading it per chart took most of the time)."""
    from plotly.offline import get_plotlyjs

    page.set_content(f"<html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script>"
                     "</head><body></body></html>")  # fmt: skip
    problems = []
    for name, fig in phone_charts().items():
        for width in PHONE_WIDTHS:
            page.evaluate(
                """async ([spec, width]) => {
                    document.querySelectorAll('.js-plotly-plot').forEach(Plotly.purge);
                    document.body.innerHTML = '<div id="chart"></div>';
                    const fig = JSON.parse(spec);
                    await Plotly.newPlot('chart', fig.data, {...fig.layout, width},
                                         {displayModeBar: false});
                    if (fig.frames) await Plotly.addFrames('chart', fig.frames);
                }""",
                [fig.to_json(), width],
            )
            page.wait_for_function(CHART_DRAWN)
            problems += [f"{name} at {width} px: {p}" for p in page.evaluate(LABEL_PROBLEMS)]
    assert problems == [], "\n".join(problems)


# ----------------------------------------------------------------------------- square maps

SQUARE_MAPS = """() => [...document.querySelectorAll('.hm image')].map(im => {
    const r = im.getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)];
})"""


def square_map_charts():
    """The charts that draw maps cell for cell: attention maps of two layers of different sizes
    (14 x 14 and 7 x 7) side by side and alone, the relations page's distance matrices, each
    built as its page builds it."""
    import numpy as np

    from app import attention_figures as af
    from app import feature_figures as ff
    from app import relation_figures as rf

    rng = np.random.default_rng(0)
    maps = {"conv1": rng.random((14, 14)), "conv2": rng.random((7, 7))}
    three = {name: maps for name in ("teacher", "AT student, epoch 4", "hard student, epoch 4")}
    digits = rng.integers(0, 10, 40).tolist()
    dist = rng.random((40, 40))
    return {
        "attention maps": ff.attention_grid(three, list(maps)),
        "the teacher's maps alone": ff.attention_grid({"teacher": maps}, list(maps)),
        "distance matrices": rf.heatmap_pair(dist, dist, ("t", "s"), digits),
        "sixteen relation heads": af.relation_maps_figure(
            {f"head {a + 1}": np.tril(rng.random((21, 21))) for a in range(16)},
            ". the small old cat w",
        ),
        **{name: fig for name, fig in attention_charts().items() if "maps" in name},
        **{name: fig for name, fig in cat_charts().items() if name != "cat distance"},
        "sdd cells": sdd_charts()["sdd cells"],
    }


def test_every_map_is_drawn_with_square_cells(page):
    """Each panel's y axis on its own x axis's scale: tied to the first panel's x axis, a 7 x 7
    attention map beside a 14 x 14 one was drawn half as tall as wide, its digit squashed."""
    problems = []
    for name, fig in square_map_charts().items():
        for width in (560, 900):
            fig.update_layout(width=width)
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True))
            page.wait_for_function(CHART_DRAWN)
            boxes = page.evaluate(SQUARE_MAPS)
            assert boxes, name
            problems += [f"{name} at {width} px: a map {w} x {h} px" for w, h in boxes
                         if abs(w - h) > 2]  # fmt: skip
    assert problems == [], "\n".join(problems)
