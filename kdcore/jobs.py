"""Background training: run specs, one shared executor, and a bounded job queue.

:func:`execute` runs one spec (any registered runner: a preset, or the lab's custom run) and
records it in the :class:`~kdcore.store.Store` as it goes: status, live progress, every epoch's
history, the final result dict and the trained weights. The CLI calls it directly; the app
submits specs to a :class:`JobQueue`, whose worker threads call it, one training at a time per
device by default.

Nothing here touches a UI. Pages poll the store (and :meth:`JobQueue.place`) to draw progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import __version__
from .checkpoint import CheckpointError, save_state
from .data import DataUnavailable
from .presets import RUNNERS, Monitor, Trained, run_preset
from .store import RunRecord, Store, StoreError
from .train import DEFAULT_THREADS, EpochRecord, Progress, pick_device


@dataclass(frozen=True)
class RunSpec:
    """What to run: a registered runner (a preset, or the lab's custom run) with its config.

    ``config`` is the fully resolved frozen config, so two specs that would train the same thing
    have the same :meth:`key` however they were written.
    """

    kind: str  # the runner's kind: "preset" or "custom"
    name: str  # the runner's name
    config: Any  # the runner's config dataclass, resolved and checked
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"

    @classmethod
    def make(
        cls,
        name: str,
        epochs: int | None = None,
        seed: int | None = None,
        device: str = "auto",
        config: Any = None,
        profile: str | None = None,
        **overrides: Any,
    ) -> RunSpec:
        """A spec for runner ``name``: ``config`` (default: the runner's, or its named
        ``profile``) with ``epochs``, ``seed`` and ``overrides`` applied and checked.
        ValueError (one line) when it cannot run."""
        if name not in RUNNERS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(RUNNERS)}")
        runner = RUNNERS[name]
        changes = dict(overrides)
        if epochs is not None:
            changes["epochs"] = epochs
        if seed is not None:
            changes["seed"] = seed
        if config is None:
            config = runner.profile_config(profile)
        return cls(runner.kind, name, runner.with_changes(changes, base=config), device)

    preset = make

    @classmethod
    def custom(cls, config: Any = None, device: str = "auto", **changes: Any) -> RunSpec:
        """The lab's own run (the runner named "custom")."""
        return cls.make("custom", device=device, config=config, **changes)

    def config_dict(self) -> dict:
        return asdict(self.config)

    def key(self, device: torch.device) -> str:
        """Identity of the run for reuse: kind, name, config (seed and data set included), the
        device type and the code version. Runs on CPU and GPU differ in the last digits."""
        src = {
            "kind": self.kind,
            "name": self.name,
            "config": self.config_dict(),
            "device": device.type,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(src, sort_keys=True, default=str).encode()).hexdigest()[
            :20
        ]


def failure_line(err: BaseException, device: object) -> str:
    """Why a run failed, in one line for the user: running out of memory (on a GPU, or on the
    CPU, where torch raises a plain RuntimeError from its allocator) says what to try; the
    errors that explain themselves (no data, a bad checkpoint, a refused value) stand alone;
    anything else is named by its type."""
    text = str(err)
    if isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("can't allocate memory" in text or "alloc_cpu" in text)
    ):
        return f"out of memory on {device}: try a smaller model or batch"
    if isinstance(err, DataUnavailable | CheckpointError | ValueError | KeyError):
        return one_line(err)
    return f"{type(err).__name__}: {one_line(err)}"


