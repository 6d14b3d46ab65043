"""AppTest for the class-maps page: one test image through the shipped cat-mnist run's teacher
(its ten class maps and what CAT transfers of them at the URL's resolution, normalised and
binarised, all computed again here from the shipped weights by the loss's own functions), the
shipped run's students as recorded, odd URL values, and the offer of a run where none is shipped
or stored."""

from __future__ import annotations

import numpy as np
import torch

from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.losses.cat import binarize, transferred
from kdcore.reference import load_references
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180
STUDENTS = ("student_hard", "student_kd", "student_cat", "student_cat_alone",
            "student_cat_binary")  # fmt: skip


def _shipped():
    return load_references()[0]["cat-mnist"]


def _teacher(index: int):
    ref = _shipped()
    net = load_model(ref.path.parent / ref.weights["teacher"]["file"])[0]
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[index : index + 1])
    return out.features["cam"], out.logits[0], net.head.bias.detach()


def _panels(fig: dict) -> np.ndarray:
    return np.stack([plotly_array(t["z"]) for t in fig["data"]])


def test_the_page_draws_one_images_maps_what_cat_transfers_and_the_shipped_students(store_path):
    ref = _shipped()
    models, kept = ref.result["models"], ref.result["class_maps"]
    at = run_page("class_maps.py", TIMEOUT, img="7", r="4", norm="true", bin="true",
                  cat_who="student_cat_alone", cat_img=str(kept["indices"][2]))  # fmt: skip
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    for name in STUDENTS:
        assert shown[name] == f"{models[name]['test_errors']} errors"
    maps, logits, bias = _teacher(7)
    pred = int(logits.argmax())
    assert shown["teacher says"] == str(pred)
    # the ten maps as the teacher computes them, and what CAT sends of them at the URL's setting
    assert np.allclose(_panels(chart(at, "cat_maps")), maps[0].numpy(), atol=1e-5)
    sent = transferred(binarize(maps), 4, True)[0].numpy()
    assert np.allclose(_panels(chart(at, "cat_sent")), sent, atol=1e-6)
    assert any("each map binarised, pooled to 4 × 4, then normalised." in c.value
               for c in at.caption)  # in the order the loss takes them  # fmt: skip
    # each map's mean plus the head's bias is the logit the caption names
    z = float(maps[0, pred].mean() + bias[pred])
    assert any(f"it is the logit, {float(logits[pred]):.3f}" in c.value for c in at.caption)
    assert abs(z - float(logits[pred])) < 1e-4
    # the kept image's maps, teacher above the chosen student, as recorded
    pair = _panels(chart(at, "cat_pair"))
    assert np.allclose(pair[:10], np.array(kept["teacher"][2]), atol=1e-9)
    assert np.allclose(pair[10:], np.array(kept["students"]["student_cat_alone"][2]), atol=1e-9)
    assert any(f"Test image #{kept['indices'][2]}" in c.value for c in at.caption)
    gaps = ref.result["class_map_gap"]
    for key, which in (("cat_gap_pooled", "pooled"), ("cat_gap_full", "full")):
        lines = chart(at, key)["data"]
        assert len(lines) == len(STUDENTS)
        for line, name in zip(lines, STUDENTS, strict=True):
            assert plotly_array(line["y"]).tolist() == [e[which] for e in gaps[name]]


def test_odd_url_values_fall_back_to_the_defaults_with_a_note(store_path):
    at = run_page("class_maps.py", TIMEOUT, img="99999", r="5", cat_who="nobody", cat_img="-1")
    assert not at.exception
    assert at.number_input(key="img").value == 0
    assert at.button_group(key="r").value == 2
    assert len(at.toast) >= 3
    # at the defaults: CAT-KD's own view, the maps pooled to 2 × 2 as they are
    maps, _, _ = _teacher(0)
    sent = transferred(maps, 2, False)[0].numpy()
    assert np.allclose(_panels(chart(at, "cat_sent")), sent, atol=1e-5)


