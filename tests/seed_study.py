"""A preset's shipped run and its shipped five-seed study, as the tests of the texts that quote
them read it: each model's test errors in the run, and its mean, standard deviation and wins
over the seeds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from kdcore.reference import load_references, load_seed_study


@dataclass(frozen=True)
class Study:
    ref: Any  # the shipped run (kdcore.reference)
    errors: dict[str, int]  # each model's test errors in it
    rows: list[dict]  # the study's rows, one a seed
    mean: dict[str, float]
    sd: dict[str, float]

    def wins(self, model: str, over: str = "student_hard") -> int:
        """At how many seeds ``model`` made fewer test errors than ``over``."""
        return sum(r["errors"][model] < r["errors"][over] for r in self.rows)


def shipped_study(preset: str) -> Study:
    """The preset's shipped run and study, its seeds checked to be 0 to 4."""
    ref = load_references()[0][preset]
    errors = {m: r["test_errors"] for m, r in ref.result["models"].items()}
    rows = load_seed_study(ref)
    assert [r["seed"] for r in rows] == [0, 1, 2, 3, 4]
    mean = {m: statistics.mean(r["errors"][m] for r in rows) for m in errors}
    sd = {m: statistics.stdev(r["errors"][m] for r in rows) for m in errors}
    return Study(ref, errors, rows, mean, sd)
