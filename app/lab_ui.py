"""Shared parts of the lab and run-history pages: the one job queue, run views, figures.

The queue and its store are one object per server process and store path (``st.cache_resource``),
so every browser tab sees the same runs and a class pressing the same button shares one run.
Training happens in the queue's worker thread; these functions only read the store and draw.
Figure builders are plain functions of run records (no ``st.*``).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from kdcore.data import DATASETS, DataUnavailable, default_data_dir, load_dataset
from kdcore.jobs import JobQueue, RunSpec
from kdcore.lab import CustomConfig
from kdcore.methods import METHODS
from kdcore.models import MODELS
from kdcore.presets import PRESETS
from kdcore.store import RunRecord, Store, StoreError, default_store_path, iso

try:  # another module of the app; the lab works without it
    from app import preset_views
except ImportError:  # pragma: no cover - depends on which parts of the app are installed
    preset_views = None

POLL_S = 1.0  # how often a running run's view refreshes
STATUS_ICON = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "completed": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}
MODEL_COLOURS = ("#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285", "#862e9c")


@st.cache_resource(max_entries=4, show_spinner=False)
def _queue_for(path: str) -> JobQueue:
    return JobQueue(Store(path))


def job_queue() -> JobQueue:
    """The process-wide queue for ``$KD_STORE`` (or the default path). On a store that cannot
    be opened, shows one line and stops the page."""
    try:
        return _queue_for(str(default_store_path()))
    except StoreError as err:
        st.error(str(err), icon=":material/database:")
        st.stop()


def plot(fig: go.Figure, **kw) -> None:
    try:
        from app.ui import plot as ui_plot
    except ImportError:  # pragma: no cover
        st.plotly_chart(fig, theme=None, config={"displayModeBar": False}, **kw)
    else:
        ui_plot(fig, **kw)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe(run: RunRecord) -> str:
    """One line: what the run trains, e.g. ``mlp-1200-dropout -> mlp-30, kd T=4 alpha=0.9``."""
    c = run.config
    if run.kind == "custom":
        soft = f" T={c.get('T', 0):g} α={c.get('alpha', 0):g}" if c.get("method") != "hard" else ""
        size = f", {c['per_class']}/class" if c.get("per_class") else ""
        return (
            f"{c.get('dataset')}: {c.get('teacher')} → {c.get('student')}, {c.get('method')}"
            f"{soft}, {_epochs(c.get('epochs'))}, lr {c.get('lr', 0):g}, seed {c.get('seed')}{size}"
        )
    return f"preset {run.name}, {_epochs(c.get('epochs'))}, seed {c.get('seed')}"


def _epochs(n) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- figures


def _colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def live_figure(history: dict[str, list[dict]]) -> go.Figure:
    """Loss parts (left) and train/test accuracy (right) per epoch, one colour per model."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss parts", "accuracy %"))
    dashes = ("solid", "dash", "dot", "dashdot")
    for i, (model, epochs) in enumerate(history.items()):
        if not epochs:
            continue
        x = [e["epoch"] for e in epochs]
        parts = [k for k in epochs[0].get("losses", {}) if k != "total"]
        for j, part in enumerate(parts):
            y = [e["losses"].get(part) for e in epochs]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=f"{model} {part}",
                    line={"color": _colour(i), "dash": dashes[j % len(dashes)]},
                    legendgroup=model,
                ),
                row=1,
                col=1,
            )
        for key, dash in (("train_accuracy", "dot"), ("test_accuracy", "solid")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[100 * e[key] for e in epochs],
                    mode="lines+markers",
                    name=f"{model} {key.split('_')[0]}",
                    line={"color": _colour(i), "dash": dash},
                    legendgroup=model,
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(height=340, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig


def overlay_figure(runs: list[RunRecord], metric: str = "test_accuracy") -> go.Figure:
    """One line per run and model: ``metric`` (an epoch field, accuracy shown in %) per epoch."""
    fig = go.Figure()
    scale = 100 if metric.endswith("accuracy") else 1
    for i, run in enumerate(runs):
        for j, (model, epochs) in enumerate(run.history.items()):
            if not epochs:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[e["epoch"] for e in epochs],
                    y=[scale * e[metric] for e in epochs],
                    mode="lines+markers",
                    name=f"{run.label} {model}",
                    line={"color": _colour(i), "dash": ("solid", "dash", "dot", "dashdot")[j % 4]},
                )
            )
    title = metric.replace("_", " ") + (" %" if scale == 100 else "")
    fig.update_layout(xaxis_title="epoch", yaxis_title=title, height=380, margin={"t": 20, "b": 10})
    return fig


