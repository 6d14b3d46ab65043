"""Flow of solution procedure (Yim et al. 2017): the FSP matrix against a reference written entry
by entry and against the benchmark's code (RepDistiller's ``compute_fsp``, whose loss is the
paper's divided by each matrix's size), finite differences, its properties (bilinear, blind to
where in the map a response is, zero only for the teacher's matrices), and the method's two
stages on real images: FSP alone first (the classifier untouched), then CE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.fsp import fsp_loss, fsp_matrices, fsp_matrix
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.test_losses_relation import t64
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def maps(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def ref_fsp(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """G[x, i, j] = Σ_s Σ_t F1[x, i, s, t] · F2[x, j, s, t] / (h · w), written as loops."""
    b, m, h, w = f1.shape
    n = f2.shape[1]
    g = np.zeros((b, m, n))
    for x in range(b):
        for i in range(m):
            for j in range(n):
                g[x, i, j] = sum(f1[x, i, s, t] * f2[x, j, s, t] for s in range(h)
                                 for t in range(w)) / (h * w)  # fmt: skip
    return g


def benchmark_code(bot: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """RepDistiller's FSP.compute_fsp for one pair (its matrix is indexed [j, i])."""
    b_h, t_h = bot.shape[2], top.shape[2]
    if b_h > t_h:
        bot = F.adaptive_avg_pool2d(bot, (t_h, t_h))
    elif b_h < t_h:
        top = F.adaptive_avg_pool2d(top, (b_h, b_h))
    bot, top = bot.unsqueeze(1), top.unsqueeze(2)
    bot = bot.view(bot.shape[0], bot.shape[1], bot.shape[2], -1)
    top = top.view(top.shape[0], top.shape[1], top.shape[2], -1)
    return (bot * top).mean(-1)


def test_the_matrix_matches_the_reference_entry_by_entry():
    f1, f2 = maps(1, 2, 3, 4, 5), maps(2, 2, 6, 4, 5)
    got = fsp_matrix(t64(f1), t64(f2)).numpy()
    assert got.shape == (2, 3, 6)
    np.testing.assert_allclose(got, ref_fsp(f1, f2), rtol=1e-12)


def test_a_larger_map_is_pooled_to_the_smaller_and_a_flat_layer_is_one_position():
    f1, f2 = t64(maps(3, 2, 4, 8, 8)), t64(maps(4, 2, 5, 4, 4))
    pooled = F.adaptive_avg_pool2d(f1, (4, 4)).numpy()
    np.testing.assert_allclose(fsp_matrix(f1, f2).numpy(), ref_fsp(pooled, f2.numpy()), rtol=1e-12)
    a, b = t64(maps(5, 3, 4)), t64(maps(6, 3, 2))
    outer = torch.einsum("xi,xj->xij", a, b)  # one position: G is the outer product
    torch.testing.assert_close(fsp_matrix(a, b), outer)


@pytest.mark.parametrize("sizes", [(7, 7), (14, 7), (4, 8)])
def test_matrix_and_loss_are_the_benchmark_codes_up_to_its_mean(sizes):
    """The same matrices, transposed; its loss averages the m·n entries the paper sums."""
    h1, h2 = sizes
    s1, s2 = t64(maps(7, 3, 4, h1, h1)), t64(maps(8, 3, 6, h2, h2))
    t1, t2 = t64(maps(9, 3, 4, h1, h1)), t64(maps(10, 3, 6, h2, h2))
    ours_s, ours_t = fsp_matrix(s1, s2), fsp_matrix(t1, t2)
    code_s, code_t = benchmark_code(s1, s2), benchmark_code(t1, t2)
    torch.testing.assert_close(ours_s, code_s.transpose(1, 2))
    code_loss = (code_s - code_t).pow(2).mean()
    assert fsp_loss([ours_s], [ours_t], 1.0).item() == pytest.approx(24 * code_loss.item())


def test_the_loss_sums_the_pairs_with_one_weight():
    s = [t64(maps(11, 4, 2, 3)), t64(maps(12, 4, 3, 5))]
    t = [t64(maps(13, 4, 2, 3)), t64(maps(14, 4, 3, 5))]
    per = [float(((a - b) ** 2).sum(axis=(1, 2)).mean()) for a, b in
           zip((x.numpy() for x in s), (x.numpy() for x in t), strict=True)]  # fmt: skip
    assert fsp_loss(s, t, 0.5).item() == pytest.approx(0.5 * sum(per), rel=1e-12)
    with pytest.raises(ValueError, match="2 student FSP matrices against 1"):
        fsp_loss(s, t[:1])


def test_gradients_against_finite_differences():
    a, b = t64(maps(15, 2, 3, 4, 4), grad=True), t64(maps(16, 2, 2, 2, 2), grad=True)
    ta, tb = t64(maps(17, 2, 3, 4, 4)), t64(maps(18, 2, 2, 2, 2))
    target = fsp_matrix(ta, tb)

    def loss(x, y):
        return fsp_loss([fsp_matrix(x, y)], [target])

    assert torch.autograd.gradcheck(loss, (a, b))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 4), n=st.integers(1, 4),
       h=st.integers(1, 4), scale=st.floats(0.01, 100.0))  # fmt: skip
