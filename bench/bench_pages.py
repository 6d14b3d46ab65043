"""Server-side cost of the concept pages, and the size of the temperature chart.

For each page, after two warm-up runs (MNIST and the demo models loaded, caches filled), times
(a) a plain rerun (what a click elsewhere costs) and (b) a rerun after changing T, which misses
the figure cache and rebuilds the 100-frame chart. Times are AppTest's ``run()``: the script plus
AppTest's own bookkeeping, so an upper bound on what the server spends. Target: under 300 ms.
Then builds the temperature figure directly and prints its JSON size (what goes over the
websocket; target well under 2 MB) and the time to build it.

    .venv/bin/python bench/bench_pages.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app.figures import temperature_figure, temperature_spec  # noqa: E402
from kdcore import analysis  # noqa: E402

# page file -> (the T control, two values to alternate between so every change misses the cache)
PAGES = {
    "overview.py": None,
    "temperature.py": ("number_input", [2.0, 3.0]),
    "kd_loss.py": ("slider", [6.0, 7.0]),
}


def ms(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds) * 1e3:6.1f} ms, max {max(seconds) * 1e3:6.1f} ms"


def time_page(name: str, repeats: int) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=300)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    at.run()  # second warm-up: every cache is now filled
    plain = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        at.run()
        plain.append(time.perf_counter() - t0)
    print(f"{name:15s} first run {first * 1e3:7.0f} ms | rerun: {ms(plain)}")
    control = PAGES[name]
    if control is None:
        return
    kind, values = control
    changed = []
    for i in range(repeats):
        # A fresh value every time (i / 1000 apart), so the figure cache never hits.
        getattr(at, kind)(key="T").set_value(values[i % 2] + i / 1000)
        t0 = time.perf_counter()
        at.run()
        changed.append(time.perf_counter() - t0)
        assert not at.exception
    print(f"{'':15s} rerun after changing T (cache miss): {ms(changed)}")


def figure_size() -> None:
    z = torch.tensor([-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2])
    t0 = time.perf_counter()
    grid = analysis.temperature_sweep(z, analysis.temperature_grid(0.1, 50.0, 100))
    exact = analysis.temperature_sweep(z, np.array([1.0]))
    t1 = time.perf_counter()
    for log_y in (False, True):
        t2 = time.perf_counter()
        spec = temperature_spec(grid, log_y)
        t3 = time.perf_counter()
        fig = temperature_figure(spec, exact, log_y)
        t4 = time.perf_counter()
        size = len(fig.to_json())
        print(
            f"temperature figure (log_y={log_y}): {len(fig.frames)} frames, "
            f"JSON {size / 1e3:.0f} kB"
            f" | sweep {(t1 - t0) * 1e3:.1f} ms, frames (cached per image) {(t3 - t2) * 1e3:.0f}"
            f" ms, opening at an exact T {(t4 - t3) * 1e3:.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in PAGES:
        time_page(name, args.repeats)
    figure_size()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