def errors_figure(runs: list[RunRecord]) -> go.Figure:
    """Final test errors: one group of bars per model, one bar per run; the paper as markers."""
    fig = go.Figure()
    for i, run in enumerate(runs):
        if not run.models:
            continue
        names = list(run.models)
        fig.add_trace(
            go.Bar(
                x=names,
                y=[run.models[m]["test_errors"] for m in names],
                name=run.label,
                marker_color=_colour(i),
            )
        )
        paper = ((run.result or {}).get("paper") or {}).get("test_errors") or {}
        shown = [m for m in names if m in paper]
        if shown:
            fig.add_trace(
                go.Scatter(
                    x=shown,
                    y=[paper[m] for m in shown],
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 28, "color": "#1f2430"},
                    name=f"paper ({run.name})",
                )
            )
    fig.update_layout(
        barmode="group", yaxis_title="test errors", height=360, margin={"t": 20, "b": 40}
    )
    return fig


# ----------------------------------------------------------------------------- run views


def progress_line(run: RunRecord) -> str:
    """``2/3 student_kd · epoch 2/3 · ETA 14 s``."""
    live = run.live
    if not live.get("model"):
        return "starting (loading data)..."
    text = f"{live.get('index', 0) + 1}/{live.get('count', 1)} {live['model']}"
    if "epoch" in live:
        text += f" · epoch {live['epoch']}/{live.get('epochs', '?')}"
    if "eta" in live:
        text += f" · ETA {duration(live['eta'])}"
    return text


def results_table(run: RunRecord) -> None:
    """Our test errors per model, beside the paper's where it gives them."""
    paper = ((run.result or {}).get("paper") or {}).get("test_errors") or {}
    rows = []
    for name, m in run.models.items():
        row = {
            "model": name,
            "test errors": m.get("test_errors"),
            "accuracy %": round(100 * m.get("test_accuracy", 0), 2),
        }
        if paper:
            row["paper test errors"] = paper.get(name)
        rows.append({**row, "parameters": m.get("params"), "seconds": m.get("seconds")})
    if rows:
        st.dataframe(rows, hide_index=True)


def kd_gain(run: RunRecord) -> str | None:
    """A sentence comparing the distilled student with the same student on hard labels."""
    hard = run.models.get("student_hard")
    soft = [
        (k, m) for k, m in run.models.items() if k.startswith("student_") and k != "student_hard"
    ]
    if hard is None or not soft:
        return None
    name, m = soft[0]
    delta = m["test_errors"] - hard["test_errors"]
    verdict = "fewer" if delta < 0 else "more"
    return (
        f"With the teacher ({name.removeprefix('student_')}), the student makes "
        f"**{m['test_errors']}** test errors against **{hard['test_errors']}** on hard labels "
        f"alone: {abs(delta)} {verdict}. One seed, short training: rerun with other seeds "
        "before reading much into a small difference."
    )


def show_result(run: RunRecord) -> None:
    if run.result is None:
        if any(run.history.values()):
            plot(live_figure(run.history), key=f"partial-{run.id}")
        return
    if run.kind == "custom":  # no paper to compare with: our table, the gain, the curves
        results_table(run)
        gain = kd_gain(run)
        if gain:
            st.markdown(gain)
        if any(run.history.values()):
            plot(live_figure(run.history), key=f"curves-{run.id}")
        return
    if preset_views is not None:
        try:
            preset_views.show_result(run.result)
            return
        except Exception as err:  # an unexpected result shape must not break the page
            st.caption(f"Detailed view unavailable ({type(err).__name__}); the summary:")
    results_table(run)
    if any(run.history.values()):
        plot(live_figure(run.history), key=f"curves-{run.id}")


def show_weights(store: Store, run: RunRecord) -> None:
    if not run.weights:
        return
    st.caption("Trained weights (safetensors, loadable with `kdcore.checkpoint.load_model`):")
    cols = st.columns(min(len(run.weights), 4))
    for i, name in enumerate(run.weights):
        path = store.weights_path(run.id, name)
        with cols[i % len(cols)]:
            st.download_button(
                name,
                data=lambda p=path: p.read_bytes(),
                file_name=f"run{run.id}-{name}.safetensors",
                mime="application/octet-stream",
                icon=":material/download:",
                key=f"weights-{run.id}-{name}",
                on_click="ignore",
            )


def header(run: RunRecord) -> None:
    icon = STATUS_ICON.get(run.status, "")
    st.markdown(f"### {icon} Run {run.label} · {run.status}")
    when = f"created {iso(run.created)}"
    if run.finished:
        when += f", took {duration(run.seconds)}"
    st.caption(f"{describe(run)} · {run.device or 'device chosen at start'} · {when}")


