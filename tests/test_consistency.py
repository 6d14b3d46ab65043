"""What the teacher sees while the student learns (Beyer et al. 2022): the four kinds of teacher
view, mixup, the distillation step that takes a view, and the consistent-teaching preset."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.consistency import KINDS, mixup, teacher_views, view_for
from kdcore.data import Dataset, random_shift
from kdcore.distill import build_distiller, make_step
from kdcore.models import build_model
from kdcore.presets_consistent import STUDENTS, fidelity
from kdcore.runner import PRESETS, run_preset
from kdcore.train import Batch
from tests.tiny_mnist import write_tiny_mnist


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _batch(x_train: torch.Tensor, idx: list[int], shift: int = 2) -> Batch:
    idx_t = torch.tensor(idx)
    x = random_shift(x_train[idx_t], shift, torch.Generator().manual_seed(1))
    return Batch(x, torch.zeros(len(idx), dtype=torch.long), idx_t, {})


def test_fixed_and_consistent_take_the_trainers_own_path():
    x = _images()
    assert view_for("fixed", x, 2, 0) is None and view_for("consistent", x, 2, 0) is None
    with pytest.raises(ValueError, match="unknown teacher view 'same'"):
        view_for("same", x, 2, 0)
    with pytest.raises(ValueError, match="jittered"):
        view_for("independent", x, 0, 0)


def test_an_independent_view_is_another_shift_of_the_clean_image():
    x = _images()
    batch = _batch(x, [4, 1, 3])
    seen, shown = view_for("independent", x, 2, seed=5)(batch)
    assert seen is batch.x  # the student's input is the trainer's own jittered batch
    want = random_shift(x[batch.index], 2, torch.Generator().manual_seed(5 + 7919))
    torch.testing.assert_close(shown, want, rtol=0, atol=0)
    assert not torch.equal(shown, seen)


def test_function_matching_shows_both_models_the_same_mixed_images():
    x = _images()
    batch = _batch(x, [0, 2, 5, 1])
    seen, shown = view_for("function-matching", x, 2, seed=3)(batch)
    assert seen is shown
    gen = torch.Generator().manual_seed(3 + 7919)
    pair = torch.randperm(4, generator=gen)
    lam = torch.rand(4, generator=gen).view(4, 1, 1, 1)
    torch.testing.assert_close(seen, lam * batch.x + (1 - lam) * batch.x[pair])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(0, 10_000))
def test_mixup_stays_between_the_images_it_mixes(b, seed):
    x = torch.rand(b, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    out = mixup(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape
    assert (out >= x.amin(0) - 1e-6).all() and (out <= x.amax(0) + 1e-6).all()
    same = x[:1].expand(b, -1, -1, -1)
    torch.testing.assert_close(mixup(same, torch.Generator().manual_seed(seed)), same)


def test_teacher_views_for_one_image():
    x, partner = _images(1, 0), _images(1, 1)
    v = teacher_views(x, partner, 2, seed=9)
    assert list(v) == list(KINDS)
    seen = v["consistent"][0]
    assert torch.equal(v["fixed"][1], x) and torch.equal(v["fixed"][0], seen)
    assert torch.equal(v["consistent"][1], seen) and torch.equal(v["independent"][0], seen)
    assert not torch.equal(v["independent"][1], seen)
    mixed, shown = v["function-matching"]
    assert shown is mixed and not torch.equal(mixed, seen)
    # the same seed draws the same step
    again = teacher_views(x, partner, 2, seed=9)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(v.values(), again.values(), strict=True))


def test_the_step_takes_each_models_input_from_the_view():
    """With a view, the student's logits are of its input and the teacher's targets of the
    teacher's: the step's KD part is KD computed by hand on those two."""
    torch.manual_seed(0)
    student, teacher = (
        build_model("mlp-10", 10, (1, 28, 28)),
        build_model("mlp-30", 10, (1, 28, 28)),
    )
    teacher.eval()
    x = _images(8)
    data = Dataset("t", x, torch.arange(8) % 10, x, torch.arange(8) % 10, 10, (0.0,), (1.0,))
    distiller = build_distiller("kd", {"T": 2.0, "alpha": 1.0}, student, teacher, data)
    x_s, x_t = _images(8, 1), _images(8, 2)
    step = make_step(distiller, teacher, cached=False, view=lambda b: (x_s, x_t))
    out = step(student, Batch(x, data.y_train, torch.arange(8), {}))
    torch.testing.assert_close(out.logits, student(x_s))
    with torch.no_grad():
        p = F.softmax(teacher(x_t) / 2, 1)
    want = 4 * (p * (p.log() - F.log_softmax(student(x_s) / 2, 1))).sum(1).mean()
    torch.testing.assert_close(sum(out.parts.values()), want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=400, n_test=200)


TINY = {"epochs": 2, "transfer_per_class": 5, "teacher_epochs": 1, "teacher": "mlp-30",
        "student": "mlp-10"}  # fmt: skip


def test_the_preset_teaches_every_way_and_watches_each_student(tiny_dir):
    result = json.loads(json.dumps(run_preset("consistent-teaching", data_dir=tiny_dir, **TINY)))
    assert result["status"] == "completed", result["message"]
    models = result["models"]
    assert [n for n in models if n.startswith("student")] == list(STUDENTS)
    assert models["student_hard"]["method"] == "hard"
    for name in STUDENTS[1:]:
        assert models[name]["method_params"] == {"T": 1.0, "alpha": 1.0}
    for name in STUDENTS:
        m = models[name]
        assert m["kl_train"] >= 0 and m["kl_test"] >= 0 and 0 <= m["agreement"] <= 1
        recs = result["history"][name]
        assert len(recs) == 2 and all("kl_test" in r["extra"] for r in recs)
    assert result["transfer_set"] == {"size": 50, "class_counts": [5] * 10}


def test_fidelity_is_zero_for_the_teacher_itself():
    torch.manual_seed(0)
    net = build_model("mlp-10", 10, (1, 28, 28)).eval()
    x = _images(20)
    with torch.no_grad():
        z = net(x)
    f = fidelity(net, x, z, x, z, 1.0)
    assert f == {"kl_train": 0.0, "kl_test": 0.0, "agreement": 1.0}


@pytest.mark.parametrize("changes", [{"shift": 0}, {"transfer_per_class": 0}, {"T": 0}])
def test_a_config_it_cannot_run_is_refused(changes):
    with pytest.raises(ValueError):
        PRESETS["consistent-teaching"].with_changes(changes)


def test_targets_cached_in_advance_cannot_follow_a_view():
    """A view changes the teacher's input every step, so targets computed beforehand would be
    of other images: refused in one line before anything trains."""
    from kdcore.distill import distill
    from kdcore.train import TrainConfig

    torch.manual_seed(0)
    x = _images(8)
    data = Dataset("t", x, torch.arange(8) % 10, x, torch.arange(8) % 10, 10, (0.0,), (1.0,))
    student = build_model("mlp-10", 10, (1, 28, 28))
    teacher = build_model("mlp-10", 10, (1, 28, 28))
    with pytest.raises(ValueError, match="cannot follow a per-step view"):
        distill(student, teacher, data, TrainConfig(epochs=1), "kd",
                teacher_targets={"logits": torch.zeros(8, 10)},
                view=lambda b: (b.x, b.x))  # fmt: skip
