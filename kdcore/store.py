"""The run store: every run's config, status, per-epoch history and results in one SQLite file.

One table, ``runs``. A run is created ``queued`` (or ``running`` when the CLI starts it at once),
then ends ``completed``, ``failed`` or ``cancelled``. History is written as epochs finish, so a
run that stops half-way keeps what it learned, and the app can draw live curves by polling.

The database lives at ``$KD_STORE`` or ``~/.cache/kdcore/runs.sqlite`` unless a path is given.
It runs in WAL mode, so the app's worker thread, the page scripts and a CLI process in another
terminal can read and write it together. Trained weights go beside it, in a folder named after
the database (``runs-weights/run-000012/student_kd.safetensors``), written and read only through
:mod:`kdcore.checkpoint` (safetensors: nothing is ever unpickled).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import CheckpointError, load_model, save_model

STORE_ENV = "KD_STORE"
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")
KINDS = ("preset", "custom")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created     REAL NOT NULL,              -- Unix seconds
    started     REAL,
    finished    REAL,
    status      TEXT NOT NULL,              -- one of STATUSES
    kind        TEXT NOT NULL,              -- "preset" or "custom"
    name        TEXT NOT NULL,              -- the preset's name, or "custom"
    config      TEXT NOT NULL,              -- JSON of the resolved config dataclass
    config_key  TEXT NOT NULL,              -- hash of config, seed, data, method, device type
    progress    REAL NOT NULL DEFAULT 0,    -- fraction of the whole run, 0..1
    live        TEXT NOT NULL DEFAULT '{}', -- JSON: current model, epoch, ETA
    history     TEXT NOT NULL DEFAULT '{}', -- JSON: {model: [epoch dicts]}
    result      TEXT,                       -- JSON: the runner's result dict, when it ended
    device      TEXT NOT NULL DEFAULT '',
    version     TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL DEFAULT ''    -- host:pid of the process that runs it
);
CREATE INDEX IF NOT EXISTS runs_key ON runs (config_key, status);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
"""

_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")  # model names used as weight file names


class StoreError(RuntimeError):
    """The store could not be opened or used; ``str(err)`` is one line for the user."""


def default_store_path() -> Path:
    """``$KD_STORE`` or ``~/.cache/kdcore/runs.sqlite``."""
    return Path(os.environ.get(STORE_ENV) or Path.home() / ".cache" / "kdcore" / "runs.sqlite")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``kdcore.__version__`` plus the git commit when the code is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        commit = out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"{__version__}+{commit}"


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or we cannot tell: leave it alone
    return True


def _clean(obj: Any) -> Any:
    """NaN and infinities become None so every export is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), default=str)  # key order kept: models in training order


def iso(ts: float | None) -> str:
    """Local time ``YYYY-mm-dd HH:MM:SS``, or "" for a missing timestamp."""
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@dataclass
class RunRecord:
    id: int
    created: float
    started: float | None
    finished: float | None
    status: str
    kind: str
    name: str
    config: dict
    config_key: str
    progress: float
    live: dict
    history: dict[str, list[dict]]
    result: dict | None
    device: str
    version: str
    message: str
    owner: str = ""
    weights: list[str] = field(default_factory=list)  # model names with saved weights

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def models(self) -> dict[str, dict]:
        """Final per-model metrics (empty until the run has ended)."""
        return (self.result or {}).get("models", {})

    @property
    def methods(self) -> set[str]:
        """Methods the run used: a custom run's method (and "hard" for its baseline), or the
        ``_suffix`` of a preset's ``student_<method>`` model names."""
        found = set()
        if self.config.get("method"):
            found.add(self.config["method"])
        if self.config.get("baseline"):
            found.add("hard")
        for name in [*self.history, *self.models]:
            if name.startswith("student_"):
                found.add(name.removeprefix("student_"))
        return found

    @property
    def title(self) -> str:
        """Short text naming the run, e.g. ``hinton-mnist`` or ``custom kd mlp-30``."""
        if self.kind == "custom":
            c = self.config
            return f"custom {c.get('method', '')} {c.get('student', '')}".rstrip()
        return self.name

    @property
    def label(self) -> str:
        """``#12 hinton-mnist``."""
        return f"#{self.id} {self.title}"

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(created_at=iso(self.created), finished_at=iso(self.finished))
        return _clean(out)