def live_view(queue: JobQueue, run_id: int) -> None:
    """The view of a queued or running run; polls the store every POLL_S seconds and switches
    to the full results (a whole-page rerun) when the run ends."""

    @st.fragment(run_every=POLL_S)
    def poll() -> None:
        run = queue.store.get(run_id)
        if run is None:
            st.info("This run was deleted.")
            return
        if not run.active:
            st.rerun()
        header(run)
        place = queue.place(run_id)
        if run.status == "queued":
            ahead = "" if place is None else f" Place in line: **{place}**."
            st.info(f"Waiting for the device to be free.{ahead}", icon=":material/schedule:")
        else:
            st.progress(run.progress, text=progress_line(run))
        if place is None:
            st.caption("Started by another process (the command line?): cancel it there.")
        elif st.button("Cancel", key=f"cancel-{run_id}", icon=":material/stop_circle:"):
            queue.cancel(run_id)
            st.toast("Cancelling: the run stops at its next step and keeps what it learned.")
        if any(run.history.values()):
            plot(live_figure(run.history), key=f"live-{run_id}")

    poll()


def show_run(queue: JobQueue, run: RunRecord) -> None:
    """A run as it stands: live while active, else its outcome and results."""
    if run.active:
        live_view(queue, run.id)
        return
    header(run)
    # preset_views.show_result states the outcome itself for a preset's result
    if run.result is None or run.kind == "custom" or preset_views is None:
        if run.status == "failed":
            st.error(run.message or "failed", icon=":material/error:")
        elif run.status == "cancelled":
            st.warning(f"Cancelled: {run.message}", icon=":material/cancel:")
    show_result(run)
    show_weights(queue.store, run)


# ----------------------------------------------------------------------------- controls


@st.cache_data(ttl=120, show_spinner="Looking for the data set...")
def data_problem(name: str, folder: str) -> str | None:
    """None when the data set can be read from ``folder``, else the one-line reason (no download
    here: the page must stay quick; a run may still download it in the background)."""
    try:
        load_dataset(name, "cpu", folder, download=False)
    except DataUnavailable as err:
        return str(err)
    return None


def devices() -> list[str]:
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    return found


def _device_box(key: str) -> str:
    return st.selectbox(
        "Device",
        devices(),
        key=key,
        bind="query-params",
        help="auto: the GPU when there is one. One run trains at a time per device.",
    )


def custom_controls() -> tuple[RunSpec | None, str | None]:
    """The lab's own run: returns (spec or None, a reason it cannot start)."""
    d = CustomConfig()
    archs = list(MODELS)
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox("Data set", DATASETS, key="data", bind="query-params")
    teacher = c2.selectbox(
        "Teacher", archs, archs.index(d.teacher), key="teacher", bind="query-params"
    )
    student = c3.selectbox(
        "Student", archs, archs.index(d.student), key="student", bind="query-params"
    )
    method = st.segmented_control(
        "Method",
        list(METHODS),
        default=d.method,
        required=True,
        format_func=lambda m: METHODS[m].title,
        key="method",
        bind="query-params",
    )
    method = method or d.method
    soft = METHODS[method].uses_teacher
    c1, c2, c3, c4, c5 = st.columns(5)
    T = c1.number_input(
        "Temperature T", 0.5, 100.0, d.T, 0.5, key="T", bind="query-params", disabled=not soft
    )
    alpha = c2.number_input(
        "α, the teacher's weight", 0.0, 1.0, d.alpha, 0.05, key="alpha",
        bind="query-params", disabled=not soft,
    )  # fmt: skip
    teacher_epochs = c3.number_input(
        "Teacher epochs", 1, 500, d.teacher_epochs, key="teacher_epochs", bind="query-params",
        disabled=not soft,
        help="Trained once and cached: with the default teacher and settings, the teacher of the "
        "Hinton presets is loaded instead of trained.",
    )  # fmt: skip
    epochs = c4.number_input("Student epochs", 1, 500, d.epochs, key="epochs", bind="query-params")
    lr = c5.number_input(
        "Learning rate", 1e-4, 1000.0, d.lr, 0.01, format="%.4f", key="lr", bind="query-params"
    )
    c1, c2, c3, c4, c5 = st.columns(5)
    seed = c1.number_input("Seed", 0, 1_000_000, d.seed, key="seed", bind="query-params")
    sizes = [0, 1000, 500, 100, 20]
    per = c2.selectbox(
        "Training images per class",
        sizes,
        format_func=lambda n: "all" if n == 0 else f"{n}",
        key="per_class",
        bind="query-params",
    )
    with c3:
        device = _device_box("device")
    clip = c4.number_input(
        "Gradient clipping", 0.0, 1000.0, d.grad_clip, 1.0, key="grad_clip", bind="query-params",
        help="Largest global gradient norm of the students' steps; 0 turns clipping off. The "
        "T²-scaled soft loss can blow up at lr 0.05 without it.",
    )  # fmt: skip
    baseline = c5.toggle(
        "Hard-label baseline",
        d.baseline,
        key="baseline",
        disabled=method == "hard",
        help="Also train the same student from the same seed on hard labels only: the fair "
        "comparison for the distilled one.",
    )
    problem = data_problem(dataset, str(default_data_dir())) if dataset != "mnist" else None
    cfg = CustomConfig(
        dataset=dataset, teacher=teacher, student=student, method=method, T=float(T),
        alpha=float(alpha), epochs=int(epochs), lr=float(lr), seed=int(seed),
        teacher_epochs=int(teacher_epochs), grad_clip=float(clip),
        per_class=int(per), baseline=bool(baseline),
    )  # fmt: skip
    try:
        return RunSpec.custom(cfg, device=device), problem
    except ValueError as err:
        return None, str(err)


