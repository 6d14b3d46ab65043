"""The run machinery below the presets and the lab: runners, contexts, monitors, model steps.

A *runner* (:class:`Preset`) is a named, frozen configuration with a function that trains its
models; the published demonstrations and the lab's own custom run are all registered here, so
the job queue, the store and the CLI run any of them the same way (:func:`run_preset`).

Every runner returns a JSON-ready dict with at least ``preset``, ``status``, ``message``,
``config``, ``device``, ``history`` (per model, per epoch), ``models`` (per model: ``role``,
``arch``, ``method``, ``test_accuracy``, ``test_errors``, ``per_class_accuracy``, ``params``,
``seconds``) and ``paper``. A model's role (teacher, student, baseline, peer, generation),
architecture and method are fields, so nothing downstream parses model names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, cache_dir, load_model, save_model
from .data import Dataset, load_dataset, per_class
from .distill import View, build_distiller, distill
from .method import Distiller, check_config, coerce
from .methods import baseline_method, get_method
from .models import KDModel, build_model
from .train import Callback, FitResult, TrainConfig, evaluate, fit, pick_device, seed_everything

log = logging.getLogger(__name__)

ROLES = ("teacher", "student", "baseline", "peer", "generation", "assistant")


class Monitor(Callback):
    """Progress of a multi-model run: which model is training, then the trainer's callbacks."""

    def on_model_start(self, name: str, index: int, count: int) -> None:
        pass

    def on_model_end(self, name: str, summary: dict) -> None:
        pass


@dataclass
class Trained:
    """A model a run produced, with what :func:`kdcore.checkpoint.save_model` needs, and the
    modules its method trained beside it (a projector, an embedding head)."""

    arch: str
    model: nn.Module
    num_classes: int
    in_shape: tuple[int, int, int]
    role: str = "student"
    method: str = ""
    distiller: Distiller | None = None


@dataclass
class RunContext:
    """What a runner needs besides its config, and what it has produced so far.

    ``history`` and ``models`` fill in as models finish, so a run that is cancelled or fails
    half-way still returns everything done before it stopped.
    """

    device: torch.device
    monitor: Monitor = field(default_factory=Monitor)
    cancel: threading.Event | None = None
    use_cache: bool = True  # reuse a teacher trained earlier with the same config
    data_dir: str | None = None
    cuda_graphs: bool = False  # replay each step as a CUDA graph where it can (kdcore.cudagraph)
    count: int = 1  # how many models the run trains, for "model 2 of 3" progress
    history: dict[str, list[dict]] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    trained: dict[str, Trained] = field(default_factory=dict)  # name -> model, for saving
    # Runner-specific results (a sweep, a bias adjustment) that runners fill in as they go; they
    # join the result dict, so a cancelled sweep still returns the points it finished.
    extra: dict[str, Any] = field(default_factory=dict)

    def train(self, name: str, run: Callable[[list[Callback]], FitResult]) -> FitResult:
        self.monitor.on_model_start(name, len(self.history), self.count)
        result = run([self.monitor])
        for model, records in result.histories.items():
            key = name if len(result.histories) == 1 else model
            self.history[key] = [r.to_dict() for r in records]
        if not result.ok:
            raise Stopped(name, result)
        return result

    def done(self, name: str, summary: dict, trained: Trained | None = None) -> None:
        self.models[name] = summary
        if trained is not None:
            self.trained[name] = trained
        self.monitor.on_model_end(name, summary)


class Stopped(Exception):
    """A model's training did not complete (cancelled or failed); carries the FitResult."""

    def __init__(self, name: str, result: FitResult):
        super().__init__(result.message)
        self.name = name
        self.result = result


