"""Shared UI parts: the plot style, URL-bound controls, "show the real code", cached loaders.

Pages import this module and :mod:`app.figures`; neither holds tensor maths (that is
:mod:`kdcore.analysis`). The demo-model recipe lives in :mod:`kdcore.demo`, so
``scripts/train_demo_models.py`` and the in-app fallback train exactly the same thing.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import io
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from kdcore.checkpoint import CheckpointError, cache_dir, load_model, save_model
from kdcore.data import Dataset, load_mnist
from kdcore.demo import DEMO_SPECS, DemoSpec, train_demo_model
from kdcore.models import KDModel
from kdcore.reference import load_references, reference_dir, reference_model
from kdcore.train import evaluate, predict_logits

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "assets" / "models"
MODELS_ENV = "KD_DEMO_MODELS"  # another folder of demo models, e.g. a corrupt one in tests

# ----------------------------------------------------------------------------- demo models


THREADS_ENV = "KD_TORCH_THREADS"


PAGE_RUNS_ENV = "KD_PAGE_RUNS"
GATE_WAIT_S = 10.0  # a page run waits at most this long for its turn, then runs anyway


def _env_count(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 256 else default


def page_threads() -> int:
    """Torch's intra-op threads for a page's own work (``$KD_TORCH_THREADS``, default 1).

    A page computes on a handful of logits; a second thread only adds its hand-off: measured
    on the 2-core machine, a rerun of /kd-loss cost the server 25-48 ms of CPU with one thread
    and 48-55 ms with two. Training jobs set their own count in their worker threads
    (:class:`kdcore.jobs.JobQueue`), so a run launched from the lab still uses every core."""
    return _env_count(THREADS_ENV, 1)


_GATE = threading.BoundedSemaphore(_env_count(PAGE_RUNS_ENV, 1))


@contextlib.contextmanager
def page_run() -> Iterator[None]:
    """One page run: this script thread's torch threads set for page work, and a turn at the
    process's gate (``$KD_PAGE_RUNS`` runs at a time, default 1).

    Streamlit runs every session's script in a thread of its own, and the threads share one
    interpreter lock: 30 sessions rerunning together each took thirty times as long, plus the
    cost of switching between them (the server's CPU per rerun rose from 25 to 41 ms). Taking
    turns, each run finishes in its own time and the next starts: measured with
    ``bench/bench_load.py`` (30 sessions, no training job), rerun p50 409 -> 131 ms and p95
    1051 -> 324 ms. A run that waits longer than ``GATE_WAIT_S`` (another page training its
    demo models, say) goes ahead anyway, so none waits behind a slow one for good."""
    torch.set_num_threads(page_threads())  # this thread's own setting (see page_threads)
    turn = _GATE.acquire(timeout=GATE_WAIT_S)
    try:
        yield
    finally:
        if turn:
            _GATE.release()


_SETTLED: set[str] = set()


def settle_memory(page: str) -> None:
    """After a page's first run in this process, collect once and freeze what survives
    (``gc.freeze``): the modules, models, data and caches that first run loaded.

    Streamlit runs a full garbage collection after every script run (``runner.postScriptGC``),
    and a full collection walks every object the process holds: measured with
    ``bench/bench_load.py``, that was two thirds of the server's CPU per rerun (230 ms of 230 →
    75 ms with the freeze; 81 ms with the collection switched off instead). Frozen objects are
    skipped, so each run's own garbage is still collected at once and the memory of sessions
    that close still returns. Once per page: later runs create only per-session objects,
    which must stay collectable."""
    if page in _SETTLED:
        return
    _SETTLED.add(page)
    gc.collect()
    gc.freeze()


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_ENV) or MODELS_DIR)


@dataclass(frozen=True)
class Demo:
    data: Dataset
    teacher: KDModel
    student: KDModel
    meta: dict[str, dict]  # role -> metadata
    teacher_logits: torch.Tensor  # (N_test, K)
    student_logits: torch.Tensor  # (N_test, K)
    by_digit: tuple[torch.Tensor, ...]  # test-set indices of each digit, in test-set order
    notes: tuple[str, ...]  # one line per model that had to be trained here

    @property
    def per_digit(self) -> int:
        """How many test images every digit has at least (for one index range across digits)."""
        return min(len(ix) for ix in self.by_digit)


def _load_fitting(path: Path, data: Dataset) -> tuple[KDModel, dict]:
    """A model file that also fits ``data``: one image in, one logit per class out. A valid
    checkpoint of another model (a CIFAR ResNet, say) raises CheckpointError (one line) here,
    not a shape error on every page that uses it."""
    model, meta = load_model(path)
    try:
        with torch.no_grad():
            out = model(data.x_test[:1].cpu())
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path.name} does not take {data.name} images ({first})") from None
    if tuple(out.shape) != (1, data.num_classes):
        raise CheckpointError(f"{path.name} gives {tuple(out.shape)[1:]} outputs for "
                              f"{data.num_classes} classes")  # fmt: skip
    return model, meta


def _load_or_train(spec: DemoSpec, folder: Path, data: Dataset) -> tuple[KDModel, dict, str]:
    try:
        model, meta = _load_fitting(folder / f"{spec.role}.safetensors", data)
        return model, meta, ""
    except CheckpointError as err:
        reason = str(err)
    stand_in = cache_dir() / "demo" / f"{spec.role}-quick.safetensors"
    try:  # a stand-in trained by an earlier process
        model, meta = _load_fitting(stand_in, data)
        return model, meta, f"Demo {spec.role}: {reason}; using the quick stand-in trained earlier."
    except CheckpointError:
        pass
    t0 = time.perf_counter()
    model, meta = train_demo_model(spec, data, quick=True)
    with contextlib.suppress(OSError):  # a read-only cache: trained again next process
        save_model(model, stand_in, spec.arch, data.num_classes, data.image_shape, meta)
    return (
        model,
        meta,
        (
            f"Demo {spec.role}: {reason}; trained a quick stand-in in "
            f"{time.perf_counter() - t0:.0f} s "
            "(run scripts/train_demo_models.py for the real one)."
        ),
    )


# The teachers the concept pages can show: the small demo teacher, or the teacher of the shipped
# hinton-mnist reference run (Hinton et al. 2015's 784-1200-1200-10 net trained at paper length).
TEACHERS = ("demo", "paper")
PAPER_TEACHER = ("hinton-mnist", "teacher")  # (reference run, model) whose weights ship


def _paper_teacher(data: Dataset, references: str) -> tuple[KDModel, dict]:
    """The reference run's teacher (from the folder ``references``) and its metadata;
    CheckpointError (one line) when the run or its weights are missing or damaged."""
    run, name = PAPER_TEACHER
    refs, _ = load_references(Path(references))
    if run not in refs:
        raise CheckpointError(f"no shipped reference run {run}")
    model = reference_model(refs[run], name)
    summary = refs[run].result["models"][name]
    test = evaluate(model, data)  # the shipped half-precision weights, measured here
    meta = {"arch": summary["arch"], "test_accuracy": test["test_accuracy"],
            "test_errors": test["test_errors"], "source": refs[run].label()}  # fmt: skip
    return model, meta


@st.cache_resource(max_entries=4, show_spinner="Loading MNIST and the demo models...")
def load_demo(folder: str, teacher: str = "demo", references: str = "") -> Demo:
    """MNIST, a teacher (``teacher``: one of TEACHERS) and the demo student, and their logits
    on the whole test set. The paper teacher (from the reference runs in ``references``, default
    :func:`kdcore.reference.reference_dir`) falls back to the demo one with a note."""
    data = load_mnist()
    paper_note = ""
    if teacher == "paper":
        try:
            t_model, t_meta = _paper_teacher(data, references or str(reference_dir()))
            t_note = ""
        except CheckpointError as err:
            paper_note = f"Paper teacher unavailable ({err}); showing the demo teacher."
    if teacher != "paper" or paper_note:  # the demo teacher only when it is shown
        t_model, t_meta, t_note = _load_or_train(DEMO_SPECS[0], Path(folder), data)
        t_note = " ".join(n for n in (paper_note, t_note) if n)
    student, s_meta, s_note = _load_or_train(DEMO_SPECS[1], Path(folder), data)
    by_digit = tuple(torch.nonzero(data.y_test == d).flatten() for d in range(data.num_classes))
    return Demo(
        data=data,
        teacher=t_model,
        student=student,
        meta={"teacher": t_meta, "student": s_meta},
        teacher_logits=predict_logits(t_model, data.x_test),
        student_logits=predict_logits(student, data.x_test),
        by_digit=by_digit,
        notes=tuple(n for n in (t_note, s_note) if n),
    )


def demo(teacher: str = "demo") -> Demo:
    """The cached demo bundle; shows a one-line notice for any model that had to be trained."""
    # the demo teacher's bundle is the one the other pages load (one cache entry, not two)
    refs = str(reference_dir()) if teacher == "paper" else ""
    bundle = load_demo(str(models_dir()), teacher, refs)
    for note in bundle.notes:
        st.caption(f":material/info: {note}")
    return bundle


def teacher_control() -> str:
    """Which teacher a concept page shows (``?teacher=demo|paper``)."""
    return url_choice(
        "Teacher", TEACHERS, key="teacher", default="demo",
        help="demo: a 784-300-300-10 net trained for two epochs. paper: the "
        "784-1200-1200-10 net of the shipped hinton-mnist reference run "
        "(Hinton et al. 2015, §3), far more accurate.",
    )  # fmt: skip


def teacher_caption(bundle: Demo) -> str:
    """How the pages name the teacher they show: "Teacher (arch, test accuracy a%)"."""
    meta = bundle.meta["teacher"]
    return f"Teacher ({meta['arch']}, test accuracy {meta['test_accuracy']:.1%})"


# How a table shows a figure that is not given (the paper's row where it reports no such number):
# Streamlit's own placeholder reads "None".
MISSING = "—"
# A model's parameter count in a table: "2,395,210" (in the reader's locale), not "2395210"
PARAMS_COLUMN = st.column_config.NumberColumn("parameters", format="localized")


# ----------------------------------------------------------------------------- URL-bound controls


def notice(key: str, raw: str, text: str) -> None:
    """One short toast per bad link value and session: ``Link value key='raw' <text>``."""
    seen = st.session_state.setdefault("_url_notices", set())
    if (key, raw) not in seen:
        seen.add((key, raw))
        st.toast(f"Link value {key}={raw[:40]!r} {text}", icon=":material/link_off:")


def _notice(key: str, raw: str, default: Any) -> None:
    notice(key, raw, f"not understood; using {default}.")


def drop_url(key: str) -> None:
    """Removes ``key`` from the URL and from the link the session opened with.

    Streamlit seeds a bound widget from the URL the page was opened with, not from the current
    ``st.query_params``; a value deleted only from the latter still reaches the widget, and a
    number box then raises on ``inf``. The opening link lives in a private field, so this is
    guarded: without it the widget's own validation is what is left.
    """
    if key in st.query_params:
        del st.query_params[key]
    forget_link(key)


def forget_link(key: str) -> None:
    """Forgets ``key`` of the link the session opened with (see :func:`drop_url`), so a control
    drawn later is not seeded from it; the address itself is left alone. Guarded the same way."""
    try:
        from streamlit.runtime.state import get_session_state

        with get_session_state().query_params() as qp:
            qp._initial_query_params.pop(key, None)
    except (AttributeError, ImportError, RuntimeError):  # another Streamlit version
        pass


def seen_keys() -> frozenset[str]:
    """The URL keys the controls of this session have read so far, on any page."""
    return frozenset(st.session_state.get(_SEEN, ()))


def restore_url(key: str, value: str) -> None:
    """Puts ``key=value`` back into the URL and into the link the session opened with, so the
    control about to be drawn is seeded from it (see :func:`drop_url`; guarded the same way).
    Streamlit refuses while a control of another run still holds the param: then nothing."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.query_params[key] = value
        from streamlit.runtime.state import get_session_state

        with get_session_state().query_params() as qp:
            qp._initial_query_params[key] = [value]
    except (AttributeError, ImportError, RuntimeError, StreamlitAPIException):
        pass


