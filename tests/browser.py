"""What the browser tests share: Debian's Chromium through Playwright, and a Streamlit server.

Playwright is launched with ``executable_path`` (its own browser download does not work here).
Without Chromium or Playwright a browser test skips, unless ``KD_REQUIRE_BROWSER=1`` (CI), where
that is a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# True once Plotly has drawn every chart's axes on the page (it loads lazily in Streamlit).
CHART_DRAWN = """() => {
    const charts = [...document.querySelectorAll('.js-plotly-plot')];
    return charts.length > 0 && charts.every(p => p.querySelector('g.xaxislayer-above'));
}"""
# Every Plotly chart's text that the reader cannot read whole: a tick label, axis title or subplot
# title drawn past the chart's edge (cut off), a tick label under a title or on another tick
# label of its axis, two titles on top of each other, a bar's figure under a title or a line's
# label, or a legend entry over a tick label or a title. One line each.
LABEL_PROBLEMS = r"""() => [...document.querySelectorAll('.js-plotly-plot')].flatMap((p, i) => {
    const svg = p.querySelector('svg.main-svg');
    if (!svg) return [];
    const edge = svg.getBoundingClientRect(), box = e => e.getBoundingClientRect();
    const texts = sel => [...p.querySelectorAll(sel)]
        .filter(t => box(t).width > 0 && t.textContent.trim());
    // every subplot's axes: x, x2, ... (tick labels in the axis layers; titles .xtitle, .x2title)
    const ticks = texts('g.xaxislayer-above text, g.yaxislayer-above text');
    const titles = texts('text[class$="title"], g.annotation text');
    const name = t => `chart ${i}: "${t.textContent.slice(0, 40)}"`;
    const out = [];
    for (const t of [...ticks, ...titles]) {
        const r = box(t);
        if (r.top < edge.top - 1 || r.bottom > edge.bottom + 1 || r.left < edge.left - 1
            || r.right > edge.right + 1) out.push(`${name(t)} is cut off at the chart's edge`);
    }
    const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
        && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    for (const t of ticks) for (const u of titles)
        if (hit(box(t), box(u))) out.push(`${name(t)} lies under "${u.textContent.slice(0, 40)}"`);
    for (const layer of p.querySelectorAll('g.xaxislayer-above, g.yaxislayer-above')) {
        // Each label's own outline: Plotly slants labels that would not fit level, and the
        // boxes of slanted neighbours overlap while their words need not. Same-angle outlines
        // overlap when the gap between their centres is under half their summed sizes along
        // both of the labels' own axes.
        const outline = t => {
            const r = box(t), b = t.getBBox();
            const m = /rotate\((-?[\d.]+)/.exec(t.getAttribute('transform') || '');
            const a = (m ? +m[1] : 0) * Math.PI / 180;
            return {x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2, w: b.width,
                    h: b.height, c: Math.cos(a), s: Math.sin(a)};
        };
        const meet = (a, b) => {
            const dx = b.x - a.x, dy = b.y - a.y;
            return Math.abs(dx * a.c + dy * a.s) < (a.w + b.w) / 2 - 1
                && Math.abs(-dx * a.s + dy * a.c) < (a.h + b.h) / 2 - 1;
        };
        const own = [...layer.querySelectorAll('text')].filter(t => box(t).width > 0);
        const shapes = own.map(outline);
        own.forEach((t, k) => own.slice(k + 1).forEach((u, n) => {
            if (meet(shapes[k], shapes[k + 1 + n]))
                out.push(`${name(t)} runs into tick "${u.textContent}"`);
        }));
    }
    titles.forEach((t, k) => titles.slice(k + 1).forEach(u => {
        if (hit(box(t), box(u))) out.push(`${name(t)} overlaps "${u.textContent.slice(0, 40)}"`);
    }));
    // a bar's figure (textposition outside) under a title or an annotation (a line's label)
    for (const t of texts('text.bartext')) for (const u of titles)
        if (hit(box(t), box(u)))
            out.push(`bar figure ${name(t)} lies under "${u.textContent.slice(0, 40)}"`);
    // the legend's entries in view (a long legend scrolls: the rest are clipped out of sight)
    const bg = p.querySelector('g.legend rect.bg'), frame = bg && box(bg);
    const inView = t => frame && box(t).top >= frame.top - 1 && box(t).bottom <= frame.bottom + 1;
    for (const t of texts('g.legend text.legendtext').filter(inView))
        for (const u of [...ticks, ...titles])
            if (hit(box(t), box(u)))
                out.push(`legend ${name(t)} covers "${u.textContent.slice(0, 40)}"`);
    return out;
})"""


def label_problems(page, settle_ms: int = 4000) -> list[str]:
    """:data:`LABEL_PROBLEMS` once the page's charts have settled: a chart still laying itself
    out (presenter mode's CSS arriving, a resize) can overlap for a moment, so the check waits
    up to ``settle_ms`` for none, then reports what is still there. A real overlap stays."""
    with contextlib.suppress(Exception):  # Playwright's TimeoutError: report what is left
        page.wait_for_function(f"() => ({LABEL_PROBLEMS})().length === 0", timeout=settle_ms)
    return page.evaluate(LABEL_PROBLEMS)


def require_browser() -> None:
    """Skip (or fail under KD_REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    for ok, reason in (
        (Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
        (importlib.util.find_spec("playwright") is not None, "Playwright is not installed"),
    ):
        if ok:
            continue
        if os.environ.get("KD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (KD_REQUIRE_BROWSER=1, so this is an error)")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_name: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run the app on a free port until the block ends; yields its base URL."""
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip
        url = f"http://localhost:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start; see {log_path}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def server_and_browser(log_name: str, env: dict[str, str] | None = None, prepare=None):
    """Module-scoped ``server`` and ``browser`` fixtures for a test file: one Streamlit server
    (its log under tests/artifacts/``log_name``) and one headless Chromium shared by the file's
    tests. Use as ``server, browser = server_and_browser("streamlit-x.log")``. ``prepare()``,
    when given, runs once before the server starts (e.g. a CLI run into the store of ``env``)."""

    @pytest.fixture(scope="module")
    def server():
        require_browser()
        if prepare is not None:
            prepare()
        with streamlit_server(log_name, env) as url:
            yield url

    @pytest.fixture(scope="module")
    def browser(server):
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield b
            b.close()

    return server, browser
