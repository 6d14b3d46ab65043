"""The method contract: what every distillation method gives the trainer, whatever its family.

A method is one entry of :data:`kdcore.methods.METHODS`: a :class:`Method` with its own frozen
parameter dataclass and a ``build`` function that makes a :class:`Distiller` for a given student
and teacher. The distiller is an ``nn.Module``, so whatever it owns (a projector, an embedding
head, a memory bank) is trained, clipped, saved and restored with the student. In a step it sees
every model's logits **and** named features (:class:`~kdcore.models.ModelOutput`), never a
flattened subset, so feature- and relation-based methods fit the same contract as KD.

The trainer (:func:`kdcore.train.fit`) knows none of this: :func:`kdcore.distill.distill` turns a
distiller into the trainer's step function. Parameters are plain dataclass fields whose
``metadata`` (label, range, help, choices) lets the lab draw a control for each and the CLI check
``--set KEY=VALUE`` without naming any method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

import torch
from torch import nn

from .models import KDModel, ModelOutput
from .train import Batch

# ----------------------------------------------------------------------------- parameter fields


def param(
    default: Any,
    label: str,
    lo: float | None = None,
    hi: float | None = None,
    step: float | None = None,
    help: str = "",
    choices: Sequence[Any] | str | None = None,
    log: bool = False,
) -> Any:
    """A dataclass field with what a control needs: a label, an inclusive range, a step, a help
    line, and either a fixed list of ``choices`` or the name of a dynamic list (``"student
    features"``, ``"teacher features"``) that the caller fills from the models."""
    meta = {"label": label, "lo": lo, "hi": hi, "step": step, "help": help, "log": log}
    if choices is not None:
        meta["choices"] = choices if isinstance(choices, str) else tuple(choices)
    return field(default=default, metadata=meta)


def describe_field(f) -> dict:
    """A field's metadata with defaults filled in (fields made without :func:`param` too)."""
    meta = dict(f.metadata)
    meta.setdefault("label", f.name)
    for key in ("lo", "hi", "step", "choices"):
        meta.setdefault(key, None)
    meta.setdefault("help", "")
    meta.setdefault("log", False)
    return meta


def check_value(name: str, value: Any, meta: dict) -> None:
    """Raise ValueError (one line) when ``value`` is not finite, outside its range or not one of
    its fixed choices."""
    if isinstance(value, bool):
        return
    name = _called(name, meta.get("label"))
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value}")
        lo, hi = meta.get("lo"), meta.get("hi")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"[{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else ""
            span = span or (f"at least {_num(lo)}" if lo is not None else f"at most {_num(hi)}")
            raise ValueError(f"{name} must be {'in ' if span.startswith('[') else ''}{span}, "
                             f"not {_num(value)}")  # fmt: skip
    choices = meta.get("choices")
    if isinstance(choices, tuple) and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")


def split_label(label: str) -> tuple[str, str]:
    """``"Teacher jitter (pixels)"`` -> ``("Teacher jitter", "pixels")``: a field's name, and
    the words of a closing bracket ("" when it has none)."""
    name, sep, rest = label.partition(" (")
    if not sep or not rest.endswith(")"):
        return label, ""
    return name, rest[:-1]


def _called(name: str, label: str | None) -> str:
    """How a message names a field: as its control does, with the name the command line and
    ``--set`` use ("Learning rate (lr)"); just the label where it ends with the name
    ("Temperature T", "Student epochs"), just the name where there is no label."""
    if not label:
        return name
    label = split_label(label)[0]  # "Teacher jitter (pixels)": the words before the bracket
    low, key = label.lower(), name.lower().replace("_", " ")
    return label if low == key or low.endswith(f" {key}") else f"{label} ({name})"


def _num(v: float | None) -> str:
    """A limit or value as typed: whole numbers in full (2147483647, not 2.14748e+09)."""
    if v is None:
        return "?"
    if float(v).is_integer() and abs(v) < 1e16:
        return str(int(v))
    return f"{v:g}"


def check_config(cfg: Any) -> None:
    """Check every field of a frozen config against its type and metadata (finite, in range, a
    known choice). Raises ValueError with one line naming the first bad field."""
    for f in fields(cfg):
        meta = describe_field(f)
        check_type(f.name, getattr(cfg, f.name), f.type, meta)
        check_value(f.name, getattr(cfg, f.name), meta)


