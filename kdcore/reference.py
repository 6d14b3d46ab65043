"""Reference runs: completed paper-length runs shipped with the app, so their results open at once.

Each lives in ``assets/reference_runs/<preset>.json``: the result dict of
:func:`kdcore.runner.run_preset` (the schema of ``python -m kdcore run --out``) plus a
``reference`` block saying how it was made (the exact command, the code version, the device, the
seconds) and which of its models' weights ship beside it as safetensors
(``<preset>/<model>.safetensors``, stored at half precision). ``scripts/make_reference_runs.py``
writes them; nothing here trains.

A file that does not read as a reference run is skipped with a one-line reason, never unpickled
and never fatal: the app shows the others.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .checkpoint import CheckpointError, load_model, save_model
from .models import KDModel
from .runner import TEST_ERRORS, Measure

REFERENCE_ENV = "KD_REFERENCE_DIR"
# The keys every run result has (see kdcore.runner) and those the reference block adds.
RESULT_KEYS = ("preset", "status", "config", "device", "history", "models", "paper", "seconds")
INFO_KEYS = ("profile", "command", "code_version", "device", "device_name", "seconds", "created")
CREATED = "%Y-%m-%d %H:%M UTC"  # how the reference block records when the run was made
MODEL_KEYS = ("role", "arch", "test_errors", "test_accuracy")
# the numbers of an epoch record the pages plot (each optional, finite when there)
EPOCH_NUMBERS = ("test_accuracy", "train_accuracy", "test_errors", "seconds")
# The models whose weights ship beside each reference run (small MLPs; the demos' teacher is
# hinton-mnist's; the attention page draws its CNN teacher's maps on any test image). The sweeps
# and the other presets ship none: their figures are the point.
SHIPPED_WEIGHTS = {
    "hinton-mnist": ("teacher", "student_hard", "student_kd"),
    "omitted-3": ("student_no3",),
    "only-7-8": ("student_78",),
    "attention-transfer": ("teacher",),
    # the label-smoothing page projects both teachers' activations onto any three templates
    "smooth-teacher": ("teacher_hard", "teacher_ls"),
    # the zero-shot page crafts an impression from its teacher live
    "zero-shot-mnist": ("teacher",),
    # the channels page draws its ResNet teacher's last-stage channels on any test image
    "ickd-mnist": ("teacher",),
    # the class-maps page draws its ResNet teacher's class activation maps on any test image
    "cat-mnist": ("teacher",),
    # the local-logits page pools its ResNet teacher's logit map on any test image
    "sdd-mnist": ("teacher",),
}


def shipped_profile(preset: Any) -> str:
    """The recipe the app ships a run of for ``preset`` (a :class:`kdcore.runner.Preset`): the
    paper's where it has one, else its long profile, else its default."""
    return next((name for name in ("paper", "long") if name in preset.profiles), "default")


def reference_dir() -> Path:
    """``$KD_REFERENCE_DIR`` or the repository's ``assets/reference_runs``."""
    env = os.environ.get(REFERENCE_ENV)
    return (
        Path(env) if env else Path(__file__).resolve().parent.parent / "assets" / "reference_runs"
    )


@dataclass(frozen=True)
class Reference:
    """One shipped run: ``result`` as run_preset returned it, ``info`` how it was made."""

    preset: str
    result: dict[str, Any]
    info: dict[str, Any]
    path: Path

    @property
    def profile(self) -> str:
        return self.info["profile"]

    @property
    def created_at(self) -> float:
        """When the run was made, in seconds since the epoch: the ``created`` its reference block
        records (``YYYY-mm-dd HH:MM UTC``), not the file's time, which is when it was checked
        out; the file's time only when the record does not read as a date."""
        try:
            return float(calendar.timegm(time.strptime(self.info["created"], CREATED)))
        except (TypeError, ValueError):
            return self.path.stat().st_mtime

    @property
    def weights(self) -> dict[str, dict]:
        """model name -> {"file", "dtype", "test_errors"} for the models shipped as weights."""
        return self.info.get("weights", {})

    def label(self) -> str:
        """How the app names it: "shipped · paper profile · 20 epochs (teacher 60) · 17 min on a
        CPU"."""
        minutes = self.info["seconds"] / 60
        took = f"{minutes:.0f} min" if minutes >= 1 else f"{self.info['seconds']:.0f} s"
        kind = "GPU" if str(self.info["device"]).startswith("cuda") else "CPU"
        epochs = self.result["config"].get("epochs")
        teacher = self.result["config"].get("teacher_epochs")
        span = f" · {epochs} epochs" if epochs else ""
        if epochs and teacher and teacher != epochs:
            span += f" (teacher {teacher})"
        return f"shipped · {self.profile} profile{span} · {took} on a {kind}"


