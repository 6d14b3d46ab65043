"""The whole hinton-mnist paper profile (teacher, hard student, distilled student) timed end to
end on one device, each model's seconds and test errors beside the paper's errors.

The issue's aim on a GPU is the three models in under 60 s on an H100. The run goes through the
same run_preset as the CLI and the lab, with the teacher cache off so the teacher trains here.
On a GPU it runs twice, side by side: with eager steps, and with each full-size step replayed
as a CUDA graph (kdcore.cudagraph; ``--graphs on|off`` runs one). ``--epochs``/
``--teacher-epochs`` shorten it for a quick check of the script itself.

    python bench/bench_paper.py [--device cpu|cuda] [--threads N] [--graphs both|on|off]
                                [--epochs N --teacher-epochs N]

Measured on the 2-core CPU (2026-12-04, 2 torch threads): see the README's paper-profile table
(the reference run made by scripts/make_reference_runs.py is this same run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.presets import PRESETS
from kdcore.runner import Monitor, run_preset
from kdcore.train import pick_device

AIM_S = 60.0  # the aim for the three models on an H100


class Clock(Monitor):
    """Wall time from each model's start to its end (data loading and caching included)."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def on_model_start(self, name: str, index: int, count: int) -> None:
        self.start[name] = time.perf_counter()

    def on_model_end(self, name: str, summary: dict) -> None:
        self.wall[name] = time.perf_counter() - self.start[name]


def run(dev: torch.device, graphs: bool, changes: dict) -> tuple[dict, Clock, float]:
    clock = Clock()
    t0 = time.perf_counter()
    result = run_preset("hinton-mnist", device=str(dev), monitor=clock, profile="paper",
                        use_cache=False, cuda_graphs=graphs, **changes)  # fmt: skip
    return result, clock, time.perf_counter() - t0


def report(result: dict, clock: Clock, total: float, label: str) -> None:
    cfg = result["config"]
    paper = PRESETS["hinton-mnist"].paper["test_errors"]
    print(f"-- {label}")
    head = ("model", "epochs", "wall s", "s/epoch", "errors", "paper")
    print(f"{head[0]:14s} " + " ".join(f"{h:>8s}" for h in head[1:]))
    for model, summary in result["models"].items():
        epochs = len(result["history"][model])
        wall = clock.wall.get(model, summary["seconds"])
        print(f"{model:14s} {epochs:8d} {wall:8.1f} {wall / max(epochs, 1):8.2f} "
              f"{summary['test_errors']:8d} {paper.get(model, ''):>8}")  # fmt: skip
    note = f" ({result['message']})" if result["message"] else ""
    print(f"total {total:.1f} s (teacher {cfg['teacher_epochs']} epochs, students "
          f"{cfg['epochs']}); the aim on an H100: under {AIM_S:.0f} s "
          f"({total / AIM_S:.2f}x of it){note}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own)")
    ap.add_argument("--epochs", type=int, help="the students' epochs (default: the profile's)")
    ap.add_argument("--teacher-epochs", type=int, help="the teacher's (default: the profile's)")
    ap.add_argument(
        "--graphs", choices=("both", "on", "off"), default="both",
        help="on a GPU: eager steps, steps replayed as CUDA graphs, or both side by side",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.teacher_epochs is not None:
        changes["teacher_epochs"] = args.teacher_epochs
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.graphs]
    if dev.type != "cuda":
        modes = (False,)  # graphs are a GPU feature; the flag is ignored on the CPU
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"hinton-mnist, paper profile, on {name} ({torch.get_num_threads()} torch threads)")
    totals = {}
    for graphs in modes:
        result, clock, total = run(dev, graphs, changes)
        if result["status"] != "completed":
            print(f"error: {result['status']}: {result['message']}", file=sys.stderr)
            return 1
        label = "CUDA graphs" if graphs else "eager steps"
        report(result, clock, total, label)
        totals[label] = total
    if len(totals) == 2:
        eager, graphed = totals["eager steps"], totals["CUDA graphs"]
        print(f"CUDA graphs / eager: {graphed:.1f} s / {eager:.1f} s = {graphed / eager:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