def _field_widget(name: str, value, key: str):
    if isinstance(value, bool):
        return st.toggle(name, value, key=key)
    if isinstance(value, int):
        return int(st.number_input(name, value=value, step=1, key=key))
    if isinstance(value, float):
        return float(st.number_input(name, value=value, format="%g", key=key))
    if isinstance(value, str) and name in ("teacher", "student"):
        archs = list(MODELS) if value in MODELS else [value, *MODELS]
        return st.selectbox(name, archs, archs.index(value), key=key)
    if isinstance(value, str) and name == "dataset":
        return st.selectbox(name, DATASETS, DATASETS.index(value), key=key)
    raw = st.text_input(name, json.dumps(value), key=key, help="JSON")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"{name}: {raw!r} is not valid JSON") from None
    return tuple(parsed) if isinstance(value, tuple) and isinstance(parsed, list) else parsed


def preset_controls() -> tuple[RunSpec | None, str | None]:
    """A preset with its paper numbers, an epochs control and all its settings."""
    names = list(PRESETS)
    # No format_func: a bound selectbox keeps its label in the URL, and ?preset=omitted-3 reads
    # better in a shared link than the preset's title.
    name = st.selectbox("Preset", names, key="preset", bind="query-params")
    p = PRESETS[name]
    st.markdown(f"**{p.title}.** {p.summary}")
    errors = p.paper.get("test_errors") or {}
    percent = p.paper.get("test_error_percent") or {}
    if isinstance(errors, dict) and isinstance(percent, dict) and (errors or percent):
        rows = []
        for m in dict.fromkeys([*errors, *percent]):
            row = {"model": m}
            if errors:
                row["paper test errors"] = errors.get(m)
            if percent:
                row["paper error %"] = percent.get(m)
            rows.append(row)
        st.dataframe(rows, hide_index=True, key=f"paper-{name}")
    adj = p.paper.get("bias_adjustment")
    if isinstance(adj, dict) and adj.get("bias") is not None:
        if "errors_after" in adj:
            after = f"{adj['errors_after']} test errors"
        else:
            after = f"{adj.get('error_percent_after')}% test error"
        st.markdown(f"Paper, after shifting the bias by {adj['bias']:+g}: {after}.")
    for claim in p.paper.get("claims", []):
        st.markdown(f"> {claim}")
    st.caption(f"Paper: {p.source}. Why our numbers differ: {p.differences}")
    c1, c2, c3 = st.columns(3)
    default_epochs = p.config.epochs
    epochs = c1.number_input(
        f"Epochs per model (default {default_epochs})", 1, 1000, default_epochs,
        key=f"ep-{name}", bind="query-params",
        help="More epochs come closer to the paper; each takes longer.",
    )  # fmt: skip
    seed = c2.number_input(
        "Seed", 0, 1_000_000, p.config.seed, key=f"seed-{name}", bind="query-params"
    )
    with c3:
        device = _device_box("pdevice")
    overrides: dict = {}
    form = getattr(preset_views, "preset_form", None)
    try:
        if form is not None:
            overrides = dict(form(p) or {})
        else:
            with st.expander("All settings of this preset"):
                for f in fields(p.config):
                    if f.name in ("epochs", "seed"):
                        continue
                    value = getattr(p.config, f.name)
                    new = _field_widget(f.name, value, f"set-{name}-{f.name}")
                    if new != value:
                        overrides[f.name] = new
        return RunSpec.preset(name, int(epochs), int(seed), device, **overrides), None
    except (ValueError, TypeError) as err:
        return None, " ".join(str(err).split())
