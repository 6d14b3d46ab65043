"""AppTest for the temperature page's section on curriculum temperature (CTKD): the loss curve is
KD's loss of the demo student at every T of CTKD's range, the caption gives its value and slope
at the page's T; the shipped ctkd-mnist run's learned temperatures are drawn as recorded, with
λ's curriculum from the run's own parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdcore.losses.ctkd import T_INIT, curriculum
from kdcore.losses.kd import kd_loss
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page

TIMEOUT = 120  # the first run loads MNIST and the demo models


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def _caption(at, start: str) -> str:
    return next(c.value for c in at.caption if c.value.startswith(start))


def test_the_curve_is_kds_loss_over_ctkds_range_and_the_caption_its_slope(no_shipped, store_path):
    from app.ui import load_demo, models_dir

    bundle = load_demo(str(models_dir()))
    s, t = bundle.student_logits.double(), bundle.teacher_logits.double()
    at = run_page("temperature.py", TIMEOUT, T="6")
    curve = _chart(at, "ctkd_curve")["data"]
    x, y = plotly_array(curve[0]["x"]), plotly_array(curve[0]["y"])
    assert x[0] == 1.0 and x[-1] == 21.0
    for k in (0, 20, 60, -1):
        assert y[k] == pytest.approx(float(kd_loss(s, t, float(x[k]))), rel=1e-9)
    assert [c["name"] for c in curve[1:]] == ["your T = 6", f"CTKD's start, {T_INIT:.1f}"]
    line = _caption(at, "Means over the 10,000 test images")
    h = 1e-3
    slope = (float(kd_loss(s, t, 6 + h)) - float(kd_loss(s, t, 6 - h))) / (2 * h)
    assert f"the loss is {float(kd_loss(s, t, 6.0)):.3f}" in line
    assert ("moves T up" if slope > 0 else "moves T down") in line
    assert f"It is highest at T = {x[int(np.argmax(y))]:g}," in line
    assert any("No completed ctkd-mnist" in i.value for i in at.info)
    # outside CTKD's range the page says so, and marks no point off the curve
    at = run_page("temperature.py", TIMEOUT, T="30")
    assert "CTKD's temperature never goes there" in _caption(at, "Means over the 10,000")
    assert len(_chart(at, "ctkd_curve")["data"]) == 2


def test_the_shipped_run_draws_each_learned_temperature_as_recorded(store_path):
    ref = load_references()[0]["ctkd-mnist"]
    history, models = ref.result["history"], ref.result["models"]
    at = run_page("temperature.py", TIMEOUT, T="2")
    data = _chart(at, "ctkd_paths")["data"]
    names = [d["name"] for d in data]
    ctkd = [n for n in models if models[n]["method"] == "ctkd"]
    assert ctkd == ["student_ctkd", "student_ctkd_t4"]
    for name in ctkd:
        trace = next(d for d in data if d["name"].startswith(f"{name} (from"))
        recorded = [v for e in history[name] for v in e["extra"]["temperature_trace"]]
        recorded.append(history[name][-1]["extra"]["temperature"])
        assert plotly_array(trace["y"]).tolist() == pytest.approx(recorded)
        assert plotly_array(trace["x"])[-1] == len(history[name])
    assert recorded[0] == pytest.approx(4.0, abs=1e-3)  # the second starts at KD's T
    assert "KD's fixed T = 4" in names and "your T = 2" in names
    lam = next(d for d in data if d["name"] == "λ")
    lx, ly = plotly_array(lam["x"]), plotly_array(lam["y"])
    ramp = models["student_ctkd"]["method_params"]["ramp_epochs"]
    assert ly == pytest.approx([curriculum(v, ramp) for v in lx])
    assert ly[0] == 0.0 and ly[-1] == pytest.approx(1.0)
    ends = _caption(at, "The temperature each CTKD student learned")
    end = history["student_ctkd"][-1]["extra"]["temperature"]
    low = min(recorded_ctkd := [v for e in history["student_ctkd"]
                                for v in e["extra"]["temperature_trace"]] + [end])  # fmt: skip
    assert f"student_ctkd from {T_INIT:.1f} to {end:.1f} (lowest {low:.1f}, highest " in ends
    assert max(recorded_ctkd) < 21.0
    assert np.isfinite(end) and 1.0 < end < 21.0


def test_the_preset_and_the_readme_quote_the_shipped_run_and_five_seeds():
    import statistics
    from pathlib import Path

    from app.ctkd_views import GRID, loss_by_temperature
    from kdcore.presets import PRESETS
    from kdcore.reference import load_seed_study

    ref = load_references()[0]["ctkd-mnist"]
    errors = {m: r["test_errors"] for m, r in ref.result["models"].items()}
    rows = load_seed_study(ref)
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    sd = {m: statistics.stdev(r["errors"][m] for r in rows) for m in errors}

    def wins(m: str, over: str) -> int:
        return sum(r["errors"][m] < r["errors"][over] for r in rows)

    ends = {m: ref.result["history"][m][-1]["extra"]["temperature"] for m in errors if "ctkd" in m}
    first = ref.result["history"]["student_ctkd_t4"][0]["extra"]["temperature"]
    text = " ".join(PRESETS["ctkd-mnist"].differences.split())
    assert (f"the teacher makes {errors['teacher']} test errors, the student "
            f"{errors['student_hard']} on hard labels, {errors['student_kd']} by KD and "
            f"{errors['student_ctkd']} by CTKD") in text  # fmt: skip
    assert (f"CTKD makes {mean['student_ctkd']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f} and KD's {mean['student_kd']:.1f}: ahead of hard labels "
            f"at {wins('student_ctkd', 'student_hard')} seeds of 5, of KD at "
            f"{['none', 1, 2, 3, 4, 5][wins('student_ctkd', 'student_kd')]}") in text  # fmt: skip
    assert f"ends at {ends['student_ctkd']:.1f}" in text
    assert (
        f"reaches {first:.1f} within its first epoch and ends at {ends['student_ctkd_t4']:.1f}"
        in (text)
    )
    assert (f"({errors['student_ctkd_t4']} errors; {mean['student_ctkd_t4']:.1f} over five seeds, "
            f"ahead of KD at {wins('student_ctkd_t4', 'student_kd')})") in text  # fmt: skip
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert (
        f"| `ctkd-mnist` | teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
        f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
        f"({sd['student_kd']:.1f}), CTKD {mean['student_ctkd']:.1f} "
        f"({sd['student_ctkd']:.1f}) | {wins('student_ctkd', 'student_hard')} of 5"
    ) in readme
    assert (f"teacher {errors['teacher']}; hard {errors['student_hard']}, KD "
            f"{errors['student_kd']}, CTKD {errors['student_ctkd']}, its temperature 15.6 → "
            f"{ends['student_ctkd']:.1f}; started at T = 4, CTKD {errors['student_ctkd_t4']}, 4 → "
            f"{ends['student_ctkd_t4']:.1f} |") in readme  # fmt: skip
    assert f"| {round(ref.info['seconds'])} s |" in readme
    peak = GRID[int(np.argmax(loss_by_temperature(tuple(GRID))))]
    assert f"the T where it peaks ({peak:g} for the demo models)" in readme
    # the lesson's step says the same
    from app import lesson

    step = next(s for s in lesson.load().steps if s.page == "temperature" and "CTKD" not in s.title
                and "Curriculum temperature" in s.talk)  # fmt: skip
    talk = " ".join(step.talk.split())
    assert f"it peaks at T = {peak:g}." in talk
    assert (
        f"from the official start of 15.6 to {ends['student_ctkd']:.1f}, and from KD's 4 to "
        f"{ends['student_ctkd_t4']:.1f}, {first:.1f} already after one epoch"
    ) in talk
    assert (f"CTKD makes {errors['student_ctkd']} test errors against KD's {errors['student_kd']} "
            f"and hard labels' {errors['student_hard']}; over five seeds "
            f"{mean['student_ctkd']:.1f} against {mean['student_kd']:.1f} and "
            f"{mean['student_hard']:.1f}.") in talk  # fmt: skip
