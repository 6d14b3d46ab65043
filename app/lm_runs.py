"""What the pages that look inside a transformer (MiniLM, TinyBERT) show around a stored run of
their preset: the line that names it, and the table of its models with the papers' claims and
why its figures differ from theirs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import lab_ui
from app.lm_figures import LABEL

KL_TRUE = "KL from truth (×10⁻³ bits/char)"
KL_TEACHER = "KL from teacher (×10⁻³ nats/token)"
FORMATS = {KL_TRUE: "{:.2f}", KL_TEACHER: "{:.2f}", "grammatical texts": "{:.0%}",
           "seconds": "{:,.1f}"}  # fmt: skip


def milli(v: float | None) -> float | None:
    return None if v is None else 1000 * v


def run_head(run) -> tuple[dict, dict, float]:
    """The run's result, its models and the language's entropy on its held-out documents, after
    the line that names the run."""
    res = run.result
    floor = res.get("floor_bits", 0.0)
    st.caption(f"{lab_ui.run_name(run)}: {lab_ui.describe(run)}; the language's entropy on the "
               f"held-out documents is {floor:.4f} bits per character.")  # fmt: skip
    return res, res.get("models", {}), floor


def kl_curve(res: dict, name: str, floor: float) -> list[float]:
    """A model's KL from the truth after each epoch of a stored run: its bits per character on
    the held-out text less the language's entropy there."""
    return [r["extra"]["bits_per_char"] - floor for r in res.get("history", {}).get(name, [])
            if "bits_per_char" in r.get("extra", {})]  # fmt: skip


def row(name: str, m: dict, own: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """A model's row: its name and method, the page's ``own`` columns, its KLs (in thousandths,
    as the pages' charts), the page's ``more`` columns, its share of grammatical texts and
    seconds."""
    return {"model": LABEL.get(name, name), "method": m.get("method", ""), **own,
            KL_TRUE: milli(m.get("kl_true")), KL_TEACHER: milli(m.get("kl_teacher")), **more,
            "grammatical texts": m.get("sample_valid"), "seconds": m.get("seconds")}  # fmt: skip


def run_table(res: dict, rows: list[dict], formats: dict[str, str], preset: str,
              cited: str = "Papers") -> None:  # fmt: skip
    """The models' table, the papers' claims under it and why the run's figures differ."""
    table = pd.DataFrame(rows).style.format({**FORMATS, **formats}, precision=4, thousands=",",
                                            na_rep="–")  # fmt: skip
    st.table(table, hide_index=True)
    claims = res.get("paper", {}).get("claims", [])
    if claims:
        st.caption(f"{cited}: " + " ".join(claims))
    lab_ui.why_differs(preset)
