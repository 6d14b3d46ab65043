"""AppTest for the channels page: one test image through the shipped run's teacher (its maps, its
ICKD matrix, the channels most and least like the chosen one, all computed again here from the
shipped weights), the shipped run's students and the ICKD students' matrices as recorded, the
epoch and image in the URL, and the offer of a run where none is shipped or stored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.channel_views import alike_and_apart, cosines, spectral_order
from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.losses.ickd import icc_matrix
from kdcore.reference import load_references
from tests.apptest import chart, plotly_array, run_page
from tests.seed_study import shipped_study

TIMEOUT = 180
STUDENTS = ("student_hard", "student_kd", "student_ickd", "student_ickd_kd", "student_nst")


def _shipped():
    return load_references()[0]["ickd-mnist"]


def _teacher_channels(index: int):
    ref = _shipped()
    net = load_model(ref.path.parent / ref.weights["teacher"]["file"])[0]
    with torch.no_grad():
        feat = net.forward_features(load_mnist().x_test[index : index + 1]).features["stage3"]
    return feat[0].numpy(), icc_matrix(feat)[0].numpy()


def test_the_page_draws_one_image_and_the_shipped_runs_students(store_path):
    ref = _shipped()
    models, mats = ref.result["models"], ref.result["channel_matrices"]
    at = run_page("channels.py", TIMEOUT, img="7", ch="3", ickd_ep="2")
    shown = {m.label: m.value for m in at.metric}
    for name in STUDENTS:
        assert shown[name] == f"{models[name]['test_errors']} errors"
    # the image's channels, recomputed from the shipped teacher, in the teacher's order
    maps, icc = _teacher_channels(7)
    order = spectral_order(np.array(mats["teacher"]))
    got = plotly_array(chart(at, "ickd_image_matrix")["data"][0]["z"])
    assert np.allclose(got, icc[np.ix_(order, order)], atol=1e-5)
    alike, apart = alike_and_apart(cosines(maps), 3)
    titles = [a["text"] for a in chart(at, "ickd_pair")["layout"]["annotations"]]
    assert titles[0] == "channel 3<br>(chosen)" and titles[1].startswith(f"alike: {alike}<br>")
    assert titles[2].startswith(f"apart: {apart}<br>")
    assert any("test image #7" in c.value for c in at.caption)
    # the ICKD student's matrix at the URL's epoch, as recorded, channel by channel
    trio = chart(at, "ickd_matrices")["data"]
    student = np.array(mats["students"]["student_ickd"][1])
    assert np.allclose(plotly_array(trio[1]["z"]), student, atol=1e-9)
    assert np.allclose(plotly_array(trio[0]["z"]), np.array(mats["teacher"]), atol=1e-9)
    ranks = chart(at, "ickd_rank")["data"]
    spectra = ref.result["channel_spectrum"]["students"]
    for line in ranks:
        assert plotly_array(line["y"]).tolist() == [e["rank"] for e in spectra[line["name"]]]
    assert not at.exception


def test_a_silent_channel_has_no_alike_or_apart_and_odd_url_values_fall_back(store_path):
    maps = np.zeros((4, 2, 2))
    maps[0, 0, 0], maps[1, 0, 0], maps[1, 1, 1], maps[3, 1, 0] = 1.0, 2.0, 1.0, 5.0
    cos = cosines(maps)  # channel 2 never fires: its cosines are undefined
    assert np.isnan(cos[2]).all() and cos[0, 1] == pytest.approx(2 / np.sqrt(5))
    assert alike_and_apart(cos, 0) == (1, 3)  # 3 fires elsewhere: cosine 0
    assert alike_and_apart(cos, 2) == (None, None)
    # values no control can hold: each back at its default, with a note that the link was odd
    at = run_page("channels.py", TIMEOUT, img="99999", ch="-4", ickd_ep="abc")
    assert at.number_input(key="img").value == 0 and at.number_input(key="ch").value == 10
    assert at.number_input(key="ickd_ep").value == 3
    assert len(at.toast) >= 2
    assert not at.exception


def test_with_no_run_the_page_offers_one_and_turns_the_image_view_off(no_shipped, store_path):
    at = run_page("channels.py", TIMEOUT)
    assert any("No completed ickd-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_ickd" for b in at.button)
    assert any("this view is off" in c.value for c in at.caption)
    assert not [c for c in at.get("plotly_chart") if "ickd_" in c.proto.id]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_the_order_puts_blocks_together(n):
    rng = np.random.default_rng(n)
    blocks = np.kron(np.eye(n + 1), np.ones((3, 3)))  # n + 1 blocks of three alike channels
    perm = rng.permutation(len(blocks))
    m = blocks[np.ix_(perm, perm)] + 0.01 * rng.random(blocks.shape)
    order = spectral_order(m)
    assert sorted(order.tolist()) == list(range(len(m)))
    if n == 1:  # two blocks: each comes out whole, one after the other
        groups = [perm[order[i]] // 3 for i in range(len(m))]
        assert groups[:3] == [groups[0]] * 3 and groups[3:] == [groups[3]] * 3


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run_and_five_seeds():
    from pathlib import Path

    from app import lesson
    from kdcore.presets import PRESETS

    study = shipped_study("ickd-mnist")
    ref, e, mean, sd, wins = study.ref, study.errors, study.mean, study.sd, study.wins
    assert study.rows[0]["errors"] == e  # seed 0 is the shipped run again

    spectra, gap = ref.result["channel_spectrum"], ref.result["channel_matrices"]["gap"]
    rank = {m: v[-1]["rank"] for m, v in spectra["students"].items()}
    # "every student's lies above it, KD's highest"
    assert min(rank.values()) > spectra["teacher"]["rank"] and max(rank, key=rank.get) == (
        "student_kd"
    )
    text = " ".join(PRESETS["ickd-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the student {e['student_hard']} on "
            f"hard labels, {e['student_kd']} by KD, {e['student_ickd']} with ICKD, "
            f"{e['student_ickd_kd']} with ICKD and KD and {e['student_nst']} with NST; over five "
            f"seeds (the table under the run) ICKD makes {mean['student_ickd']:.1f} against hard "
            f"labels' {mean['student_hard']:.1f}, ahead at {wins('student_ickd')} seeds of 5, ICKD "
            f"with KD {mean['student_ickd_kd']:.1f} against KD's {mean['student_kd']:.1f}, ahead "
            f"at {wins('student_ickd_kd', 'student_kd')}, and NST {mean['student_nst']:.1f}, ahead "
            f"of hard labels at {wins('student_nst')}") in text  # fmt: skip
    assert (
        f"ICKD's own loss to the teacher on 128 test images falls from "
        f"{gap['student_ickd'][0]:.3f} to {gap['student_ickd'][-1]:.3f}"
    ) in text
    assert (f"effective rank {rank['student_ickd']:.1f} against the teacher's "
            f"{spectra['teacher']['rank']:.1f}") in text  # fmt: skip
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert (f"| `ickd-mnist` | ICKD {mean['student_ickd']:.1f} ({sd['student_ickd']:.1f}) | "
            f"{wins('student_ickd')} of 5 (ResNet-20 teacher {mean['teacher']:.1f} "
            f"({sd['teacher']:.1f}); ResNet-8 hard {mean['student_hard']:.1f} "
            f"({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} ({sd['student_kd']:.1f}), "
            f"{wins('student_kd')} of 5; ICKD with KD {mean['student_ickd_kd']:.1f} "
            f"({sd['student_ickd_kd']:.1f}), ahead of KD at "
            f"{wins('student_ickd_kd', 'student_kd')}; NST {mean['student_nst']:.1f} "
            f"({sd['student_nst']:.1f}), {wins('student_nst')} of 5) |") in readme  # fmt: skip
    assert (
        f"ResNet-8 hard {e['student_hard']}, KD {e['student_kd']}, ICKD {e['student_ickd']}, "
        f"ICKD with KD {e['student_ickd_kd']}, NST {e['student_nst']}"
    ) in readme
    step = next(s for s in lesson.load().steps if s.title.startswith("ICKD:"))
    talk = " ".join(step.talk.split())
    params = dict(step.params)
    maps, _ = _teacher_channels(int(params["img"]))
    ch = int(params["ch"])
    cos = cosines(maps)
    alike, apart = alike_and_apart(cos, ch)
    assert (f"channel {ch} fires with channel {alike} (cosine {cos[ch, alike]:.2f}) and hardly "
            f"with {apart} ({cos[ch, apart]:.2f})") in talk  # fmt: skip
    assert (
        f"over five seeds {mean['student_ickd']:.1f} against hard labels' "
        f"{mean['student_hard']:.1f} and KD's {mean['student_kd']:.1f}"
    ) in talk