def check_reference(obj: Any, name: str) -> None:
    """Raise ValueError (one line) when ``obj`` is not a reference run's JSON."""
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: not a JSON object")
    missing = [k for k in RESULT_KEYS if k not in obj]
    if missing:
        raise ValueError(f"{name}: no {', '.join(missing)} (not a run result)")
    info = obj.get("reference")
    if not isinstance(info, dict):
        raise ValueError(f"{name}: no reference block (how the run was made)")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise ValueError(f"{name}: the reference block has no {', '.join(missing)}")
    if not isinstance(obj["models"], dict) or not obj["models"]:
        raise ValueError(f"{name}: no models")
    for model, summary in obj["models"].items():
        gone = [k for k in MODEL_KEYS if not isinstance(summary, dict) or k not in summary]
        if gone:
            raise ValueError(f"{name}: model {model!r} has no {', '.join(gone)}")
    _check_values(obj, name)
    for model, w in info.get("weights", {}).items():
        if model not in obj["models"] or not isinstance(w, dict) or "file" not in w:
            raise ValueError(f"{name}: weights for {model!r} do not name a model and a file")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_values(obj: dict, name: str) -> None:
    """The values the pages draw, of the types they draw: a file with the right keys but a
    string for a number, or a history that is not a list of epochs, is refused in one line
    rather than breaking a page."""
    for key in ("config", "paper", "history"):
        if not isinstance(obj[key], dict):
            raise ValueError(f"{name}: {key} is not an object")
    if not _number(obj["seconds"]):
        raise ValueError(f"{name}: seconds is not a number")
    for model, s in obj["models"].items():
        errors, accuracy = s["test_errors"], s["test_accuracy"]
        if not (isinstance(errors, int) and not isinstance(errors, bool) and errors >= 0):
            raise ValueError(f"{name}: model {model!r} has test_errors {errors!r}, not a count")
        if not (_number(accuracy) and 0 <= accuracy <= 1):
            raise ValueError(f"{name}: model {model!r} has test_accuracy {accuracy!r}")
    for model, epochs in obj["history"].items():
        if not isinstance(epochs, list):
            raise ValueError(f"{name}: the history of {model!r} is not a list of epochs")
        for i, e in enumerate(epochs):
            odd = (
                not isinstance(e, dict)
                or not isinstance(e.get("epoch"), int)
                or any(k in e and not _number(e[k]) for k in EPOCH_NUMBERS)
            )
            if odd:
                raise ValueError(f"{name}: epoch {i + 1} of {model!r} is not an epoch record")