def url_values(key: str) -> list[str]:
    """Every value of ``key`` in the URL (a repeated parameter has several). Reading a key
    claims it for this page run (see :func:`drop_unclaimed`)."""
    claim(key)
    return list(st.query_params.get_all(key))


# Which URL keys this page run reads: every guard and read above claims its key, and after the
# page has run, a key the opening link brought that nothing claimed is dropped with a notice
# (``/temperature?alpha=0.5``, a value for another page or a control not shown now).
_CLAIMS, _SEEN = "_url_claims", "_url_seen"


def claim(key: str) -> None:
    st.session_state.setdefault(_CLAIMS, set()).add(key)


def begin_claims() -> None:
    """Called by the router before a page runs."""
    st.session_state[_CLAIMS] = set()


def drop_unclaimed(keep: frozenset[str] = frozenset()) -> None:
    """Called by the router after a page ran to its end: drops the URL keys no control of the
    page read, with one notice, unless ``keep`` (the app's own) or read earlier in this session
    (a control the user has just hidden keeps its value, as Streamlit leaves it)."""
    claimed = st.session_state.get(_CLAIMS, set())
    seen = st.session_state.setdefault(_SEEN, set())
    stray = [k for k in st.query_params if k not in claimed | seen | keep]
    if stray:
        said = ", ".join(f"{k}={st.query_params.get(k, '')[:20]!r}" for k in stray[:4])
        more = f" and {len(stray) - 4} more" if len(stray) > 4 else ""
        st.toast(f"Link values this page does not use now were dropped: {said}{more}.",
                 icon=":material/link_off:")  # fmt: skip
        for k in stray:
            drop_url(k)
    seen |= claimed


