"""How long a run will take, from the seconds earlier runs on this machine measured.

A preset's runner decides which models it trains, so the only honest source of a time is a run
that already happened: each model's measured seconds per epoch, times the epochs the new
configuration gives it (:func:`estimate_seconds`, from an earlier run of the same preset).
Epochs cover every model of a run unless its config has a separate ``teacher_epochs`` (0 there
means "as epochs"); a teacher whose settings have not changed is loaded from the cache and costs
nothing. A custom run's models are timed one by one from any earlier run that trained the same
architecture by the same method (:func:`custom_estimate`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def teacher_epochs(config: dict[str, Any]) -> int:
    """The teacher's epochs under a config: its own field when set, else the run's epochs."""
    own = config.get("teacher_epochs")
    return int(own) if own else int(config.get("epochs", 0))


def estimate_seconds(
    previous: dict[str, Any],
    previous_config: dict[str, Any],
    config: dict[str, Any],
    cached_teacher: bool = True,
) -> float | None:
    """Seconds a run with ``config`` should take, from a completed run's ``previous`` result
    (its ``history`` and ``models``) under ``previous_config``; None without usable figures.

    Every model's mean seconds per epoch is scaled to its new number of epochs: teachers by
    their own epochs (zero when unchanged, since the cache serves them), the others in
    proportion to the run's epochs (which also scales hint stages and generations). With
    ``cached_teacher`` False (a machine that has never trained this teacher) teachers count
    too, except a teacher the run loaded rather than trained (the language models' teacher
    ships as a file): its history, from its own training, took longer than the whole run."""
    history = previous.get("history") or {}
    models = previous.get("models") or {}
    run_seconds = float(previous.get("seconds") or 0.0)
    old_epochs = int(previous_config.get("epochs") or 0)
    new_epochs = int(config.get("epochs") or 0)
    if not history or old_epochs <= 0 or new_epochs <= 0:
        return None
    total = 0.0
    for name, records in history.items():
        seconds = [float(r.get("seconds") or 0.0) for r in records if isinstance(r, dict)]
        if not seconds:
            continue
        pace = sum(seconds) / len(seconds)  # seconds per epoch of this model
        if (models.get(name) or {}).get("role") == "teacher":
            same = cached_teacher and teacher_epochs(config) == teacher_epochs(previous_config)
            loaded = 0.0 < run_seconds < sum(seconds)
            total += 0.0 if same or loaded else pace * teacher_epochs(config)
        else:
            total += pace * len(seconds) * new_epochs / old_epochs
    return total if total > 0 else None


# ----------------------------------------------------------------------------- custom runs
#
# A custom run may pair models no earlier run paired, so its time is put together model by
# model: each model's seconds per epoch, measured whenever an earlier run (the user's or a
# shipped one) trained the same architecture by the same method on the same data and device.


def device_type(device: Any) -> str:
    """``"cuda:0"`` -> ``"cuda"``; a missing device reads as the CPU."""
    return str(device or "cpu").split(":")[0]


def model_paces(runs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> dict[tuple, list[float]]:
    """Seconds per epoch measured in completed runs, given as (result, config) pairs, keyed by
    (architecture, method, data set, images per class, device type, trained as a teacher).
    Teachers loaded from the cache trained nothing and are left out."""
    paces: dict[tuple, list[float]] = {}
    for result, config in runs:
        history = result.get("history") or {}
        for name, summary in (result.get("models") or {}).items():
            if not isinstance(summary, dict) or summary.get("cached") or not summary.get("arch"):
                continue
            seconds = [
                float(r["seconds"])
                for r in history.get(name) or []
                if isinstance(r, dict) and isinstance(r.get("seconds"), int | float)
            ]
            if not seconds:
                continue
            key = (
                summary["arch"],
                summary.get("method") or "hard",
                config.get("dataset", "mnist"),
                int(config.get("per_class") or 0),
                device_type(result.get("device")),
                summary.get("role") == "teacher",
            )
            paces.setdefault(key, []).append(sum(seconds) / len(seconds))
    return paces


@dataclass(frozen=True)
class ModelEstimate:
    name: str
    seconds: float
    # how the pace was had: "" measured for this architecture and method; "overhead" this
    # architecture's hard-label pace plus what the method added on other architectures; "hard"
    # this architecture's hard-label pace alone (the method was never timed here)
    guess: str = ""


def _pace(paces: dict[tuple, list[float]], key: tuple) -> float | None:
    """The median pace under ``key``, else under the same key with the teacher flag flipped (a
    teacher and a baseline both train on hard labels; the teacher's jitter costs a little)."""
    for k in (key, (*key[:-1], not key[-1])):
        if paces.get(k):
            return statistics.median(paces[k])
    return None


def _overhead(paces: dict[tuple, list[float]], method: str, baseline: str, where: tuple):
    """What ``method`` adds to an epoch over ``baseline`` training of the same student, the
    median over the architectures where both were timed (its extra work, the teacher's forward
    pass or a memory of negatives, hardly depends on the student); None where never timed."""
    extra = []
    for arch, m, *rest in paces:
        if m == method and tuple(rest) == (*where, False):
            own, base = (
                _pace(paces, (arch, m, *where, False)),
                _pace(paces, (arch, baseline, *where, False)),
            )
            if own is not None and base is not None:
                extra.append(max(own - base, 0.0))
    return statistics.median(extra) if extra else None


def custom_estimate(
    plan: Sequence[tuple[str, str | None]],
    config: dict[str, Any],
    paces: dict[tuple, list[float]],
    device: str,
    teacher_cached: bool,
    baseline: str = "hard",
) -> list[ModelEstimate] | None:
    """Each model of a custom run's ``plan`` ((name, method), None for the teacher) with the
    seconds it should take: its measured pace times its epochs (the teacher's own epochs, 0 when
    it comes from the cache). A method never timed on this architecture is timed as this
    architecture's ``baseline`` training plus the method's overhead measured on others, or as
    the baseline alone (``guess`` says which). None when some model that must train was never
    timed on its architecture (a cached teacher need not have been)."""
    where = (config.get("dataset", "mnist"), int(config.get("per_class") or 0), device)
    out = []
    for name, method in plan:
        teacher = method is None
        arch = config["teacher" if teacher else "student"]
        epochs = teacher_epochs(config) if teacher else int(config.get("epochs") or 0)
        if teacher and teacher_cached:  # loaded, not trained: no pace needed
            out.append(ModelEstimate(name, 0.0))
            continue
        guess, pace = "", _pace(paces, (arch, method or baseline, *where, teacher))
        if pace is None:
            pace = _pace(paces, (arch, baseline, *where, teacher))
            if pace is None:
                return None
            extra = _overhead(paces, method, baseline, where)
            guess = "hard" if extra is None else "overhead"
            pace += extra or 0.0
        out.append(ModelEstimate(name, pace * epochs, guess))
    return out
