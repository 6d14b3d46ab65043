"""The run store: round trip, persistence across a restart, concurrent writers, export, delete,
safetensors weights and their failure modes."""

import csv
import io
import json
import sqlite3
import threading
import time

import pytest
import torch
from safetensors.torch import save_file

from kdcore.checkpoint import CheckpointError
from kdcore.models import build_model
from kdcore.store import Store, StoreError, default_store_path


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs.sqlite")
    yield s
    s.close()


def _finished_run(store: Store, name="hinton-mnist", errors=(70, 150)) -> int:
    run_id = store.create("preset", name, {"epochs": 2, "seed": 0}, "key-" + name)
    store.start(run_id, "cpu")
    for model, err in zip(("teacher", "student_kd"), errors, strict=True):
        for epoch in (1, 2):
            store.append_epoch(run_id, model, {"epoch": epoch, "test_errors": err + 2 - epoch})
    result = {
        "preset": name,
        "status": "completed",
        "history": store.get(run_id).history,
        "models": {
            "teacher": {
                "test_errors": errors[0],
                "test_accuracy": 1 - errors[0] / 1e4,
                "role": "teacher",
                "method": "hard",
            },
            "student_kd": {
                "test_errors": errors[1],
                "test_accuracy": 1 - errors[1] / 1e4,
                "role": "student",
                "method": "kd",
            },
        },
        "paper": {"source": "Hinton 2015", "test_errors": {"teacher": 67, "student_kd": 74}},
        "loss": float("nan"),  # must not break strict JSON exports
    }
    store.finish(run_id, "completed", "done", result)
    return run_id


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KD_STORE", str(tmp_path / "x" / "mine.sqlite"))
    assert default_store_path() == tmp_path / "x" / "mine.sqlite"
    assert Store().path == tmp_path / "x" / "mine.sqlite"


def test_round_trip(store):
    run_id = store.create("custom", "custom", {"method": "kd", "student": "mlp-30"}, "k1")
    run = store.get(run_id)
    assert (run.status, run.kind, run.config["student"], run.history) == (
        "queued",
        "custom",
        "mlp-30",
        {},
    )
    assert run.version.startswith("0.") and "+" in run.version
    store.start(run_id, "cpu")
    store.set_progress(run_id, 0.5, {"model": "teacher", "index": 0, "count": 2, "eta": 3.0})
    store.append_epoch(run_id, "teacher", {"epoch": 1, "test_accuracy": 0.9})
    run = store.get(run_id)
    assert run.status == "running" and run.started is not None and run.device == "cpu"
    assert run.progress == 0.5 and run.live["model"] == "teacher"
    assert run.history == {"teacher": [{"epoch": 1, "test_accuracy": 0.9}]}
    store.finish(run_id, "failed", "training diverged:\n  the loss became NaN")
    run = store.get(run_id)
    assert run.status == "failed" and run.message == "training diverged: the loss became NaN"
    assert run.history["teacher"][0]["epoch"] == 1  # partial history kept
    assert run.methods == {"kd"}