def _is_own_value(raw: str, key: str) -> bool:
    """Whether the URL holds what the control ``key`` already shows (written by the control
    itself, e.g. a typed value the page reports as out of range), not a value from a link."""
    if key not in st.session_state:
        return False
    value = st.session_state[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return raw == str(value) or raw.lower() == str(value).lower()
    try:
        return raw.isascii() and float(raw) == value
    except (ValueError, OverflowError):
        return False


def guard_url(key: str, ok: Callable[[str], bool], default: Any) -> None:
    """A link value a control cannot take is dropped from the URL (with a notice) before the
    control is drawn, so the widget never receives it (``inf`` in a number box would raise).
    A repeated parameter (``?T=1&T=2``) is ambiguous and dropped too."""
    values = url_values(key)  # claims the key
    if not values or (len(values) == 1 and _is_own_value(values[0], key)):
        return
    if len(values) > 1 or not ok(values[0]):
        _notice(key, "&".join(values), default)
        drop_url(key)
        st.session_state.pop(key, None)


def guard_choice(key: str, labels: Iterable[Any], default: Any) -> None:
    """:func:`guard_url` for a one-of-several control: a link value that differs from one of its
    labels only in case or surrounding spaces (``?mode=preset``, ``?preset=Omitted-3``, typed by
    hand) is read as that label, silently, on screen and in the address alike; any other value
    the control cannot take is dropped with a notice."""
    names = {str(x) for x in labels}
    values = url_values(key)  # claims the key
    if len(values) == 1 and values[0] not in names and not _is_own_value(values[0], key):
        folded = values[0].strip().casefold()
        match = [x for x in names if x.casefold() == folded]
        if len(match) == 1:
            restore_url(key, match[0])
    guard_url(key, names.__contains__, default)


_check_url = guard_url


def _clamp_own(key: str, lo: float, hi: float) -> bool:
    """The control's own value fell out of its range because another control moved the range
    (the characters of another document, the images of a smaller batch): it goes to the
    range's nearer end, on screen and in the address alike. Streamlit drew the default and left
    the address as it was (``pos=46`` beside a box showing 2). True if it did."""
    value = st.session_state.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or lo <= value <= hi:
        return False
    raw = url_values(key)  # claims the key
    if len(raw) > 1 or (raw and not _is_own_value(raw[0], key)):
        return False  # a link's value: the guard's to judge
    st.session_state[key] = type(value)(min(max(value, lo), hi))
    return True


def float_ok(lo: float | None, hi: float | None) -> Callable[[str], bool]:
    def ok(raw: str) -> bool:
        text = raw.strip()
        # float() also reads unicode digits ("٣" is 3.0); a number box reads neither them nor
        # hundreds of digits
        if not text.isascii() or len(text) > 40:
            return False
        try:
            v = float(text)
        except (ValueError, OverflowError):
            return False
        return math.isfinite(v) and (lo is None or lo <= v) and (hi is None or v <= hi)

    return ok


def int_ok(lo: int | None, hi: int | None) -> Callable[[str], bool]:
    def ok(raw: str) -> bool:
        text = raw.strip()
        # int() accepts unicode digits and 5,000-digit numbers; a number box takes neither
        if not text.isascii() or len(text) > 18:
            return False
        try:
            v = int(text)
        except ValueError:
            return False
        return (lo is None or lo <= v) and (hi is None or v <= hi)

    return ok


_float_ok, _int_ok = float_ok, int_ok


_DEFAULTS = "_url_defaults"


def remember_default(key: str, default: Any) -> None:
    """Notes the default of the control ``key`` drawn in this session, for :func:`reset_control`."""
    st.session_state.setdefault(_DEFAULTS, {})[key] = default


def reset_control(key: str) -> None:
    """Puts the control ``key`` back to its default before it is drawn again. Where it was drawn
    in this session its default is set, which the browser shows too: only forgetting its value
    left a toggle on screen ON while the page drew it OFF (a lesson step after another on the
    same page). Otherwise its value is forgotten."""
    defaults = st.session_state.get(_DEFAULTS, {})
    if key in defaults and key in st.session_state:
        st.session_state[key] = defaults[key]
    else:
        st.session_state.pop(key, None)


def url_float(
    label: str,
    key: str,
    lo: float,
    hi: float,
    default: float,
    step: float,
    slider: bool = False,
    **kw,
) -> float:
    """A float control kept in the URL as ``?key=value``; bad values fall back with a toast."""
    remember_default(key, default)
    if not _clamp_own(key, lo, hi):
        _check_url(key, _float_ok(lo, hi), default)
    widget = st.slider if slider else st.number_input
    return float(widget(label, lo, hi, default, step, key=key, bind="query-params", **kw))


def url_int(label: str, key: str, lo: int, hi: int, default: int, boxed: bool = True, **kw) -> int:
    """A whole number kept in the URL. ``boxed=False`` leaves the limits off the box itself, for
    a form whose own check refuses the value and says why: with them, the browser keeps an
    out-of-range number typed there on screen while the page goes on with the last one."""
    remember_default(key, default)
    if not (boxed and _clamp_own(key, lo, hi)):  # unboxed, a form says why it refuses it
        _check_url(key, _int_ok(lo, hi), default)
    box = (lo, hi) if boxed else (None, None)
    return int(st.number_input(label, *box, default, 1, key=key, bind="query-params", **kw))


def url_epoch(key: str, n: int) -> int:
    """The epoch of a stored run to draw, 1 to ``n`` (the last by default), a slider kept in the
    URL; a link value out of range is dropped with a notice. A run of one epoch leaves it shown
    but disabled (a slider needs two ends)."""
    guard_url(key, int_ok(1, max(n, 2)), n)
    return st.slider("Epoch", 1, max(n, 2), n, key=key, bind="query-params", disabled=n < 2)


def url_choice(
    label: str,
    options: Sequence,
    key: str,
    default: Any,
    format_func: Callable[[Any], str] = str,
    **kw,
) -> Any:
    """A one-of-several control (segmented buttons) kept in the URL by its label. The buttons wrap
    onto a second row where they do not fit (ten digits on a phone), rather than hide the last
    ones in a strip that scrolls sideways."""
    remember_default(key, default)
    kw.setdefault("wrap", True)
    labels = {format_func(o) for o in options}
    guard_choice(key, labels, format_func(default))
    value = st.segmented_control(
        label,
        options,
        default=default,
        required=True,
        format_func=format_func,
        key=key,
        bind="query-params",
        **kw,
    )
    return default if value is None else value


def url_pills(
    label: str, options: Sequence, key: str, default: list, format_func: Callable = str, **kw
) -> list:
    """A several-of-several control (pills) kept in the URL, one ``?key=`` per choice. A link
    naming something the control cannot offer, or one thing twice, is dropped with a notice and
    the default shown. Returns the choices in the order of ``options``."""
    remember_default(key, default)
    names = [format_func(o) for o in options]
    values = url_values(key)  # claims the key
    own = st.session_state.get(key)
    mine = isinstance(own, list) and values == [format_func(o) for o in own]
    if (
        values
        and not mine
        and (any(v not in names for v in values) or len(set(values)) < len(values))
    ):
        _notice(key, "&".join(values), ", ".join(format_func(o) for o in default))
        drop_url(key)
        st.session_state.pop(key, None)
    kw.setdefault("wrap", True)
    picked = st.pills(label, options, selection_mode="multi", default=default,
                      format_func=format_func, key=key, bind="query-params", **kw)  # fmt: skip
    return [o for o in options if o in (picked or [])]


def url_toggle(label: str, key: str, default: bool = False, **kw) -> bool:
    remember_default(key, default)
    _check_url(key, lambda raw: raw.lower() in ("true", "false"), default)
    return bool(st.toggle(label, default, key=key, bind="query-params", **kw))


def url_text(
    label: str, key: str, default: str, ok: Callable[[str], bool] | None = None, **kw
) -> str:
    """Free text kept in the URL. A link value that ``ok`` rejects is dropped with a notice; text
    typed into the box is kept for editing, and the caller parses it and calls :func:`fallback`
    if it cannot."""
    if ok is not None and key not in st.session_state:  # the value comes from a link
        guard_url(key, ok, "the default")
    elif len(url_values(key)) > 1:
        guard_url(key, lambda raw: True, "the default")
    return st.text_input(label, default, key=key, bind="query-params", **kw)


def url_number(key: str, lo: float, hi: float, default: float) -> float:
    """A number a custom control keeps in the URL (``?key=``): a value out of [lo, hi] or not a
    number falls back to ``default`` with a notice, as for every URL-bound control."""
    guard_url(key, float_ok(lo, hi), default)
    raw = st.query_params.get(key)
    return default if raw is None else float(raw)


def release_to_url(state_key: str, field: str, key: str, lo: float, hi: float):
    """The ``on_change`` callback of a custom slider: when it is let go, the value it reports in
    ``session_state[state_key][field]`` goes into the URL as ``?key=`` if it is a finite number
    in [lo, hi]; anything else is ignored."""

    def released() -> None:
        state = st.session_state.get(state_key) or {}
        value = state.get(field) if hasattr(state, "get") else None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value) and lo <= value <= hi:
            st.query_params[key] = f"{value:g}"

    return released