def one_line(err: BaseException, limit: int = 600) -> str:
    """``err`` as one line for the user, whole up to ``limit`` characters: a missing data set's
    message (about 300) ends with where to put the files, which a shorter cut dropped."""
    text = " ".join(str(err).split())
    if not text:
        return type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StoreMonitor(Monitor):
    """Writes a run's progress and history to the store as training goes, and forwards every
    event to ``forward`` (e.g. the CLI's progress bar). Step updates are throttled."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        forward: tuple[Monitor, ...] = (),
        every_s: float = 0.5,
    ):
        self.store, self.run_id, self.forward, self.every_s = store, run_id, forward, every_s
        self.model, self.index, self.count = "", 0, 1
        self._last = 0.0
        self._t0 = time.monotonic()
        self._model_t0 = self._t0
        self._took: list[float] = []  # seconds of each model that trained (not cache loads)

    def _live(self, progress: Progress | None) -> tuple[float, dict]:
        frac = progress.fraction if progress else 0.0
        overall = (self.index + frac) / max(self.count, 1)
        live = {
            "model": self.model,
            "index": self.index,
            "count": self.count,
            "elapsed": round(time.monotonic() - self._t0, 1),
        }
        if progress is not None:
            eta = self.eta(progress)
            if eta is not None:
                live["eta"] = round(eta, 1)
            live.update(
                epoch=progress.epoch,
                epochs=progress.total_steps // max(progress.steps_per_epoch, 1),
                model_fraction=round(frac, 4),
            )
        return overall, live

    def eta(self, progress: Progress) -> float | None:
        """Seconds left in the run, or None until the pace is known: after a full epoch of the
        model in training, or a quarter of it if it trains for one epoch. (The first steps also
        pay for warm-up, and extrapolated from them the ETA swung from 20 s to ten minutes.)
        The models still to come are taken at the mean pace of those that trained so far, else
        at this one's."""
        one_epoch = progress.total_steps <= progress.steps_per_epoch
        warm = max(progress.total_steps // 4, 1) if one_epoch else progress.steps_per_epoch
        if progress.done_steps < warm:
            return None
        left = progress.eta
        this_model = progress.elapsed + left
        per_model = sum(self._took) / len(self._took) if self._took else this_model
        return left + max(self.count - self.index - 1, 0) * per_model

    def on_model_start(self, name: str, index: int, count: int) -> None:
        self.model, self.index, self.count = name, index, count
        self._model_t0 = time.monotonic()
        self.store.set_progress(self.run_id, *self._live(None))
        for m in self.forward:
            m.on_model_start(name, index, count)

    def on_step(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.store.set_progress(self.run_id, *self._live(progress))
        for m in self.forward:
            m.on_step(progress)

    def on_epoch(self, record: EpochRecord, progress: Progress) -> None:
        # Peers trained in one step (mutual learning) each name their record; file it under
        # that name, as RunContext.train keys the final history.
        self.store.append_epoch(self.run_id, record.model or self.model, record.to_dict())
        self.store.set_progress(self.run_id, *self._live(progress))
        for m in self.forward:
            m.on_epoch(record, progress)

    def on_model_end(self, name: str, summary: dict) -> None:
        # A teacher loaded from the cache brings its history without epochs being run; it
        # reaches the store with the final result.
        took = time.monotonic() - self._model_t0
        if not summary.get("cached") and took >= 0.5:  # a load says nothing of the pace
            self._took.append(took)
        self.index += 1
        overall = self.index / max(self.count, 1)
        live = {"model": name, "index": self.index - 1, "count": self.count, "done": name}
        self.store.set_progress(self.run_id, overall, live)
        for m in self.forward:
            m.on_model_end(name, summary)


def _run(
    spec: RunSpec,
    device: torch.device,
    monitor: Monitor,
    cancel: threading.Event | None,
    use_cache: bool,
    data_dir: str | None,
    keep: dict[str, Trained],
) -> dict:
    return run_preset(
        spec.name,
        device=str(device),
        monitor=monitor,
        cancel=cancel,
        use_cache=use_cache,
        data_dir=data_dir,
        trained=keep,
        config=spec.config,
    )


def execute(
    store: Store,
    spec: RunSpec,
    run_id: int | None = None,
    monitors: tuple[Monitor, ...] = (),
    cancel: threading.Event | None = None,
    use_cache: bool = True,
    data_dir: str | None = None,
) -> tuple[int, dict | None]:
    """Run ``spec`` here and now, recording it in ``store``. Returns (run id, result dict).

    The result is None when the run could not produce one (missing data, out of memory, any
    error): the run is then stored as failed with a one-line message, keeping the epochs done.
    """
    try:
        device = pick_device(spec.device)
    except (ValueError, RuntimeError) as err:
        if run_id is None:
            raise
        store.finish(run_id, "failed", one_line(err))
        return run_id, None
    if run_id is None:
        run_id = store.create(
            spec.kind, spec.name, spec.config_dict(), spec.key(device), "running", str(device)
        )
    store.start(run_id, str(device))
    monitor = StoreMonitor(store, run_id, tuple(monitors))
    keep: dict[str, Trained] = {}
    try:
        result = _run(spec, device, monitor, cancel, use_cache, data_dir, keep)
    except Exception as err:  # the worker must survive anything a run throws
        store.finish(run_id, "failed", failure_line(err, device))
        return run_id, None
    except BaseException:  # Ctrl-C in the CLI: record it, then let it stop the process
        store.finish(run_id, "cancelled", "interrupted")
        raise
    message = result.get("message", "")
    try:
        for name, t in keep.items():
            meta = {
                "config": spec.config_dict(), "kind": spec.kind, "name": spec.name,
                "role": t.role, "method": t.method,
            }  # fmt: skip
            file_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]  # "mlp-30 T=4" -> "mlp-30_T_4"
            store.save_weights(run_id, file_name, t.model, t.arch, t.num_classes, t.in_shape, meta)
            if t.distiller is not None and t.distiller.state_dict():  # the method's own modules
                folder = store.weights_path(run_id, file_name).parent / "methods"
                save_state(t.distiller, folder / f"{file_name}.safetensors", meta)
    except (OSError, CheckpointError) as err:  # the results stand even if weights cannot be kept
        message = f"{message} (weights not saved: {one_line(err)})".strip()
    try:
        store.finish(run_id, result["status"], message, result)
    except StoreError as err:  # kept in unsaved-result.json; the caller still gets the result
        result = {**result, "message": f"{message} ({one_line(err)})".strip()}
    return run_id, result


class QueueFull(RuntimeError):
    """Too many runs are waiting; ``str(err)`` is one line for the user."""


@dataclass
class Job:
    run_id: int
    spec: RunSpec
    device: str  # the resolved device, e.g. "cpu" or "cuda:0": the queue it waits in
    key: str
    cancel: threading.Event = field(default_factory=threading.Event)


# Training yields to the pages: a worker thread runs at this niceness (Linux, per thread; the
# threads torch starts for it inherit it). On a 2-core machine with a room of 30 sessions, a
# training job at the pages' priority took a third of the server's core (rerun p95 1.3 s); at
# nice 10 it takes what the pages leave (measured with bench/bench_load.py, see the README).
TRAINING_NICE = 10


def worker_setup(threads: int, nice: int) -> None:
    """What a training worker thread does once: its own torch thread count (a setting of the
    calling thread), and a lower CPU priority for itself where the system allows it."""
    torch.set_num_threads(threads)
    if nice > 0 and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # not permitted, or no per-thread priority here
            tid = threading.get_native_id()
            lower = min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice)
            os.setpriority(os.PRIO_PROCESS, tid, lower)


