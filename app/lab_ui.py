"""Shared parts of the lab and run-history pages: the one job queue, run views, figures.

The queue and its store are one object per server process and store path (``st.cache_resource``),
so every browser tab sees the same runs and a class pressing the same button shares one run.
Training happens in the queue's worker thread; these functions only read the store and draw.
Figure builders are plain functions of run records (no ``st.*``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

from app import ui
from app.figures import TEMPLATE, epoch_ticks, subplots
from kdcore.data import DATASETS, DataUnavailable, default_data_dir, load_dataset
from kdcore.jobs import JobQueue, RunSpec, one_line
from kdcore.lab import CustomConfig
from kdcore.method import describe_field, split_label
from kdcore.methods import METHODS, baseline_method
from kdcore.models import MODELS, build_model
from kdcore.presets import PRESETS
from kdcore.store import RunRecord, Store, StoreError, default_store_path, iso
from kdcore.train import pick_device

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
# A legend right of the plot, grouped and scrolling: long comparisons squeeze nothing
LEGEND_BESIDE = {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"}
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


def optional_queue() -> JobQueue | None:
    """The queue for a concept page, whose stored run is one section of many: on a store that
    cannot be opened, one line there and None, and the rest of the page goes on."""
    try:
        return _queue_for(str(default_store_path()))
    except StoreError as err:
        _store_unavailable(err)
        return None


def _store_unavailable(err: StoreError) -> None:
    st.warning(f"Stored runs are unavailable here: {err}", icon=":material/database:")


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
    """One line: what the run trains, e.g. ``mnist: mlp-1200-dropout → mlp-30, kd T=4``."""
    c = run.config
    if "method" in c and "student" in c:  # a run of one chosen method (the lab's own)
        # the method's parameters (older runs kept T and alpha at the top level)
        params = c.get("params") or {k: c[k] for k in ("T", "alpha") if k in c}
        shown = "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}"
                        for k, v in params.items())  # fmt: skip
        size = f", {c['per_class']}/class" if c.get("per_class") else ""
        return (
            f"{c.get('dataset')}: {c.get('teacher')} → {c.get('student')}, {c.get('method')}"
            f"{shown}, {_epochs(c.get('epochs'))}, lr {c.get('lr', 0):g}, seed {c.get('seed')}"
            f"{size}"
        )
    return f"preset {run.name}, {_epochs(c.get('epochs'))}, seed {c.get('seed')}"


def _epochs(n) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- figures


def _colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def live_figure(history: dict[str, list[dict]]) -> go.Figure:
    """Loss parts (left) and train/test accuracy (right) per epoch, one colour per model and
    one legend group per model beside the plots."""
    # Each part as it enters the total: a KD student's "ce" is (1 − α)·CE, a hard-label one's
    # the whole CE, so the title says so rather than the two looking alike.
    # two short title lines, lifted clear of the top tick labels: at 700 px, beside the legend,
    # one line ran over the loss axis's "12" (a DKD student's parts)
    fig = subplots(1, 2, subplot_titles=("loss parts, weighted<br>as in the total", "accuracy %"))
    dashes = ("solid", "dash", "dot", "dashdot")
    longest = max((e["epoch"] for epochs in history.values() for e in epochs), default=0)
    mode = "lines+markers" if longest <= 30 else "lines"  # a marker an epoch blurs a long run
    for i, (model, epochs) in enumerate(history.items()):
        if not epochs:
            continue
        x = [e["epoch"] for e in epochs]
        group = {"legendgroup": model, "legendgrouptitle_text": model}
        parts = [k for k in epochs[0].get("losses", {}) if k != "total"]
        for j, part in enumerate(parts):
            y = [e["losses"].get(part) for e in epochs]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode=mode,
                    name=part,
                    line={"color": _colour(i), "dash": dashes[j % len(dashes)]},
                    **group,
                ),
                row=1,
                col=1,
            )
        for key, dash in (("train_accuracy", "dot"), ("test_accuracy", "solid")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[100 * e[key] for e in epochs],
                    mode=mode,
                    name=key.replace("_", " "),
                    line={"color": _colour(i), "dash": dash},
                    **group,
                ),
                row=1,
                col=2,
            )
    # Whole epochs: one tick each while they fit, else Plotly's own spacing (a 60-epoch run's
    # ticks one apart ran into each other).
    fig.update_xaxes(title_text="epoch", **epoch_ticks(longest))
    # tall enough for the legend beside it: a row per line, a title per model
    groups = sum(1 for epochs in history.values() if epochs)
    fig.update_layout(
        template=TEMPLATE,
        height=max(340, 120 + 22 * len(fig.data) + 34 * groups),
        margin={"t": 70, "b": 40, "l": 50, "r": 10},
        legend=LEGEND_BESIDE,
    )
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
                    name=model,
                    legendgroup=f"run-{i}",
                    legendgrouptitle_text=run.label,
                    # a colour per run, a dash per model; one run alone: a colour per model
                    line={
                        "color": _colour(i if len(runs) > 1 else j),
                        "dash": ("solid", "dash", "dot", "dashdot")[j % 4],
                    },
                )
            )
    title = metric.replace("_", " ") + (" %" if scale == 100 else "")
    fig.update_layout(
        template=TEMPLATE,
        xaxis_title="epoch",
        yaxis_title=title,
        height=380,
        margin={"t": 20, "b": 50},
        # Beside the plot, one group per run: a comparison of whole sweeps has dozens of
        # lines, which scroll there instead of squeezing the plot from above.
        legend=LEGEND_BESIDE,
    )
    # counts in full ("10,000", not the template's "1×10⁴", meant for its log axes)
    fig.update_yaxes(exponentformat="none", separatethousands=True)
    return fig


def errors_figure(runs: list[RunRecord]) -> go.Figure:
    """Final test errors: one row per model, one bar per run; the paper's errors as marks, each
    figure once (every run of a preset, and the presets sharing a teacher, give the same).

    Bars lie along the rows so that every model's name reads level however many there are (a
    sweep has twenty students): the chart grows a row at a time instead of slanting names into
    each other."""
    fig = go.Figure()
    shown = [(i, run) for i, run in enumerate(runs) if run.models]
    holders: dict[str, list[int]] = {}  # model -> the runs that have it, in order
    for i, run in shown:
        for m in run.models:
            holders.setdefault(m, []).append(i)
    marks: dict[tuple[str, float], None] = {}  # (model, the paper's errors), each once
    for i, run in shown:
        names = list(run.models)
        # Each row split among the runs that have it (Plotly's grouping would keep a slot for
        # every run in every row, leaving a sweep's rows of one bar thin slivers).
        width = [0.8 / len(holders[m]) for m in names]
        fig.add_trace(
            go.Bar(
                y=names,
                x=[run.models[m]["test_errors"] for m in names],
                orientation="h",
                width=width,
                offset=[-0.4 + holders[m].index(i) * w for m, w in zip(names, width, strict=True)],
                name=run.label,
                marker_color=_colour(i),
            )
        )
        paper = ((run.result or {}).get("paper") or {}).get("test_errors") or {}
        marks.update({(m, paper[m]): None for m in names if m in paper})
    if marks:
        fig.add_trace(
            go.Scatter(
                y=[m for m, _ in marks],
                x=[v for _, v in marks],
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 22, "color": "#1f2430"},
                name="the paper's",
            )
        )
    bars = sum(len(h) for h in holders.values())
    fig.update_layout(
        template=TEMPLATE,
        barmode="overlay",  # the offsets above place the bars
        xaxis_title="test errors",
        yaxis={"autorange": "reversed", "type": "category"},  # first model at the top
        height=140 + 14 * bars + 8 * len(holders),
        margin={"t": 20, "b": 40},
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
        st.dataframe(rows, hide_index=True, placeholder=ui.MISSING,
                     column_config={"parameters": ui.PARAMS_COLUMN})  # fmt: skip


def kd_gain(run: RunRecord) -> str | None:
    """A sentence comparing the distilled student with the same student on hard labels, from
    the models' roles (older runs without roles get none)."""
    base = [m for m in run.models.values() if m.get("role") == "baseline"]
    soft = [m for m in run.models.values() if m.get("role") == "student"]
    if not base or not soft:
        return None
    hard, m = base[0], soft[0]
    delta = m["test_errors"] - hard["test_errors"]
    verdict = "fewer" if delta < 0 else "more"
    title = METHODS[m["method"]].title if m.get("method") in METHODS else m.get("method")
    return (
        f"With the teacher ({title}), the student makes "
        f"**{m['test_errors']}** test errors against **{hard['test_errors']}** on hard labels "
        f"alone: {abs(delta)} {verdict}. One seed, short training: rerun with other seeds "
        "before reading much into a small difference."
    )


