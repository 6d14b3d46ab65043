"""Factor transfer (Kim, Park & Kwak 2018): the loss against a reference written entry by entry
and against the authors' code's form, finite differences, its properties (a distance between
directions, blind to each factor's length, bounded), the two modules' shapes, and the method's
two stages on real images: the paraphraser alone first, then the student through the
translator with the paraphraser fixed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.ft import (
    Paraphraser,
    factor_width,
    ft_loss,
    reconstruction_loss,
    translator,
)
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def feats(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def ref_ft(fs: np.ndarray, ft: np.ndarray) -> float:
    """Per example: each factor over its L2 norm, the sum of absolute differences; then the
    mean over examples and over the factor's elements."""
    total = 0.0
    for s, t in zip(fs.reshape(len(fs), -1), ft.reshape(len(ft), -1), strict=True):
        s_hat = s / math.sqrt(float(s @ s))
        t_hat = t / math.sqrt(float(t @ t))
        total += float(np.abs(t_hat - s_hat).sum())
    return total / fs.reshape(len(fs), -1).size


def authors_code(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """train_student.py: criterion(utils.FT(factor_s), utils.FT(factor_t.detach())) with
    criterion = nn.L1Loss() and FT(x) = F.normalize(x.view(x.size(0), -1))."""

    def ft(x):
        return F.normalize(x.view(x.size(0), -1))

    return torch.nn.L1Loss()(ft(factor_s), ft(factor_t.detach()))


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 2, 2)])
def test_ft_matches_the_reference_and_the_authors_code(shape):
    fs, ft = feats(1, *shape), feats(2, *shape)
    got = ft_loss(t64(fs), t64(ft)).item()
    assert got == pytest.approx(ref_ft(fs, ft), rel=1e-12)
    assert got == pytest.approx(authors_code(t64(fs), t64(ft)).item(), rel=1e-12)


def test_reconstruction_is_the_authors_l1():
    rec, x = torch.randn(6, 5), torch.randn(6, 5)
    assert reconstruction_loss(rec, x).item() == pytest.approx(
        torch.nn.L1Loss()(rec, x).item(), rel=1e-6
    )


def test_ft_gradients_against_finite_differences():
    fs, ft = t64(feats(3, 4, 6), grad=True), t64(feats(4, 4, 6), grad=True)
    assert torch.autograd.gradcheck(ft_loss, (fs, ft))


def test_finite_for_a_zero_factor():
    fs = torch.randn(4, 5)
    fs[1] = 0.0
    fs.requires_grad_()
    loss = ft_loss(fs, torch.randn(4, 5))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(fs.grad).all()


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 6), d=st.integers(1, 9))
def test_ft_is_a_bounded_distance_between_directions(seed, b, d):
    """Zero when every student factor points where the teacher's does, whatever their lengths;
    never above 2/√D (two unit vectors are at most 2 apart in L2, so at most 2√D in L1)."""
    rng = np.random.default_rng(seed)
    fs, ft = rng.normal(size=(b, d)), rng.normal(size=(b, d))
    loss = ft_loss(t64(fs), t64(ft)).item()
    assert 0.0 <= loss <= 2.0 / math.sqrt(d) + 1e-12
    lengths = rng.uniform(0.01, 100.0, size=(b, 1))
    assert ft_loss(t64(lengths * ft), t64(ft)).item() == pytest.approx(0.0, abs=1e-12)
    assert ft_loss(t64(lengths * fs), t64(ft)).item() == pytest.approx(loss, rel=1e-9, abs=1e-14)
    # opposite directions: every element's difference is twice its size
    assert ft_loss(t64(-ft), t64(ft)).item() == pytest.approx(
        2 * np.mean(np.abs(ft / np.linalg.norm(ft, axis=1, keepdims=True))), rel=1e-9
    )


