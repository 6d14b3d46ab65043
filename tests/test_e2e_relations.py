"""End to end in Chromium: the geometry page's stored run, read back epoch by epoch.

A real (small) ``rkd-mnist`` run is trained first through the CLI into a store of its own: two
epochs on 20 training images per class, so the page has two epochs of distance matrices to step
through. The test then moves the page's epoch slider with the keyboard, as a user would, and
checks that the heatmap's title and the URL follow it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    ROOT,
    require_browser,
    streamlit_server,
)
from tests.test_e2e_browser import open_page

pytestmark = pytest.mark.browser


def test_the_epoch_slider_steps_through_a_stored_rkd_run(tmp_path):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    store = tmp_path / "runs.sqlite"
    env = {"KD_STORE": str(store), "KD_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(
        [sys.executable, "-m", "kdcore", "run", "rkd-mnist", "--epochs", "2",
         "--set", "per_class=20", "--set", "teacher_epochs=1", "--device", "cpu"],
        cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    with streamlit_server("streamlit-relations.log", env) as url, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = open_page(b, f"{url}/relations")
            main = page.locator("[data-testid='stMain']")
            expect(main.get_by_text("Run #1: preset rkd-mnist, 2 epochs")).to_be_visible()
            slider = page.get_by_role("slider", name="Epoch")
            slider.scroll_into_view_if_needed()
            expect(slider).to_have_value("2")
            titles = page.locator(".js-plotly-plot .gtitle, .js-plotly-plot .annotation-text")
            assert any("epoch 2" in t for t in titles.all_text_contents())

            slider.focus()
            page.keyboard.press("ArrowLeft")  # one step down: epoch 1
            expect(slider).to_have_value("1", timeout=15_000)
            page.wait_for_selector(IDLE, timeout=60_000)
            page.wait_for_function(
                """() => [...document.querySelectorAll('.js-plotly-plot .gtitle, '
                          + '.js-plotly-plot .annotation-text')]
                         .some(t => t.textContent.includes('epoch 1'))""",
                timeout=30_000,
            )
            assert "epoch=1" in page.url
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(ARTIFACTS / "relations-epoch-1.png"), full_page=True)
        finally:
            b.close()