# The annotations configs use (``from __future__ import annotations`` keeps them as text), and
# what a value of each must be. A value typed by hand (``--set 'params={"T": "abc"}'``) is
# refused here, before anything trains, not by the loss halfway through a run.
_SCALARS: dict[str, tuple[type, str]] = {
    "bool": (bool, "true or false"),
    "int": (int, "a whole number"),
    "float": (float, "a number"),
    "str": (str, "text"),
}


def _is(value: Any, kind: str) -> bool:
    want = _SCALARS[kind][0]
    if isinstance(value, bool):
        return want is bool
    return isinstance(value, int | float) if want is float else isinstance(value, want)


def check_type(name: str, value: Any, annotation: Any, meta: dict) -> None:
    """Raise ValueError (one line) when ``value`` is not of the field's annotated type: a bool,
    a whole number, a number (an int will do), text, a list of one of those (``tuple[float,
    ...]``) or a JSON object (``dict[...]``). Other annotations are not checked."""
    # text under ``from __future__ import annotations``; else a class (``float``) or a generic
    # alias, whose str is the same text (``tuple[float, ...]``; its __name__ is just "tuple")
    if isinstance(annotation, str):
        ann = annotation
    elif isinstance(annotation, type) and not hasattr(annotation, "__origin__"):
        ann = annotation.__name__
    else:
        ann = str(annotation)
    ann = ann.replace(" ", "")
    called = _called(name, meta.get("label"))
    if ann in _SCALARS:
        if not _is(value, ann):
            raise ValueError(f"{called} must be {_SCALARS[ann][1]}, not {value!r}")
    elif ann.startswith("tuple[") and ann.endswith(",...]") and ann[6:-5] in _SCALARS:
        kind = ann[6:-5]
        if not isinstance(value, tuple | list) or not all(_is(v, kind) for v in value):
            what = {"str": "names", "int": "whole numbers"}.get(kind, "numbers")
            raise ValueError(f"{called} must be a list of {what} (JSON, e.g. --set "
                             f"{name}='[...]'), not {value!r}")  # fmt: skip
    elif ann.startswith("dict[") and not (
        isinstance(value, dict) and all(isinstance(k, str) for k in value)
    ):
        raise ValueError(f'{called} must be a JSON object ({{"name": value, ...}}), not {value!r}')


def coerce(cfg_type: type, key: str, raw: str) -> Any:
    """Parse ``raw`` (text from a URL or ``--set``) as the type of field ``key``'s default."""
    f = next((f for f in fields(cfg_type) if f.name == key), None)
    if f is None:
        raise KeyError(key)
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{key}: {raw!r} is not true or false")
        return low in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


# ----------------------------------------------------------------------------- the contract


@dataclass
class Probe:
    """What a method may look at to size its modules: both models' outputs on a few real
    training images (features in forward order, with their shapes), and the teacher's last
    layer."""

    student: ModelOutput
    teacher: ModelOutput | None
    num_classes: int
    num_train: int  # size of the training set (memory banks hold one row per example)
    # The teacher's last layer, from its embedding to its logits (KDModel.classifier), for a
    # method that reads the student's features with it (SRRL); the method copies and freezes it
    teacher_head: nn.Module | None = None

    def student_shape(self, layer: str) -> tuple[int, ...]:
        return _shape(self.student, layer, "student")

    def teacher_shape(self, layer: str) -> tuple[int, ...]:
        if self.teacher is None:
            raise ValueError("this method needs a teacher")
        return _shape(self.teacher, layer, "teacher")


def _shape(out: ModelOutput, layer: str, who: str) -> tuple[int, ...]:
    if layer not in out.features:
        raise ValueError(f"the {who} has no feature {layer!r}; it has {', '.join(out.features)}")
    return tuple(out.features[layer].shape[1:])


@dataclass(frozen=True)
class Stage:
    """One phase of a method's training: ``name`` is passed to the distiller, ``epochs`` is how
    long it lasts. Most methods have one stage of the run's length."""

    name: str
    epochs: int


def stage_first(name: str, before: int, epochs: int) -> list[Stage]:
    """A method's own stage of ``before`` epochs ahead of the run's ``epochs`` (AB's
    initialisation, FT's paraphraser, FSP's matching: the reference codes add theirs before the
    run's, RepDistiller 30 before 240); at 0, the run's stage alone."""
    if before <= 0:
        return [Stage("train", epochs)]
    return [Stage(name, before), Stage("train", epochs)]


