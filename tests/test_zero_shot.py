"""Zero-shot distillation (Nayak et al. 2019): the class similarity and the Dirichlet
concentration against the authors' formulas, the sampled outputs (seeded, summing to one, with
the Dirichlet's mean), the impression loss against torch's soft-label cross-entropy and finite
differences, the crafting loop, the stored images' round trip, and the preset end to end,
cancellable while it crafts."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.models import build_model
from kdcore.presets_zeroshot import STUDENTS, pack_images, unpack_images
from kdcore.runner import Monitor, run_preset
from kdcore.zero_shot import (
    class_similarity,
    concentration,
    craft_impressions,
    impression_loss,
    sample_targets,
    teacher_similarity,
)
from tests.tiny_mnist import write_tiny_mnist

SETTINGS = settings(max_examples=25, deadline=None)


@given(seed=st.integers(0, 10_000), k=st.integers(3, 12), d=st.integers(2, 30))
@SETTINGS
def test_class_similarity_is_the_authors_normalised_cosine(seed, k, d):
    w = np.random.default_rng(seed).normal(size=(k, d))
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)  # each template to unit length
    cos = wn @ wn.T
    want = (cos - cos.min()) / (cos.max() - cos.min())
    got = class_similarity(torch.tensor(w)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-12)  # a class is most like itself


def test_the_concentration_peaks_on_the_class_and_scales_with_beta():
    sim = class_similarity(torch.randn(10, 16, dtype=torch.float64))
    for beta in (1.0, 0.1):
        a = concentration(sim, 3, beta)
        assert int(a.argmax()) == 3 and float(a.max()) == pytest.approx(beta + 1e-4)
        assert float(a.min()) == pytest.approx(1e-4)
    torch.testing.assert_close(concentration(sim, 3, 0.1) - 1e-4,
                               0.1 * (concentration(sim, 3, 1.0) - 1e-4))  # fmt: skip
    with pytest.raises(ValueError, match="positive"):
        concentration(sim, 3, 0.0)


def test_sampled_outputs_are_seeded_distributions_with_the_dirichlet_mean():
    sim = class_similarity(torch.randn(10, 16, dtype=torch.float64))
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    y = sample_targets(sim, 7, 1.0, 20_000, seed=5)
    assert torch.equal(torch.rand(3), before)  # the global generator is left as it was
    assert y.dtype == torch.float32 and y.shape == (20_000, 10)
    assert bool((y >= 0).all()) and torch.allclose(y.sum(1), torch.ones(20_000), atol=1e-5)
    assert torch.equal(y, sample_targets(sim, 7, 1.0, 20_000, seed=5))
    assert not torch.equal(y, sample_targets(sim, 7, 1.0, 20_000, seed=6))
    a = concentration(sim, 7, 1.0)
    torch.testing.assert_close(y.double().mean(0), a / a.sum(), atol=0.01, rtol=0)


def test_the_impression_loss_is_soft_label_cross_entropy_and_its_gradient_checks():
    z = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
    y = torch.softmax(torch.randn(6, 10, dtype=torch.float64), 1)
    torch.testing.assert_close(impression_loss(z, y, 20.0), F.cross_entropy(z / 20.0, y))
    assert torch.autograd.gradcheck(lambda v: impression_loss(v, y, 3.0), (z,))


def test_crafting_moves_noise_towards_the_targets_and_leaves_the_teacher_alone():
    torch.manual_seed(0)
    teacher = build_model("mlp-30").train()
    before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    sim = teacher_similarity(teacher)
    y = sample_targets(sim, 2, 0.1, 8, seed=0)

    def normalise(p):
        return (p - 0.1307) / 0.3081

    gen = torch.Generator().manual_seed(0)
    start = normalise(torch.rand((8, 1, 28, 28), generator=torch.Generator().manual_seed(0)))
    x, loss = craft_impressions(teacher, y, (1, 28, 28), normalise, 60, 0.05, gen, T=20.0)
    teacher.eval()
    with torch.no_grad():
        first = float(impression_loss(teacher(start), y, 20.0))
    assert x.shape == (8, 1, 28, 28) and loss < first
    pixels = x * 0.3081 + 0.1307
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    teacher.train()
    craft_impressions(teacher, y, (1, 28, 28), normalise, 2, 0.05, gen)
    assert teacher.training  # left in the mode it was in
    for n, p in teacher.named_parameters():  # unchanged, no gradient, trainable again
        assert torch.equal(p, before[n]) and p.grad is None and p.requires_grad


def test_the_stored_images_round_trip_and_a_short_block_is_one_line():
    images = np.random.default_rng(0).integers(0, 256, (2, 10, 3, 28, 28), dtype=np.uint8)
    block = json.loads(json.dumps(pack_images(images)))
    np.testing.assert_array_equal(unpack_images(block), images)
    block["shape"] = [2, 10, 4, 28, 28]
    with pytest.raises(ValueError, match="not"):
        unpack_images(block)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), n_train=600, n_test=200)


TINY = {"epochs": 1, "per_class": 3, "steps": 4, "student_epochs": 1, "teacher": "cnn-8",
        "student": "mlp-10"}  # fmt: skip


def test_the_preset_crafts_impressions_and_trains_three_students(tiny_dir):
    result = json.loads(json.dumps(run_preset("zero-shot-mnist", data_dir=tiny_dir, **TINY)))
    assert result["status"] == "completed", result["message"]
    assert list(result["models"]) == ["teacher", *STUDENTS]
    for name in STUDENTS:
        m = result["models"][name]
        assert m["method"] == "kd" and m["method_params"]["alpha"] == 1.0
        assert m["method_params"]["T"] == 20.0
        assert len(result["history"][name]) == 1
    imp = result["impressions"]
    assert imp["count"] == 2 * 10 * 3 and imp["betas"] == [1.0, 0.1]
    assert unpack_images(imp["images"]).shape == (2, 10, 3, 28, 28)
    p = np.array(imp["teacher_p"])
    assert p.shape == (2, 10, 3) and ((p >= 0) & (p <= 1)).all()
    sim = np.array(result["similarity"])
    assert sim.shape == (10, 10) and np.allclose(np.diag(sim), 1.0)


def test_a_cancel_while_crafting_keeps_the_teacher(tiny_dir):
    cancel = threading.Event()

    class CancelAfterTeacher(Monitor):  # Cancel pressed once the teacher is done
        def on_model_end(self, name: str, summary: dict) -> None:
            cancel.set()

    result = run_preset("zero-shot-mnist", data_dir=tiny_dir, cancel=cancel,
                        monitor=CancelAfterTeacher(), **TINY)  # fmt: skip
    assert result["status"] == "cancelled" and "crafting impressions" in result["message"]
    assert list(result["models"]) == ["teacher"]