def load_reference(path: Path) -> Reference:
    """Read and check one reference file (ValueError with one line when it cannot)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name}: unreadable ({type(err).__name__})") from None
    check_reference(obj, path.name)
    info = obj.pop("reference")
    return Reference(obj["preset"], obj, info, path)


def load_references(folder: Path | None = None) -> tuple[dict[str, Reference], list[str]]:
    """Every reference run in ``folder`` (default :func:`reference_dir`), keyed by preset, and
    one line for each file that was skipped."""
    folder = reference_dir() if folder is None else folder
    refs: dict[str, Reference] = {}
    problems: list[str] = []
    if not folder.is_dir():
        return refs, problems
    for path in sorted(folder.glob("*.json")):
        try:
            ref = load_reference(path)
        except ValueError as err:
            problems.append(str(err))
            continue
        refs[ref.preset] = ref
    return refs, problems


# ----------------------------------------------------------------------------- seed studies
#
# Beside a reference run may lie ``<preset>.seeds.jsonl`` (scripts/paper_seeds.py): the same
# profile run again at other seeds, one JSON line per run, so the app can show how far one run's
# figures are from another's.


SCHEDULE = ("epochs", "teacher_epochs")  # what a row must share with its reference run


def seed_study_path(ref: Reference) -> Path:
    return ref.path.with_name(f"{ref.preset}.seeds.jsonl")


def study_of(preset_name: str) -> tuple[tuple[Measure, ...], dict[str, str]]:
    """What a seed study of ``preset_name`` keeps (its measures, the headline first) and its
    model -> baseline pairs; test errors and no pairs for a preset not registered here."""
    from .presets import PRESETS  # registers every family; kdcore.presets never imports this

    preset = PRESETS.get(preset_name)
    return (preset.seed_measures, preset.seed_pairs) if preset else ((TEST_ERRORS,), {})


def seed_row(result: dict, profile: str, seconds: float) -> dict:
    """One line of a seed study: a completed run's seed, each model's test errors, and the
    preset's other measures (``measures``: key -> model -> value) where it has any."""
    models, cfg = result["models"], result["config"]
    extra = [m for m in study_of(result["preset"])[0] if m != TEST_ERRORS]
    return {
        "seed": cfg["seed"],
        "profile": profile,
        "schedule": {k: cfg[k] for k in SCHEDULE if k in cfg},
        "errors": {name: m["test_errors"] for name, m in models.items()},
        **({"measures": {m.key: m.values(result) for m in extra}} if extra else {}),
        **({"sweep": _sweep_curves(result["sweep"])} if "sweep" in result else {}),
        "teacher_cached": any(m.get("cached", False) for m in models.values()),
        "seconds": round(seconds, 1),
        "device": result["device"],
        "device_name": device_name(result["device"]),
        "code_version": code_version(),
    }


def _sweep_curves(sweep: dict) -> dict:
    """What a seed row keeps of a sweep: each student's test errors at each value swept, and
    on hard labels alone where trained (the values and the fixed settings are the recipe's)."""
    return {"errors": sweep["errors"], "baseline_errors": sweep.get("baseline_errors", {})}


def row_values(row: dict, measure: Measure) -> dict[str, float]:
    """One seed's figures of ``measure``, by model (its test errors: the row's ``errors``)."""
    return row["errors"] if measure == TEST_ERRORS else row["measures"][measure.key]


def _row_fits(row: Any, ref: Reference, schedule: dict, measures: tuple[Measure, ...]) -> bool:
    """Whether a line of the study is a row of ``ref``'s recipe with every figure a page shows."""
    if not (
        isinstance(row, dict)
        and isinstance(row.get("seed"), int)
        and row.get("profile") == ref.profile
        and row.get("schedule") == schedule
    ):
        return False
    errors = row.get("errors")
    if not (
        isinstance(errors, dict)
        and set(errors) == set(ref.result["models"])
        and all(isinstance(v, int) and not isinstance(v, bool) for v in errors.values())
    ):
        return False
    if "sweep" in ref.result and not _sweep_fits(row.get("sweep"), ref.result["sweep"]):
        return False
    kept = row.get("measures", {})
    for m in measures:
        if m == TEST_ERRORS:
            continue
        vals = kept.get(m.key) if isinstance(kept, dict) else None
        if not (
            isinstance(vals, dict)
            and set(vals) == set(m.values(ref.result))
            and all(_number(v) for v in vals.values())
        ):
            return False
    return True


def _counts(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(e, int) and not isinstance(e, bool) for e in v)


def _sweep_fits(kept: Any, sweep: dict) -> bool:
    """Whether a row's sweep has the reference sweep's whole curve for each of its students and
    the same hard-label twins."""
    n = len(sweep["values"])
    if not (isinstance(kept, dict) and isinstance(kept.get("errors"), dict)):
        return False
    curves, bases = kept["errors"], kept.get("baseline_errors")
    return (
        set(curves) == set(sweep["errors"])
        and all(_counts(c) and len(c) == n for c in curves.values())
        and isinstance(bases, dict)
        and set(bases) == set(sweep.get("baseline_errors", {}))
        and _counts(list(bases.values()))
    )


