"""The run store across processes: two app or CLI processes asking for one configuration get
one run (``Store.claim`` checks and inserts inside one ``BEGIN IMMEDIATE`` transaction)."""

import multiprocessing
import sqlite3

from kdcore.store import Store

PROCESSES = 4


def _claim(path: str, barrier, results) -> None:
    store = Store(path)
    barrier.wait()  # all claim at once
    results.put(store.claim("custom", "custom", {"method": "kd"}, "same-key", device="cpu"))
    barrier.wait()  # every owner stays alive until all have claimed
    store.close()


def test_processes_claiming_one_configuration_get_one_run(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()  # create the schema once, so the race is on the claim alone
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_claim, args=(str(path), barrier, results)) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len({run_id for run_id, _ in got}) == 1
    assert sorted(new for _, new in got) == [False] * (PROCESSES - 1) + [True]
    with sqlite3.connect(str(path)) as raw:
        assert raw.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