def _paper_source(run: RunRecord) -> str:
    return ((run.result or {}).get("paper") or {}).get("source") or ""


def show_result(run: RunRecord) -> None:
    if run.result is None:
        if any(run.history.values()):
            ui.plot(live_figure(run.history), key=f"partial-{run.id}")
            show_recorded(run)
        return
    if not _paper_source(run):  # no paper to compare with: our table, the gain, the curves
        results_table(run)
        gain = kd_gain(run)
        if gain:  # a result, whole even in presenter mode (which folds prose to one line)
            with st.container(key=f"prose_gain_{run.id}"):
                st.markdown(gain)
        if any(run.history.values()):
            ui.plot(live_figure(run.history), key=f"curves-{run.id}")
            show_recorded(run)
        return
    if preset_views is not None:
        try:
            # a shipped run names the recipe it ran; a user's is read from its config
            ref = getattr(run, "reference", None)
            profile = ref.profile if ref is not None else None
            preset_views.show_result(run.result, profile=profile)
            return
        except Exception as err:  # an unexpected result shape must not break the page
            st.caption(f"Detailed view unavailable ({type(err).__name__}); the summary:")
    results_table(run)
    if any(run.history.values()):
        ui.plot(live_figure(run.history), key=f"curves-{run.id}")


def show_recorded(run: RunRecord) -> None:
    """What each model's method recorded of its own every epoch (:mod:`app.recorded`), where it
    recorded any number: the models in the curves' colours."""
    from app.recorded import recorded_figure, recorded_series

    series = recorded_series(run.history)
    if series:
        colours = {m: _colour(i) for i, m in enumerate(run.history)}
        ui.plot(recorded_figure(series, colours), key=f"recorded-{run.id}")
        st.caption(
            "What each model's method recorded at the end of every epoch, under the names it "
            "gives them (its distiller's epoch summary)."
        )


