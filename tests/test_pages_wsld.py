"""AppTest for the DKD page's section on weighted soft labels (WSLD): the page's image's two
cross-entropies and weight are the demo models', the histogram holds all 10,000 test images'
weights with the image marked; the section offers its preset's run, or draws the shipped one;
the preset's text, the README and the lesson quote the shipped run and its five seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F

from kdcore.losses.wsld import sample_weights
from kdcore.presets import PRESETS
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 120  # the first run loads MNIST and the demo models
ROOT = Path(__file__).resolve().parent.parent


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_the_section_draws_the_demo_models_weights_for_the_pages_image(no_shipped, store_path):
    from app.ui import load_demo, models_dir

    bundle = load_demo(str(models_dir()))
    at = run_page("dkd.py", TIMEOUT, digit="5", idx="2")
    index = int(bundle.by_digit[5][2])
    s, t, y = bundle.student_logits, bundle.teacher_logits, bundle.data.y_test
    w = sample_weights(s, t, y).numpy()
    shown = {m.label: m.value for m in at.metric}
    ce_s = float(F.cross_entropy(s[index : index + 1], y[index : index + 1]))
    assert shown["student's L_s on the label"] == f"{ce_s:.3g}"
    assert shown["weight of its soft label"] == f"{w[index]:.3f}"
    fig = _chart(at, "wsld_weights")
    bars = fig["data"][0]
    assert int(plotly_array(bars["y"]).sum()) == len(y) == 10_000
    marks = [s["x0"] for s in fig["layout"]["shapes"]]
    assert marks[1] == pytest.approx(w[index])
    said = next(c.value for c in at.caption if "mean weight" in c.value)
    assert f"mean weight {float(np.mean(w)):.3f}" in said
    assert f"on {100 * float(np.mean(w < 1 - np.exp(-1))):.1f}% of them" in said
    assert f"{100 * float(np.mean(w > 0.99)):.1f}% get a weight above 0.99" in said
    assert any("No completed wsld-mnist run" in i.value for i in at.info)


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run_and_five_seeds():
    study = shipped_study("wsld-mnist")
    ref, e, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins

    text = " ".join(PRESETS["wsld-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the student {e['student_hard']} on "
            f"hard labels, {e['student_kd']} by KD, {e['student_wsld']} by WSLD and "
            f"{e['student_wsld_plain']} with every weight 1; over five seeds (the table under "
            f"the run) WSLD makes {mean['student_wsld']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f}, KD's {mean['student_kd']:.1f} and the unweighted "
            f"term's {mean['student_wsld_plain']:.1f}: ahead of hard labels at "
            f"{wins('student_wsld')} seeds of 5, of KD at {wins('student_wsld', 'student_kd')} "
            f"and of the unweighted term at {wins('student_wsld', 'student_wsld_plain')}"
            ) in text  # fmt: skip
    first, last = (ref.result["history"]["student_wsld"][i]["extra"] for i in (0, -1))
    assert (f"ahead on {100 * last['student_ahead']:.1f}% of its training images "
            f"({100 * first['student_ahead']:.1f}% after the first)") in text  # fmt: skip
    assert f"the mean weight to {last['mean_weight']:.3f}" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"| `wsld-mnist` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
            f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
            f"({sd['student_kd']:.1f}), WSLD {mean['student_wsld']:.1f} "
            f"({sd['student_wsld']:.1f}) | {wins('student_wsld')} of 5 (beat KD at "
            f"{wins('student_wsld', 'student_kd')}); every weight 1, "
            f"{mean['student_wsld_plain']:.1f} ({sd['student_wsld_plain']:.1f}), "
            f"{wins('student_wsld_plain')} of 5 (WSLD ahead of it at "
            f"{wins('student_wsld', 'student_wsld_plain')}) |") in readme  # fmt: skip
    assert (f"| `wsld-mnist` (long, 16; code `{ref.info['code_version'].split()[0]}`) | "
            f"{round(ref.info['seconds'])} s |") in readme  # fmt: skip
    from app import lesson

    step = next(s for s in lesson.load().steps if s.title.startswith("WSLD:"))
    talk = " ".join(step.talk.split())
    assert (f"over five seeds {mean['student_wsld']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f}, KD's {mean['student_kd']:.1f}") in talk  # fmt: skip


def test_the_shipped_runs_weights_are_drawn_as_its_epochs_recorded(store_path):
    ref = load_references()[0]["wsld-mnist"]
    history = ref.result["history"]
    at = run_page("dkd.py", TIMEOUT)
    lines = _chart(at, "wsld_epochs")["data"]
    got = {(d["name"], d["xaxis"]): plotly_array(d["y"]).tolist() for d in lines}
    for name, label in (("student_wsld", "student_wsld"),
                        ("student_wsld_plain", "student_wsld_plain, every weight 1")):  # fmt: skip
        rec = [r["extra"] for r in history[name]]
        assert got[(label, "x")] == pytest.approx([r["mean_weight"] for r in rec])
        assert got[(label, "x2")] == pytest.approx([100 * r["student_ahead"] for r in rec])
    last = history["student_wsld"][-1]["extra"]
    assert any(f"student_wsld: mean weight {last['mean_weight']:.3f}, ahead on "
               f"{100 * last['student_ahead']:.1f}%" in c.value for c in at.caption)  # fmt: skip