def test_bilinear_and_blind_to_where_in_the_map(seed, m, n, h, scale):
    """Scaling one layer scales G by as much; moving responses to other positions (the same
    move in both maps) leaves G as it was: the flow is between channels, averaged over space.
    The loss is a squared distance: zero at the teacher's matrices, positive elsewhere, the
    same either way round."""
    rng = np.random.default_rng(seed)
    f1, f2 = t64(rng.normal(size=(2, m, h, h))), t64(rng.normal(size=(2, n, h, h)))
    g = fsp_matrix(f1, f2)
    torch.testing.assert_close(fsp_matrix(scale * f1, f2), scale * g)
    perm = torch.from_numpy(rng.permutation(h * h))
    moved = [f.flatten(2)[:, :, perm].reshape(f.shape) for f in (f1, f2)]
    torch.testing.assert_close(fsp_matrix(*moved), g)
    other = fsp_matrix(t64(rng.normal(size=(2, m, h, h))), f2)
    assert fsp_loss([g], [g]).item() == 0.0
    d = fsp_loss([g], [other]).item()
    assert d >= 0.0 and d == pytest.approx(fsp_loss([other], [g]).item(), rel=1e-12)


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_the_teacher_must_have_the_students_channels(small):
    """A one-line reason where FSP cannot run: the matrices would not have the same shape."""
    resnet, mlp = build_model("resnet8", in_shape=(1, 28, 28)), build_model("mlp-30")
    with pytest.raises(ValueError, match=r"^FSP needs the teacher's channels: the student's "
                       r"hidden1 has 30, the teacher's 100$"):  # fmt: skip
        build_distiller("fsp", {"layers": "hidden1,hidden2"}, mlp, build_model("mlp-100"), small)
    with pytest.raises(ValueError, match=r"^the student has no feature 'stem'"):
        build_distiller("fsp", {}, mlp, resnet, small)
    with pytest.raises(ValueError, match="at least two layers"):
        build_distiller("fsp", {"layers": "stage1"}, resnet, resnet, small)


def test_fsp_alone_first_then_ce_without_it(small):
    """The FSP stage trains the student's layers and leaves its classifier alone; after it, CE
    (and KD at α > 0) without the FSP term, which is still measured each epoch."""
    torch.manual_seed(0)
    student = build_model("resnet8", in_shape=(1, 28, 28))
    teacher = build_model("resnet14", in_shape=(1, 28, 28)).eval()
    d = build_distiller("fsp", {"weight": 2.0}, student, teacher, small)
    x, y = small.x_train[:8], small.y_train[:8]
    with torch.no_grad():
        targets = d.teacher_targets(teacher.forward_features(x))
    assert [targets[f"fsp:{i}"].shape for i in range(3)] == [(8, 16, 16), (8, 16, 32), (8, 32, 64)]
    d.stage = "init"
    out = student.forward_features(x)
    parts = d(out, targets, Batch(x, y, torch.arange(8)))
    assert set(parts) == {"fsp"}
    layers = ["stem", "stage1", "stage2", "stage3"]
    want = fsp_loss(fsp_matrices(out.features, layers),
                    [targets[f"fsp:{i}"] for i in range(3)], 2.0)  # fmt: skip
    assert parts["fsp"].item() == pytest.approx(want.item(), rel=1e-6)
    parts["fsp"].backward()
    assert all(q.grad is None for q in student.head.parameters())
    assert all(q.grad is not None for q in student.stem.parameters())
    summary = d.epoch_summary()
    assert summary["fsp_loss"] == pytest.approx(want.item() / 2.0, rel=1e-4)
    assert len(summary["pair_loss"]) == 3
    student.zero_grad()
    d.stage = "train"
    parts = d(student.forward_features(x), targets, Batch(x, y, torch.arange(8)))
    assert set(parts) == {"ce"}
    kd = build_distiller("fsp", {"alpha": 0.9}, student, teacher, small)
    kd.stage = "train"
    assert set(kd(student.forward_features(x), targets, Batch(x, y, torch.arange(8)))) == {
        "ce", "kd"}  # fmt: skip
    one = build_distiller("fsp", {"init_epochs": 0}, student, teacher, small)
    assert [s.name for s in one.stages(3)] == ["train"]
    assert set(one(student.forward_features(x), targets, Batch(x, y, torch.arange(8)))) == {
        "ce", "fsp"}  # fmt: skip


def test_two_stages_train_on_real_images(small):
    """The FSP epochs bring the student's matrices nearer the teacher's (the second's loss below
    the first's); the epoch on labels then trains the student without the term."""
    torch.manual_seed(0)
    student = build_model("resnet8", in_shape=(1, 28, 28))
    teacher = build_model("resnet14", in_shape=(1, 28, 28))
    d = build_distiller("fsp", {"init_epochs": 2}, student, teacher, small)
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    result = distill(student, teacher, small, cfg, "fsp", distiller=d)
    assert result.ok, result.message
    assert [h.stage for h in result.history] == ["init", "init", "train"]
    assert set(result.history[0].losses) == {"fsp", "total"}
    assert "fsp" not in result.history[-1].losses and "ce" in result.history[-1].losses
    assert all(math.isfinite(v) for h in result.history for v in h.losses.values())
    first, second = (h.extra["fsp_loss"] for h in result.history[:2])
    assert 0 < second < first
