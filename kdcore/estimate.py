"""How long a run will take, estimated from an earlier run of the same preset on this machine.

A preset's runner decides which models it trains, so the only honest source of a time is a run
that already happened: each model's measured seconds per epoch, times the epochs the new
configuration gives it. Epochs cover every model of a run unless its config has a separate
``teacher_epochs`` (0 there means "as epochs"); a teacher whose settings have not changed is
loaded from the cache and costs nothing.
"""

from __future__ import annotations

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
    too."""
    history = previous.get("history") or {}
    models = previous.get("models") or {}
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
            total += 0.0 if same else pace * teacher_epochs(config)
        else:
            total += pace * len(seconds) * new_epochs / old_epochs
    return total if total > 0 else None