class Store:
    """A SQLite run store. Safe to share between threads (one connection behind a lock) and
    between processes (WAL mode, a busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.weights_root = self.path.parent / f"{self.path.stem}-weights"
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), timeout=30, check_same_thread=False, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"cannot open the run store at {self.path}: {err}") from None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> tuple[int, int]:
        """Run one statement; returns (lastrowid, rowcount)."""
        try:
            with self._lock:
                cur = self._db.execute(sql, args)
                return cur.lastrowid or 0, cur.rowcount
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path.name}: {err}") from None

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"run store {self.path.name}: {err}") from None

    # ------------------------------------------------------------------------- writing

    def create(
        self,
        kind: str,
        name: str,
        config: dict,
        config_key: str,
        status: str = "queued",
        device: str = "",
    ) -> int:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if status not in ACTIVE:
            raise ValueError(f"a new run is queued or running, not {status!r}")
        now = time.time()
        row_id, _ = self._exec(
            "INSERT INTO runs (created, started, status, kind, name, config, config_key, device,"
            " version, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                now if status == "running" else None,
                status,
                kind,
                name,
                _dumps(config),
                config_key,
                device,
                code_version(),
                owner_id(),
            ),
        )
        return int(row_id)

    def start(self, run_id: int, device: str) -> None:
        self._exec(
            "UPDATE runs SET status='running', started=?, device=?, owner=? WHERE id=?",
            (time.time(), device, owner_id(), run_id),
        )

    def set_progress(self, run_id: int, fraction: float, live: dict) -> None:
        self._exec(
            "UPDATE runs SET progress=?, live=? WHERE id=?",
            (min(max(float(fraction), 0.0), 1.0), _dumps(live), run_id),
        )

    def append_epoch(self, run_id: int, model: str, epoch: dict) -> None:
        """Add one epoch record to ``history[model]`` (read-modify-write inside a transaction,
        so two writers never lose each other's epochs)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT history FROM runs WHERE id=?", (run_id,)).fetchone()
                if row is not None:
                    history = json.loads(row["history"])
                    history.setdefault(model, []).append(epoch)
                    self._db.execute(
                        "UPDATE runs SET history=? WHERE id=?", (_dumps(history), run_id)
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"run store {self.path.name}: {err}") from None

    def set_history(self, run_id: int, model: str, epochs: list[dict]) -> None:
        """Replace one model's history (a teacher loaded from the cache brings its own)."""
        with self._lock:
            run = self.get(run_id)
            if run is None:
                return
            run.history[model] = epochs
            self._exec("UPDATE runs SET history=? WHERE id=?", (_dumps(run.history), run_id))

    def finish(self, run_id: int, status: str, message: str = "", result: dict | None = None):
        """End a run. The result's history, when given, replaces the one built epoch by epoch."""
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError(f"a run ends completed, failed or cancelled, not {status!r}")
        with self._lock:
            if result is not None and result.get("history"):
                self._exec(
                    "UPDATE runs SET history=? WHERE id=?", (_dumps(result["history"]), run_id)
                )
            self._exec(
                "UPDATE runs SET status=?, message=?, result=?, finished=?,"
                " progress=CASE WHEN ?='completed' THEN 1.0 ELSE progress END WHERE id=?",
                (
                    status,
                    " ".join(message.split()),  # one line, whatever the source said
                    None if result is None else _dumps(result),
                    time.time(),
                    status,
                    run_id,
                ),
            )

    def reap_stale(self) -> int:
        """Mark as failed the queued/running runs whose process on this host has died (the app
        or a CLI run was stopped). Returns how many were marked."""
        host = socket.gethostname()
        dead = []
        for row in self._query("SELECT id, owner FROM runs WHERE status IN ('queued', 'running')"):
            who, _, pid = row["owner"].rpartition(":")
            if who == host and pid.isdigit() and not _pid_alive(int(pid)):
                dead.append(row["id"])
        for run_id in dead:
            self.finish(run_id, "failed", "interrupted: the process running it stopped")
        return len(dead)

    def delete(self, run_ids: int | list[int]) -> int:
        ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        _, deleted = self._exec(f"DELETE FROM runs WHERE id IN ({marks})", tuple(ids))
        for run_id in ids:
            shutil.rmtree(self._weights_dir(run_id), ignore_errors=True)
        return deleted

    # ------------------------------------------------------------------------- reading

    def _record(self, row: sqlite3.Row) -> RunRecord:
        folder = self._weights_dir(row["id"])
        weights = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
        return RunRecord(
            id=row["id"],
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            status=row["status"],
            kind=row["kind"],
            name=row["name"],
            config=json.loads(row["config"]),
            config_key=row["config_key"],
            progress=row["progress"],
            live=json.loads(row["live"]),
            history=json.loads(row["history"]),
            result=None if row["result"] is None else json.loads(row["result"]),
            device=row["device"],
            version=row["version"],
            message=row["message"],
            owner=row["owner"],
            weights=weights,
        )

    def get(self, run_id: int) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        return self._record(rows[0]) if rows else None

    def list(
        self,
        status: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by status, kind, preset name and method."""
        where, args = [], []
        for col, value in (("status", status), ("kind", kind), ("name", name)):
            if value:
                where.append(f"{col}=?")
                args.append(value)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        runs = [self._record(r) for r in self._query(sql, tuple(args))]
        if method:
            runs = [r for r in runs if method in r.methods]
        return runs[:limit] if limit else runs

    def find_completed(self, config_key: str) -> RunRecord | None:
        """The newest completed run with this config key (an identical earlier run)."""
        rows = self._query(
            "SELECT * FROM runs WHERE config_key=? AND status='completed' ORDER BY id DESC LIMIT 1",
            (config_key,),
        )
        return self._record(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    # ------------------------------------------------------------------------- export

    def export_json(self, run_ids: list[int] | None = None) -> str:
        runs = self._select(run_ids)
        return json.dumps([r.to_dict() for r in runs], indent=1)

    def export_csv(self, run_ids: list[int] | None = None) -> str:
        """One row per run and model: the final metrics beside the paper's test errors."""
        cols = [
            "run_id",
            "created",
            "finished",
            "status",
            "kind",
            "name",
            "device",
            "version",
            "model",
            "test_errors",
            "test_accuracy",
            "paper_test_errors",
            "params",
            "seconds",
            "epochs",
            "message",
            "config",
        ]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for run in self._select(run_ids):
            paper = ((run.result or {}).get("paper") or {}).get("test_errors") or {}
            base = {
                "run_id": run.id,
                "created": iso(run.created),
                "finished": iso(run.finished),
                "status": run.status,
                "kind": run.kind,
                "name": run.name,
                "device": run.device,
                "version": run.version,
                "message": run.message,
                "config": _dumps(run.config),
            }
            names = list(run.models) or list(run.history) or [""]
            for model in names:
                m = run.models.get(model, {})
                writer.writerow(
                    {
                        **base,
                        "model": model,
                        "test_errors": m.get("test_errors", ""),
                        "test_accuracy": m.get("test_accuracy", ""),
                        "paper_test_errors": paper.get(model, ""),
                        "params": m.get("params", ""),
                        "seconds": m.get("seconds", ""),
                        "epochs": len(run.history.get(model, [])),
                    }
                )
        return buf.getvalue()

    def _select(self, run_ids: list[int] | None) -> list[RunRecord]:
        if run_ids is None:
            return list(reversed(self.list()))
        return [r for r in (self.get(i) for i in run_ids) if r is not None]

    # ------------------------------------------------------------------------- weights

    def _weights_dir(self, run_id: int) -> Path:
        return self.weights_root / f"run-{int(run_id):06d}"

    def weights_path(self, run_id: int, model: str) -> Path:
        if not _NAME_OK.match(model):
            raise CheckpointError(f"{model!r} is not a valid model name for a weight file")
        return self._weights_dir(run_id) / f"{model}.safetensors"

    def save_weights(
        self,
        run_id: int,
        model_name: str,
        model: nn.Module,
        arch: str,
        num_classes: int,
        in_shape: tuple[int, int, int],
        meta: dict | None = None,
    ) -> Path:
        meta = {"run_id": run_id, "model": model_name, **(meta or {})}
        path = self.weights_path(run_id, model_name)
        return save_model(model, path, arch, num_classes, in_shape, meta)

    def load_weights(
        self, run_id: int, model_name: str, device: str | torch.device = "cpu"
    ) -> tuple[nn.Module, dict]:
        """Rebuild a run's saved model. Raises :class:`CheckpointError` (one line) when the file
        is missing, corrupt or not a kdcore model."""
        return load_model(self.weights_path(run_id, model_name), device)
