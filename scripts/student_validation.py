"""The distilled student's settings in the hinton-mnist paper profile, checked on a validation
split rather than on the test set: each variant's student trains on the first 50,000 training
images with a paper-profile teacher's logits and is scored on the last 10,000 (which no student
sees; the teachers trained on all 60,000), the test errors printed beside.

    python scripts/student_validation.py --variants profile lr0.02 alpha1 lr0.08 --threads 1
    python scripts/student_validation.py --teachers a.safetensors b.safetensors --epochs 1
    python scripts/student_validation.py --ensemble --held-out 0 --threads 1
    python scripts/student_validation.py --held-out 0 --teachers t.safetensors --student-seeds 1 2 3

The teachers default to every paper-profile teacher in the teacher cache ($KD_CACHE_DIR): those
scripts/paper_seeds.py trained, one per seed. Each student starts from its teacher's seed, as in
the preset. A variant changes the profile's student settings and nothing else; "profile" is the
profile as it ships. ``--held-out 0`` trains on all 60,000 images as the profile does (test
errors only). ``--ensemble`` distils each student from the mean logits of all the teachers
instead of its own teacher's: how much of the distilled student's errors, and of their spread
across seeds, comes from the one teacher it learns from. ``--student-seeds`` trains each
teacher's students at the seeds given instead: how much of that spread the student's own seed
makes. ``--out`` appends one JSON line per student.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.checkpoint import CheckpointError, cache_dir, load_model, read_metadata
from kdcore.data import load_dataset
from kdcore.distill import distill
from kdcore.models import build_model
from kdcore.presets import PAPER_PROFILE, teacher_config
from kdcore.runner import resolve
from kdcore.train import TrainConfig, accuracy_report, evaluate, predict_logits, seed_everything

PRESET = "hinton-mnist"
HELD_OUT = 10_000
# name: (changes to the student's TrainConfig, changes to the kd parameters)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "profile": ({}, {}),
    "lr0.02": ({"lr": 0.02}, {}),
    "lr0.08": ({"lr": 0.08}, {}),
    "alpha1": ({}, {"alpha": 1.0}),
    "batch256": ({"batch_size": 256}, {}),
    "epochs40": ({"epochs": 40}, {}),
}


def paper_teachers() -> list[Path]:
    """The cached teachers trained with the paper profile's settings, at any seed."""
    cfg = resolve(PRESET, profile="paper")
    want = asdict(teacher_config(cfg.teacher_epochs, cfg.batch_size, cfg.lr, 0,
                                 cfg.teacher_shift, cfg.teacher_max_norm))  # fmt: skip
    found = []
    for path in sorted((cache_dir() / "teachers").glob(f"{PAPER_PROFILE['teacher']}-mnist-*")):
        try:  # the header only: no teacher is loaded to be looked at
            meta = json.loads(read_metadata(path).get("meta", "{}")).get("config", {})
        except (CheckpointError, ValueError, AttributeError):
            continue
        got = dict(meta.get("cfg", {}), seed=0)
        if meta.get("n") == 60_000 and got == want:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["profile"], choices=sorted(VARIANTS))
    ap.add_argument("--teachers", nargs="*", help="teacher safetensors (default: the cache's)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own)")
    ap.add_argument("--epochs", type=int, help="the students' epochs (quick checks)")
    ap.add_argument("--held-out", type=int, default=HELD_OUT,
                    help="training images held out for validation (0: train on all)")  # fmt: skip
    ap.add_argument("--ensemble", action="store_true",
                    help="distil from the mean logits of all the teachers")  # fmt: skip
    ap.add_argument("--student-seeds", nargs="+", type=int,
                    help="each teacher's students' seeds (default: the teacher's)")  # fmt: skip
    ap.add_argument("--out", help="append each student's row to this file as a JSON line")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    teachers = [Path(t) for t in args.teachers] if args.teachers else paper_teachers()
    if not teachers:
        print("no paper-profile teacher in the cache: run scripts/paper_seeds.py first")
        return 1
    cfg = resolve(PRESET, profile="paper")
    full = load_dataset(cfg.dataset, "cpu")
    if not 0 <= args.held_out < len(full.x_train):
        print(f"--held-out must be from 0 to {len(full.x_train) - 1}")
        return 2
    n = len(full.x_train) - args.held_out
    split = full  # the students' data: their transfer set, and the held-out images as "test"
    if args.held_out:
        split = replace(full, x_train=full.x_train[:n], y_train=full.y_train[:n],
                        x_test=full.x_train[n:], y_test=full.y_train[n:])  # fmt: skip
    source = f"ensemble of {len(teachers)}" if args.ensemble else "own"
    print("variant | teacher | teacher seed | seed | teacher test errors | validation errors | "
          "test errors | seconds")  # fmt: skip
    rows = []
    try:
        loaded = [load_model(path, expect_arch=cfg.teacher) for path in teachers]
    except CheckpointError as err:
        print(f"cannot use that teacher: {err}")
        return 1
    sources = []  # (student seed, teacher, its logits on the transfer set, its test errors)
    for teacher, meta in loaded:
        seed = int(meta["config"]["cfg"]["seed"])
        t_test = evaluate(teacher, full)["test_errors"]
        sources.append((seed, teacher, predict_logits(teacher, split.x_train), t_test))
    if args.ensemble:  # every student learns from the mean logits, at each teacher's seed
        mean_train = torch.stack([logits for _, _, logits, _ in sources]).mean(0)
        mean_test = torch.stack([predict_logits(t, full.x_test) for t, _ in loaded]).mean(0)
        t_test = accuracy_report(mean_test, full.y_test, full.num_classes)["test_errors"]
        sources = [(seed, teacher, mean_train, t_test) for seed, teacher, _, _ in sources]
    runs = [(seed, student_seed, teacher, logits, t_test)
            for seed, teacher, logits, t_test in sources
            for student_seed in (args.student_seeds or [seed])]  # fmt: skip
    for teacher_seed, seed, teacher, logits, t_test in runs:
        for name in args.variants:
            train_changes, kd_changes = VARIANTS[name]
            base = TrainConfig(epochs=args.epochs or cfg.epochs, batch_size=cfg.batch_size,
                               lr=cfg.lr, seed=seed, grad_clip=cfg.grad_clip)  # fmt: skip
            tcfg = replace(base, **train_changes)
            kd = {"T": cfg.T, "alpha": cfg.alpha, **kd_changes}
            seed_everything(tcfg.seed + 1)  # as train_student seeds every student of a run
            student = build_model(cfg.student, full.num_classes, full.image_shape)
            t0 = time.perf_counter()
            targets = {"logits": logits}
            res = distill(student, teacher, split, tcfg, "kd", kd, teacher_targets=targets)
            if not res.ok:
                print(f"{name} | {source} | {teacher_seed} | {seed} | {res.message}")
                continue
            row = {
                "variant": name, "teacher": source, "teacher_seed": teacher_seed, "seed": seed,
                "teacher_test_errors": t_test,
                "validation_errors": evaluate(student, split)["test_errors"] if args.held_out
                else None,
                "test_errors": evaluate(student, full)["test_errors"],
                "seconds": round(time.perf_counter() - t0, 1),
            }  # fmt: skip
            rows.append(row)
            print(" | ".join(str(v) for v in row.values()), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    for name in args.variants:
        mine = [r for r in rows if r["variant"] == name]
        if mine:
            test = statistics.mean(r["test_errors"] for r in mine)
            val = ""
            if args.held_out:
                val = f", validation {statistics.mean(r['validation_errors'] for r in mine):.1f}"
            many = f"{len(mine)} student" + ("s" if len(mine) != 1 else "")
            print(f"{name} ({source} teacher): {many}{val}, test {test:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
