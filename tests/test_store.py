"""The run store: round trip, persistence across a restart, concurrent writers, export, delete,
safetensors weights and their failure modes."""

import csv
import io
import json
import threading

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
            "teacher": {"test_errors": errors[0], "test_accuracy": 1 - errors[0] / 1e4},
            "student_kd": {"test_errors": errors[1], "test_accuracy": 1 - errors[1] / 1e4},
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
    assert [r.id for r in store.list(method="kd")] == [b, a]  # from the student_kd model
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

    assert store.delete([a, c]) == 2
    assert [r.id for r in store.list()] == [b]
    assert store.get(a) is None and store.delete([]) == 0


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