def weight_buttons(caption: str, files: list[tuple[str, Path, str, str]]) -> None:
    """Download buttons for safetensors files, four to a row: (label, path, file name, key)
    each. The file is read only when its button is pressed."""
    if not files:
        return
    st.caption(caption)
    cols = st.columns(min(len(files), 4))
    for i, (label, path, file_name, key) in enumerate(files):
        cols[i % len(cols)].download_button(
            label,
            data=lambda p=path: p.read_bytes(),
            file_name=file_name,
            mime="application/octet-stream",
            icon=":material/download:",
            key=key,
            on_click="ignore",
        )


def show_weights(store: Store, run: RunRecord) -> None:
    files = [(name, store.weights_path(run.id, name), f"run{run.id}-{name}.safetensors",
              f"weights-{run.id}-{name}") for name in run.weights]  # fmt: skip
    weight_buttons("Trained weights (safetensors, loadable with `kdcore.checkpoint.load_model`):",
                   files)  # fmt: skip
    # what each student's method trained beside it, kept by the job (kdcore.jobs)
    modules = [(name, path.parent / "methods" / path.name, f"run{run.id}-{name}-method.safetensors",
                f"method-{run.id}-{name}") for name, path, _, _ in files]  # fmt: skip
    weight_buttons(
        "What each method trained or kept beside its student (a projector, an embedding, the "
        "teacher's classifier a student answers through), safetensors:",
        [f for f in modules if f[1].is_file()],
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
            ui.plot(live_figure(run.history), key=f"live-{run_id}")

    poll()


def show_run(queue: JobQueue, run: RunRecord) -> None:
    """A run as it stands: live while active, else its outcome and results."""
    if run.active:
        live_view(queue, run.id)
        return
    header(run)
    # preset_views.show_result states the outcome itself for a preset's result
    if run.result is None or not _paper_source(run) or preset_views is None:
        if run.status == "failed":
            st.error(run.message or "failed", icon=":material/error:")
        elif run.status == "cancelled":
            where = (run.message or "").replace("cancelled during", "during")
            st.warning(
                f"Cancelled ({where}). The curves keep every finished epoch; the results list "
                "only the models that finished.",
                icon=":material/cancel:",
            )
    show_result(run)
    show_weights(queue.store, run)


# ----------------------------------------------------------------------------- runs in the URL


def linked_run(store: Store) -> RunRecord | None:
    """The run named by ``?run=ID``; a link naming none (text, ``²``, a 30-digit number, a
    deleted or damaged run) is dropped from the URL with a notice."""
    values = ui.url_values("run")
    if not values:
        return None
    run, why = None, "names no stored run; showing none."
    if len(values) == 1 and ui.int_ok(1, None)(values[0]):
        try:
            run = store.get(int(values[0]))
        except StoreError as err:
            why = f"names an unreadable run ({one_line(err)})."
    if run is None:
        ui.notice("run", "&".join(values), why)
        ui.drop_url("run")
    return run


def url_ids(key: str, listed: Sequence[int]) -> list[int] | None:
    """Run ids from ``?key=3,1`` (or ``?key=3&key=1``; None when the URL has none). Ids that
    are not ``listed`` are left out with a notice naming them and the rest kept; when none is
    left, None, so the page opens on its default choice."""
    values = ui.url_values(key)
    if not values:
        return None
    raw = ",".join(values)
    parts = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    ok = ui.int_ok(min([1, *listed]), None)  # shipped reference runs have ids below 0
    ids = [int(p) for p in parts if ok(p) and int(p) in listed]
    bad = [p for p in parts if not (ok(p) and int(p) in listed)]
    if bad:
        rest = "comparing the rest" if ids else "comparing the default runs"
        ui.notice(key, raw, f"not understood ({', '.join(b[:12] for b in bad[:5])} not listed); "
                  f"{rest}.")  # fmt: skip
    if not ids and parts:
        ui.drop_url(key)
        return None
    if [raw] != [",".join(str(i) for i in ids)]:  # repeated keys or ids, spaces: one list
        set_url_ids(key, ids)
    return list(dict.fromkeys(ids))


def url_run_choice(label: str, ids: list[int], key: str, **kw) -> int:
    """A select box of runs whose choice lives in the URL (``?key=-2``): a link opens on the
    same run; an id not listed is dropped with a notice and the first run shown."""
    first = kw.get("format_func", str)(ids[0])  # the notice names the run, not its id
    moved = url_moved(key)  # Back or Forward: the address's choice, not the box's
    ui.guard_url(key, lambda v: ui.int_ok(None, None)(v) and int(v) in ids, first)
    if ui.url_values(key) and (st.session_state.get(key) is None or moved):
        st.session_state[key] = int(ui.url_values(key)[0])  # a link's choice, before the box
    elif moved:
        st.session_state[key] = ids[0]
    shown = st.selectbox(label, ids, key=key, **kw)
    if shown != ids[0] or ui.url_values(key):
        set_url_ids(key, [shown])
    return shown


def config_key(spec: RunSpec) -> str | None:
    """The store's key of ``spec`` on the device it would run on (None for an unknown one):
    what tells whether a run was made with exactly these settings."""
    try:
        return spec.key(pick_device(spec.device))
    except (ValueError, RuntimeError):
        return None


def already_run(store: Store, key: str | None) -> int | None:
    """The id of a completed run with this configuration key, which Start would show again
    instead of training (the queue reuses it), or None."""
    if key is None:
        return None
    try:
        done = store.find_completed(key)
    except StoreError:
        return None
    return None if done is None else done.id


def errors_summary(models: dict[str, dict]) -> str:
    """A run's test errors in a table cell: every model of a small run; of a sweep, its first
    model (the teacher) and the range of the rest (``teacher 74; 20 others 86–305``)."""
    if len(models) <= 4:
        return ", ".join(f"{k} {m['test_errors']}" for k, m in models.items())
    first, *rest = models.items()
    errors = [m["test_errors"] for _, m in rest]
    return f"{first[0]} {first[1]['test_errors']}; {len(rest)} others {min(errors)}–{max(errors)}"


def set_url_ids(key: str, ids: Sequence[int]) -> None:
    """Writes a selection of runs to the URL (``?key=3,1``; ``?key=`` for none)."""
    text = ",".join(str(i) for i in ids)
    st.session_state[_WROTE + key] = text
    if st.query_params.get_all(key) != [text]:
        # one write, replacing every value the key had: deleting first made it two, and
        # Back then stopped at the address with neither
        st.query_params[key] = text


_WROTE = "_url_wrote_"  # + key: what set_url_ids last wrote there


def url_moved(key: str) -> bool:
    """Whether ``?key=`` is no longer what :func:`set_url_ids` last wrote there: the browser's
    Back or Forward (or a hand edit) changed it, and the page should follow the address rather
    than write its own choice back over it (Back did nothing on the run history)."""
    wrote = st.session_state.get(_WROTE + key)
    return wrote is not None and ",".join(st.query_params.get_all(key)) != wrote


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
    ui.guard_choice(key, devices(), "auto")
    return st.selectbox(
        "Device",
        devices(),
        key=key,
        bind="query-params",
        help="auto: the GPU when there is one. One run trains at a time per device.",
    )


@st.cache_data(max_entries=64, show_spinner=False)
def feature_names(arch: str, dataset: str) -> list[str]:
    """The named features of an architecture, in forward order (for a method's layer choice)."""
    shape = (1, 28, 28) if dataset in ("mnist", "fashion-mnist") else (3, 32, 32)
    with torch.no_grad():
        model = build_model(arch, in_shape=shape).eval()
        return list(model.forward_features(torch.zeros(1, *shape)).features)


def param_widget(f, default, key: str, choices: Sequence | None = None, **kw):
    """One control for a dataclass field made with :func:`kdcore.method.param`, in the URL.

    Numbers get their range and step from the field; a field with choices is a select box; text
    is a text box. A link value the control cannot take is dropped with a notice first (so the
    widget never receives it)."""
    meta = describe_field(f)
    label, help_ = meta["label"], meta["help"] or None
    if choices is None and isinstance(meta["choices"], tuple):
        choices = meta["choices"]
    if isinstance(default, bool):
        ui.guard_url(key, lambda raw: raw.lower() in ("true", "false"), default)
        return st.toggle(label, default, key=key, help=help_, bind="query-params", **kw)
    if choices is not None:
        options = list(choices)
        if default not in options:
            options.insert(0, default)
        ui.guard_choice(key, options, default)
        return st.selectbox(label, options, options.index(default), key=key, help=help_,
                            bind="query-params", **kw)  # fmt: skip
    if isinstance(default, int | float):
        lo, hi, step = meta["lo"], meta["hi"], meta["step"]
        is_int = isinstance(default, int)
        cast = int if is_int else float
        lo = None if lo is None else cast(lo)
        hi = None if hi is None else cast(hi)
        ok = ui.int_ok(lo, hi) if is_int else ui.float_ok(lo, hi)
        ui.guard_url(key, ok, default)
        # No min/max on the box itself: the browser would keep an out-of-range value typed
        # there on screen while the page ran the last accepted one. The config's check
        # refuses it instead, and Start says why.
        value = st.number_input(
            label, None, None, default, cast(step) if step else (1 if is_int else None),
            key=key, help=help_, bind="query-params",
            format=None if is_int else "%g", **kw,
        )  # fmt: skip
        return cast(value)
    ui.claim(key)
    return st.text_input(label, str(default), key=key, help=help_, bind="query-params", **kw)


def _field(name: str):
    return next(f for f in fields(CustomConfig) if f.name == name)


def custom_controls() -> tuple[RunSpec | None, str | None]:
    """The lab's own run: returns (spec or None, a reason it cannot start). Every control comes
    from a field of :class:`kdcore.lab.CustomConfig` or of the chosen method's parameters."""
    d = CustomConfig()
    archs = list(MODELS)
    c1, c2, c3 = st.columns(3)
    with c1:
        dataset = param_widget(_field("dataset"), d.dataset, "data")
    with c2:
        teacher = param_widget(_field("teacher"), d.teacher, "teacher", archs)
    with c3:
        student = param_widget(_field("student"), d.student, "student", archs)
    # the bound control keeps the method's title in the URL (?method=Knowledge+distillation)
    titles = {m.title for m in METHODS.values()}
    ui.guard_choice("method", titles, METHODS[d.method].title)
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
    m = METHODS[method]
    st.caption(f"{m.summary} ({m.citation})")
    m_fields = fields(m.params)
    if m_fields:
        dynamic = {
            "student features": feature_names(student, dataset),
            "teacher features": feature_names(teacher, dataset),
        }
        cols = st.columns(min(len(m_fields), 5))
        params = {}
        for i, f in enumerate(m_fields):
            choices = describe_field(f)["choices"]
            with cols[i % len(cols)]:
                params[f.name] = param_widget(
                    f, getattr(m.params(), f.name), f.name, dynamic.get(choices)
                )
    else:
        params = {}
    c1, c2, c3, c4, c5 = st.columns(5)
    with c1:
        epochs = param_widget(_field("epochs"), d.epochs, "epochs")
    with c2:
        lr = param_widget(_field("lr"), d.lr, "lr")
    with c3:
        teacher_epochs = param_widget(
            _field("teacher_epochs"), d.teacher_epochs, "teacher_epochs",
            disabled=not m.uses_teacher,
        )  # fmt: skip
    with c4:
        seed = param_widget(_field("seed"), d.seed, "seed")
    with c5:
        clip = param_widget(_field("grad_clip"), d.grad_clip, "grad_clip")
    c1, c2, c3 = st.columns(3)
    sizes = [0, 1000, 500, 100, 20]
    ui.guard_url("per_class", lambda raw: raw in {str(n) for n in sizes}, 0)
    per = c1.selectbox(
        "Training images per class",
        sizes,
        format_func=lambda n: "all" if n == 0 else f"{n}",
        key="per_class",
        bind="query-params",
    )
    with c2:
        device = _device_box("device")
    with c3:
        baseline = param_widget(_field("baseline"), d.baseline, "baseline", disabled=m.baseline)
    problem = data_problem(dataset, str(default_data_dir())) if dataset != "mnist" else None
    try:
        cfg = CustomConfig(
            dataset=dataset, teacher=teacher, student=student, method=method, params=params,
            epochs=int(epochs), lr=float(lr), seed=int(seed), teacher_epochs=int(teacher_epochs),
            grad_clip=float(clip), per_class=int(per), baseline=bool(baseline),
        )  # fmt: skip
        _custom_estimate(cfg.resolved(), device)
        return RunSpec.custom(cfg, device=device), problem
    except ValueError as err:
        return None, " ".join(str(err).split())


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


def _estimate_caption(name: str, cfg: dict) -> None:
    """The time a run of preset ``name`` with config ``cfg`` should take, scaled from its newest
    completed run in the store (kdcore.estimate), else from its shipped run, or why there is no
    estimate yet. (A custom run is costed model by model: :func:`_custom_estimate`.)"""
    from kdcore.estimate import estimate_seconds

    try:
        done = job_queue().store.list(name=name, status="completed", limit=1)
    except StoreError:
        done = []
    done = [r for r in done if r.result]
    if not done:
        _reference_estimate(name, cfg)
        return
    prev = done[0]
    seconds = estimate_seconds(prev.result, prev.result.get("config") or prev.config, cfg)
    if seconds is None:
        st.caption(f"No estimate: run #{prev.id} kept no timings.")
        return
    st.caption(
        f"Estimated time: about {duration(seconds)} on {prev.device or 'this machine'}, scaled "
        f"from run #{prev.id}; a teacher with unchanged settings comes from the cache."
    )


@st.cache_data(max_entries=4, show_spinner=False)
def _paces(store_path: str, completed: tuple[int, ...], shipped: int) -> dict[tuple, list[float]]:
    """Every model's measured seconds per epoch, from the store's completed runs and the shipped
    ones (kdcore.estimate.model_paces); read again when the completed runs (their ids) or the
    number of shipped ones change."""
    from app.reference_ui import records
    from kdcore.estimate import model_paces

    try:
        runs = _queue_for(store_path).store.list(status="completed")
    except StoreError:
        runs = []
    return model_paces(
        (r.result, r.result.get("config") or r.config) for r in [*runs, *records()] if r.result
    )


def _custom_estimate(cfg: CustomConfig, device: str) -> None:
    """The time a custom run should take, put together model by model: each one's seconds per
    epoch as timed by earlier runs of the same architecture, method, data and device type (the
    user's and the shipped ones), times its epochs; a cached teacher costs nothing."""
    from app.reference_ui import records
    from kdcore.estimate import custom_estimate
    from kdcore.lab import teacher_cached

    store_path = str(default_store_path())
    try:
        completed = _queue_for(store_path).store.ids("completed")
    except StoreError:
        completed = ()
    paces = _paces(store_path, completed, len(records()))
    kind = pick_device(device).type
    cached = teacher_cached(cfg, device, default_data_dir())
    parts = custom_estimate(cfg.plan, asdict(cfg), paces, kind, cached, baseline_method().name)
    if parts is None:
        st.caption(
            f"No estimate yet: no earlier run timed {cfg.teacher} and {cfg.student} on "
            f"{cfg.dataset} ({_images(cfg.per_class)}) on the {kind.upper()}."
        )
        return
    teacher = next((p for p, (_, m) in zip(parts, cfg.plan, strict=True) if m is None), None)
    said = ""
    if teacher is not None:
        said = (
            " (its teacher comes from the cache)"
            if cached
            else f", {duration(teacher.seconds)} of it the teacher's training (cached after)"
        )
    arch = cfg.student
    guesses = {
        "overhead": f"{arch}'s hard-label pace plus what the method added to other students",
        "hard": f"{arch}'s hard-label pace, the method's own cost unknown",
    }
    guess = "".join(
        f" {p.name}: {guesses[p.guess]} (never timed on {arch} yet)." for p in parts if p.guess
    )
    st.caption(
        f"Estimated time: about {duration(sum(p.seconds for p in parts))} on the "
        f"{kind.upper()}{said}, from the epochs earlier runs timed here and in the shipped "
        f"runs.{guess}"
    )


def _images(per_class: int) -> str:
    return "all training images" if not per_class else f"{per_class} images per class"


def _reference_estimate(name: str, cfg: dict) -> None:
    """The estimate from the preset's shipped reference run (its own machine's timings, the
    teacher's training included: a fresh machine has no cached teacher)."""
    from app.reference_ui import records_by_preset
    from kdcore.estimate import estimate_seconds

    ref = records_by_preset().get(name)
    seconds = None
    if ref is not None:
        seconds = estimate_seconds(ref.result, ref.config, cfg, cached_teacher=False)
    if seconds is None:
        st.caption("No estimate yet: no completed run like this one on this machine.")
        return
    st.caption(
        f"Estimated time: about {duration(seconds)}, scaled from the shipped reference run "
        f"({duration(ref.finished)} on {ref.device}), the teacher's training included; "
        "slower on a smaller machine, far faster on a GPU."
    )


def _short_label(label: str) -> tuple[str, str]:
    """``"Epochs (students; the teacher too if its own is 0)"`` -> ``("Epochs", "Students; the
    teacher too if its own is 0. ")``: a field's name for a box, its bracketed words for help."""
    name, detail = split_label(label)
    return name, f"{detail[:1].upper()}{detail[1:]}. " if detail else ""


def _profile_box(p) -> str:
    """The recipe to start from: the preset's quick default or one of its profiles (paper: the
    paper-length recipe; long: the quick one at more epochs), in the URL as ``?profile=``; each
    explained by the preset's own notes."""
    options = ["default", *p.profiles]
    if len(options) == 1:
        return "default"
    ui.guard_choice("profile", options, "default")
    if st.session_state.get("profile") not in (None, *options):
        st.session_state.pop("profile")
    return st.segmented_control(
        "Recipe",
        options,
        default="default",
        required=True,
        key="profile",
        bind="query-params",
        # no format_func: a bound control keeps its label in the URL (?profile=paper)
        help="The default: the preset's quick recipe, a few epochs, minutes on a laptop. "
        + " ".join(p.profile_notes.get(name, "") for name in p.profiles)
        + " The cost of the recipe chosen is estimated below, and the run shipped with the app "
        "is shown below before anything trains.",
    )


def preset_controls() -> tuple[RunSpec | None, str | None]:
    """A preset with its paper numbers, an epochs control and all its settings."""
    names = list(PRESETS)
    # No format_func: a bound selectbox keeps its label in the URL, and ?preset=omitted-3 reads
    # better in a shared link than the preset's title.
    ui.guard_choice("preset", names, names[0])
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
        st.dataframe(rows, hide_index=True, key=f"paper-{name}", placeholder=ui.MISSING)
    adj = p.paper.get("bias_adjustment")
    if isinstance(adj, dict) and adj.get("bias") is not None:
        if "errors_after" in adj:
            after = f"{adj['errors_after']} test errors"
        else:
            after = f"{adj.get('error_percent_after')}% test error"
        st.markdown(f"Paper, after shifting the bias by {adj['bias']:+g}: {after}.")
    for claim in p.paper.get("claims", []):
        st.markdown(f"> {claim}")
    profile = _profile_box(p)
    st.caption(f"Paper: {p.source}. Why our numbers differ: {p.differences_for(profile)}")
    base = p.profile_config(profile)
    by_name = {f.name: f for f in fields(base)}
    has_teacher = "teacher_epochs" in by_name
    # boxes level however many lines a label wraps into on a narrow screen
    cols = st.columns(4 if has_teacher else 3, vertical_alignment="bottom")
    default_epochs = base.epochs
    tag = name if profile == "default" else f"{name}-{profile}"  # each profile keeps its own
    with cols[0]:
        # The field's own label says what it covers (every model, or the students only): its
        # words in brackets go to the help, so the four boxes' labels stay one line and level.
        name_of, covers = _short_label(describe_field(by_name["epochs"])["label"])
        epochs = ui.url_int(
            f"{name_of}, default {default_epochs}", f"ep-{tag}", 1, 1000, default_epochs,
            boxed=False, help=f"{covers}More epochs come closer to the paper; each takes longer.",
        )  # fmt: skip
    overrides: dict = {}
    if has_teacher:  # shown beside the epochs, not hidden among the other settings
        with cols[1]:
            t_field = by_name["teacher_epochs"]
            meta = describe_field(t_field)
            t_default = base.teacher_epochs
            t_name, t_covers = _short_label(meta["label"])
            # a teacher field that starts at 0 follows the students' epochs there (its label
            # says so): "default 0" would read as an untrained teacher
            follows = t_default == 0 and (meta["lo"] or 0) == 0
            t_label = f"{t_name}, 0 = as epochs" if follows else f"{t_name}, default {t_default}"
            t_epochs = ui.url_int(t_label, f"tep-{tag}",
                                  meta["lo"] or 0, 1000, t_default, boxed=False,
                                  help=f"{t_covers}{meta['help'] or ''}" or None)  # fmt: skip
            if t_epochs != t_default:
                overrides["teacher_epochs"] = t_epochs
    with cols[-2]:
        seed = ui.url_int("Seed", f"seed-{tag}", 0, 2**31 - 1, base.seed, boxed=False)
    with cols[-1]:
        device = _device_box("pdevice")
    if epochs >= 1 and overrides.get("teacher_epochs", 0) >= 0:  # else the reason, below
        _estimate_caption(name, {**asdict(base), "epochs": epochs, **overrides})
    form = getattr(preset_views, "preset_form", None)
    try:
        if form is not None:
            overrides = dict(form(p) or {})
        else:
            with st.expander("All settings of this preset"):
                for f in fields(base):
                    if f.name in ("epochs", "seed", "teacher_epochs"):
                        continue
                    value = getattr(base, f.name)
                    new = _field_widget(f.name, value, f"set-{tag}-{f.name}")
                    if new != value:
                        overrides[f.name] = new
        spec = RunSpec.preset(name, int(epochs), int(seed), device, profile=profile, **overrides)
        return spec, None
    except (ValueError, TypeError) as err:
        return None, " ".join(str(err).split())


# ----------------------------------------------------------------------------- a preset on a page


@st.fragment(run_every=POLL_S)
def run_progress(queue: JobQueue, run_id: int) -> None:
    """Polls a run in flight; the whole page reruns (and shows the result) once it ends."""
    run = queue.store.get(run_id)
    if run is None or not run.active:
        st.rerun()
    st.progress(run.progress, text=progress_line(run))


def stored_or_offer(
    queue: JobQueue | None,
    name: str,
    cost: str,
    epochs_key: str,
    button_key: str,
    live=None,
    **epochs_kw,
) -> RunRecord | None:
    """The run a page shows for preset ``name``: the newest completed one in the store, else the
    one shipped with the app (:mod:`app.reference_ui`, read-only), else None.

    Around it: while a run of the preset is in flight, its progress (``live(queue, run_id)``,
    default a progress bar; the whole page reruns with the result when it ends); with no
    completed run of the user's own, what a run does, its cost and a button that queues one (a
    page never trains itself), folded away under a shipped run. Without a queue
    (:func:`optional_queue` said why) only the shipped run."""
    from app.reference_ui import records_by_preset

    shipped = records_by_preset().get(name)
    done = latest = []
    if queue is not None:
        try:
            done = queue.store.list(name=name, status="completed", limit=1)
            latest = [] if done else queue.store.list(name=name, limit=1)
        except StoreError as err:  # damaged after it opened: this section says so, the page goes on
            _store_unavailable(err)
            queue = None
    if done:
        return done[0]
    show_live = live or run_progress
    if latest and latest[0].active:
        st.caption(f"Run #{latest[0].id} is under way; this section fills in when it ends."
                   + (" Until then, the run shipped with the app." if shipped else ""))  # fmt: skip
        show_live(queue, latest[0].id)
        return shipped
    if latest and latest[0].status == "failed":
        ui.fallback(f"The last run (#{latest[0].id}) failed: {latest[0].message}")
    if shipped is not None:
        st.caption(shipped_line(shipped))
        if queue is not None:
            with st.expander("Run it on this machine", icon=":material/play_arrow:"):
                st.caption(
                    f"The shipped run trained {_epochs(shipped.config.get('epochs'))} per model. "
                    "Yours takes its place on this page once it completes; the shipped one stays "
                    "in the run history."
                )
                _offer(queue, name, cost, epochs_key, button_key, **epochs_kw)
        seed_spread(shipped)
        return shipped
    if queue is None:
        return None
    st.info(f"No completed {name} run in the store yet. {PRESETS[name].summary}",
            icon=":material/science:")  # fmt: skip
    _offer(queue, name, cost, epochs_key, button_key, **epochs_kw)
    return None


def stored_students(
    queue: JobQueue | None,
    preset: str,
    method: str,
    cost: str,
    keys: tuple[str, str],
    paper: str,
    also: tuple[str, ...] = (),
) -> RunRecord | None:
    """A student-against-baselines preset's stored run (:func:`stored_or_offer`): the hard-label,
    KD and ``method`` students' errors and accuracy curves (and those of the methods ``also``
    trained beside it), with ``paper``'s line under them (``keys``: the epochs box's and the
    button's). Returns the run shown, for what else the section draws of it."""
    from app.relation_figures import accuracy_curves_figure

    run = stored_or_offer(queue, preset, cost, *keys)
    if run is None or not run.result:
        return run
    models = run.result.get("models", {})
    # the method's students: its own, any run again with other parameters (student_vid_near),
    # then the other methods trained beside it
    names = (
        [n for n in ("student_hard", "student_kd") if n in models]
        + [n for n in models if n == f"student_{method}" or n.startswith(f"student_{method}_")]
        + [f"student_{m}" for m in also if f"student_{m}" in models]
    )
    # at most four a row, the rows even: six side by side cut "309 errors" to "309 err…"
    per = math.ceil(len(names) / math.ceil(len(names) / 4)) if names else 1
    for i in range(0, max(len(names), 1), per):
        for col, name in zip(st.columns(per), names[i : i + per], strict=False):
            acc = f"{100 * models[name]['test_accuracy']:.2f}% accuracy"
            # the accuracy under the errors is a label, not a change: grey, no arrow
            col.metric(name, f"{models[name]['test_errors']} errors", acc, delta_color="off",
                       delta_arrow="off")  # fmt: skip
    ui.plot(accuracy_curves_figure(run.result.get("history", {}), names), key=f"curves_{method}")
    st.caption(f"{run_name(run)}: {describe(run)}. {paper}")
    why_differs(preset)
    return run


def _offer(queue, name, cost, epochs_key, button_key, **epochs_kw) -> None:
    """An epochs control, the cost and a button that queues a run of preset ``name``; the page
    then reruns, showing it live."""
    from kdcore.jobs import QueueFull

    most, first = epochs_kw.pop("most", 50), epochs_kw.pop("first", 1)  # a long preset's own
    epochs = ui.url_int("Epochs per model", epochs_key, 1, most, first, **epochs_kw)
    st.caption(cost)
    if st.button("Run it now", key=button_key, icon=":material/play_arrow:"):
        try:
            queue.submit(RunSpec.make(name, epochs=epochs))
        except (ValueError, QueueFull) as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.rerun()  # the page again, with the queued run live above what it shows


def seed_spread(run: RunRecord) -> None:
    """Under a shipped run with a seed study: the same recipe at other seeds, folded, so a
    reader can tell an effect from one seed's luck."""
    from app.reference_ui import show_seed_study
    from kdcore.reference import load_seed_study

    ref = getattr(run, "reference", None)
    rows = load_seed_study(ref) if ref is not None else []
    if len(rows) > 1:
        with st.expander(f"The same recipe at {len(rows)} seeds", icon=":material/casino:"):
            show_seed_study(ref, rows)


def shipped_line(run: RunRecord) -> str:
    """What a page says above a shipped run: that it shipped, how it was made, how long it took
    on which machine."""
    ref = getattr(run, "reference", None)
    if ref is None:
        return ""
    info = ref.info
    return (
        f":material/verified: Shown: the run shipped with the app, made in "
        f"{duration(info['seconds'])} on {info['device_name']} ({info['created']}), until you run "
        f"it here; it is also in the [run history](runs?show={run.id})."
    )


def why_differs(name: str) -> None:
    """Under a preset's run on a concept page: why its numbers differ from the paper's, folded."""
    with st.expander("Why this run's numbers differ from the paper's", icon=":material/info:"):
        st.markdown(PRESETS[name].differences)


def run_name(run: RunRecord) -> str:
    """``Run #12``, or ``The shipped run`` for a reference run (whose id is no store id)."""
    return "The shipped run" if getattr(run, "reference", None) is not None else f"Run #{run.id}"


def weights_file(queue: JobQueue | None, run: RunRecord, model: str) -> Path | None:
    """Where ``model``'s weights of ``run`` are: in the store, or beside a shipped run; None
    when the run kept none."""
    ref = getattr(run, "reference", None)
    if ref is not None:
        w = ref.weights.get(model)
        path = ref.path.parent / w["file"] if w else None
        return path if path is not None and path.is_file() else None
    if queue is None or model not in run.weights:
        return None
    return queue.store.weights_path(run.id, model)


def kept_teacher(queue: JobQueue | None, run: RunRecord | None) -> str | None:
    """Where ``run`` kept its teacher's weights, loaded once for the page to draw it live
    (:func:`app.ui.saved_model`); None, with one line saying the view is off and why, when there
    is no run, it kept none, or they cannot be loaded."""
    from kdcore.checkpoint import CheckpointError

    kept = weights_file(queue, run, "teacher") if run is not None else None
    try:
        if kept is None:
            raise CheckpointError("no run of the preset kept its teacher's weights")
        ui.saved_model(str(kept))
    except CheckpointError as err:
        ui.fallback(f"The teacher cannot be loaded, so this view is off: {err}")
        return None
    return str(kept)