def fallback(message: str) -> None:
    st.caption(f":material/warning: {message}")


@st.cache_resource(max_entries=1)
def _lm_teacher():
    from kdcore.gpt import load_lm
    from kdcore.presets_lm import ASSET

    return load_lm(ASSET)[0]


def lm_teacher():
    """The shipped character-level language-model teacher (``assets/models/``), loaded once per
    server; a missing or damaged file costs the page one line, and the page stops there."""
    try:
        return _lm_teacher()
    except CheckpointError as err:
        fallback(f"{err}; run `python scripts/train_lm_teacher.py` to write it.")
        st.stop()


# ----------------------------------------------------------------------------- the example picker


@dataclass(frozen=True)
class Example:
    index: int  # position in the MNIST test set
    digit: int
    image: Any  # (H, W) uint8 array, upscaled for a crisp thumbnail


def pick_example(bundle: Demo, default_digit: int = 2, default_k: int = 0) -> Example:
    """Digit and index controls with a thumbnail; both kept in the URL (?digit=, ?idx=)."""
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    with left:
        digit = url_choice("Digit", range(10), key="digit", default=default_digit)
        k = url_int(
            "Which one (index among the test images of this digit)",
            "idx",
            0,
            bundle.per_digit - 1,
            default_k,
        )
    index = int(bundle.by_digit[digit][k])
    image = _thumbnail(bundle.data, index)
    with right:
        st.image(_png(bundle.data, index), caption=f"test image #{index}", width=112)
    return Example(index, digit, image)


