"""A full room: N sessions moving controls on the concept pages while a run trains.

Starts ``streamlit run app/streamlit_app.py`` on a loopback port and opens ``--sessions``
sessions spread over /temperature and /kd-loss: by default websocket clients speaking
Streamlit's own protocol (``bench/ws_session.py``: the server's work alone, as a room of laptops
would load it), with ``--client browser`` Playwright contexts in one Chromium (Debian's, via
``executable_path``) on the same cores. Each session opens its page, then ``--moves`` times
types a new value into a number box (the image index of the example picker; every value
distinct across sessions, so nearly every rerun misses the figure caches: the worst case) and
waits for the app to be idle again. Meanwhile one training job runs: by default Start pressed in
the lab before the room joins, so it trains in the server's own worker thread (``--job cli``: a
separate ``python -m kdcore run`` process on the same store; ``--job none``: no job). The room
starts once the job is past its start and training.

Reports the rerun latency (from the keypress to the idle marker, timed in the page's own clock;
for protocol clients, from the message sent to the script's end),
the time to open a page, and the server's resident memory (VmRSS from /proc) before the sessions,
at its peak while they run, and after they close. Give the load average with any figure: the
machine may be shared.

    .venv/bin/python bench/bench_load.py --sessions 5
    .venv/bin/python bench/bench_load.py --sessions 30 --moves 5
    .venv/bin/python bench/bench_load.py --sessions 10 --threads 2,1   # two rooms, side by side
    .venv/bin/python bench/bench_load.py --sessions 5 --client browser  # real Chromium tabs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
OPEN_TIMEOUT_MS = 90_000

# Counts every script run that ends (any state -> notRunning) and when, in the page's clock.
WATCH = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__kd = {runs: 0, done: 0, last: app.getAttribute('data-test-script-state')};
  new MutationObserver(() => {
    const s = app.getAttribute('data-test-script-state');
    if (s === 'notRunning' && window.__kd.last !== 'notRunning') {
      window.__kd.runs += 1; window.__kd.done = performance.now();
    }
    window.__kd.last = s;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""

# page -> (URL to open, the number box to type into, a value for session s, move i)
PAGES = {
    "temperature": ("temperature?digit=2", "Which one", lambda s, i: str((s * 11 + i * 5) % 800)),
    "kd-loss": ("kd-loss?digit=3&T=4", "Which one", lambda s, i: str((s * 7 + i * 3) % 800)),
}


def rss_mib(pid: int) -> float:
    """Resident memory of a process from /proc (psutil may not be installed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_training(pid: int, timeout: float = 120.0) -> float:
    """Block until the job process is past its start (imports, data, a teacher from the cache)
    and training: busier than one and a half cores over a whole second (torch's import and the
    data load run on one). Returns the seconds waited, so the
    room meets a job that trains rather than one that is still loading."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            before = cpu_seconds(pid)
            time.sleep(1.0)
            if cpu_seconds(pid) - before > 1.5:
                break
        except (FileNotFoundError, ProcessLookupError):  # the job ended (or failed) already
            break
    return time.perf_counter() - t0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"streamlit did not start; see {log}")


class Sampler(threading.Thread):
    """The server's peak RSS while the sessions run, sampled every 0.25 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, rss_mib(self.pid))


async def session(browser, base: str, s: int, slug: str, moves: int, out: dict) -> None:
    path, label, value = PAGES[slug]
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    try:
        t0 = time.perf_counter()
        await page.goto(f"{base}/{path}", timeout=OPEN_TIMEOUT_MS)
        box = page.locator("[data-testid='stNumberInput']").filter(has_text=label).locator("input")
        await box.wait_for(timeout=OPEN_TIMEOUT_MS)
        await page.wait_for_selector(IDLE, timeout=OPEN_TIMEOUT_MS)
        out["open"].append(time.perf_counter() - t0)
        await page.evaluate(WATCH)
        for i in range(moves):
            await asyncio.sleep(random.uniform(0.3, 1.0))  # a person, not a loop
            runs = await page.evaluate("() => window.__kd.runs")
            await box.fill(value(s, i))
            start = await page.evaluate("() => performance.now()")
            await box.press("Enter")
            await page.wait_for_function(
                f"() => window.__kd.runs > {runs}", timeout=OPEN_TIMEOUT_MS, polling=20
            )
            done = await page.evaluate("() => window.__kd.done")
            out["rerun"].append((done - start) / 1e3)
        if await page.locator("[data-testid='stException']").count():
            out["errors"] += 1
    except Exception as err:  # a timeout in one session is a result, not the end of the bench
        out["failed"].append(f"session {s} ({slug}): {type(err).__name__}: {str(err)[:120]}")
    finally:
        await context.close()


async def ws_session(base: str, s: int, slug: str, moves: int, out: dict) -> None:
    """One session over the app's own websocket protocol (bench/ws_session.py): the server's
    work without a browser's."""
    from ws_session import WsSession

    path, label, value = PAGES[slug]
    page, _, query = path.partition("?")
    ws = WsSession(base.replace("http://", "ws://"), page, query)
    try:
        out["open"].append(await ws.open())
        for i in range(moves):
            await asyncio.sleep(random.uniform(0.3, 1.0))  # a person, not a loop
            out["rerun"].append(await ws.set_number(label, int(value(s, i))))
        out["errors"] += ws.exceptions
        out["bytes"].append(ws.bytes_received)
    except Exception as err:  # a timeout in one session is a result, not the end of the bench
        out["failed"].append(f"session {s} ({slug}): {type(err).__name__}: {str(err)[:120]}")
    finally:
        await ws.close()


def job_progress(path: Path) -> str:
    """Where the lab's job stands in the store: it must still be training for the figures to
    count as measured beside one."""
    sys.path.insert(0, str(ROOT))
    from kdcore.store import Store

    store = Store(path)
    try:
        runs = store.list()
        return ", ".join(f"run #{r.id} {r.status} at {r.progress:.0%}" for r in runs) or "no run"
    finally:
        store.close()


async def press_start(base: str) -> None:
    """Open the lab and press Start on its default run: the job trains in the server's own
    worker thread, as one a lecturer starts in class does."""
    from ws_session import WsSession

    ws = WsSession(base.replace("http://", "ws://"), "lab")
    try:
        await ws.open()
        await ws.click("Start")
    finally:
        await ws.close()


async def ws_room(base: str, sessions: int, moves: int, out: dict) -> None:
    slugs = list(PAGES)
    await asyncio.gather(
        *(ws_session(base, s, slugs[s % len(slugs)], moves, out) for s in range(sessions))
    )


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (
        values[0] if values else float("nan"))  # fmt: skip


async def room(base: str, sessions: int, moves: int, out: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        slugs = list(PAGES)
        await asyncio.gather(
            *(session(browser, base, s, slugs[s % len(slugs)], moves, out) for s in range(sessions))
        )
        await browser.close()


def one_room(args, threads: str) -> dict:
    """Start a server (with ``$KD_TORCH_THREADS=threads`` unless empty), fill the room, print
    and return the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="kd-load-"))
    env = {**os.environ, "KD_STORE": str(tmp / "runs.sqlite")}
    env.pop("KD_TORCH_THREADS", None)
    if threads:
        env["KD_TORCH_THREADS"] = threads
    port = free_port()
    server = start_server(port, env, tmp / "streamlit.log")
    base = f"http://127.0.0.1:{port}"
    job = None
    label = f"{args.client} clients, page torch threads: {threads or 'default (1)'}"
    try:
        # one visit of each page first: the process has loaded MNIST, the demo models and the
        # pages' modules (what a lecturer's own browser does before the room joins)
        before_warm = rss_mib(server.pid)
        fill = ws_room if args.client == "ws" else room
        asyncio.run(fill(base, len(PAGES), 0, {"open": [], "rerun": [], "errors": 0,
                                               "failed": [], "bytes": []}))  # fmt: skip
        before = rss_mib(server.pid)
        if args.job == "app":  # pressed in the lab, as a lecturer would: it trains in the server
            cpu_before = cpu_seconds(server.pid)
            asyncio.run(press_start(base))
            waited = wait_until_training(server.pid)
            print(f"lab job started; the server busy training after {waited:.0f} s "
                  f"({cpu_seconds(server.pid) - cpu_before:.1f} s of CPU)", flush=True)  # fmt: skip
        elif args.job == "cli":
            job_env = {k: v for k, v in env.items() if k != "KD_TORCH_THREADS"}
            job = subprocess.Popen(
                [*(["nice", "-n", str(args.nice)] if args.nice else []),
                 sys.executable, "-m", "kdcore", "run", "custom", "--epochs", "20",
                 "--store", str(tmp / "runs.sqlite")],
                cwd=ROOT, env=job_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            waited = wait_until_training(job.pid)
            print(f"command-line job busy after {waited:.0f} s", flush=True)
        print(f"{label}; load average before: {load_average()}", flush=True)
        sampler = Sampler(server.pid)
        sampler.start()
        out: dict = {"open": [], "rerun": [], "errors": 0, "failed": [], "bytes": []}
        t0, cpu0 = time.perf_counter(), cpu_seconds(server.pid)
        asyncio.run(fill(base, args.sessions, args.moves, out))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
        sampler.stop.set()
        load_during = load_average()
        job_state = {"none": "none", "app": "in the server"}.get(args.job) or (
            "running" if job.poll() is None else "finished")  # fmt: skip
        time.sleep(args.settle)
        after = rss_mib(server.pid)

        print(f"{args.sessions} sessions x {args.moves} moves in {wall:.1f} s "
              f"(training job: {job_state} at the end); load average {load_during}")  # fmt: skip
        for name in ("open", "rerun"):
            v = out[name]
            if v:
                print(f"  {name:6s} n={len(v):4d}  p50 {pct(v, 50) * 1e3:8.0f} ms  "
                      f"p95 {pct(v, 95) * 1e3:8.0f} ms  max {max(v) * 1e3:8.0f} ms")  # fmt: skip
        print(f"  server RSS: {before_warm:.0f} MiB at start, {before:.0f} MiB warm, "
              f"{sampler.peak:.0f} MiB peak during, {after:.0f} MiB {args.settle:.0f} s after "
              "the sessions closed")  # fmt: skip
        runs = len(out["open"]) + len(out["rerun"])
        if args.job == "app":
            print(f"  server CPU: {cpu:.1f} s over {wall:.1f} s, the lab job's training "
                  f"included; {job_progress(tmp / 'runs.sqlite')}")  # fmt: skip
        else:
            print(f"  server CPU: {cpu:.1f} s for {runs} page opens and reruns, "
                  f"{cpu / max(runs, 1) * 1e3:.0f} ms each on average (what the server itself "
                  "spends, whatever the browsers on the same cores take)")  # fmt: skip
        if out["bytes"]:
            print(f"  sent to each session: {statistics.mean(out['bytes']) / 1024:.0f} kB on "
                  f"average ({statistics.mean(out['bytes']) / (args.moves + 1) / 1024:.0f} kB "
                  "per page run)")  # fmt: skip
        print(f"  exception boxes: {out['errors']}; failed sessions: {len(out['failed'])}")
        for line in out["failed"][:5]:
            print("   ", line)
        return {"label": label, "rerun": out["rerun"], "open": out["open"]}
    finally:
        if job is not None and job.poll() is None:
            job.terminate()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--moves", type=int, default=5, help="inputs per session")
    parser.add_argument("--job", choices=("app", "cli", "none"), default="app",
                        help="the training job alongside: app, Start pressed in the lab (it "
                        "trains in the server, in a worker thread; the default); cli, a "
                        "separate `python -m kdcore run` process; none")  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=0, help="with --job cli: run that process under `nice -n N`"
    )
    parser.add_argument("--client", choices=("ws", "browser"), default="ws",
                        help="ws: sessions speaking Streamlit's websocket protocol (the server "
                        "alone); browser: Chromium contexts on the same cores")  # fmt: skip
    parser.add_argument("--settle", type=float, default=20, help="seconds to wait after closing")
    parser.add_argument("--threads", default="", help="the pages' torch threads "
                        "($KD_TORCH_THREADS) to compare, one room each, e.g. '2,1' (default: "
                        "the app's own, 1)")  # fmt: skip
    args = parser.parse_args()
    rooms = [one_room(args, t.strip()) for t in (args.threads.split(",") or [""])]
    if len(rooms) > 1:
        base = rooms[0]
        print("side by side (rerun latency):")
        for r in rooms:
            v = r["rerun"]
            if v and base["rerun"]:
                print(f"  {r['label']:32s} p50 {pct(v, 50) * 1e3:7.0f} ms "
                      f"({pct(base['rerun'], 50) / pct(v, 50):4.1f}x)  p95 {pct(v, 95) * 1e3:7.0f} "
                      f"ms ({pct(base['rerun'], 95) / pct(v, 95):4.1f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
