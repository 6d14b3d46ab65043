"""Your own digit: drawn on a canvas or uploaded, prepared like MNIST, read by the demo teacher."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from app.components.digit_canvas import digit_canvas
from kdcore.digit import NoDigit, mnist_like, normalise
from kdcore.train import predict_logits


@dataclass(frozen=True)
class OwnDigit:
    teacher_logits: tuple[float, ...]
    student_logits: torch.Tensor  # (K,)
    label: int  # what the teacher reads; the student has no other label to go by
    pixels: torch.Tensor  # (28, 28) in [0, 1], what the models see


def decode(raw: bytes) -> torch.Tensor | None:
    """PNG or JPEG bytes -> (C, H, W) uint8, or None when the bytes are not such an image."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return decode_image(data, mode=ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError):
        return None


def own_digit(bundle) -> OwnDigit | None:
    """Canvas and upload controls; the digit read by the teacher, or None (with a hint)."""
    draw, upload = st.columns([1, 1])
    with draw:
        st.markdown("**Draw a digit**")
        drawn = digit_canvas()
    with upload:
        file = st.file_uploader(
            "...or upload a photo of one (PNG or JPEG)", type=["png", "jpg", "jpeg"], key="upload"
        )
    image = drawn
    if file is not None:
        image = decode(file.getvalue())
        if image is None:
            st.caption(f":material/warning: {file.name} is not a PNG or JPEG image we can read.")
            return None
    if image is None:
        st.caption("Draw a digit above (or upload one); until then the chart shows a test image.")
        return None
    try:
        pixels = mnist_like(image)  # (1, 28, 28)
    except NoDigit as err:
        st.caption(f":material/warning: {err}.")
        return None
    x = normalise(pixels)  # (1, 1, 28, 28), as the models were trained
    with torch.no_grad():
        t = predict_logits(bundle.teacher, x)[0]
        s = predict_logits(bundle.student, x)[0]
    with upload:
        big = pixels[0].repeat_interleave(4, 0).repeat_interleave(4, 1)
        st.image((big * 255).byte().numpy(), caption="what the teacher sees (28x28)", width=112)
    return OwnDigit(tuple(t.tolist()), s, int(t.argmax()), pixels[0])