@dataclass(frozen=True)
class SweepSeeds:
    """One student's sweep at several seeds: its test errors at each value swept, a curve per
    seed, and on hard labels alone at each seed where the sweep trains that twin."""

    student: str
    parameter: str
    values: list[float]
    seeds: list[int]
    curves: list[list[int]]  # curves[i][j]: seed i, value j
    baselines: list[int] | None  # per seed

    def mean(self) -> list[float]:
        return [statistics.fmean(c[j] for c in self.curves) for j in range(len(self.values))]

    def sd(self) -> list[float] | None:
        """The sample standard deviation at each value (None from a single seed)."""
        if len(self.curves) < 2:
            return None
        return [statistics.stdev(c[j] for c in self.curves) for j in range(len(self.values))]

    def best(self) -> list[float]:
        """At each seed, the value with the fewest errors (the smallest such value on a tie)."""
        return [self.values[min(range(len(c)), key=lambda j: (c[j], j))] for c in self.curves]

    def wins(self) -> list[int] | None:
        """At each value, at how many seeds it made fewer errors than the hard-label twin of the
        same seed (None where the sweep trains no twin)."""
        if self.baselines is None:
            return None
        return [
            sum(c[j] < b for c, b in zip(self.curves, self.baselines, strict=True))
            for j in range(len(self.values))
        ]


def sweep_seeds(ref: Reference, rows: list[dict]) -> list[SweepSeeds]:
    """``ref``'s sweep at each seed of its study (rows as :func:`load_seed_study` keeps them),
    one entry per student; none when the run is not a sweep."""
    sweep = ref.result.get("sweep")
    if not sweep or not rows:
        return []
    out = []
    for student in sweep["errors"]:
        bases = [r["sweep"]["baseline_errors"].get(student) for r in rows]
        out.append(
            SweepSeeds(
                student=student,
                parameter=sweep["parameter"],
                values=list(sweep["values"]),
                seeds=[r["seed"] for r in rows],
                curves=[list(r["sweep"]["errors"][student]) for r in rows],
                baselines=None if None in bases else bases,
            )
        )
    return out


def seed_line(ref: Reference, rows: list[dict]) -> str:
    """A seed study in one line, for a terminal: each model's headline figure as mean (sd), or
    for a sweep the value each seed did best at, by student."""
    n = len(rows)
    sweeps = sweep_seeds(ref, rows)
    if sweeps:
        best = "; ".join(
            f"{s.student} best at {s.parameter} = " + ", ".join(f"{b:g}" for b in s.best())
            for s in sweeps
        )
        return f"at {n} seeds: {best}"
    m = study_of(ref.preset)[0][0]
    vals = [row_values(r, m) for r in rows]
    d, paper = m.digits, m.paper_values(ref.result.get("paper") or {})

    def said(k: str) -> str:
        col = [v[k] for v in vals]
        sd = f" ({statistics.stdev(col):.{d}f})" if n > 1 else ""
        theirs = f" [paper {paper[k]:g}]" if k in paper else ""
        return f"{k} {statistics.fmean(col):.{d}f}{sd}{theirs}"

    return f"at {n} seeds, mean (sd) {m.label}: " + ", ".join(said(k) for k in vals[0])


def load_seed_study(ref: Reference) -> list[dict]:
    """The seed study beside ``ref``: its rows of the same profile and schedule that name the
    reference's models and carry each of the preset's measures, in seed order. A line that is
    not such a row (a quick check with fewer epochs, say) is skipped; no file, no rows."""
    cfg = ref.result["config"]
    schedule = {k: cfg[k] for k in SCHEDULE if k in cfg}
    measures = study_of(ref.preset)[0]
    try:
        lines = seed_study_path(ref).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    rows = {}
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if _row_fits(row, ref, schedule, measures):
            rows[row["seed"]] = row  # a seed run again: its latest line
    return [rows[k] for k in sorted(rows)]


