"""The run store: every run's config, status, per-epoch history and results in one SQLite file.

One table, ``runs``. A run is created ``queued`` (or ``running`` when the CLI starts it at once),
then ends ``completed``, ``failed`` or ``cancelled``. History is written as epochs finish, so a
run that stops half-way keeps what it learned, and the app can draw live curves by polling.

The database lives at ``$KD_STORE`` or ``~/.cache/kdcore/runs.sqlite`` unless a path is given.
It runs in WAL mode, so the app's worker thread, the page scripts and a CLI process in another
terminal can read and write it together. Trained weights go beside it, in a folder named after
the database (``runs-weights/run-000012/student_kd.safetensors``), written and read only through
:mod:`kdcore.checkpoint` (safetensors: nothing is ever unpickled).

Failure modes it is built for:
- A damaged row (text that is not UTF-8, JSON that does not parse) hides nothing else:
  :meth:`Store.list` skips it and names it in ``Store.unreadable``; :meth:`Store.get` raises
  :class:`StoreError` with one line.
- Another process holding the write lock for minutes does not lose a finished run: ``finish``,
  ``append_epoch`` and ``start`` retry with backoff for ``write_retry`` seconds;
  a result that still cannot be written is kept in ``runs-weights/run-N/unsaved-result.json``
  and applied by :meth:`Store.recover_unsaved`.
- Two processes asking for the same configuration get one run: :meth:`Store.claim` checks and
  inserts inside one ``BEGIN IMMEDIATE`` transaction.
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
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import __version__

if TYPE_CHECKING:  # torch loads only where weights are touched: listing or claiming runs is fast
    import torch
    from torch import nn

STORE_ENV = "KD_STORE"
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")
KINDS = ("preset", "custom")
BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another connection's lock
WRITE_RETRY_S = 300.0  # how long the writes that end or record a run keep retrying a locked store
UNSAVED = "unsaved-result.json"  # a result the store could not take, beside the run's weights
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6  # primary result codes (https://sqlite.org/rescode.html)

T = TypeVar("T")

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


class _Undecodable(str):
    """Text from a column that is not valid UTF-8, decoded with replacement characters so that
    reading it cannot fail; :meth:`Store._record` refuses a row holding one."""


def _decode(raw: bytes) -> str:
    # sqlite3's default text factory raises OperationalError for the whole query when one value
    # is not UTF-8; decoding here confines the damage to its row.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Undecodable(raw.decode("utf-8", errors="replace"))


class _Damaged(Exception):
    """A row that cannot be turned into a :class:`RunRecord`; ``reason`` is one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _one_line(text: object, limit: int = 300) -> str:
    """One printable line: whitespace runs collapsed, other control characters escaped."""
    flat = " ".join(str(text).split())
    flat = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _is_busy(err: sqlite3.Error) -> bool:
    """True for "database is locked" and kin: another connection holds the lock, retry later."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


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
    except (PermissionError, OSError, OverflowError):
        return True  # exists but belongs to someone else, or we cannot tell: leave it alone
    return True


def _owner_alive(owner: object) -> bool:
    """Whether the ``host:pid`` that owns a run may still be running it. Only a process on this
    host can be checked; any other owner is taken to be alive."""
    if not isinstance(owner, str):
        return True
    who, _, pid = owner.rpartition(":")
    if who != socket.gethostname() or not pid.isdigit():
        return True
    return _pid_alive(int(pid))


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


_TEXT_COLUMNS = ("status", "kind", "name", "config_key", "device", "version", "message", "owner")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_column(row: sqlite3.Row, col: str) -> dict:
    """A JSON-object column, parsed; raises :class:`_Damaged` when it is not one."""
    raw = row[col]
    if isinstance(raw, _Undecodable):
        raise _Damaged(f"column {col} is not valid UTF-8")
    if not isinstance(raw, str):
        raise _Damaged(f"column {col} holds {type(raw).__name__}, not JSON text")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise _Damaged(f"column {col} is not valid JSON ({_one_line(err, 80)})") from None
    if not isinstance(value, dict):
        raise _Damaged(f"column {col} holds a JSON {type(value).__name__}, not an object")
    return value


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
        """Methods the run used, read from each model's ``method`` field (and, for runs stored
        before models carried it, the config's ``method``)."""
        found = {m["method"] for m in self.models.values() if m.get("method")}
        if self.config.get("method"):
            found.add(self.config["method"])
        return found

    @property
    def title(self) -> str:
        """Short text naming the run, e.g. ``hinton-mnist`` or ``custom kd mlp-30``."""
        c = self.config
        if "method" in c:  # a run of one chosen method (the lab's own)
            return f"{self.name} {c['method']} {c.get('student', '')}".rstrip()
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
    between processes (WAL mode, a busy timeout, retried writes).

    ``busy_timeout``: seconds one statement waits for another connection's lock.
    ``write_retry``: seconds :meth:`finish`, :meth:`append_epoch` and :meth:`start` keep
    retrying (with backoff) while the store stays locked.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        write_retry: float = WRITE_RETRY_S,
    ):
        self.path = Path(path) if path is not None else default_store_path()
        self.weights_root = self.path.parent / f"{self.path.stem}-weights"
        self.busy_timeout, self.write_retry = float(busy_timeout), float(write_retry)
        self.unreadable: list[tuple[int, str]] = []  # (id, reason) of rows the last list skipped
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                check_same_thread=False,
                isolation_level=None,
            )
            self._db.row_factory = sqlite3.Row
            self._db.text_factory = _decode
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise StoreError(
                f"cannot open the run store at {self.path}: {_one_line(err)}"
            ) from None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _error(self, err: BaseException) -> StoreError:
        return StoreError(f"run store {self.path.name}: {_one_line(err)}")

    def _exec(self, sql: str, args: tuple = ()) -> tuple[int, int]:
        """Run one statement; returns (lastrowid, rowcount)."""
        try:
            with self._lock:
                cur = self._db.execute(sql, args)
                return cur.lastrowid or 0, cur.rowcount
        except sqlite3.Error as err:
            raise self._error(err) from None

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise self._error(err) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the thread lock: the write lock is taken
        first, so a read-modify-write inside cannot interleave with another writer's."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, retried with backoff while another connection holds the lock, for up
        to ``write_retry`` seconds in all. The thread lock is released between attempts so this
        process's readers are not stalled. Raises the last sqlite3 error when time runs out."""
        deadline = time.monotonic() + self.write_retry
        wait = 0.05
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as err:
                left = deadline - time.monotonic()
                if not _is_busy(err) or left <= 0:
                    raise
            time.sleep(min(wait, left))
            wait = min(2 * wait, 5.0)

    # ------------------------------------------------------------------------- writing

    def _insert(self, db: sqlite3.Connection, kind, name, config, config_key, status, device):
        now = time.time()
        cur = db.execute(
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
        return int(cur.lastrowid)

    @staticmethod
    def _check_new(kind: str, status: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if status not in ACTIVE:
            raise ValueError(f"a new run is queued or running, not {status!r}")

    def create(
        self,
        kind: str,
        name: str,
        config: dict,
        config_key: str,
        status: str = "queued",
        device: str = "",
    ) -> int:
        self._check_new(kind, status)
        try:
            with self._lock:
                return self._insert(self._db, kind, name, config, config_key, status, device)
        except sqlite3.Error as err:
            raise self._error(err) from None

    def claim(
        self,
        kind: str,
        name: str,
        config: dict,
        config_key: str,
        device: str = "",
        status: str = "queued",
        reuse: bool = False,
    ) -> tuple[int, bool]:
        """The one run of this configuration, across every process that shares the store.

        Inside one ``BEGIN IMMEDIATE`` transaction: returns ``(id, False)`` for the oldest
        queued or running run with ``config_key`` whose owner process is alive (or, with
        ``reuse``, first the newest readable completed one); otherwise inserts a new run and
        returns ``(new_id, True)``: the caller that gets True must run it. Queued or running
        runs of a dead process on this host are marked failed on the way.
        """
        self._check_new(kind, status)
        try:
            with self._transaction() as db:
                if reuse:
                    rows = db.execute(
                        "SELECT * FROM runs WHERE config_key=? AND status='completed'"
                        " ORDER BY id DESC",
                        (config_key,),
                    ).fetchall()
                    for row in rows:
                        with suppress(_Damaged):
                            return self._record(row).id, False
                rows = db.execute(
                    "SELECT id, owner FROM runs WHERE config_key=? AND status IN"
                    " ('queued', 'running') ORDER BY id",
                    (config_key,),
                ).fetchall()
                for row in rows:
                    if _owner_alive(row["owner"]):
                        return row["id"], False
                    db.execute(
                        "UPDATE runs SET status='failed', finished=?, message=? WHERE id=?",
                        (time.time(), "interrupted: the process running it stopped", row["id"]),
                    )
                return self._insert(db, kind, name, config, config_key, status, device), True
        except sqlite3.Error as err:
            raise self._error(err) from None

    def start(self, run_id: int, device: str) -> None:
        def attempt() -> None:
            with self._lock:
                self._db.execute(
                    "UPDATE runs SET status='running', started=?, device=?, owner=? WHERE id=?",
                    (time.time(), device, owner_id(), run_id),
                )

        try:
            self._retrying(attempt)
        except sqlite3.Error as err:
            raise self._error(err) from None

    def set_progress(self, run_id: int, fraction: float, live: dict) -> bool:
        """Record live progress. Best effort: returns False, without raising, when another
        connection holds the lock, because the next call supersedes this one anyway."""
        try:
            with self._lock:
                self._db.execute(
                    "UPDATE runs SET progress=?, live=? WHERE id=?",
                    (min(max(float(fraction), 0.0), 1.0), _dumps(live), run_id),
                )
        except sqlite3.OperationalError as err:
            if _is_busy(err):
                return False
            raise self._error(err) from None
        except sqlite3.Error as err:
            raise self._error(err) from None
        return True

    def _edit_history(self, run_id: int, edit: Callable[[dict], None]) -> None:
        """Read-modify-write of one run's history inside a transaction, retried while locked,
        so two writers never lose each other's epochs."""

        def attempt() -> None:
            with self._transaction() as db:
                row = db.execute("SELECT history FROM runs WHERE id=?", (run_id,)).fetchone()
                if row is None:
                    return
                history = _json_column(row, "history")
                edit(history)
                db.execute("UPDATE runs SET history=? WHERE id=?", (_dumps(history), run_id))

        try:
            self._retrying(attempt)
        except _Damaged as err:
            raise StoreError(f"run #{run_id} in {self.path.name}: {err.reason}") from None
        except sqlite3.Error as err:
            raise self._error(err) from None

    def append_epoch(self, run_id: int, model: str, epoch: dict) -> None:
        """Add one epoch record to ``history[model]``."""
        self._edit_history(run_id, lambda history: history.setdefault(model, []).append(epoch))

    def finish(self, run_id: int, status: str, message: str = "", result: dict | None = None):
        """End a run. The result's history, when given, replaces the one built epoch by epoch.

        Retried while the store is locked, for up to ``write_retry`` seconds. When it still
        cannot be written the result is kept in ``runs-weights/run-N/unsaved-result.json``
        (applied later by :meth:`recover_unsaved`) and :class:`StoreError` is raised: the caller
        still holds the result.
        """
        if status not in ("completed", "failed", "cancelled"):
            raise ValueError(f"a run ends completed, failed or cancelled, not {status!r}")
        self._end(run_id, status, message, result, time.time())

    def _end(
        self, run_id: int, status: str, message: str, result: dict | None, finished: float
    ) -> None:
        message = " ".join(message.split())  # one line, whatever the source said
        result_json = None if result is None else _dumps(result)
        history_json = _dumps(result["history"]) if result and result.get("history") else None

        def attempt() -> None:
            with self._transaction() as db:
                if history_json is not None:
                    db.execute("UPDATE runs SET history=? WHERE id=?", (history_json, run_id))
                db.execute(
                    "UPDATE runs SET status=?, message=?, result=?, finished=?,"
                    " progress=CASE WHEN ?='completed' THEN 1.0 ELSE progress END WHERE id=?",
                    (status, message, result_json, finished, status, run_id),
                )

        try:
            self._retrying(attempt)
        except sqlite3.Error as err:
            kept = self._keep_unsaved(run_id, status, message, result_json, finished)
            raise StoreError(
                f"run store {self.path.name}: could not record the end of run #{run_id}"
                f" ({_one_line(err)}); {kept}"
            ) from None
        with suppress(OSError):  # an older ending left unsaved is now superseded
            (self._weights_dir(run_id) / UNSAVED).unlink(missing_ok=True)

    def _keep_unsaved(
        self, run_id: int, status: str, message: str, result_json: str, finished: float
    ) -> str:
        """Write the ending the store refused beside the run's weights; say where it went."""
        folder = self._weights_dir(run_id)
        payload = {
            "status": status,
            "message": message,
            "result": result_json,
            "finished": finished,
        }
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{UNSAVED}.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(payload, f)
            os.replace(tmp, folder / UNSAVED)
        except OSError as err:
            return f"it could not be kept on disk either ({_one_line(err, 120)})"
        return f"it is kept in {folder / UNSAVED}"

    def recover_unsaved(self) -> int:
        """Apply the results :meth:`finish` had to leave in ``unsaved-result.json`` files (a
        store locked for longer than ``write_retry``). Returns how many were applied."""
        done = 0
        for path in sorted(self.weights_root.glob(f"run-*/{UNSAVED}")):
            try:
                run_id = int(path.parent.name.removeprefix("run-"))
                saved = json.loads(path.read_text())
                result = None if saved["result"] is None else json.loads(saved["result"])
                status, message, finished = saved["status"], saved["message"], saved["finished"]
                if status not in STATUSES or not isinstance(message, str):
                    raise ValueError(status)
                finished = float(finished)
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                continue  # half a file or a foreign one: leave it for a person to look at
            if not self._query("SELECT id FROM runs WHERE id=?", (run_id,)):
                path.unlink(missing_ok=True)  # the run was deleted meanwhile
                continue
            try:
                self._end(run_id, status, message, result, finished)
            except StoreError:
                continue  # still locked: the file stays for the next call
            path.unlink(missing_ok=True)
            done += 1
        return done

    def reap_stale(self) -> int:
        """Mark as failed the queued/running runs whose process on this host has died (the app
        or a CLI run was stopped), after applying any results left unsaved. Returns how many
        were marked."""
        self.recover_unsaved()
        rows = self._query("SELECT id, owner FROM runs WHERE status IN ('queued', 'running')")
        dead = [row["id"] for row in rows if not _owner_alive(row["owner"])]
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
        """The row as a record; raises :class:`_Damaged` naming the first bad column."""
        for col in row.keys():  # noqa: SIM118 (iterating a sqlite3.Row yields its values)
            if isinstance(row[col], _Undecodable):
                raise _Damaged(f"column {col} is not valid UTF-8")
        for col in _TEXT_COLUMNS:
            if not isinstance(row[col], str):
                raise _Damaged(f"column {col} holds {type(row[col]).__name__}, not text")
        for col in ("created", "progress"):
            if not _is_number(row[col]):
                raise _Damaged(f"column {col} is not a number")
        for col in ("started", "finished"):
            if row[col] is not None and not _is_number(row[col]):
                raise _Damaged(f"column {col} is not a number")
        history = _json_column(row, "history")
        if not all(isinstance(v, list) for v in history.values()):
            raise _Damaged("column history does not map models to lists of epochs")
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
            config=_json_column(row, "config"),
            config_key=row["config_key"],
            progress=row["progress"],
            live=_json_column(row, "live"),
            history=history,
            result=None if row["result"] is None else _json_column(row, "result"),
            device=row["device"],
            version=row["version"],
            message=row["message"],
            owner=row["owner"],
            weights=weights,
        )

    def get(self, run_id: int) -> RunRecord | None:
        """The run, or None when there is none. Raises :class:`StoreError` (one line) when its
        row is damaged."""
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows:
            return None
        try:
            return self._record(rows[0])
        except _Damaged as err:
            raise StoreError(
                f"run #{run_id} in {self.path.name} is unreadable: {err.reason}"
            ) from None

    def _records(self, rows: list[sqlite3.Row]) -> list[RunRecord]:
        """Records of the readable rows; the others go to ``self.unreadable``."""
        runs, unreadable = [], []
        for row in rows:
            try:
                runs.append(self._record(row))
            except _Damaged as err:
                unreadable.append((row["id"], err.reason))
        self.unreadable = unreadable
        return runs

    def list(
        self,
        status: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by status, kind, preset name and method.

        Damaged rows are left out and named in ``self.unreadable`` as ``(id, reason)``, so one
        bad row never hides the others.
        """
        where, args = [], []
        for col, value in (("status", status), ("kind", kind), ("name", name)):
            if value:
                where.append(f"{col}=?")
                args.append(value)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        runs = self._records(self._query(sql, tuple(args)))
        if method:
            runs = [r for r in runs if method in r.methods]
        return runs[:limit] if limit else runs

    def find_completed(self, config_key: str) -> RunRecord | None:
        """The newest readable completed run with this config key (an identical earlier run)."""
        rows = self._query(
            "SELECT * FROM runs WHERE config_key=? AND status='completed' ORDER BY id DESC",
            (config_key,),
        )
        for row in rows:
            with suppress(_Damaged):
                return self._record(row)
        return None

    def ids(self, status: str) -> tuple[int, ...]:
        """The ids of the runs with ``status``, oldest first: a cheap fingerprint of that set
        (ids are never reused, so a run deleted and another added changes it)."""
        rows = self._query("SELECT id FROM runs WHERE status=? ORDER BY id", (status,))
        return tuple(r["id"] for r in rows)

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    # ------------------------------------------------------------------------- export

    def export_json(self, run_ids: list[int] | None = None, also: Sequence[RunRecord] = ()) -> str:
        """The runs ``run_ids`` (all when None), oldest first, then the records ``also`` (runs
        that are not rows of the store, such as the shipped reference runs)."""
        runs = [*self._select(run_ids), *also]
        return json.dumps([r.to_dict() for r in runs], indent=1)

    def export_csv(self, run_ids: list[int] | None = None, also: Sequence[RunRecord] = ()) -> str:
        """One row per run and model: the final metrics beside the paper's test errors (the
        runs as :meth:`export_json` orders them)."""
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
        for run in [*self._select(run_ids), *also]:
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
        """Oldest first; damaged rows are left out and named in ``self.unreadable``."""
        if run_ids is None:
            return list(reversed(self.list()))
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        rows = self._query(
            f"SELECT * FROM runs WHERE id IN ({','.join('?' * len(ids))})", tuple(ids)
        )
        found = {r.id: r for r in self._records(rows)}
        return [found[i] for i in ids if i in found]

    # ------------------------------------------------------------------------- weights

    def _weights_dir(self, run_id: int) -> Path:
        return self.weights_root / f"run-{int(run_id):06d}"

    def weights_path(self, run_id: int, model: str) -> Path:
        from .checkpoint import CheckpointError

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
        from .checkpoint import save_model

        meta = {"run_id": run_id, "model": model_name, **(meta or {})}
        path = self.weights_path(run_id, model_name)
        return save_model(model, path, arch, num_classes, in_shape, meta)

    def load_weights(
        self, run_id: int, model_name: str, device: str | torch.device = "cpu"
    ) -> tuple[nn.Module, dict]:
        """Rebuild a run's saved model. Raises :class:`CheckpointError` (one line) when the file
        is missing, corrupt or not a kdcore model."""
        from .checkpoint import load_model

        return load_model(self.weights_path(run_id, model_name), device)