def _thumbnail(data: Dataset, index: int) -> Any:
    """A test image upscaled 4x for a crisp thumbnail: (4H, 4W) uint8."""
    pixels = data.denormalise(data.x_test[index])[0]  # (H, W) in [0, 1]
    return (pixels.repeat_interleave(4, 0).repeat_interleave(4, 1) * 255).byte().numpy()


@functools.lru_cache(maxsize=2048)
def _png(data: Dataset, index: int) -> bytes:
    """The thumbnail encoded once per process: PNG encoding was a tenth of a picker's rerun."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(_thumbnail(data, index)).save(out, format="PNG")
    return out.getvalue()


@st.cache_resource(max_entries=4, show_spinner="Loading the teacher...")
def saved_model(path: str) -> KDModel:
    """A run's saved model (a teacher whose layers a page draws live), loaded once per server and
    shared read-only by every session: eval mode, never trained. Raises CheckpointError."""
    return load_model(path)[0]


def test_png(index: int) -> bytes:
    """The bundled MNIST's test image ``index`` as a 4x PNG thumbnail, for ``st.image``."""
    return _png(load_mnist(), index)


# ----------------------------------------------------------------------------- plots and code


PRESENT_FONT = 16  # chart text in presenter mode, against the template's 13 (pages at 20 px)


