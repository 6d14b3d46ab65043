"""A user's own digit: MNIST's preprocessing (crop, fit 20x20, centre of mass) on real digits."""

import pytest
import torch
import torch.nn.functional as F

from kdcore.data import load_mnist
from kdcore.digit import NoDigit, grayscale, mnist_like, normalise


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def drawn(pixels: torch.Tensor, scale: int, top: int, left: int, size=(300, 400)) -> torch.Tensor:
    """A digit as a user would hand it in: large, off-centre, dark ink on white paper, uint8 RGB.
    pixels: (28, 28) in [0, 1] -> (3, H, W)."""
    big = F.interpolate(pixels[None, None], scale_factor=scale, mode="bilinear")[0, 0]
    canvas = torch.zeros(size)
    canvas[top : top + big.shape[0], left : left + big.shape[1]] = big
    paper = ((1.0 - canvas) * 255).round().to(torch.uint8)
    return paper.expand(3, -1, -1).clone()


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 7, 11, 18])
def test_a_bundled_digit_drawn_large_and_off_centre_comes_back(mnist, index):
    original = mnist.denormalise(mnist.x_test[index])[0]  # (28, 28) in [0, 1]
    back = mnist_like(drawn(original, scale=7, top=90, left=190))[0]
    assert back.shape == (28, 28)
    assert float(back.min()) >= 0.0 and float(back.max()) <= 1.0
    # The same digit in nearly the same place: shapes match closely (Pearson correlation).
    r = torch.corrcoef(torch.stack([original.flatten(), back.flatten()]))[0, 1]
    assert r > 0.85, f"correlation {r:.3f}"
    # ...and its centre of mass is where MNIST put it, within a pixel.
    grid = torch.arange(28.0)
    for img in (original, back):
        cy = float((img.sum(1) * grid).sum() / img.sum())
        cx = float((img.sum(0) * grid).sum() / img.sum())
        assert abs(cy - 14) < 1 and abs(cx - 14) < 1


def test_the_demo_teacher_reads_a_redrawn_digit_like_the_original(mnist):
    from app.ui import MODELS_DIR
    from kdcore.checkpoint import load_model
    from kdcore.train import predict_logits

    teacher, _ = load_model(MODELS_DIR / "teacher.safetensors")
    idx = torch.arange(40)
    originals = mnist.denormalise(mnist.x_test[idx])[:, 0]
    redrawn = torch.cat([normalise(mnist_like(drawn(o, 5, 20, 40))) for o in originals])
    same = predict_logits(teacher, redrawn).argmax(1) == mnist.y_test[idx]
    assert same.float().mean() >= 0.9


def test_polarity_colour_alpha_and_blank():
    digit = torch.zeros(60, 40)
    digit[10:50, 18:22] = 1.0  # a white "1" on black, as MNIST stores it
    white_on_black = mnist_like(digit)
    black_on_white = mnist_like(((1 - digit) * 255).to(torch.uint8)[None])
    assert torch.allclose(white_on_black, black_on_white, atol=1e-2)
    assert white_on_black[0].sum(0).nonzero().numel() < 8  # a thin upright stroke
    rgba = torch.zeros(4, 60, 40, dtype=torch.uint8)
    rgba[3] = (digit * 255).to(torch.uint8)  # black ink, transparent paper
    assert torch.allclose(mnist_like(rgba), white_on_black, atol=1e-2)
    assert grayscale(torch.full((3, 2, 2), 255, dtype=torch.uint8)).eq(1).all()
    with pytest.raises(NoDigit):
        mnist_like(torch.full((30, 30), 200, dtype=torch.uint8))
    x = normalise(white_on_black)
    assert x.shape == (1, 1, 28, 28)
    assert float(x.min()) == pytest.approx(-0.1307 / 0.3081)
