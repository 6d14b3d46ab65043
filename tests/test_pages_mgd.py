"""AppTest for the projector page's section on masked generative distillation: the masks drawn
are the method's own (its mask function, from the URL's draw, at the run's shares), the
generators' errors are drawn as the shipped run recorded them, and the preset's text and the
README quote the shipped run and its five seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdcore.losses.mgd import mgd_mask
from kdcore.presets import PRESETS
from kdcore.reference import load_references
from tests.apptest import plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 180
ROOT = Path(__file__).resolve().parent.parent


def _chart(at, key: str) -> dict:
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.key == key))


def test_the_masks_are_the_methods_draw_and_the_errors_the_runs_records(store_path):
    ref = load_references()[0]["mgd-mnist"]
    models, history = ref.result["models"], ref.result["history"]
    at = run_page("projector.py", TIMEOUT, mgd_draw="7")
    assert at.number_input(key="mgd_draw").value == 7
    data = _chart(at, "mgd_mask")
    g = torch.Generator().manual_seed(7)
    ratio_c = models["student_mgd"]["method_params"]["ratio"]
    ratio_p = models["student_mgd_pixels"]["method_params"]["ratio"]
    assert (ratio_c, ratio_p) == (0.15, 0.65)
    want_c = mgd_mask((1, 64, 7, 7), ratio_c, "channels", generator=g).reshape(8, 8)
    want_p = mgd_mask((1, 64, 7, 7), ratio_p, "pixels", generator=g).reshape(7, 7)
    for trace, want in zip(data["data"], (want_c, want_p), strict=True):
        z = torch.tensor(plotly_array(trace["z"]).copy(), dtype=torch.float32).reshape(want.shape)
        assert torch.equal(z, want)
    titles = [a["text"] for a in data["layout"]["annotations"]]
    assert titles[0] == f"channels: {int((1 - want_c).sum())} of 64<br>masked (15% drawn)"
    assert titles[1] == f"pixels: {int((1 - want_p).sum())} of 49<br>masked (65% drawn)"
    lines = _chart(at, "mgd_rebuild")["data"]
    assert [d["name"] for d in lines] == ["student_mgd", "student_mgd_pixels"]
    for d in lines:
        recorded = [e["extra"]["reconstruction"] for e in history[d["name"]]]
        assert plotly_array(d["y"]).tolist() == pytest.approx(recorded)
    # another draw, another pair of masks
    other = _chart(run_page("projector.py", TIMEOUT, mgd_draw="8"), "mgd_mask")["data"]
    assert any(
        plotly_array(a["z"]).tolist() != plotly_array(b["z"]).tolist()
        for a, b in zip(other, data["data"], strict=True)
    )


def test_the_preset_and_the_readme_quote_the_shipped_run_and_five_seeds():
    study = shipped_study("mgd-mnist")
    ref, errors, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins

    rec = {m: [e["extra"]["reconstruction"] for e in ref.result["history"][m]]
           for m in ("student_mgd", "student_mgd_pixels")}  # fmt: skip
    text = " ".join(PRESETS["mgd-mnist"].differences.split())
    assert (f"the teacher makes {errors['teacher']} test errors, the student "
            f"{errors['student_hard']} on hard labels, {errors['student_kd']} by KD, "
            f"{errors['student_mgd']} with MGD on channels and {errors['student_mgd_pixels']} "
            "on pixels") in text  # fmt: skip
    assert (f"MGD on channels makes {mean['student_mgd']:.1f} against hard labels' "
            f"{mean['student_hard']:.1f} (ahead at {wins('student_mgd')} seeds of 5) and on "
            f"pixels {mean['student_mgd_pixels']:.1f} (ahead at {wins('student_mgd_pixels')}); "
            f"KD {mean['student_kd']:.1f} (ahead at {wins('student_kd')})") in text  # fmt: skip
    assert (
        f"{rec['student_mgd'][-1]:.3f} of the map's size on channels and "
        f"{rec['student_mgd_pixels'][-1]:.3f} on pixels"
    ) in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (
        f"| `mgd-mnist` | CNN teacher {mean['teacher']:.1f} ({sd['teacher']:.1f}); hard "
        f"{mean['student_hard']:.1f} ({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} "
        f"({sd['student_kd']:.1f}), MGD on channels {mean['student_mgd']:.1f} "
        f"({sd['student_mgd']:.1f}), on pixels {mean['student_mgd_pixels']:.1f} "
        f"({sd['student_mgd_pixels']:.1f}) | KD {wins('student_kd')} of 5, MGD "
        f"{wins('student_mgd')} and {wins('student_mgd_pixels')} of 5"
    ) in readme
    assert (
        f"| `mgd-mnist` (4; code `{ref.info['code_version'].split()[0]}`) | "
        f"{round(ref.info['seconds'])} s | CNN teacher {errors['teacher']}; hard "
        f"{errors['student_hard']}, KD {errors['student_kd']}, MGD on channels "
        f"{errors['student_mgd']}, on pixels {errors['student_mgd_pixels']}"
    ) in readme
    from app import lesson

    step = next(s for s in lesson.load().steps if s.title.startswith("MGD:"))
    talk = " ".join(step.talk.split())
    assert (f"within {rec['student_mgd'][-1]:.3f} and {rec['student_mgd_pixels'][-1]:.3f} of "
            f"the map's size; the students make {errors['student_mgd']} and "
            f"{errors['student_mgd_pixels']} test errors against {errors['student_hard']} on "
            f"hard labels and {errors['student_kd']} by KD, and over five seeds "
            f"{mean['student_mgd']:.1f} each against {mean['student_hard']:.1f} and KD's "
            f"{mean['student_kd']:.1f}.") in talk  # fmt: skip
    assert mean["student_mgd"] == mean["student_mgd_pixels"]  # "each", as the step says
