"""ReviewKD (Chen et al. 2021): the hierarchical context loss against a direct computation and
finite differences, its properties, the attention-based fusion term by term, and the review's
paths (each prediction reads its own level and the deeper ones only) on real images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.data import load_mnist
from kdcore.distill import build_distiller
from kdcore.losses.review import ABF, ReviewKD, as_map, hcl_level, hcl_loss
from kdcore.methods import get_method
from kdcore.models import build_model
from kdcore.train import Batch


def pooled_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average pooling to size × size by explicit sums over each cell (the map divides evenly)."""
    b, c, h, w = x.shape
    out = torch.zeros(b, c, size, size, dtype=x.dtype)
    ch, cw = h // size, w // size
    for i in range(size):
        for j in range(size):
            out[:, :, i, j] = x[:, :, i * ch : (i + 1) * ch, j * cw : (j + 1) * cw].mean((2, 3))
    return out


def hcl_direct(s: torch.Tensor, t: torch.Tensor) -> float:
    """The authors' ``hcl`` for one level, written out: weights 1, 1/2, 1/4, 1/8 on the map and
    its 4 × 4, 2 × 2 and 1 × 1 poolings, each only where smaller than the map, over their sum."""
    terms = [(1.0, ((s - t) ** 2).sum().item() / s.numel())]
    w = 1.0
    for size in (4, 2, 1):
        if size < s.shape[2]:
            w /= 2
            d = pooled_mean(s, size) - pooled_mean(t, size)
            terms.append((w, (d**2).sum().item() / d.numel()))
    return sum(w * v for w, v in terms) / sum(w for w, _ in terms)


@pytest.mark.parametrize("hw", [1, 2, 4, 8, 16])
def test_hcl_of_one_level_is_the_weighted_pyramid(hw):
    torch.manual_seed(hw)
    s, t = torch.randn(3, 5, hw, hw, dtype=torch.float64), torch.randn(3, 5, hw, hw).double()
    assert hcl_level(s, t).item() == pytest.approx(hcl_direct(s, t), rel=1e-12)


def test_hcl_at_a_1x1_level_is_the_squared_error_alone():
    s, t = torch.randn(4, 7, 1, 1), torch.randn(4, 7, 1, 1)
    torch.testing.assert_close(hcl_level(s, t), F.mse_loss(s, t))


def test_hcl_sums_the_levels_and_refuses_unpaired_lists():
    torch.manual_seed(0)
    s = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4), torch.randn(2, 6, 1, 1)]
    t = [torch.randn_like(x) for x in s]
    want = sum(hcl_direct(a.double(), b.double()) for a, b in zip(s, t, strict=True))
    assert hcl_loss(s, t).item() == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="2 student levels against 3 teacher levels"):
        hcl_loss(s[:2], t)


def test_hcl_gradient_matches_finite_differences():
    torch.manual_seed(1)
    s = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: hcl_level(x, t), (s,))


maps = st.tuples(st.integers(1, 3), st.integers(1, 4), st.sampled_from([1, 2, 3, 5, 8]))


@settings(max_examples=40, deadline=None)
@given(shape=maps, seed=st.integers(0, 2**16), c=st.floats(-3, 3), k=st.floats(0.1, 5))
def test_hcl_is_a_symmetric_distance_blind_to_a_common_shift(shape, seed, c, k):
    b, ch, hw = shape
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, ch, hw, hw, generator=g, dtype=torch.float64)
    t = torch.randn(b, ch, hw, hw, generator=g, dtype=torch.float64)
    d = hcl_level(s, t)
    assert d >= 0 and hcl_level(s, s) == 0
    torch.testing.assert_close(hcl_level(t, s), d)
    torch.testing.assert_close(hcl_level(s + c, t + c), d)  # the same shift on both
    torch.testing.assert_close(hcl_level(k * s, k * t), k**2 * d)  # a squared error


def test_abf_fuses_the_level_and_the_residual_by_its_two_attention_maps():
    torch.manual_seed(2)
    abf = ABF(4, 6, 5, fuse=True).eval()
    x, residual = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)
    out, fused, z = abf(x, residual, (8, 8))
    up = residual.repeat_interleave(2, 2).repeat_interleave(2, 3)  # nearest, 4 -> 8
    own = abf.conv1(x)
    want_z = torch.sigmoid(abf.att[0](torch.cat([own, up], 1)))
    torch.testing.assert_close(z, want_z)
    torch.testing.assert_close(fused, own * want_z[:, :1] + up * want_z[:, 1:])
    torch.testing.assert_close(out, abf.conv2(fused))
    assert out.shape == (2, 5, 8, 8)
    out, fused, z = abf(x, residual, (16, 16))  # resized to the teacher's map, then convolved
    assert out.shape == (2, 5, 16, 16) and fused.shape == (2, 6, 16, 16)
    deepest = ABF(4, 6, 5, fuse=False)
    out, fused, z = deepest(torch.randn(2, 4, 1, 1), None, (1, 1))
    assert z is None and out.shape == (2, 5, 1, 1)
    with pytest.raises(ValueError, match="residual"):
        abf(x, None, (8, 8))


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    data = load_mnist()
    student = build_model("resnet8", 10, (1, 28, 28))
    teacher = build_model("resnet20", 10, (1, 28, 28))
    return data, student, teacher


