"""Two independent models, Hinton's teacher and the 800-800 student on hard labels, trained one
after the other and at the same time (one thread each), side by side in one run on this machine.

The question the issue asks: does training independent models at once pay? On a CPU the two
threads share the cores (each gets ``threads // 2`` torch threads, against all of them for one
model at a time); on a GPU each thread launches on its own CUDA stream, so the small kernels of
one model can run while the other's are launched. ``--graphs`` replays each step as a CUDA graph
(kdcore.cudagraph) in both arrangements.

The models draw their dropout masks from the one global generator, so two at once do not
reproduce the masks of two in turn: the errors are printed to show both learn, not to compare.

    python bench/bench_concurrent.py [--device cpu|cuda] [--epochs 2] [--graphs]

Measured on the 2-core CPU (2026-12-04, 2 epochs each, full MNIST): see the README's speed
section.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdcore.data import load_mnist
from kdcore.models import build_model
from kdcore.presets import HintonMnistConfig, teacher_config
from kdcore.train import DEFAULT_THREADS, TrainConfig, fit, pick_device


def jobs(epochs: int) -> list[tuple[str, str, TrainConfig]]:
    """(name, architecture, config) of the paper profile's two independent models."""
    cfg = HintonMnistConfig()
    teacher = teacher_config(epochs, 128, cfg.lr, 0, shift=2, max_norm=3.5)
    student = TrainConfig(epochs=epochs, batch_size=128, lr=cfg.lr, grad_clip=cfg.grad_clip)
    return [("teacher", cfg.teacher, teacher), ("student_hard", cfg.student, student)]


def train(name, arch, cfg, data, dev, threads, graphs, out) -> None:
    torch.set_num_threads(threads)  # this thread's own setting
    stream = torch.cuda.Stream() if dev.type == "cuda" else None
    torch.manual_seed(0)
    model = build_model(arch).to(dev)
    t0 = time.perf_counter()
    if stream is not None:
        with torch.cuda.stream(stream):
            res = fit(model, data, cfg, graphs=graphs)
        stream.synchronize()
    else:
        res = fit(model, data, cfg, graphs=graphs)
    out[name] = (time.perf_counter() - t0, res.history[-1].test_errors, res.message)


def arrangement(data, dev, epochs: int, graphs: bool, together: bool) -> tuple[float, dict]:
    out: dict = {}
    threads = max(DEFAULT_THREADS // 2, 1) if together else DEFAULT_THREADS
    t0 = time.perf_counter()
    if together:
        workers = [
            threading.Thread(target=train, args=(*job, data, dev, threads, graphs, out))
            for job in jobs(epochs)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    else:
        for job in jobs(epochs):
            train(*job, data, dev, threads, graphs, out)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each model")
    ap.add_argument("--graphs", action="store_true", help="replay steps as CUDA graphs (GPU)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each arrangement")
    args = ap.parse_args(argv)
    dev = pick_device(args.device)
    data = load_mnist(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    graphs = args.graphs and dev.type == "cuda"
    print(f"teacher + hard student, {args.epochs} epochs each, on {name} "
          f"({DEFAULT_THREADS} torch threads{', CUDA graphs' if graphs else ''})")  # fmt: skip
    walls: dict[str, list[float]] = {"in turn": [], "at once": []}
    for _ in range(args.repeats):  # alternating, so a noisy neighbour hits both
        for label, together in (("in turn", False), ("at once", True)):
            wall, out = arrangement(data, dev, args.epochs, graphs, together)
            walls[label].append(wall)
            models = ", ".join(f"{k} {v[0]:.1f} s ({v[1]} errors)" for k, v in sorted(out.items()))
            print(f"{label:8s} {wall:6.1f} s   {models}")
    best = {k: min(v) for k, v in walls.items()}
    ratio = best["at once"] / best["in turn"]
    print(f"best of {args.repeats}: at once {best['at once']:.1f} s / in turn "
          f"{best['in turn']:.1f} s = {ratio:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
