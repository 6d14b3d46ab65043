"""The lab in a real headless Chromium: start a tiny run, watch it, find it in the history.

Uses its own server with its own run store, so it never sees other tests' runs. Skips without
Chromium or Playwright unless ``KD_REQUIRE_BROWSER=1``. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import pytest

from kdcore.store import Store
from tests.browser import (
    ARTIFACTS,
    CHART_DRAWN,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    label_problems,
    require_browser,
    streamlit_server,
)

pytestmark = pytest.mark.browser

TINY = "teacher=mlp-100&per_class=20&epochs=2&teacher_epochs=1&seed=11"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_browser()
    store = tmp_path_factory.mktemp("lab-e2e") / "runs.sqlite"
    with streamlit_server("streamlit-lab.log", {"KD_STORE": str(store)}) as url:
        yield url, store


def test_lab_run_in_the_browser(app):
    from playwright.sync_api import sync_playwright

    url, store = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
        # every label under the two charts is drawn whole, and the axis title sits below the
        # ticks: the shipped runs' model names are long ("mlp-800 alpha=0.1")
        page.wait_for_function(CHART_DRAWN)
        assert label_problems(page) == []
        page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
        browser.close()
    assert not errors, errors
    run = Store(store).get(1)
    assert run.status == "completed" and run.config["seed"] == 11


def test_leaving_a_linked_preset_for_a_custom_run(app):
    """/lab?preset=omitted-3&profile=paper, reloaded, then "Custom run": the address leaves the
    default mode out while the preset stays in it, and the page once wrote ?mode=Preset into a
    param bound to the control, which Streamlit refuses ("This app has encountered an error")."""
    from playwright.sync_api import sync_playwright

    url, _ = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        page.goto(f"{url}/lab?preset=omitted-3&profile=paper")
        page.wait_for_selector(IDLE, timeout=120_000)
        page.reload()
        page.wait_for_selector(IDLE, timeout=120_000)
        page.get_by_role("radio", name="Custom run").click()
        page.get_by_text("Method", exact=True).first.wait_for(timeout=60_000)  # its controls
        page.wait_for_selector(IDLE, timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        assert "encountered an error" not in page.locator("body").inner_text()
        browser.close()
