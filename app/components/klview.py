"""Forward vs reverse KL, live: a β slider over the best single-Gaussian student of a two-mode
teacher, animated in the browser and reported on release.

:func:`kdcore.klfit.kl_frames` computes every frame (the student ``q``, its μ and σ, both KLs,
its mass in the gap) and this module formats every number and the sentence; the component
(:mod:`app.components.klview_frontend`) only places them, so the curve and the numbers come from
one frame while dragging and after the rerun. On release the chosen β goes into the URL
(``?beta=``) and the page reruns with it, as the temperature slider does with ``?T=``.
"""

from __future__ import annotations

import hashlib
import json
import math

import streamlit as st

from app import ui
from app.components.klview_frontend import CSS, HTML, JS
from app.figures import COLORS

KEY = "klview"
URL_KEY = "beta"
B_MIN, B_MAX, B_DEFAULT = 0.0, 1.0, 0.0

_component = st.components.v2.component("kd_kl_view", html=HTML, css=CSS, js=JS)


def url_beta(default: float = B_DEFAULT) -> float:
    """The page's β, read from the URL (guarded like every URL-bound control)."""
    return ui.url_number(URL_KEY, B_MIN, B_MAX, default)


def _num(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}".replace("-", "\u2212")  # a real minus sign


def _kl(v: float) -> str:
    return f"{v:.3f} nats"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _name(beta: float) -> str:
    return "forward KL" if beta <= 0 else "reverse KL" if beta >= 1 else "JSD"


def _say(f: dict, frames: dict) -> str:
    """The one sentence under the plot: what the student does at this β, with its numbers."""
    head = f"At β = {f['beta']:.2f} ({_name(f['beta'])})"
    mu, sigma = _num(f["mu"]), _num(f["sigma"])
    if f["picks"] == "both":
        if not frames["gap"]:  # modes closer than 2 * GAP_SD widths: nothing empty between them
            return (
                f"{head} the student <b>covers both modes</b>: μ = {mu}, σ = {sigma}. The "
                "teacher's modes overlap here, so there is no empty gap for it to fill or avoid."
            )
        return (
            f"{head} the student <b>covers both modes</b>: μ = {mu} sits between them, "
            f"σ = {sigma} stretches over both, and {_pct(f['gap'])} of its mass falls in the "
            f"gap, where the teacher has {_pct(frames['p_gap'])}."
        )
    side = f["picks"]
    return (
        f"{head} the student <b>picks one mode</b> (the {side} one): μ = {mu}, σ = {sigma}, "
        f"close to the teacher's width {_num(frames['width'])}; it leaves the other mode "
        f"uncovered, so the forward KL is {f['fwd']:.2f} nats."
    )


def view_data(frames: dict, beta: float) -> dict:
    """What the component is given: the teacher, every frame with its numbers formatted, and
    the index of the frame nearest ``beta`` (β snaps to the precomputed frames)."""
    fs = frames["frames"]
    betas = [f["beta"] for f in fs]
    active = min(range(len(fs)), key=lambda i: (abs(betas[i] - beta), i))
    out = []
    for f in fs:
        out.append(
            {
                "beta": f["beta"],
                "label": f"β = {f['beta']:.2f} · {_name(f['beta'])}",
                "q": f["q"],
                "mu": f["mu"],
                "picks": f["picks"],
                "text": {
                    "mu": _num(f["mu"]),
                    "sigma": _num(f["sigma"]),
                    "fwd": _kl(f["fwd"]),
                    "rev": _kl(f["rev"]),
                    "gap": _pct(f["gap"]),
                },
                "say": _say(f, frames),
            }
        )
    x = frames["x"]
    span = x[-1] - x[0]
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 50) if span / s <= 12)  # readable x ticks
    lo = math.ceil(x[0] / step) * step
    xticks = [round(lo + i * step, 6) for i in range(int((x[-1] - lo) // step) + 1)]
    ymax = 1.08 * max([*frames["p"], *(v for f in fs for v in f["q"])])
    teacher = [frames[k] for k in ("sep", "weight", "width")]
    key = hashlib.sha1(json.dumps([teacher, betas, len(x)]).encode()).hexdigest()[:12]
    return {
        "x": x,
        "p": frames["p"],
        "modes": frames["modes"],
        "gap": frames["gap"],
        "p_gap_text": f"the teacher's: {_pct(frames['p_gap'])}",
        "ymax": ymax,
        "xticks": [[t, _num(t, 0 if float(t).is_integer() else 1)] for t in xticks],
        "ticks": {
            key_: min(range(len(fs)), key=lambda i, b=b: (abs(betas[i] - b), i))
            for key_, b in (("0", 0.0), ("0.5", 0.5), ("1", 1.0))
        },
        "colors": {"p": COLORS["teacher"], "q": COLORS["student"]},
        "aria": (
            f"teacher p with modes at {_num(frames['modes'][0])} and {_num(frames['modes'][1])} "
            "and the best single-Gaussian student q for the chosen divergence"
        ),
        "frames": out,
        "active": active,
        "key": key,
    }


def kl_view(frames: dict, beta: float, key: str = KEY) -> float:
    """Mounts the view for these frames (from :func:`kdcore.klfit.kl_frames`), opened at the
    frame nearest ``beta``; returns that frame's β (the value the page shows at rest)."""
    data = view_data(frames, beta)
    shown = data["frames"][data["active"]]["beta"]
    if URL_KEY in st.query_params and st.query_params[URL_KEY] != f"{shown:g}":
        st.query_params[URL_KEY] = f"{shown:g}"  # the address says the frame in use (0.537 -> 0.55)
    _component(
        key=key,
        data=data,
        default={"beta": None},
        on_beta_change=ui.release_to_url(key, "beta", URL_KEY, B_MIN, B_MAX),
    )
    return shown