class JobQueue:
    """A bounded FIFO of runs per device, served by ``per_device`` worker threads each.

    ``submit`` returns a run id at once. An identical finished run (same :meth:`RunSpec.key`)
    is returned instead of training again, and so is an identical run already queued or running:
    a whole class pressing the same button costs one run.
    """

    def __init__(
        self,
        store: Store,
        per_device: int = 1,
        max_pending: int = 16,
        use_cache: bool = True,
        data_dir: str | None = None,
        threads: int = DEFAULT_THREADS,
        nice: int = TRAINING_NICE,
    ):
        self.store = store
        self.per_device, self.max_pending = per_device, max_pending
        self.use_cache, self.data_dir = use_cache, data_dir
        self.threads, self.nice = max(1, threads), nice
        self._cv = threading.Condition()
        self._pending: dict[str, deque[Job]] = {}
        self._running: dict[int, Job] = {}
        self._by_key: dict[str, int] = {}  # config key -> run id, for queued and running jobs
        self._workers: list[threading.Thread] = []
        self._closed = False
        store.reap_stale()  # runs a previous server process left behind

    def submit(self, spec: RunSpec, reuse: bool = True) -> int:
        device = pick_device(spec.device)
        dev = str(device)
        key = spec.key(device)
        with self._cv:
            if self._closed:
                raise QueueFull("the job queue has been shut down")
            if reuse and key in self._by_key:
                return self._by_key[key]
            waiting = sum(len(q) for q in self._pending.values())
            if waiting >= self.max_pending:
                raise QueueFull(
                    f"the queue is full ({waiting} runs waiting); try again when one finishes"
                )
            if reuse:
                # Claimed in the store itself: another app process (or a CLI run) that already
                # queued, runs or finished this configuration is joined, not repeated.
                run_id, new = self.store.claim(
                    spec.kind, spec.name, spec.config_dict(), key, device=dev, reuse=True
                )
                if not new:
                    return run_id
            else:
                run_id = self.store.create(
                    spec.kind, spec.name, spec.config_dict(), key, device=dev
                )
            job = Job(run_id, spec, dev, key)
            if dev not in self._pending:
                self._pending[dev] = deque()
                for i in range(self.per_device):
                    t = threading.Thread(
                        target=self._work, args=(dev,), name=f"kd-{dev}-{i}", daemon=True
                    )
                    self._workers.append(t)
                    t.start()
            self._pending[dev].append(job)
            self._by_key[key] = run_id
            self._cv.notify_all()
            return run_id

    def _work(self, dev: str) -> None:
        worker_setup(self.threads, self.nice)
        while True:
            with self._cv:
                while not self._pending[dev] and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job = self._pending[dev].popleft()
                self._running[job.run_id] = job
            try:
                execute(
                    self.store,
                    job.spec,
                    job.run_id,
                    cancel=job.cancel,
                    use_cache=self.use_cache,
                    data_dir=self.data_dir,
                )
            except Exception as err:  # the store itself failed; keep serving the queue
                with contextlib.suppress(Exception):
                    self.store.finish(job.run_id, "failed", one_line(err))
            finally:
                with self._cv:
                    self._running.pop(job.run_id, None)
                    if self._by_key.get(job.key) == job.run_id:
                        del self._by_key[job.key]
                    self._cv.notify_all()

    def place(self, run_id: int) -> int | None:
        """0 while the run trains, 1 for the next in line, ...; None when this queue does not
        hold it (finished, or started by another process)."""
        with self._cv:
            if run_id in self._running:
                return 0
            for q in self._pending.values():
                for i, job in enumerate(q):
                    if job.run_id == run_id:
                        return i + 1
        return None

    def active(self) -> list[int]:
        """Run ids held by this queue: running first, then waiting in order."""
        with self._cv:
            return [*self._running, *(j.run_id for q in self._pending.values() for j in q)]

    def cancel(self, run_id: int) -> bool:
        """Stop a run: a waiting one is dropped at once, a training one stops at its next step
        and keeps its partial history. Returns False when this queue does not hold the run."""
        with self._cv:
            if run_id in self._running:
                self._running[run_id].cancel.set()
                return True
            for q in self._pending.values():
                for job in q:
                    if job.run_id == run_id:
                        q.remove(job)
                        self._by_key.pop(job.key, None)
                        self.store.finish(run_id, "cancelled", "cancelled before it started")
                        return True
        return False

    def wait(self, run_id: int, timeout: float | None = None) -> RunRecord | None:
        """Block until the run has ended (or the timeout passed); returns its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._holds(run_id):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(left)
        return self.store.get(run_id)

    def _holds(self, run_id: int) -> bool:
        return run_id in self._running or any(
            j.run_id == run_id for q in self._pending.values() for j in q
        )

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Cancel everything waiting and training, and wait for the workers to stop."""
        with self._cv:
            self._closed = True
            for q in self._pending.values():
                while q:
                    job = q.popleft()
                    self.store.finish(job.run_id, "cancelled", "the job queue was shut down")
            for job in self._running.values():
                job.cancel.set()
            self._by_key.clear()
            self._cv.notify_all()
        for t in self._workers:
            t.join(timeout)
