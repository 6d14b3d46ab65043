"""AppTest for the projector page's section on SRRL: the students of the shipped run as its
records have them, each SRRL student's reading by the teacher's classifier drawn as recorded,
the offer of a run where none is stored; the preset's text, the README and the lesson step quote
the shipped run and its five seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdcore.presets import PRESETS
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 180
ROOT = Path(__file__).resolve().parent.parent
SRRL = ("student_srrl", "student_srrl_fm", "student_srrl_sr")


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_the_section_draws_the_shipped_runs_students_and_readings(store_path):
    ref = load_references()[0]["srrl-mnist"]
    models, history = ref.result["models"], ref.result["history"]
    at = run_page("projector.py", TIMEOUT)
    shown = {m.label: m.value for m in at.metric}
    for name in ("student_hard", "student_kd", *SRRL):
        assert shown[name] == f"{models[name]['test_errors']} errors"
    lines = _chart(at, "srrl_read")["data"]
    assert [d["name"] for d in lines] == ["both losses", "feature statistics only",
                                          "softmax regression only"]  # fmt: skip
    for d, name in zip(lines, SRRL, strict=True):
        recorded = [100 * e["extra"]["read_accuracy"] for e in history[name]]
        assert plotly_array(d["y"]).tolist() == pytest.approx(recorded)
    last = history["student_srrl_sr"][-1]["extra"]["read_accuracy"]
    assert any(f"softmax regression only {100 * last:.1f}%" in c.value for c in at.caption)
    assert not at.exception


def test_with_no_run_the_section_offers_one(no_shipped, store_path):
    at = run_page("projector.py", TIMEOUT)
    assert any("No completed srrl-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_srrl" for b in at.button)
    assert not [c for c in at.get("plotly_chart") if c.key == "srrl_read"]


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run_and_five_seeds():
    study = shipped_study("srrl-mnist")
    ref, e, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins

    read = [100 * ref.result["history"][m][-1]["extra"]["read_accuracy"] for m in SRRL]
    text = " ".join(PRESETS["srrl-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the student {e['student_hard']} on "
            f"hard labels, {e['student_kd']} by KD and {e['student_srrl']} with SRRL, "
            f"{e['student_srrl_fm']} with the feature statistics alone and {e['student_srrl_sr']} "
            f"with the softmax regression alone; over five seeds (the table under the run) SRRL "
            f"makes {mean['student_srrl']:.1f} against hard labels' {mean['student_hard']:.1f} and "
            f"KD's {mean['student_kd']:.1f}, ahead of hard labels at {wins('student_srrl')} seeds "
            f"of 5 and of KD at {wins('student_srrl', 'student_kd')}; the feature statistics "
            f"alone {mean['student_srrl_fm']:.1f} (ahead of KD at none), the softmax regression "
            f"alone {mean['student_srrl_sr']:.1f} (at {wins('student_srrl_sr', 'student_kd')})"
            ) in text  # fmt: skip
    assert wins("student_srrl_fm", "student_kd") == 0
    assert f"right on {min(read):.1f}% to {max(read):.1f}% of the training images" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"| `srrl-mnist` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
            f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
            f"({sd['student_kd']:.1f}), SRRL {mean['student_srrl']:.1f} "
            f"({sd['student_srrl']:.1f}) | {wins('student_srrl')} of 5 (beat KD at "
            f"{wins('student_srrl', 'student_kd')}); the feature statistics alone "
            f"{mean['student_srrl_fm']:.1f} ({sd['student_srrl_fm']:.1f}), "
            f"{wins('student_srrl_fm')} of 5; the softmax regression alone "
            f"{mean['student_srrl_sr']:.1f} ({sd['student_srrl_sr']:.1f}), "
            f"{wins('student_srrl_sr')} of 5 (beat KD at {wins('student_srrl_sr', 'student_kd')}) |"
            ) in readme  # fmt: skip
    assert (f"| `srrl-mnist` (long, 16; code `{ref.info['code_version'].split()[0]}`) | "
            f"{round(ref.info['seconds'])} s |") in readme  # fmt: skip
    assert (f"SRRL **{e['student_srrl']}**, the feature statistics alone {e['student_srrl_fm']}, "
            f"the softmax regression alone **{e['student_srrl_sr']}**") in readme  # fmt: skip
    from app import lesson

    step = next(s for s in lesson.load().steps if s.title.startswith("SRRL:"))
    talk = " ".join(step.talk.split())
    assert (f"over five seeds {mean['student_srrl']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f} and KD's {mean['student_kd']:.1f}") in talk  # fmt: skip
