"""How much of a shipped run's result is its seed: the whole preset (hinton-mnist's teacher, hard
student and distilled student; another preset's models) at several seeds, one row per seed, then
the spread.

    python scripts/paper_seeds.py --seeds 0 1 2 3 --threads 1
    python scripts/paper_seeds.py --seeds 0 --epochs 1 --teacher-epochs 1     # a quick check
    python scripts/paper_seeds.py --preset rkd-mnist --seeds 0 1 2 3 4 --threads 2 \
        --out assets/reference_runs/rkd-mnist.seeds.jsonl
    python scripts/paper_seeds.py --preset speculative-draft --seeds 0 1 2 3 4 --threads 2

Each seed runs as ``python -m kdcore run PRESET --profile P --seed S`` would (the same
run_preset; P is the profile the preset's run ships at, paper for hinton-mnist), so the seed sets
every model's initialisation, shuffling and dropout (and the documents of the language
presets, held-out ones included). Each row keeps every model's test errors and the preset's own
measures (``Preset.seed_measures``: the KL from the truth for the language presets, the
acceptance rate for the speculative one), and a sweep's row each student's whole curve; the
table printed is the headline measure.
Teachers come from the cache ($KD_CACHE_DIR) when one with the same settings was trained
before; two copies of this script with different seeds can share it. ``--out`` appends each
row as a JSON line; the app shows ``assets/reference_runs/<preset>.seeds.jsonl`` beside the
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
from kdcore.reference import code_version, row_values, seed_row, shipped_profile
from kdcore.runner import run_preset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="hinton-mnist", choices=sorted(PRESETS))
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
    preset = PRESETS[args.preset]
    profile = shipped_profile(preset)
    measure = preset.seed_measures[0]  # the headline: test errors, or bits per character...
    paper = measure.paper_values(preset.paper)
    models: list[str] = []
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        res = run_preset(preset.name, device=args.device, profile=profile, seed=seed, **changes)
        if res["status"] != "completed":
            print(f"{seed} | {res['status']}: {res['message']}", file=sys.stderr)
            return 1
        row = seed_row(res, profile, time.perf_counter() - t0)  # its device names the threads
        if not models:  # the header, once the first run has named its models
            models = list(row_values(row, measure))
            print(f"{measure.label}\nseed | " + " | ".join(models) + " | seconds (teacher cached?)")
            print(f"paper | {' | '.join(str(paper.get(m, '')) for m in models)} |")
        rows.append(row)
        cached = " (teacher cached)" if row["teacher_cached"] else ""
        values = " | ".join(str(row_values(row, measure)[m]) for m in models)
        print(f"{seed} | {values} | {row['seconds']}{cached}", flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    d = measure.digits
    for m in models:
        vals = [row_values(r, measure)[m] for r in rows]
        spread = f" ± {statistics.stdev(vals):.{d}f}" if len(vals) > 1 else ""
        print(f"{m}: mean {statistics.mean(vals):.{d}f}{spread}, {min(vals)}-{max(vals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
