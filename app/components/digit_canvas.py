"""A canvas to draw a digit on, with the mouse, a pen or a finger (Streamlit Components v2).

On the end of each stroke the drawing is reduced in the browser to 56x56 grey levels (0-255,
white ink on black) and sent to Python with ``setStateValue``; the MNIST preprocessing itself
(:func:`kdcore.digit.mnist_like`) runs in Python. "Clear" sends ``None``.
"""

from __future__ import annotations

import streamlit as st
import torch

SIDE = 56  # the grid the drawing is sent on: 2x MNIST, enough for the 20x20 box after cropping

HTML = """
<div class="kd-draw">
  <canvas width="280" height="280" role="img" tabindex="0"
          aria-label="Drawing area: draw one digit with the mouse, a pen or a finger"></canvas>
  <button type="button">Clear</button>
</div>
"""

CSS = """
.kd-draw { display: flex; align-items: flex-end; gap: 0.6rem; flex-wrap: wrap; }
canvas { width: 196px; height: 196px; background: #000; border-radius: 6px;
  touch-action: none; cursor: crosshair; border: 1px solid #adb5bd; }
button { font: inherit; padding: 0.25rem 0.8rem; border: 1px solid #adb5bd; border-radius: 6px;
  background: var(--st-secondary-background-color, #f3f5fa); cursor: pointer; }
"""

JS = f"""
const SIDE = {SIDE};
export default function (component) {{
  const {{ setStateValue, parentElement }} = component;
  const canvas = parentElement.querySelector("canvas");
  const button = parentElement.querySelector("button");
  if (!canvas || canvas.__kd) return;
  canvas.__kd = true;
  const ctx = canvas.getContext("2d");
  const reset = () => {{
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  }};
  reset();
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
  let drawing = false;
  const at = (e) => {{
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width,
            (e.clientY - r.top) * canvas.height / r.height];
  }};
  canvas.addEventListener("pointerdown", (e) => {{
    drawing = true; canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.1, y); ctx.stroke();
  }});
  canvas.addEventListener("pointermove", (e) => {{
    if (!drawing) return;
    const [x, y] = at(e); ctx.lineTo(x, y); ctx.stroke();
  }});
  const end = () => {{
    if (!drawing) return;
    drawing = false;
    const small = document.createElement("canvas");
    small.width = SIDE; small.height = SIDE;
    const s = small.getContext("2d");
    s.imageSmoothingEnabled = true; s.imageSmoothingQuality = "high";
    s.drawImage(canvas, 0, 0, SIDE, SIDE);
    const rgba = s.getImageData(0, 0, SIDE, SIDE).data;
    const gray = new Array(SIDE * SIDE);
    for (let i = 0; i < gray.length; i++) gray[i] = rgba[4 * i];
    setStateValue("pixels", gray);
  }};
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  button.addEventListener("click", () => {{ reset(); setStateValue("pixels", null); }});
}}
"""

_component = st.components.v2.component("kd_digit_canvas", html=HTML, css=CSS, js=JS)


def digit_canvas(key: str = "digit_canvas") -> torch.Tensor | None:
    """The current drawing as (SIDE, SIDE) uint8, white on black, or None before any stroke."""
    result = _component(key=key, default={"pixels": None}, on_pixels_change=lambda: None)
    pixels = result.get("pixels") if hasattr(result, "get") else None
    if not isinstance(pixels, list) or len(pixels) != SIDE * SIDE:
        return None
    return torch.tensor(pixels, dtype=torch.uint8).view(SIDE, SIDE)
