"""One temperature for the whole page: a slider that animates in the browser and reports on release.

Python computes every frame (soft targets, entropy, top-class probability, dark knowledge, the
regime and the runners-up sentence) with :mod:`kdcore.analysis` and formats every number; the
component (:mod:`app.components.tslider_frontend`) only places them, so the page shows the same
text while dragging as after the rerun. On release the chosen T goes into the URL (``?T=``) and
the page reruns with it, so whatever the component does not draw follows too.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import streamlit as st
import torch

from app import ui
from app.components.tslider_frontend import CSS, HTML, JS
from kdcore import analysis

KEY = "tslider"
URL_KEY = "T"
T_MIN, T_MAX, T_DEFAULT = 0.1, 50.0, 1.0
TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)  # the curves' log axis, labelled in full

_component = st.components.v2.component("kd_temperature_slider", html=HTML, css=CSS, js=JS)


def url_temperature(default: float = T_DEFAULT) -> float:
    """The page's T, read from the URL (guarded like every URL-bound control)."""
    return ui.url_number(URL_KEY, T_MIN, T_MAX, default)


# The slider was let go: its T becomes the page's T, in the URL.
_released = ui.release_to_url(KEY, "T", URL_KEY, T_MIN, T_MAX)


def _sentence(sweep: analysis.TemperatureSweep, i: int, ranked: np.ndarray) -> str:
    top = sweep.top_class
    others = ", ".join(f"<b>{c}</b> ({sweep.probs[i][c]:.2g})" for c in ranked)
    return (
        f"At T = {sweep.temps[i]:.2f} the runners-up after <b>{top}</b> are {others}. A one-hot "
        "label says none of this; the soft targets say it at every T, but only a high T makes "
        "it loud enough to matter in the loss."
    )


def frames(logits: tuple[float, ...], T: float, log_y: bool) -> dict:
    """Everything the component shows, for the grid of link-friendly temperatures plus T."""
    grid = analysis.temperature_grid(T_MIN, T_MAX, 100)
    temps = analysis.link_temperatures(np.append(grid, T))
    sweep = analysis.temperature_sweep(torch.tensor(logits), temps)
    ranked = analysis.runners_up(sweep.probs, sweep.top_class, 3)  # (F, 3)
    fmt = "{:.2e}" if log_y else "{:.3f}"
    out = []
    for i, t in enumerate(sweep.temps):
        ratio = float(sweep.entropy[i] / sweep.max_entropy)
        words = analysis.regime(float(t), ratio)
        out.append(
            {
                "T": float(t),
                "Ts": f"{t:.2f}",
                "p": sweep.probs[i].tolist(),
                "ps": [fmt.format(v) for v in sweep.probs[i]],
                "H": f"{sweep.entropy[i]:.4f}",
                "top": f"{sweep.top_prob[i]:.4f}",
                "dark": f"{sweep.dark_mass[i]:.4f}",
                "Hr": ratio,
                "top_p": float(sweep.top_prob[i]),
                "dark_p": float(sweep.dark_mass[i]),
                "regime": words[0].upper() + words[1:] + ".",
                "para": _sentence(sweep, i, ranked[i]),
            }
        )
    key = hashlib.sha1(json.dumps([logits, log_y]).encode()).hexdigest()[:12]
    return {
        "frames": out,
        "active": int(np.argmin(np.abs(sweep.temps - T))),
        "top_class": sweep.top_class,
        "Hmax": f"of at most log {sweep.num_classes} = {sweep.max_entropy:.3f}",
        "log_y": log_y,
        "ticks": list(TICKS),
        "key": key,
    }


@st.cache_data(max_entries=128, show_spinner=False)
def _payload(logits: tuple[float, ...], T: float, log_y: bool) -> tuple[str, dict]:
    """The component's data as one JSON text, and the frame shown at rest.

    Serialised once per view: handed a dict, Streamlit would serialise the 101 frames twice on
    every rerun (once to send, once sorted for the element's identity), a quarter of the
    temperature page's cost under load. A string is sent as it is and hashed for its identity;
    the frontend parses it."""
    data = frames(logits, T, log_y)
    return json.dumps(data), data["frames"][data["active"]]


def temperature_slider(logits: tuple[float, ...], T: float, log_y: bool) -> dict:
    """Mounts the slider for these logits, opened at T; returns the frame shown at rest."""
    text, shown = _payload(logits, T, log_y)
    _component(key=KEY, data=text, default={"T": None}, on_T_change=_released)
    return shown


# A log grid a student can read: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 per decade (roughly equal
# steps in log T, as on the temperature page's slider), from 0.1 to 50.
LOG_STEPS = tuple(
    round(m * 10.0**e, 3)
    for e in (-1, 0, 1)
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
    if m * 10.0**e <= T_MAX
)


def log_t_control(label: str, key: str, default: float) -> float:
    """A temperature slider with log-spaced stops, kept in the URL as ``?T=``.

    A link's T that is a number in range but between stops snaps to the nearest stop (in log T).
    The slider has its own session key and writes the URL itself on change, so a link value
    never has to match an option's label exactly.
    """
    T = url_temperature(default)
    T = min(LOG_STEPS, key=lambda s: abs(math.log(s / T)))
    if st.session_state.get(key) != T:  # opened from a link, or the URL changed
        st.session_state[key] = T
    if URL_KEY in st.query_params and st.query_params[URL_KEY] != f"{T:g}":
        st.query_params[URL_KEY] = f"{T:g}"  # the address says the stop in use (3.3 -> 3)

    def write_url() -> None:
        st.query_params[URL_KEY] = f"{st.session_state[key]:g}"

    return float(
        st.select_slider(
            label,
            options=LOG_STEPS,
            key=key,
            format_func=lambda t: f"{t:.2f}",
            on_change=write_url,
            help="Log scale: each step multiplies T by about 1.25, so 0.1 to 1 takes as much "
            "of the track as 1 to 10.",
        )
    )
