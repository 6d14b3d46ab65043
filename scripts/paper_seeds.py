"""How much of the hinton-mnist paper profile's result is its seed: the whole preset (teacher, hard
student, distilled student) at several seeds, one row per seed, then the spread.

    python scripts/paper_seeds.py --seeds 0 1 2 3 --threads 1
    python scripts/paper_seeds.py --seeds 0 --epochs 1 --teacher-epochs 1     # a quick check

Each seed runs as ``python -m kdcore run hinton-mnist --profile paper --seed S`` would (the same
run_preset), so the seed sets the teacher's and both students' initialisation, shuffling and
dropout. Teachers come from the cache ($KD_CACHE_DIR) when one with the same settings was trained
before; two copies of this script with different seeds can share it. ``--out`` appends each row
as a JSON line; the app shows ``assets/reference_runs/hinton-mnist.seeds.jsonl`` beside the
shipped reference run (kdcore.reference.load_seed_study).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.presets import PRESETS
from kdcore.reference import code_version, seed_row
from kdcore.runner import run_preset

PRESET = "hinton-mnist"
MODELS = ("teacher", "student_hard", "student_kd")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own)")
    ap.add_argument("--epochs", type=int, help="the students' epochs (quick checks)")
    ap.add_argument("--teacher-epochs", type=int, help="the teacher's epochs (quick checks)")
    ap.add_argument("--out", help="append each seed's row to this file as a JSON line")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    code_version()  # the code this process imported, before anything trains
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.teacher_epochs is not None:
        changes["teacher_epochs"] = args.teacher_epochs
    paper = PRESETS[PRESET].paper["test_errors"]
    print("seed | " + " | ".join(MODELS) + " | seconds (teacher cached?)")
    print(f"paper | {' | '.join(str(paper[m]) for m in MODELS)} |")
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        res = run_preset(PRESET, device=args.device, profile="paper", seed=seed, **changes)
        if res["status"] != "completed":
            print(f"{seed} | {res['status']}: {res['message']}", file=sys.stderr)
            return 1
        row = seed_row(res, "paper", time.perf_counter() - t0)  # its device names the threads
        rows.append(row)
        cached = " (teacher cached)" if row["teacher_cached"] else ""
        errors = " | ".join(str(row["errors"][m]) for m in MODELS)
        print(f"{seed} | {errors} | {row['seconds']}{cached}", flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    for m in MODELS:
        vals = [r["errors"][m] for r in rows]
        spread = f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
        print(f"{m}: mean {statistics.mean(vals):.1f}{spread}, {min(vals)}-{max(vals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
