"""The run store across processes: two app or CLI processes asking for one configuration get
one run (``Store.claim`` checks and inserts inside one ``BEGIN IMMEDIATE`` transaction).

The processes are plain interpreters (subprocess), not multiprocessing children: spawned
children re-run the parent's ``__main__``, which under pytest may be another test's script."""

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kdcore.store import Store

PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent

# Every process claims at the same wall-clock moment, then stays alive (an owner whose process
# is gone would not count) until all have claimed.
CHILD = """
import json, sys, time
from kdcore.store import Store
path, start, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
store = Store(path)
time.sleep(max(0.0, start - time.time()))
print(json.dumps(store.claim("custom", "custom", {"method": "kd"}, "same-key", device="cpu")))
sys.stdout.flush()
time.sleep(max(0.0, hold - time.time()))
store.close()
"""


def test_processes_claiming_one_configuration_get_one_run(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()  # create the schema once, so the race is on the claim alone
    start = time.time() + 8.0  # time for every interpreter to import kdcore first
    hold = start + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(start), str(hold)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    got = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        got.append(tuple(json.loads(out.strip().splitlines()[-1])))
    assert len({run_id for run_id, _ in got}) == 1
    assert sorted(new for _, new in got) == [False] * (PROCESSES - 1) + [True]
    with sqlite3.connect(str(path)) as raw:
        assert raw.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
