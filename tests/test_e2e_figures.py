"""Chart text a reader can read whole, checked in a real headless Chromium.

A figure builder's margins and spacing decide whether its longest labels fit: Plotly draws a tick
label past the chart's edge, or under a subplot's title, without any error. Each chart here is
built from real inputs (the shipped reference runs) or the longest labels it can be given, drawn
by Plotly in Chromium at a narrow and a wide width, and its text boxes checked
(:data:`tests.browser.LABEL_PROBLEMS`). No server: the chart is the page.
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
            charts[f"{run.name} sweep"] = preset_views.sweep_figure(res["sweep"], paper)
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
    return {"language-model results": results_figure(models, 1.0)}


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
    """The speculative and DeiT pages' stored-run charts, legends under the plot (stand-in
    numbers: only the layout is under test here)."""
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
    return {
        "speculative measured": sf.measured_figure(res, drafts),
        "speculative first word": sf.first_word_figure(first, 400),
        "speculative acceptance": sf.acceptance_figure(
            [0.5, 0.3, 0.2], [0.4, 0.4, 0.2], ["e", "a", " "], 0.9
        ),
        "deit token curves": df.token_curves(tokens),
    }


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
    [lab_charts, lm_charts, feature_and_mode_charts, stored_run_charts],
    ids=["lab", "lm", "features-modes", "stored-runs"],
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
