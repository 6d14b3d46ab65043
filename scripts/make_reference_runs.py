"""Regenerate the shipped reference runs in assets/reference_runs/ (see kdcore/reference.py).

    python scripts/make_reference_runs.py          # the paper profile of Hinton's demos
    python scripts/make_reference_runs.py hinton-mnist --device cuda
    python scripts/make_reference_runs.py hinton-mnist --epochs 1 --out /tmp/refs   # a quick check
    python scripts/make_reference_runs.py --page-runs --device cpu   # every other preset

Each preset runs as ``python -m kdcore run NAME --profile paper`` would (the same run_preset),
without the run store; its result, the exact command, the code version, the device and the
seconds go to ``<out>/<preset>.json``, and the weights of the models in SHIPPED_WEIGHTS beside it
at half precision (the sweeps' students, 27 of them, ship none: their figures are the point).
hinton-mnist runs first: the demos load its teacher from the cache.

``--page-runs`` makes the runs the concept pages open on: every preset without a paper profile,
at its long profile where it has one (the quick MLP presets) and else at its default recipe
(kdcore.reference.shipped_profile), each with an empty teacher cache, so that its seconds include
its teacher's training as on a fresh machine (and the app's estimates scaled from it do too).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.checkpoint import CACHE_ENV
from kdcore.cli import ProgressBar
from kdcore.presets import PRESETS
from kdcore.reference import (
    SHIPPED_WEIGHTS,
    code_version,
    reference_dir,
    shipped_profile,
    write_reference,
)
from kdcore.runner import run_preset

DEFAULT = ("hinton-mnist", "omitted-3", "only-7-8", "temperature-sweep", "alpha-sweep")
# the presets the concept pages show (none has a paper profile)
PAGE_RUNS = tuple(name for name, p in PRESETS.items() if "paper" not in p.profiles)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="*", help="presets to run, in order (default: Hinton's five)")
    ap.add_argument("--profile", default="paper", help="the presets' profile (default: paper)")
    ap.add_argument("--page-runs", action="store_true", help="every preset without a paper "
                    "profile, at the recipe the app ships for it, each with a fresh teacher "
                    "cache")  # fmt: skip
    ap.add_argument("--fresh-cache", action="store_true", help="each preset with an empty "
                    "teacher cache, so its seconds include its teacher's training")  # fmt: skip
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own)")
    ap.add_argument("--epochs", type=int, help="override every model's epochs (quick checks)")
    ap.add_argument("--out", default=str(reference_dir()), help="folder to write to")
    args = ap.parse_args(argv)
    if args.page_runs:
        args.presets = args.presets or list(PAGE_RUNS)
        args.fresh_cache = True
    args.presets = args.presets or list(DEFAULT)
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        print(f"error: unknown preset(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    code_version()  # the code this process imported, before anything trains
    out = Path(args.out)
    for name in args.presets:
        profile = shipped_profile(PRESETS[name]) if args.page_runs else args.profile
        changes = {}
        if args.epochs is not None:  # every model's epochs, the demos' teacher included
            changes = {k: args.epochs for k in ("epochs", "teacher_epochs")
                       if hasattr(PRESETS[name].config, k)}  # fmt: skip
        cmd = ["python", "scripts/make_reference_runs.py", name, "--profile", profile,
               "--device", args.device]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.epochs is not None:
            cmd += ["--epochs", str(args.epochs)]
        cache = None
        if args.fresh_cache:
            cmd += ["--fresh-cache"]
            cache = tempfile.TemporaryDirectory(prefix=f"kd-cache-{name}-")
            os.environ[CACHE_ENV] = cache.name
        print(f"== {shlex.join(cmd)}", file=sys.stderr)
        trained: dict = {}
        result = run_preset(
            name, device=args.device, monitor=ProgressBar(), profile=profile,
            trained=trained, **changes,
        )  # fmt: skip
        if cache is not None:
            cache.cleanup()
        if result["status"] != "completed":
            print(f"error: {name} {result['status']}: {result['message']}", file=sys.stderr)
            return 1
        path = write_reference(
            result, trained, out, profile, shlex.join(cmd), SHIPPED_WEIGHTS.get(name, ())
        )
        errors = {m: s["test_errors"] for m, s in result["models"].items()}
        print(f"wrote {path} in {result['seconds']:.0f} s: {errors}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