class Distiller(nn.Module):
    """One method's step, as a module so that what it owns trains and saves with the student.

    Subclasses implement :meth:`forward` and, when they read more than the teacher's logits,
    :meth:`teacher_targets`. Stateless methods are a thin wrapper over their pure loss.
    """

    def __init__(self, params: Any):
        super().__init__()
        self.params = params
        self.stage = "train"

    def teacher_targets(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        """The per-example tensors the step needs from the frozen teacher, each (B, ...).

        Must be a pure function of the teacher's output (no trainable state): the result is
        computed once for the whole training set when the inputs are not augmented.
        """
        return {"logits": out.logits}

    def stages(self, epochs: int) -> list[Stage]:
        """The phases of training; ``epochs`` is the run's epoch count for the student."""
        return [Stage("train", epochs)]

    def forward(
        self, student: ModelOutput, teacher: dict[str, torch.Tensor], batch: Batch
    ) -> dict[str, torch.Tensor]:
        """Named scalar loss parts for one batch; the trainer minimises their sum.

        student: the student's logits (B, K) and features; teacher: :meth:`teacher_targets` of
        the teacher for the same examples (empty for methods without a teacher); batch: the
        inputs, labels ``batch.y`` (B,) and positions ``batch.index`` in the training set.
        """
        raise NotImplementedError

    def deploy(self, student: KDModel) -> KDModel:
        """The network that trains and answers at test time: the student itself, for every
        method but one that keeps a part of the teacher (SimKD's student reads its features with
        the teacher's classifier). Called again with the same student, the same network."""
        return student

    def after_step(self, batch: Batch) -> None:
        """Called after each optimiser step (e.g. to update a memory bank at ``batch.index``)."""

    def epoch_summary(self) -> dict[str, Any]:
        """JSON-ready figures recorded with each epoch (e.g. a projector's singular values)."""
        return {}


def flat_feature_targets(out: ModelOutput, layer: str) -> dict[str, torch.Tensor]:
    """What relation methods cache of the teacher: its logits (B, K) and one named feature
    flattened per example, (B, D_t)."""
    feat = out.features[layer]
    return {"logits": out.logits, "feat": feat.reshape(feat.shape[0], -1)}


@dataclass(frozen=True)
class Method:
    """One entry of the registry."""

    name: str  # the key, as typed in --set method=... and kept in URLs and stored runs
    title: str
    family: str  # "baseline", "response", "feature" or "relation"
    citation: str  # authors, year, arXiv id
    params: type  # a frozen dataclass whose defaults are the method's defaults
    build: Callable[[Any, Probe], Distiller]
    uses_teacher: bool = True
    summary: str = ""  # one sentence: what is transferred
    abbreviation: str = ""  # how a chart's point names it; "" for the name in capitals (KD)
    baseline: bool = False  # the reference every distilled student is compared with
    # Its step can be captured as a CUDA graph (kdcore.cudagraph): pure tensor code with no host
    # synchronisation and no Python state that changes from step to step.
    graph_safe: bool = False

    @property
    def short(self) -> str:
        """The method's name where a long one does not fit (a point's label): RKD, SP."""
        return self.abbreviation or self.name.upper()

    def make_params(self, values: dict[str, Any] | Any | None = None) -> Any:
        """The parameter dataclass from a dict of overrides (or an instance), checked."""
        if values is None:
            p = self.params()
        elif is_dataclass(values) and not isinstance(values, type):
            p = values
        elif not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise ValueError(
                f'the parameters of method {self.name} must be a JSON object such as {{"T": 4}}, '
                f"not {values!r}"
            )
        else:
            unknown = sorted(set(values) - {f.name for f in fields(self.params)})
            if unknown:
                known = ", ".join(f.name for f in fields(self.params)) or "none"
                raise ValueError(
                    f"method {self.name} has no parameter {', '.join(unknown)} (it has {known})"
                )
            p = replace(self.params(), **values)
        check_config(p)
        return p

    def params_dict(self, values: dict[str, Any] | Any | None = None) -> dict[str, Any]:
        return asdict(self.make_params(values))
