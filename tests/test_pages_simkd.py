"""AppTest for the projector page's section on SimKD: the students of the shipped run as its
records have them, every student's deployed size against its errors and its agreement with the
teacher drawn as recorded, the offer of a run where none is stored; the preset's text, the
README and the lesson step quote the shipped run and its five seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.simkd_views import label, size_points
from kdcore.presets import PRESETS
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 180
ROOT = Path(__file__).resolve().parent.parent
SIMKD = ("student_simkd", "student_simkd_f4", "student_simkd_f8")
STUDENTS = ("student_hard", "student_kd", *SIMKD, "student_hard_wide", "student_kd_wide")


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_labels_and_points_come_from_the_runs_records():
    models = load_references()[0]["simkd-mnist"].result["models"]
    assert label(models["student_simkd_f4"]) == "mlp-30 · SimKD f = 4"
    assert label(models["student_kd_wide"]) == "mlp-110 · KD"
    assert label(models["student_hard"]) == "mlp-30 · hard labels"  # the registry's baseline
    points = size_points({"models": models})
    assert [p["name"] for p in points] == list(STUDENTS)  # the teacher is a line, not a point
    assert all(p["params"] == models[p["name"]]["params"] for p in points)
    assert size_points({}) == []


def test_the_section_draws_the_shipped_runs_students_sizes_and_agreement(store_path):
    ref = load_references()[0]["simkd-mnist"]
    models, reuse = ref.result["models"], ref.result["reuse"]
    at = run_page("projector.py", TIMEOUT)
    shown = {m.label: m.value for m in at.metric}
    for name in STUDENTS:
        assert shown[name] == f"{models[name]['test_errors']} errors"
    size = _chart(at, "simkd_size")
    points = [d for d in size["data"] if d["mode"] == "markers+text"]
    assert [d["name"] for d in points] == [label(models[n]) for n in STUDENTS]
    for d, name in zip(points, STUDENTS, strict=True):
        assert plotly_array(d["x"]).tolist() == [models[name]["params"]]
        assert plotly_array(d["y"]).tolist() == [models[name]["test_errors"]]
    # the three factors joined by one line, in order of size; the teacher a dashed line
    joined = [d for d in size["data"] if d["mode"] == "lines"]
    assert len(joined) == 1 and len(plotly_array(joined[0]["x"])) == 3
    assert size["layout"]["shapes"][0]["y0"] == models["teacher"]["test_errors"]
    lines = _chart(at, "simkd_agree")["data"]
    assert [d["name"] for d in lines] == [label(models[n]) for n in STUDENTS]
    for d, name in zip(lines, STUDENTS, strict=True):
        recorded = [100 * v for v in reuse["agreement"][name]]
        assert plotly_array(d["y"]).tolist() == pytest.approx(recorded)
    last, gap = reuse["agreement"]["student_simkd"][-1], reuse["gap"]["student_simkd"]
    caption = " ".join(c.value for c in at.caption)
    assert f"mlp-30 · SimKD f = 2 {100 * last:.1f}%" in caption
    assert f"mlp-30 · SimKD f = 2 {gap[0]:.3f} → {gap[-1]:.3f}" in caption
    assert not at.exception


def test_with_no_run_the_section_offers_one(no_shipped, store_path):
    at = run_page("projector.py", TIMEOUT)
    assert any("No completed simkd-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_simkd" for b in at.button)
    charts = {c.key for c in at.get("plotly_chart")}
    assert not {"simkd_size", "simkd_agree"} & charts


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run_and_five_seeds():
    study = shipped_study("simkd-mnist")
    ref, e, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins
    p = {m: r["params"] for m, r in ref.result["models"].items()}

    agree = {m: 100 * v[-1] for m, v in ref.result["reuse"]["agreement"].items()}
    text = " ".join(PRESETS["simkd-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the 30-30 student {e['student_hard']} "
            f"on hard labels, {e['student_kd']} by KD and {e['student_simkd']} with SimKD at f = "
            f"2 ({p['student_simkd']:,} parameters deployed), {e['student_simkd_f4']} at f = 4 "
            f"({p['student_simkd_f4']:,}) and {e['student_simkd_f8']} at f = 8 "
            f"({p['student_simkd_f8']:,}); the 110-110 student ({p['student_hard_wide']:,}) "
            f"{e['student_hard_wide']} on hard labels and {e['student_kd_wide']} by KD. Over five "
            f"seeds (the table under the run) SimKD makes {mean['student_simkd']:.1f} at f = 2, "
            f"{mean['student_simkd_f4']:.1f} at 4 and {mean['student_simkd_f8']:.1f} at 8, against "
            f"hard labels' {mean['student_hard']:.1f} and KD's {mean['student_kd']:.1f}, ahead of "
            f"KD at {wins('student_simkd', 'student_kd')}, "
            f"{wins('student_simkd_f4', 'student_kd')} and "
            f"{wins('student_simkd_f8', 'student_kd')} seeds of 5; the 110-110 student makes "
            f"{mean['student_hard_wide']:.1f} on hard labels and {mean['student_kd_wide']:.1f} by "
            f"KD") in text  # fmt: skip
    assert (f"names the teacher's class on {agree['student_simkd']:.1f}% of the test images, "
            f"KD's 30-30 student on {agree['student_kd']:.1f}%") in text  # fmt: skip
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"| `simkd-mnist` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
            f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
            f"({sd['student_kd']:.1f}), SimKD {mean['student_simkd']:.1f} "
            f"({sd['student_simkd']:.1f}) | beat KD at {wins('student_simkd', 'student_kd')} of "
            f"5 (hard labels at {wins('student_simkd', 'student_hard')}); at f = 4 "
            f"{mean['student_simkd_f4']:.1f} ({sd['student_simkd_f4']:.1f}), at f = 8 "
            f"{mean['student_simkd_f8']:.1f} ({sd['student_simkd_f8']:.1f}); the 110-110 "
            f"student {mean['student_hard_wide']:.1f} ({sd['student_hard_wide']:.1f}) on hard "
            f"labels, {mean['student_kd_wide']:.1f} ({sd['student_kd_wide']:.1f}) by KD |"
            ) in readme  # fmt: skip
    assert (f"| `simkd-mnist` (long, 16; code `{ref.info['code_version'].split()[0]}`) | "
            f"{round(ref.info['seconds'])} s |") in readme  # fmt: skip
    assert (
        f"SimKD **{e['student_simkd']}** at f = 2, {e['student_simkd_f4']} at 4, "
        f"{e['student_simkd_f8']} at 8; a 110-110 student of about the deployed size "
        f"{e['student_hard_wide']} on hard labels, **{e['student_kd_wide']}** by KD"
    ) in readme
    from app import lesson

    step = next(s for s in lesson.load().steps if s.title.startswith("SimKD:"))
    talk = " ".join(step.talk.split())
    assert (f"over five seeds {mean['student_simkd']:.1f} against KD's {mean['student_kd']:.1f} "
            f"and the wider student's {mean['student_kd_wide']:.1f}") in talk  # fmt: skip
