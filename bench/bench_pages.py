"""Server-side cost of every page, and the size of the temperature chart.

For each page of the app (app/catalog.py), after two warm-up runs (MNIST and the demo models
loaded, caches filled, the shipped runs read), times (a) a plain rerun (what a click elsewhere
costs) and, on the two pages with a temperature control, (b) a rerun after changing T, which
misses the figure cache and rebuilds the 100-frame chart. The lab and the run history read an
empty run store in a temporary folder. Times are AppTest's ``run()``: the script plus
AppTest's own bookkeeping, so an upper bound on what the server spends. Target: under 300 ms.
Then builds the temperature page's slider data for one image and prints its JSON size (what
goes over the websocket; target well under 2 MB) and the time to build it.

    .venv/bin/python bench/bench_pages.py [--repeats 10] [--pages distilbert lab]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app.catalog import PAGES  # noqa: E402
from app.components import tslider  # noqa: E402


def release_t(at: AppTest, i: int) -> None:
    """The temperature page's slider (our component) let go at a T never used before, as the
    browser reports it: a widget state of the component, then a rerun."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    states: WidgetStates = at._tree.get_widget_states()
    widget = states.widgets.add()
    (widget.id,) = [c.proto.id for c in at.get("bidi_component") if c.proto.id.endswith("tslider")]
    widget.json_value = json.dumps({"T": round(2.0 + i / 100, 3)})
    at._run(states)


def step_t(at: AppTest, i: int) -> None:
    """The loss page's log-spaced T slider moved to a stop not used before."""
    at.select_slider(key="kd_T").set_value(
        tslider.LOG_STEPS[6 + i % (len(tslider.LOG_STEPS) - 6)]
    ).run()


# page file -> how to change its T so that every change misses the figure cache
T_CONTROLS = {"temperature.py": release_t, "kd_loss.py": step_t}


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
    change = T_CONTROLS.get(name)
    if change is None:
        return
    changed = []
    for i in range(repeats):
        t0 = time.perf_counter()
        change(at, i)  # the rerun included
        changed.append(time.perf_counter() - t0)
        assert not at.exception
    print(f"{'':15s} rerun after changing T (cache miss): {ms(changed)}")


def slider_payload() -> None:
    """What the temperature page sends its slider component for one image: every frame of the
    log-spaced grid, bars, curves, metrics and sentences formatted, as one JSON text (what goes
    over the websocket; built once per image and T)."""
    logits = (-4.7, 2.8, 16.4, 4.7, -4.2, -5.3, -5.5, 3.8, -0.9, -5.2)
    for log_y in (False, True):
        t0 = time.perf_counter()
        text, _ = tslider._payload(logits, 1.0, log_y)
        took = time.perf_counter() - t0
        frames = len(json.loads(text)["frames"])
        print(f"temperature slider (log_y={log_y}): {frames} frames, JSON {len(text) / 1e3:.0f} kB"
              f", built in {took * 1e3:.1f} ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pages", nargs="*", help="only these pages, by URL slug (default: all)")
    args = parser.parse_args()
    slugs = {p.slug for p in PAGES}
    unknown = sorted(set(args.pages or ()) - slugs)
    if unknown:
        parser.error(f"no page {', '.join(unknown)}; choose from {', '.join(sorted(slugs))}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KD_STORE"] = str(Path(tmp) / "runs.sqlite")  # not the user's own runs
        for info in PAGES:
            if info.exists and (not args.pages or info.slug in args.pages):
                time_page(info.path.name, args.repeats)
    if not args.pages or "temperature" in args.pages:
        slider_payload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