@dataclass(frozen=True)
class Measure:
    """A figure a seed study keeps for each model of a run: a field of each model's results
    (``models[m][key]``), or what ``extract`` reads from the result, column by column
    (speculative decoding's acceptance rate per draft, the errors before and after a bias
    shift)."""

    key: str
    label: str  # what it is, in words, for the table's title
    better: str  # "fewer test errors": what a model beats its baseline with, in words
    lower_is_better: bool = True
    digits: int = 1  # the decimals of a mean or standard deviation
    extract: Callable[[dict[str, Any]], dict[str, float]] | None = None

    def values(self, result: dict[str, Any]) -> dict[str, float]:
        if self.extract is not None:
            return self.extract(result)
        return {m: s[self.key] for m, s in result["models"].items() if self.key in s}

    def paper_values(self, paper: dict[str, Any]) -> dict[str, float]:
        """The paper's own figures of this measure, read from a preset's ``paper`` dict (keyed
        like a result): those it gives, which may be fewer than a run's columns."""
        got = self.extract(paper) if self.extract is not None else paper.get(self.key)
        if not isinstance(got, dict):
            return {}
        return {k: v for k, v in got.items() if isinstance(v, int | float) and v == v}

    def beats(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` (a tie is not a win)."""
        return a < b if self.lower_is_better else a > b


TEST_ERRORS = Measure("test_errors", "test errors", better="fewer test errors")


@dataclass(frozen=True)
class Preset:
    """A registered runner: a published demonstration, or (``kind="custom"``) the lab's own."""

    name: str
    title: str
    summary: str
    source: str  # where the paper's numbers come from: authors, year, section/table
    paper: dict[str, Any]  # the paper's figures, keyed like our results
    config: Any  # a frozen dataclass instance with an ``epochs`` field
    runner: Callable[[Any, RunContext], dict]
    differences: str  # why our default numbers differ from the paper's
    kind: str = "preset"  # "preset" (listed) or "custom" (the lab's configurable run)
    # (config, changes) -> config: how overrides apply; the default replaces fields by name
    configure: Callable[[Any, dict[str, Any]], Any] | None = None
    check: Callable[[Any], None] | None = None  # more checks than each field's range
    # Named sets of changes to the default config, e.g. "paper": the paper-length recipe. A
    # profile is a starting point like the default; the user's own changes apply on top.
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile_notes: dict[str, str] = field(default_factory=dict)  # what each profile is, briefly
    # why a profile's numbers differ from the paper's, where not as the default's (`differences`)
    profile_differences: dict[str, str] = field(default_factory=dict)
    # What a seed study of its shipped run keeps per model (scripts/paper_seeds.py), the first
    # the headline; and which baseline each model is compared with at the same seed, where the
    # run has not exactly one (kdcore.reference.seed_wins)
    seed_measures: tuple[Measure, ...] = (TEST_ERRORS,)
    seed_pairs: dict[str, str] = field(default_factory=dict)

    def profile_config(self, profile: str | None) -> Any:
        """The default config (``None`` or "default") or that of a named profile, checked."""
        if profile in (None, "", "default"):
            return self.config
        if profile not in self.profiles:
            have = ", ".join(["default", *self.profiles])
            raise ValueError(f"{self.name} has no profile {profile!r}; choose {have}")
        return self.with_changes(self.profiles[profile])

    def profile_of(self, config: dict[str, Any]) -> str:
        """The profile a run's config (a result's ``config`` dict) starts from: the first named
        profile whose every setting it keeps, else "default". A seed or other setting the
        profile does not name may differ."""
        for name, changes in self.profiles.items():
            if all(config.get(k) == v for k, v in changes.items()):
                return name
        return "default"

    def differences_for(self, profile: str) -> str:
        """Why the numbers of a run of ``profile`` differ from the paper's."""
        return self.profile_differences.get(profile, self.differences)

    def with_changes(self, changes: dict[str, Any], base: Any = None) -> Any:
        """The config with ``changes`` applied and every field checked (ValueError, one line).
        Values may be typed, or text as typed after ``--set KEY=`` (parsed by the field)."""
        base = self.config if base is None else base
        cfg = (self.configure or apply_changes)(base, changes)
        check_config(cfg)
        check_architectures(cfg)
        if self.check is not None:
            self.check(cfg)
        return cfg


RUNNERS: dict[str, Preset] = {}  # every runner, the lab's custom one included
PRESETS: dict[str, Preset] = {}  # the published demonstrations, listed in the CLI and the lab


# The "long" profile of the quick MLP presets (the relation methods and the training modes): the
# default recipe at four times the epochs. At the default four, several methods still went the
# wrong way in one seed's run; at sixteen most go the papers' way, and a preset still takes
# seconds to two minutes on a 2-core CPU. The app ships its run of this profile for them.
LONG_PROFILE: dict[str, Any] = {"epochs": 16}
LONG_NOTE = {
    "long": "The long profile: the default recipe at 16 epochs a model instead of 4 (a teacher "
    "with a schedule of its own keeps it), so that the methods' effects have time to show; "
    "seconds to two minutes on a 2-core CPU."
}


def register(preset: Preset) -> Preset:
    RUNNERS[preset.name] = preset
    if preset.kind == "preset":
        PRESETS[preset.name] = preset
    return preset


def apply_changes(cfg: Any, changes: dict[str, Any]) -> Any:
    """``replace(cfg, **changes)`` with unknown names refused and text values parsed."""
    known = {f.name: f for f in fields(cfg)}
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ValueError(f"no setting {', '.join(unknown)}; the settings are {', '.join(known)}")
    typed = {k: parse_value(cfg, k, v) for k, v in changes.items()}
    return replace(cfg, **typed)


def parse_value(cfg: Any, key: str, value: Any) -> Any:
    """A value for field ``key`` of ``cfg``: text is parsed by the field's type (tuples and
    dicts as JSON); anything else is taken as it is."""
    if not isinstance(value, str):
        return value
    current = getattr(cfg, key)
    if isinstance(current, str):
        return value
    if isinstance(current, tuple | list | dict):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(current, dict) and isinstance(parsed, dict):
            return parsed
        if not isinstance(current, dict) and isinstance(parsed, list):
            if current and all(type(v) is float for v in current):  # [2, 4] means [2.0, 4.0]
                parsed = [float(v) if type(v) is int else v for v in parsed]
            return tuple(parsed) if isinstance(current, tuple) else parsed
        example = json.dumps(current if isinstance(current, dict) else list(current))
        kind = "JSON object" if isinstance(current, dict) else "JSON list"
        raise ValueError(f"{key} must be a {kind} such as {example[:60]}, not {value!r}")
    try:
        return coerce(type(cfg), key, value)
    except (ValueError, json.JSONDecodeError):
        raise ValueError(f"{key}: {value!r} is not a valid {type(current).__name__}") from None


ARCH_FIELDS = ("teacher", "student", "teachers", "students", "assistant", "peers")
# Far above any model offered here (the largest, resnet32x4, has 7.4M) and below what fails to
# allocate: 200M parameters train in about 2.4 GB (weights, gradients, momentum in float32).
MAX_PARAMS = 200_000_000


def check_architectures(cfg: Any) -> None:
    """Fail before any training when a config names a model that does not exist (a typo in
    ``--set student=...`` should not cost a teacher's training first)."""
    for f in fields(cfg):
        if f.name not in ARCH_FIELDS:
            continue
        value = getattr(cfg, f.name)
        names = (
            [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else []
        )
        for name in names:
            if isinstance(name, str):
                with torch.device("meta"):  # shapes only: a huge "mlp-20000" allocates nothing
                    model = build_model(name)  # raises ValueError naming the choices
                size = sum(p.numel() for p in model.parameters())
                if size > MAX_PARAMS:  # it would train the others first, then fail to allocate
                    raise ValueError(f"{name} has {size:,} parameters; this app trains models "
                                     f"of up to {MAX_PARAMS:,}")  # fmt: skip


# ----------------------------------------------------------------------------- sweeps


def sweep_record(parameter: str, values: tuple[float, ...], students: tuple[str, ...], **fixed):
    return {
        "parameter": parameter,
        "values": list(values),
        "fixed": fixed,
        "errors": {s: [] for s in students},  # filled as students finish; shorter if cancelled
        "accuracy": {s: [] for s in students},
        "baseline_errors": {},  # the same student on hard labels only, when trained
    }


def add_point(ctx: RunContext, sweep: dict, student: str, name: str) -> None:
    sweep["errors"][student].append(ctx.models[name]["test_errors"])
    sweep["accuracy"][student].append(ctx.models[name]["test_accuracy"])


def kd_points(field: str, temperatures: tuple, alphas: tuple) -> None:
    """Every point of a sweep is a valid KD setting, checked before anything trains (a bad T
    was refused only when its student's turn came)."""
    from .methods import get_method

    if not temperatures or not alphas:
        raise ValueError(f"{field} must list at least one value")
    kd = get_method("kd")
    for T in temperatures:
        for a in alphas:
            try:
                kd.make_params({"T": T, "alpha": a})
            except ValueError as err:
                raise ValueError(f"{field}: {err}") from None


# ----------------------------------------------------------------------------- model steps


def run_data(cfg: Any, ctx: RunContext) -> Dataset:
    """The run's data set (``cfg.dataset``) on its device; with ``cfg.per_class`` > 0 only that
    many training images of each class, chosen by ``cfg.seed`` (for tests and quick looks)."""
    data = load_dataset(cfg.dataset, ctx.device, ctx.data_dir)
    if getattr(cfg, "per_class", 0):
        data = data.with_train(*per_class(data.x_train, data.y_train, cfg.per_class, cfg.seed))
    return data


def model_summary(model: nn.Module, data: Dataset, seconds: float, **extra) -> dict:
    report = evaluate(model, data)
    return {
        **report,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 2),
        **extra,
    }


def _config_key(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def teacher_cache_path(
    arch: str, data_name: str, n_train: int, cfg: TrainConfig, device_type: str
) -> tuple[Path, dict]:
    """Where the teacher trained with exactly these settings is cached, and the settings that
    name it (kept in the file): the architecture, the data set and its number of training
    images, the training config, the device type and torch's release."""
    key_src = {
        "arch": arch,
        "data": data_name,
        "n": n_train,
        "cfg": asdict(cfg),
        "device": device_type,
        "torch": torch.__version__.split("+")[0],
    }
    name = f"{arch}-{data_name}-{_config_key(key_src)}.safetensors"
    return cache_dir() / "teachers" / name, key_src


def train_teacher(
    ctx: RunContext, data: Dataset, arch: str, cfg: TrainConfig, name: str = "teacher"
) -> KDModel:
    """Train a teacher on hard labels, or load the one trained earlier with exactly this config
    and device type.

    Teachers are cached under ``cache_dir()/teachers`` as safetensors (never pickles), so a sweep
    or a second preset on the same teacher does not train it again.
    """
    path, key_src = teacher_cache_path(arch, data.name, len(data.y_train), cfg, ctx.device.type)
    info = {"role": "teacher", "arch": arch, "method": baseline_method().name}
    if ctx.use_cache and path.is_file():
        try:
            model, meta = load_model(path, ctx.device, expect_arch=arch)
            ctx.monitor.on_model_start(name, len(ctx.history), ctx.count)
            ctx.history[name] = meta.get("history", [])
            summary = model_summary(model, data, meta.get("seconds", 0.0), cached=True, **info)
            trained = Trained(arch, model, data.num_classes, data.image_shape, "teacher")
            ctx.done(name, summary, trained)
            return model
        except CheckpointError:
            pass  # a damaged cache entry is simply retrained and overwritten
    seed_everything(cfg.seed)
    model = build_model(arch, data.num_classes, data.image_shape).to(ctx.device)
    result = ctx.train(
        name,
        lambda cbs: fit(model, data, cfg, callbacks=cbs, cancel=ctx.cancel, graphs=ctx.cuda_graphs),
    )
    meta = {"history": ctx.history[name], "seconds": result.seconds, "config": key_src}
    try:
        save_model(model, path, arch, data.num_classes, data.image_shape, meta)
    except OSError as err:  # a full or read-only disk costs the cache, not the run
        log.warning("teacher not cached at %s (%s)", path, err)
    summary = model_summary(model, data, result.seconds, cached=False, **info)
    ctx.done(name, summary, Trained(arch, model, data.num_classes, data.image_shape, "teacher"))
    return model.eval()


def train_student(
    ctx: RunContext,
    data: Dataset,
    arch: str,
    cfg: TrainConfig,
    name: str,
    method: str,
    teacher: KDModel | None = None,
    params: Any = None,
    targets: dict[str, torch.Tensor] | None = None,
    eval_data: Dataset | None = None,
    role: str | None = None,
    watch: Callable[[KDModel], dict] | None = None,
    view: View | None = None,
    built: Callable[[Distiller], None] | None = None,
) -> KDModel:
    """Train a student with ``method`` from the same seed as every other student of the run
    (a fair comparison).

    ``data`` is the transfer set; the summary is measured on ``eval_data`` (default ``data``).
    ``params`` are the method's parameters (a dict of overrides or the dataclass); ``targets``
    the teacher's targets when the caller already computed them (``{"logits": ...}`` for KD).
    The role defaults to "baseline" for the registry's baseline method, else "student".
    ``watch(model)`` records figures of the student in every epoch's ``extra`` (see distill);
    ``view`` the two models' inputs where they are not the batch's (see distill); ``built(d)``
    is handed the method's distiller before training, for a ``watch`` that draws what the
    method's own modules make of the student (ICKD's embedded channels).
    """
    m = get_method(method)
    seed_everything(cfg.seed + 1)
    model = build_model(arch, data.num_classes, data.image_shape).to(ctx.device)
    p = m.make_params(params)
    distiller = build_distiller(method, p, model, teacher, data)
    if built is not None:
        built(distiller)
    net = distiller.deploy(model)  # the student, or the network its method deploys it in
    result = ctx.train(
        name,
        lambda cbs: distill(
            model,
            teacher,
            data,
            cfg,
            method,
            p,
            cbs,
            ctx.cancel,
            targets,
            distiller,
            watch,
            graphs=ctx.cuda_graphs,
            view=view,
        ),
    )
    role = role or ("baseline" if m.baseline else "student")
    info = {"role": role, "arch": arch, "method": method, "method_params": asdict(p)}
    summary = model_summary(net, eval_data or data, result.seconds, **info)
    # The weights saved are the student's own; what its method adds is kept with the distiller
    trained = Trained(arch, model, data.num_classes, data.image_shape, role, method, distiller)
    ctx.done(name, summary, trained)
    return net.eval()


def finish(preset: Preset, cfg: Any, ctx: RunContext, t0: float, **extra) -> dict:
    """The result dict of a completed run."""
    return {
        "preset": preset.name,
        "status": "completed",
        "message": "",
        "config": asdict(cfg),
        "device": str(ctx.device),
        "history": ctx.history,
        "models": ctx.models,
        "paper": {"source": preset.source, **preset.paper},
        "seconds": round(time.perf_counter() - t0, 2),
        **ctx.extra,
        **extra,
    }


def get_runner(name: str) -> Preset:
    if name not in RUNNERS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(RUNNERS)}")
    return RUNNERS[name]


def resolve(
    name: str,
    epochs: int | None = None,
    seed: int | None = None,
    profile: str | None = None,
    **overrides: Any,
) -> Any:
    """The runner's config (its default, or the named ``profile``) with the overrides applied
    and checked."""
    preset = get_runner(name)
    changes = dict(overrides)
    if epochs is not None:
        changes["epochs"] = epochs
    if seed is not None:
        changes["seed"] = seed
    return preset.with_changes(changes, base=preset.profile_config(profile))


def run_preset(
    name: str,
    epochs: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    monitor: Monitor | None = None,
    cancel: threading.Event | None = None,
    use_cache: bool = True,
    data_dir: str | None = None,
    trained: dict[str, Trained] | None = None,
    config: Any = None,
    profile: str | None = None,
    cuda_graphs: bool = False,
    **overrides: Any,
) -> dict:
    """Run a registered runner. A model that is cancelled or fails ends the run with that
    status; the models finished before it and the partial history are kept in the result.

    ``config`` is a resolved config to run as it is; otherwise the runner's default (or its
    ``profile``) with ``epochs``, ``seed`` and ``overrides`` applied. ``trained``, when given,
    receives every model the run produced (to save their weights). ``cuda_graphs`` replays the
    steps of graph-safe methods (and every teacher's) as CUDA graphs on a GPU."""
    preset = get_runner(name)
    cfg = config if config is not None else resolve(name, epochs, seed, profile, **overrides)
    ctx = RunContext(
        pick_device(device), monitor or Monitor(), cancel, use_cache, data_dir, cuda_graphs
    )
    if trained is not None:
        ctx.trained = trained
    t0 = time.perf_counter()
    try:
        return preset.runner(cfg, ctx)
    except Stopped as stop:
        out = finish(preset, cfg, ctx, t0)
        out.update(status=stop.result.status, message=f"{stop.name}: {stop.result.message}")
        return out
