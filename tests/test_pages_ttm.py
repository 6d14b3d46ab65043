"""AppTest for the temperature page's section on transformed teacher matching (TTM): the page's
image's decomposition at the page's T is the demo models', term by term, and its parts add up to
TTM; the WTTM histogram holds all 10,000 test images' weights with the image's marked; the section
offers its preset's run, or draws the shipped one's entropies as recorded; the preset's text, the
README and the lesson quote the shipped run and its five seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcore.losses.ttm import decomposition, power_sum
from kdcore.presets import PRESETS
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 120  # the first run loads MNIST and the demo models
ROOT = Path(__file__).resolve().parent.parent
LABELS = ("T · KL, KD's part", "− (T − 1) · Rényi", "+ (T − 1) · H(teacher)", "= TTM")


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_the_decomposition_is_the_demo_models_at_the_pages_t(no_shipped, store_path):
    from app.ui import load_demo, models_dir

    bundle = load_demo(str(models_dir()))
    T = 6.0
    at = run_page("temperature.py", TIMEOUT, digit="2", idx="7", T="6")
    index = int(bundle.by_digit[2][7])
    s = bundle.student_logits[index : index + 1].double()
    t = bundle.teacher_logits[index : index + 1].double()
    d = {k: float(v[0]) for k, v in decomposition(s, t, T).items()}
    shown = {m.label: m.value for m in at.metric}
    want = (d["kd"], -(T - 1) * d["renyi"], (T - 1) * d["teacher_entropy"], d["ttm"])
    for label, value in zip(LABELS, want, strict=True):
        assert shown[label] == f"{value:.4f}"
    assert sum(want[:3]) == pytest.approx(want[3], abs=1e-9)
    # the three bars: the teacher at T, the student at T and at 1, each a distribution
    bars = _chart(at, "ttm_targets")["data"]
    assert [b["name"] for b in bars] == ["teacher at T = 6", "student at T = 6 (KD)",
                                         "student at 1 (TTM)"]  # fmt: skip
    got = plotly_array(bars[2]["y"])
    assert got == pytest.approx(torch.softmax(s[0], -1).numpy(), abs=1e-9)
    fig = _chart(at, "ttm_weights")
    assert int(plotly_array(fig["data"][0]["y"]).sum()) == 10_000
    w = float(power_sum(t, T)[0])
    assert fig["layout"]["shapes"][0]["x0"] == pytest.approx(w)
    assert any(f"WTTM weighs this image {w:.3f}" in c.value for c in at.caption)
    assert any("No completed ttm-mnist run" in i.value for i in at.info)


def test_a_hand_typed_student_equal_to_its_teacher_has_no_kd_loss_but_a_ttm_loss():
    """By hand, the student's logits are the typed ones: KD at T has nothing to teach it, TTM
    still asks for a softer student."""
    at = run_page("temperature.py", TIMEOUT, src="by hand", T="4")
    shown = {m.label: m.value for m in at.metric}
    assert shown[LABELS[0]] == "0.0000"
    assert float(shown["= TTM"]) > 0.1


def test_the_shipped_run_draws_each_students_entropy_as_recorded(store_path):
    ref = load_references()[0]["ttm-mnist"]
    entropy = ref.result["entropy"]
    at = run_page("temperature.py", TIMEOUT, T="4")
    lines = _chart(at, "ttm_entropy")["data"]
    got = {(d["name"], d.get("yaxis", "y")): plotly_array(d["y"]).tolist() for d in lines}
    for name in ("student_hard", "student_kd", "student_ttm", "student_ttm_weighted"):
        assert got[(name, "y")] == pytest.approx(entropy["shannon"][name])
        assert got[(name, "y2")] == pytest.approx(entropy["renyi"][name])
    assert got[("teacher", "y")][0] == pytest.approx(entropy["teacher"]["shannon"])
    last = entropy["shannon"]["student_ttm"][-1]
    assert any(f"student_ttm {last:.3f}" in c.value for c in at.caption)
    # the recorded entropies are the students' own: the TTM student far less sure than KD's
    assert entropy["shannon"]["student_ttm"][-1] > 10 * entropy["shannon"]["student_kd"][-1]


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run_and_five_seeds():
    study = shipped_study("ttm-mnist")
    ref, e, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins

    ent = ref.result["entropy"]["shannon"]
    text = " ".join(PRESETS["ttm-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the student {e['student_hard']} on "
            f"hard labels, {e['student_kd']} by KD, {e['student_ttm']} by TTM, "
            f"{e['student_ttm_weighted']} by weighted TTM and {e['student_ttm_t4']} by TTM at "
            f"T = 4; over five seeds (the table under the run) TTM makes "
            f"{mean['student_ttm']:.1f} against hard labels' {mean['student_hard']:.1f} and KD's "
            f"{mean['student_kd']:.1f}, weighted TTM {mean['student_ttm_weighted']:.1f} and TTM "
            f"at T = 4 {mean['student_ttm_t4']:.1f}: TTM ahead of hard labels at "
            f"{wins('student_ttm')} seeds of 5 and of KD at {wins('student_ttm', 'student_kd')}"
            ) in text  # fmt: skip
    assert (f"{ent['student_ttm'][-1]:.2f} nats against KD's {ent['student_kd'][-1]:.3f}"
            ) in text  # fmt: skip
    readme = " ".join((ROOT / "README.md").read_text().split())
    row = (
        f"| `ttm-mnist` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
        f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
        f"({sd['student_kd']:.1f}), TTM {mean['student_ttm']:.1f} ({sd['student_ttm']:.1f}) "
        f"| {wins('student_ttm')} of 5 (beat KD at {wins('student_ttm', 'student_kd')}); "
    )
    for m, said in (("student_ttm_weighted", "weighted"), ("student_ttm_t4", "at T = 4")):
        row += (
            f"{said} {mean[m]:.1f} ({sd[m]:.1f}), {wins(m)} of 5 (beat KD at "
            f"{wins(m, 'student_kd')})"
        )
        row += "; " if m == "student_ttm_weighted" else " |"
    assert row in readme
    assert (f"| `ttm-mnist` (long, 16; code `{ref.info['code_version'].split()[0]}`) | "
            f"{round(ref.info['seconds'])} s |") in readme  # fmt: skip
    from app import lesson

    step = next(s for s in lesson.load().steps if s.title.startswith("TTM:"))
    talk = " ".join(step.talk.split())
    assert (f"over five seeds {mean['student_ttm']:.1f} against KD's {mean['student_kd']:.1f} "
            f"and hard labels' {mean['student_hard']:.1f}") in talk  # fmt: skip
    assert f"{ent['student_ttm'][-1]:.2f} nats against KD's {ent['student_kd'][-1]:.2f}" in talk