def test_with_no_run_the_page_offers_one_and_turns_the_image_view_off(no_shipped, store_path):
    at = run_page("class_maps.py", TIMEOUT)
    assert not at.exception
    assert any("No completed cat-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_cat" for b in at.button)
    assert any("this view is off" in c.value for c in at.caption)
    assert not [c for c in at.get("plotly_chart") if "cat_" in c.proto.id]


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run():
    import tomllib
    from pathlib import Path

    from kdcore.presets import PRESETS

    ref = _shipped()
    e = {m: s["test_errors"] for m, s in ref.result["models"].items()}
    first = {m: h[0]["test_errors"] for m, h in ref.result["history"].items()}
    gap = {m: v[-1] for m, v in ref.result["class_map_gap"].items()}
    right = ref.result["models"]["student_cat_binary"]["test_accuracy"]
    text = " ".join(PRESETS["cat-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors, the student {e['student_hard']} on "
            f"hard labels, {e['student_kd']} by KD and {e['student_cat']} with CAT-KD, after the "
            f"first epoch {first['student_hard']}, {first['student_kd']} and "
            f"{first['student_cat']}. Without a single label, CAT alone makes "
            f"{e['student_cat_alone']} and binarised CAT alone {e['student_cat_binary']:,} "
            f"({100 * right:.1f}% right)") in text  # fmt: skip
    assert (f"maps end {gap['student_cat']['pooled']:.3f} from the teacher's at 2 × 2 (every map "
            f"scaled to length 1), KD's {gap['student_kd']['pooled']:.3f} and hard labels' "
            f"{gap['student_hard']['pooled']:.3f}; at the maps' full 7 × 7, "
            f"{gap['student_cat']['full']:.4f} against {gap['student_kd']['full']:.4f} and "
            f"{gap['student_hard']['full']:.4f}") in text  # fmt: skip
    # the teacher's 2 × 2 is what is taught: CAT-KD nearest there, and the finer map less so
    ratio = {w: gap["student_kd"][w] / gap["student_cat"][w] for w in ("pooled", "full")}
    assert ratio["pooled"] > 5 * ratio["full"]
    root = Path(__file__).resolve().parent.parent
    readme = " ".join((root / "README.md").read_text().split())
    assert (f"| `cat-mnist` (3; code `{ref.info['code_version'].split()[0]}`) | "
            f"{ref.info['seconds']:,.0f} s | ResNet-20 teacher {e['teacher']} (its weights ship, "
            f"559 KB, for the class maps of any test image); ResNet-8 hard {e['student_hard']}, "
            f"KD {e['student_kd']}, **CAT-KD {e['student_cat']}**; without a label, CAT alone "
            f"{e['student_cat_alone']} and binarised CAT alone {e['student_cat_binary']:,}; after "
            f"the first epoch hard {first['student_hard']}, KD {first['student_kd']}, CAT-KD "
            f"{first['student_cat']}; the distance to the teacher's maps at 2 × 2 at the end: "
            f"hard {gap['student_hard']['pooled']:.3f}, KD {gap['student_kd']['pooled']:.3f}, "
            f"CAT-KD {gap['student_cat']['pooled']:.3f}, CAT alone "
            f"{gap['student_cat_alone']['pooled']:.3f}, binarised "
            f"{gap['student_cat_binary']['pooled']:.3f} |") in readme  # fmt: skip
    lesson = tomllib.loads((root / "assets" / "lesson.toml").read_text())
    step = next(s for s in lesson["step"] if s["title"].startswith("CAT-KD:"))
    talk = " ".join(step["talk"].split())
    assert (f"CAT-KD makes {e['student_cat']} errors against hard labels' {e['student_hard']} "
            f"and KD's {e['student_kd']}, and its maps end {gap['student_cat']['pooled']:.3f} "
            f"from the teacher's at 2 × 2 against KD's {gap['student_kd']['pooled']:.3f}. Without "
            f"a single label, the maps alone teach a student to {e['student_cat_alone']} errors; "
            f"binarised, where each class is seen but not how strongly, to "
            f"{e['student_cat_binary']:,}.") in talk  # fmt: skip
    # "the one deep red map, brightest just below the loop": the image the step opens on
    maps, logits, _ = _teacher(int(step["params"]["img"]))
    peaks = maps[0].amax((1, 2))
    assert int(logits.argmax()) == 9 and peaks[9] > 1.5 * peaks[torch.arange(10) != 9].max()
    row = int(maps[0, 9].argmax()) // maps.shape[-1]
    assert 3 <= row <= 5  # the loop fills rows 1-3 of the 7 × 7 grid, the stem rows 4-6


def test_in_the_lab_two_mlps_disable_start_with_the_reason_and_two_resnets_are_ready(store_path):
    at = run_page("lab.py", TIMEOUT)
    at.button_group(key="method").set_value("cat").run()
    assert not at.exception and at.button[0].disabled
    assert [w.value for w in at.warning] == [
        "CAT-KD needs class activation maps, which the student does not have: a model ending in "
        "average pooling and a linear head (the ResNets)"
    ]
    at.selectbox(key="teacher").set_value("resnet20")
    at.selectbox(key="student").set_value("resnet8").run()
    assert not at.exception and not at.warning and not at.button[0].disabled
    shown = {n.key: n.value for n in at.number_input}
    assert shown["beta"] == 0.7 and shown["resolution"] == 2 and shown["ce_weight"] == 1.0


def test_the_preset_and_the_readme_quote_the_five_seeds():
    from pathlib import Path

    from kdcore.presets import PRESETS
    from tests.seed_study import shipped_study

    study = shipped_study("cat-mnist")
    mean, sd, wins = study.mean, study.sd, study.wins
    assert study.rows[0]["errors"] == study.errors  # seed 0 is the shipped run again
    text = " ".join(PRESETS["cat-mnist"].differences.split())
    assert (f"over five seeds (the table under the run) CAT-KD makes {mean['student_cat']:.1f} "
            f"against hard labels' {mean['student_hard']:.1f} and KD's {mean['student_kd']:.1f}, "
            f"ahead of hard labels at {wins('student_cat')} seeds of 5 and of KD at "
            f"{wins('student_cat', 'student_kd')}; without a label CAT alone makes "
            f"{mean['student_cat_alone']:.1f} and binarised CAT alone "
            f"{mean['student_cat_binary']:,.1f}") in text  # fmt: skip
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert (f"| `cat-mnist` | CAT-KD {mean['student_cat']:.1f} ({sd['student_cat']:.1f}) | "
            f"{wins('student_cat')} of 5 (ResNet-20 teacher {mean['teacher']:.1f} "
            f"({sd['teacher']:.1f}); ResNet-8 hard {mean['student_hard']:.1f} "
            f"({sd['student_hard']:.1f}), KD {mean['student_kd']:.1f} ({sd['student_kd']:.1f}), "
            f"{wins('student_kd')} of 5; CAT-KD ahead of KD at "
            f"{wins('student_cat', 'student_kd')}; without a label, CAT alone "
            f"{mean['student_cat_alone']:.1f} ({sd['student_cat_alone']:.1f}) and binarised CAT "
            f"alone {mean['student_cat_binary']:,.1f} ({sd['student_cat_binary']:.1f})) "
            "|") in readme  # fmt: skip
