"""AppTest for the local-logits page: one test image through the shipped sdd-mnist run's teacher
(its cells at the URL's scales and temperature, which of them SD-KD weighs as complementary, the
soft targets each sends, all computed again here from the shipped weights by the loss's own
functions), the shipped run's students as recorded, odd URL values, the offer of a run where none
is shipped or stored, and the lab's one-line refusal of two MLPs."""

from __future__ import annotations

import numpy as np
import torch

from kdcore.checkpoint import load_model
from kdcore.data import load_mnist
from kdcore.losses.sdd import complementary, region_logits
from kdcore.reference import load_references
from tests.apptest import chart, plotly_array, run_page

TIMEOUT = 180
STUDENTS = ("student_hard", "student_kd", "student_sdd", "student_sdd_fine", "student_sdd_even")


def _shipped():
    return load_references()[0]["sdd-mnist"]


def _cells(index: int, scales=(1, 2, 4)) -> torch.Tensor:
    """Test image ``index``'s cells through the shipped teacher, (K, R)."""
    ref = _shipped()
    net = load_model(ref.path.parent / ref.weights["teacher"]["file"])[0]
    with torch.no_grad():
        out = net.forward_features(load_mnist().x_test[index : index + 1])
    return region_logits(out.features["cam"], out.logits, list(scales))[0]


