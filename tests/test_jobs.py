"""The job queue and the shared executor, with real (tiny) training runs.

Tiny means 20 images per class and one or two epochs of MLPs: each run takes about a second.
"""

import json
import time

import pytest
import torch

from kdcore import cli
from kdcore.jobs import JobQueue, QueueFull, RunSpec
from kdcore.lab import CustomConfig
from kdcore.store import Store

TINY = CustomConfig(teacher="mlp-100", student="mlp-30", epochs=1, teacher_epochs=1, per_class=20)
RESULT_KEYS = {"preset", "status", "message", "config", "device", "history", "models", "paper"}


@pytest.fixture
def queue(tmp_path):
    q = JobQueue(Store(tmp_path / "runs.sqlite"))
    yield q
    q.shutdown()
    q.store.close()


def _until(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_tiny_run_completes_with_history_weights_and_result(queue):
    run_id = queue.submit(RunSpec.custom(TINY, device="cpu"))
    run = queue.wait(run_id, timeout=120)
    assert run.status == "completed", run.message
    assert list(run.history) == ["teacher", "student_hard", "student_kd"]
    assert all(len(h) == 1 for h in run.history.values())
    assert set(run.result) >= RESULT_KEYS and run.result["preset"] == "custom"
    assert run.models["student_kd"]["test_errors"] + run.models["student_kd"]["params"] > 0
    assert run.progress == 1.0 and run.device == "cpu" and run.started <= run.finished
    assert sorted(run.weights) == ["student_hard", "student_kd", "teacher"]
    model, meta = queue.store.load_weights(run_id, "student_kd")
    assert (
        meta["config"]["student"] == "mlp-30"
        and model.num_params() == (run.models["student_kd"]["params"])
    )


def test_identical_config_is_served_from_the_store(queue):
    spec = RunSpec.custom(TINY, device="cpu", baseline=False, seed=3)
    first = queue.submit(spec)
    assert queue.submit(spec) == first  # still queued or running: joins it
    assert queue.wait(first, timeout=120).status == "completed"
    again = RunSpec.custom(CustomConfig(**{**TINY.__dict__, "baseline": False}), "cpu", seed=3)
    assert queue.submit(again) == first  # finished: the stored run, at once
    assert queue.place(first) is None and len(queue.store.list()) == 1
    other = queue.submit(RunSpec.custom(TINY, device="cpu", baseline=False, seed=4))
    assert other != first
    queue.wait(other, timeout=120)


def test_cancel_keeps_partial_history(queue):
    spec = RunSpec.custom(TINY, device="cpu", method="hard", epochs=500)
    run_id = queue.submit(spec)
    _until(lambda: queue.store.get(run_id).history.get("student_hard"))
    assert queue.cancel(run_id)
    run = queue.wait(run_id, timeout=60)
    assert run.status == "cancelled" and "cancelled during epoch" in run.message
    assert 1 <= len(run.history["student_hard"]) < 500
    assert run.result["status"] == "cancelled"
    assert not queue.cancel(run_id)  # no longer held


def test_diverging_run_fails_with_one_line(queue):
    run_id = queue.submit(
        RunSpec.custom(TINY, device="cpu", method="hard", lr=1000.0, epochs=3, grad_clip=0.0)
    )
    run = queue.wait(run_id, timeout=60)
    assert run.status == "failed"
    assert "diverged" in run.message and "\n" not in run.message


def test_missing_data_fails_with_one_line(tmp_path):
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(b"garbage")  # MNIST folder, incomplete
    q = JobQueue(Store(tmp_path / "runs.sqlite"), data_dir=str(bad))
    try:
        run = q.wait(q.submit(RunSpec.custom(TINY, device="cpu")), timeout=60)
    finally:
        q.shutdown()
    assert run.status == "failed" and "no data in" in run.message and "\n" not in run.message
    assert q.store.list(status="failed")[0].id == run.id


def test_queue_order_place_cancel_and_bound(tmp_path):
    q = JobQueue(Store(tmp_path / "runs.sqlite"), max_pending=2)
    try:
        long = q.submit(RunSpec.custom(TINY, device="cpu", method="hard", epochs=500))
        _until(lambda: q.place(long) == 0)
        b = q.submit(RunSpec.custom(TINY, device="cpu", method="hard", seed=1))
        c = q.submit(RunSpec.custom(TINY, device="cpu", method="hard", seed=2))
        assert (q.place(b), q.place(c)) == (1, 2)
        assert q.active() == [long, b, c]
        assert q.store.get(c).status == "queued"
        with pytest.raises(QueueFull, match="queue is full"):
            q.submit(RunSpec.custom(TINY, device="cpu", method="hard", seed=9))
        assert q.cancel(c)
        assert q.store.get(c).status == "cancelled" and q.place(c) is None
        q.cancel(long)
        assert q.wait(b, timeout=60).status == "completed"  # the next in line ran
        assert q.store.get(long).status == "cancelled"
    finally:
        q.shutdown()


def test_preset_spec_runs_through_the_same_path(queue):
    # A preset trains on all 60,000 images, too slow for a unit test: start it, cancel it as
    # soon as it trains, and check the preset-shaped result that the store keeps.
    spec = RunSpec.preset("hinton-mnist", epochs=1, teacher="mlp-100", student="mlp-30")
    assert spec.config.T == 20.0 and spec.config.epochs == 1
    run_id = queue.submit(spec)
    _until(lambda: queue.store.get(run_id).live.get("model") == "teacher")
    queue.cancel(run_id)
    run = queue.wait(run_id, timeout=60)
    assert run.status == "cancelled" and run.kind == "preset" and run.name == "hinton-mnist"
    assert run.message.startswith("teacher: cancelled")
    assert set(run.result) >= RESULT_KEYS and run.result["config"]["student"] == "mlp-30"
    assert run.result["paper"]["test_errors"]["student_kd"] == 74
    with pytest.raises(ValueError, match="no setting"):
        RunSpec.preset("hinton-mnist", colour="red")
    with pytest.raises(ValueError, match="unknown preset"):
        RunSpec.preset("nope")


def test_cli_runs_land_in_the_store(tmp_path, capsys):
    path = str(tmp_path / "cli.sqlite")
    args = ["run", "custom", "--epochs", "1", "--device", "cpu", "--store", path]
    sets = ["--set", "per_class=20", "--set", "teacher=mlp-100", "--set", "baseline=false"]
    sets += ["--set", "teacher_epochs=1"]
    assert cli.main(args + sets) == 0
    assert "student_kd" in capsys.readouterr().out
    assert cli.main(args + sets + ["--reuse"]) == 0
    assert "identical run #1" in capsys.readouterr().out
    assert cli.main(["runs", "--store", path, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"], r["kind"]) for r in runs] == [(1, "completed", "custom")]
    assert cli.main(["runs", "--store", path, "--status", "failed"]) == 0
    assert "no runs in" in capsys.readouterr().out
    assert cli.main(["runs", "--store", path]) == 0
    assert "custom kd mlp-30" in capsys.readouterr().out
    diverge = ["--set", "lr=1000", "--set", "method=hard", "--set", "grad_clip=0", "--epochs", "3"]
    assert cli.main([*args, *sets, *diverge]) == 1
    assert "diverged" in capsys.readouterr().out
    assert cli.main(["runs", "--store", path, "--status", "failed"]) == 0
    assert "diverged" in capsys.readouterr().out


def test_preset_runs_keep_the_weights_of_every_model(tmp_path):
    """A sweep's models ("mlp-30 T=4", ...) are saved under safe file names and load back."""
    from kdcore.jobs import execute
    from tests.tiny_mnist import TINY_OVERRIDES, write_tiny_mnist

    folder = str(write_tiny_mnist(tmp_path / "mnist", n_train=600, n_test=200))
    store = Store(tmp_path / "w.sqlite")
    spec = RunSpec.preset("temperature-sweep", device="cpu", **TINY_OVERRIDES["temperature-sweep"])
    run_id, result = execute(store, spec, data_dir=folder)
    assert result is not None and result["status"] == "completed"
    run = store.get(run_id)
    assert "weights not saved" not in run.message
    assert len(run.weights) == len(result["models"]) >= 5
    assert "mlp-30_T_4" in run.weights
    model, meta = store.load_weights(run_id, "mlp-30_T_4")
    assert meta["model"] == "mlp-30_T_4" and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_peers_trained_in_one_step_are_filed_under_their_own_names_while_training(tmp_path):
    """Mutual learning trains two peers in one fit: the live history the pages read while the
    run is under way is keyed by peer, as the final result is."""
    from kdcore.data import load_mnist, per_class
    from kdcore.jobs import StoreMonitor
    from kdcore.losses.modes import mutual_step
    from kdcore.models import build_model
    from kdcore.train import TrainConfig, fit

    data = load_mnist()
    data = data.with_train(*per_class(data.x_train, data.y_train, 10, 0))
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create("preset", "mutual-learning", {}, "k", status="running")
    monitor = StoreMonitor(store, run_id)
    monitor.on_model_start("mutual", 0, 1)
    peers = {"peer_1": build_model("mlp-30"), "peer_2": build_model("mlp-30")}
    fit(peers, data, TrainConfig(epochs=2, batch_size=50), mutual_step(), callbacks=[monitor])
    history = store.get(run_id).history
    assert sorted(history) == ["peer_1", "peer_2"]
    assert [r["epoch"] for r in history["peer_1"]] == [1, 2]
    store.close()


def test_training_workers_yield_to_the_pages_and_use_their_own_threads(tmp_path, monkeypatch):
    """A worker thread trains at a lower priority than the server's own threads (Linux) and with
    the queue's torch thread count, whatever the page threads use (app.ui.page_threads)."""
    import os
    import threading

    from kdcore import jobs

    seen = {}

    def record(store, spec, run_id, **kw):
        tid = threading.get_native_id()
        seen["threads"] = torch.get_num_threads()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid) if hasattr(os, "getpriority") else 0
        store.finish(run_id, "completed", "")

    monkeypatch.setattr(jobs, "execute", record)
    q = JobQueue(Store(tmp_path / "runs.sqlite"), threads=1, nice=5)
    before = torch.get_num_threads()
    try:
        q.wait(q.submit(RunSpec.custom(TINY, device="cpu")), timeout=30)
    finally:
        q.shutdown()
        q.store.close()
    assert seen["threads"] == 1
    assert torch.get_num_threads() == before  # the submitting thread keeps its own setting
    if hasattr(os, "setpriority"):
        assert seen["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)


def test_the_eta_waits_for_the_pace_and_counts_the_models_to_come_at_theirs(tmp_path, monkeypatch):
    from kdcore import jobs
    from kdcore.jobs import StoreMonitor
    from kdcore.train import Progress

    clock = [100.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    store = Store(tmp_path / "runs.sqlite")
    mon = StoreMonitor(store, store.create("custom", "custom", {}, "k"))

    def at(done, elapsed, per_epoch=10, total=30):
        return Progress(1 + done // per_epoch, 1, per_epoch, total, done, elapsed)

    mon.on_model_start("teacher", 0, 3)  # a cache load: takes no time, sets no pace
    mon.on_model_end("teacher", {"cached": True})
    mon.on_model_start("student_hard", 1, 3)
    assert mon.eta(at(0, 0.0)) is None and mon.eta(at(9, 9.0)) is None  # not one epoch yet
    # one epoch done, 10 s for 10 steps: 20 s left here, and one more model at this pace (30 s)
    assert mon.eta(at(10, 10.0)) == pytest.approx(20.0 + 30.0)
    clock[0] += 40.0
    mon.on_model_end("student_hard", {})
    mon.on_model_start("student_kd", 2, 3)
    assert mon.eta(at(15, 30.0)) == pytest.approx(30.0)  # the last model: its own pace only
    one_epoch = Progress(1, 3, 12, 12, 3, 3.0)  # a one-epoch model: a quarter of it suffices
    assert mon.eta(one_epoch) == pytest.approx(9.0)


def test_the_eta_of_models_to_come_is_the_mean_of_those_that_trained(tmp_path, monkeypatch):
    from kdcore import jobs
    from kdcore.jobs import StoreMonitor
    from kdcore.train import Progress

    clock = [0.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    store = Store(tmp_path / "runs.sqlite")
    mon = StoreMonitor(store, store.create("custom", "custom", {}, "k"))
    for i, took in enumerate((60.0, 20.0)):  # a slow teacher, then a quick student
        mon.on_model_start(f"m{i}", i, 4)
        clock[0] += took
        mon.on_model_end(f"m{i}", {})
    mon.on_model_start("m2", 2, 4)
    assert mon.eta(Progress(2, 1, 5, 10, 5, 5.0)) == pytest.approx(5.0 + 40.0)  # + one at 40 s