def seed_pairs(ref: Reference) -> dict[str, str]:
    """Which baseline each model of ``ref`` is compared with at the same seed: the preset's own
    pairs where it names them (mutual learning has a baseline per peer; the language presets
    compare a student with the net trained as long as it), else every model of the single
    baseline's architecture (the same net trained another way; teachers and assistants of other
    sizes left out) against that baseline; none when the run has no single baseline. A pair
    may also name two columns of a measure (omitted-3's errors after the bias shift against
    those before it)."""
    models = ref.result["models"]
    measures, pairs = study_of(ref.preset)
    if pairs:
        names = set(models).union(*(m.values(ref.result) for m in measures))
        return {m: b for m, b in pairs.items() if m in names and b in names}
    base = [m for m, s in models.items() if s.get("role") == "baseline"]
    if len(base) != 1:
        return {}
    b = base[0]
    arch = models[b].get("arch")
    return {
        m: b
        for m, s in models.items()
        if m != b and s.get("role") != "teacher" and s.get("arch") == arch
    }


def seed_wins(
    ref: Reference, rows: list[dict], measure: Measure = TEST_ERRORS
) -> dict[str, tuple[str, int]]:
    """At how many seeds of a study each model did better on ``measure`` than its baseline at
    the same seed (:func:`seed_pairs`), as ``{model: (baseline, wins)}``; a tie is no win.
    Same-seed pairs share the data order and the teacher, so they say more than two means."""
    if not rows:
        return {}
    out = {}
    vals = [row_values(r, measure) for r in rows]
    for m, b in seed_pairs(ref).items():
        if all(m in v and b in v for v in vals):
            out[m] = (b, sum(measure.beats(v[m], v[b]) for v in vals))
    return out


def reference_model(ref: Reference, model: str, device: str | torch.device = "cpu") -> KDModel:
    """The shipped weights of ``model`` in ``ref`` (CheckpointError, one line, when missing or
    damaged)."""
    w = ref.weights.get(model)
    if w is None:
        raise CheckpointError(f"the reference run {ref.preset} ships no weights for {model}")
    path = ref.path.parent / w["file"]
    net, _ = load_model(path, device, expect_arch=ref.result["models"][model]["arch"])
    return net


# ----------------------------------------------------------------------------- writing


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit the code was run from (with "+changes" when the tree was not clean), or
    the package version outside a checkout. Read once per process: a script asks at its start,
    so a commit made while it trains does not name code the run never imported."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"kdcore {__version__}"
    return f"{sha}{'+changes' if dirty else ''} (kdcore {__version__})"


def device_name(device: str) -> str:
    """What the run ran on, in words: the GPU's name, or the CPU's with torch's thread count."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"{cpu}, {n} torch thread{'s' if n != 1 else ''}"


def write_reference(
    result: dict,
    trained: dict,
    folder: Path,
    profile: str,
    command: str,
    weights: tuple[str, ...] = (),
    data_dir: str | None = None,
) -> Path:
    """Write ``result`` as ``folder/<preset>.json`` with its reference block, and the weights of
    the models named in ``weights`` (from ``trained``, as run_preset fills it) at half
    precision, each with its test errors measured again after the round trip."""
    from .data import load_dataset  # the data set only when weights are checked
    from .train import evaluate

    preset = result["preset"]
    folder.mkdir(parents=True, exist_ok=True)
    shipped: dict[str, dict] = {}
    kept = [name for name in weights if name in trained]
    if kept:  # the test set, to measure each model again after the round trip
        data = load_dataset(result["config"].get("dataset", "mnist"), "cpu", data_dir)
    for name in kept:
        t = trained[name]
        rel = f"{preset}/{name.replace(' ', '_')}.safetensors"
        path = save_model(t.model, folder / rel, t.arch, t.num_classes, t.in_shape, half=True)
        back, _ = load_model(path, "cpu")
        shipped[name] = {
            "file": rel,
            "dtype": "float16",
            "bytes": path.stat().st_size,
            "test_errors": evaluate(back, data)["test_errors"],
        }
    info = {
        "profile": profile,
        "command": command,
        "code_version": code_version(),
        "device": result["device"],
        "device_name": device_name(result["device"]),
        "seconds": result["seconds"],
        "created": time.strftime(CREATED, time.gmtime()),
        "weights": shipped,
    }
    out = folder / f"{preset}.json"
    out.write_text(json.dumps({**result, "reference": info}, indent=1))
    return out
