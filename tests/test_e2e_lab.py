"""The lab in a real headless Chromium: start a tiny run, watch it, find it in the history.

Uses its own server with its own run store, so it never sees other tests' runs. Skips without
Chromium or Playwright unless ``KD_REQUIRE_BROWSER=1``. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kdcore.store import Store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TINY = "teacher=mlp-100&per_class=20&epochs=2&teacher_epochs=1&seed=11"


def _need(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("KD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (KD_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    _need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}")
    _need(importlib.util.find_spec("playwright") is not None, "Playwright is not installed")
    store = tmp_path_factory.mktemp("lab-e2e") / "runs.sqlite"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "streamlit-lab.log", "w")  # noqa: SIM115 -- closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py",
         "--server.headless", "true", "--server.port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KD_STORE": str(store)},
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
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.3)
        yield url, store
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_lab_run_in_the_browser(app):
    from playwright.sync_api import sync_playwright

    url, store = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/lab?{TINY}")
        page.wait_for_selector(IDLE, timeout=120_000)
        page.get_by_role("button", name="Start").click()
        page.get_by_text("Run #1", exact=False).first.wait_for(timeout=60_000)
        # The page keeps polling while the worker trains: the header flips by itself.
        page.get_by_text("· completed").first.wait_for(timeout=120_000)
        page.wait_for_selector(IDLE, timeout=60_000)
        # Streamlit loads Plotly lazily: wait for the curves to be drawn rather than count at once.
        page.wait_for_selector(".js-plotly-plot", timeout=30_000)  # the curves
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "lab-run.png"), full_page=True)

        page.goto(f"{url}/runs")
        page.wait_for_selector(IDLE, timeout=60_000)
        page.get_by_text("#1 custom kd mlp-30").first.wait_for(timeout=30_000)
        page.wait_for_function(  # overlay and errors
            "() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=30_000
        )
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
        browser.close()
    assert not errors, errors
    run = Store(store).get(1)
    assert run.status == "completed" and run.config["seed"] == 11