def test_survives_restart(tmp_path):
    path = tmp_path / "runs.sqlite"
    first = Store(path)
    run_id = _finished_run(first)
    first.close()
    again = Store(path)  # a new process would do exactly this
    run = again.get(run_id)
    assert run.status == "completed" and run.models["student_kd"]["test_errors"] == 150
    assert list(run.models) == ["teacher", "student_kd"]  # training order kept
    assert len(run.history["teacher"]) == 2
    assert again.find_completed("key-hinton-mnist").id == run_id
    assert again.find_completed("nothing") is None


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "runs.sqlite"
    shared = Store(path)
    run_id = shared.create("custom", "custom", {}, "k", "running")
    other = Store(path)  # a second connection, as a CLI process would hold

    def write(store: Store, model: str):
        for epoch in range(25):
            store.append_epoch(run_id, model, {"epoch": epoch})
            store.set_progress(run_id, epoch / 25, {"model": model})

    threads = [
        threading.Thread(target=write, args=(s, f"m{i}"))
        for i, s in enumerate([shared, shared, other, other])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = Store(path).get(run_id).history
    assert sorted(history) == ["m0", "m1", "m2", "m3"]
    assert all([e["epoch"] for e in h] == list(range(25)) for h in history.values())


def test_list_filter_export_delete(store):
    a = _finished_run(store, "hinton-mnist")
    b = _finished_run(store, "omitted-3", (80, 200))
    c = store.create("custom", "custom", {"method": "logits"}, "k3")
    store.finish(c, "cancelled", "cancelled during epoch 1")
    assert [r.id for r in store.list()] == [c, b, a]  # newest first
    assert [r.id for r in store.list(status="completed")] == [b, a]
    assert [r.id for r in store.list(name="omitted-3")] == [b]
    assert [r.id for r in store.list(kind="custom")] == [c]
    assert [r.id for r in store.list(method="logits")] == [c]
    assert [r.id for r in store.list(method="kd")] == [b, a]  # the models' method fields
    assert store.counts() == {"completed": 2, "cancelled": 1}

    exported = json.loads(store.export_json([a, c]))  # strict JSON: NaN became null
    assert [r["id"] for r in exported] == [a, c]
    assert exported[0]["result"]["loss"] is None
    assert exported[0]["created_at"].count(":") == 2

    rows = list(csv.DictReader(io.StringIO(store.export_csv([a, b]))))
    assert [(r["run_id"], r["model"]) for r in rows] == [
        (str(a), "teacher"),
        (str(a), "student_kd"),
        (str(b), "teacher"),
        (str(b), "student_kd"),
    ]
    assert rows[0]["paper_test_errors"] == "67" and rows[3]["test_errors"] == "200"

    assert store.ids("completed") == (a, b) and store.ids("cancelled") == (c,)
    assert store.delete([a, c]) == 2
    assert [r.id for r in store.list()] == [b]
    assert store.get(a) is None and store.delete([]) == 0
    # one run deleted and another completed: as many runs, another set (ids are never reused)
    d = _finished_run(store, "hinton-mnist")
    assert store.ids("completed") == (b, d) and d > c


def test_weights_round_trip_and_delete(store):
    run_id = _finished_run(store)
    model = build_model("mlp-30")
    path = store.save_weights(run_id, "student_kd", model, "mlp-30", 10, (1, 28, 28), {"T": 4})
    assert path.parent.parent == store.weights_root and path.suffix == ".safetensors"
    assert store.get(run_id).weights == ["student_kd"]
    loaded, meta = store.load_weights(run_id, "student_kd")
    assert meta["T"] == 4 and meta["run_id"] == run_id
    for p, q in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert (p == q).all()
    store.delete(run_id)
    assert not path.exists()


def test_bad_weight_files_give_one_line_errors(store, tmp_path):
    run_id = _finished_run(store)
    path = store.weights_path(run_id, "student_kd")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x04not a safetensors file, maybe a pickle")
    with pytest.raises(CheckpointError) as err:
        store.load_weights(run_id, "student_kd")
    assert "\n" not in str(err.value) and "student_kd.safetensors" in str(err.value)

    save_file({"w": torch.zeros(2)}, str(path))  # valid safetensors, not a kdcore model
    with pytest.raises(CheckpointError, match="not a kdcore model"):
        store.load_weights(run_id, "student_kd")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        store.load_weights(run_id, "teacher")
    with pytest.raises(CheckpointError, match="not a valid model name"):
        store.weights_path(run_id, "../../etc/passwd")


def test_corrupt_database_is_one_line_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "\n" not in str(err.value) and "runs.sqlite" in str(err.value)


def test_stale_runs_of_dead_processes_are_failed(store):
    run_id = store.create("custom", "custom", {}, "k", "running")
    alive = store.create("custom", "custom", {}, "k2", "running")  # this process: alive
    host = store.get(run_id).owner.rpartition(":")[0]
    store._exec("UPDATE runs SET owner=? WHERE id=?", (f"{host}:999999999", run_id))
    assert store.reap_stale() == 1
    assert store.get(run_id).status == "failed" and "interrupted" in store.get(run_id).message
    assert store.get(alive).status == "running"


# ----------------------------------------------------------------------------- damaged rows


def _damage(path, sql: str, *args) -> None:
    """Write to the database behind the store's back, as a bug, a disk error or a person would."""
    raw = sqlite3.connect(str(path))
    raw.execute(sql, args)
    raw.commit()
    raw.close()


def assert_one_clean_line(message: str) -> None:
    assert message and "\n" not in message and message.isprintable(), repr(message)


def test_damaged_rows_do_not_hide_the_others(store):
    ids = [_finished_run(store, f"run{i}") for i in range(6)]
    _damage(store.path, "UPDATE runs SET config = CAST(X'fffe7b' AS TEXT) WHERE id=?", ids[1])
    _damage(store.path, "UPDATE runs SET history = '{\"teacher\": [' WHERE id=?", ids[2])
    _damage(store.path, "UPDATE runs SET result = X'00ff1b5b33316d' WHERE id=?", ids[3])  # a BLOB
    _damage(store.path, "UPDATE runs SET name = CAST(X'6869c3' AS TEXT) WHERE id=?", ids[4])
    _damage(store.path, "UPDATE runs SET live = '[1, 2]' WHERE id=?", ids[5])

    runs = store.list()
    assert [r.id for r in runs] == [ids[0]]
    reasons = dict(store.unreadable)
    assert list(reasons) == ids[:0:-1]  # newest first, like the list
    assert "config is not valid UTF-8" in reasons[ids[1]]
    assert "history is not valid JSON" in reasons[ids[2]]
    assert "result holds bytes" in reasons[ids[3]]
    assert "name is not valid UTF-8" in reasons[ids[4]]
    assert "live holds a JSON list" in reasons[ids[5]]
    for reason in reasons.values():
        assert_one_clean_line(reason)

    for run_id in ids[1:]:
        with pytest.raises(StoreError) as err:
            store.get(run_id)
        assert_one_clean_line(str(err.value))
        assert f"run #{run_id}" in str(err.value) and "unreadable" in str(err.value)
    assert store.get(ids[0]).status == "completed"

    # Filters, exports and the dedup lookup keep working around the damage.
    assert [r.id for r in store.list(status="completed", limit=5)] == [ids[0]]
    assert [r["id"] for r in json.loads(store.export_json())] == [ids[0]]
    assert [r["id"] for r in json.loads(store.export_json(ids))] == [ids[0]]
    assert {r["run_id"] for r in csv.DictReader(io.StringIO(store.export_csv()))} == {str(ids[0])}
    assert store.find_completed("key-run1") is None  # damaged: not offered for reuse
    assert store.delete(ids[1]) == 1  # a damaged run can still be deleted


def test_store_list_stays_readable_when_every_column_is_garbage(store):
    run_id = store.create("custom", "custom", {}, "k")
    good = store.create("custom", "custom", {"method": "kd"}, "k2")
    for col in ("status", "kind", "config_key", "device", "version", "message", "owner"):
        _damage(store.path, f"UPDATE runs SET {col} = CAST(X'c328' AS TEXT) WHERE id=?", run_id)
    _damage(store.path, "UPDATE runs SET created = 'yesterday' WHERE id=?", run_id)
    assert [r.id for r in store.list()] == [good]
    assert [i for i, _ in store.unreadable] == [run_id]
    assert store.reap_stale() == 0  # an unreadable owner is left alone, not a crash


def test_a_damaged_history_fails_one_write_and_leaves_no_transaction_open(store):
    run_id = store.create("custom", "custom", {}, "k", "running")
    _damage(store.path, "UPDATE runs SET history = CAST(X'ff' AS TEXT) WHERE id=?", run_id)
    with pytest.raises(StoreError) as err:
        store.append_epoch(run_id, "teacher", {"epoch": 1})
    assert_one_clean_line(str(err.value)) and "history" in str(err.value)
    other = Store(store.path, busy_timeout=0.2, write_retry=0)
    other.create("custom", "custom", {}, "k2")  # the write lock was released
    store.finish(run_id, "completed", "ok", {"history": {"teacher": [{"epoch": 1}]}})
    assert store.get(run_id).history == {"teacher": [{"epoch": 1}]}  # the result repairs it
    other.close()


# ----------------------------------------------------------------------------- held locks


def _hold_lock(path, seconds: float, held: threading.Event) -> None:
    """Another process's writer: hold the database's write lock for ``seconds``."""
    con = sqlite3.connect(str(path), isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    held.set()
    time.sleep(seconds)
    con.execute("COMMIT")
    con.close()


def _holding(path, seconds: float) -> threading.Thread:
    held = threading.Event()
    thread = threading.Thread(target=_hold_lock, args=(path, seconds, held))
    thread.start()
    assert held.wait(5)
    return thread


def test_writes_outlast_a_lock_held_longer_than_the_busy_timeout(tmp_path):
    store = Store(tmp_path / "runs.sqlite", busy_timeout=0.05, write_retry=10)
    run_id = store.create("custom", "custom", {"method": "kd"}, "k", "running")
    holder = _holding(store.path, 1.0)
    start = time.monotonic()
    assert store.set_progress(run_id, 0.5, {"model": "teacher"}) is False  # skipped, not stuck
    assert store.get(run_id).status == "running"  # readers are not blocked (WAL)
    store.append_epoch(run_id, "teacher", {"epoch": 1})
    store.finish(run_id, "completed", "done", {"models": {"teacher": {"test_errors": 70}}})
    assert time.monotonic() - start >= 0.8  # it did wait for the lock
    holder.join()
    run = store.get(run_id)
    assert run.status == "completed" and run.models["teacher"]["test_errors"] == 70
    assert run.history == {"teacher": [{"epoch": 1}]}
    store.close()


def test_a_result_the_store_cannot_take_is_kept_and_recovered(tmp_path):
    store = Store(tmp_path / "runs.sqlite", busy_timeout=0.05, write_retry=0.3)
    run_id = store.create("custom", "custom", {"method": "kd"}, "k", "running")
    result = {"models": {"student": {"test_errors": 99}}, "history": {"student": [{"epoch": 1}]}}
    holder = _holding(store.path, 1.0)
    with pytest.raises(StoreError) as err:
        store.finish(run_id, "completed", "done", result)
    assert_one_clean_line(str(err.value))
    assert f"run #{run_id}" in str(err.value) and "unsaved-result.json" in str(err.value)
    assert store.get(run_id).status == "running"
    holder.join()
    assert store.recover_unsaved() == 1
    run = store.get(run_id)
    assert (run.status, run.message, run.result) == ("completed", "done", result)
    assert run.history == {"student": [{"epoch": 1}]}
    assert store.recover_unsaved() == 0 and not list(store.weights_root.rglob("*.json"))
    store.close()


# ----------------------------------------------------------------------------- claim


def test_claim_returns_one_run_per_configuration(store):
    first, new = store.claim("custom", "custom", {"method": "kd"}, "key", device="cpu")
    assert new and store.get(first).status == "queued" and store.get(first).device == "cpu"
    assert store.claim("custom", "custom", {"method": "kd"}, "key") == (first, False)
    store.start(first, "cpu")
    assert store.claim("custom", "custom", {"method": "kd"}, "key") == (first, False)
    other, new = store.claim("custom", "custom", {"method": "kd"}, "other-key", status="running")
    assert new and other != first and store.get(other).started is not None

    store.finish(first, "completed", "", {"models": {}})
    again, new = store.claim("custom", "custom", {"method": "kd"}, "key")
    assert new and again not in (first, other)  # a completed run is reused only when asked
    store.finish(again, "cancelled")
    assert store.claim("custom", "custom", {}, "key", reuse=True) == (first, False)


def test_claim_replaces_a_run_whose_process_died(store):
    dead, _ = store.claim("custom", "custom", {}, "key")
    host = store.get(dead).owner.rpartition(":")[0]
    store._exec("UPDATE runs SET owner=? WHERE id=?", (f"{host}:999999999", dead))
    fresh, new = store.claim("custom", "custom", {}, "key")
    assert new and fresh != dead
    assert store.get(dead).status == "failed" and "interrupted" in store.get(dead).message

    remote, _ = store.claim("custom", "custom", {}, "remote-key")
    store._exec("UPDATE runs SET owner='another-host:1' WHERE id=?", (remote,))
    assert store.claim("custom", "custom", {}, "remote-key") == (remote, False)  # cannot tell


def test_claim_skips_a_damaged_completed_run(store):
    good = _finished_run(store, "a")
    bad = _finished_run(store, "a")
    _damage(store.path, "UPDATE runs SET result = '{' WHERE id=?", bad)
    assert store.claim("preset", "a", {}, "key-a", reuse=True) == (good, False)
    with pytest.raises(ValueError, match="queued or running"):
        store.claim("preset", "a", {}, "key-a", status="completed")