def test_the_page_draws_one_images_cells_their_targets_and_the_shipped_students(store_path):
    ref = _shipped()
    models, kept = ref.result["models"], ref.result["cells"]
    at = run_page("local_logits.py", TIMEOUT, img="8", scales="1,2", T="2",
                  sdd_who="SD-KD, M = {1, 2, 4}", sdd_img=str(kept["indices"][1]))  # fmt: skip
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    for name in STUDENTS:
        assert shown[name] == f"{models[name]['test_errors']} errors"
    cells = _cells(8, (1, 2))
    probs = torch.softmax(cells / 2.0, 0)  # (K, 5) at the URL's T
    grid = chart(at, "sdd_grid")["data"]
    assert len(grid) == 2  # the whole image and its quarters
    assert np.allclose(plotly_array(grid[0]["z"]), probs[:, :1].max(0).values.reshape(1, 1))
    assert np.allclose(plotly_array(grid[1]["z"]), probs[:, 1:].max(0).values.reshape(2, 2),
                       atol=1e-6)  # fmt: skip
    targets = plotly_array(chart(at, "sdd_targets")["data"][0]["z"])
    assert np.allclose(targets, probs.T.numpy(), atol=1e-6)
    label = int(load_mnist().y_test[8])
    comp = int(complementary(cells[None], torch.tensor([label]))[0].sum())
    assert any(f"The whole image says {int(cells[:, 0].argmax())}; {comp} of its 4 cells" in c.value
               for c in at.caption)  # fmt: skip
    # the kept image's cells, the teacher's and the chosen student's, as recorded
    t_grid, s_grid = chart(at, "sdd_teacher")["data"], chart(at, "sdd_SD-KD, ")["data"]
    t_rec = torch.tensor(kept["teacher"][1], dtype=torch.float64)
    s_rec = torch.tensor(kept["students"]["student_sdd_fine"][1], dtype=torch.float64)
    for fig, rec in ((t_grid, t_rec), (s_grid, s_rec)):
        top = torch.softmax(rec / 4.0, 0)[:, 5:].max(0).values.reshape(4, 4)
        assert np.allclose(plotly_array(fig[2]["z"]), top.numpy(), atol=1e-6)
    lines = chart(at, "sdd_gaps")["data"]
    gaps = ref.result["cell_gap"]
    assert len(lines) == 3 * len(STUDENTS)  # a panel per scale
    for k, line in enumerate(lines):
        scale, name = ("1", "2", "4")[k // len(STUDENTS)], STUDENTS[k % len(STUDENTS)]
        assert plotly_array(line["y"]).tolist() == [e[scale] for e in gaps[name]]


def test_the_whole_image_and_its_sixteenths_without_the_quarters(store_path):
    at = run_page("local_logits.py", TIMEOUT, img="115", scales="1,4", T="1")
    assert not at.exception
    cells = _cells(115, (1, 4))  # (K, 17): the loss's own cells at M = {1, 4}
    probs = torch.softmax(cells, 0)
    grid = chart(at, "sdd_grid")["data"]
    assert len(grid) == 2
    assert np.allclose(plotly_array(grid[1]["z"]), probs[:, 1:].max(0).values.reshape(4, 4),
                       atol=1e-6)  # fmt: skip
    targets = plotly_array(chart(at, "sdd_targets")["data"][0]["z"])
    assert np.allclose(targets, probs.T.numpy(), atol=1e-6)
    comp = int(complementary(cells[None], torch.tensor([4]))[0].sum())
    assert any(f"{comp} of its 16 cells" in c.value for c in at.caption)


def test_odd_url_values_fall_back_to_the_defaults_with_a_note(store_path):
    at = run_page("local_logits.py", TIMEOUT, img="99999", scales="1,3", T="nan", sdd_who="x",
                  sdd_img="-1")  # fmt: skip
    assert not at.exception
    assert at.button_group(key="scales").value == "1,2,4"
    assert at.slider(key="T").value == 4.0
    assert len(at.toast) >= 4
    # the default image: the one whose cells disagree most with the whole
    index = at.number_input(key="img").value
    cells = _cells(index)
    label = int(load_mnist().y_test[index])
    assert int(complementary(cells[None], torch.tensor([label]))[0].sum()) >= 4
    # and below, the kept image whose teacher cells disagree most with the whole
    kept = _shipped().result["cells"]
    disagree = complementary(torch.tensor(kept["teacher"]), torch.tensor(kept["labels"])).sum(1)
    assert at.button_group(key="sdd_img").value == kept["indices"][int(disagree.argmax())]
    assert int(disagree.max()) > 0


def test_with_no_run_the_page_offers_one_and_turns_the_image_view_off(no_shipped, store_path):
    at = run_page("local_logits.py", TIMEOUT)
    assert not at.exception
    assert any("No completed sdd-mnist run" in i.value for i in at.info)
    assert any(b.key == "run_sdd" for b in at.button)
    assert any("this view is off" in c.value for c in at.caption)
    assert not [c for c in at.get("plotly_chart") if "sdd_" in c.proto.id]


def test_in_the_lab_two_mlps_disable_start_with_the_reason_and_two_resnets_are_ready(store_path):
    at = run_page("lab.py", TIMEOUT)
    at.button_group(key="method").set_value("sdd").run()
    assert not at.exception and at.button[0].disabled
    assert [w.value for w in at.warning] == [
        "SD-KD needs a logit map, which the student does not have: a model ending in average "
        "pooling and a linear head (the ResNets)"
    ]
    at.selectbox(key="teacher").set_value("resnet20")
    at.selectbox(key="student").set_value("resnet8").run()
    assert not at.exception and not at.warning and not at.button[0].disabled
    shown = {n.key: n.value for n in at.number_input}
    assert shown["beta"] == 2.0 and shown["T"] == 4.0 and shown["ce_weight"] == 0.1


def test_the_preset_the_readme_and_the_lesson_quote_the_shipped_run():
    import tomllib
    from pathlib import Path

    from kdcore.presets import PRESETS

    ref = _shipped()
    e = {m: s["test_errors"] for m, s in ref.result["models"].items()}
    first = {m: h[0]["test_errors"] for m, h in ref.result["history"].items()}
    gap = {m: v[-1] for m, v in ref.result["cell_gap"].items()}
    share = {m: h[-1]["extra"].get("complementary") for m, h in ref.result["history"].items()}
    text = " ".join(PRESETS["sdd-mnist"].differences.split())
    assert (f"the teacher makes {e['teacher']} test errors (cat-mnist's: the same recipe and "
            f"seed), the student {e['student_hard']} on hard labels, {e['student_kd']} by KD and "
            f"{e['student_sdd']} with SD-KD, {e['student_sdd_fine']} at M = {{1, 2, 4}} and "
            f"{e['student_sdd_even']} with every cell weighed alike; after the first epoch "
            f"{first['student_hard']}, {first['student_kd']} and {first['student_sdd']}. The "
            "teacher's cells name another class than its whole image in "
            f"{100 * share['student_sdd']:.1f}% of the cells at M = {{1, 2}} and "
            f"{100 * share['student_sdd_fine']:.1f}% at {{1, 2, 4}}") in text  # fmt: skip
    assert e["teacher"] == load_references()[0]["cat-mnist"].result["models"]["teacher"][
        "test_errors"]  # fmt: skip
    kd, sdd, hard, fine = (gap[m] for m in ("student_kd", "student_sdd", "student_hard",
                                            "student_sdd_fine"))  # fmt: skip
    assert (f"KD's student ends {kd['1']:.3f} from the teacher's whole-image logits, "
            f"{kd['2']:.3f} from its 2 × 2 cells and {kd['4']:.3f} from its 4 × 4 cells, further "
            f"there than hard labels' {hard['4']:.3f}; SD-KD's ends {sdd['1']:.3f}, "
            f"{sdd['2']:.3f} and {sdd['4']:.3f}, and at {{1, 2, 4}} {fine['4']:.3f} from the "
            "4 × 4 cells") in text  # fmt: skip
    assert kd["4"] > hard["4"] and fine["4"] < sdd["4"] < kd["4"] and sdd["2"] < kd["2"] / 5
    root = Path(__file__).resolve().parent.parent
    readme = " ".join((root / "README.md").read_text().split())
    row = (f"| `sdd-mnist` (3; code `{ref.info['code_version'].split()[0]}`) | "
           f"{ref.info['seconds']:,.0f} s | ResNet-20 teacher {e['teacher']} (its weights ship, "
           f"559 KB, for the cells of any test image); ResNet-8 hard {e['student_hard']}, KD "
           f"{e['student_kd']}, **SD-KD {e['student_sdd']}**, at M = {{1, 2, 4}} "
           f"{e['student_sdd_fine']}, with β = 1 {e['student_sdd_even']}; after the first epoch "
           f"hard {first['student_hard']}, KD {first['student_kd']}, SD-KD "
           f"{first['student_sdd']}; T² KL to the teacher's cells at the end, whole image, "
           "2 × 2 and 4 × 4: " + ", ".join(
               f"{name} {g['1']:.3f}, {g['2']:.3f}, {g['4']:.3f}"
               for name, g in (("hard", hard), ("KD", kd), ("SD-KD", sdd),
                               ("at {1, 2, 4}", fine))) + " |")  # fmt: skip
    assert row in readme
    lesson = tomllib.loads((root / "assets" / "lesson.toml").read_text())
    step = next(s for s in lesson["step"] if s["title"].startswith("SD-KD:"))
    talk = " ".join(step["talk"].split())
    assert (f"SD-KD makes {e['student_sdd']} errors against KD's {e['student_kd']} and hard "
            f"labels' {e['student_hard']}, and {first['student_sdd']} after the first epoch "
            f"against KD's {first['student_kd']}. KD's student, taught the whole image alone, "
            f"ends further from the teacher's 4 × 4 cells ({kd['4']:.3f}) than the hard-label "
            f"student ({hard['4']:.3f}).") in talk  # fmt: skip
    # "a 4 whose top the teacher reads as a 6 and whose lower left as a 9: 15 of its 20 cells"
    index = int(step["params"]["img"])
    cells = _cells(index)
    said = cells.argmax(0)
    assert int(load_mnist().y_test[index]) == 4 == int(said[0])
    assert said[5:7].tolist() == [6, 6] and int(said[17]) == 9  # 4 × 4: top row, lower left
    comp = complementary(cells[None], torch.tensor([4]))[0]
    assert f"{int(comp.sum())} of its {len(comp) - 1} cells" in talk