def test_the_distiller_is_sized_from_both_models(pair):
    data, student, teacher = pair
    review = build_distiller("review", {}, student, teacher, data)
    assert isinstance(review, ReviewKD) and get_method("review").short == "ReviewKD"
    # ABF: the student's channels in, min(512, its deepest level's 64) in the middle, the
    # teacher's out; the deepest level alone does not fuse
    assert [a.conv1[0].in_channels for a in review.abfs] == [16, 32, 64, 64]
    assert {a.conv1[0].out_channels for a in review.abfs} == {64}
    assert [a.conv2[0].out_channels for a in review.abfs] == [16, 32, 64, 64]
    assert [a.att is None for a in review.abfs] == [False, False, False, True]
    assert review.out_sizes == [(28, 28), (14, 14), (7, 7), (1, 1)]
    targets = review.teacher_targets(teacher.eval().forward_features(data.x_test[:3]))
    assert [tuple(targets[f"level:{i}"].shape) for i in range(4)] == [
        (3, 16, 28, 28), (3, 32, 14, 14), (3, 64, 7, 7), (3, 64, 1, 1)]  # fmt: skip
    feats = teacher.forward_features(data.x_test[:3]).features
    torch.testing.assert_close(targets["level:0"], feats["stage1_pre"])  # before the ReLU
    torch.testing.assert_close(targets["level:3"], as_map(feats["embedding"]))


def test_unpaired_or_missing_levels_are_refused_in_one_line(pair):
    data, student, teacher = pair
    with pytest.raises(ValueError, match="3 student levels against 4 teacher levels"):
        build_distiller("review", {"layers": "stage1,stage2,stage3"}, student, teacher, data)
    with pytest.raises(ValueError, match="at least one level"):
        build_distiller("review", {"layers": " , "}, student, teacher, data)
    mlp = build_model("mlp-30", 10, (1, 28, 28))
    with pytest.raises(ValueError, match="the student has no feature 'stage1'"):
        build_distiller("review", {}, mlp, teacher, data)


def test_each_prediction_reads_its_own_level_and_the_deeper_ones_only(pair):
    """The review: the prediction of the teacher's level i depends on the student's levels i,
    i + 1, ..., never on a shallower one."""
    data, student, teacher = pair
    review = build_distiller("review", {}, student, teacher, data).eval()
    out = student.eval().forward_features(data.x_test[:2])
    feats = {n: out.features[n].detach().requires_grad_(True) for n in review.layers}
    preds, atts = review.review(feats)
    assert len(atts) == 3 and all(z.shape[1] == 2 for z in atts)
    for i, pred in enumerate(preds):
        grads = torch.autograd.grad(pred.sum(), [feats[n] for n in review.layers],
                                    allow_unused=True, retain_graph=True)  # fmt: skip
        reached = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        assert reached == [j >= i for j in range(4)], (i, reached)


def test_a_few_steps_on_real_images_bring_the_fusion_towards_the_teacher(pair):
    data, _, teacher = pair
    torch.manual_seed(3)
    student = build_model("resnet8", 10, (1, 28, 28))
    review = build_distiller("review", {"weight": 1.0}, student, teacher, data)
    opt = torch.optim.SGD([*student.parameters(), *review.parameters()], lr=0.05, momentum=0.9)
    x, y = data.x_train[:32], data.y_train[:32]
    with torch.no_grad():
        targets = review.teacher_targets(teacher.eval().forward_features(x))
    batch = Batch(x=x, y=y, index=torch.arange(32))
    losses = []
    for _ in range(12):
        parts = review(student.forward_features(x), targets, batch)
        assert set(parts) == {"ce", "review"}
        opt.zero_grad()
        sum(parts.values()).backward()
        opt.step()
        losses.append(float(parts["review"].detach()))
    assert losses[-1] < 0.8 * losses[0]
    summary = review.epoch_summary()
    assert summary["review_loss"] == pytest.approx(sum(summary["level_loss"]), abs=1e-4)
    assert summary["review_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-3)
    assert len(summary["fusion"]) == 3 and all(0 < v < 1 for r in summary["fusion"] for v in r)
    assert review.epoch_summary()["review_loss"] == 0  # reset for the next epoch