def test_the_modules_have_the_authors_widths():
    p = Paraphraser(300, 0.5)
    widths = [m.out_features for m in p.encoder if isinstance(m, torch.nn.Linear)]
    assert widths == [300, 150, 150] and factor_width(300, 0.5) == 150
    assert [m.out_features for m in p.decoder if isinstance(m, torch.nn.Linear)] == [150, 300, 300]
    assert (
        sum(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1 for m in p.modules()) == 6
    )
    factor, rec = p(torch.randn(4, 300))
    assert factor.shape == (4, 150) and rec.shape == (4, 300)
    assert translator(30, 150)(torch.randn(4, 30)).shape == (4, 150)
    conv = Paraphraser(8, 0.5, spatial=True)
    factor, rec = conv(torch.randn(2, 8, 7, 7))
    assert factor.shape == (2, 4, 7, 7) and rec.shape == (2, 8, 7, 7)
    assert factor_width(3, 0.1) == 1


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_the_paraphraser_trains_alone_then_stays_fixed(small):
    torch.manual_seed(0)
    student, teacher = build_model("mlp-30"), build_model("mlp-100")
    d = build_distiller("ft", {}, student, teacher, small)
    x, y = small.x_train[:16], small.y_train[:16]
    with torch.no_grad():
        targets = d.teacher_targets(teacher.eval().forward_features(x))
    d.stage = "paraphraser"
    parts = d(student.forward_features(x), targets, Batch(x, y, torch.arange(16)))
    assert set(parts) == {"rec"}
    _, rec = d.paraphraser(targets["feat"])
    assert parts["rec"].item() == pytest.approx(reconstruction_loss(rec, targets["feat"]).item())
    size = targets["feat"].abs().mean().item()
    assert d.epoch_summary() == {
        "relative_reconstruction": pytest.approx(parts["rec"].item() / size, abs=1e-5)
    }
    assert d.epoch_summary() == {}  # reset for the next epoch
    parts["rec"].backward()
    assert all(q.grad is not None for q in d.paraphraser.parameters())
    assert all(q.grad is None for q in (*d.translator.parameters(), *student.parameters()))
    d.zero_grad()
    d.stage = "train"
    out = student.forward_features(x)
    parts = d(out, targets, Batch(x, y, torch.arange(16)))
    assert set(parts) == {"ce", "ft"}
    want = 500.0 * ft_loss(d.translator(out.features["embedding"]),
                           d.paraphraser.encoder(targets["feat"])).item()  # fmt: skip
    assert parts["ft"].item() == pytest.approx(want, rel=1e-5)
    sum(parts.values()).backward()
    assert all(q.grad is None for q in d.paraphraser.parameters())
    assert all(q.grad is not None for q in d.translator.parameters())


@pytest.mark.parametrize("arch", [("mlp-30", "mlp-100"), ("cnn-8", "cnn-8")])
def test_two_stages_train_on_real_images(small, arch):
    """A paraphraser epoch leaves the student as it was (its test accuracy unchanged), then
    the student trains; on CNNs the modules are convolutions on the feature maps."""
    torch.manual_seed(0)
    student, teacher = build_model(arch[0]), build_model(arch[1])
    layer = "embedding" if arch[0].startswith("mlp") else "conv2"
    params = {"student_layer": layer, "teacher_layer": layer, "init_epochs": 1}
    d = build_distiller("ft", params, student, teacher, small)
    cfg = TrainConfig(epochs=2, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    result = distill(student, teacher, small, cfg, "ft", distiller=d)
    assert result.ok, result.message
    assert [h.stage for h in result.history] == ["paraphraser", "train", "train"]
    assert set(result.history[0].losses) == {"rec", "total"}
    assert {"ce", "ft"} <= set(result.history[-1].losses)
    assert all(math.isfinite(v) for h in result.history for v in h.losses.values())
    # the paraphraser's error relative to the layer's size, recorded in its epochs only
    rel = result.history[0].extra["relative_reconstruction"]
    assert rel > 0 and "relative_reconstruction" not in result.history[-1].extra
