"""MGD's parts against references: the mask's shape, values and share, the loss against an
explicit sum and finite differences, the generator against its layers applied by hand (masking
after the alignment, as the official code), the registered method's parts and refusals, and on
real images that the generator learns to rebuild the teacher's map.

The references follow Yang et al. 2022 and the official classification code
(``cls/mmcls/distillation/losses/mgd.py``: ``torch.where(mat < lambda_mgd, 0, 1)`` on a
(N, C, 1, 1) draw, ``MSELoss(reduction='sum') / N``, α = 7e-5, λ = 0.15).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.distill import build_distiller, distill
from kdcore.losses.mgd import MGDGenerator, mgd_loss, mgd_mask
from kdcore.methods import METHODS
from kdcore.models import build_model
from kdcore.train import Batch, TrainConfig
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=25, deadline=None)


@pytest.mark.parametrize("on,shape", [("channels", (64, 32, 1, 1)), ("pixels", (64, 1, 7, 7))])
def test_the_mask_has_one_draw_per_channel_or_per_pixel_and_drops_its_share(on, shape):
    torch.manual_seed(0)
    m = mgd_mask((64, 32, 7, 7), 0.3, on)
    assert m.shape == shape and set(m.unique().tolist()) <= {0.0, 1.0}
    big = mgd_mask((400, 32, 7, 7), 0.3, on)
    assert abs(float(1 - big.mean()) - 0.3) < 0.02  # 12,800 or 19,600 draws
    assert mgd_mask((4, 3, 5, 5), 0.0, on).eq(1).all()
    with pytest.raises(ValueError, match="channels or pixels"):
        mgd_mask((4, 3, 5, 5), 0.5, "rows")


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(0, 99))
def test_the_loss_is_the_squared_error_summed_per_map_averaged_over_the_batch(n, c, hw, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, c, hw, hw, generator=g, dtype=torch.float64)
    b = torch.randn(n, c, hw, hw, generator=g, dtype=torch.float64)
    ref = sum(
        float((a[i, j, y, x] - b[i, j, y, x]) ** 2)
        for i in range(n) for j in range(c) for y in range(hw) for x in range(hw)
    ) / n  # fmt: skip
    assert float(mgd_loss(a, b)) == pytest.approx(ref, rel=1e-12)
    assert float(mgd_loss(a, a)) == 0.0


def test_the_loss_gradient_matches_finite_differences():
    a = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: mgd_loss(x, b), (a,))


@pytest.mark.parametrize("on", ["channels", "pixels"])
def test_the_generator_aligns_then_masks_then_generates(on):
    torch.manual_seed(0)
    gen = MGDGenerator(16, 64).double()
    s = torch.randn(3, 16, 7, 7, dtype=torch.float64)
    torch.manual_seed(5)
    out = gen(s, 0.4, on)
    torch.manual_seed(5)
    aligned = gen.align(s)  # a 1 × 1 convolution to 64 channels
    mask = mgd_mask(tuple(aligned.shape), 0.4, on)  # the same draw, of the aligned shape
    assert aligned.shape == (3, 64, 7, 7)
    assert torch.allclose(out, gen.generation(aligned * mask))
    same = MGDGenerator(64, 64)
    assert isinstance(same.align, torch.nn.Identity)  # no alignment where the widths agree


@pytest.fixture(scope="module")
def small():
    return few_per_class()


def test_registered_with_the_official_classification_settings(small):
    m = METHODS["mgd"]
    assert m.family == "feature" and "arXiv:2205.01529" in m.citation and m.short == "MGD"
    p = m.make_params({})
    assert (p.mask, p.ratio, p.alpha_mgd, p.alpha) == ("channels", 0.15, 7e-5, 0.0)
    torch.manual_seed(0)
    student, teacher = build_model("cnn-8"), build_model("cnn")
    d = build_distiller("mgd", {"alpha_mgd": 0.5, "ratio": 0.3}, student, teacher, small)
    x, y = small.x_train[:8], small.y_train[:8]
    with torch.no_grad():
        t = d.teacher_targets(teacher.forward_features(x))
    out = student.forward_features(x)
    torch.manual_seed(9)
    parts = d(out, t, Batch(x, y, torch.arange(8)))
    assert set(parts) == {"ce", "mgd"}
    torch.manual_seed(9)
    ref = mgd_loss(d.generator(out.features["conv2"], 0.3, "channels"), t["feat"])
    assert torch.allclose(parts["mgd"], 0.5 * ref)
    assert torch.allclose(parts["ce"], torch.nn.functional.cross_entropy(out.logits, y))


def test_maps_of_two_sizes_are_refused_in_one_line_and_flat_layers_are_1x1_maps(small):
    student, teacher = build_model("cnn-8"), build_model("cnn")
    with pytest.raises(ValueError, match="one size") as err:
        build_distiller("mgd", {"student_layer": "conv1"}, student, teacher, small)
    assert "14 × 14" in str(err.value) and "\n" not in str(err.value)
    mlp_s, mlp_t = build_model("mlp-30"), build_model("mlp-100")
    with pytest.raises(ValueError, match="the student has no feature 'conv2'"):
        build_distiller("mgd", {}, mlp_s, mlp_t, small)  # the defaults name a CNN's layer
    flat = {"student_layer": "embedding", "teacher_layer": "embedding"}
    d = build_distiller("mgd", flat, mlp_s, mlp_t, small)
    assert d.generator.align.in_channels == 30 and d.generator.align.out_channels == 100


def test_on_real_images_the_generator_learns_to_rebuild_the_teachers_map(small):
    """A trained CNN teacher; one epoch of MGD on a few hundred images lowers the generator's
    relative error from its first epoch; every part stays finite."""
    torch.manual_seed(0)
    teacher = build_model("cnn")
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, seed=0, grad_clip=5.0)
    assert distill(teacher, None, small, cfg, "hard").ok
    student = build_model("cnn-8")
    result = distill(student, teacher, small, TrainConfig(epochs=3, batch_size=50, lr=0.05,
                     seed=0, grad_clip=5.0), "mgd", {"alpha_mgd": 1e-3})  # fmt: skip
    assert result.ok, result.message
    errs = [e.extra["reconstruction"] for e in result.history]
    assert 0 < errs[-1] < errs[0] and all(
        torch.isfinite(torch.tensor(list(e.losses.values()))).all() for e in result.history
    )