def chart_config(key: str | None) -> dict:
    """Plotly's mode bar cut to one button, shown on hover: save the chart as a PNG at twice
    its size, for a slide, named after the chart (its widget key: ``grid-hinton-mnist.png``)."""
    return {
        "displayModeBar": "hover",
        "displaylogo": False,
        "modeBarButtons": [["toImage"]],
        "toImageButtonOptions": {"format": "png", "scale": 2, "filename": key or "kd-chart"},
    }


def plot(fig, **kw) -> None:
    """Every chart goes through here: our template (not Streamlit's theme), and of Plotly's
    mode bar only the button that saves it as a picture. In presenter mode its text is larger,
    as the page's is (a copy: a cached figure stays as is)."""
    from app.present import STATE

    if st.session_state.get(STATE, False):
        spec = fig.to_plotly_json()
        layout = dict(spec.get("layout") or {})
        layout["font"] = {**(layout.get("font") or {}), "size": PRESENT_FONT}
        fig = {**spec, "layout": layout}
    st.plotly_chart(fig, theme=None, config=chart_config(kw.get("key")), **kw)


def show_code(*objects: Any, title: str = "The real code") -> None:
    """The source that actually runs (``inspect.getsource``): the page cannot drift from it."""
    with st.expander(title, icon=":material/code:"):
        for obj in objects:
            st.caption(f"`{obj.__module__}.{obj.__qualname__}`")
            st.code(_source(obj), language="python")


@functools.lru_cache(maxsize=512)
def _source(obj: Any) -> str:
    """``inspect.getsource`` once per process: re-reading and tokenising the files cost a
    twentieth of every rerun of the concept pages under load. The code does not change while
    the server runs (``runOnSave = false``)."""
    return inspect.getsource(obj)


def page_link(slug: str | None, label: str | None = None, query: Mapping[str, str] | None = None):
    """A link to another page of the app by its file, opened with ``query`` in its URL (one of
    its views), or "coming" when that page is not written.

    Outside the router (a page run on its own, as in AppTest) no page is registered, so the link
    degrades to a plain URL instead of failing.
    """
    from urllib.parse import urlencode

    from streamlit.errors import StreamlitAPIException

    from app.catalog import available, page

    info = page(slug)
    if info is None or not available(slug):
        st.caption(":material/schedule: coming")
        return
    query = dict(query or {})
    try:
        st.page_link(str(info.path), label=label or info.title, icon=info.icon, query_params=query)
    except StreamlitAPIException:
        href = f"/{info.url}" + (f"?{urlencode(query)}" if query else "")
        st.markdown(f"[{label or info.title}]({href})")


def see_also(*links: tuple[str, str]) -> None:
    """Links to the pages that take a concept further, each (slug, why): the page's title as
    the link (a link does not wrap: a longer one was cut off on a phone), why under it."""
    st.caption("See also")
    for slug, why in links:
        page_link(slug)
        st.caption(why)


def prose(text: str) -> None:
    """A paragraph of explanation. In presenter mode only its first sentence is shown, with the
    rest in a "More" expander; otherwise it is plain ``st.markdown``."""
    from app.present import STATE, first_sentence

    if not st.session_state.get(STATE, False):
        st.markdown(text)
        return
    first, rest = first_sentence(text)
    # a keyed container, so presenter mode's one-line rule for plain st.markdown leaves it whole
    with st.container(key=f"prose_{zlib.crc32(text.encode()):08x}"):
        st.markdown(first)
        if rest:
            with st.expander("More", icon=":material/notes:"):
                st.markdown(rest)
